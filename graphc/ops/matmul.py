"""Matrix products: matmul (torch's 1-d and batched broadcasting rules) and bmm."""
from __future__ import annotations

import numpy as np

from ..dispatch import MATMUL, op
from . import meta
from .reduction import sum_to
from .view import reshape_as, transpose, unsqueeze


def _matmul_infer(a, b):
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("both arguments to matmul need at least 1 dimension")
    if a.dtype is not b.dtype:
        raise TypeError(f"expected both operands to have the same dtype, got {a.dtype.name} and {b.dtype.name}")
    sa, sb = tuple(a.shape), tuple(b.shape)
    m = sa[:-1] if len(sa) > 1 else ()
    n = sb[-1:] if len(sb) > 1 else ()
    k_a, k_b = sa[-1], (sb[-2] if len(sb) > 1 else sb[0])
    if k_a != k_b:
        raise ValueError(f"shapes {list(sa)} and {list(sb)} cannot be multiplied (inner sizes {k_a} and {k_b} differ)")
    batch = meta.broadcast(sa[:-2], sb[:-2])
    return batch + m[-1:] + n, a.dtype


def _matmul_backward(c, g):
    a, b = c.inputs
    a2 = unsqueeze(a, 0) if a.ndim == 1 else a
    b2 = unsqueeze(b, -1) if b.ndim == 1 else b
    g2 = unsqueeze(g, -2) if a.ndim == 1 else g
    g2 = unsqueeze(g2, -1) if b.ndim == 1 else g2
    ga = sum_to(matmul(g2, transpose(b2, -1, -2)), a2) if a.requires_grad else None
    gb = sum_to(matmul(transpose(a2, -1, -2), g2), b2) if b.requires_grad else None
    return (reshape_as(ga, a) if ga is not None and a.ndim == 1 else ga,
            reshape_as(gb, b) if gb is not None and b.ndim == 1 else gb)


matmul = op("matmul", MATMUL, _matmul_infer, backward=_matmul_backward)(np.matmul)


def _bmm_infer(a, b):
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise ValueError(f"bmm expects two 3-d tensors with the same batch size, got {list(a.shape)} and "
                         f"{list(b.shape)}")
    return _matmul_infer(a, b)


bmm = op("bmm", MATMUL, _bmm_infer, backward=_matmul_backward)(np.matmul)

__all__ = ["matmul", "bmm"]
