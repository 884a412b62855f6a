"""The attention kernel templates (graphc/ops/attention.py) on the cpu backend. Their products run in numpy's
OpenBLAS on the plan's OpenMP threads (runtime.PoolMatmul), as a matmul group's product does, and the softmax parts
with numpy over whole (L, S) blocks: a C loop nest of flash attention would compute the products several times slower
than BLAS. What the templates add to the op-by-op numpy forwards is sharing: the gradients of one attention (one
group, see fusion.py) are computed together, sharing the scores, the probabilities and dS, and the forward computes
the logsumexp that its backward reads (joins), instead of each recomputing the scores and their exponentials."""
from __future__ import annotations

import numpy as np

from ..ops.attention import gradients, outputs
from .fusion import Group

SHARED = {"attention.forward": "out", "attention.logsumexp": "lse"}  # templates computed by ops.attention.outputs


def joins(group: Group, other: Group) -> bool:
    """Whether other's nodes are computed in group's step: the forward and the logsumexp of one attention (the same
    operands and attrs)."""
    a, b = group.nodes[0], other.nodes[0]
    return group.template in SHARED and other.template in SHARED and group.template != other.template and \
        a.inputs == b.inputs and a.attrs == b.attrs


def launch(groups: list[Group], operands: list[np.ndarray], product=np.matmul) -> list[np.ndarray]:
    """The values of the groups' nodes (in order) from the operands their nodes share, each in its node's dtype;
    product: the batched matmul (runtime.PoolMatmul: on the plan's OpenMP threads)."""
    node = groups[0].nodes[0]
    nodes = [n for g in groups for n in g.nodes]
    if groups[0].template == "attention.backward":
        attrs = {k: v for k, v in node.attrs.items() if k not in ("wrt", "safe")}
        by_wrt = gradients(*operands, **attrs, wrts=tuple(n.attrs["wrt"] for n in nodes),
                           product=product)
        found = [by_wrt[n.attrs["wrt"]] for n in nodes]
    else:
        by_name = outputs(*operands, **node.attrs, want=tuple(SHARED[g.template] for g in groups),
                           product=product)
        found = [by_name[SHARED[n.op.lowering.template]] for n in nodes]
    return [a.astype(n.dtype.np, copy=False) for a, n in zip(found, nodes)]
