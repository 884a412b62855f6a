"""Source for a matmul group: the hand-written tile template (kernels/matmul.py.tmpl) with the group's
elementwise epilogue generated into its hook. Batch dims (broadcast like torch.matmul) map to grid axis 1."""
from __future__ import annotations

import math

from . import cache
from .codegen import Emitter, Scope, broadcast_to, compute_type, kernel_loads, kernel_name, signature, \
    split_index, template
from .fusion import Group

BLOCKS = {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32, "GROUP_M": 8}


def generate(group: Group, em: Emitter, mode: str):
    """(source, name, launch, AOT signature, constexprs) of the group's kernel."""
    mm = group.nodes[0]
    rank = len(group.space)
    batch = [f"b{d}" for d in range(rank - 2)]
    index = split_index(batch, "batch", [f"size{d}" for d in range(rank - 2)]) if batch else []
    for op in "ab":
        index.append(f"    {op}_batch = " + (" + ".join(f"{b} * {op}_b{d}" for d, b in enumerate(batch)) or "0"))
    lines: list[str] = []
    scope = Scope(lines, [*batch, "rm[:, None]", "rn[None, :]"], "mask", "")
    ty = compute_type(mm.dtype)
    scope.emit(f"v{mm.id} = acc.to({ptr_type(mm)}).to({ty})  # {mm.op.name} at {mm.where}")
    em.reduced[mm] = f"v{mm.id}"
    for n in group.outputs:
        em.store(n, em.value(n, scope), scope)
    name = kernel_name(group)
    batch_strides = [f"{op}_b{d}" for op in "ab" for d in range(rank - 2)]
    params = ", ".join([em.params(), *batch_strides])
    precision = '"ieee"' if mm.dtype.name == "float32" else "None"
    source = template("matmul").substitute(name=name, params=params, index="\n".join(index), body="\n".join(lines),
                                           precision=precision)
    pointers = {"a_ptr": f"*{mm.inputs[0].dtype.triton}", "b_ptr": f"*{mm.inputs[1].dtype.triton}"}
    sig = signature(group, em, batch_strides + ["M", "N", "K", "a_sm", "a_sk", "b_sk", "b_sn"], pointers)
    return source, name, launch, sig, dict(BLOCKS)


def ptr_type(n) -> str:
    return compute_type(n.dtype) if not n.dtype.is_low_precision else f"tl.{n.dtype.name}"


def launch(step, loads: list, outs: list, space: tuple) -> None:
    group = step.group
    mm = group.nodes[0]
    by_node = dict(zip(group.loads, loads))
    batch, (m, n) = space[:-2], space[-2:]
    a, b = by_node[mm.inputs[0]], by_node[mm.inputs[1]]
    k = a.shape[-1]
    a, b = a.expand(*batch, m, k), b.expand(*batch, k, n)
    tensors = [broadcast_to(by_node[x], space) for x in kernel_loads(group)] + [broadcast_to(t, space) for t in outs]
    strides = [s for t in tensors for s in t.stride()]
    batch_strides = [*a.stride()[:-2], *b.stride()[:-2]]
    grid = (-(-m // BLOCKS["BLOCK_M"]) * -(-n // BLOCKS["BLOCK_N"]), math.prod(batch))
    kernel = cache.load(step.source, step.name, step.backend)
    kernel[grid](a, b, *tensors, *space, *strides, *batch_strides, m, n, k, *a.stride()[-2:], *b.stride()[-2:],
                 **BLOCKS)
