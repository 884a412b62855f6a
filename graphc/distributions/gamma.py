"""torch.distributions.Gamma."""
from __future__ import annotations

import numpy as np

from ..ops.elementwise import clamp, log
from ..ops.gamma import standard_gamma
from ..ops.transcendental import digamma, lgamma, xlogy
from ..ops.view import expand
from ..tensor import Tensor
from . import constraints
from .distribution import Distribution


class Gamma(Distribution):
    """The gamma distribution with shape concentration and inverse scale rate (mean concentration / rate).
    rsample's gradients are implicit reparameterization gradients (graphc/ops/gamma.py). No cdf: graphc has no
    regularized incomplete gamma op."""

    arg_constraints = {"concentration": constraints.positive, "rate": constraints.positive}
    support = constraints.nonnegative
    has_rsample = True

    def __init__(self, concentration, rate, validate_args: bool | None = None):
        self._set_parameters(validate_args, concentration=concentration, rate=rate)

    def expand(self, batch_shape, _instance=None):
        return self._expand_parameters(Gamma, batch_shape, _instance, "concentration", "rate")

    @property
    def mean(self) -> Tensor:
        return self.concentration / self.rate

    @property
    def mode(self) -> Tensor:
        return clamp((self.concentration - 1) / self.rate, min=0)

    @property
    def variance(self) -> Tensor:
        return self.concentration / self.rate ** 2

    def rsample(self, sample_shape=()) -> Tensor:
        shape = self._extended_shape(sample_shape)
        value = standard_gamma(expand(self.concentration, shape)) / expand(self.rate, shape)
        tiny = float(np.finfo(value.dtype.np).tiny)  # as torch: no 0 sample, whose log_prob would be -inf
        return value + (clamp(value.detach(), min=tiny) - value.detach())

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return (xlogy(self.concentration, self.rate) + xlogy(self.concentration - 1, value) - self.rate * value
                - lgamma(self.concentration))

    def entropy(self) -> Tensor:
        c = self.concentration
        return c - log(self.rate) + lgamma(c) + (1.0 - c) * digamma(c)
