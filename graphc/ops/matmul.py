"""Matrix products: matmul (torch's 1-d and batched broadcasting rules) and bmm."""
from __future__ import annotations

import numpy as np

from ..amp.autocast_mode import LOWER
from ..dispatch import CROSS, MATMUL, OTHER, op
from ..errors import op_error
from . import meta
from .reduction import sum_to
from .view import flatten, reshape_as, transpose, unsqueeze


def _matmul_infer(a, b):
    sa, sb = a.shape, b.shape
    if len(sa) == 2 and len(sb) == 2 and sa[1] == sb[0] and a.dtype is b.dtype:  # the common case, checked fast
        return (sa[0], sb[1]), a.dtype
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("both arguments to matmul need at least 1 dimension")
    if a.dtype is not b.dtype:
        raise TypeError(f"expected both operands to have the same dtype, got {a.dtype.name} and {b.dtype.name}")
    sa, sb = tuple(a.shape), tuple(b.shape)
    m = sa[:-1] if len(sa) > 1 else ()
    n = sb[-1:] if len(sb) > 1 else ()
    k_a, k_b = sa[-1], (sb[-2] if len(sb) > 1 else sb[0])
    if k_a != k_b:
        raise ValueError(f"shapes {list(sa)} and {list(sb)} cannot be multiplied (inner sizes {k_a} and {k_b} differ)")
    batch = meta.broadcast(sa[:-2], sb[:-2])
    return batch + m[-1:] + n, a.dtype


def _matmul_backward(c, g):
    a, b = c.inputs
    a2 = unsqueeze(a, 0) if a.ndim == 1 else a
    b2 = unsqueeze(b, -1) if b.ndim == 1 else b
    g2 = unsqueeze(g, g.ndim - (b.ndim != 1)) if a.ndim == 1 else g
    g2 = unsqueeze(g2, g2.ndim) if b.ndim == 1 else g2
    ga = sum_to(matmul(g2, transpose(b2, -1, -2)), a2) if a.requires_grad else None
    if not b.requires_grad:
        gb = None
    elif b2.ndim == 2 and a2.ndim > 2:  # rows of a batch times one matrix: one 2-D GEMM over the flattened batch
        gb = matmul(transpose(flatten(a2, 0, -2), 0, 1), flatten(g2, 0, -2))  # shape-relative: no size baked
    else:
        gb = sum_to(matmul(transpose(a2, -1, -2), g2), b2)
    return (reshape_as(ga, a) if ga is not None and a.ndim == 1 else ga,
            reshape_as(gb, b) if gb is not None and b.ndim == 1 else gb)


def _blas_ready(x: np.ndarray) -> np.ndarray:
    """x with unit stride along its last dim: numpy hands only such stacked operands to BLAS (the others go to a
    plain loop, ~50x slower)."""
    return x if x.ndim < 2 or x.strides[-1] == x.itemsize else np.ascontiguousarray(x)


def _matmul_forward(input: np.ndarray, other: np.ndarray) -> np.ndarray:  # noqa: A002  torch's names
    """np.matmul, except that a batch of rows times one matrix (a 3-d linear) is one 2-D GEMM over the flattened
    batch, and stacked operands are made BLAS-ready: numpy broadcasts those cases through a loop that skips BLAS
    when a matrix is a transposed view (10x slower on a GPT step's linears)."""
    if input.ndim > 2 and other.ndim == 2:
        rows = np.ascontiguousarray(input).reshape(-1, input.shape[-1])
        return (rows @ other).reshape(*input.shape[:-1], other.shape[-1])
    if input.ndim > 2 or other.ndim > 2:
        input, other = _blas_ready(input), _blas_ready(other)
    return np.matmul(input, other)


matmul = op("matmul", MATMUL, _matmul_infer, backward=_matmul_backward, saves=(CROSS,), autocast=LOWER,
            onnx="MatMul")(_matmul_forward)


def _bmm_infer(a, b):
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise ValueError(f"bmm expects two 3-d tensors with the same batch size, got {list(a.shape)} and "
                         f"{list(b.shape)}")
    return _matmul_infer(a, b)


bmm = op("bmm", MATMUL, _bmm_infer, backward=_matmul_backward, saves=(CROSS,), autocast=LOWER)(_matmul_forward)



def mm(x, mat2):
    """torch.mm: the product of two 2-d matrices (no broadcasting, unlike matmul)."""
    for name, m in (("self", x), ("mat2", mat2)):
        if m.ndim != 2:
            raise op_error("mm", f"{name} must be a matrix (got {m.ndim}-D)", (x, mat2))
    return matmul(x, mat2)


def _scaled_sum(x, product, beta, alpha):
    """beta * x + alpha * product, with beta=0 ignoring x (NaN in x does not spread), as torch's addmm family; x
    must broadcast to the product's shape (it never widens the result)."""
    want = tuple(product.shape)
    try:
        fits = meta.broadcast(tuple(x.shape), want) == want
    except ValueError:
        fits = False
    if not fits:
        raise op_error("addmm", f"The expanded size of the tensor must match the product's shape: input of shape "
                       f"{list(x.shape)} does not broadcast to {list(want)}", (x, product))
    if alpha != 1:
        product = product * alpha
    if beta == 0:
        return product
    return product + (x if beta == 1 else x * beta)


def addmm(x, mat1, mat2, *, beta=1, alpha=1):
    """torch.addmm: beta * x + alpha * (mat1 @ mat2) for 2-d mat1 and mat2 (x broadcast); one matmul kernel with the
    rest as its epilogue in a compiled plan."""
    return _scaled_sum(x, mm(mat1, mat2), beta, alpha)


def baddbmm(x, batch1, batch2, *, beta=1, alpha=1):
    """torch.baddbmm: beta * x + alpha * bmm(batch1, batch2) (x broadcast)."""
    return _scaled_sum(x, bmm(batch1, batch2), beta, alpha)


def addbmm(x, batch1, batch2, *, beta=1, alpha=1):
    """torch.addbmm: beta * x + alpha * (the sum over the batch of batch1[i] @ batch2[i])."""
    return _scaled_sum(x, bmm(batch1, batch2).sum(0), beta, alpha)


def _vectors(name: str, x, y) -> None:
    if x.ndim != 1 or y.ndim != 1:
        raise op_error(name, f"1D tensors expected, but got {x.ndim}D and {y.ndim}D tensors", (x, y))
    if x.shape[0] != y.shape[0]:
        raise op_error(name, f"inconsistent tensor size, expected tensor [{x.shape[0]}] and src [{y.shape[0]}] to have "
                       f"the same number of elements, but got {x.shape[0]} and {y.shape[0]} elements respectively",
                       (x, y))
    if x.dtype is not y.dtype:
        raise op_error(name, f"expected both vectors to have same dtype, but found {x.dtype.name} and "
                       f"{y.dtype.name}", (x, y))


def dot(x, tensor):  # noqa: A002  torch's name
    """torch.dot: the inner product of two 1-d tensors of one size and dtype."""
    _vectors("dot", x, tensor)
    return matmul(x, tensor)


def vdot(x, other):
    """torch.vdot: dot (graphc has no complex dtypes, so nothing is conjugated)."""
    _vectors("vdot", x, other)
    return matmul(x, other)


def mv(x, vec):
    """torch.mv: the product of a 2-d matrix and a 1-d vector."""
    if x.ndim != 2 or vec.ndim != 1:
        raise op_error("mv", f"vector + matrix @ vector expected, got {x.ndim}, {vec.ndim}", (x, vec))
    return matmul(x, vec)


def addmv(x, mat, vec, *, beta=1, alpha=1):
    """torch.addmv: beta * x + alpha * (mat @ vec) (x broadcast)."""
    return _scaled_sum(x, mv(mat, vec), beta, alpha)


def addr(x, vec1, vec2, *, beta=1, alpha=1):
    """torch.addr: beta * x + alpha * outer(vec1, vec2) (x broadcast)."""
    from .layout import outer
    return _scaled_sum(x, outer(vec1, vec2), beta, alpha)


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def tensordot(a, b, dims=2):
    """torch.tensordot: a and b contracted over dims (an int n: a's last n with b's first n; or two lists of dims),
    the free dims of a then of b; one einsum, so its gradient and compiled plan are einsum's."""
    if isinstance(dims, int):
        if dims < 0:
            raise op_error("tensordot", f"tensordot expects dims >= 0, but got dims={dims}", (a, b))
        left, right = list(range(a.ndim - dims, a.ndim)), list(range(dims))
    else:
        left, right = ([d] if isinstance(d, int) else list(d) for d in dims)
    if len(left) != len(right):
        raise op_error("tensordot", f"both dimension lists should have same length, got {left} and {right}", (a, b))
    left, right = meta.norm_dim_list(left, a.ndim), meta.norm_dim_list(right, b.ndim)
    for i, j in zip(left, right):
        if a.shape[i] != b.shape[j]:
            raise op_error("tensordot", f"contracted dimensions need to match, but first has size {a.shape[i]} in dim "
                           f"{i} and second has size {b.shape[j]} in dim {j}", (a, b))
    sa = list(_LETTERS[:a.ndim])
    sb = list(_LETTERS[a.ndim:a.ndim + b.ndim])
    for i, j in zip(left, right):
        sb[j] = sa[i]
    out = [c for i, c in enumerate(sa) if i not in left] + [c for j, c in enumerate(sb) if j not in right]
    return einsum(f"{''.join(sa)},{''.join(sb)}->{''.join(out)}", a, b)


def inner(x, other):
    """torch.inner: the sum of products over the last dims of x and other (a product when either is 0-d)."""
    if x.ndim == 0 or other.ndim == 0:
        return x * other
    return tensordot(x, other, ([-1], [-1]))


def kron(x, other):
    """torch.kron: the Kronecker product (each element of x times the whole of other, in x's block layout); built
    from unsqueeze, a broadcast multiply and flatten, so it holds no sizes."""
    n = max(x.ndim, other.ndim)
    a, b = _with_dims(x, n), _with_dims(other, n)
    for d in range(n):
        a, b = unsqueeze(a, 2 * d + 1), unsqueeze(b, 2 * d)
    out = a * b
    for d in range(n):
        out = flatten(out, d, d + 1)
    return out


def _with_dims(x, n: int):
    """x with leading dims of size 1 added up to n dims."""
    for _ in range(n - x.ndim):
        x = unsqueeze(x, 0)
    return x


def _einsum_parse(equation: str, *operands):
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    equation = equation.replace(" ", "")
    if "->" not in equation:  # implicit output: the labels used once, sorted, after any broadcast dims
        labels = equation.replace(",", "").replace("...", "")
        once = "".join(sorted(c for c in set(labels) if labels.count(c) == 1))
        equation += "->" + ("..." if "..." in equation else "") + once
    terms = equation.split("->")[0].split(",")
    if len(terms) != len(operands):
        raise ValueError(f"einsum: {equation!r} names {len(terms)} operands but {len(operands)} were given")
    return operands, {"equation": equation}


def _einsum_infer(*operands, equation):
    dt = operands[0].dtype
    for x in operands:
        if x.dtype is not dt:
            raise TypeError(f"operands must have one dtype, got {', '.join(o.dtype.name for o in operands)}")
    inputs, output = equation.split("->")
    sizes: dict[str, int] = {}
    batch: tuple = ()
    for term, x in zip(inputs.split(","), operands):
        shape = tuple(x.shape)
        head, _, tail = term.partition("...")
        extra = len(shape) - len(head) - len(tail)
        if extra < 0 or (extra and "..." not in term):
            raise ValueError(f"subscripts {term!r} do not fit an operand of shape {list(shape)}")
        batch = meta.broadcast(batch, shape[len(head):len(head) + extra])
        for label, n in zip(head + tail, shape[:len(head)] + shape[len(head) + extra:]):
            have = sizes.setdefault(label, n)
            if have != n and 1 not in (have, n):
                raise ValueError(f"label {label!r} has sizes {have} and {n}")
            sizes[label] = n if have == 1 else have
    head, ellipsis, tail = output.partition("...")
    unknown = set(head + tail) - set(sizes)
    if unknown:
        raise ValueError(f"output labels {sorted(unknown)} appear in no operand")
    return tuple(sizes[c] for c in head) + (batch if ellipsis else ()) + tuple(sizes[c] for c in tail), dt


def _einsum_backward(c, g):
    """Operand i's gradient is the einsum of g with the other operands back to operand i's subscripts; labels only
    operand i has (summed out) come from a ones_like(operand) factor, broadcast dims are summed back. A label repeated
    within operand i (a diagonal, as in 'ii->i') gets the gradient of its diagonal written back onto the diagonal."""
    from .creation import ones_like

    inputs, output = c.attrs["equation"].split("->")
    terms = inputs.split(",")
    grads = []
    for i, (x, term) in enumerate(zip(c.inputs, terms)):
        if not x.requires_grad:
            grads.append(None)
            continue
        unique = "".join(dict.fromkeys(term.replace("...", "."))).replace(".", "...")
        subscripts = [output] + [t for j, t in enumerate(terms) if j != i]
        operands = [g] + [o for j, o in enumerate(c.inputs) if j != i]
        seen = "".join(subscripts)
        if any(ch not in seen for ch in unique.replace("...", "")) or ("..." in term and "..." not in seen):
            subscripts.append(term)
            operands.append(ones_like(x))
        target = "..." + unique if "..." in seen and "..." not in unique else unique  # numpy cannot sum '...' away
        gi = einsum(",".join(subscripts) + "->" + target, *operands)
        if unique == term:
            if gi.shape != x.shape:  # a label of size 1 in one operand broadcast against n in another
                full = meta.broadcast(tuple(gi.shape), tuple(x.shape))
                gi = sum_to(gi if tuple(gi.shape) == full else gi.expand(*full), x)
            grads.append(gi)
            continue
        diagonal = f"{term}->{unique}"
        if gi.shape != _diagonal_shape(x.shape, diagonal):
            gi = sum_to(gi, einsum(diagonal, x.detach()))
        grads.append(einsum_diagonal_grad(gi, x, equation=diagonal))
    return tuple(grads)


def _diagonal_dims(equation: str, ndim: int) -> tuple[int, ...]:
    """For 'term->unique' (unique: term's labels once each), the dim of unique that each of term's ndim dims is on."""
    term, unique = equation.split("->")
    broadcast = [f".{k}" for k in range(ndim - len(term.replace("...", "")))]

    def tokens(subscripts: str) -> list[str]:
        head, ellipsis, tail = subscripts.partition("...")
        return list(head) + (broadcast if ellipsis else []) + list(tail)
    out = tokens(unique)
    return tuple(out.index(t) for t in tokens(term))


def _diagonal_shape(shape: tuple, equation: str) -> tuple:
    dims = _diagonal_dims(equation, len(shape))
    sizes = [0] * (max(dims) + 1 if dims else 0)
    for n, d in zip(shape, dims):
        sizes[d] = n
    return tuple(sizes)


def _diagonal_grad_infer(g, x, equation):
    want = _diagonal_shape(tuple(x.shape), equation)
    if tuple(g.shape) != want:
        raise ValueError(f"gradient of shape {list(g.shape)} does not fit the diagonal {equation!r} of shape "
                         f"{list(want)}")
    return tuple(x.shape), g.dtype


@op("einsum_diagonal_grad", OTHER, _diagonal_grad_infer, saves=(),
    backward=lambda c, gg: (einsum(c.attrs["equation"], gg), None))
def einsum_diagonal_grad(g, x, equation):
    """Zeros of x's shape with g written on the diagonal that einsum(equation, x) reads (the gradient of 'ii->i')."""
    out = np.zeros(x.shape, g.dtype)
    strides = [0] * g.ndim
    for d, k in enumerate(_diagonal_dims(equation, x.ndim)):
        strides[k] += out.strides[d]
    np.lib.stride_tricks.as_strided(out, g.shape, strides)[...] = g
    return out


@op("einsum", OTHER, _einsum_infer, parse=_einsum_parse, backward=_einsum_backward, saves=(CROSS,),
    autocast=LOWER)
def einsum(*arrays, equation):
    """torch.einsum: any subscripts (broadcast '...', implicit output), computed by numpy."""
    return np.einsum(equation, *arrays, optimize=len(arrays) > 2)


__all__ = ["matmul", "bmm", "einsum", "mm", "addmm", "baddbmm", "addbmm", "dot", "vdot", "mv", "addmv", "addr",
           "tensordot", "inner", "kron"]
