"""Source for a fused elementwise group: one program per BLOCK flat indices of the iteration space."""
from __future__ import annotations

import math

from . import cache
from .codegen import Emitter, Scope, broadcast_to, kernel_name, signature, split_index, template
from .fusion import Group

BLOCK = 1024


def generate(group: Group, em: Emitter, mode: str):
    """(source, name, launch, AOT signature, constexprs) of the group's kernel."""
    rank = len(group.space)
    names = [f"i{d}" for d in range(rank)]
    index = split_index(names, "offs", [f"size{d}" for d in range(rank)])
    lines: list[str] = []
    scope = Scope(lines, names, "mask", "")
    for n in group.outputs:
        em.store(n, em.value(n, scope), scope)
    name = kernel_name(group)
    source = template("elementwise").substitute(name=name, params=em.params(), index="\n".join(index),
                                                body="\n".join(lines))
    return source, name, launch, signature(group, em, ["numel"]), {"BLOCK": BLOCK}


def launch(step, loads: list, outs: list, space: tuple) -> None:
    tensors = [broadcast_to(t, space) for t in loads + outs]
    numel = math.prod(space)
    kernel = cache.load(step.source, step.name, step.backend)
    kernel[(triton_cdiv(numel, BLOCK),)](*tensors, *space, *(s for t in tensors for s in t.stride()), numel,
                                        BLOCK=BLOCK)


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)
