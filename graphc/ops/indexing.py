"""Indexing: basic indexing (ints, slices, None, ...) as views sharing memory, integer-array and bool-mask
indexing as a gather copy, in-place writes through an index, and torch's gather. Gradients scatter-add.

An index is kept canonical in attrs as a tuple of items: an int, None, a (start, stop, step) slice tuple, or
TENSOR for the next index tensor input. Slice bounds stay as the user wrote them, so `x[:, 1:]` bakes no size."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..dispatch import OTHER, OUT, VIEW, Lowering, op
from ..errors import op_error, values_refused, warn_at_user
from ..tensor import Tensor
from . import meta
from .elementwise import cast, clamp, eq

TENSOR = "tensor"
_FULL = (None, None, None)


def _slice_length(n: int, item: tuple) -> int:
    return len(range(*slice(*item).indices(n)))


def _basic_shape(shape: tuple, items: tuple) -> tuple:
    """Shape after the basic items (TENSOR items keep their dim); refuses out-of-range ints."""
    out, dim = [], 0
    for item in items:
        if item is None:
            out.append(1)
            continue
        if dim >= len(shape):
            raise IndexError(f"too many indices for a tensor of shape {list(shape)}")
        n = shape[dim]
        if type(item) is int:
            if not -n <= item < n:
                raise IndexError(f"index {item} is out of range for dim {dim} of size {n}")
        else:
            out.append(n if item == TENSOR else _slice_length(n, item))
        dim += 1
    return tuple(out) + tuple(shape[dim:])


def _advanced_positions(items: tuple) -> list[int]:
    """Dims of the basic-indexed view that the index tensors address."""
    positions, dim = [], 0
    for item in items:
        if item == TENSOR:
            positions.append(dim)
        if type(item) is not int:
            dim += 1
    return positions


def _index_shape(shape: tuple, items: tuple, index_shapes: list) -> tuple:
    """torch's result shape: basic items first, then the broadcast index shape replaces the indexed dims (in place
    when they are adjacent, else in front)."""
    base = _basic_shape(tuple(shape), items)
    if not index_shapes:
        return base
    positions = _advanced_positions(items)
    block = meta.broadcast(*index_shapes)
    rest = [n for i, n in enumerate(base) if i not in positions]
    at = positions[0] if positions == list(range(positions[0], positions[0] + len(positions))) else 0
    return tuple(rest[:at]) + block + tuple(rest[at:])


def _numpy_index(items: tuple, arrays) -> tuple:
    """The numpy index of items whose TENSOR entries are arrays (ints and Nones applied first, as torch does)."""
    arrays = iter(arrays)
    basic = tuple(slice(*item) if type(item) is tuple else (slice(None) if item == TENSOR else item) for item in items)
    positions = _advanced_positions(items)
    if not positions:
        return basic, None
    advanced = [slice(None)] * (positions[-1] + 1)
    for p in positions:
        advanced[p] = next(arrays)
    return basic, tuple(advanced)


def _apply(x: np.ndarray, items: tuple, arrays) -> np.ndarray:
    basic, advanced = _numpy_index(items, arrays)
    y = x[basic]
    return y if advanced is None else y[advanced]


def _check_indices(tensors) -> None:
    for t in tensors:
        if t.dtype.category != 1:
            raise IndexError(f"tensors used as indices must be integer or bool, got {t.dtype.name}")


def _getitem_infer(x, items):
    return _basic_shape(tuple(x.shape), items), x.dtype


@op("getitem", VIEW, _getitem_infer, backward=lambda c, g: (index_grad(g, c.inputs[0], items=c.attrs["items"]),),
    inverse=lambda base, value, items: index_put(base, value, items=items), lowering=Lowering(view="index"),
    onnx=lambda g, n: g.getitem(n))
def getitem(x, items):
    """x[index] for basic indices: a view sharing x's memory (the Ellipsis keeps an all-int index a 0-d view)."""
    return x[tuple(slice(*item) if type(item) is tuple else item for item in items) + (Ellipsis,)]


def _index_infer(x, *tensors, items):
    _check_indices(tensors)
    return _index_shape(tuple(x.shape), items, [tuple(t.shape) for t in tensors]), x.dtype


def _index_backward(c, g):
    x, *tensors = c.inputs
    return (index_grad(g, x, *tensors, items=c.attrs["items"]),) + (None,) * len(tensors)


@op("index", OTHER, _index_infer, backward=_index_backward, saves=(slice(1, None),))
def index(x, *arrays, items):
    """x[index] with index tensors: a gathered copy."""
    return _apply(x, items, arrays)


_index_op = index  # index_select's argument is named index, as in torch


def _index_grad_infer(g, x, *tensors, items):
    return tuple(x.shape), g.dtype


def _index_grad_backward(c, g):
    _, x, *tensors = c.inputs
    gg = getitem(g, items=c.attrs["items"]) if not tensors else index(g, *tensors, items=c.attrs["items"])
    return (gg, None) + (None,) * len(tensors)


@op("index_grad", OTHER, _index_grad_infer, backward=_index_grad_backward, saves=(slice(2, None),))
def index_grad(g, x, *arrays, items):
    """Zeros of x's shape with g scatter-added at x[index] (repeated indices accumulate): the gradient of indexing."""
    out = np.zeros(x.shape, g.dtype)
    basic, advanced = _numpy_index(items, arrays)
    if advanced is None:
        out[basic] = g
    else:
        np.add.at(out[basic], advanced, g)
    return out


def _index_put_infer(x, value, *tensors, items):
    _check_indices(tensors)
    target = _index_shape(tuple(x.shape), items, [tuple(t.shape) for t in tensors])
    if meta.broadcast(meta.shape_of(value), target) != target:
        raise ValueError(f"cannot write a value of shape {list(meta.shape_of(value))} into the indexed shape "
                         f"{list(target)}")
    return tuple(x.shape), x.dtype


def _index_put_backward(c, g):
    x, value, *tensors = c.inputs
    items = c.attrs["items"]
    gx = index_put(g, 0.0, *tensors, items=items)
    picked = getitem(g, items=items) if not tensors else index(g, *tensors, items=items)
    from .reduction import sum_to
    gv = sum_to(picked, value) if isinstance(value, Tensor) else None
    return (gx, gv) + (None,) * len(tensors)


@op("index_put", OTHER, _index_put_infer, backward=_index_put_backward, saves=(slice(2, None),))
def index_put(x, value, *arrays, items):
    """A copy of x with value written at x[index] (the functional form of x[index] = value)."""
    out = x.copy()
    basic, advanced = _numpy_index(items, arrays)
    if advanced is None:
        out[basic] = value  # an all-int index picks a scalar, not a view, so write through out itself
    else:
        out[basic][advanced] = value
    return out


def _index_tensor(k) -> Tensor:
    if isinstance(k, Tensor):
        return k
    arr = np.asarray(k)
    if arr.dtype.kind == "b":
        return Tensor._make(arr, dtypes.bool_)
    if arr.dtype.kind not in "iu" and arr.size:
        raise IndexError(f"index arrays must hold integers or bools, got {arr.dtype}")
    return Tensor._make(arr.astype(np.int64), dtypes.int64)


def _bound(v):
    return v if v is None or type(v) is int else v.__index__()


def _check_mask(x: Tensor, mask: Tensor, dim: int) -> None:
    indexed = tuple(x.shape[dim:dim + mask.ndim])
    if tuple(mask.shape) != indexed:
        raise op_error("index", f"the shape of the mask {list(mask.shape)} does not match the shape {list(indexed)} "
                       f"of the indexed dims, starting at dim {dim}", (x, mask), IndexError)


def parse_index(x: Tensor, key) -> tuple[tuple, list[Tensor]]:
    """A Python index as (canonical items, index tensors): Ellipsis expanded, lists/arrays made tensors, bool masks
    turned into integer indices (their nonzero positions: a value-dependent shape, so a graph break)."""
    key = key if type(key) is tuple else (key,)
    items, tensors = [], []
    for k in key:
        kind = type(k)
        if kind is slice:
            items.append((_bound(k.start), _bound(k.stop), _bound(k.step)))
        elif kind is int or k is None or k is Ellipsis:
            items.append(k)
        elif kind in (list, np.ndarray) or (kind is Tensor and not (k.dtype.category == 1 and k.ndim == 0)):
            k = _index_tensor(k)
            if k.dtype is dtypes.uint8:
                warn_at_user("indexing with dtype uint8 is deprecated (as in torch), please use a dtype bool instead: "
                             "it is read as a mask")
                k = k.to(dtypes.bool_)
            if k.dtype is not dtypes.bool_:
                items.append(TENSOR)
                tensors.append(k)
                continue
            if Ellipsis not in items:
                _check_mask(x, k, sum(1 for item in items if item is not None))
            for positions in np.nonzero(k._host()):
                items.append(TENSOR)
                tensors.append(Tensor._make(positions, dtypes.int64))
        elif kind in (bool, np.bool_):
            raise IndexError("indexing with a Python bool is not supported; use a bool tensor")
        else:
            items.append(k.__index__())
    if Ellipsis in items:
        at = items.index(Ellipsis)
        if Ellipsis in items[at + 1:]:
            raise IndexError("an index can only have a single ellipsis ('...')")
        used = sum(1 for item in items if item is not None and item is not Ellipsis)
        items[at:at + 1] = [_FULL] * max(x.ndim - used, 0)
    while items and items[-1] == _FULL:
        items.pop()
    return tuple(items), tensors


def subscript(x: Tensor, key) -> Tensor:
    """Tensor.__getitem__: a view for basic indices, a gathered copy when the index holds tensors, lists or masks."""
    items, tensors = parse_index(x, key)
    if not tensors:
        return getitem(x, items=items)
    return index(x, *tensors, items=items)


def setitem(x: Tensor, key, value) -> None:
    """Tensor.__setitem__: write value through the index into x's storage (visible in every view of it). Into an
    expanded x (elements sharing memory) only the indexed elements are written, so they must be distinct, as in
    torch: x is viewed by the index's basic part first."""
    mask = isinstance(key, Tensor) and key.dtype is dtypes.bool_
    if mask and _masks_leading_dims(x, key, value):  # as masked_fill: no value-dependent shape (a graph break)
        from .elementwise import where
        x._assign(where(key.reshape(tuple(key.shape) + (1,) * (x.ndim - key.ndim)), value, x))
        return
    items, tensors = parse_index(x, key)
    if isinstance(value, Tensor) and value.dtype is not x.dtype:
        if tensors and not (mask and value.ndim == 0):  # as torch's index_put_ (x[mask] = 0-d is a masked_fill_;
            # a basic index writes as copy_ does: both cast)
            raise op_error("index_put_", f"Index put requires the source and destination dtypes match, got "
                           f"{x.dtype.name} for the destination and {value.dtype.name} for the source", (x, value))
        from .elementwise import cast
        value = cast(value, x.dtype)
    if isinstance(value, Tensor):  # as torch, leading size-1 dims of the value beyond the indexed shape's rank drop
        extra = value.ndim - len(_index_shape(tuple(x.shape), items, [tuple(t.shape) for t in tensors]))
        while extra > 0 and value.shape[0] == 1:
            value, extra = value.squeeze(0), extra - 1
    if x._overlaps_itself():
        x = getitem(x, items=tuple(_FULL if item == TENSOR else item for item in items))
        items = tuple(TENSOR if item == TENSOR else _FULL for item in items if type(item) is not int)
    x._assign(index_put(x, value, *tensors, items=items))


def _masks_leading_dims(x: Tensor, mask: Tensor, value) -> bool:
    """Whether x[mask] = value writes one value (a number, or a tensor of x's dtype or 0-d, broadcasting over the
    dims the mask leaves) at each position of a mask over x's leading dims: the same as filling where the mask is
    set, whatever the mask's values."""
    if not 0 < mask.ndim <= x.ndim or tuple(mask.shape) != tuple(x.shape[:mask.ndim]) or x._overlaps_itself():
        return False
    if not isinstance(value, Tensor):
        return type(dtypes.as_number(value)) in dtypes.NUMBERS
    rest = tuple(x.shape[mask.ndim:])
    return (value.ndim == 0 or value.dtype is x.dtype) and value.ndim <= len(rest) and all(
        n in (1, m) for n, m in zip(value.shape[::-1], rest[::-1]))


def indexed_put(x: Tensor, indices, values, accumulate: bool = False) -> Tensor:
    """torch.Tensor.index_put: a copy of x with values written at x[indices] (a tuple of index tensors or masks),
    or added there when accumulate (repeated indices accumulate, as index_add)."""
    if not accumulate:
        out = x.clone()
        setitem(out, tuple(indices), values)
        return out
    items, tensors = parse_index(x, tuple(indices))
    target = _index_shape(tuple(x.shape), items, [tuple(t.shape) for t in tensors])
    if not isinstance(values, Tensor):
        from .creation import tensor
        values = tensor(values, dtype=x.dtype, device=x.device)
    from .elementwise import cast
    return x + index_grad(cast(values, x.dtype).expand(*target), x, *tensors, items=items)


def put(x: Tensor, index: Tensor, source: Tensor, accumulate: bool = False) -> Tensor:
    """torch.Tensor.put: a copy of x with source written (or added, when accumulate) at the flat, row-major
    positions index names (negative ones from the end)."""
    return indexed_put(x.reshape(-1), (index.reshape(-1),), source.reshape(-1), accumulate).reshape(x.shape)


def _gather_parse(x, dim, index):
    return (x, index), {"dim": meta.norm_dim(dim, x.ndim)}


def _check_index(name: str, index, ndim: int) -> None:
    if index.dtype not in (dtypes.int64, dtypes.int32):
        raise ValueError(f"{name}(): Expected dtype int32/int64 for index, got {index.dtype.name}")
    if index.ndim != ndim:
        raise ValueError(f"Index tensor must have the same number of dimensions as input tensor ({index.ndim} and "
                         f"{ndim})")


def _gather_infer(x, index, dim):
    _check_index("gather", index, x.ndim)
    for d, (n, m) in enumerate(zip(x.shape, index.shape)):
        if d != dim and m > n:
            raise ValueError(f"Size does not match at dimension {d}: index size {m} exceeds the input size {n}")
    return tuple(index.shape), x.dtype


def _gather_index(index: np.ndarray, dim: int, n: int) -> tuple:
    """The numpy index of torch's gather/scatter positions along dim (refusing indices outside [0, n), as torch)."""
    bad = index[(index < 0) | (index >= n)]
    if bad.size:
        raise ValueError(f"index {bad.flat[0]} is out of bounds for dimension {dim} with size {n}")
    grid = list(np.indices(index.shape, sparse=True))
    grid[dim] = index
    return tuple(grid)


_GATHER_FALLBACK = "a data-dependent gather/scatter has no Triton lowering yet: it runs on numpy"


@op("gather", OTHER, _gather_infer, parse=_gather_parse, fallback=_GATHER_FALLBACK, saves=(1,),
    backward=lambda c, g: (gather_grad(g, c.inputs[0], c.inputs[1], dim=c.attrs["dim"]), None))
def gather(x, index, dim):
    """torch.gather: out[i][j] = x[index[i][j]][j] for dim=0 (index may be smaller than x in the other dims); a 0-d
    x is gathered as one element."""
    if not x.ndim:  # one element
        return x.reshape(1)[_gather_index(index.reshape(1), 0, 1)].reshape(())
    return x[_gather_index(index, dim, x.shape[dim])]


@op("gather_grad", OTHER, lambda g, x, index, dim: (tuple(x.shape), g.dtype), fallback=_GATHER_FALLBACK, saves=(2,),
    backward=lambda c, g: (gather(g, c.attrs["dim"], c.inputs[2]), None, None))
def gather_grad(g, x, index, dim):
    """Zeros of x's shape with g scatter-added at the gathered positions: the gradient of gather."""
    shape = x.shape or (1,)  # a 0-d x as one element
    out = np.zeros(shape, g.dtype)
    np.add.at(out, _gather_index(index.reshape(-1) if not x.ndim else index, dim, shape[dim]), g)
    return out.reshape(x.shape)


@op("check_bounds", OTHER, lambda x, **attrs: (tuple(x.shape), x.dtype), saves=(),
    fallback="a check of values: it reads them on numpy")
def check_bounds(x, low, high, ignore_index, message, error):
    """A copy of the integer tensor x (any shape) when every value lies in [low, high) (high None: no upper bound)
    or equals ignore_index (None: no exception); else `error` ("IndexError" or "ValueError", which an eager op
    reports as RuntimeError) with message.format(the first value outside).
    Composites that pick a class by comparing an index with arange(classes) (the one-hot masks of nll_loss,
    cross_entropy and one_hot) compute a finite wrong value for an index outside, where torch raises, and a size
    read as a value (batch_norm's count) is not guarded by the plan: this op keeps such checks in compiled plans, as
    Inductor's check_bounds does for indirect indexing."""
    outside = x < low if high is None else (x < low) | (x >= high)
    if ignore_index is not None:
        outside &= x != ignore_index
    if outside.any():
        raise values_refused(_ERRORS[error])(message.format(x[outside].flat[0]))
    return x.copy()


_ERRORS = {"IndexError": IndexError, "ValueError": ValueError}


@op("_assert_async", OTHER, lambda cond, **attrs: ((), dtypes.bool_), saves=(), pure=False,
    fallback="a check of values: it reads them on numpy")
def _assert_async(cond, message, error):
    """torch._assert_async with torch's error classes: `error` ("ValueError", as a distribution's argument checks
    raise) with message unless every element of cond is true; returns nothing a program reads. Impure, so a compiled
    plan keeps it though no result reads it: the check then runs at every replay where bool(cond.all()) in Python
    would be a graph break."""
    if not np.all(cond):
        raise values_refused(_ERRORS[error])(message)
    return np.array(True)


def _scatter_parse(x, dim, index, src=None, *, value=None, reduce=None):
    if (src is None) == (value is None):
        raise TypeError("scatter() takes src (a tensor or a number) or value=, not both")
    if reduce not in (None, "add", "multiply"):
        raise ValueError(f"reduce argument must be either add or multiply, got {reduce!r}")
    return (x, index, value if src is None else src), {"dim": meta.norm_dim(dim, x.ndim), "reduce": reduce}


def _scatter_infer(x, index, src, dim, reduce):
    _check_index("scatter", index, x.ndim)
    if isinstance(src, Tensor) or hasattr(src, "dtype"):
        if src.dtype is not x.dtype:
            raise ValueError(f"scatter(): Expected self.dtype to be equal to src.dtype ({x.dtype.name} and "
                            f"{src.dtype.name})")
        if src.ndim != x.ndim:
            raise ValueError("Index tensor must have the same number of dimensions as src tensor")
    for d, m in enumerate(index.shape):
        if (d != dim and m > x.shape[d]) or (isinstance(src, (Tensor,)) or hasattr(src, "dtype")) and m > src.shape[d]:
            raise ValueError(f"Expected index {list(index.shape)} to be no larger than self {list(x.shape)} apart "
                             f"from dimension {dim} and to be no larger size than src "
                             f"{list(meta.shape_of(src))}")
    return tuple(x.shape), x.dtype


def _index_block(src: Tensor, index: Tensor) -> Tensor:
    """The leading index-shaped block of src (scatter reads only that part of a larger src)."""
    if tuple(src.shape) == tuple(index.shape):
        return src
    return getitem(src, items=tuple((0, n, None) for n in index.shape))


def _scatter_backward(c, g):
    x, index, src = c.inputs
    dim, reduce = c.attrs["dim"], c.attrs["reduce"]
    if reduce == "multiply":
        raise NotImplementedError("scatter(reduce='multiply') has no backward rule (as in torch)")
    gx = g if reduce == "add" else scatter(g, dim, index, 0.0)
    if not isinstance(src, Tensor) or not src.requires_grad:
        return gx, None, None
    gs = gather(g, dim, index)
    if tuple(src.shape) != tuple(index.shape):
        gs = index_grad(gs, src, items=tuple((0, n, None) for n in index.shape))
    return gx, None, gs


@op("scatter", OTHER, _scatter_infer, parse=_scatter_parse, backward=_scatter_backward, fallback=_GATHER_FALLBACK,
    saves=(1,))
def scatter(x, index, src, dim, reduce):
    """torch.scatter(input, dim, index, src, reduce=None): a copy of input with src (a tensor or a number) written
    at the positions index names along dim (out[index[i][j]][j] = src[i][j] for dim=0); reduce='add' or 'multiply'
    combines with the values there instead. Repeated indices keep one of the written values (as torch, which does not
    say which)."""
    out = x.copy()
    at = _gather_index(index, dim, x.shape[dim])
    values = src[tuple(slice(0, n) for n in index.shape)] if type(src) is np.ndarray else src
    if reduce is None:
        out[at] = values
    else:
        (np.add if reduce == "add" else np.multiply).at(out, at, values)
    return out


def scatter_add(x: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """torch.scatter_add: a copy of input with src added at the positions index names along dim (repeated indices
    accumulate)."""
    return scatter(x, dim, index, src, reduce="add")


_REDUCTIONS = {"sum": (np.add, 0), "prod": (np.multiply, 1), "mean": (np.add, 0), "amax": (np.maximum, -np.inf),
               "amin": (np.minimum, np.inf)}


def _scatter_reduce_parse(x, dim, index, src, reduce: str, *, include_self: bool = True):
    if reduce not in _REDUCTIONS:
        raise ValueError(f"reduce argument must be either sum, prod, mean, amax or amin, got {reduce}")
    return (x, index, src), {"dim": meta.norm_dim(dim, x.ndim), "reduce": reduce, "include_self": bool(include_self)}


def _scatter_reduce_infer(x, index, src, dim, reduce, include_self):
    if not (isinstance(src, Tensor) or hasattr(src, "dtype")):
        raise TypeError("scatter_reduce(): src must be a tensor")
    return _scatter_infer(x, index, src, dim, None)


def _scatter_reduce_backward(c, g):
    """torch's scatter_reduce_backward: sum and mean pass the gradient through (divided by the count for mean);
    amax/amin share it evenly among the elements equal to the result."""
    from .creation import filled, ones_like

    x, index, src = c.inputs
    dim, reduce, include_self = c.attrs["dim"], c.attrs["reduce"], c.attrs["include_self"]
    if reduce == "prod":
        raise NotImplementedError("scatter_reduce(reduce='prod') has no backward rule in graphc")
    block = _index_block(src, index)
    if reduce == "sum":
        gx, gs = g, gather(g, dim, index)
    elif reduce == "mean":
        count = scatter_add(ones_like(x) if include_self else filled(x, 0), dim, index, ones_like(block))
        share = g / clamp(count, min=1)  # a position nothing reached keeps g
        gx, gs = share, gather(share, dim, index)
    else:
        value = gather(c.out, dim, index)
        self_is, src_is = eq(x, c.out), eq(block, value)
        share = g / scatter_add(cast(self_is, g.dtype), dim, index, cast(src_is, g.dtype))
        gx, gs = self_is * share, src_is * gather(share, dim, index)
    if not include_self:
        gx = scatter(gx, dim, index, 0.0)
    if tuple(src.shape) != tuple(index.shape):
        gs = index_grad(gs, src, items=tuple((0, n, None) for n in index.shape))
    return gx, None, gs


@op("scatter_reduce", OTHER, _scatter_reduce_infer, parse=_scatter_reduce_parse, backward=_scatter_reduce_backward,
    fallback=_GATHER_FALLBACK, saves=(0, 1, 2, OUT))
def scatter_reduce(x, index, src, dim, reduce, include_self):
    """torch.scatter_reduce(input, dim, index, src, reduce, *, include_self=True): a copy of input where each
    position that index names along dim holds the reduction ("sum", "prod", "mean", "amax", "amin") of the src
    values scattered there, and of input's own value with include_self (mean divides by that count; integers
    round down); positions nothing is scattered to keep input's value."""
    ufunc, identity = _REDUCTIONS[reduce]
    at = _gather_index(index, dim, x.shape[dim])
    values = src[tuple(slice(0, n) for n in index.shape)]
    out = x.copy()
    if not include_self:
        out[at] = identity if x.dtype.kind == "f" or identity in (0, 1) else (
            np.iinfo(x.dtype).min if identity < 0 else np.iinfo(x.dtype).max)
    ufunc.at(out, at, values)
    if reduce == "mean":
        count = np.full(x.shape, 1 if include_self else 0, np.int64)
        np.add.at(count, at, 1)
        count = np.maximum(count, 1)
        out = out // count if x.dtype.kind in "iu" else (out / count).astype(x.dtype)
    return out


def index_select(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """torch.index_select: the slices of x along dim that a 1-d int index names (a gathered copy)."""
    if not isinstance(index, Tensor) or index.dtype not in (dtypes.int64, dtypes.int32):
        raise op_error("index_select", "Expected dtype int32 or int64 for index", (x, index))
    if index.ndim > 1:
        raise op_error("index_select", "Index is supposed to be a vector", (x, index), IndexError)
    dim = meta.norm_dim(dim, x.ndim)
    if x.ndim == 0:
        return index_select(x.reshape(1), 0, index).reshape(index.shape)
    return _index_op(x, index.reshape(-1) if index.ndim == 0 else index, items=(_FULL,) * dim + (TENSOR,))


def _vector_index(name: str, x: Tensor, dim: int, index: Tensor, source=None) -> tuple:
    """index_add/copy/fill's checks (torch's): a vector or scalar int64 index, a source with one slice per index
    along dim; returns (the items addressing those slices, the index as a vector)."""
    if not isinstance(index, Tensor) or index.dtype is not dtypes.int64:
        raise op_error(name, "Expected a long tensor for index", (x, index))
    if index.ndim > 1:
        raise op_error(name, "Index has to be a vector/scalar", (x, index))
    dim = meta.norm_dim(dim, x.ndim)
    index = index.reshape(-1) if index.ndim == 0 else index
    if isinstance(source, Tensor) and source.ndim and source.shape[dim] != index.shape[0]:
        raise op_error(name, f"Number of indices ({index.shape[0]}) should be equal to source.size(dim): "
                       f"({source.shape[dim]}), for dim: {dim}", (x, index, source))
    return (_FULL,) * dim + (TENSOR,), index


def index_add(x: Tensor, dim: int, index: Tensor, source: Tensor, *, alpha=1) -> Tensor:
    """torch.index_add: x with alpha * source added to the slices along dim that index names (repeated indices
    accumulate)."""
    items, index = _vector_index("index_add", x, dim, index, source)
    return x + index_grad(source if alpha == 1 else source * alpha, x, index, items=items)


def index_copy(x: Tensor, dim: int, index: Tensor, source: Tensor) -> Tensor:
    """torch.index_copy: x with the slices along dim that index names replaced by source's slices."""
    items, index = _vector_index("index_copy", x, dim, index, source)
    return index_put(x, source, index, items=items)


def index_fill(x: Tensor, dim: int, index: Tensor, value) -> Tensor:
    """torch.index_fill: x with the slices along dim that index names set to value (a number or a 0-d tensor)."""
    items, index = _vector_index("index_fill", x, dim, index)
    return index_put(x, value, index, items=items)


def unravel_index(indices, shape) -> tuple[Tensor, ...]:
    """torch.unravel_index: the coordinates in `shape` of flat (row-major) indices, one int64 tensor per dim; from
    floor division and remainder, so negative indices count from the end as torch's do."""
    from .creation import tensor
    from .elementwise import floor_divide, remainder
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    if any(n < 0 for n in shape):
        raise op_error("unravel_index", f"'shape' cannot have negative values, but got {shape}")
    flat = indices if isinstance(indices, Tensor) else tensor(indices)
    if flat.dtype.is_floating_point or flat.dtype is dtypes.bool_:
        raise op_error("unravel_index", f"expected 'indices' to be integer dtype, but got {flat.dtype.name}", (flat,),
                       TypeError)
    coords, stride = [], 1
    for n in reversed(shape):
        coords.append(remainder(floor_divide(flat, stride), n) if n else flat * 0)
        stride *= n
    return tuple(cast(c, dtypes.int64) for c in reversed(coords))


def _masked_scatter_infer(x, mask, source):
    if mask.dtype is not dtypes.bool_:
        raise ValueError(f"expected BoolTensor for mask, got {mask.dtype.name}")
    if source.dtype is not x.dtype:
        raise ValueError(f"expected self and source to have same dtypes but got {x.dtype.name} and "
                         f"{source.dtype.name}")
    meta.broadcast(tuple(mask.shape), tuple(x.shape))
    return tuple(x.shape), x.dtype


def _masked_scatter_backward(c, g):
    from .elementwise import where
    x, mask, source = c.inputs
    return where(mask, 0.0, g), None, masked_scatter_grad(g, mask, source)


@op("masked_scatter", OTHER, _masked_scatter_infer, backward=_masked_scatter_backward, saves=(1, 2),
    fallback="a masked scatter has no Triton lowering: runs on numpy")
def masked_scatter(x, mask, source):
    """torch.masked_scatter(input, mask, source): a copy of input whose elements where mask (broadcast) is true take
    source's elements in order."""
    mask = np.broadcast_to(mask, x.shape)
    count = int(mask.sum())
    if count > source.size:
        raise ValueError(f"the mask selects {count} elements but source has only {source.size}")
    out = x.copy()
    out[mask] = source.reshape(-1)[:count]
    return out


@op("masked_scatter_grad", OTHER, lambda g, mask, source: (tuple(source.shape), g.dtype),
    fallback="a masked scatter has no Triton lowering: runs on numpy")
def masked_scatter_grad(g, mask, source):
    """The gradient of masked_scatter for source: g's masked elements in order, zeros for source's unread rest."""
    picked = g[np.broadcast_to(mask, g.shape)]
    out = np.zeros(source.size, g.dtype)
    out[:picked.size] = picked
    return out.reshape(source.shape)


def masked_select(x: Tensor, mask: Tensor) -> Tensor:
    """torch.masked_select: the elements of x where the bool mask (broadcast with x) is true, as a 1-d tensor. Its
    size depends on the mask's values: inside graphc.compile that is a graph break."""
    if not isinstance(mask, Tensor) or mask.dtype is not dtypes.bool_:
        raise op_error("masked_select", "expected BoolTensor for mask", (x, mask))
    try:
        shape = meta.broadcast(tuple(x.shape), tuple(mask.shape))
    except ValueError as e:
        raise op_error("masked_select", str(e), (x, mask)) from None
    from .view import expand
    shape = shape or (1,)  # numpy's boolean index of a 0-d array is not a selection
    return subscript(expand(x, *shape), expand(mask, *shape))


def nonzero(x: Tensor, *, as_tuple: bool = False):
    """torch.nonzero: the indices of x's non-zero elements, one row per element ((n, ndim) int64), or with
    as_tuple=True one 1-d index tensor per dim. Reads x's values (a graph break inside graphc.compile)."""
    data = x._host()
    found = np.nonzero(data.reshape(1) if x.ndim == 0 else data)
    if as_tuple:
        return tuple(Tensor._make(i.astype(np.int64), dtypes.int64) for i in found)
    return Tensor._make(np.stack(found, -1)[:, :x.ndim].astype(np.int64), dtypes.int64)


def argwhere(x: Tensor) -> Tensor:
    """torch.argwhere: nonzero(x)."""
    return nonzero(x)


__all__ = ["gather", "scatter", "scatter_add", "scatter_reduce", "index_select", "index_add", "index_copy",
           "index_fill", "masked_select", "masked_scatter", "nonzero", "argwhere", "unravel_index"]
