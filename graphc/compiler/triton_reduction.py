"""Source for a fused row-reduction group: one program per row (the kept dims), the reduced dims walked in
stages. Stage k accumulates the reductions whose inputs need the results of stage k-1; values that are
constant along a row (the reductions and what is computed from them alone) are computed once per row. With a
reduction over all rows (a loss mean) one program walks every row and finishes with the whole-tensor values."""
from __future__ import annotations

import math

from . import cache
from .codegen import ACCUMULATE, Emitter, Scope, compute_type, kernel_name, signature, split_index, template
from .fusion import Group, lowering, view_chain
from .ir import Node

MAX_BLOCK = 4096


def generate(group: Group, em: Emitter):
    """(source, name, AOT signature, constexprs) of the group's kernel."""
    rank, dims = len(group.space), group.dims
    outer = [d for d in range(rank) if d not in dims]
    stage = stages(group)
    per_row = {n for n in group.nodes if all(group.canon[n][d] == 1 for d in dims)} - group.outer_deps
    lines: list[str] = []
    whole = Scope(lines, [None] * rank, None, "_g")
    indent = "        " if group.outer else "    "
    row_lines: list[str] = []
    row = Scope(row_lines, [f"r{d}" if d in outer else None for d in range(rank)], None, "_r", indent)
    row_lines += split_index([f"r{d}" for d in outer], "row", [f"size{d}" for d in outer], indent) if outer else []
    reductions = [n for n in group.nodes if lowering(n) == "reduction" and n not in group.outer]
    for k in range(1, max(stage[r] for r in reductions) + 1):
        loop = _loop(row, f"_s{k}", rank, group.dims, lambda n, k=k: n in per_row and stage[n] < k)
        done = [r for r in reductions if stage[r] == k]
        for r in done:
            accumulate(r, row, loop, f"acc{r.id}", em.value(r.inputs[0], loop), "cmask")
        row_lines.extend(loop.lines)
        for r in done:
            finish(r, row, em, f"acc{r.id}", "n_inner")
    for n in group.outputs:
        if n in per_row:
            em.store(n, em.value(n, row), row)
    elementwise_outputs = [n for n in group.outputs if n not in per_row and n not in group.outer_deps]
    if elementwise_outputs:
        loop = _loop(row, "_w", rank, group.dims, lambda n: n in per_row)
        for n in elementwise_outputs:
            em.store(n, em.value(n, loop), loop)
        row_lines.extend(loop.lines)
    if group.outer:
        for r in group.outer:
            accumulate(r, whole, row, f"total{r.id}", em.value(r.inputs[0], row), None)
        lines.append("    for row in range(n_rows):")
        lines.extend(row_lines)
        for r in group.outer:
            finish(r, whole, em, f"total{r.id}", "n_rows")
        for n in group.outputs:
            if n in group.outer_deps:
                em.store(n, em.value(n, whole), whole)
        index = []
    else:
        index = ["    row = tl.program_id(0).to(tl.int64)"]
        lines.extend(row_lines)
    name = kernel_name(group)
    source = template("row_reduction").substitute(name=name, params=em.params(), index="\n".join(index),
                                                  body="\n".join(lines))
    block = block_size(math.prod(group.space[d] for d in dims))
    return source, name, signature(group, em, ["n_rows", "n_inner"]), {"BLOCK": block}


def accumulate(r: Node, init_scope: Scope, scope: Scope, acc: str, value: str, mask: str | None) -> None:
    """Declare accumulator acc in init_scope and fold value into it in scope (masked lanes keep acc)."""
    init, combine, _ = ACCUMULATE[r.op.triton]
    ty = "tl.float64" if r.dtype.name == "float64" else compute_type(r.dtype)
    init_scope.emit(f"{acc} = tl.full([{'BLOCK' if mask else 1}], {init}, {ty})")
    update = combine.format(acc=acc, v=f"{value}.to({ty})")
    scope.emit(f"{acc} = tl.where({mask}, {update}, {acc})" if mask else f"{acc} = {update}")


def finish(r: Node, scope: Scope, em: Emitter, acc: str, count: str) -> None:
    """The reduction's value from its accumulator: tl.reduce with the combine fn tl.sum/max/min use."""
    scale = f" / {count}" if r.op.name == "mean" else ""
    scope.emit(f"v{r.id} = (tl.reduce({acc}, 0, {ACCUMULATE[r.op.triton][2]}){scale}).to({compute_type(r.dtype)})"
               f"  # {r.op.name} at {r.where}")
    em.reduced[r] = f"v{r.id}"


def _loop(row: Scope, tag: str, rank: int, dims: tuple, hoist) -> Scope:
    """A loop over one row's reduced elements, BLOCK at a time; its body is emitted into the returned scope."""
    inner = "    " + row.indent
    body: list[str] = [
        f"{row.indent}for start in range(0, n_inner, BLOCK):",
        f"{inner}cols = start + tl.arange(0, BLOCK)",
        f"{inner}cmask = cols < n_inner",
        *split_index([f"c{d}" for d in dims], "cols", [f"size{d}" for d in dims], inner),
    ]
    index = [f"c{d}" if d in dims else row.index[d] for d in range(rank)]
    return Scope(body, index, "cmask", tag, inner, parent=row, hoist=hoist)


def stages(group: Group) -> dict[Node, int]:
    """Per member: how many reductions deep it is (0: needs none; a reduction: 1 + its input's stage)."""
    stage: dict[Node, int] = {}
    members = set(group.nodes)
    for n in group.nodes:
        deps = [stage[b] for x in n.inputs if isinstance(x, Node) for b in [view_chain(x)[0]] if b in members]
        stage[n] = max(deps, default=0) + (1 if lowering(n) == "reduction" else 0)
    return stage


def block_size(n_inner: int) -> int:
    return min(MAX_BLOCK, max(16, 1 << (max(n_inner, 1) - 1).bit_length()))


def configs(group: Group, space: tuple) -> list[dict]:
    """Launch configs, the heuristic first: one block per row when it fits (max-autotune also tries smaller
    blocks with more trips and other warp counts on a GPU)."""
    block = block_size(math.prod(space[d] for d in group.dims))
    return [{"BLOCK": block}] + [{"BLOCK": b, "num_warps": w} for b in {block, max(16, block // 4)} for w in (4, 8)]


def launch(step, loads: list, outs: list, space: tuple, raw: dict, config: dict) -> None:
    dims = step.group.dims
    tensors = loads + outs
    n_inner = math.prod(space[d] for d in dims)
    n_rows = math.prod(space) // n_inner if n_inner else 0
    kernel = cache.load(step.source, step.name, step.backend)
    grid = (1,) if step.group.outer else (n_rows,)
    kernel[grid](*tensors, *space, *(s for t in tensors for s in t.stride()), n_rows, n_inner, **config)
