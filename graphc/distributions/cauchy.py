"""torch.distributions.Cauchy."""
from __future__ import annotations

import math

from ..ops.creation import full, sample
from ..ops.elementwise import log, log1p
from ..ops.transcendental import atan, tan
from ..ops.view import expand
from ..tensor import Tensor
from .loc_scale import LocScaleDistribution


class Cauchy(LocScaleDistribution):
    """The Cauchy (Lorentz) distribution with median loc and half width scale (no mean, infinite variance)."""

    @property
    def mean(self) -> Tensor:
        return full(self._extended_shape(), math.nan, dtype=self.loc.dtype)

    @property
    def variance(self) -> Tensor:
        return full(self._extended_shape(), math.inf, dtype=self.loc.dtype)

    def rsample(self, sample_shape=()) -> Tensor:
        like = expand(self.loc, self._extended_shape(sample_shape)).detach()
        return self.loc + sample(like, distribution="cauchy", params=(0.0, 1.0)) * self.scale

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return -math.log(math.pi) - log(self.scale) - log1p(((value - self.loc) / self.scale) ** 2)

    def cdf(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return atan((value - self.loc) / self.scale) / math.pi + 0.5

    def icdf(self, value: Tensor) -> Tensor:
        return tan(math.pi * (value - 0.5)) * self.scale + self.loc

    def entropy(self) -> Tensor:
        return math.log(4 * math.pi) + log(self.scale)
