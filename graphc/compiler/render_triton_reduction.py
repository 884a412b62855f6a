"""Source for a fused row-reduction group: one program per row (the kept dims), the reduced dims walked in
stages. Stage k accumulates the reductions whose inputs need the results of stage k-1; values that are
constant along a row (the reductions and what is computed from them alone) are computed once per row.

Two cases spread one reduction over many programs, combining partial results with atomics into fp32/fp64/int
scratch buffers that start as the reduction's identity:
- totals (reductions over all rows, a loss mean): each program walks a block of rows and adds its partial total
  atomically; the last program to arrive (an atomic ticket) reads the totals back and stores what depends on them;
- split rows (one reduction stage, no per-element output needing it, e.g. `x.sum()` of a big tensor): the row
  is cut into chunks, one program each (grid rows x chunks); the last chunk of a row finishes that row.
The last program also puts the scratch back to identity, so the buffers are filled once per step, not per launch.
A value that per-row code needs after a total cannot be in the same kernel (that would need a grid-wide barrier):
fusion puts such code in a second kernel."""
from __future__ import annotations

import math

from .fusion import Group
from .ir import Node
from .kernel import Emitter, Scope, kernel_name, reduction_identity, split_index
from .lowering import lowering
from .render_triton import ACCUMULATE, TRITON, signature, template

MAX_BLOCK = 4096
PROGRAMS = 1024  # programs worth launching (several per SM on a 132-SM GPU) before giving each more work
MIN_CHUNK = 8192  # fewest elements per program when a row is split
# per combine: the atomic that combines partial results (scratch starts as the combine's identity)
ATOMIC = {"sum": "tl.atomic_add", "max": "tl.atomic_max", "min": "tl.atomic_min"}


def generate(group: Group, em: Emitter):
    """(source, name, AOT signature, constexprs) of the group's kernel."""
    rank, dims = len(group.space), group.dims
    kept = [d for d in range(rank) if d not in dims]
    stage = group.stage
    split = group.splittable
    per_row = {n for n in group.nodes if all(group.aligned[n][d] == 1 for d in dims)} - group.after_global
    lines: list[str] = []
    whole = Scope(lines, [None] * rank, None, "_g")
    indent = "        " if group.global_reductions else "    "
    row_lines: list[str] = []
    row = Scope(row_lines, [f"r{d}" if d in kept else None for d in range(rank)], None, "_r", indent)
    row_lines += split_index([f"r{d}" for d in kept], "row", [f"size{d}" for d in kept], indent) if kept else []
    cols = ("col_start", "col_end") if split else ("0", "n_inner")
    reductions = [n for n in group.nodes if lowering(n) == "reduction" and n not in group.global_reductions]
    finished = row
    for k in range(1, max(stage[r] for r in reductions) + 1):
        loop = _loop(row, f"_s{k}", rank, group.dims, cols, lambda n, k=k: n in per_row and stage[n] < k)
        done = [r for r in reductions if stage[r] == k]
        for r in done:
            accumulate(r, row, loop, f"acc{r.id}", em.value(r.inputs[0], loop), "cmask")
        row_lines.extend(loop.lines)
        if split:
            combine({r: f"acc{r.id}" for r in done}, row, em, ("row_part", " + row", "row_arrivals"),
                    ("last", "tl.num_programs(1)", "the row's last chunk"), "n_inner")
            finished = Scope(row_lines, row.index, "last", "_f", indent, parent=row)
        else:
            for r in done:
                finish(r, row, em, reduce(r, f"acc{r.id}"), accumulator_type(r), "n_inner")
    for n in group.outputs:
        if n in per_row:
            em.store(n, em.value(n, finished), finished)
    elementwise_outputs = [n for n in group.outputs if n not in per_row and n not in group.after_global]
    if elementwise_outputs:
        loop = _loop(row, "_w", rank, group.dims, cols, lambda n: n in per_row)
        for n in elementwise_outputs:
            em.store(n, em.value(n, loop), loop)
        row_lines.extend(loop.lines)
    index = ["    row = tl.program_id(0).to(tl.int64)"]
    if group.global_reductions:
        for r in group.global_reductions:
            accumulate(r, whole, finished, f"total{r.id}", em.value(r.inputs[0], finished), finished.mask)
        index = ["    first = tl.program_id(0).to(tl.int64) * rows_per_program"]
        lines.append("    for row in range(first, tl.minimum(first + rows_per_program, n_rows)):")
        lines.extend(row_lines)
        combine({r: f"total{r.id}" for r in group.global_reductions}, whole, em, ("total_part", "", "arrivals"),
                ("done", "tl.num_programs(0) * tl.num_programs(1)", "the last program"), "n_rows")
        whole.mask = "done"
        for n in group.outputs:
            if n in group.after_global:
                em.store(n, em.value(n, whole), whole)
    else:
        lines.extend(row_lines)
    if split:
        index += ["    col_start = tl.program_id(1).to(tl.int64) * chunk",
                  "    col_end = tl.minimum(col_start + chunk, n_inner)"]
    name = kernel_name(group)
    buffers = scratch(group)
    source = template("row_reduction").substitute(
        name=name, params=em.params(), extra="".join(f", {p}" for p in launch_ints(group) + list(buffers)),
        index="\n".join(index), body="\n".join(lines))
    block = block_size(math.prod(group.space[d] for d in dims))
    sig = signature(group, em, ["n_rows", "n_inner", *launch_ints(group)])
    sig.update({p: "*" + {"float32": "fp32", "float64": "fp64", "int32": "i32", "int64": "i64"}[ty]
                for p, (ty, _) in buffers.items()})
    return source, name, sig, {"BLOCK": block}


def accumulate(r: Node, init_scope: Scope, scope: Scope, acc: str, value: str, mask: str | None) -> None:
    """Declare accumulator acc in init_scope and fold value into it in scope (masked lanes keep acc)."""
    combine_fn = ACCUMULATE[r.op.lowering.reduce][0]
    ty = accumulator_type(r)
    start = TRITON.literal(reduction_identity(r, ty[3:]))
    init_scope.emit(f"{acc} = tl.full([{'BLOCK' if mask == 'cmask' else 1}], {start}, {ty})")
    widened = value if TRITON.compute_type(r.inputs[0].dtype) == ty else f"{value}.to({ty})"
    update = combine_fn.format(acc=acc, v=widened)
    scope.emit(f"{acc} = tl.where({mask}, {update}, {acc})" if mask else f"{acc} = {update}")


def accumulator_type(r: Node) -> str:
    return "tl.float64" if r.dtype.name == "float64" else TRITON.compute_type(r.dtype)


def reduce(r: Node, acc: str) -> str:
    """The accumulator folded to one value: tl.reduce with the combine fn tl.sum/max/min use (the interpreter runs
    it too); a float max/min is NaN if any lane is, as in torch."""
    _, combine_fn, nan = ACCUMULATE[r.op.lowering.reduce]
    fold = f"tl.reduce({acc}, 0, {combine_fn})"
    if nan is None or "float" not in accumulator_type(r):
        return fold
    any_nan = f"tl.reduce(({acc} != {acc}).to(tl.int32), 0, tl.standard._elementwise_max)"
    return f"tl.where({any_nan} != 0, {nan}, {fold})"


def combine(accs: dict[Node, str], scope: Scope, em: Emitter, scratch: tuple[str, str, str], last: tuple[str, str, str],
            count: str) -> None:
    """Fold each reduction's accumulator into its scratch value (scratch: buffer prefix, offset, arrivals counter)
    with its atomic and take a ticket; only the program arriving last (last: flag, programs, comment) reads the
    combined values (atomic adds of 0: they go to L2, where the atomics went, not to a stale cache line), stores
    what needs them, and puts the scratch back to identity for the next launch. Other programs' values are unused."""
    prefix, offset, arrivals = scratch
    flag, programs, comment = last
    for r, acc in accs.items():
        ptr = f"{prefix}{r.id}{offset}"
        scope.emit(f"{ATOMIC[r.op.lowering.reduce]}({ptr}, {reduce(r, acc)}.to({prefix}{r.id}.dtype.element_ty))")
    scope.emit(f"{flag} = tl.atomic_add({arrivals}{offset}, 1) == {programs} - 1  # {comment}")
    for r in accs:
        finish(r, scope, em, f"tl.atomic_add({prefix}{r.id}{offset}, 0, mask={flag})", f"tl.{scratch_type(r)}", count)
    for r in accs:
        start = TRITON.literal(reduction_identity(r, scratch_type(r)))
        scope.emit(f"tl.store({prefix}{r.id}{offset}, {start}, mask={flag})")
    scope.emit(f"tl.store({arrivals}{offset}, 0, mask={flag})")


def finish(r: Node, scope: Scope, em: Emitter, value: str, value_type: str, count: str) -> None:
    """The reduction's value from its combined accumulator of type value_type (a mean divides by the count)."""
    value = r.op.lowering.finish.format(f"({value})", count=count)
    ty = TRITON.compute_type(r.dtype)
    scope.emit(f"v{r.id} = {value if value_type == ty else f'({value}).to({ty})'}  # {r.op.name} at {r.where}")
    em.reduced[r] = f"v{r.id}"


def _loop(row: Scope, tag: str, rank: int, dims: tuple, cols: tuple, hoist) -> Scope:
    """A loop over one row's reduced elements from cols[0] to cols[1], BLOCK at a time; its body is emitted into
    the returned scope."""
    inner = "    " + row.indent
    body: list[str] = [
        f"{row.indent}for start in range({cols[0]}, {cols[1]}, BLOCK):",
        f"{inner}cols = start + tl.arange(0, BLOCK)",
        f"{inner}cmask = cols < n_inner",
        *split_index([f"c{d}" for d in dims], "cols", [f"size{d}" for d in dims], inner),
    ]
    index = [f"c{d}" if d in dims else row.index[d] for d in range(rank)]
    return Scope(body, index, "cmask", tag, inner, parent=row, hoist=hoist)


def launch_ints(group: Group) -> list[str]:
    """The integer arguments a kernel takes beyond the sizes and strides."""
    return ["rows_per_program"] * bool(group.global_reductions) + ["chunk"] * group.splittable


def scratch(group: Group) -> dict[str, tuple[str, Node | None]]:
    """The scratch buffers the atomics combine into: name -> (dtype, the reduction it holds or None for a counter)."""
    buffers = {}
    if group.splittable:
        for r in group.nodes:
            if lowering(r) == "reduction" and r not in group.global_reductions:
                buffers[f"row_part{r.id}"] = (scratch_type(r), r)
        buffers["row_arrivals"] = ("int32", None)
    for r in group.global_reductions:
        buffers[f"total_part{r.id}"] = (scratch_type(r), r)
    if group.global_reductions:
        buffers["arrivals"] = ("int32", None)
    return buffers


def scratch_type(r: Node) -> str:
    """The accumulator's type where GPU atomics exist for it (narrow integers and bools widen to int32)."""
    ty = accumulator_type(r)[3:]
    return ty if ty in ("float32", "float64", "int64") else "int32"


def block_size(n_inner: int) -> int:
    return min(MAX_BLOCK, max(16, 1 << (max(n_inner, 1) - 1).bit_length()))


def configs(group: Group, space: tuple) -> list[dict]:
    """Launch configs, the heuristic first: one block per row when it fits (max-autotune also tries smaller
    blocks with more trips and other warp counts on a GPU)."""
    block = block_size(math.prod(space[d] for d in group.dims))
    return [{"BLOCK": block}] + [{"BLOCK": b, "num_warps": w} for b in {block, max(16, block // 4)} for w in (4, 8)]


def launch_grid(group: Group, space: tuple, block: int) -> tuple[tuple, dict]:
    """(grid, integer arguments) for a space: rows (blocks of rows for totals) x chunks of a row. Rows are split
    when there are too few of them to fill PROGRAMS programs; totals give each program several rows when there are
    more rows than that, so fewer atomics meet on one address."""
    n_inner = math.prod(space[d] for d in group.dims)
    n_rows = math.prod(space) // n_inner
    chunks = max(1, min(-(-n_inner // MIN_CHUNK), -(-PROGRAMS // n_rows)))
    chunk = -(-n_inner // chunks) if group.splittable else n_inner
    chunk = -(-chunk // block) * block
    chunks = -(-n_inner // chunk)
    rows_per_program = -(-n_rows // max(1, PROGRAMS // chunks)) if group.global_reductions else 1
    ints = {"rows_per_program": rows_per_program, "chunk": chunk}
    return (-(-n_rows // rows_per_program), chunks), {k: ints[k] for k in launch_ints(group)}


def launch(step, loads: list, outs: list, space: tuple, raw: dict, config: dict) -> None:
    group = step.group
    tensors = loads + outs
    n_inner = math.prod(space[d] for d in group.dims)
    n_rows = math.prod(space) // n_inner
    grid, ints = launch_grid(group, space, config["BLOCK"])
    kernel = step.kernel()
    buffers = scratch_buffers(step, n_rows, outs[0].device)
    try:
        kernel[grid](*tensors, *space, *(s for t in tensors for s in t.stride()), n_rows, n_inner, *ints.values(),
                     *buffers, **config)
    except BaseException:
        step.scratch.clear()  # a launch that did not finish may leave partial values behind
        raise


def scratch_buffers(step, n_rows: int, device) -> list:
    """The step's scratch buffers on device, made (filled with identities) when first needed or when they are too
    short for n_rows: kernels put back what they use, so a launch needs no fill."""
    import torch

    held = step.scratch
    if device not in held or held[device][0] < n_rows:
        buffers = []
        for name, (ty, r) in scratch(step.group).items():
            start = 0 if r is None else reduction_identity(r, ty)
            buffers.append(torch.full((n_rows if name.startswith("row_") else 1,), start,
                                      dtype=getattr(torch, ty), device=device))
        held[device] = (n_rows, buffers)
    return held[device][1]
