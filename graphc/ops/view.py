"""View ops: results share storage with their input (as in torch); in kernels they become index arithmetic."""

from __future__ import annotations

import math

import numpy as np

from .. import dtypes
from ..dispatch import ELEMENTWISE, OTHER, VIEW, Lowering, op
from ..errors import op_error
from ..tensor import Size, Tensor, empty_in_order
from . import meta

RESHAPE, EXPAND = Lowering(view="reshape"), Lowering(view="expand")


def _sizes(args) -> tuple:
    """f(x, 2, 3) and f(x, (2, 3)) both give (2, 3)."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = args[0]
    return tuple(int(a) for a in args)


def _dims_arg(name: str, dims: tuple, kwargs: dict) -> tuple:
    """The dims of torch's `f(x, dims)` that its method also takes as `x.f(*dims)`: positional (f(x, 2, 0),
    f(x, (2, 0))) or the keyword `dims=`, as torch allows for both."""
    unexpected = set(kwargs) - {"dims"}
    if unexpected:
        raise TypeError(f"{name}() got an unexpected keyword argument '{min(unexpected)}'")
    if "dims" in kwargs:
        if dims:
            raise TypeError(f"{name}() got multiple values for argument 'dims'")
        dims = (kwargs["dims"],)
    return _sizes(dims)


def resolve_shape(shape: tuple, numel: int, old: tuple) -> tuple:
    """A shape with at most one -1 made concrete for numel elements."""
    if shape.count(-1) > 1:
        raise ValueError(f"only one dimension can be -1, got {list(shape)}")
    known = math.prod([n for n in shape if n != -1])
    if -1 in shape:
        if known == 0 or numel % known:
            raise ValueError(f"shape {list(shape)} is invalid for input of shape {list(old)} ({numel} elements)")
        shape = tuple(numel // known if n == -1 else n for n in shape)
    elif known != numel:
        raise ValueError(f"shape {list(shape)} is invalid for input of shape {list(old)} ({numel} elements)")
    return shape


def _reshape_inverse(base, value, *others, **attrs):
    """A write through a reshaping view replaces the base whole (the view covers every element of it)."""
    return reshape_as(value, base)


def _reshape_infer(x, shape):
    old = tuple(x.shape)
    return resolve_shape(shape, math.prod(old), old), x.dtype


reshape = op(
    "reshape",
    VIEW,
    _reshape_infer,
    lowering=RESHAPE,
    parse=lambda x, *shape: ((x,), {"shape": _sizes(shape)}),
    backward=lambda c, g: (reshape_as(g, c.inputs[0]),),
    inverse=_reshape_inverse,
    onnx=lambda g, n: g.reshape(n),
)(lambda x, shape: np.reshape(x, shape))


def _view_forward(x, shape):
    try:
        return np.reshape(x, shape, copy=False)
    except ValueError:
        raise ValueError(
            f"view size is not compatible with input tensor's size and stride (shape {list(x.shape)}, "
            f"strides {[s // x.itemsize for s in x.strides]}); use .reshape(...) instead"
        ) from None


view = op(
    "view",
    VIEW,
    _reshape_infer,
    lowering=RESHAPE,
    parse=lambda x, *shape: ((x,), {"shape": _sizes(shape)}),
    backward=lambda c, g: (reshape_as(g, c.inputs[0]),),
    inverse=_reshape_inverse,
    onnx=lambda g, n: g.reshape(n),
)(_view_forward)


def _view_dtype_infer(x, dtype):
    """torch's rule for view(dtype): the same shape for the same element size, else the last dim rescaled, which
    must divide evenly (RuntimeError, as torch's)."""
    shape, old, new = tuple(x.shape), x.dtype.itemsize, dtype.itemsize
    if old == new:
        return shape, dtype
    what = f"to view {x.dtype.name} as {dtype.name} (different element sizes)"
    if not shape:
        raise ValueError(f"self.dim() cannot be 0 {what}")
    if (shape[-1] * old) % new:
        raise ValueError(f"self.size(-1) must be divisible by {new // old if new > old else 1} {what}, but got "
                         f"{shape[-1]}")
    return shape[:-1] + (shape[-1] * old // new,), dtype


def _view_dtype_forward(x: np.ndarray, dtype) -> np.ndarray:
    """x's bytes read as dtype; torch's layout rules for another element size (RuntimeError)."""
    if x.dtype.itemsize != dtype.itemsize:
        what = f"to view {x.dtype} as {dtype.name} (different element sizes)"
        if x.shape[-1] > 1 and x.strides[-1] != x.itemsize:
            raise ValueError(f"self.stride(-1) must be 1 {what}, but got {x.strides[-1] // x.itemsize}")
        base = x
        while isinstance(base.base, np.ndarray):
            base = base.base
        offset = x.__array_interface__["data"][0] - base.__array_interface__["data"][0]
        if offset % dtype.itemsize:
            raise ValueError(f"self.storage_offset() must be divisible by {dtype.itemsize // x.itemsize} {what}, but "
                             f"got {offset // x.itemsize}")
    return x.view(dtype.np)


view_dtype = op("view_dtype", VIEW, _view_dtype_infer, saves=())(_view_dtype_forward)


def tensor_view(x: Tensor, *shape) -> Tensor:
    """torch.Tensor.view: x with another shape sharing its memory (view(*shape), one -1 inferred), or its bits
    read as another dtype (view(dtype): the same shape for the same element size, else the last dim rescaled;
    not differentiable, as torch's). Raises RuntimeError where x's layout or size does not allow it. view(dtype)
    inside graphc.compile runs the function eagerly (with a warning): functionalization follows an alias's
    memory in elements of one size."""
    if len(shape) == 1 and isinstance(shape[0], dtypes.dtype):
        from ..state import STATE

        if STATE.capture is not None:
            from ..compiler.capture import CaptureError
            from ..errors import user_line

            raise CaptureError(f"view({shape[0]!r}) at {user_line()} reads the tensor's bits as another dtype")
        return view_dtype(x.detach(), dtype=shape[0])  # x's memory and version counter, outside autograd
    return view(x, *shape)


def _like_infer(x, other):
    if math.prod(x.shape) != math.prod(other.shape):
        raise ValueError(f"cannot reshape a tensor of shape {list(x.shape)} to shape {list(other.shape)}")
    return tuple(other.shape), x.dtype


reshape_as = op("reshape_as", VIEW, _like_infer, lowering=RESHAPE,
                backward=lambda c, g: (reshape_as(g, c.inputs[0]), None),
                inverse=_reshape_inverse)(
    lambda x, other: np.reshape(x, other.shape)
)
view_as = op("view_as", VIEW, _like_infer, lowering=RESHAPE,
             backward=lambda c, g: (reshape_as(g, c.inputs[0]), None),
             inverse=_reshape_inverse)(
    lambda x, other: _view_forward(x, other.shape)
)


def _permute_infer(x, dims):
    shape = x.shape
    if sorted(dims) != meta.ALL_DIMS_LIST[len(shape)]:
        raise ValueError(f"permute dims {list(dims)} are not a permutation of the {len(shape)} dims")
    return tuple([shape[d] for d in dims]), x.dtype


def _permute_parse(x, *dims, **kwargs):
    dims = _dims_arg("permute", dims, kwargs)
    return (x,), {"dims": tuple(meta.norm_dim(d, x.ndim) for d in dims)}


permute = op(
    "permute",
    VIEW,
    _permute_infer,
    lowering=Lowering(view="permute"),
    parse=_permute_parse,
    backward=lambda c, g: (permute(g, *np.argsort(c.attrs["dims"]).tolist()),),
    inverse=lambda base, value, dims: permute(value, *np.argsort(dims).tolist()),
    onnx=lambda g, n: g.op("Transpose", g.name(n.inputs[0]), perm=list(n.attrs["dims"])),
)(lambda x, dims: x.transpose(dims))


def transpose(x, dim0: int, dim1: int):
    """x with dims dim0 and dim1 swapped (a view)."""
    dims = list(range(x.ndim))
    if x.ndim:
        d0, d1 = meta.norm_dim(dim0, x.ndim), meta.norm_dim(dim1, x.ndim)
        dims[d0], dims[d1] = d1, d0
    return permute(x, dims)


def t(x):
    """Transpose of a tensor of at most 2 dims."""
    if x.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dims, got shape {list(x.shape)}")
    return transpose(x, 0, 1) if x.ndim == 2 else x


def _expand_infer(x, sizes):
    old = tuple(x.shape)
    if len(sizes) < len(old):
        raise ValueError(f"expand to {list(sizes)} has fewer dims than the tensor's shape {list(old)}")
    lead = len(sizes) - len(old)
    out = []
    for i, n in enumerate(sizes):
        have = old[i - lead] if i >= lead else None
        if n == -1:
            if have is None:
                raise ValueError(f"expand: -1 is not allowed for the new leading dim {i}")
            n = have
        elif have is not None and have != 1 and have != n:
            raise ValueError(
                f"expand: the size {have} at dim {i - lead} must match {n} (or be 1); "
                f"tensor shape {list(old)}, target {list(sizes)}"
            )
        out.append(n)
    return tuple(out), x.dtype


def broadcast_view(x: np.ndarray, shape: tuple) -> np.ndarray:
    """x broadcast to shape as a writable view (np.broadcast_to's is read-only): as in torch, an expanded tensor can
    be written where its elements are distinct in memory (in-place ops check that)."""
    lead = len(shape) - x.ndim
    strides = (0,) * lead + tuple(0 if n == 1 and m != 1 else s for n, m, s in zip(x.shape, shape[lead:], x.strides))
    return np.lib.stride_tricks.as_strided(x, shape, strides)


def _expand_forward(x, sizes):
    return broadcast_view(x, _expand_infer(x, sizes)[0] if -1 in sizes else sizes)


def _expand_inverse(base, value, *others, **attrs):
    """A write through an expanded view: each base element takes the copy of it that was written, if any (a write
    must not reach two copies of one element, which in-place ops check). Exact, NaN and inf included, unlike
    PyTorch's base + sum_to(value - expanded base)."""
    from .elementwise import cast, gt, ne, where
    from .reduction import sum_to
    changed = ne(value, expand_as(base, value))
    written = sum_to(where(changed, value, 0), base)
    return where(gt(sum_to(cast(changed, base.dtype), base), 0), written, base)


def _expand_backward(c, g):
    from .reduction import sum_to

    return (sum_to(g, c.inputs[0]),)


expand = op(
    "expand", VIEW, _expand_infer, lowering=EXPAND, parse=lambda x, *sizes: ((x,), {"sizes": _sizes(sizes)}),
    backward=_expand_backward,
    inverse=_expand_inverse, onnx=lambda g, n: g.expand(n),
)(_expand_forward)


def _expand_as_infer(x, other):
    return _expand_infer(x, tuple(other.shape))


def _expand_as_backward(c, g):
    from .reduction import sum_to

    return (sum_to(g, c.inputs[0]), None)


expand_as = op("expand_as", VIEW, _expand_as_infer, lowering=EXPAND, backward=_expand_as_backward,
               inverse=_expand_inverse, onnx=lambda g, n: g.expand(n), shape_inputs=(1,))(
    lambda x, other: broadcast_view(x, tuple(other.shape))
)


def _unsqueeze_parse(x, dim: int):
    return (x,), {"dim": meta.norm_dim(dim, x.ndim + 1)}


unsqueeze = op(
    "unsqueeze",
    VIEW,
    lambda x, dim: (tuple(x.shape)[:dim] + (1,) + tuple(x.shape)[dim:], x.dtype),
    lowering=RESHAPE,
    parse=_unsqueeze_parse,
    backward=lambda c, g: (squeeze(g, c.attrs["dim"]),),
    inverse=_reshape_inverse,
    onnx=lambda g, n: g.op("Unsqueeze", g.name(n.inputs[0]), g.const([n.attrs["dim"]])),
)(lambda x, dim: np.expand_dims(x, dim))


def _squeeze_parse(x, dim=None):
    dims = None if dim is None else meta.norm_dims(dim, x.ndim)
    for d in range(x.ndim) if dims is None else dims:  # which dims go depends on which have size 1
        meta.specialized_size(x, d)
    return (x,), {"dim": dims}


def _squeeze_dims(shape, dim):
    return tuple(i for i, n in enumerate(shape) if n == 1 and (dim is None or i in dim))


squeeze = op(
    "squeeze",
    VIEW,
    lambda x, dim: (tuple(n for i, n in enumerate(x.shape) if i not in _squeeze_dims(x.shape, dim)), x.dtype),
    lowering=RESHAPE,
    parse=_squeeze_parse,
    backward=lambda c, g: (reshape_as(g, c.inputs[0]),),
    inverse=_reshape_inverse,
    onnx=lambda g, n: g.op("Squeeze", g.name(n.inputs[0]), g.const(list(_squeeze_dims(n.inputs[0].shape,
                                                                                       n.attrs["dim"])))),
)(lambda x, dim: np.squeeze(x, _squeeze_dims(x.shape, dim)))


def _flatten_parse(x, start_dim: int = 0, end_dim: int = -1):
    if x.ndim == 0:
        return (x,), {"start": 0, "end": -1}
    start, end = meta.norm_dim(start_dim, x.ndim), meta.norm_dim(end_dim, x.ndim)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return (x,), {"start": start, "end": end}


def _flatten_shape(shape, start, end):
    if not shape:
        return (1,)
    return shape[:start] + (math.prod(shape[start : end + 1]),) + shape[end + 1 :]


def _reshaping(name: str, shape, parse):
    """A view op that reshapes x to shape(x.shape, **attrs), computed from the input's shape at every call (so a
    compiled plan follows a new batch size): reshape's lowering, gradient and inverse."""
    return op(name, VIEW, lambda x, **attrs: (shape(tuple(x.shape), **attrs), x.dtype), lowering=RESHAPE, parse=parse,
              backward=lambda c, g: (reshape_as(g, c.inputs[0]),), inverse=_reshape_inverse,
              onnx=lambda g, n: g.reshape(n))(lambda x, **attrs: np.reshape(x, shape(x.shape, **attrs)))


flatten = _reshaping("flatten", _flatten_shape, _flatten_parse)


def repeat(x, *sizes):
    """torch.Tensor.repeat: x tiled sizes[i] times along each dim (leading sizes add dims). Built from unsqueeze,
    expand with -1 and flatten, so it bakes no size of x and its gradient sums the tiles back; a new tensor, as
    torch's (the flattens view x where every size is 1, and are views inside graphc.compile)."""
    sizes = _sizes(sizes)
    source = x
    if len(sizes) < x.ndim:
        raise ValueError(f"repeat: {len(sizes)} repeat sizes given for a tensor with {x.ndim} dims; give at least "
                         f"one per dim")
    for _ in range(len(sizes) - x.ndim):
        x = unsqueeze(x, 0)
    for d in range(len(sizes)):
        x = unsqueeze(x, 2 * d)
    x = expand(x, *[s for n in sizes for s in (n, -1)])
    for d in range(len(sizes)):
        x = flatten(x, d, d + 1)
    return clone(x) if x._data is None or np.may_share_memory(x._data, source._data) else x


def _contiguous(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, order="C")  # (np.ascontiguousarray makes a 0-d array 1-d)


def _contiguous_parse(x, memory_format=None):
    """memory_format is accepted and the result is row-major whatever it asks (graphc.memory_format)."""
    return (x,), {}


contiguous = op("contiguous", VIEW, meta.same, parse=_contiguous_parse, lowering=Lowering(view="contiguous"),
                backward=lambda c, g: (g,), inverse=_reshape_inverse, onnx="Identity")(_contiguous)

def _strided(x: np.ndarray, size: tuple, stride: tuple, storage_offset: int) -> np.ndarray:
    flat = x.reshape(-1)
    return np.lib.stride_tricks.as_strided(flat[storage_offset:], size, [s * flat.itemsize for s in stride])


def _as_strided_backward(c, g):
    from .creation import filled
    return (as_strided_scatter(filled(c.inputs[0], 0), g, **c.attrs),)


as_strided = op("as_strided", VIEW, lambda x, size, stride, storage_offset: (tuple(size), x.dtype),
                backward=_as_strided_backward,
                inverse=lambda base, value, **attrs: as_strided_scatter(base, value, **attrs))(_strided)
as_strided.doc = """torch.as_strided on a contiguous x (its own storage): the view of x's elements at storage_offset +
sum(i * stride) (the compiler views arguments that share memory this way, from the one that covers them)."""


def _as_strided_scatter_backward(c, g):
    return as_strided_scatter(g, 0.0, **c.attrs), as_strided(g, **c.attrs)


@op("as_strided_scatter", OTHER, lambda x, value, size, stride, storage_offset: (tuple(x.shape), x.dtype),
    backward=_as_strided_scatter_backward, saves=())
def as_strided_scatter(x, value, size, stride, storage_offset):
    """torch.as_strided_scatter: a copy of a contiguous x with value written at as_strided(x, ...)."""
    out = np.array(x)
    _strided(out, size, stride, storage_offset)[...] = value
    return out


def ravel(x):
    """torch.ravel: x as one dim (a view when x's layout allows, else a copy), as reshape(x, (-1,))."""
    return reshape(x, (-1,))


def _clone(x: np.ndarray) -> np.ndarray:
    """torch's clone (memory_format=torch.preserve_format): x's memory order, as an elementwise result's."""
    out = empty_in_order([x], x.dtype)
    np.copyto(out, x)
    return out


clone = op("clone", ELEMENTWISE, meta.same, backward=lambda c, g: (g,), lowering=Lowering("{0}", copy=True),
           saves=())(_clone)

def swapaxes(x, axis0: int, axis1: int):
    """torch.swapaxes / swapdims: transpose(x, axis0, axis1)."""
    return transpose(x, axis0, axis1)


swapdims = swapaxes


def movedim(x, source, destination):
    """torch.movedim / moveaxis: x with the dims in source moved to the positions in destination, the others keeping
    their order (a view)."""
    src = (source,) if isinstance(source, int) else tuple(source)
    dst = (destination,) if isinstance(destination, int) else tuple(destination)
    if len(src) != len(dst):
        raise RuntimeError(f"movedim: Invalid source or destination dims: source ({list(src)} dims) should contain "
                           f"the same number of dims as destination ({list(dst)} dims)")
    src, dst = meta.norm_dim_list(src, x.ndim), meta.norm_dim_list(dst, x.ndim)
    if len(set(src)) != len(src) or len(set(dst)) != len(dst):
        raise RuntimeError(f"movedim: repeated dim in source ({list(src)}) or destination ({list(dst)})")
    rest = iter(d for d in range(x.ndim) if d not in src)
    placed = dict(zip(dst, src))
    return permute(x, [placed[i] if i in placed else next(rest) for i in range(x.ndim)])


moveaxis = movedim


def broadcast_shapes(*shapes) -> Size:
    """torch.broadcast_shapes: the shape the given shapes broadcast to (ints are 1-d shapes)."""
    try:
        return Size(meta.broadcast(*((s,) if isinstance(s, int) else tuple(s) for s in shapes)) if shapes else ())
    except ValueError as e:
        raise RuntimeError(f"broadcast_shapes: {e}") from None


def broadcast_to(x, size):
    """torch.broadcast_to: expand(x, size) (a view; -1 keeps a dim's size)."""
    return expand(x, *_sizes((size,)))


def broadcast_tensors(*tensors) -> tuple:
    """torch.broadcast_tensors: views of the tensors expanded to their common broadcast shape."""
    try:
        shape = meta.broadcast(*(tuple(t.shape) for t in tensors))
    except ValueError as e:
        raise RuntimeError(f"broadcast_tensors: {e}") from None
    return tuple(t if tuple(t.shape) == shape else expand(t, *shape) for t in tensors)


def _unflatten_parse(x, dim: int, sizes):
    sizes = tuple(int(n) for n in sizes)
    if not sizes:
        raise ValueError("unflatten: sizes must be non-empty")
    return (x,), {"dim": meta.norm_dim(dim, x.ndim), "sizes": sizes}


def _unflatten_shape(shape: tuple, dim: int, sizes: tuple) -> tuple:
    """shape with dim split into sizes (one may be -1); the other dims are the input's (a reshape to the traced
    shape would bake them)."""
    return shape[:dim] + resolve_shape(sizes, shape[dim], (shape[dim],)) + shape[dim + 1:]


unflatten = _reshaping("unflatten", _unflatten_shape, _unflatten_parse)
unflatten.doc = "torch.unflatten: dim of x split into sizes (one may be -1), a view."


def _at_least(n: int, tensors):
    def one(x):
        if x.ndim == 0:
            x = reshape(x, (1,))
        if x.ndim == 1 and n >= 2:
            x = unsqueeze(x, 0)
        if x.ndim == 2 and n == 3:
            x = unsqueeze(x, -1)
        return x
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        return tuple(one(x) for x in tensors[0])
    return one(tensors[0]) if len(tensors) == 1 else tuple(one(x) for x in tensors)


def atleast_1d(*tensors):
    """torch.atleast_1d: each tensor with at least 1 dim (a 0-d one becomes [1]); a tuple for several."""
    return _at_least(1, tensors)


def atleast_2d(*tensors):
    """torch.atleast_2d: each tensor with at least 2 dims (a 1-d one of size n becomes [1, n])."""
    return _at_least(2, tensors)


def atleast_3d(*tensors):
    """torch.atleast_3d: each tensor with at least 3 dims (1-d [n] becomes [1, n, 1], 2-d [m, n] becomes
    [m, n, 1])."""
    return _at_least(3, tensors)


def unfold(x: Tensor, dimension: int, size: int, step: int) -> Tensor:
    """torch.Tensor.unfold: every length-`size` slice of dim `dimension`, `step` apart, as a new last dim. Gathered
    with index_select, so overlapping windows get their gradients summed; unlike torch's, the result is a copy, not
    a view. Raises RuntimeError if size exceeds the dim or step < 1."""
    from .creation import tensor
    from .indexing import index_select

    dim = meta.norm_dim(dimension, x.ndim)
    n = meta.specialized_size(x, dim) if x.ndim else 1  # the windows' indices are built from it
    if not 0 <= size <= n:
        raise op_error("unfold", f"maximum size for tensor at dimension {dim} is {n} but size is {size}", (x,),
                       RuntimeError)
    if step <= 0:
        raise op_error("unfold", f"step is {step} but must be > 0", (x,), RuntimeError)
    if x.ndim == 0:
        return x.reshape(1)
    count = (n - size) // step + 1
    index = (np.arange(count)[:, None] * step + np.arange(size)[None, :]).reshape(-1)
    windows = index_select(x, dim, tensor(index, device=x.device))
    windows = windows.reshape(*x.shape[:dim], count, size, *x.shape[dim + 1:])
    return windows.permute(*range(dim + 1), *range(dim + 2, x.ndim + 1), dim + 1)


__all__ = [
    "swapaxes",
    "swapdims",
    "movedim",
    "moveaxis",
    "broadcast_shapes",
    "broadcast_to",
    "broadcast_tensors",
    "unflatten",
    "atleast_1d",
    "atleast_2d",
    "atleast_3d",
    "ravel",
    "reshape",
    "view",
    "reshape_as",
    "view_as",
    "permute",
    "transpose",
    "t",
    "expand",
    "expand_as",
    "unsqueeze",
    "squeeze",
    "flatten",
    "repeat",
    "contiguous",
    "clone",
]
