"""Joining and splitting along a dim: cat, stack, split, chunk. Splits are views; cat's gradient is a view per input
whose bounds come from the inputs' runtime shapes, so captured graphs stay shape-generic. How many views a split
makes, and where each starts, depends on the split dim's size: a compiled function is specialised to it."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..dispatch import OTHER, VIEW, op
from ..errors import op_error
from ..tensor import Tensor
from . import meta
from .elementwise import cast
from .indexing import _FULL, getitem
from .view import unsqueeze


def _cat_parse(tensors, dim: int = 0):
    tensors = tuple(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    return tensors, {"dim": meta.norm_dim(dim, tensors[0].ndim)}


def _cat_infer(*tensors, dim):
    first = tuple(tensors[0].shape)
    total = 0
    for t in tensors:
        shape = tuple(t.shape)
        if len(shape) != len(first) or any(a != b for i, (a, b) in enumerate(zip(shape, first)) if i != dim):
            raise ValueError(f"sizes of tensors must match except in dim {dim}: got "
                             + " and ".join(str(list(x.shape)) for x in tensors))
        total += shape[dim]
    return first[:dim] + (total,) + first[dim + 1:], dtypes.result_type(*tensors)


def _cat_backward(c, g):
    grads = []
    for i, x in enumerate(c.inputs):
        part = cat_part(g, *c.inputs, dim=c.attrs["dim"], part=i) if x.requires_grad else None
        grads.append(part if part is None or part.dtype is x.dtype else cast(part, x.dtype))
    return tuple(grads)


@op("cat", OTHER, _cat_infer, parse=_cat_parse, backward=_cat_backward, saves=())
def cat(*arrays, dim):
    """torch.cat: tensors joined along an existing dim (dtypes promoted)."""
    return np.concatenate(arrays, axis=dim)


def _cat_part_infer(g, *tensors, dim, part):
    shape = tuple(g.shape)
    return shape[:dim] + (tensors[part].shape[dim],) + shape[dim + 1:], g.dtype


@op("cat_part", VIEW, _cat_part_infer)
def cat_part(g, *arrays, dim, part):
    """The slice of g along dim that cat took from its input number `part` (the gradient of cat)."""
    start = sum(a.shape[dim] for a in arrays[:part])
    return g[(slice(None),) * dim + (slice(start, start + arrays[part].shape[dim]),)]


def stack(tensors, dim: int = 0) -> Tensor:
    """torch.stack: tensors of one shape joined along a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    dim = meta.norm_dim(dim, tensors[0].ndim + 1)
    shapes = {tuple(t.shape) for t in tensors}
    if len(shapes) > 1:
        raise op_error("stack", "expects each tensor to be equal size, got " + " and ".join(
            str(list(t.shape)) for t in tensors), tensors)
    dt = dtypes.result_type(*tensors)
    return cat([unsqueeze(t if t.dtype is dt else cast(t, dt), dim) for t in tensors], dim)


def split(x: Tensor, split_size_or_sections, dim: int = 0) -> tuple[Tensor, ...]:
    """torch.split: views of x along dim, each split_size long (the last may be shorter), or of the given sizes."""
    dim = meta.norm_dim(dim, x.ndim)
    n = meta.specialized_size(x, dim)
    lead = ((None, None, None),) * dim
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size <= 0:
            raise op_error("split", f"split_size must be positive, got {size}", (x,))
        bounds = [(start, start + size) for start in range(0, max(n, 1), size)]
    else:
        sections = [int(s) for s in split_size_or_sections]
        if sum(sections) != n:
            raise op_error("split", f"split sizes {sections} do not sum to {n}, the size of dim {dim}", (x,))
        starts = np.cumsum([0] + sections).tolist()
        bounds = list(zip(starts[:-1], starts[1:]))
    return tuple(getitem(x, items=lead + ((start, stop, None),)) for start, stop in bounds)


def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple[Tensor, ...]:
    """torch.chunk: at most `chunks` views of x along dim, of equal size but the last."""
    if chunks <= 0:
        raise op_error("chunk", f"chunks must be positive, got {chunks}", (x,))
    n = meta.specialized_size(x, meta.norm_dim(dim, x.ndim))
    return split(x, max(-(-n // chunks), 1), dim)


def unbind(x: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    """torch.unbind: the slices of x along dim, each without that dim (views)."""
    dim = meta.norm_dim(dim, x.ndim)
    lead = (_FULL,) * dim
    return tuple(getitem(x, items=lead + (i,)) for i in range(meta.specialized_size(x, dim)))


__all__ = ["cat", "stack", "split", "chunk", "unbind"]
