"""Source for a fused row-reduction group: one program per row (the kept dims), the reduced dims walked in
stages. Stage k accumulates the reductions whose inputs need the results of stage k-1; values that are
constant along a row (the reductions and what is computed from them alone) are computed once per row."""
from __future__ import annotations

import math

from . import cache
from .codegen import ACCUMULATE, Emitter, Scope, broadcast_to, compute_type, kernel_name, signature, split_index, \
    template
from .fusion import Group, lowering, view_chain
from .ir import Node

MAX_BLOCK = 4096


def generate(group: Group, em: Emitter, mode: str):
    """(source, name, launch, AOT signature, constexprs) of the group's kernel."""
    rank, dims = len(group.space), group.dims
    outer = [d for d in range(rank) if d not in dims]
    inner = list(dims)
    stage = stages(group)
    per_row = {n for n in group.nodes if all(group.canon[n][d] == 1 for d in dims)}
    lines: list[str] = []
    row_index = [f"r{d}" if d in outer else None for d in range(rank)]
    row = Scope(lines, row_index, None, "_r")
    index = split_index([f"r{d}" for d in outer], "row", [f"size{d}" for d in outer]) if outer else []
    reductions = [n for n in group.nodes if lowering(n) == "reduction"]
    for k in range(1, max(stage[r] for r in reductions) + 1):
        loop = _loop(lines, row, f"_s{k}", rank, inner, lambda n, k=k: n in per_row and stage[n] < k)
        done = [r for r in reductions if stage[r] == k]
        for r in done:
            init, combine, _ = ACCUMULATE[r.op.triton]
            acc_ty = "tl.float64" if r.dtype.name == "float64" else compute_type(r.dtype)
            row.emit(f"acc{r.id} = tl.full([BLOCK], {init}, {acc_ty})")
            v = em.value(r.inputs[0], loop)
            update = combine.format(acc=f"acc{r.id}", v=f"{v}.to({acc_ty})")
            loop.emit(f"acc{r.id} = tl.where(cmask, {update}, acc{r.id})  # {r.op.name} at {r.where}")
        lines.extend(loop.lines)
        for r in done:
            scale = " / n_inner" if r.op.name == "mean" else ""
            final = ACCUMULATE[r.op.triton][2]
            row.emit(f"v{r.id} = (tl.reduce(acc{r.id}, 0, {final}){scale}).to({compute_type(r.dtype)})")
            em.reduced[r] = f"v{r.id}"
    for n in group.outputs:
        if n in per_row:
            em.store(n, em.value(n, row), row)
    elementwise_outputs = [n for n in group.outputs if n not in per_row]
    if elementwise_outputs:
        loop = _loop(lines, row, "_w", rank, inner, lambda n: n in per_row)
        for n in elementwise_outputs:
            em.store(n, em.value(n, loop), loop)
        lines.extend(loop.lines)
    name = kernel_name(group)
    source = template("row_reduction").substitute(name=name, params=em.params(), index="\n".join(index),
                                                  body="\n".join(lines))
    block = block_size(math.prod(group.space[d] for d in dims))
    return source, name, launch, signature(group, em, ["n_inner"]), {"BLOCK": block}


def _loop(lines: list[str], row: Scope, tag: str, rank: int, inner: list[int], hoist) -> Scope:
    """A loop over one row's reduced elements, BLOCK at a time; its body is emitted into the returned scope."""
    body: list[str] = [
        "    for start in range(0, n_inner, BLOCK):",
        "        cols = start + tl.arange(0, BLOCK)",
        "        cmask = cols < n_inner",
        *split_index([f"c{d}" for d in inner], "cols", [f"size{d}" for d in inner], "        "),
    ]
    index = [f"c{d}" if d in inner else row.index[d] for d in range(rank)]
    return Scope(body, index, "cmask", tag, "        ", parent=row, hoist=hoist)


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


def launch(step, loads: list, outs: list, space: tuple) -> None:
    dims = step.group.dims
    tensors = [broadcast_to(t, space) for t in loads + outs]
    n_inner = math.prod(space[d] for d in dims)
    n_rows = math.prod(space) // n_inner if n_inner else 0
    if n_rows == 0:
        return
    kernel = cache.load(step.source, step.name, step.backend)
    kernel[(n_rows,)](*tensors, *space, *(s for t in tensors for s in t.stride()), n_inner,
                      BLOCK=block_size(n_inner))
