"""torch.distributions.StudentT."""
from __future__ import annotations

import math

from ..ops.creation import randn_like
from ..ops.elementwise import log, log1p, rsqrt, where
from ..ops.transcendental import digamma, lgamma
from ..ops.view import expand
from ..tensor import Size, Tensor
from . import constraints
from .chi2 import Chi2
from .distribution import Distribution


class StudentT(Distribution):
    """Student's t with df degrees of freedom, location loc and scale; rsample as torch's: loc + scale X /
    sqrt(Z / df) with X ~ N(0, 1) and Z ~ Chi2(df) (reparameterized through the gamma sampler)."""

    arg_constraints = {"df": constraints.positive, "loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, df, loc=0.0, scale=1.0, validate_args: bool | None = None):
        self._set_parameters(validate_args, df=df, loc=loc, scale=scale)
        self._chi2 = Chi2(self.df)

    def expand(self, batch_shape, _instance=None):
        new = self._expand_parameters(StudentT, batch_shape, _instance, "df", "loc", "scale")
        new._chi2 = self._chi2.expand(Size(batch_shape))
        return new

    @property
    def mean(self) -> Tensor:
        return where(self.df <= 1, math.nan, self.loc)

    @property
    def mode(self) -> Tensor:
        return self.loc

    @property
    def variance(self) -> Tensor:
        heavy = where(self.df > 1, math.inf, math.nan)
        return where(self.df > 2, self.scale.pow(2) * self.df / (self.df - 2), heavy)

    def rsample(self, sample_shape=()) -> Tensor:
        x = randn_like(expand(self.df, self._extended_shape(sample_shape)))
        z = self._chi2.rsample(sample_shape)
        return self.loc + self.scale * (x * rsqrt(z / self.df))

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        y = (value - self.loc) / self.scale
        z = (log(self.scale) + 0.5 * log(self.df) + 0.5 * math.log(math.pi) + lgamma(0.5 * self.df)
             - lgamma(0.5 * (self.df + 1.0)))
        return -0.5 * (self.df + 1.0) * log1p(y ** 2.0 / self.df) - z

    def entropy(self) -> Tensor:
        lbeta = lgamma(0.5 * self.df) + math.lgamma(0.5) - lgamma(0.5 * (self.df + 1))
        return (log(self.scale) + 0.5 * (self.df + 1) * (digamma(0.5 * (self.df + 1)) - digamma(0.5 * self.df))
                + 0.5 * log(self.df) + lbeta)
