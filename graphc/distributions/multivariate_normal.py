"""torch.distributions.MultivariateNormal."""
from __future__ import annotations

import math

from ..linalg import cholesky, inv, solve_triangular
from ..ops import meta
from ..ops.creation import randn_like
from ..ops.elementwise import log
from ..ops.layout import diagonal
from ..ops.matmul import matmul
from ..ops.reduction import sum
from ..ops.view import expand, squeeze, unsqueeze
from ..tensor import Size, Tensor
from . import constraints
from .distribution import Distribution
from .utils import lazy_property


def batch_mahalanobis(bL: Tensor, bx: Tensor) -> Tensor:  # noqa: N803  torch's names
    """The squared Mahalanobis distance x^T (L L^T)^-1 x = |L^-1 x|^2 for lower-triangular L, batch dims broadcast."""
    batch = meta.broadcast(tuple(bL.shape)[:-2], tuple(bx.shape)[:-1])
    n = bx.shape[-1]
    z = squeeze(solve_triangular(expand(bL, batch + (n, n)), unsqueeze(expand(bx, batch + (n,)), -1), upper=False), -1)
    return sum(z * z, -1)


class MultivariateNormal(Distribution):
    """N(loc, Sigma) over vectors of size n, Sigma given by exactly one of covariance_matrix, precision_matrix
    (its inverse) or scale_tril (its lower Cholesky factor L, Sigma = L L^T); batch dims broadcast with loc's."""

    arg_constraints = {"loc": constraints.real_vector, "covariance_matrix": constraints.positive_definite,
                       "precision_matrix": constraints.positive_definite, "scale_tril": constraints.lower_cholesky}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, loc: Tensor, covariance_matrix: Tensor | None = None, precision_matrix: Tensor | None = None,
                 scale_tril: Tensor | None = None, validate_args: bool | None = None):
        if loc.ndim < 1:
            raise ValueError("loc must be at least one-dimensional.")
        given = [m for m in (covariance_matrix, precision_matrix, scale_tril) if m is not None]
        if len(given) != 1:
            raise ValueError("Exactly one of covariance_matrix or precision_matrix or scale_tril may be specified.")
        matrix = given[0]
        if matrix.ndim < 2:
            name = ("covariance_matrix" if covariance_matrix is not None else "precision_matrix"
                    if precision_matrix is not None else "scale_tril")
            raise ValueError(f"{name} must be at least two-dimensional, with optional leading batch dimensions")
        batch_shape = Size(meta.broadcast(tuple(matrix.shape)[:-2], tuple(loc.shape)[:-1]))
        n = loc.shape[-1]
        square = batch_shape + Size((n, n))
        if scale_tril is not None:
            self.scale_tril = expand(scale_tril, square)
        elif covariance_matrix is not None:
            self.covariance_matrix = expand(covariance_matrix, square)
        else:
            self.precision_matrix = expand(precision_matrix, square)
        self.loc = expand(loc, batch_shape + Size((n,)))
        super().__init__(batch_shape, Size((n,)), validate_args=validate_args)
        if scale_tril is not None:
            self._unbroadcasted_scale_tril = scale_tril
        elif covariance_matrix is not None:
            self._unbroadcasted_scale_tril = cholesky(covariance_matrix)
        else:
            self._unbroadcasted_scale_tril = cholesky(inv(precision_matrix))

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(MultivariateNormal, _instance)
        batch_shape = Size(batch_shape)
        square = batch_shape + self.event_shape + self.event_shape
        new.loc = expand(self.loc, batch_shape + self.event_shape)
        new._unbroadcasted_scale_tril = self._unbroadcasted_scale_tril
        for name in ("covariance_matrix", "scale_tril", "precision_matrix"):
            if name in self.__dict__:
                setattr(new, name, expand(getattr(self, name), square))
        return self._expanded(new, batch_shape)

    @lazy_property
    def scale_tril(self) -> Tensor:
        return expand(self._unbroadcasted_scale_tril, self._batch_shape + self._event_shape + self._event_shape)

    @lazy_property
    def covariance_matrix(self) -> Tensor:
        low = self._unbroadcasted_scale_tril
        return expand(matmul(low, low.mT), self._batch_shape + self._event_shape + self._event_shape)

    @lazy_property
    def precision_matrix(self) -> Tensor:
        return expand(inv(self.covariance_matrix), self._batch_shape + self._event_shape + self._event_shape)

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    @property
    def variance(self) -> Tensor:
        low = self._unbroadcasted_scale_tril
        return expand(sum(low * low, -1), self._batch_shape + self._event_shape)

    def _half_log_det(self) -> Tensor:
        return sum(log(diagonal(self._unbroadcasted_scale_tril, 0, -2, -1)), -1)

    def rsample(self, sample_shape=()) -> Tensor:
        eps = randn_like(expand(self.loc, self._extended_shape(sample_shape)))
        return self.loc + squeeze(matmul(self._unbroadcasted_scale_tril, unsqueeze(eps, -1)), -1)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        m = batch_mahalanobis(self._unbroadcasted_scale_tril, value - self.loc)
        return -0.5 * (self._event_shape[0] * math.log(2 * math.pi) + m) - self._half_log_det()

    def entropy(self) -> Tensor:
        h = 0.5 * self._event_shape[0] * (1.0 + math.log(2 * math.pi)) + self._half_log_det()
        return h if len(self._batch_shape) == 0 else expand(h, self._batch_shape)
