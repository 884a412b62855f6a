"""graphc.linalg: torch.linalg's functions (names, signatures, defaults, result tuples and errors as torch's), and
torch's top-level aliases of them (graphc.det, graphc.inverse, graphc.svd, ...). Decompositions, inverses and
solves are ops in graphc/ops/linalg.py (numpy.linalg forwards, batched over leading dims); norms, products and the
rest are written with graphc ops here, so autograd and the compiler go through them."""
from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np

from . import dtypes
from .errors import op_error
from .ops import linalg as _ops
from .ops import meta
from .ops.creation import filled, zeros
from .ops.elementwise import abs, where
from .ops.layout import diag_embed, roll
from .ops.layout import diagonal as _diagonal
from .ops.linalg import LinAlgError, mT
from .ops.matmul import matmul
from .ops.reduction import _with_dtype, amax, amin, sum, vector_norm
from .ops.view import permute, squeeze, unsqueeze
from .tensor import Tensor

__all__ = ["LinAlgError", "vector_norm", "matrix_norm", "norm", "inv", "solve", "solve_triangular", "det", "slogdet",
           "cholesky", "qr", "svd", "svdvals", "eigh", "eigvalsh", "pinv", "lstsq", "matrix_rank", "cross", "multi_dot",
           "matrix_power", "diagonal", "vecdot"]


class SlogdetResult(NamedTuple):
    """torch.return_types.linalg_slogdet."""

    sign: Tensor
    logabsdet: Tensor


class QRResult(NamedTuple):
    """torch.return_types.linalg_qr."""

    Q: Tensor  # noqa: N815  torch's field names
    R: Tensor  # noqa: N815


class SVDResult(NamedTuple):
    """torch.return_types.linalg_svd."""

    U: Tensor  # noqa: N815
    S: Tensor  # noqa: N815
    Vh: Tensor  # noqa: N815


class EighResult(NamedTuple):
    """torch.return_types.linalg_eigh."""

    eigenvalues: Tensor
    eigenvectors: Tensor


class LstsqResult(NamedTuple):
    """torch.return_types.linalg_lstsq."""

    solution: Tensor
    residuals: Tensor
    rank: Tensor
    singular_values: Tensor


def _last_two(x: Tensor, dim) -> tuple[Tensor, tuple[int, int]]:
    """x with the two dims of dim moved last (in that order), and those dims as non-negative indices."""
    if len(dim) != 2:
        raise op_error("linalg.matrix_norm", f"dim must be a 2-tuple. Got {tuple(dim)}", (x,))
    d0, d1 = meta.norm_dim(dim[0], x.ndim), meta.norm_dim(dim[1], x.ndim)
    if d0 == d1:
        raise op_error("linalg.matrix_norm", f"dims must be different. Got ({d0}, {d1})", (x,))
    rest = [d for d in range(x.ndim) if d not in (d0, d1)]
    return (x if (d0, d1) == (x.ndim - 2, x.ndim - 1) else permute(x, (*rest, d0, d1))), (d0, d1)


def matrix_norm(A: Tensor, ord="fro", dim=(-2, -1), keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A002, N803
    """torch.linalg.matrix_norm over the two dims of dim: 'fro' (sqrt of the sum of squares), 'nuc' (sum of the
    singular values), 2 / -2 (largest / smallest singular value), 1 / -1 (max / min column sum of |A|), inf / -inf
    (max / min row sum of |A|). RuntimeError for another ord, fewer than 2 dims or an integer input."""
    A = _with_dtype(A, dtype)
    if not A.dtype.is_floating_point:
        raise op_error("linalg.matrix_norm", "Expected a floating point or complex tensor as input. Got "
                       f"{A.dtype.name}", (A,))
    if A.ndim < 2:
        raise op_error("linalg.matrix_norm", "The input tensor A must have at least 2 dimensions.", (A,))
    if ord not in ("fro", "nuc", 1, -1, 2, -2, math.inf, -math.inf) or isinstance(ord, bool):
        raise op_error("linalg.matrix_norm", f"Order {ord} not supported.", (A,))
    if ord == "fro":
        return vector_norm(A, 2, dim, keepdim)
    moved, (d0, d1) = _last_two(A, tuple(dim))
    if ord in ("nuc", 2, -2):
        s = svdvals(moved)
        out = sum(s, -1) if ord == "nuc" else (amax(s, -1) if ord == 2 else amin(s, -1))
    else:
        columns = ord in (1, -1)
        sums = sum(abs(moved), -2 if columns else -1)
        out = amax(sums, -1) if ord > 0 else amin(sums, -1)
    if keepdim:
        for d in sorted((d0, d1)):
            out = unsqueeze(out, d)
    return out


def norm(A: Tensor, ord=None, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:  # noqa: A002, N803
    """torch.linalg.norm: a vector norm when dim is an int or a 1-tuple, or when ord and dim are None (over all
    elements); a matrix norm when dim is a 2-tuple, or when dim is None and A is 2-d."""
    if isinstance(dim, int):
        dim = (dim,)
    if dim is None:
        if ord is None:
            return vector_norm(A, 2, None, keepdim, dtype=dtype)
        if A.ndim not in (1, 2):
            raise op_error("linalg.norm", f"If dim is not specified but ord is, the input must be 1D or 2D. Got "
                           f"{A.ndim}D.", (A,))
        dim = tuple(range(A.ndim))
    if len(dim) == 2:
        return matrix_norm(A, "fro" if ord is None else ord, dim, keepdim, dtype=dtype)
    if isinstance(ord, str):
        raise op_error("linalg.norm", f"Order {ord} not supported for a vector norm.", (A,))
    return vector_norm(A, 2 if ord is None else ord, dim, keepdim, dtype=dtype)


def inv(A: Tensor) -> Tensor:  # noqa: N803  torch's argument names
    """torch.linalg.inv: the inverse of each square matrix of A (..., n, n). LinAlgError if one is singular."""
    return _ops.inv(A)


def det(A: Tensor) -> Tensor:  # noqa: N803
    """torch.linalg.det: the determinant of each square matrix of A (..., n, n), shape (...)."""
    return _ops.det(A)


def slogdet(A: Tensor) -> SlogdetResult:  # noqa: N803
    """torch.linalg.slogdet: (sign, logabsdet) with det(A) = sign * exp(logabsdet), stable where det under- or
    overflows; a singular matrix gives (0, -inf)."""
    return SlogdetResult(_ops.slogdet(A, part="sign"), _ops.slogdet(A, part="logabsdet"))


def solve(A: Tensor, B: Tensor, *, left: bool = True) -> Tensor:  # noqa: N803
    """torch.linalg.solve: X with A X = B (X A = B when left=False). B is a batch of vectors (...,  n) when it has
    one dim, or A's batch shape plus n; else a batch of matrices (..., n, k); batch dims broadcast."""
    if not left:
        return mT(solve(mT(A), mT(B)))
    vector = B.ndim == 1 or (B.ndim == A.ndim - 1 and tuple(B.shape) == tuple(A.shape)[:-1])
    if vector:
        return squeeze(_ops.solve(A, unsqueeze(B, -1), triangle=None, unitriangular=False), -1)
    return _ops.solve(A, B, triangle=None, unitriangular=False)


def solve_triangular(A: Tensor, B: Tensor, *, upper: bool, left: bool = True,  # noqa: N803
                     unitriangular: bool = False) -> Tensor:
    """torch.linalg.solve_triangular: X with A X = B (X A = B when left=False) reading only the upper or lower
    triangle of A (and ones on its diagonal when unitriangular); gradients reach only that triangle."""
    if not left:
        return mT(solve_triangular(mT(A), mT(B), upper=not upper, unitriangular=unitriangular))
    return _ops.solve(A, B, triangle="upper" if upper else "lower", unitriangular=bool(unitriangular))


def cholesky(A: Tensor, *, upper: bool = False) -> Tensor:  # noqa: N803
    """torch.linalg.cholesky: L lower-triangular with A = L L^T (U = L^T with A = U^T U when upper), reading A's
    lower triangle. LinAlgError when A is not positive-definite."""
    low = _ops.cholesky(A)
    return mT(low) if upper else low


def qr(A: Tensor, mode: str = "reduced") -> QRResult:  # noqa: N803
    """torch.linalg.qr: A = Q R with orthonormal Q and upper-triangular R; mode 'reduced' (Q (..., m, k), k =
    min(m, n)), 'complete' (Q (..., m, m)) or 'r' (R only; Q is empty)."""
    if mode not in ("reduced", "complete", "r"):
        raise op_error("linalg.qr", f"qr received unrecognized mode '{mode}' but expected one of 'reduced' "
                       "(default), 'r', or 'complete'", (A,))
    r = _ops.qr(A, mode=mode, part="R")
    return QRResult(zeros(0, dtype=A.dtype) if mode == "r" else _ops.qr(A, mode=mode, part="Q"), r)


def svd(A: Tensor, full_matrices: bool = True) -> SVDResult:  # noqa: N803
    """torch.linalg.svd: A = U diag(S) Vh, S descending. The gradient of U or Vh is defined for distinct singular
    values (as torch's), and needs full_matrices=False for a non-square A."""
    full = bool(full_matrices)
    return SVDResult(*(_ops.svd(A, full_matrices=full, part=part) for part in ("U", "S", "Vh")))


def svdvals(A: Tensor) -> Tensor:  # noqa: N803
    """torch.linalg.svdvals: the singular values of each matrix, descending; gradient U diag(g) Vh."""
    return _ops.svd(A, full_matrices=False, part="S")


def _uplo(UPLO: str) -> str:  # noqa: N803
    if UPLO not in ("L", "U"):
        raise RuntimeError(f"Expected UPLO argument to be 'L' or 'U', but got {UPLO}")
    return UPLO


def eigh(A: Tensor, UPLO: str = "L") -> EighResult:  # noqa: N803
    """torch.linalg.eigh: ascending eigenvalues and orthonormal eigenvectors (columns) of each symmetric matrix,
    read from its lower (UPLO='L') or upper triangle. Eigenvector gradients need distinct eigenvalues."""
    uplo = _uplo(UPLO)
    return EighResult(_ops.eigh(A, uplo=uplo, part="eigenvalues"), _ops.eigh(A, uplo=uplo, part="eigenvectors"))


def eigvalsh(A: Tensor, UPLO: str = "L") -> Tensor:  # noqa: N803
    """torch.linalg.eigvalsh: the ascending eigenvalues of each symmetric matrix."""
    return _ops.eigh(A, uplo=_uplo(UPLO), part="eigenvalues")


def _tolerances(A: Tensor, atol, rtol) -> tuple[float, float]:  # noqa: N803
    """torch's defaults: rtol = eps * max(m, n) when neither is given, 0 when only atol is."""
    if isinstance(atol, Tensor) or isinstance(rtol, Tensor):
        raise op_error("linalg.pinv", "graphc takes atol and rtol as numbers", (A,), NotImplementedError)
    if rtol is None:
        rtol = 0.0 if atol is not None and atol > 0 else float(np.finfo(A.dtype.np).eps) * max(A.shape[-2:])
    return float(atol or 0.0), float(rtol)


def pinv(A: Tensor, *, atol=None, rtol=None, hermitian: bool = False) -> Tensor:  # noqa: N803
    """torch.linalg.pinv: the Moore-Penrose pseudo-inverse, dropping singular values at or below max(atol, rtol *
    the largest); hermitian=True uses the eigendecomposition of a symmetric A."""
    atol, rtol = _tolerances(A, atol, rtol)
    return _ops.pinv(A, atol=atol, rtol=rtol, hermitian=bool(hermitian))


def matrix_rank(A: Tensor, *, atol=None, rtol=None, hermitian: bool = False) -> Tensor:  # noqa: N803
    """torch.linalg.matrix_rank: the number of singular values above max(atol, rtol * the largest), int64."""
    atol, rtol = _tolerances(A, atol, rtol)
    return _ops.matrix_rank(A, atol=atol, rtol=rtol, hermitian=bool(hermitian))


def lstsq(A: Tensor, B: Tensor, rcond: float | None = None, *, driver: str | None = None) -> LstsqResult:  # noqa: N803
    """torch.linalg.lstsq: the minimum-norm X minimising ||A X - B|| (pinv(A) B; every LAPACK driver torch offers
    on CPU returns it for full-rank A). As torch's drivers: rank (not for 'gels'), residuals (squared, summed over
    rows; 'gels', 'gelsd', 'gelss' when m > n and A has full rank), singular values ('gelsd', 'gelss')."""
    driver = driver or "gelsy"
    if driver not in ("gels", "gelsy", "gelsd", "gelss"):
        raise op_error("linalg.lstsq", f"parameter `driver` should be one of (gels, gelsy, gelsd, gelss), got "
                       f"{driver}", (A, B))
    vector = B.ndim == A.ndim - 1
    rhs = unsqueeze(B, -1) if vector else B
    if A.shape[-2] != rhs.shape[-2]:
        raise op_error("linalg.lstsq", f"input.size(-2) should match other.size(-2). Got {A.shape[-2]} and "
                       f"{rhs.shape[-2]}", (A, B))
    rtol = rcond if rcond is not None and rcond >= 0 else None
    solution = matmul(pinv(A, rtol=rtol), rhs)
    empty = zeros(0, dtype=A.dtype)
    rank = zeros(0, dtype=dtypes.int64) if driver == "gels" else matrix_rank(A, rtol=rtol)
    full_rank = driver != "gelsy" and A.shape[-2] > A.shape[-1] and bool((matrix_rank(A) == A.shape[-1]).all())
    residuals = sum((matmul(A, solution) - rhs) ** 2, -2) if full_rank else empty
    values = svdvals(A) if driver in ("gelsd", "gelss") else empty
    return LstsqResult(squeeze(solution, -1) if vector else solution, residuals, rank, values)


def cross(input: Tensor, other: Tensor, *, dim: int = -1) -> Tensor:  # noqa: A002  torch's argument names
    """torch.linalg.cross: the cross product of 3-vectors along dim, input and other broadcast."""
    shape = meta.broadcast(tuple(input.shape), tuple(other.shape))
    d = meta.norm_dim(dim, len(shape)) - len(shape)
    if input.shape[d] != 3 or other.shape[d] != 3:
        raise op_error("linalg.cross", f"inputs dimension {dim} must have length 3. Got {input.shape[d]} and "
                       f"{other.shape[d]}", (input, other))
    return roll(input, -1, d) * roll(other, -2, d) - roll(input, -2, d) * roll(other, -1, d)


def multi_dot(tensors) -> Tensor:
    """torch.linalg.multi_dot: the product of the matrices in order; the first may be a row vector and the last a
    column vector given as 1-d tensors (the result then drops that dim, as matmul does)."""
    tensors = list(tensors)
    if len(tensors) < 2:
        raise op_error("linalg.multi_dot", f"expected at least 2 tensors but got {len(tensors)}", tuple(tensors))
    for i, t in enumerate(tensors):
        allowed = (1, 2) if i in (0, len(tensors) - 1) else (2,)
        if t.ndim not in allowed:
            raise op_error("linalg.multi_dot", f"tensor {i} must be {' or '.join(f'{n}D' for n in allowed)} but "
                           f"got {t.ndim}D", tuple(tensors))
    out = tensors[0]
    for t in tensors[1:]:
        out = matmul(out, t)
    return out


def matrix_power(A: Tensor, n: int) -> Tensor:  # noqa: N803
    """torch.linalg.matrix_power: A^n for an integer n by repeated squaring; n = 0 gives the identity, n < 0 the
    power of the inverse."""
    if A.ndim < 2 or A.shape[-1] != A.shape[-2]:
        raise op_error("linalg.matrix_power", "A must be batches of square matrices, but they are "
                       f"{' by '.join(map(str, tuple(A.shape)[-2:]))} matrices", (A,))
    if n == 0:
        return diag_embed(filled(_diagonal(A, 0, -2, -1), 1))
    base, n = (inv(A), -n) if n < 0 else (A, n)
    out = None
    while n:
        if n & 1:
            out = base if out is None else matmul(out, base)
        n >>= 1
        if n:
            base = matmul(base, base)
    return out


def diagonal(A: Tensor, *, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:  # noqa: N803
    """torch.linalg.diagonal: torch.diagonal with the last two dims as the default."""
    return _diagonal(A, offset, dim1, dim2)


def vecdot(x: Tensor, y: Tensor, *, dim: int = -1) -> Tensor:
    """torch.linalg.vecdot: the dot product of x and y (broadcast) along dim."""
    return sum(x * y, dim)


# torch's top-level aliases (graphc.det, graphc.inverse, ...; also Tensor methods)


class SVDLegacyResult(NamedTuple):
    """torch.return_types.svd: U, S and V (not Vh)."""

    U: Tensor  # noqa: N815
    S: Tensor  # noqa: N815
    V: Tensor  # noqa: N815


def inverse(input: Tensor) -> Tensor:  # noqa: A002
    """torch.inverse: torch.linalg.inv."""
    return inv(input)


def logdet(input: Tensor) -> Tensor:  # noqa: A002
    """torch.logdet: log det(A); NaN where the determinant is negative, -inf where it is 0."""
    sign, logabs = slogdet(input)
    return where(sign < 0, math.nan, logabs)


def svd_legacy(input: Tensor, some: bool = True, compute_uv: bool = True) -> SVDLegacyResult:  # noqa: A002
    """torch.svd: (U, S, V) with A = U diag(S) V^T; some=True gives the reduced factors; compute_uv=False gives S
    and zero-filled U (m, m) and V (n, n), as torch's."""
    if not compute_uv:
        m, n = input.shape[-2:]
        batch = tuple(input.shape)[:-2]
        return SVDLegacyResult(zeros(*batch, m, m, dtype=input.dtype), svdvals(input),
                               zeros(*batch, n, n, dtype=input.dtype))
    u, s, vh = svd(input, full_matrices=not some)
    return SVDLegacyResult(u, s, mT(vh))


def pinverse(input: Tensor, rcond: float = 1e-15) -> Tensor:  # noqa: A002
    """torch.pinverse: torch.linalg.pinv with rtol=rcond."""
    return pinv(input, rtol=rcond)


def cross_legacy(input: Tensor, other: Tensor, dim: int | None = None) -> Tensor:  # noqa: A002
    """torch.cross: linalg.cross along dim; without dim, along the first dim of size 3, with torch's deprecation
    warning."""
    if dim is None:
        warnings.warn("Using torch.cross without specifying the dim arg is deprecated.\nPlease either pass the dim "
                      "explicitly or simply use torch.linalg.cross.", UserWarning, stacklevel=2)
        shape = meta.broadcast(tuple(input.shape), tuple(other.shape))
        dim = next((d for d, n in enumerate(shape) if n == 3), -1)
    return cross(input, other, dim=dim)


def cholesky_legacy(input: Tensor, upper: bool = False) -> Tensor:  # noqa: A002
    """torch.cholesky: torch.linalg.cholesky with a positional upper."""
    return cholesky(input, upper=upper)


ALIASES = {"inverse": inverse, "det": det, "logdet": logdet, "slogdet": slogdet, "svd": svd_legacy,
           "pinverse": pinverse, "cross": cross_legacy, "matrix_power": matrix_power, "cholesky": cholesky_legacy}
