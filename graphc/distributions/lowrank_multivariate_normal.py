"""torch.distributions.LowRankMultivariateNormal."""
from __future__ import annotations

import math

from ..linalg import cholesky, solve_triangular
from ..ops import meta
from ..ops.creation import eye, randn
from ..ops.elementwise import log, sqrt
from ..ops.layout import diag_embed, diagonal
from ..ops.matmul import matmul
from ..ops.reduction import sum
from ..ops.view import expand, squeeze, unsqueeze
from ..tensor import Size, Tensor
from . import constraints
from .distribution import Distribution
from .multivariate_normal import batch_mahalanobis
from .utils import lazy_property


def _batch_mv(matrix: Tensor, vector: Tensor) -> Tensor:
    return squeeze(matmul(matrix, unsqueeze(vector, -1)), -1)


def _batch_capacitance_tril(cov_factor: Tensor, cov_diag: Tensor) -> Tensor:
    """The Cholesky factor of the capacitance matrix I + W^T D^-1 W (m x m for W of n x m)."""
    wt_dinv = cov_factor.mT / unsqueeze(cov_diag, -2)
    return cholesky(matmul(wt_dinv, cov_factor) + eye(cov_factor.shape[-1], dtype=cov_factor.dtype))


def _batch_lowrank_logdet(cov_diag: Tensor, capacitance_tril: Tensor) -> Tensor:
    """log det(W W^T + D) = log det(capacitance) + log det(D) (the matrix determinant lemma)."""
    return 2 * sum(log(diagonal(capacitance_tril, 0, -2, -1)), -1) + sum(log(cov_diag), -1)


def _batch_lowrank_mahalanobis(cov_factor: Tensor, cov_diag: Tensor, x: Tensor, capacitance_tril: Tensor) -> Tensor:
    """x^T (W W^T + D)^-1 x through the Woodbury identity: x^T D^-1 x - |C^-1 W^T D^-1 x|^2 (C: capacitance_tril)."""
    wt_dinv = cov_factor.mT / unsqueeze(cov_diag, -2)
    return sum(x.pow(2) / cov_diag, -1) - batch_mahalanobis(capacitance_tril, _batch_mv(wt_dinv, x))


class LowRankMultivariateNormal(Distribution):
    """N(loc, W W^T + diag(D)) with W = cov_factor (n x m, m small) and D = cov_diag: log_prob and entropy in
    O(n m^2) through the Woodbury identity and the matrix determinant lemma, as torch's."""

    arg_constraints = {"loc": constraints.real_vector, "cov_factor": constraints.independent(constraints.real, 2),
                       "cov_diag": constraints.independent(constraints.positive, 1)}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc: Tensor, cov_factor: Tensor, cov_diag: Tensor, validate_args: bool | None = None):
        if loc.ndim < 1:
            raise ValueError("loc must be at least one-dimensional.")
        event_shape = loc.shape[-1:]
        if cov_factor.ndim < 2:
            raise ValueError("cov_factor must be at least two-dimensional, with optional leading batch dimensions")
        if cov_factor.shape[-2:-1] != event_shape:
            raise ValueError(f"cov_factor must be a batch of matrices with shape {event_shape[0]} x m")
        if cov_diag.shape[-1:] != event_shape:
            raise ValueError(f"cov_diag must be a batch of vectors with shape {event_shape}")
        try:
            shape = meta.broadcast(tuple(loc.shape) + (1,), tuple(cov_factor.shape), tuple(cov_diag.shape) + (1,))
        except ValueError as e:
            raise ValueError(f"Incompatible batch shapes: loc {loc.shape}, cov_factor {cov_factor.shape}, "
                             f"cov_diag {cov_diag.shape}") from e
        self.cov_factor = expand(cov_factor, shape)
        self.loc, self.cov_diag = expand(loc, shape[:-1]), expand(cov_diag, shape[:-1])
        self._unbroadcasted_cov_factor, self._unbroadcasted_cov_diag = cov_factor, cov_diag
        self._capacitance_tril = _batch_capacitance_tril(cov_factor, cov_diag)
        super().__init__(Size(shape[:-2]), event_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(LowRankMultivariateNormal, _instance)
        loc_shape = Size(batch_shape) + self.event_shape
        new.loc, new.cov_diag = expand(self.loc, loc_shape), expand(self.cov_diag, loc_shape)
        new.cov_factor = expand(self.cov_factor, loc_shape + self.cov_factor.shape[-1:])
        new._unbroadcasted_cov_factor = self._unbroadcasted_cov_factor
        new._unbroadcasted_cov_diag = self._unbroadcasted_cov_diag
        new._capacitance_tril = self._capacitance_tril
        return self._expanded(new, Size(batch_shape))

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    def _matrix_shape(self) -> tuple:
        return tuple(self._batch_shape + self._event_shape + self._event_shape)

    @lazy_property
    def variance(self) -> Tensor:
        return expand(sum(self._unbroadcasted_cov_factor.pow(2), -1) + self._unbroadcasted_cov_diag,
                      tuple(self._batch_shape + self._event_shape))

    @lazy_property
    def scale_tril(self) -> Tensor:
        n = self._event_shape[0]
        cov_diag_sqrt = unsqueeze(sqrt(self._unbroadcasted_cov_diag), -1)
        dinvsqrt_w = self._unbroadcasted_cov_factor / cov_diag_sqrt
        k = matmul(dinvsqrt_w, dinvsqrt_w.mT) + eye(n, dtype=dinvsqrt_w.dtype)
        return expand(cov_diag_sqrt * cholesky(k), self._matrix_shape())

    @lazy_property
    def covariance_matrix(self) -> Tensor:
        w = self._unbroadcasted_cov_factor
        return expand(matmul(w, w.mT) + diag_embed(self._unbroadcasted_cov_diag), self._matrix_shape())

    @lazy_property
    def precision_matrix(self) -> Tensor:
        wt_dinv = self._unbroadcasted_cov_factor.mT / unsqueeze(self._unbroadcasted_cov_diag, -2)
        a = solve_triangular(self._capacitance_tril, wt_dinv, upper=False)
        return expand(diag_embed(self._unbroadcasted_cov_diag.reciprocal()) - matmul(a.mT, a), self._matrix_shape())

    def rsample(self, sample_shape=()) -> Tensor:
        shape = tuple(self._extended_shape(sample_shape))
        eps_w = randn(*shape[:-1], self.cov_factor.shape[-1], dtype=self.loc.dtype)
        eps_d = randn(*shape, dtype=self.loc.dtype)
        return (self.loc + _batch_mv(self._unbroadcasted_cov_factor, eps_w)
                + sqrt(self._unbroadcasted_cov_diag) * eps_d)

    def _log_det(self) -> Tensor:
        return _batch_lowrank_logdet(self._unbroadcasted_cov_diag, self._capacitance_tril)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        m = _batch_lowrank_mahalanobis(self._unbroadcasted_cov_factor, self._unbroadcasted_cov_diag,
                                       value - self.loc, self._capacitance_tril)
        return -0.5 * (self._event_shape[0] * math.log(2 * math.pi) + self._log_det() + m)

    def entropy(self) -> Tensor:
        h = 0.5 * (self._event_shape[0] * (1.0 + math.log(2 * math.pi)) + self._log_det())
        return h if len(self._batch_shape) == 0 else expand(h, tuple(self._batch_shape))
