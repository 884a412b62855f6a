"""torch.distributions.ContinuousBernoulli."""
from __future__ import annotations

import math

from ..nn.functional import binary_cross_entropy_with_logits
from ..ops.creation import rand_like
from ..ops.elementwise import abs, log, log1p, logical_or, sqrt, where
from ..ops.view import expand
from ..tensor import Tensor
from . import constraints
from .binary import BinaryDistribution
from .utils import broadcast_all, clamp_probs, lazy_property, logits_to_probs


class ContinuousBernoulli(BinaryDistribution):
    """The continuous Bernoulli on [0, 1] (Loaiza-Ganem and Cunningham 2019), density C(p) p^x (1 - p)^(1 - x);
    give probs or logits. Within lims of p = 1/2 the normaliser and moments are Taylor expansions (torch's, to
    avoid 0 / 0)."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.unit_interval
    has_rsample = True

    def __init__(self, probs=None, logits=None, lims: tuple[float, float] = (0.499, 0.501),
                 validate_args: bool | None = None):
        if probs is not None and validate_args is not None:
            (checked,) = broadcast_all(probs)
            if not bool(self.arg_constraints["probs"].check(checked).all()):
                raise ValueError("The parameter probs has invalid values")
        self._lims = lims
        self._set_probs_or_logits(validate_args, probs, logits)
        if probs is not None:
            self.probs = self._param = clamp_probs(self.probs)

    def expand(self, batch_shape, _instance=None):
        new = self._expand_probs_or_logits(ContinuousBernoulli, batch_shape, _instance)
        new._lims = self._lims
        return new

    def _outside_unstable_region(self) -> Tensor:
        return logical_or(self.probs <= self._lims[0], self.probs > self._lims[1])

    def _cut_probs(self) -> Tensor:
        return where(self._outside_unstable_region(), self.probs, self._lims[0])

    def _cont_bern_log_norm(self) -> Tensor:
        """log C(p), the log normalising constant."""
        cut_probs = self._cut_probs()
        below_half = where(cut_probs <= 0.5, cut_probs, 0.0)
        above_half = where(cut_probs >= 0.5, cut_probs, 1.0)
        log_norm = log(abs(log1p(-cut_probs) - log(cut_probs))) - where(
            cut_probs <= 0.5, log1p(-2.0 * below_half), log(2.0 * above_half - 1.0))
        x = (self.probs - 0.5) ** 2
        taylor = math.log(2.0) + (4.0 / 3.0 + 104.0 / 45.0 * x) * x
        return where(self._outside_unstable_region(), log_norm, taylor)

    @property
    def mean(self) -> Tensor:
        cut_probs = self._cut_probs()
        mus = cut_probs / (2.0 * cut_probs - 1.0) + 1.0 / (log1p(-cut_probs) - log(cut_probs))
        x = self.probs - 0.5
        taylor = 0.5 + (1.0 / 3.0 + 16.0 / 45.0 * x ** 2) * x
        return where(self._outside_unstable_region(), mus, taylor)

    @property
    def stddev(self) -> Tensor:
        return sqrt(self.variance)

    @property
    def variance(self) -> Tensor:
        cut_probs = self._cut_probs()
        variances = (cut_probs * (cut_probs - 1.0) / (1.0 - 2.0 * cut_probs) ** 2
                     + 1.0 / (log1p(-cut_probs) - log(cut_probs)) ** 2)
        x = (self.probs - 0.5) ** 2
        taylor = 1.0 / 12.0 - (1.0 / 15.0 - 128.0 / 945.0 * x) * x
        return where(self._outside_unstable_region(), variances, taylor)

    @lazy_property
    def probs(self) -> Tensor:
        """sigmoid(logits), kept inside (0, 1) as the normaliser needs."""
        return clamp_probs(logits_to_probs(self.logits, is_binary=True))

    def rsample(self, sample_shape=()) -> Tensor:
        return self.icdf(rand_like(expand(self.probs, self._extended_shape(sample_shape))))

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        return -binary_cross_entropy_with_logits(logits, value, reduction="none") + self._cont_bern_log_norm()

    def cdf(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        cut_probs = self._cut_probs()
        cdfs = (cut_probs ** value * (1.0 - cut_probs) ** (1.0 - value) + cut_probs - 1.0) / (2.0 * cut_probs - 1.0)
        unbounded_cdfs = where(self._outside_unstable_region(), cdfs, value)
        return where(value <= 0.0, 0.0, where(value >= 1.0, 1.0, unbounded_cdfs))

    def icdf(self, value: Tensor) -> Tensor:
        cut_probs = self._cut_probs()
        return where(self._outside_unstable_region(),
                     (log1p(-cut_probs + value * (2.0 * cut_probs - 1.0)) - log1p(-cut_probs))
                     / (log(cut_probs) - log1p(-cut_probs)), value)

    def entropy(self) -> Tensor:
        log_probs0, log_probs1 = log1p(-self.probs), log(self.probs)
        return self.mean * (log_probs0 - log_probs1) - self._cont_bern_log_norm() - log_probs0
