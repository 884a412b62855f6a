"""Source for a matmul group: the hand-written tile template (kernels/matmul.py.tmpl) with the group's
elementwise epilogue generated into its hook. Batch dims (broadcast like torch.matmul) map to grid axis 1."""
from __future__ import annotations

import math

from ..state import STATE
from .fusion import Group
from .kernel import Emitter, Scope, invariant, invariant_scope, kernel_name, split_index
from .render_triton import TRITON, signature, template

BLOCKS = {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32, "GROUP_M": 8}


def generate(group: Group, em: Emitter):
    """(source, name, AOT signature, constexprs) of the group's kernel."""
    mm = group.matmul
    rank = len(group.space)
    batch = [f"b{d}" for d in range(rank - 2)]
    index = split_index(batch, "batch", [f"size{d}" for d in range(rank - 2)]) if batch else []
    for op in "ab":
        index.append(f"    {op}_batch = " + (" + ".join(f"{b} * {op}_b{d}" for d, b in enumerate(batch)) or "0"))
    lines: list[str] = []
    ty = TRITON.compute_type(mm.dtype)
    storage = TRITON.storage_type(mm.dtype)
    cast = "" if storage == ty == "tl.float32" else f".to({storage}).to({ty})"
    lines.append(f"    v{mm.id} = acc{cast}  # {mm.op.name} at {mm.where}")
    em.reduced[mm] = f"v{mm.id}"
    # what does not vary over the tile (Adam's bias corrections from its step count) is computed once per program
    # as scalars, not at each of a tile's elements: a float64 pow per element made the kernel 3x slower to compile
    before = invariant_scope(group, rank, lines, "    ")
    tile: list[str] = []
    scope = Scope(tile, [*batch, "rm[:, None]", "rn[None, :]"], "mask", "", parent=before,
                  hoist=lambda n: invariant(group, n))
    for n in group.outputs:
        em.store(n, em.value(n, scope), scope)
    lines += tile
    name = kernel_name(group)
    batch_strides = [f"{op}_b{d}" for op in "ab" for d in range(rank - 2)]
    params = ", ".join([em.params(), *batch_strides])
    # float32 inputs: full precision unless the user allowed TF32 (graphc.backends.cuda.matmul.allow_tf32); the
    # switch is part of the compile guards and of eager plan keys, so a plan never outlives a change of it
    precision = "None"
    if mm.dtype.name == "float32":
        precision = '"ieee"' if STATE.float32_matmul_precision == "highest" else '"tf32"'
    source = template("matmul").substitute(name=name, params=params, index="\n".join(index), body="\n".join(lines),
                                           precision=precision)
    pointers = {"a_ptr": f"*{mm.inputs[0].dtype.triton}", "b_ptr": f"*{mm.inputs[1].dtype.triton}"}
    sig = signature(group, em, batch_strides + ["M", "N", "K", "a_sm", "a_sk", "b_sk", "b_sn"], pointers)
    return source, name, sig, dict(BLOCKS)


def configs(group: Group, space: tuple) -> list[dict]:
    """Tile configs, the heuristic first (max-autotune times them all on a GPU)."""
    tiles = [(128, 128, 32, 8, 3), (128, 64, 32, 4, 4), (64, 128, 32, 4, 4), (128, 256, 64, 8, 3)]
    return [dict(BLOCKS)] + [dict(BLOCK_M=m, BLOCK_N=n, BLOCK_K=k, GROUP_M=8, num_warps=w, num_stages=s)
                             for m, n, k, w, s in tiles]


def launch(step, loads: list, outs: list, space: tuple, raw: dict, config: dict) -> None:
    mm = step.group.matmul
    batch, (m, n) = space[:-2], space[-2:]
    a, b = raw[mm.inputs[0], None], raw[mm.inputs[1], None]
    k = a.shape[-1]
    a, b = a.expand(*batch, m, k), b.expand(*batch, k, n)
    tensors = loads + outs
    strides = [s for t in tensors for s in t.stride()]
    batch_strides = [*a.stride()[:-2], *b.stride()[:-2]]
    grid = (-(-m // config["BLOCK_M"]) * -(-n // config["BLOCK_N"]), math.prod(batch))
    kernel = step.kernel()
    kernel[grid](a, b, *tensors, *space, *strides, *batch_strides, m, n, k, *a.stride()[-2:], *b.stride()[-2:],
                 **config)
