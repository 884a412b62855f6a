"""torch.distributions.VonMises."""
from __future__ import annotations

import math

from .. import dtypes
from ..autograd import no_grad
from ..ops.creation import rand, zeros
from ..ops.elementwise import cos, exp, log, sqrt, where
from ..ops.join import unbind
from ..ops.special import i0e, i1e
from ..ops.transcendental import acos
from ..tensor import Tensor
from . import constraints
from .distribution import Distribution
from .utils import lazy_property


def _log_i0(x: Tensor) -> Tensor:
    """log I0(x) = log(i0e(x)) + x for x >= 0 (exact, where torch uses a polynomial approximation: the two agree to
    ~1e-7 relative)."""
    return log(i0e(x)) + x


class VonMises(Distribution):
    """The von Mises distribution on the circle, density exp(concentration cos(x - loc)) / (2 pi I0(concentration));
    samples in [-pi, pi) by torch's rejection sampler (Best and Fisher 1979), in float64. No rsample, as torch."""

    arg_constraints = {"loc": constraints.real, "concentration": constraints.positive}
    support = constraints.real
    has_rsample = False

    def __init__(self, loc, concentration, validate_args: bool | None = None):
        self._set_parameters(validate_args, loc=loc, concentration=concentration)

    def expand(self, batch_shape, _instance=None):
        return self._expand_parameters(VonMises, batch_shape, _instance, "loc", "concentration")

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        return self.concentration * cos(value - self.loc) - math.log(2 * math.pi) - _log_i0(self.concentration)

    @lazy_property
    def _proposal_r(self) -> Tensor:
        kappa = self.concentration.to(dtypes.float64)
        tau = 1 + sqrt(1 + 4 * kappa ** 2)
        rho = (tau - sqrt(2 * tau)) / (2 * kappa)
        return where(kappa < 1e-5, 1 / kappa + kappa, (1 + rho ** 2) / (2 * rho))

    def sample(self, sample_shape=()) -> Tensor:
        """Rejection sampling until every entry accepts (a loop on values: a graph break inside graphc.compile)."""
        shape = tuple(self._extended_shape(sample_shape))
        loc, concentration = self.loc.to(dtypes.float64), self.concentration.to(dtypes.float64)
        with no_grad():
            x = zeros(shape, dtype=dtypes.float64)
            done = zeros(shape, dtype=dtypes.bool_)
            while not bool(done.all()):
                u1, u2, u3 = unbind(rand((3,) + shape, dtype=dtypes.float64))
                z = cos(math.pi * u1)
                f = (1 + self._proposal_r * z) / (self._proposal_r + z)
                c = concentration * (self._proposal_r - f)
                accept = ((c * (2 - c) - u2) > 0) | (log(c / u2) + 1 - c >= 0)
                x = where(accept & ~done, (u3 - 0.5).sign() * acos(f), x)
                done = done | accept
            return ((x + math.pi + loc) % (2 * math.pi) - math.pi).to(self.loc.dtype)

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc

    @lazy_property
    def variance(self) -> Tensor:
        """1 - I1(k) / I0(k) (the circular variance)."""
        return 1 - exp(log(i1e(self.concentration)) - log(i0e(self.concentration)))


