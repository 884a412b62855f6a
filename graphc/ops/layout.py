"""Shape and layout ops beyond plain views: triangles (tril, triu), diagonals, flip, roll, narrow, outer, tile,
repeat_interleave, meshgrid. Ops that read element positions (tril, diagonal, flip, roll) have no Triton lowering
yet: their expression templates see values, not indices, so they run on numpy in a compiled plan."""
from __future__ import annotations

import warnings

import numpy as np

from .. import dtypes
from ..dispatch import OTHER, VIEW, op
from ..errors import op_error
from ..tensor import Tensor
from . import meta
from .creation import zeros_like
from .elementwise import mul, ne
from .indexing import _FULL, gather, getitem, index_put, index_select
from .view import _dims_arg, _sizes, clone, expand, flatten, repeat, reshape, transpose, unsqueeze

_POSITIONS = "reads element positions, which Triton expression templates do not see: runs on numpy"


def _triangle_parse(x, diagonal: int = 0):
    return (x,), {"diagonal": int(diagonal)}


def _triangle_infer(name: str):
    def infer(x, diagonal):
        if x.ndim < 2:
            raise ValueError(f"{name}: input tensor must have at least 2 dimensions")
        return tuple(x.shape), x.dtype
    return infer


@op("tril", OTHER, _triangle_infer("tril"), parse=_triangle_parse, fallback=_POSITIONS, saves=(),
    backward=lambda c, g: (tril(g, c.attrs["diagonal"]),))
def tril(x, diagonal):
    """torch.tril(input, diagonal=0): the lower triangle of the last two dims (column - row <= diagonal), zeros
    elsewhere."""
    return np.tril(x, diagonal)


@op("triu", OTHER, _triangle_infer("triu"), parse=_triangle_parse, fallback=_POSITIONS, saves=(),
    backward=lambda c, g: (triu(g, c.attrs["diagonal"]),))
def triu(x, diagonal):
    """torch.triu(input, diagonal=0): the upper triangle of the last two dims (column - row >= diagonal), zeros
    elsewhere."""
    return np.triu(x, diagonal)


def _dims_parse(name: str, x, dims) -> tuple:
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    out = meta.norm_dim_list(dims, x.ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: dim {next(d for d in out if out.count(d) > 1)} appears multiple times in the list "
                         "of dims")
    return out


def _flip_parse(x, *dims, **kwargs):
    return (x,), {"dims": _dims_parse("flip", x, _dims_arg("flip", dims, kwargs))}


@op("flip", OTHER, meta.same, parse=_flip_parse,
    fallback=_POSITIONS, saves=(), backward=lambda c, g: (flip(g, c.attrs["dims"]),))
def flip(x, dims):
    """torch.flip(input, dims): a copy with the order of elements reversed along each of dims."""
    return np.flip(x, dims if x.ndim else ()).copy()


def _roll_parse(x, shifts, dims=None):
    shifts = (shifts,) if isinstance(shifts, int) else tuple(int(s) for s in shifts)
    if dims is None:
        if len(shifts) != 1:
            raise ValueError(f"roll: shifts and dimensions must align. shifts: {len(shifts)}, dims: 0")
        return (x,), {"shifts": shifts, "dims": None}
    if not x.ndim:
        raise IndexError(f"Dimension specified as {dims} but tensor has no dimensions")
    dims = _dims_parse("roll", x, dims) if not isinstance(dims, int) else (meta.norm_dim(dims, x.ndim),)
    if len(shifts) != len(dims):
        raise ValueError(f"roll: shifts and dimensions must align. shifts: {len(shifts)}, dims: {len(dims)}")
    return (x,), {"shifts": shifts, "dims": dims}


@op("roll", OTHER, lambda x, shifts, dims: (tuple(x.shape), x.dtype), parse=_roll_parse, fallback=_POSITIONS, saves=(),
    backward=lambda c, g: (roll(g, tuple(-s for s in c.attrs["shifts"]), c.attrs["dims"]),))
def roll(x, shifts, dims):
    """torch.roll(input, shifts, dims=None): elements shifted along dims, wrapping around (without dims, over the
    flattened tensor, shape kept)."""
    return np.roll(x, shifts if dims is not None else shifts[0], dims)


def narrow(x: Tensor, dim: int, start, length: int) -> Tensor:
    """torch.narrow: the view x[..., start:start + length, ...] along dim (start may be negative or a 0-d tensor)."""
    dim = meta.norm_dim(dim, x.ndim)
    n = x.shape[dim]
    start = int(start)
    if not -n <= start <= n:
        raise op_error("narrow", f"start ({start}) out of range for dimension {dim} of size {n}", (x,), IndexError)
    start %= n if n else 1
    if length < 0 or start + length > n:
        raise op_error("narrow", f"start ({start}) + length ({length}) exceeds dimension size ({n}).", (x,))
    return getitem(x, items=(_FULL,) * dim + ((start, start + length, None),))


def _diagonal_attrs(x, offset: int, dim1: int, dim2: int) -> dict:
    d1, d2 = meta.norm_dim(dim1, x.ndim), meta.norm_dim(dim2, x.ndim)
    if d1 == d2:
        raise ValueError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    return {"offset": int(offset), "dim1": d1, "dim2": d2}


def _diagonal_parse(x, offset: int = 0, dim1: int = 0, dim2: int = 1):
    return (x,), _diagonal_attrs(x, offset, dim1, dim2)


def _diagonal_scatter_parse(x, src, offset: int = 0, dim1: int = 0, dim2: int = 1):
    return (x, src), _diagonal_attrs(x, offset, dim1, dim2)


def _diagonal_shape(shape: tuple, offset: int, dim1: int, dim2: int) -> tuple:
    n = max(0, min(shape[dim1], shape[dim2] - offset) if offset >= 0 else min(shape[dim1] + offset, shape[dim2]))
    return tuple(s for i, s in enumerate(shape) if i not in (dim1, dim2)) + (n,)


def _diagonal_view(x: np.ndarray, offset: int, dim1: int, dim2: int) -> np.ndarray:
    """A writable strided view of the diagonal (np.diagonal's is read-only; torch's is a view one can write)."""
    start = [slice(None)] * x.ndim
    start[dim2 if offset >= 0 else dim1] = slice(abs(offset), None)
    base = x[tuple(start)]
    strides = [s for i, s in enumerate(base.strides) if i not in (dim1, dim2)] + [base.strides[dim1] +
                                                                                 base.strides[dim2]]
    return np.lib.stride_tricks.as_strided(base, _diagonal_shape(x.shape, offset, dim1, dim2), strides)


def _diagonal_scatter_infer(x, src, offset, dim1, dim2):
    want = _diagonal_shape(tuple(x.shape), offset, dim1, dim2)
    if meta.broadcast(tuple(src.shape), want) != want:
        raise ValueError(f"src of shape {list(src.shape)} does not fit the diagonal of shape {list(want)}")
    return tuple(x.shape), x.dtype


def _diagonal_scatter_backward(c, g):
    x, src = c.inputs
    attrs = c.attrs
    gx = diagonal_scatter(g, zeros_like(diagonal(g, **attrs)), **attrs) if x.requires_grad else None
    return gx, (diagonal(g, **attrs) if src.requires_grad else None)


@op("diagonal_scatter", OTHER, _diagonal_scatter_infer, parse=_diagonal_scatter_parse,
    backward=_diagonal_scatter_backward, fallback=_POSITIONS, saves=())
def diagonal_scatter(x, src, offset, dim1, dim2):
    """torch.diagonal_scatter(input, src, offset=0, dim1=0, dim2=1): a copy of input with src written on the diagonal
    that diagonal(input, offset, dim1, dim2) reads (also the gradient of diagonal, and its inverse as a view)."""
    out = x.copy()
    _diagonal_view(out, offset, dim1, dim2)[...] = src
    return out


@op("diagonal", VIEW, lambda x, offset, dim1, dim2: (_diagonal_shape(tuple(x.shape), offset, dim1, dim2), x.dtype),
    parse=_diagonal_parse, fallback=_POSITIONS, saves=(),
    backward=lambda c, g: (diagonal_scatter(zeros_like(c.inputs[0]), g, **c.attrs),),
    inverse=lambda base, value, **attrs: diagonal_scatter(base, value, **attrs))
def diagonal(x, offset, dim1, dim2):
    """torch.diagonal(input, offset=0, dim1=0, dim2=1): a view of the diagonal of dims dim1 and dim2 (above it for
    offset > 0), as a new last dim."""
    return _diagonal_view(x, offset, dim1, dim2)


def _diag_parse(x, diagonal: int = 0):
    if x.ndim not in (1, 2):
        raise ValueError(f"diag(): Supports 1D or 2D tensors. Got {x.ndim}D")
    return (x,), {"diagonal": int(diagonal)}


def _diag_infer(x, diagonal):
    if x.ndim == 2:
        return _diagonal_shape(tuple(x.shape), diagonal, 0, 1), x.dtype
    n = x.shape[0] + abs(diagonal)
    return (n, n), x.dtype


def _diag_backward(c, g):
    x, k = c.inputs[0], c.attrs["diagonal"]
    return (diagonal(g, k) if x.ndim == 1 else diagonal_scatter(zeros_like(x), g, k, 0, 1),)


@op("diag", OTHER, _diag_infer, parse=_diag_parse, fallback=_POSITIONS, saves=(), backward=_diag_backward)
def diag(x, diagonal):
    """torch.diag(input, diagonal=0): a 1-d input as the diagonal of a square matrix (zeros elsewhere); a 2-d
    input's diagonal as a 1-d copy."""
    return np.diag(x, diagonal).copy()


def outer(x: Tensor, vec2: Tensor) -> Tensor:
    """torch.outer: out[i, j] = x[i] * vec2[j] for 1-d x and vec2 (a broadcast multiply, fused like one)."""
    for name, v in (("self", x), ("vec2", vec2)):
        if v.ndim != 1:
            raise op_error("outer", f"Expected 1-D argument {name}, but got {v.ndim}-D", (x, vec2))
    return mul(unsqueeze(x, 1), unsqueeze(vec2, 0))


ger = outer


def tile(x: Tensor, *dims) -> Tensor:
    """torch.tile: x repeated dims[i] times along each dim; missing leading dims count as 1 (unlike repeat)."""
    if not dims:
        raise TypeError('tile() missing 1 required positional arguments: "dims"')
    dims = _sizes(dims)
    return repeat(x, (1,) * (x.ndim - len(dims)) + dims)


def repeat_interleave(x: Tensor, repeats=None, dim: int | None = None, *, output_size: int | None = None) -> Tensor:
    """torch.repeat_interleave: each element (slice along dim; of the flattened x without dim) repeated `repeats`
    times in place. An int repeats is a view-and-expand (shape-generic); a tensor of per-element repeats depends on
    its values (a graph break inside graphc.compile). repeat_interleave(repeats) alone repeats arange(len)."""
    if repeats is None:
        repeats, x = x, None
    if x is None:
        from .creation import arange
        return repeat_interleave(arange(repeats.shape[0]), repeats, 0)
    if dim is None:
        x, dim = flatten(x), 0
    dim = meta.norm_dim(dim, x.ndim)
    if isinstance(repeats, Tensor) and repeats.numel() == 1 and repeats.ndim <= 1:
        repeats = int(repeats.item())
    if isinstance(repeats, int):
        if repeats < 0:
            raise op_error("repeat_interleave", f"repeats can not be negative, got {repeats}", (x,))
        if x.ndim == 0:
            x = reshape(x, 1)
        out = flatten(expand(unsqueeze(x, dim + 1), *([-1] * (dim + 1) + [repeats] + [-1] * (x.ndim - dim - 1))),
                      dim, dim + 1)
        # a new tensor, as torch's: the flatten views x where it can (a size-1 dim, or repeats of 1; always when traced)
        return clone(out) if out._data is None or np.may_share_memory(out._data, x._data) else out
    counts = np.asarray(repeats._host() if isinstance(repeats, Tensor) else repeats)
    if counts.ndim != 1 or counts.dtype.kind not in "iu":
        raise op_error("repeat_interleave", "repeats must be 0-dim or 1-dim int tensor", (x, repeats))
    if counts.shape[0] != x.shape[dim]:
        raise op_error("repeat_interleave", f"repeats must have the same size as input along dim ({counts.shape[0]} "
                       f"and {x.shape[dim]})", (x, repeats))
    if (counts < 0).any():
        raise op_error("repeat_interleave", "repeats can not be negative", (x, repeats))
    positions = Tensor._make(np.repeat(np.arange(counts.shape[0]), counts), dtypes.int64)
    return index_select(x, dim, positions)


def meshgrid(*tensors, indexing: str | None = None) -> tuple[Tensor, ...]:
    """torch.meshgrid: coordinate grids of 0-d or 1-d tensors, as expanded views; indexing='ij' (the default, as in
    torch, which warns when it is not given) or 'xy' (the first two output dims swapped)."""
    if len(tensors) == 1 and isinstance(tensors[0], (list, tuple)):
        tensors = tuple(tensors[0])
    if indexing not in (None, "ij", "xy"):
        raise op_error("meshgrid", f"indexing must be one of 'xy' or 'ij', got {indexing!r}", tensors)
    if not tensors:
        raise op_error("meshgrid", "expects a non-empty TensorList", ())
    if any(t.ndim > 1 for t in tensors):
        raise op_error("meshgrid", "Expected 0D or 1D tensor in the tensor list", tensors)
    if len({t.dtype for t in tensors}) > 1:
        raise op_error("meshgrid", "expects all tensors to have the same dtype", tensors)
    if indexing is None:
        warnings.warn("meshgrid: in an upcoming release, it will be required to pass the indexing argument (as "
                      "torch warns); 'ij' is used", UserWarning, stacklevel=2)
    swap = indexing == "xy" and len(tensors) >= 2
    order = [1, 0, *range(2, len(tensors))] if swap else list(range(len(tensors)))
    sizes = [meta.specialized_size(tensors[i], 0) if tensors[i].ndim else 1 for i in order]
    grids = []
    for position, i in enumerate(order):
        shape = [1] * len(tensors)
        shape[position] = -1
        grids.append(expand(reshape(tensors[i], *shape), *sizes))
    return tuple(grids[order.index(i)] for i in range(len(tensors)))


def take_along_dim(x: Tensor, indices: Tensor, dim: int | None = None) -> Tensor:
    """torch.take_along_dim: the elements of x at indices along dim (x and indices broadcast in the other dims), or
    of flattened x at flattened indices without dim; gradients flow to x."""
    if dim is None:
        return gather(reshape(x, (-1,)), 0, reshape(indices, (-1,)))
    if x.ndim != indices.ndim:
        raise op_error("take_along_dim", f"input and indices should have the same number of dimensions, but got "
                       f"{x.ndim} dimensions for input, and {indices.ndim} dimensions for indices", (x, indices))
    d = meta.norm_dim(dim, x.ndim)
    rest = meta.broadcast(*(tuple(t.shape[:d]) + (1,) + tuple(t.shape[d + 1:]) for t in (x, indices)))
    x = expand(x, *rest[:d], x.shape[d], *rest[d + 1:])
    return gather(x, d, expand(indices, *rest[:d], indices.shape[d], *rest[d + 1:]))


def select(x: Tensor, dim: int, index: int) -> Tensor:
    """torch.select: the slice of x at index along dim, without that dim (a view)."""
    d = meta.norm_dim(dim, x.ndim)
    n = x.shape[d]
    if not -n <= index < n:
        raise op_error("select", f"index {index} out of range for tensor of size {list(x.shape)} at dimension {d}",
                       (x,), IndexError)
    return getitem(x, items=(_FULL,) * d + (index % n,))


def take(x: Tensor, index: Tensor) -> Tensor:
    """torch.take: the elements of x, read as 1-d, at index (any shape; the result has index's shape)."""
    return reshape(x, (-1,))[index]


def select_scatter(x: Tensor, src: Tensor, dim: int, index: int) -> Tensor:
    """torch.select_scatter: a copy of x with src written into select(x, dim, index)."""
    d = meta.norm_dim(dim, x.ndim)
    return index_put(x, src, items=(_FULL,) * d + (index % x.shape[d],))


def slice_scatter(x: Tensor, src: Tensor, dim: int = 0, start: int | None = None, end: int | None = None,
                  step: int = 1) -> Tensor:
    """torch.slice_scatter: a copy of x with src written into x[..., start:end:step, ...] along dim."""
    d = meta.norm_dim(dim, x.ndim)
    return index_put(x, src, items=(_FULL,) * d + ((start, end, step),))


def fliplr(x: Tensor) -> Tensor:
    """torch.fliplr: x with dim 1 reversed (at least 2-d)."""
    if x.ndim < 2:
        raise op_error("fliplr", "Input must be >= 2-d.", (x,))
    return flip(x, (1,))


def flipud(x: Tensor) -> Tensor:
    """torch.flipud: x with dim 0 reversed (at least 1-d)."""
    if x.ndim < 1:
        raise op_error("flipud", "Input must be >= 1-d.", (x,))
    return flip(x, (0,))


def rot90(x: Tensor, k: int = 1, dims=(0, 1)) -> Tensor:
    """torch.rot90: x rotated by 90 degrees k times in the plane of dims, from the first towards the second."""
    dims = list(dims)
    if len(dims) != 2:
        raise op_error("rot90", f"expected total rotation dims == 2, but got dims = {len(dims)}", (x,))
    d0, d1 = meta.norm_dim_list(dims, x.ndim)
    if x.ndim < 2 or d0 == d1:
        raise op_error("rot90", f"expected total dims >= 2 and distinct rotation dims, but got total dims = "
                       f"{x.ndim}, rotation dims = {dims}", (x,))
    k %= 4
    if k == 1:
        return transpose(flip(x, (d1,)), d0, d1)
    if k == 2:
        return flip(x, (d0, d1))
    if k == 3:
        return transpose(flip(x, (d0,)), d0, d1)
    return x.clone()


def diff(x: Tensor, n: int = 1, dim: int = -1, prepend: Tensor | None = None, append: Tensor | None = None) -> Tensor:
    """torch.diff: the n-th forward difference along dim (x[i + 1] - x[i], applied n times; logical xor for bool),
    after prepend and append are joined to x along dim."""
    from .join import cat
    if x.ndim == 0:
        raise op_error("diff", "diff expects input to be at least one-dimensional", (x,))
    d = meta.norm_dim(dim, x.ndim)
    parts = [t for t in (prepend, x, append) if t is not None]
    if len(parts) > 1:
        x = cat([t if t.ndim == x.ndim else expand(reshape(t, (1,) * x.ndim), *x.shape[:d], 1, *x.shape[d + 1:])
                 for t in parts], d)
    lead = (_FULL,) * d
    for _ in range(n):
        later, earlier = getitem(x, items=lead + ((1, None, None),)), getitem(x, items=lead + ((None, -1, None),))
        x = ne(later, earlier) if x.dtype is dtypes.bool_ else later - earlier
    return x


def diag_embed(x: Tensor, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
    """torch.diag_embed: matrices (in dims dim1 and dim2 of the result) whose diagonal at offset holds x's last dim;
    zeros elsewhere."""
    from .creation import filled, zeros
    from .view import movedim
    n = x.shape[-1] + abs(offset)
    out_ndim = x.ndim + 1
    d1, d2 = meta.norm_dim(dim1, out_ndim), meta.norm_dim(dim2, out_ndim)
    if d1 == d2:
        raise op_error("diag_embed", f"diagonal dimensions cannot be identical {dim1}, {dim2}", (x,))
    # on the main diagonal the zeros take x's sizes shape-relatively, so a compiled plan follows new sizes
    base = filled(unsqueeze(x, -1) * unsqueeze(x, -2), 0) if offset == 0 else zeros(*x.shape[:-1], n, n,
                                                                                   dtype=x.dtype)
    square = diagonal_scatter(base, x, offset, -2, -1)
    return movedim(square, (-2, -1), (d1, d2))


def diagflat(x: Tensor, offset: int = 0) -> Tensor:
    """torch.diagflat: a matrix with flattened x on its diagonal at offset."""
    return diag(reshape(x, (-1,)), offset)


def block_diag(*tensors) -> Tensor:
    """torch.block_diag: the tensors (each 0-, 1- or 2-d, made 2-d) as blocks on the diagonal of one matrix, zeros
    elsewhere (dtypes promoted)."""
    from .creation import zeros
    from .join import cat
    blocks = []
    for t in tensors:
        if t.ndim > 2:
            raise op_error("block_diag", f"Input tensors must have 2 or fewer dimensions. Input {len(blocks)} has "
                           f"{t.ndim} dimensions", tensors)
        blocks.append(reshape(t, (1, -1)) if t.ndim < 2 else t)
    dt = dtypes.result_type(*blocks) if blocks else dtypes.get_default_dtype()
    width = sum(meta.specialized_size(b, 1) for b in blocks)  # the zero blocks are sized from the widths
    rows, left = [], 0
    for b in blocks:
        pieces = [zeros(b.shape[0], left, dtype=dt), b if b.dtype is dt else b.to(dt),
                  zeros(b.shape[0], width - left - b.shape[1], dtype=dt)]
        rows.append(cat(pieces, 1))
        left += b.shape[1]
    return cat(rows, 0) if rows else zeros(0, 0, dtype=dt)


def trapezoid(y: Tensor, x: Tensor | None = None, *, dx: float | None = None, dim: int = -1) -> Tensor:
    """torch.trapezoid: the trapezoidal rule along dim, with sample points x (a tensor) or a spacing dx (1 by
    default)."""
    d = meta.norm_dim(dim, y.ndim)
    lead = (_FULL,) * d
    later, earlier = getitem(y, items=lead + ((1, None, None),)), getitem(y, items=lead + ((None, -1, None),))
    if x is None:
        return (later + earlier).sum(d) * ((1.0 if dx is None else dx) * 0.5)
    if x.ndim == 1:
        x = reshape(x, (-1,) + (1,) * (y.ndim - 1 - d))
        return ((later + earlier) * diff(x, dim=0 if y.ndim - 1 - d else -1)).sum(d) * 0.5
    return ((later + earlier) * diff(x, dim=d)).sum(d) * 0.5


trapz = trapezoid


def cumulative_trapezoid(y: Tensor, x: Tensor | None = None, *, dx: float | None = None, dim: int = -1) -> Tensor:
    """torch.cumulative_trapezoid: the running trapezoidal integral along dim (one element shorter than y there),
    with sample points x or a spacing dx (1 by default)."""
    from .reduction import cumsum
    d = meta.norm_dim(dim, y.ndim)
    lead = (_FULL,) * d
    pairs = getitem(y, items=lead + ((1, None, None),)) + getitem(y, items=lead + ((None, -1, None),))
    if x is None:
        return cumsum(pairs * ((1.0 if dx is None else dx) * 0.5), d)
    steps = diff(reshape(x, (-1,) + (1,) * (y.ndim - 1 - d)), dim=0) if x.ndim == 1 else diff(x, dim=d)
    return cumsum(pairs * steps * 0.5, d)


def cov(x: Tensor, *, correction: int = 1, fweights: Tensor | None = None, aweights: Tensor | None = None) -> Tensor:
    """torch.cov: the covariance matrix of the variables in x's rows (observations in columns; a 1-d x is one
    variable), each observation weighted by fweights * aweights when given, normalised as torch (numpy.cov's
    formula)."""
    from .matmul import matmul
    from .reduction import sum
    if x.ndim > 2:
        raise op_error("cov", f"cov(): expected input to have two or fewer dimensions but got an input with {x.ndim} "
                       "dimensions", (x,))
    rows = reshape(x, (1, -1)) if x.ndim < 2 else x
    if not rows.dtype.is_floating_point:
        rows = rows.to(dtypes.get_default_dtype())
    weights = None
    for w in (fweights, aweights):
        if w is not None:
            weights = w if weights is None else weights * w
    if weights is None:
        total = meta.specialized_size(rows, 1)
        centered = rows - rows.mean(1, keepdim=True)
        out = matmul(centered, transpose(centered, 0, 1)) / (total - correction)
    else:
        total = sum(weights)
        mean = sum(rows * weights, 1, keepdim=True) / total
        centered = rows - mean
        if correction == 0:
            norm = total
        elif aweights is None:
            norm = total - correction
        else:
            norm = total - correction * sum(weights * aweights) / total
        out = matmul(centered * weights, transpose(centered, 0, 1)) / norm
    # one variable (a 1-d x, or a single row) gives a 0-d covariance, as torch's
    return reshape(out, ()) if x.ndim < 2 or meta.specialized_size(x, 0) == 1 else out


def corrcoef(x: Tensor) -> Tensor:
    """torch.corrcoef: the Pearson correlation coefficients of the variables in x's rows, clipped to [-1, 1]."""
    from .elementwise import clamp, sqrt
    c = cov(x)
    if c.ndim == 0:
        return c / c
    std = sqrt(diagonal(c))
    return clamp(c / unsqueeze(std, 1) / unsqueeze(std, 0), -1, 1)


def cartesian_prod(*tensors) -> Tensor:
    """torch.cartesian_prod: every combination of one element of each 1-d tensor, one per row (the tensor itself for
    one input)."""
    from .join import stack
    if len(tensors) == 1:
        return tensors[0]
    return stack([reshape(g, (-1,)) for g in meshgrid(*tensors, indexing="ij")], 1)


def combinations(x: Tensor, r: int = 2, with_replacement: bool = False) -> Tensor:
    """torch.combinations: the r-length combinations of 1-d x's elements, one per row, in itertools' order."""
    import itertools

    from .creation import tensor
    from .join import stack
    if x.ndim != 1:
        raise op_error("combinations", f"Expect a 1D vector, but got shape {list(x.shape)}", (x,))
    pick = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    rows = list(pick(range(meta.specialized_size(x, 0)), r))
    if not rows:
        return reshape(x[:0], (0,) if r == 0 else (0, r))
    columns = np.array(rows, np.int64).T
    return stack([index_select(x, 0, tensor(c)) for c in columns], 1)


def cdist(x1: Tensor, x2: Tensor, p: float = 2.0, compute_mode: str | None = None) -> Tensor:
    """torch.cdist: the p-norm distance between each row of x1 [..., P, M] and each row of x2 [..., R, M], as
    [..., P, R] (computed directly, as torch's compute_mode='donot_use_mm_for_euclid_dist'; gradient 0 at distance
    0, as torch)."""
    from .reduction import norm
    if not x1.dtype.is_floating_point or not x2.dtype.is_floating_point:
        raise op_error("cdist", f"cdist only supports floating-point dtypes, X1 got: {x1.dtype.name}", (x1, x2))
    if x1.ndim < 2 or x2.ndim < 2:
        raise op_error("cdist", f"cdist only supports at least 2D tensors, X1 got: {x1.ndim}D", (x1, x2))
    if x1.shape[-1] != x2.shape[-1]:
        raise op_error("cdist", f"X1 and X2 must have the same number of columns. X1: {x1.shape[-1]} X2: "
                       f"{x2.shape[-1]}", (x1, x2))
    if p < 0:
        raise op_error("cdist", "cdist only supports non-negative p values", (x1, x2))
    return norm(unsqueeze(x1, -2) - unsqueeze(x2, -3), p, dim=-1)


def dist(x: Tensor, other: Tensor, p: float = 2) -> Tensor:
    """torch.dist: the p-norm of x - other (broadcast)."""
    from .reduction import norm
    return norm(x - other, p)


def vander(x: Tensor, N: int | None = None, increasing: bool = False) -> Tensor:  # noqa: N803  torch's name
    """torch.vander: the Vandermonde matrix of 1-d x: columns x ** (N-1), ..., x ** 0 (ascending with increasing)."""
    from .creation import arange
    if x.ndim != 1:
        raise op_error("vander", "x must be a one-dimensional tensor.", (x,))
    n = meta.specialized_size(x, 0) if N is None else N
    if n < 0:
        raise op_error("vander", "N must be non-negative.", (x,))
    powers = arange(n) if increasing else arange(n - 1, -1, -1)
    base = x if x.dtype.is_floating_point else x.to(dtypes.int64)
    return unsqueeze(base, 1) ** powers

def fill_diagonal_(x: Tensor, fill_value, wrap: bool = False) -> Tensor:
    """torch.Tensor.fill_diagonal_: x[i, i, ...] = fill_value in place for an x of at least 2 dims, all equal beyond
    2; wrap=True continues a tall matrix's diagonal below the first min(rows, cols) rows, every cols + 1 elements.
    Raises RuntimeError for fewer dims or unequal ones."""
    from .creation import tensor

    if x.ndim < 2:
        raise op_error("fill_diagonal_", "dimensions must larger than 1", (x,), RuntimeError)
    if x.ndim > 2 and len(set(x.shape)) != 1:
        raise op_error("fill_diagonal_", "all dimensions of input must be of equal length", (x,), RuntimeError)
    mask = np.zeros(x.shape, dtype=bool)
    if x.ndim == 2:
        rows, cols = x.shape
        mask.reshape(-1)[:None if wrap and rows > cols + 1 else min(rows, cols) * (cols + 1):cols + 1] = True
    else:
        mask[(np.arange(x.shape[0]),) * x.ndim] = True
    return x.masked_fill_(tensor(mask, device=x.device), fill_value)


def narrow_copy(x: Tensor, dim: int, start, length: int) -> Tensor:
    """torch.narrow_copy: a copy of narrow(x, dim, start, length)."""
    return narrow(x, dim, start, length).clone()


__all__ = ["tril", "triu", "flip", "roll", "narrow", "narrow_copy", "diagonal", "diagonal_scatter", "diag", "outer",
           "ger", "tile", "repeat_interleave", "meshgrid", "take_along_dim", "select", "take", "select_scatter",
           "slice_scatter", "fliplr", "flipud", "rot90", "diff", "diag_embed", "diagflat", "block_diag", "trapezoid",
           "cartesian_prod", "combinations", "cdist", "dist", "vander", "trapz", "cumulative_trapezoid", "cov",
           "corrcoef"]
