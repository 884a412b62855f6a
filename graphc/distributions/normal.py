"""torch.distributions.Normal."""
from __future__ import annotations

import math

from ..autograd import no_grad
from ..ops.creation import normal as _normal
from ..ops.creation import randn_like
from ..ops.elementwise import erf, log
from ..ops.transcendental import erfinv
from ..ops.view import expand
from ..tensor import Tensor
from .loc_scale import LocScaleDistribution


class Normal(LocScaleDistribution):
    """The normal distribution N(loc, scale^2), loc and scale broadcast together (numbers or tensors)."""

    @property
    def stddev(self) -> Tensor:
        return self.scale

    @property
    def variance(self) -> Tensor:
        return self.stddev ** 2

    def sample(self, sample_shape=()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        with no_grad():
            return _normal(expand(self.loc, shape), expand(self.scale, shape))

    def rsample(self, sample_shape=()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        eps = randn_like(expand(self.loc, shape))
        return self.loc + eps * self.scale

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        var = self.scale ** 2
        return -((value - self.loc) ** 2) / (2 * var) - log(self.scale) - math.log(math.sqrt(2 * math.pi))

    def cdf(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return 0.5 * (1 + erf((value - self.loc) * self.scale.reciprocal() / math.sqrt(2)))

    def icdf(self, value: Tensor) -> Tensor:
        return self.loc + self.scale * erfinv(2 * value - 1) * math.sqrt(2)

    def entropy(self) -> Tensor:
        return 0.5 + 0.5 * math.log(2 * math.pi) + log(self.scale)
