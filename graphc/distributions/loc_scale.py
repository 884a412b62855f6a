"""The base of the real location-scale families written directly (Normal, Laplace, Cauchy)."""
from __future__ import annotations

from ..tensor import Tensor
from . import constraints
from .distribution import Distribution


class LocScaleDistribution(Distribution):
    """loc + scale * X for a fixed real X: parameters loc (real) and scale (positive) broadcast together, mode loc,
    reparameterized samples."""

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = constraints.real
    has_rsample = True

    def __init__(self, loc, scale, validate_args: bool | None = None):
        self._set_parameters(validate_args, loc=loc, scale=scale)

    def expand(self, batch_shape, _instance=None):
        return self._expand_parameters(LocScaleDistribution, batch_shape, _instance, "loc", "scale")

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def mode(self) -> Tensor:
        return self.loc
