"""Linear algebra ops: inverse, determinant, solve and the decompositions (Cholesky, QR, SVD, symmetric eigen),
computed by numpy.linalg and batched over leading dims as torch.linalg is. Backward rules are written with graphc
ops from the published formulas, so autograd and a captured backward go through them.

A decomposition with several results is one op per result (attr `part`): each part's backward is the formula's
term for that part's gradient alone, so the gradients of the parts that were used add up to the whole formula. The
other factors a rule needs are the same op applied to the same input (one LAPACK call each in eager mode; common
subexpression elimination shares them in a compiled plan). The user-facing functions are in graphc/linalg.py."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..amp.autocast_mode import FP32
from ..dispatch import OTHER, OUT, op
from ..errors import op_error
from .creation import filled
from .layout import diag_embed, diagonal, diagonal_scatter, tril, triu
from .matmul import matmul
from .reduction import sum_to
from .view import transpose, unsqueeze

_NUMPY = "LAPACK through numpy.linalg: runs on numpy in a compiled plan"


class LinAlgError(RuntimeError):
    """torch.linalg.LinAlgError: a matrix the algorithm cannot handle (singular, not positive-definite, no
    convergence). A RuntimeError, as torch's."""


def mT(x):  # noqa: N802  torch's name
    """The transpose of the last two dims (torch's Tensor.mT)."""
    return transpose(x, -2, -1)


def _floating(name: str, a) -> None:
    if not a.dtype.is_floating_point:
        raise ValueError(f"{name}: Expected a floating point or complex tensor as input. Got {a.dtype.name}")
    if a.dtype.is_low_precision:
        raise ValueError(f"{name}: Low precision dtypes not supported. Got {a.dtype.name}")


def matrices(name: str, a, square: bool = True) -> tuple:
    """Check a batch of (square) floating matrices as torch.linalg does; returns its shape."""
    if a.ndim < 2:
        raise ValueError(f"{name}: The input tensor A must have at least 2 dimensions.")
    _floating(name, a)
    shape = tuple(a.shape)
    if square and shape[-1] != shape[-2]:
        raise ValueError(f"{name}: A must be batches of square matrices, but they are {shape[-2]} by {shape[-1]} "
                         "matrices")
    return shape


def _first_failing(x: np.ndarray, bad) -> tuple[str, np.ndarray]:
    """torch's '(Batch element i): ' prefix naming the first matrix of a batch for which bad(matrix) is true (no
    prefix for one matrix), and that matrix."""
    flat = x.reshape(-1, *x.shape[-2:])
    first = next(i for i in range(len(flat)) if bad(flat[i]))
    return ("" if x.ndim == 2 else f"(Batch element {first}): "), flat[first]


def _zero_pivot(m: np.ndarray) -> int:
    """The 1-based position of the first zero pivot of m's LU factorization (LAPACK's info; 0: none)."""
    import scipy.linalg

    zero = np.flatnonzero(np.diag(scipy.linalg.lu(m)[2]) == 0)
    return int(zero[0]) + 1 if len(zero) else 0


def _singular(name: str, x: np.ndarray) -> LinAlgError:
    prefix, m = _first_failing(x, _zero_pivot)
    return op_error(name, f"{prefix}The diagonal element {_zero_pivot(m)} is zero, the inversion could not be "
                    "completed because the input matrix is singular.", cls=LinAlgError)


def _not_positive_definite(m: np.ndarray) -> int:
    """The order of m's first leading minor that is not positive-definite (0: none)."""
    for k in range(1, len(m) + 1):
        try:
            np.linalg.cholesky(m[:k, :k])
        except np.linalg.LinAlgError:
            return k
    return 0


def _square_infer(name: str):
    def infer(a, **_):
        return matrices(name, a), a.dtype
    return infer


@op("linalg_inv", OTHER, _square_infer("linalg.inv"), fallback=_NUMPY, autocast=FP32, saves=(OUT,),
    backward=lambda c, g: (-matmul(mT(c.out), matmul(g, mT(c.out))),))
def inv(a):
    """torch.linalg.inv: the inverse of each square matrix; gradient -A^-T g A^-T (Giles 2008, "An extended
    collection of matrix derivative results", 2.2.3). LinAlgError for a singular matrix."""
    try:
        return np.linalg.inv(a)
    except np.linalg.LinAlgError:
        raise _singular("linalg.inv", a) from None


def _scalar_per_matrix(name: str):
    def infer(a, **_):
        return matrices(name, a)[:-2], a.dtype
    return infer


def _inverse_transpose(a):
    return mT(inv(a))


@op("linalg_det", OTHER, _scalar_per_matrix("linalg.det"), fallback=_NUMPY, autocast=FP32,
    backward=lambda c, g: (unsqueeze(unsqueeze(g * c.out, -1), -1) * _inverse_transpose(c.inputs[0]),))
def det(a):
    """torch.linalg.det: the determinant of each square matrix; gradient g det(A) A^-T (Giles 2008, 2.2.4): a
    singular matrix's gradient raises LinAlgError (torch goes through an SVD there)."""
    return np.linalg.det(a)


def _slogdet_backward(c, g):
    if c.attrs["part"] == "sign":
        return (None,)
    return (unsqueeze(unsqueeze(g, -1), -1) * _inverse_transpose(c.inputs[0]),)


@op("linalg_slogdet", OTHER, _scalar_per_matrix("linalg.slogdet"), fallback=_NUMPY, autocast=FP32, saves=(0,),
    backward=_slogdet_backward)
def slogdet(a, part):
    """One part of torch.linalg.slogdet: the sign of the determinant (part='sign', no gradient) or log|det A|
    (part='logabsdet', gradient g A^-T: Giles 2008, 2.2.4)."""
    sign, logabsdet = np.linalg.slogdet(a)
    return sign if part == "sign" else logabsdet


def _solve_infer(a, b, triangle, unitriangular):
    matrices("linalg.solve", a)
    _floating("linalg.solve", b)
    if a.dtype is not b.dtype:
        raise ValueError(f"linalg.solve: Expected A and B to have the same dtype, but found A of type "
                         f"{a.dtype.name} and B of type {b.dtype.name} instead")
    if b.ndim < 2 or b.shape[-2] != a.shape[-1]:
        raise ValueError(f"linalg.solve: Incompatible shapes of A and B for the equation AX = B "
                         f"({a.shape[-2]}x{a.shape[-1]} and {'x'.join(map(str, tuple(b.shape)[-2:]))})")
    from . import meta

    return meta.broadcast(tuple(a.shape)[:-2], tuple(b.shape)[:-2]) + tuple(b.shape)[-2:], a.dtype


_TRANSPOSED = {None: None, "lower": "upper", "upper": "lower"}


def _solve_backward(c, g):
    """gB = A^-T g, gA = -gB X^T (Giles 2008, 2.3.1), summed over the batch dims that broadcasting added; for a
    triangular A only its triangle (without the diagonal when unitriangular) gets a gradient, as torch's."""
    a, b = c.inputs
    triangle, unit = c.attrs["triangle"], c.attrs["unitriangular"]
    gb = solve(mT(a), g, triangle=_TRANSPOSED[triangle], unitriangular=unit)
    ga = None
    if a.requires_grad:
        ga = -matmul(gb, mT(c.out))
        if triangle is not None:
            ga = (tril if triangle == "lower" else triu)(ga, (-1 if triangle == "lower" else 1) if unit else 0)
        ga = sum_to(ga, a)
    return ga, (sum_to(gb, b) if b.requires_grad else None)


@op("linalg_solve", OTHER, _solve_infer, fallback=_NUMPY, autocast=FP32, saves=(0, OUT), backward=_solve_backward)
def solve(a, b, triangle, unitriangular):
    """X with A X = B for square A (..., n, n) and B (..., n, k), batch dims broadcast (the vector case is
    torch.linalg.solve's, in graphc/linalg.py). triangle 'lower' or 'upper' reads only that triangle of A (and
    takes its diagonal as ones when unitriangular): torch.linalg.solve_triangular. LinAlgError for a singular A."""
    if triangle is not None:
        a = np.tril(a) if triangle == "lower" else np.triu(a)
        if unitriangular:
            a = a.copy()
            np.einsum("...ii->...i", a)[...] = 1
    try:
        return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        raise op_error("torch.linalg.solve", "The solver failed because the input matrix is singular.",
                       cls=LinAlgError) from None


def _cholesky_backward(c, g):
    """gA = sym(L^-T Phi(L^T gL) L^-1), Phi: the lower triangle with its diagonal halved (Murray 2016,
    "Differentiation of the Cholesky decomposition", eq. 10; torch's cholesky_backward)."""
    low = c.out
    p = tril(matmul(mT(low), tril(g)))
    p = p - diag_embed(diagonal(p, 0, -2, -1)) * 0.5
    ga = solve(mT(low), mT(solve(mT(low), mT(p), triangle="upper", unitriangular=False)), triangle="upper",
               unitriangular=False)
    return ((ga + mT(ga)) * 0.5,)


@op("linalg_cholesky", OTHER, _square_infer("linalg.cholesky"), fallback=_NUMPY, autocast=FP32, saves=(OUT,),
    backward=_cholesky_backward)
def cholesky(a):
    """torch.linalg.cholesky: the lower-triangular L with A = L L^T, reading A's lower triangle. LinAlgError when A is
    not positive-definite, naming the leading minor as torch does."""
    try:
        return np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        prefix, m = _first_failing(a, _not_positive_definite)
        raise op_error("linalg.cholesky", f"{prefix}The factorization could not be completed because the input is "
                       f"not positive-definite (the leading minor of order {_not_positive_definite(m)} is not "
                       "positive-definite).", cls=LinAlgError) from None


def _eigh_infer(a, uplo, part):
    shape = matrices("linalg.eigh", a)
    return (shape[:-1] if part == "eigenvalues" else shape), a.dtype


def _eigh_backward(c, g):
    """gA = V (diag(gL) + skew(V^T gV) / 2 / E) V^T with E_ij = L_j - L_i (torch's linalg_eig_backward for Hermitian
    input; Giles 2008, 3.1): each part contributes its own term."""
    a, uplo = c.inputs[0], c.attrs["uplo"]
    vectors = eigh(a, uplo=uplo, part="eigenvectors")
    if c.attrs["part"] == "eigenvalues":
        inner = diag_embed(g)
    else:
        values = eigh(a, uplo=uplo, part="eigenvalues")
        vg = matmul(mT(vectors), g)
        gap = unsqueeze(values, -2) - unsqueeze(values, -1)
        inner = (vg - mT(vg)) * 0.5 / diagonal_scatter(gap, filled(values, 1), 0, -2, -1)
    return (matmul(vectors, matmul(inner, mT(vectors))),)


@op("linalg_eigh", OTHER, _eigh_infer, fallback=_NUMPY, autocast=FP32, saves=(0,), backward=_eigh_backward)
def eigh(a, uplo, part):
    """One part of torch.linalg.eigh: the ascending eigenvalues or the orthonormal eigenvectors (columns) of a
    symmetric matrix, read from its lower (uplo='L') or upper triangle."""
    values, vectors = np.linalg.eigh(a, UPLO=uplo)
    return values if part == "eigenvalues" else vectors


def _svd_infer(a, full_matrices, part):
    shape = matrices("linalg.svd", a, square=False)
    m, n = shape[-2:]
    k = min(m, n)
    return {"U": shape[:-1] + ((m if full_matrices else k),), "S": shape[:-2] + (k,),
            "Vh": shape[:-2] + ((n if full_matrices else k), n)}[part], a.dtype


def _svd_backward(c, g):
    """torch's svd_backward (real case; Townsend 2016, "Differentiating the singular value decomposition"): with
    E_ij = S_j^2 - S_i^2, gA = U [(skew(U^T gU) S + S skew(V^T gV)) / E + diag(gS)] V^T, plus the terms for the
    part of U (m > n) or V (m < n) outside the span of the other."""
    a, part = c.inputs[0], c.attrs["part"]
    m, n = a.shape[-2], a.shape[-1]
    if c.attrs["full_matrices"] and part != "S" and m != n:
        raise op_error("linalg.svd", "The derivative of U or Vh is not defined for full_matrices=True and a "
                       "non-square input: use full_matrices=False", (a,), NotImplementedError)
    u, s, vh = (svd(a, full_matrices=False, part=p) for p in ("U", "S", "Vh"))
    if part == "S":
        return (matmul(u * unsqueeze(g, -2), vh),)
    s2 = s * s
    gap = diagonal_scatter(unsqueeze(s2, -2) - unsqueeze(s2, -1), filled(s, 1), 0, -2, -1)
    if part == "U":
        ug = matmul(mT(u), g)
        inner = (ug - mT(ug)) * unsqueeze(s, -2) / gap
        ga = matmul(matmul(u, inner), vh)
        if m > n:
            scaled = g / unsqueeze(s, -2)
            ga = ga + matmul(scaled - matmul(u, matmul(mT(u), scaled)), vh)
        return (ga,)
    vg = matmul(vh, mT(g))
    inner = unsqueeze(s, -1) * (vg - mT(vg)) / gap
    ga = matmul(u, matmul(inner, vh))
    if m < n:
        scaled = g / unsqueeze(s, -1)
        ga = ga + matmul(u, scaled - matmul(matmul(scaled, mT(vh)), vh))
    return (ga,)


@op("linalg_svd", OTHER, _svd_infer, fallback=_NUMPY, autocast=FP32, saves=(0,), backward=_svd_backward)
def svd(a, full_matrices, part):
    """One part of torch.linalg.svd: U, the descending singular values S, or Vh, with A = U diag(S) Vh."""
    if part == "S":
        return np.linalg.svd(a, compute_uv=False)
    u, _, vh = np.linalg.svd(a, full_matrices=full_matrices)
    return u if part == "U" else vh


def _qr_infer(a, mode, part):
    shape = matrices("linalg.qr", a, square=False)
    m, n = shape[-2:]
    k = m if mode == "complete" else min(m, n)
    return (shape[:-1] + (k,) if part == "Q" else shape[:-2] + (k, n)), a.dtype


def _qr_backward(c, g):
    """torch's linalg_qr_backward for m >= n (Walter & Lehmann 2018, "Algorithmic differentiation of linear algebra
    functions with application in optimum experimental design", 3.2): with M = R gR^T - gQ^T Q,
    gA = (gQ + Q copyltu(M)) R^-T, copyltu(M) = tril(M, -1) + tril(M, -1)^T + diag(M)."""
    a, mode, part = c.inputs[0], c.attrs["mode"], c.attrs["part"]
    if mode == "r":
        raise op_error("linalg.qr", "The derivative of linalg.qr depends on Q, which is not computed when mode='r'. "
                       "Please use linalg.qr(A, mode='reduced') if you are going to differentiate through "
                       "linalg.qr.", (a,))
    if a.shape[-2] < a.shape[-1] or (mode == "complete" and a.shape[-2] != a.shape[-1]):
        raise op_error("linalg.qr", "The derivative is implemented for mode='reduced' with m >= n (and square "
                       "input for mode='complete')", (a,), NotImplementedError)
    q, r = qr(a, mode=mode, part="Q"), qr(a, mode=mode, part="R")
    moved = matmul(r, mT(g)) if part == "R" else -matmul(mT(g), q)
    lower = tril(moved, -1)
    copied = lower + mT(lower) + diag_embed(diagonal(moved, 0, -2, -1))
    b = matmul(q, copied) + (g if part == "Q" else 0)
    return (mT(solve(r, mT(b), triangle="upper", unitriangular=False)),)


@op("linalg_qr", OTHER, _qr_infer, fallback=_NUMPY, autocast=FP32, saves=(0,), backward=_qr_backward)
def qr(a, mode, part):
    """One part of torch.linalg.qr: the orthonormal Q or the upper-triangular R with A = Q R."""
    q, r = np.linalg.qr(a, mode="complete" if mode == "complete" else "reduced")
    return q if part == "Q" else r


def _pinv_infer(a, atol, rtol, hermitian):
    return matrices("linalg.pinv", a, square=hermitian)[:-2] + (a.shape[-1], a.shape[-2]), a.dtype


def _pinv_backward(c, g):
    """torch's pinv_backward (Golub & Pereyra 1973, "The differentiation of pseudo-inverses and nonlinear least
    squares problems whose variables separate", 4.12), for either orientation of A."""
    a, p = c.inputs[0], c.out
    ph, gh = mT(p), mT(g)
    if a.shape[-2] <= a.shape[-1]:
        k = matmul(gh, p)
        kph = matmul(k, ph)
        ga = -mT(matmul(p, k)) + kph - matmul(matmul(a, p), kph) + matmul(matmul(ph, p), gh - matmul(k, a))
    else:
        k = matmul(p, gh)
        phk = matmul(ph, k)
        ga = -mT(matmul(k, p)) + phk - matmul(phk, matmul(p, a)) + matmul(matmul(gh - matmul(a, k), p), ph)
    return (ga,)


@op("linalg_pinv", OTHER, _pinv_infer, fallback=_NUMPY, autocast=FP32, saves=(0, OUT), backward=_pinv_backward)
def pinv(a, atol, rtol, hermitian):
    """torch.linalg.pinv: the Moore-Penrose pseudo-inverse from the SVD (the eigendecomposition when hermitian),
    dropping singular values below max(atol, rtol * the largest)."""
    if hermitian:
        w, v = np.linalg.eigh(a)
        s, left, right = np.abs(w), v * np.sign(w)[..., None, :], np.swapaxes(v, -1, -2)
    else:
        left, s, right = np.linalg.svd(a, full_matrices=False)
    cutoff = np.maximum(atol, rtol * (s.max(-1, keepdims=True) if s.shape[-1] else 0))
    keep = s > cutoff
    scale = np.where(keep, 1 / np.where(keep, s, 1), 0)
    return np.swapaxes(right, -1, -2) @ (scale[..., :, None] * np.swapaxes(left, -1, -2))


def _rank_infer(a, atol, rtol, hermitian):
    return matrices("linalg.matrix_rank", a, square=hermitian)[:-2], dtypes.int64


@op("linalg_matrix_rank", OTHER, _rank_infer, fallback=_NUMPY)
def matrix_rank(a, atol, rtol, hermitian):
    """torch.linalg.matrix_rank: the number of singular values (eigenvalue magnitudes when hermitian) above
    max(atol, rtol * the largest)."""
    s = np.abs(np.linalg.eigvalsh(a)) if hermitian else np.linalg.svd(a, compute_uv=False)
    cutoff = np.maximum(atol, rtol * (s.max(-1, keepdims=True) if s.shape[-1] else 0))
    return (s > cutoff).sum(-1)
