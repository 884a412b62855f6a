"""Source for a fused elementwise group: one program per BLOCK flat indices of the iteration space."""
from __future__ import annotations

import math

from .fusion import Group
from .kernel import Emitter, Scope, kernel_name, split_index
from .render_triton import signature, template

BLOCK = 1024


def generate(group: Group, em: Emitter):
    """(source, name, AOT signature, constexprs) of the group's kernel."""
    rank = len(group.space)
    names = [f"i{d}" for d in range(rank)]
    index = split_index(names, "offs", [f"size{d}" for d in range(rank)])
    lines: list[str] = []
    scope = Scope(lines, names, "mask", "")
    scope.zero = "offs * 0"
    for n in group.outputs:
        em.store(n, em.value(n, scope), scope)
    name = kernel_name(group)
    source = template("elementwise").substitute(name=name, params=em.params(), index="\n".join(index),
                                                body="\n".join(lines))
    return source, name, signature(group, em, ["numel"]), {"BLOCK": BLOCK}


def configs(group: Group, space: tuple) -> list[dict]:
    """Launch configs, the heuristic first (max-autotune times them all on a GPU)."""
    return [{"BLOCK": BLOCK}] + [{"BLOCK": b, "num_warps": w} for b, w in ((256, 2), (2048, 8), (4096, 8))]


def launch(step, loads: list, outs: list, space: tuple, raw: dict, config: dict) -> None:
    tensors = loads + outs
    numel = math.prod(space)
    kernel = step.kernel()
    kernel[(-(-numel // config["BLOCK"]),)](*tensors, *space, *(s for t in tensors for s in t.stride()), numel,
                                           **config)
