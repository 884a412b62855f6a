"""Reductions over dims (sum, mean, amax, ...) and the shape-relative helpers their gradients use."""
from __future__ import annotations

import builtins
import math
from typing import NamedTuple

import ml_dtypes
import numpy as np

from .. import dtypes
from ..amp.autocast_mode import FP32, FP32_CUDA, autocast_policy
from ..dispatch import OTHER, OUT, REDUCTION, Lowering, op
from ..errors import op_error
from ..tensor import Tensor
from . import meta
from .creation import zeros
from .elementwise import abs, cast, eq, exp, log, logical_and, maximum, minimum, sign, sqrt, where
from .meta import reduction_parse
from .view import clone, expand_as, squeeze, unsqueeze


def keepdim_grad(g, c):
    """A reduction's incoming gradient broadcast back over the input's shape."""
    if not c.attrs["keepdim"]:
        for d in c.attrs["dim"]:
            g = unsqueeze(g, d)
    return expand_as(g, c.inputs[0])


def _reducer(ufunc):
    """The numpy implementation of a reduction: ufunc.reduce over dims (faster than np.sum and friends)."""
    return lambda x, dim, keepdim: ufunc.reduce(x, dim, None, None, keepdim)


def _count(shape: tuple, dims: tuple) -> int:
    count = 1
    for d in dims:
        count *= shape[d]
    return count


def _reduce_infer(x, dim, keepdim, **_):
    return meta.reduced(tuple(x.shape), dim, keepdim), x.dtype


def _nonempty(name: str, x, dim, dims: tuple) -> None:
    """torch's refusal of a reduction without identity (max, min, argmax, ...) over an empty dim: IndexError, or
    without a dim on an empty x, RuntimeError (ValueError here, which dispatch reports as one; argmax's is an
    IndexError)."""
    shape = tuple(x.shape)
    if dim is None and 0 in shape:
        if name.startswith("arg"):
            raise IndexError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0.")
        raise ValueError(f"{name}(): Expected reduction dim to be specified for input.numel() == 0. Specify the "
                         f"reduction dim with the 'dim' argument.")
    for d in dims:
        if shape[d] == 0:
            raise IndexError(f"{name}(): Expected reduction dim {d} to have non-zero size.")


def _extreme_parse(name: str):
    def parse(x, dim=None, keepdim: bool = False):
        inputs, attrs = reduction_parse(x, dim, keepdim)
        _nonempty(name, x, dim, attrs["dim"])
        return inputs, attrs
    return parse


def _sum_infer(x, dim, keepdim, dtype=None):
    if dtype is None:
        dtype = x.dtype if x.dtype.is_floating_point else dtypes.int64
    return meta.reduced(tuple(x.shape), dim, keepdim), dtype


def _with_dtype(x: Tensor, dtype) -> Tensor:
    """x cast to torch's dtype= argument of a reduction (the input is cast before reducing)."""
    return x if dtype is None or dtypes.to_dtype(dtype) is x.dtype else cast(x, dtype)


def _cast_reduction_parse(x, dim=None, keepdim: bool = False, *, dtype=None):
    """reduction_parse plus torch's dtype=."""
    return reduction_parse(_with_dtype(x, dtype), dim, keepdim)


def _sum_parse(x, dim=None, keepdim: bool = False, *, dtype=None):
    """_cast_reduction_parse, keeping an integer or bool dtype= as the result's dtype (attr dtype): torch's
    sum(dtype=torch.int16) is int16, where a sum of int16 values is int64."""
    inputs, attrs = _cast_reduction_parse(x, dim, keepdim, dtype=dtype)
    if dtype is not None and not dtypes.to_dtype(dtype).is_floating_point:
        attrs["dtype"] = dtypes.to_dtype(dtype)
    return inputs, attrs


def _integer_promoting(ufunc):
    """ufunc.reduce over dims, accumulating bool and integer inputs in int64 (torch's sum/prod of integers), the
    result cast to dtype when given (wrapping as torch's)."""
    def forward(x, dim, keepdim, dtype=None):
        out = ufunc.reduce(x, dim, np.int64 if x.dtype.kind in "biu" else None, None, keepdim)
        return out if dtype is None else out.astype(dtype.np)
    return forward


sum = op("sum", REDUCTION, _sum_infer, parse=_sum_parse, lowering=Lowering(reduce="sum"), saves=(),
         autocast=FP32_CUDA,
         backward=lambda c, g: (keepdim_grad(g, c),),
         onnx=lambda g, n: g.reduce("ReduceSum", n))(_integer_promoting(np.add))


def _prod_backward(c, g):
    """d prod / d x_i is the product of the others: prod/x_i without zeros, the product of the non-zero others at
    the one zero of a slice, 0 elsewhere (computed without dividing by zero, so anomaly mode stays quiet)."""
    x, dim = c.inputs[0], c.attrs["dim"]
    zero = eq(x, 0)
    zeros = sum(zero, dim, keepdim=True)
    safe = where(zero, 1.0, x)
    nonzero_prod = prod(safe, dim, keepdim=True)
    others = where(eq(zeros, 0), nonzero_prod / safe, where(logical_and(zero, eq(zeros, 1)), nonzero_prod, 0.0))
    return (keepdim_grad(g, c) * others,)


prod = op("prod", REDUCTION, _sum_infer, parse=_sum_parse, backward=_prod_backward, saves=(0, OUT),
           autocast=FP32)(
    _integer_promoting(np.multiply))


def _mean_infer(x, dim, keepdim):
    if not x.dtype.is_floating_point:
        raise ValueError(f"could not infer output dtype: the input must be floating point, got {x.dtype.name}")
    return _reduce_infer(x, dim, keepdim)


mean = op("mean", REDUCTION, _mean_infer, parse=_cast_reduction_parse, saves=(),
          lowering=Lowering(reduce="sum", finish="{0} / {count}"),
          backward=lambda c, g: (keepdim_grad(g, c) / numel_of(c.inputs[0], c.attrs["dim"]),),
          onnx=lambda g, n: g.reduce("ReduceMean", n))(
    lambda x, dim, keepdim: np.add.reduce(x, dim, None, None, keepdim) / _count(x.shape, dim))


def _extreme_backward(c, g):
    """Gradient of amax/amin: shared evenly among the elements equal to the extreme, as torch does."""
    x = c.inputs[0]
    hits = eq(x, keepdim_grad(c.out, c))
    count = sum(hits, dim=c.attrs["dim"], keepdim=True)
    return (keepdim_grad(g, c) * hits / count,)


amax = op("amax", REDUCTION, _reduce_infer, parse=_extreme_parse("amax"), backward=_extreme_backward,
           lowering=Lowering(reduce="max"),
          saves=(0, OUT), onnx=lambda g, n: g.reduce("ReduceMax", n))(
    _reducer(np.maximum))
amin = op("amin", REDUCTION, _reduce_infer, parse=_extreme_parse("amin"), backward=_extreme_backward,
           lowering=Lowering(reduce="min"),
          saves=(0, OUT), onnx=lambda g, n: g.reduce("ReduceMin", n))(
    _reducer(np.minimum))


def _truth_infer(x, dim, keepdim):
    return meta.reduced(tuple(x.shape), dim, keepdim), dtypes.bool_


all = op("all", REDUCTION, _truth_infer, parse=reduction_parse)(_reducer(np.logical_and))
any = op("any", REDUCTION, _truth_infer, parse=reduction_parse)(_reducer(np.logical_or))


def _cumsum_parse(x, dim: int, *, dtype=None):
    return (_with_dtype(x, dtype),), {"dim": meta.norm_dim(dim, x.ndim)}


def _cumsum_infer(x, dim):
    return tuple(x.shape), (x.dtype if x.dtype.is_floating_point else dtypes.int64)


def _scan(scan, x: np.ndarray, dim: int) -> np.ndarray:
    """np.cumsum or np.cumprod along dim with torch's CPU accumulator: int64 for bool and integers, float64 for
    floats (a float32 running sum past 1e8 keeps its units; a product passing through an overflow comes back)."""
    integer = x.dtype.kind in "biu"
    out = scan(x, axis=dim if x.ndim else None, dtype=np.int64 if integer else np.float64).reshape(x.shape)
    return out if integer else out.astype(x.dtype, copy=False)


def _running_sum(x: np.ndarray, dim: int) -> np.ndarray:
    return _scan(np.cumsum, x, dim)


_SCAN_FALLBACK = "a scan has no Triton lowering yet: runs on numpy"


@op("cumsum", OTHER, _cumsum_infer, parse=_cumsum_parse, backward=lambda c, g: (cumsum_reversed(g, **c.attrs),),
    fallback=_SCAN_FALLBACK, saves=())
def cumsum(x, dim):
    """torch.cumsum: running sums along dim (bool and integer inputs sum in int64)."""
    return _running_sum(x, dim)


@op("cumsum_reversed", OTHER, _cumsum_infer, backward=lambda c, g: (cumsum(g, c.attrs["dim"]),),
    fallback=_SCAN_FALLBACK, saves=())
def cumsum_reversed(x, dim):
    """Running sums along dim from the far end: the gradient of cumsum."""
    axis = dim if x.ndim else None
    return np.flip(_running_sum(np.flip(x, axis), dim), axis)


def _cumprod_backward(c, g):
    return (cumprod_grad(g, c.inputs[0], c.out, dim=c.attrs["dim"]),)


@op("cumprod", OTHER, _cumsum_infer, parse=_cumsum_parse, backward=_cumprod_backward,
    fallback=_SCAN_FALLBACK)
def cumprod(x, dim):
    """torch.cumprod: running products along dim (bool and integer inputs multiply in int64)."""
    return _scan(np.cumprod, x, dim)


@op("cumprod_grad", OTHER, lambda g, x, out, dim: (tuple(x.shape), g.dtype),
    fallback=_SCAN_FALLBACK)
def cumprod_grad(g, x, out, dim):
    """The gradient of cumprod, exact where x has zeros: d out_j / d x_i is the product of x_0..x_j without x_i, so
    grad_i = (x_0 * .. * x_(i-1)) * S_i with S_i = g_i + x_(i+1) * S_(i+1), a scan from the far end."""
    if x.ndim == 0 or x.shape[dim] == 0:
        return g
    g, x = np.moveaxis(g, dim, 0), np.moveaxis(x, dim, 0)
    before = np.concatenate([np.ones_like(x[:1]), np.cumprod(x[:-1], axis=0)])
    tail = np.empty_like(g)
    tail[-1] = g[-1]
    for i in range(len(x) - 2, -1, -1):
        tail[i] = g[i] + x[i + 1] * tail[i + 1]
    return np.moveaxis(before * tail, 0, dim)


def _numel_infer(x, dim):
    return (), dtypes.int64


@op("numel", OTHER, _numel_infer, parse=lambda x, dim=None: ((x,), {"dim": meta.reduced_dims(dim, x.ndim)}),
    shape_inputs=(0,))
def numel_of(x, dim):
    """Number of elements of x over dims, as a 0-d int64 tensor computed from x's runtime shape."""
    return np.array(_count(x.shape, dim))


def _sum_to_infer(g, x):
    shape = tuple(x.shape)
    if meta.broadcast(tuple(g.shape), shape) != tuple(g.shape):
        raise ValueError(f"cannot sum a gradient of shape {list(g.shape)} to shape {list(shape)}")
    return shape, g.dtype


def _sum_to_dims(shapes: tuple) -> tuple:
    """The dims of a gradient of shape shapes[0] that sum_to reduces to reach shapes[1]."""
    g, x = shapes
    lead = len(g) - len(x)
    return tuple(range(lead)) + tuple(lead + i for i, n in enumerate(x) if n == 1 and g[lead + i] != 1)


@op("sum_to", REDUCTION, _sum_to_infer, lowering=Lowering(reduce="sum", reduce_dims=_sum_to_dims), saves=(),
    backward=lambda c, g: (expand_as(g, c.inputs[0]), None), shape_inputs=(1,))
def sum_to(g, x):
    """g summed over the dims that broadcasting added or stretched, giving x's shape (gradient of broadcasting)."""
    dims = _sum_to_dims((g.shape, x.shape))
    return np.add.reduce(g, dims).reshape(x.shape) if dims else g


def _arg_parse(name: str):
    def parse(x, dim=None, keepdim: bool = False):
        dim = None if dim is None else meta.norm_dim(dim, x.ndim)
        _nonempty(name, x, dim, () if dim is None or not x.ndim else (dim,))
        return (x,), {"dim": dim, "keepdim": bool(keepdim)}
    return parse


def _arg_infer(x, dim, keepdim):
    if dim is None:
        return ((1,) * x.ndim if keepdim else ()), dtypes.int64
    return meta.reduced(tuple(x.shape), (dim,) if x.ndim else (), keepdim), dtypes.int64


argmax = op("argmax", OTHER, _arg_infer, parse=_arg_parse("argmax"))(
    lambda x, dim, keepdim: np.argmax(x, axis=dim, keepdims=keepdim))
argmin = op("argmin", OTHER, _arg_infer, parse=_arg_parse("argmin"))(
    lambda x, dim, keepdim: np.argmin(x, axis=dim, keepdims=keepdim))


class ValuesIndices(NamedTuple):
    """torch.return_types.max/min/sort/topk: values along a dim and their indices."""

    values: Tensor
    indices: Tensor


def evenly_distributed(x: Tensor, value: Tensor) -> Tensor:
    """value, a statistic of all of x's elements that one of them equals (max, min, median), carrying torch's
    gradient of it: shared evenly among the elements equal to it, or the NaN ones where it is NaN. Adding
    x - x.detach() (exactly 0) to the detached value carries it without changing the value."""
    if not x.requires_grad:
        return value
    from .elementwise import isnan, logical_or
    from .view import reshape

    value, flat = value.detach(), reshape(x, (-1,))
    hits = logical_or(eq(flat, value), logical_and(isnan(flat), isnan(value)))
    return value + sum(where(hits, flat - flat.detach(), 0.0)) / sum(hits)


def _extreme(x: Tensor, dim, keepdim: bool, reduce, arg, elementwise) -> Tensor | ValuesIndices:
    if isinstance(dim, Tensor):
        return elementwise(x, dim)
    if dim is None:  # torch's evenly distributed gradient (amax's is NaN where the max is)
        return evenly_distributed(x, reduce(x))
    from .indexing import gather

    indices = arg(x, dim, keepdim=True)
    values = gather(x, dim, indices) if x.ndim else clone(x)  # a new tensor, as torch's
    if not keepdim and x.ndim:
        indices, values = squeeze(indices, dim), squeeze(values, dim)
    return ValuesIndices(values, indices)


def max(x: Tensor, dim=None, keepdim: bool = False) -> Tensor | ValuesIndices:
    """torch.max: the largest element; with dim, (values, indices) along it; with a tensor, the elementwise maximum."""
    return _extreme(x, dim, keepdim, amax, argmax, maximum)


def min(x: Tensor, dim=None, keepdim: bool = False) -> Tensor | ValuesIndices:
    """torch.min: the smallest element; with dim, (values, indices) along it; with a tensor, the elementwise minimum."""
    return _extreme(x, dim, keepdim, amin, argmin, minimum)


def var(x: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None) -> Tensor:
    """torch.var: mean squared deviation over dim, divided by N - correction (correction=1 unless unbiased=False)."""
    if isinstance(dim, bool) and unbiased is None:  # var(x, False): the old positional unbiased
        dim, unbiased = None, dim
    correction = correction if correction is not None else (0 if unbiased is False else 1)
    if x.dtype.is_low_precision:  # the sum of squares in float32, as torch's kernel accumulates (float16 overflows)
        return var(x.float(), dim, keepdim=keepdim, correction=correction).to(x.dtype)
    centered = x - mean(x, dim, keepdim=True)
    # divided by max(N - correction, 0), as torch's: an empty reduction is 0 / 0 = NaN, not 0 / -1
    return sum(centered * centered, dim, keepdim) / maximum(numel_of(x, dim) - correction, 0)


def std(x: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None) -> Tensor:
    """torch.std: the square root of var. Where the variance is 0 (a constant input) the gradient is 0, as torch's
    std_backward masks it, not the NaN of sqrt's gradient at 0 times var's 0: sqrt sees 1 there, and where() gives
    0, so no NaN is made even in the branch it drops."""
    if x.dtype.is_low_precision:  # the root of the float32 variance, rounded once (float16's variance overflows)
        return std(x.float(), dim, unbiased, keepdim, correction=correction).to(x.dtype)
    v = var(x, dim, unbiased, keepdim, correction=correction)
    zero = eq(v, 0)
    return where(zero, 0.0, sqrt(where(zero, 1.0, v)))


def _vector_norm_backward(c, g):
    """d||x||_p / dx = sign(x) (|x| / ||x||)^(p-1); 0 where x is 0 (as torch), computed without making NaN there."""
    x, p = c.inputs[0], c.attrs["p"]
    zero = eq(x, 0)
    ratio = where(zero, 1.0, abs(x) / where(zero, 1.0, keepdim_grad(c.out, c)))
    return (keepdim_grad(g, c) * sign(x) * ratio ** (p - 1),)


def _vector_norm_forward(x, p, dim, keepdim):
    return np.power(np.add.reduce(np.abs(x) ** p, dim, None, None, keepdim), 1 / p)


_vector_norm = op("vector_norm", REDUCTION, lambda x, p, dim, keepdim: _mean_infer(x, dim, keepdim),
                  backward=_vector_norm_backward, saves=(0, OUT))(_vector_norm_forward)


def vector_norm(x: Tensor, ord=2, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A002
    """torch.linalg.vector_norm: (sum |x|^ord)^(1/ord) over dim (all dims by default); ord inf/-inf is max/min |x|,
    0 the count of non-zeros. The gradient at x = 0 is 0, as torch's. RuntimeError for an integer input."""
    x = _with_dtype(x, dtype)
    if not x.dtype.is_floating_point:
        raise op_error("linalg.vector_norm", "Expected a floating point or complex tensor as input. Got "
                       f"{x.dtype.name}", (x,))
    if isinstance(ord, bool) or not isinstance(ord, (int, float)):
        raise op_error("linalg.vector_norm", f"ord must be a number, got {ord!r}", (x,), TypeError)
    dim = meta.reduced_dims(dim, x.ndim)
    keepdim = bool(keepdim)
    if math.isinf(ord) and 0 in (x.shape[d] for d in dim):
        empty = next(d for d in dim if x.shape[d] == 0)
        raise op_error("linalg.vector_norm", f"cannot compute the {ord} norm on the dimension {empty} because this "
                       f"dimension is empty and the operation does not have an identity", (x,))
    if ord == math.inf:
        return amax(abs(x), dim, keepdim)
    if ord == -math.inf:
        return amin(abs(x), dim, keepdim)
    if ord == 0:  # the count of non-zeros, with torch's zero gradient
        return sum(where(x != 0, 1.0, x * 0), dim, keepdim)
    if ord == 1:
        return sum(abs(x), dim, keepdim)
    return _vector_norm(x, p=float(ord), dim=dim, keepdim=keepdim)


@autocast_policy(FP32_CUDA)
def norm(x: Tensor, p="fro", dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    """torch.norm: the p-norm of x over dim (all dims by default) as a vector norm; 'fro' is p=2."""
    if isinstance(p, str) and p != "fro":
        raise ValueError(f"norm: p={p!r} is not supported; graphc computes vector p-norms (a number, inf or 'fro'); "
                         "graphc.linalg.matrix_norm computes 'nuc'")
    return vector_norm(x, 2 if p == "fro" else p, dim, keepdim, dtype=dtype)


def renorm(x: Tensor, p: float, dim: int, maxnorm: float) -> Tensor:
    """torch.renorm: each slice of x along dim whose p-norm exceeds maxnorm scaled down to norm maxnorm (by
    maxnorm / (norm + 1e-7), torch's factor); the others unchanged."""
    if p <= 0:
        raise op_error("renorm", f"non-positive-norm not supported (p={p})", (x,))
    if x.ndim < 2:
        raise op_error("renorm", f"input needs at least 2 dimensions, got {x.ndim} dimensions", (x,))
    if maxnorm < 0:
        raise op_error("renorm", f"non-negative maxnorm expected, got {maxnorm}", (x,))
    d = meta.norm_dim(dim, x.ndim)
    norms = norm(x, p, tuple(i for i in range(x.ndim) if i != d), keepdim=True)
    return x * where(norms > maxnorm, maxnorm / (norms + 1e-7), 1.0)


def _row_max(x: Tensor, dim) -> Tensor:
    """amax over dim (kept), detached: subtracting it keeps exp from overflowing and leaves the result unchanged.
    An empty row has no max and needs no shift: zeros (torch's softmax of it is empty, its logsumexp -inf); a
    compiled plan is then specialised to the empty size, so it never shifts a non-empty row by 0."""
    dims = meta.reduced_dims(dim, x.ndim)
    if 0 in (x.shape[d] for d in dims):
        for d in dims:
            meta.specialized_size(x, d)
        return zeros(meta.reduced(tuple(x.shape), dims, True), dtype=x.dtype)
    return amax(x, dim, keepdim=True).detach()


@autocast_policy(FP32_CUDA)
def logsumexp(x: Tensor, dim, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x), dim)) computed stably: the max is subtracted before exp and added back. Integer and bool
    inputs give the default float dtype, as torch's."""
    if not x.dtype.is_floating_point:
        x = cast(x, dtypes.get_default_dtype())
    m = _row_max(x, dim)
    m = where(eq(abs(m), float("inf")), 0.0, m)  # an all -inf row gives -inf, not nan
    out = log(sum(exp(x - m), dim, keepdim=True)) + m
    return out if keepdim else squeeze(out, dim)


def _softmax_input(name: str, x: Tensor, dim, dtype) -> Tensor:
    if dim is None:
        raise TypeError(f"{name}: dim must be an int, got None")
    try:
        meta.norm_dim(dim, x.ndim)
    except IndexError as e:
        raise op_error(name, str(e), (x,), IndexError) from None
    return x if dtype is None else x.to(dtype)


@autocast_policy(FP32_CUDA)
def softmax(x: Tensor, dim: int, dtype=None) -> Tensor:
    """exp(x) / sum(exp(x), dim), stabilised by subtracting the max along dim."""
    x = _softmax_input("softmax", x, dim, dtype)
    e = exp(x - _row_max(x, dim))
    return e / sum(e, dim, keepdim=True)


@autocast_policy(FP32_CUDA)
def log_softmax(x: Tensor, dim: int, dtype=None) -> Tensor:
    """x - logsumexp(x, dim), stabilised by subtracting the max along dim."""
    x = _softmax_input("log_softmax", x, dim, dtype)
    shifted = x - _row_max(x, dim)
    return shifted - log(sum(exp(shifted), dim, keepdim=True))


def nansum(x: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """torch.nansum: sum over dim with NaN counted as 0 (and given no gradient)."""
    from .elementwise import isnan
    return sum(where(isnan(x), 0, x), dim, keepdim, dtype=dtype)


def nanmean(x: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """torch.nanmean: the mean over dim of the non-NaN elements (NaN where all are NaN); float inputs only."""
    from .elementwise import isnan, logical_not
    x = _with_dtype(x, dtype)
    if not x.dtype.is_floating_point:
        raise op_error("nanmean", f"nanmean(): expected input to have floating point or complex dtype but got "
                       f"{x.dtype.name}", (x,))
    return nansum(x, dim, keepdim) / sum(logical_not(isnan(x)), dim, keepdim)


def var_mean(x: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
             correction=None) -> tuple[Tensor, Tensor]:
    """torch.var_mean: (var(x, ...), mean(x, dim, keepdim)) with var's arguments."""
    if isinstance(dim, bool) and unbiased is None:
        dim, unbiased = None, dim
    return var(x, dim, unbiased, keepdim, correction=correction), mean(x, dim, keepdim)


def std_mean(x: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *,
             correction=None) -> tuple[Tensor, Tensor]:
    """torch.std_mean: (std(x, ...), mean(x, dim, keepdim)) with std's arguments."""
    if isinstance(dim, bool) and unbiased is None:
        dim, unbiased = None, dim
    return std(x, dim, unbiased, keepdim, correction=correction), mean(x, dim, keepdim)


def count_nonzero(x: Tensor, dim=None) -> Tensor:
    """torch.count_nonzero: the number of non-zero elements over dim (all dims by default), int64."""
    from .elementwise import ne
    return sum(ne(x, 0), dim)


class MinMax(NamedTuple):
    """torch.return_types.aminmax."""

    min: Tensor
    max: Tensor


def aminmax(x: Tensor, *, dim: int | None = None, keepdim: bool = False) -> MinMax:
    """torch.aminmax: (amin, amax) over dim (all dims by default)."""
    if dim is None and x.numel() == 0:  # with a dim, amin refuses an empty one (IndexError), as torch's aminmax
        raise op_error("aminmax", "cannot compute aminmax over an empty dimension as the operation has no identity",
                       (x,), RuntimeError)
    return MinMax(amin(x, dim, keepdim), amax(x, dim, keepdim))


def trace(x: Tensor) -> Tensor:
    """torch.trace: the sum of a matrix's main diagonal (integers sum in int64)."""
    from .layout import diagonal
    if x.ndim != 2:
        raise op_error("trace", f"expected a matrix, but got tensor with dim {x.ndim}", (x,))
    return sum(diagonal(x))


def _logcumsumexp_backward(c, g):
    """torch's (after TensorFlow's math_grad): the gradient's positive and negative parts each summed in log space by
    a reversed logcumsumexp, so neither exp overflows."""
    from .layout import flip
    x, out, dim = c.inputs[0], c.out, c.attrs["dim"]
    lowest = float(ml_dtypes.finfo(out.dtype.np).min)

    def reversed_lcse(v):
        return flip(logcumsumexp(flip(v, (dim,)), dim), (dim,))

    positive = reversed_lcse(where(g > 0, log(where(g > 0, g, 1.0)), lowest) - out)
    negative = reversed_lcse(where(g < 0, log(where(g < 0, -g, 1.0)), lowest) - out)
    return (exp(positive + x) - exp(negative + x),)


def _logcumsumexp_infer(x, dim):
    return meta.floating(x)


@op("logcumsumexp", OTHER, _logcumsumexp_infer, parse=lambda x, dim: ((x,), {"dim": meta.norm_dim(dim, x.ndim)}),
    backward=_logcumsumexp_backward, saves=(0, OUT), fallback=_SCAN_FALLBACK)
def logcumsumexp(x, dim):
    """torch.logcumsumexp: log(cumsum(exp(x), dim)), accumulated with logaddexp (no overflow, no underflow to
    -inf of small leading terms)."""
    return np.logaddexp.accumulate(x, axis=dim) if x.ndim else x.copy()


def allclose(x: Tensor, other: Tensor, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
    """torch.allclose: whether |x - other| <= atol + rtol * |other| everywhere (broadcast), as a Python bool."""
    from .elementwise import isclose
    return bool(all(isclose(x, other, rtol, atol, equal_nan)))


def equal(x: Tensor, other: Tensor) -> bool:
    """torch.equal: whether x and other have the same shape and the same values (NaN is never equal)."""
    return tuple(x.shape) == tuple(other.shape) and bool(all(eq(x, other)))



def sum_to_size(x: Tensor, *size) -> Tensor:
    """torch.Tensor.sum_to_size: x summed over the dims that broadcasting `size` to x's shape would stretch or add,
    giving `size`. Raises RuntimeError if size does not broadcast to x's shape."""
    from .view import _sizes

    size = _sizes(size)
    lead = x.ndim - len(size)
    if lead < 0 or not builtins.all(n in (1, m) for n, m in zip(size, x.shape[lead:])):
        raise op_error("sum_to_size", f"size {list(size)} is not expandable to size {list(x.shape)}", (x,),
                       RuntimeError)
    dims = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(size) if n == 1 and x.shape[lead + i] != 1)
    return sum(x, dims, keepdim=True).reshape(size) if dims else x


__all__ = ["sum", "prod", "all", "any", "cumsum", "cumprod", "mean", "amax", "amin", "argmax", "argmin", "max", "min",
           "var", "std", "norm", "logsumexp", "softmax", "log_softmax", "allclose", "equal", "nansum", "nanmean",
           "var_mean", "std_mean", "count_nonzero", "aminmax", "trace", "logcumsumexp", "renorm"]
