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
from .elementwise import add, cast
from .indexing import _FULL, getitem, index_grad
from .view import atleast_1d, atleast_2d, atleast_3d, clone, reshape, unsqueeze


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


def _sliced_gradients(operands: tuple, attrs: dict, graph) -> tuple | None:
    """The gradients of split's (or chunk's) pieces, which autograd adds up, joined: the operands and attrs of one cat,
    when `operands` (those of an add) sum index_grad nodes of one value x, with no index tensors, whose slices of one
    dim tile it. cat writes each piece once, where each index_grad zero-filled all of x to write its slice and the
    adds read every one back (a GPT block's q, k and v gradients: 9 full passes become 2). Only where the trace is
    specialised to x's size along that dim (split and chunk are), or the last slice runs to the end: pieces that
    tile x at this size might not at another."""
    def pieces(x, depth: int) -> list | None:
        if not (meta.is_node(x) and x.kind == "op") or depth > 64:
            return None
        if x.op is index_grad and len(x.inputs) == 2:
            return [x]
        if x.op is clone:  # a leaf's .grad starts as a copy of the first gradient, the others are added to it
            return pieces(x.inputs[0], depth + 1)
        if x.op is add and not x.attrs:
            found = [pieces(y, depth + 1) for y in x.inputs]
            return None if None in found else [p for f in found for p in f]
        return None

    found = [pieces(x, 0) for x in operands]
    if len(operands) != 2 or None in found:
        return None
    parts = [p for f in found for p in f]
    target = parts[0].inputs[1]
    cuts = []
    for p in parts:
        items = p.attrs["items"]
        sliced = [d for d, item in enumerate(items) if item != _FULL]
        if p.inputs[1] is not target or p.dtype is not parts[0].dtype or len(items) > target.ndim or \
                len(sliced) != 1 or type(items[sliced[0]]) is not tuple or items[sliced[0]][2] not in (None, 1):
            return None
        d = sliced[0]
        start, stop = items[d][0], items[d][1]
        if any(type(b) is not int or b < 0 for b in (start, stop) if b is not None):
            return None
        start, stop = start or 0, target.shape[d] if stop is None else min(stop, target.shape[d])
        cuts.append((d, start, stop, items[d][1] is None, p))
    cuts.sort(key=lambda c: c[1])
    d, size = cuts[0][0], target.shape[cuts[0][0]]
    if any(c[0] != d for c in cuts) or [c[1] for c in cuts] != [0] + [c[2] for c in cuts[:-1]] or \
            cuts[-1][2] != size or any(c[1] >= c[2] for c in cuts) or \
            not (cuts[-1][3] or meta.is_specialized(target, d)):
        return None
    grads = [c[4].inputs[0] for c in cuts]
    if any(tuple(g.shape) != target.shape[:d] + (c[2] - c[1],) + target.shape[d + 1:] for g, c in zip(grads, cuts)):
        return None
    return tuple(grads), {"dim": d}


@op("cat", OTHER, _cat_infer, parse=_cat_parse, backward=_cat_backward, saves=(), replaces=(add, _sliced_gradients))
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
    if not x.ndim:
        raise op_error("split", "split expects at least a 1-dimensional tensor", (x,))
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
    if not x.ndim:
        raise op_error("chunk", "chunk expects at least a 1-dimensional tensor", (x,))
    n = meta.specialized_size(x, meta.norm_dim(dim, x.ndim))
    if n == 0:  # torch's: `chunks` empty views
        return split(x, [0] * chunks, dim)
    return split(x, -(-n // chunks), dim)


def unbind(x: Tensor, dim: int = 0) -> tuple[Tensor, ...]:
    """torch.unbind: the slices of x along dim, each without that dim (views)."""
    dim = meta.norm_dim(dim, x.ndim)
    lead = (_FULL,) * dim
    return tuple(getitem(x, items=lead + (i,)) for i in range(meta.specialized_size(x, dim)))


concat = concatenate = cat


def _joined(name: str, tensors, dim: int, at_least) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise op_error(name, "expects a non-empty TensorList")
    return cat([at_least(t) for t in tensors], dim)


def vstack(tensors) -> Tensor:
    """torch.vstack: the tensors (made at least 2-d) joined along dim 0."""
    return _joined("vstack", tensors, 0, atleast_2d)


row_stack = vstack


def hstack(tensors) -> Tensor:
    """torch.hstack: the tensors (made at least 1-d) joined along dim 1, or dim 0 when they are 1-d."""
    tensors = [atleast_1d(t) for t in tensors]
    return _joined("hstack", tensors, 0 if tensors and tensors[0].ndim == 1 else 1, atleast_1d)


def dstack(tensors) -> Tensor:
    """torch.dstack: the tensors (made at least 3-d) joined along dim 2."""
    return _joined("dstack", tensors, 2, atleast_3d)


def column_stack(tensors) -> Tensor:
    """torch.column_stack: 0-d and 1-d tensors as columns ([n] becomes [n, 1]) joined with the others along dim 1."""
    return _joined("column_stack", tensors, 1, lambda t: reshape(t, (-1, 1)) if t.ndim <= 1 else t)


def tensor_split(x: Tensor, indices_or_sections, dim: int = 0) -> tuple[Tensor, ...]:
    """torch.tensor_split: views of x along dim, either `sections` parts as equal as can be (the first n % sections
    one longer) or split before each of the given indices."""
    dim = meta.norm_dim(dim, x.ndim)
    n = meta.specialized_size(x, dim)
    if isinstance(indices_or_sections, Tensor):
        indices_or_sections = indices_or_sections.tolist()
    if isinstance(indices_or_sections, int):
        sections = indices_or_sections
        if sections <= 0:
            raise op_error("tensor_split", f"number of sections must be larger than 0, got {sections}", (x,))
        bounds = [i * (n // sections) + min(i, n % sections) for i in range(sections + 1)]
    else:
        bounds = [0] + [min(max(int(i) if i >= 0 else n + int(i), 0), n) for i in indices_or_sections] + [n]
    lead = (_FULL,) * dim
    return tuple(getitem(x, items=lead + ((start, max(start, stop), None),)) for start, stop in zip(bounds, bounds[1:]))


def _split_along(name: str, x: Tensor, indices_or_sections, dim: int, ndim: int) -> tuple[Tensor, ...]:
    if x.ndim < ndim:
        raise op_error(name, f"requires a tensor with at least {ndim} dimension, but got a tensor with {x.ndim} "
                       "dimensions!", (x,))
    if isinstance(indices_or_sections, int) and x.shape[dim] % indices_or_sections:
        raise op_error(name, f"attempted to split along dimension {dim}, but the size of the dimension "
                       f"{x.shape[dim]} is not divisible by the split_size {indices_or_sections}!", (x,))
    return tensor_split(x, indices_or_sections, dim)


def vsplit(x: Tensor, indices_or_sections) -> tuple[Tensor, ...]:
    """torch.vsplit: tensor_split along dim 0 (sections must divide it)."""
    return _split_along("vsplit", x, indices_or_sections, 0, 2)


def hsplit(x: Tensor, indices_or_sections) -> tuple[Tensor, ...]:
    """torch.hsplit: tensor_split along dim 1 (dim 0 for a 1-d tensor; sections must divide it)."""
    return _split_along("hsplit", x, indices_or_sections, 0 if x.ndim == 1 else 1, 1)


def dsplit(x: Tensor, indices_or_sections) -> tuple[Tensor, ...]:
    """torch.dsplit: tensor_split along dim 2 (sections must divide it)."""
    return _split_along("dsplit", x, indices_or_sections, 2, 3)

def split_with_sizes(x: Tensor, split_sizes, dim: int = 0) -> tuple[Tensor, ...]:
    """torch.split_with_sizes: views of x along dim of the given sizes. Raises RuntimeError unless they sum to the
    dim's size."""
    n = x.shape[dim]
    if sum(split_sizes) != n:
        raise op_error("split_with_sizes", f"split_with_sizes expects split_sizes to sum exactly to {n} (input "
                       f"tensor's size at dimension {dim}), but got split_sizes={list(split_sizes)}", (x,),
                       RuntimeError)
    return split(x, list(split_sizes), dim)


__all__ = ["cat", "concat", "concatenate", "stack", "vstack", "row_stack", "hstack", "dstack", "column_stack", "split",
           "split_with_sizes", "chunk", "unbind", "tensor_split", "vsplit", "hsplit", "dsplit"]
