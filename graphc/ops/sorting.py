"""Sorting along a dim: sort, argsort, topk. The order is one op (argsort, on numpy); the values are a gather of
it, so their gradient is gather's scatter-add."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..dispatch import OTHER, op
from ..errors import op_error
from ..tensor import Tensor
from . import meta
from .creation import tensor
from .elementwise import (
    cast,
    ceil,
    clamp,
    floor,
    floor_divide,
    isnan,
    lerp,
    logical_not,
    lt,
    round,
    where,
)
from .indexing import gather
from .layout import narrow
from .reduction import ValuesIndices, any, evenly_distributed, sum
from .view import clone, expand, movedim, reshape, squeeze, unsqueeze


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
    if x.dtype.kind == "f":  # NaN first, then the rest largest first
        nan = np.isnan(x)
        return np.lexsort((-np.where(nan, 0, x), ~nan), axis=dim)
    return np.argsort(~x, dim, kind="stable")  # ~x reverses integer and bool order; -x wraps (uint8 0, int64 min)


def sort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> ValuesIndices:
    """torch.sort: (values, indices) of x sorted along dim; gradients flow to x through the values."""
    indices = argsort(x, dim, descending, stable)
    return ValuesIndices(gather(x, dim, indices) if x.ndim else clone(x), indices)


def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True) -> ValuesIndices:
    """torch.topk: (values, indices) of the k largest (or smallest) elements along dim, largest first (always sorted;
    torch leaves the order unspecified when sorted=False)."""
    d = meta.norm_dim(dim, x.ndim)
    n = meta.specialized_size(x, d) if x.ndim else 1  # a compiled replay for a smaller dim must refuse k as here
    if not 0 <= k <= n:
        raise op_error("topk", f"selected index k out of range (k={k}, size {n} along dim {d})", (x,))
    indices = argsort(x, d, largest)
    if x.ndim:
        indices = narrow(indices, d, 0, k)
    return ValuesIndices(gather(x, d, indices) if x.ndim else clone(x), indices)


def msort(x: Tensor) -> Tensor:
    """torch.msort: x sorted along its first dim."""
    return sort(x, 0).values


def _median(name: str, x: Tensor, dim, keepdim: bool, skip_nan: bool):
    if dim is None:
        if 0 in x.shape and x.dtype.is_floating_point:  # torch's median of no elements is NaN
            for d in range(x.ndim):
                meta.specialized_size(x, d)
            return sum(x) + float("nan")  # the sum of nothing carries x's (empty) gradient
        return evenly_distributed(x, _median(name, reshape(x, (-1,)), 0, False, skip_nan).values)
    d = meta.norm_dim(dim, x.ndim)
    if x.ndim and meta.specialized_size(x, d) == 0:
        raise op_error(name, f"{name}(): Expected reduction dim {d} to have non-zero size.", (x,), IndexError)
    order = argsort(x, d) if x.ndim else None
    if order is None:
        return ValuesIndices(clone(x), reshape(argsort(x), ()))
    n = x.shape[d]
    valid = sum(logical_not(isnan(x)), d, keepdim=True)
    # argsort puts NaN last: median picks the first NaN of a row that has one (its result is NaN, as torch's),
    # nanmedian the lower middle of the non-NaN values
    k = clamp(floor_divide(valid - 1, 2), min=0) if skip_nan else where(lt(valid, n), valid, (n - 1) // 2)
    indices = gather(order, d, k)
    values = gather(x, d, indices)
    if not keepdim:
        indices, values = squeeze(indices, d), squeeze(values, d)
    return ValuesIndices(values, indices)


def median(x: Tensor, dim=None, keepdim: bool = False):
    """torch.median: the lower median of x's elements (a tensor), or with dim (values, indices) along it. A NaN
    makes the median NaN."""
    return _median("median", x, dim, keepdim, skip_nan=False)


def nanmedian(x: Tensor, dim=None, keepdim: bool = False):
    """torch.nanmedian: median over the non-NaN elements (NaN only where all are NaN)."""
    return _median("nanmedian", x, dim, keepdim, skip_nan=True)


def kthvalue(x: Tensor, k: int, dim: int = -1, keepdim: bool = False) -> ValuesIndices:
    """torch.kthvalue: (values, indices) of the k-th smallest element along dim (NaN counts as the largest)."""
    d = meta.norm_dim(dim, x.ndim)
    n = meta.specialized_size(x, d) if x.ndim else 1
    if n == 0:
        raise op_error("kthvalue", f"kthvalue(): Expected reduction dim {d} to have non-zero size.", (x,), IndexError)
    if not 1 <= k <= n:
        raise op_error("kthvalue", f"kthvalue(): selected number k out of range for dimension {d}", (x,))
    if not x.ndim:
        return ValuesIndices(clone(x), reshape(argsort(x), ()))
    indices = narrow(argsort(x, d), d, k - 1, 1)
    values = gather(x, d, indices)
    if not keepdim:
        indices, values = squeeze(indices, d), squeeze(values, d)
    return ValuesIndices(values, indices)


def _running_extreme_indices(ufunc):
    def forward(x, dim):
        """Where along dim the running extreme was last reached: torch's cummax/cummin update on >= (<=), so ties
        take the later index, and a NaN, once met, is the extreme (its own index at each later NaN)."""
        if x.ndim == 0:
            return np.zeros((), np.int64)
        values = ufunc.accumulate(x, axis=dim)
        positions = np.arange(x.shape[dim]).reshape((-1,) + (1,) * (x.ndim - dim - 1))
        hits = (x == values) | (np.isnan(x) if x.dtype.kind == "f" else False)
        return np.maximum.accumulate(np.where(hits, positions, -1), axis=dim).astype(np.int64)
    return forward


def _cumextreme_parse(x, dim: int):
    return (x,), {"dim": meta.norm_dim(dim, x.ndim)}


_cummax_indices = op("cummax_indices", OTHER, lambda x, dim: (tuple(x.shape), dtypes.int64), parse=_cumextreme_parse,
                     fallback="a scan has no Triton lowering yet: runs on numpy")(
    _running_extreme_indices(np.maximum))
_cummin_indices = op("cummin_indices", OTHER, lambda x, dim: (tuple(x.shape), dtypes.int64), parse=_cumextreme_parse,
                     fallback="a scan has no Triton lowering yet: runs on numpy")(_running_extreme_indices(np.minimum))


def cummax(x: Tensor, dim: int) -> ValuesIndices:
    """torch.cummax: (values, indices) of the running maximum along dim (NaN propagates); gradients flow to the
    elements picked, as torch's scatter of the gradient to the indices."""
    indices = _cummax_indices(x, dim)
    return ValuesIndices(gather(x, meta.norm_dim(dim, x.ndim), indices) if x.ndim else clone(x), indices)


def cummin(x: Tensor, dim: int) -> ValuesIndices:
    """torch.cummin: (values, indices) of the running minimum along dim (NaN propagates)."""
    indices = _cummin_indices(x, dim)
    return ValuesIndices(gather(x, meta.norm_dim(dim, x.ndim), indices) if x.ndim else clone(x), indices)


def _mode_index(row: np.ndarray) -> int:
    """Where the most frequent value of a row last occurs: the smallest such value on a tie in counts, and NaN never
    equal to NaN (torch's CPU mode)."""
    order = np.argsort(row, kind="stable")
    ordered = row[order]
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    counts = np.diff(np.append(starts, len(row)))
    best = int(np.argmax(counts))  # the first of the longest runs: the smallest value
    return int(order[starts[best] + counts[best] - 1])


@op("mode_indices", OTHER, lambda x, dim: (meta.reduced(tuple(x.shape), (dim,) if x.ndim else (), True),
                                           dtypes.int64),
    parse=_cumextreme_parse, fallback="mode has no Triton lowering: runs on numpy")
def _mode_indices(x, dim):
    if x.ndim == 0:
        return np.zeros((), np.int64)
    rows = np.moveaxis(x, dim, -1)
    flat = rows.reshape(-1, rows.shape[-1])
    found = np.array([_mode_index(r) for r in flat], np.int64).reshape(rows.shape[:-1] + (1,))
    return np.moveaxis(found, -1, dim)


def mode(x: Tensor, dim: int = -1, keepdim: bool = False) -> ValuesIndices:
    """torch.mode: (values, indices) of the most frequent value along dim (the smallest on a tie; the index of its
    last occurrence); gradients flow to that element."""
    if x.ndim and meta.specialized_size(x, meta.norm_dim(dim, x.ndim)) == 0:
        raise op_error("mode", f"mode(): Expected reduction dim {dim} to have non-zero size.", (x,), IndexError)
    indices = _mode_indices(x, dim)
    if not x.ndim:
        return ValuesIndices(clone(x), indices)
    d = meta.norm_dim(dim, x.ndim)
    values = gather(x, d, indices)
    if not keepdim:
        indices, values = squeeze(indices, d), squeeze(values, d)
    return ValuesIndices(values, indices)


_INTERPOLATIONS = ("linear", "lower", "higher", "midpoint", "nearest")


def _quantile(name: str, x: Tensor, q, dim, keepdim: bool, interpolation: str, skip_nan: bool) -> Tensor:
    if not x.dtype.is_floating_point:
        raise op_error(name, f"{name}() input tensor must be either float or double dtype", (x,))
    if interpolation not in _INTERPOLATIONS:
        raise op_error(name, f"{name}() interpolation must be one of linear, lower, higher, midpoint or nearest. "
                       f"Got {interpolation}", (x,))
    scalar_q = not isinstance(q, Tensor)
    if scalar_q:
        if not 0 <= q <= 1:
            raise op_error(name, f"{name}() q must be in the range [0, 1] but got {q}", (x,))
        q = tensor([float(q)], dtype=x.dtype)
    else:
        if q.dtype is not x.dtype:
            raise op_error(name, f"{name}() q tensor must be same dtype as the input tensor", (x, q))
        if q.ndim > 1:
            raise op_error(name, f"{name}() q must be a scalar or 1D tensor", (x, q))
        scalar_q = q.ndim == 0
        q = reshape(q, (-1,))
    src = reshape(x, (-1,)) if dim is None else x
    d = 0 if dim is None else meta.norm_dim(dim, x.ndim)
    if src.ndim == 0:
        src, d = reshape(src, (1,)), 0
    if meta.specialized_size(src, d) == 0:
        raise op_error(name, f"{name}() input tensor must be non-empty", (x,))
    ordered = movedim(sort(src, d).values, d, -1)  # [..., n], NaN last
    n = ordered.shape[-1]
    nan = isnan(ordered)
    count = sum(logical_not(nan), -1, keepdim=True) if skip_nan else None
    span = (count - 1) if skip_nan else n - 1
    rank = expand(reshape(q, (-1,) + (1,) * ordered.ndim) * span, q.shape[0], *ordered.shape[:-1], 1)  # [Q, ..., 1]
    lead = expand(unsqueeze(ordered, 0), q.shape[0], *ordered.shape)
    below, above = floor(rank), ceil(rank)
    if interpolation == "nearest":
        below = above = round(rank)
    elif interpolation == "lower":
        above = below
    elif interpolation == "higher":
        below = above

    def at(position):
        return gather(lead, -1, cast(clamp(position, min=0), dtypes.int64))
    low, high = at(below), at(above)
    if interpolation == "midpoint":
        out = low + (high - low) * 0.5
    elif interpolation == "linear":
        out = lerp(low, high, rank - below)
    else:
        out = low
    if not skip_nan:  # any NaN in a row makes its quantiles NaN, as torch
        out = where(any(nan, -1, keepdim=True), float("nan"), out)
    out = squeeze(out, -1)  # [Q, ...]
    if keepdim:
        out = unsqueeze(out, d + 1) if dim is not None else reshape(out, (q.shape[0],) + (1,) * x.ndim)
    return squeeze(out, 0) if scalar_q else out


def quantile(x: Tensor, q, dim: int | None = None, keepdim: bool = False, *, interpolation: str = "linear") -> Tensor:
    """torch.quantile: the q-th quantiles of x over dim (all elements by default), interpolated between the sorted
    neighbours as `interpolation` says; q a number or a 1-d tensor (whose dim comes first in the result). A NaN makes
    a row's quantiles NaN."""
    return _quantile("quantile", x, q, dim, keepdim, interpolation, skip_nan=False)


def nanquantile(x: Tensor, q, dim: int | None = None, keepdim: bool = False, *,
                interpolation: str = "linear") -> Tensor:
    """torch.nanquantile: quantile over the non-NaN elements (NaN only where all are NaN)."""
    return _quantile("nanquantile", x, q, dim, keepdim, interpolation, skip_nan=True)


def _searchsorted_parse(sorted_sequence, values, *, out_int32: bool = False, right: bool = False,
                        side: str | None = None, sorter=None):
    if side not in (None, "left", "right"):
        raise ValueError(f"torch.searchsorted(): side can only be 'left' or 'right' but got {side}")
    if side is not None and right and side == "left":
        raise ValueError("torch.searchsorted(): side and right can't be set to opposites, got side of left while "
                         "right was True")
    inputs = (sorted_sequence, values) + ((sorter,) if sorter is not None else ())
    return inputs, {"right": bool(right or side == "right"), "out_int32": bool(out_int32)}


def _searchsorted_infer(boundaries, values, *sorter, right, out_int32):
    shape = meta.shape_of(values)
    if boundaries.ndim > 1 and tuple(boundaries.shape[:-1]) != shape[:-1]:
        raise ValueError(f"torch.searchsorted(): boundaries tensor should be 1 dimension or the first N-1 dimensions "
                         f"of boundaries tensor and input value tensor must match, but we got boundaries tensor "
                         f"{list(boundaries.shape)} and input value tensor {list(shape)}")
    return shape, dtypes.int32 if out_int32 else dtypes.int64


@op("searchsorted", OTHER, _searchsorted_infer, parse=_searchsorted_parse,
    fallback="a binary search has no Triton lowering: runs on numpy")
def searchsorted(boundaries, values, *sorter, right, out_int32):
    """torch.searchsorted(sorted_sequence, values, *, out_int32=False, right=False, side=None, sorter=None): for
    each value, the index in its row of sorted_sequence (1-d: the one row) where it would be inserted to keep the
    row sorted (after equal elements with right=True or side='right')."""
    if sorter:
        boundaries = np.take_along_axis(boundaries, sorter[0], -1)
    side = "right" if right else "left"
    values = np.asarray(values)
    if boundaries.ndim <= 1:
        out = np.searchsorted(boundaries.reshape(-1), values, side)
    else:
        rows, cols = boundaries.reshape(-1, boundaries.shape[-1]), values.reshape(-1, values.shape[-1])
        out = np.stack([np.searchsorted(r, c, side) for r, c in zip(rows, cols)]).reshape(values.shape)
    return out.astype(np.int32 if out_int32 else np.int64)


def bucketize(x, boundaries: Tensor, *, out_int32: bool = False, right: bool = False) -> Tensor:
    """torch.bucketize: the index of the bucket of 1-d boundaries each element of x falls in (boundaries[i-1] < x
    <= boundaries[i], or boundaries[i-1] <= x < boundaries[i] with right=True)."""
    if boundaries.ndim != 1:
        raise op_error("bucketize", f"boundaries tensor must be 1 dimension, but got dim({boundaries.ndim})",
                       (x, boundaries))
    return searchsorted(boundaries, x, out_int32=out_int32, right=right)


@op("isin", OTHER, lambda elements, test_elements, invert: (meta.shape_of(elements), dtypes.bool_),
    parse=lambda elements, test_elements, *, assume_unique=False, invert=False: (
        (elements, test_elements), {"invert": bool(invert)}),
    fallback="isin has no Triton lowering: runs on numpy")
def isin(elements, test_elements, invert):
    """torch.isin(elements, test_elements, *, assume_unique=False, invert=False): whether each element is among
    test_elements (or not, with invert=True)."""
    return np.isin(elements, test_elements, invert=invert)


def _made(array: np.ndarray) -> Tensor:
    return Tensor._make(array, dtypes.from_numpy_dtype(array.dtype))


def unique(x: Tensor, sorted: bool = True, return_inverse: bool = False, return_counts: bool = False,  # noqa: A002
           dim: int | None = None):
    """torch.unique: x's distinct elements (or distinct slices along dim), sorted; with the inverse indices and the
    counts when asked. Its size depends on x's values: inside graphc.compile that is a graph break."""
    data = x._host()
    axis = None if dim is None else meta.norm_dim(dim, x.ndim)
    values, inverse, counts = np.unique(data, return_inverse=True, return_counts=True, axis=axis, equal_nan=False)
    inverse = inverse.reshape(data.shape if axis is None else data.shape[axis])
    out = (_made(values.astype(data.dtype)),)
    if return_inverse:
        out += (_made(inverse.astype(np.int64)),)
    if return_counts:
        out += (_made(counts.astype(np.int64)),)
    return out[0] if len(out) == 1 else out


def unique_consecutive(x: Tensor, return_inverse: bool = False, return_counts: bool = False, dim: int | None = None):
    """torch.unique_consecutive: x with each run of equal consecutive elements (or slices along dim) kept once;
    with the inverse indices and the run lengths when asked. A graph break inside graphc.compile, as unique."""
    data = x._host()
    rows = data.reshape(-1, 1) if dim is None else np.moveaxis(data, meta.norm_dim(dim, x.ndim), 0)
    rows = rows.reshape(len(rows), -1)
    starts = np.ones(len(rows), bool)
    if len(rows) > 1:
        starts[1:] = np.any(rows[1:] != rows[:-1], axis=1)
    runs = np.cumsum(starts) - 1
    kept = data.reshape(-1) if dim is None else np.moveaxis(data, meta.norm_dim(dim, x.ndim), 0)
    values = kept[starts] if dim is None else np.moveaxis(kept[starts], 0, meta.norm_dim(dim, x.ndim))
    out = (_made(np.ascontiguousarray(values)),)
    if return_inverse:
        out += (_made(runs.reshape(data.shape if dim is None else len(rows)).astype(np.int64)),)
    if return_counts:
        out += (_made(np.diff(np.append(np.flatnonzero(starts), len(rows))).astype(np.int64)),)
    return out[0] if len(out) == 1 else out


def bincount(x: Tensor, weights: Tensor | None = None, minlength: int = 0) -> Tensor:
    """torch.bincount: how often each value of a 1-d non-negative integer x occurs (the summed weights, with
    weights), max(x) + 1 long (or minlength). Its size depends on x's values: inside graphc.compile that is a graph
    break."""
    if x.ndim != 1 or x.dtype.is_floating_point or x.dtype is dtypes.bool_ or (x.numel() and x.min().item() < 0):
        raise op_error("bincount", "bincount only supports 1-d non-negative integral inputs.", (x,))
    if weights is None:
        return _made(np.bincount(x._host(), minlength=minlength).astype(np.int64))
    if tuple(weights.shape) != tuple(x.shape):
        raise op_error("bincount", "weights should be 1-d and have the same length as input", (x, weights))
    dt = weights.dtype if weights.dtype.is_floating_point else dtypes.float64
    counts = np.bincount(x._host(), weights._host().astype(np.float64), minlength)
    return Tensor._make(counts.astype(dt.np), dt)


def _histc_parse(x, bins: int = 100, min: float = 0, max: float = 0):  # noqa: A002  torch's names
    if bins <= 0:
        raise ValueError(f"torch.histc(): bins must be > 0, but got {bins} for dim 0")
    if min > max:
        raise ValueError(f"torch.histc(): max must be larger than min, but got min {min} max {max}")
    return (x,), {"bins": int(bins), "low": float(min), "high": float(max)}


def _histc_infer(x, bins, low, high):
    if not x.dtype.is_floating_point:
        raise ValueError(f"torch.histc: input tensor and bins must be of floating point type, got {x.dtype.name}")
    return (bins,), x.dtype


@op("histc", OTHER, _histc_infer, parse=_histc_parse, fallback="a histogram has no Triton lowering: runs on numpy")
def histc(x, bins, low, high):
    """torch.histc(input, bins=100, min=0, max=0): counts of x's elements in `bins` equal bins over [min, max]
    (elements outside are not counted; min = max = 0 takes x's own range, widened by 1 each way if flat)."""
    values = x[~np.isnan(x)].astype(np.float64)
    if low == high and values.size:
        low, high = values.min(), values.max()
    if low == high:
        low, high = low - 1, high + 1
    return np.histogram(values, bins, (low, high))[0].astype(x.dtype)


__all__ = ["argsort", "sort", "topk", "msort", "cummax", "cummin", "mode", "median", "nanmedian", "kthvalue",
           "quantile", "nanquantile", "searchsorted", "bucketize", "isin", "unique", "unique_consecutive", "bincount",
           "histc"]
