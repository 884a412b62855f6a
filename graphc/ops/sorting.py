"""Sorting along a dim: sort, argsort, topk. The order is one op (argsort, on numpy); the values are a gather of
it, so their gradient is gather's scatter-add."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..dispatch import OTHER, op
from ..errors import op_error
from ..tensor import Tensor
from . import meta
from .indexing import gather
from .layout import narrow
from .reduction import ValuesIndices


def _argsort_parse(x, dim: int = -1, descending: bool = False, stable: bool = False):
    return (x,), {"dim": meta.norm_dim(dim, x.ndim), "descending": bool(descending)}


@op("argsort", OTHER, lambda x, dim, descending: (tuple(x.shape), dtypes.int64), parse=_argsort_parse,
    fallback="sorting has no Triton lowering: runs on numpy")
def argsort(x, dim, descending):
    """torch.argsort(input, dim=-1, descending=False, stable=False): the indices that sort x along dim. The sort is
    always stable (equal elements keep their order, which stable=True asks for); NaN sorts as the largest value."""
    if x.ndim == 0:
        return np.zeros((), np.int64)
    if not descending:
        return np.argsort(x, dim, kind="stable")
    key = x.astype(np.int64) if x.dtype.kind == "b" else x
    if key.dtype.kind == "f":  # NaN first, then the rest largest first
        nan = np.isnan(key)
        return np.lexsort((-np.where(nan, 0, key), ~nan), axis=dim)
    return np.argsort(-key, dim, kind="stable")


def sort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> ValuesIndices:
    """torch.sort: (values, indices) of x sorted along dim; gradients flow to x through the values."""
    indices = argsort(x, dim, descending, stable)
    return ValuesIndices(gather(x, dim, indices) if x.ndim else x, indices)


def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> ValuesIndices:
    """torch.topk: (values, indices) of the k largest (or smallest) elements along dim, largest first (always sorted;
    torch leaves the order unspecified when sorted=False)."""
    d = meta.norm_dim(dim, x.ndim)
    n = x.shape[d] if x.ndim else 1
    if not 0 <= k <= n:
        raise op_error("topk", f"selected index k out of range (k={k}, size {n} along dim {d})", (x,))
    indices = argsort(x, d, largest)
    if x.ndim:
        indices = narrow(indices, d, 0, k)
    return ValuesIndices(gather(x, d, indices) if x.ndim else x, indices)


def msort(x: Tensor) -> Tensor:
    """torch.msort: x sorted along its first dim."""
    return sort(x, 0).values


__all__ = ["argsort", "sort", "topk", "msort"]
