"""Reductions over dims (sum, mean, amax, ...) and the shape-relative helpers their gradients use."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..dispatch import OTHER, REDUCTION, op
from . import meta
from .elementwise import eq
from .meta import reduction_parse
from .view import expand_as, unsqueeze


def keepdim_grad(g, c):
    """A reduction's incoming gradient broadcast back over the input's shape."""
    if not c.attrs["keepdim"]:
        for d in c.attrs["dim"]:
            g = unsqueeze(g, d)
    return expand_as(g, c.inputs[0])


def _reduce_infer(x, dim, keepdim, **_):
    return meta.reduced(tuple(x.shape), dim, keepdim), x.dtype


def _sum_infer(x, dim, keepdim):
    return meta.reduced(tuple(x.shape), dim, keepdim), (x.dtype if x.dtype.is_floating_point else dtypes.int64)


sum = op("sum", REDUCTION, _sum_infer, parse=reduction_parse, triton="tl.sum",
         backward=lambda c, g: (keepdim_grad(g, c),))(lambda x, dim, keepdim: np.sum(x, axis=dim, keepdims=keepdim))


def _mean_infer(x, dim, keepdim):
    if not x.dtype.is_floating_point:
        raise TypeError(f"mean: expected a floating point input, got {x.dtype.name}")
    return _reduce_infer(x, dim, keepdim)


mean = op("mean", REDUCTION, _mean_infer, parse=reduction_parse, triton="tl.sum",
          backward=lambda c, g: (keepdim_grad(g, c) / numel_of(c.inputs[0], c.attrs["dim"]),))(
    lambda x, dim, keepdim: np.mean(x, axis=dim, keepdims=keepdim))


def _extreme_backward(c, g):
    """Gradient of amax/amin: shared evenly among the elements equal to the extreme, as torch does."""
    x = c.inputs[0]
    hits = eq(x, keepdim_grad(c.out, c))
    count = sum(hits, dim=c.attrs["dim"], keepdim=True)
    return (keepdim_grad(g, c) * hits / count,)


amax = op("amax", REDUCTION, _reduce_infer, parse=reduction_parse, triton="tl.max", backward=_extreme_backward)(
    lambda x, dim, keepdim: np.amax(x, axis=dim, keepdims=keepdim))
amin = op("amin", REDUCTION, _reduce_infer, parse=reduction_parse, triton="tl.min", backward=_extreme_backward)(
    lambda x, dim, keepdim: np.amin(x, axis=dim, keepdims=keepdim))


def _numel_infer(x, dim):
    return (), dtypes.int64


@op("numel", OTHER, _numel_infer, parse=lambda x, dim=None: ((x,), {"dim": meta.norm_dims(dim, x.ndim)}))
def numel_of(x, dim):
    """Number of elements of x over dims, as a 0-d int64 tensor computed from x's runtime shape."""
    return np.array(int(np.prod([x.shape[d] for d in dim], dtype=np.int64)))


def _sum_to_infer(g, x):
    shape = tuple(x.shape)
    if meta.broadcast(tuple(g.shape), shape) != tuple(g.shape):
        raise ValueError(f"cannot sum a gradient of shape {list(g.shape)} to shape {list(shape)}")
    return shape, g.dtype


@op("sum_to", REDUCTION, _sum_to_infer, triton="tl.sum",
    backward=lambda c, g: (expand_as(g, c.inputs[0]), None))
def sum_to(g, x):
    """g summed over the dims that broadcasting added or stretched, giving x's shape (gradient of broadcasting)."""
    lead = g.ndim - x.ndim
    dims = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(x.shape) if n == 1 and g.shape[lead + i] != 1)
    return np.sum(g, axis=dims).reshape(x.shape) if dims else g

__all__ = ["sum", "mean", "amax", "amin"]
