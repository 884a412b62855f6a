"""The attention kernel templates (graphc/ops/attention.py) on the cpu backend. Their products run in BLAS through
numpy, as a matmul group's product does, and the softmax parts with numpy over whole (L, S) blocks: a C loop nest of
flash attention would compute the products several times slower than BLAS. What the template adds to the op-by-op
numpy forwards is the group: the gradients of one attention (one group, see fusion.py) are computed together,
sharing the scores, the probabilities and dS instead of recomputing them for each gradient."""
from __future__ import annotations

import numpy as np

from ..ops.attention import gradients
from .fusion import Group


def launch(group: Group, operands: list[np.ndarray]) -> list[np.ndarray]:
    """The values of group.nodes from the operands of its nodes (which share them), each in its node's dtype."""
    node = group.nodes[0]
    if group.template != "attention.backward":
        found = [node.op.forward(*operands, **node.attrs)]
    else:
        attrs = {k: v for k, v in node.attrs.items() if k not in ("wrt", "safe")}
        by_wrt = gradients(*operands, **attrs, wrts=tuple(n.attrs["wrt"] for n in group.nodes))
        found = [by_wrt[n.attrs["wrt"]] for n in group.nodes]
    return [a.astype(n.dtype.np, copy=False) for a, n in zip(found, group.nodes)]
