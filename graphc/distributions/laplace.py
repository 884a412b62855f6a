"""torch.distributions.Laplace."""
from __future__ import annotations

import numpy as np

from ..ops.creation import sample
from ..ops.elementwise import abs, expm1, log, log1p
from ..ops.view import expand
from ..tensor import Tensor
from .loc_scale import LocScaleDistribution


class Laplace(LocScaleDistribution):
    """The Laplace distribution with location loc and scale: density exp(-|x - loc| / scale) / (2 scale)."""

    @property
    def variance(self) -> Tensor:
        return 2 * self.scale.pow(2)

    @property
    def stddev(self) -> Tensor:
        return 2 ** 0.5 * self.scale

    def rsample(self, sample_shape=()) -> Tensor:
        like = expand(self.loc, self._extended_shape(sample_shape)).detach()
        # u in (-1, 1): log1p(-|u|) stays finite
        u = sample(like, distribution="uniform", params=(float(np.finfo(like.dtype.np).eps) - 1, 1.0))
        return self.loc - self.scale * u.sign() * log1p(-abs(u))

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return -log(2 * self.scale) - abs(value - self.loc) / self.scale

    def cdf(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return 0.5 - 0.5 * (value - self.loc).sign() * expm1(-abs(value - self.loc) / self.scale)

    def icdf(self, value: Tensor) -> Tensor:
        term = value - 0.5
        return self.loc - self.scale * term.sign() * log1p(-2 * abs(term))

    def entropy(self) -> Tensor:
        return 1 + log(2 * self.scale)


