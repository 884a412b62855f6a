"""torch.distributions.Gumbel."""
from __future__ import annotations

import math

import numpy as np

from ..ops.creation import full_like, ones_like
from ..ops.elementwise import exp, log
from ..ops.view import expand
from ..tensor import Size, Tensor
from . import constraints
from .transformed_distribution import TransformedDistribution
from .transforms import AffineTransform, ExpTransform
from .uniform import Uniform
from .utils import broadcast_all

EULER_CONSTANT = 0.57721566490153286060  # Euler-Mascheroni: the mean of a standard Gumbel


class Gumbel(TransformedDistribution):
    """The Gumbel (type-I extreme value) distribution: loc - scale log(-log U) for U ~ Uniform(0, 1), built as
    torch builds it (a Uniform through log, negation, log and an affine map)."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real

    def __init__(self, loc, scale, validate_args: bool | None = None):
        self.loc, self.scale = broadcast_all(loc, scale)
        finfo = np.finfo(self.loc.dtype.np)
        tiny, top = float(finfo.tiny), 1 - float(finfo.eps)
        numbers = not isinstance(loc, Tensor) and not isinstance(scale, Tensor)
        base = Uniform(tiny, top, validate_args=validate_args) if numbers else \
            Uniform(full_like(self.loc, tiny), full_like(self.loc, top), validate_args=validate_args)
        transforms = [ExpTransform().inv, AffineTransform(loc=0, scale=-ones_like(self.scale)), ExpTransform().inv,
                      AffineTransform(loc=loc, scale=-self.scale)]
        super().__init__(base, transforms, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Gumbel, _instance)
        new.loc, new.scale = expand(self.loc, Size(batch_shape)), expand(self.scale, Size(batch_shape))
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        y = (self.loc - value) / self.scale
        return (y - exp(y)) - log(self.scale)

    @property
    def mean(self) -> Tensor:
        return self.loc + self.scale * EULER_CONSTANT

    @property
    def mode(self) -> Tensor:
        return self.loc

    @property
    def stddev(self) -> Tensor:
        return (math.pi / math.sqrt(6)) * self.scale

    @property
    def variance(self) -> Tensor:
        return self.stddev.pow(2)

    def entropy(self) -> Tensor:
        return log(self.scale) + (1 + EULER_CONSTANT)
