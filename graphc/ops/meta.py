"""Shape and dtype inference shared by op definitions: broadcasting, dims, reductions."""
from __future__ import annotations

from .. import dtypes
from ..state import STATE

_SCALAR_CATEGORY = {bool: 0, int: 1, float: 2}
_ALL_DIMS = [tuple(range(n)) for n in range(65)]
ALL_DIMS_LIST = [list(range(n)) for n in range(65)]
REVERSED_DIMS = [tuple(range(n))[::-1] for n in range(65)]


def specialized_size(x, dim: int) -> int:
    """x.shape[dim], for library code whose structure depends on it (how many views split or unbind make, where
    each starts, how many steps a recurrent layer runs): inside graphc.compile the traced program is specialised to
    that size, so it joins the guards, as a size user code reads does. Elsewhere library code stays shape-relative
    (expand_as, sum_to, view(-1, ...)) so that a new batch size replays."""
    if STATE.capture is not None:
        STATE.capture.note_sizes(x, (dim,))
    return x.shape[dim]


def specialized_numel(x) -> int:
    """x.numel(), for library code that loops over x's elements (a Jacobian's rows): every size is a guard."""
    n = 1
    for d in range(x.ndim):
        n *= specialized_size(x, d)
    return n


def is_node(x) -> bool:
    """Is x a graph node (the compiler's IR Node: an operand that is not a Python number)? For the patterns an op
    replaces (dispatch.op's replaces)."""
    return hasattr(x, "kind") and hasattr(x, "inputs")


def is_specialized(node, dim: int) -> bool:
    """Whether the program being traced is specialised to this IR node's size along dim (a guard of the compiled
    function: split built its views from it, or user code read it)."""
    return STATE.capture is not None and STATE.capture.is_specialized(node, dim)


def shape_of(x) -> tuple[int, ...]:
    return () if type(x) in _SCALAR_CATEGORY else tuple(x.shape)


def broadcast(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """torch/numpy broadcasting of shapes; refuses with every shape named."""
    out = tuple(shapes[0])
    for shape in shapes[1:]:
        shape = tuple(shape)
        if shape == out:
            continue
        lead = len(shape) - len(out)
        a, b = ((1,) * lead + out, shape) if lead > 0 else (out, (1,) * -lead + shape)
        sizes = []
        for i, (m, n) in enumerate(zip(a, b)):
            if m == n or n == 1:
                sizes.append(m)
            elif m == 1:
                sizes.append(n)
            else:
                raise ValueError("shapes " + " and ".join(str(list(s)) for s in shapes) + " are not broadcastable "
                                 f"(size {n} against {m} at dim {i - len(a)})")
        out = tuple(sizes)
    return out


def elementwise(*xs):
    """Broadcast shape and promoted dtype of an elementwise op (fast when shapes or dtypes already agree)."""
    first = xs[0]
    if type(first) in _SCALAR_CATEGORY:
        return broadcast(*[shape_of(x) for x in xs]), dtypes.result_type(*xs)
    shape, dt = first.shape, first.dtype
    same_dtype = True
    for x in xs:
        category = _SCALAR_CATEGORY.get(type(x))
        if category is not None:
            if category > dt.category:
                same_dtype = False
            continue
        if x.dtype is not dt:
            same_dtype = False
        other = x.shape
        if other != shape:
            shape = broadcast(shape, other)
    return tuple(shape), (dt if same_dtype else dtypes.result_type(*xs))


def floating(*xs):
    """Like elementwise, but integer and bool results become the default dtype (exp, div, sqrt ...)."""
    shape, dt = elementwise(*xs)
    return shape, dt if dt.is_floating_point else dtypes.get_default_dtype()


def predicate(*xs):
    """Like elementwise, with a bool result (comparisons, logical ops)."""
    return elementwise(*xs)[0], dtypes.bool_


def same(x, *rest, **attrs):
    """The output has the first input's shape and dtype."""
    return tuple(x.shape), x.dtype


def norm_dim(dim: int, ndim: int) -> int:
    """A dim in [-ndim, ndim) as a non-negative index (a 0-d tensor accepts dims 0 and -1)."""
    n = ndim or 1
    if type(dim) is not int:
        dim = dim.__index__()
    if not -n <= dim < n:
        raise IndexError(f"dim {dim} is out of range for a tensor with {ndim} dims (expected [{-n}, {n - 1}])")
    return dim % n


def norm_dims(dim, ndim: int) -> tuple[int, ...]:
    """dim=None (all), an int or a sequence as a sorted tuple of non-negative dims."""
    if dim is None:
        return _ALL_DIMS[ndim]
    if type(dim) is int or hasattr(dim, "__index__"):  # numpy integers are ints, as in torch
        dim = norm_dim(dim, ndim)
        return (dim,) if ndim else ()
    dims = tuple(dim)
    out = tuple(sorted({norm_dim(d, ndim) for d in dims}))
    if len(out) != len(dims):
        raise ValueError(f"dim {list(dims)} repeats a dimension")
    return out if ndim else ()


def norm_dim_list(dims, ndim: int) -> tuple[int, ...]:
    """Each dim of a sequence made non-negative, order kept (permute, flip)."""
    n = ndim or 1
    return tuple(d % n if type(d) is int and -n <= d < n else norm_dim(d, ndim) for d in dims)


def reduced(shape: tuple[int, ...], dims: tuple[int, ...], keepdim: bool) -> tuple[int, ...]:
    """The shape left after reducing dims (kept as size 1 with keepdim)."""
    if len(dims) == len(shape):
        return (1,) * len(shape) if keepdim else ()
    if keepdim:
        return tuple([1 if i in dims else n for i, n in enumerate(shape)])
    return tuple([n for i, n in enumerate(shape) if i not in dims])


def reduced_dims(dim, ndim: int) -> tuple[int, ...]:
    """The dims a reduction reduces: like norm_dims, but an empty list means all dims, as in torch."""
    return norm_dims(None if type(dim) in (tuple, list) and len(dim) == 0 else dim, ndim)


def reduction_parse(x, dim=None, keepdim: bool = False):
    """Canonical (inputs, attrs) of a reduction called as f(x, dim=None, keepdim=False)."""
    return (x,), {"dim": reduced_dims(dim, x.ndim), "keepdim": bool(keepdim)}
