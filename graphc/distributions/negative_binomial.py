"""torch.distributions.NegativeBinomial."""
from __future__ import annotations

from ..autograd import no_grad
from ..nn.functional import logsigmoid
from ..ops.elementwise import clamp, exp, sigmoid
from ..ops.gamma import poisson
from ..ops.transcendental import lgamma
from ..tensor import Tensor
from . import constraints
from .binary import BinaryDistribution
from .gamma import Gamma
from .utils import lazy_property


class NegativeBinomial(BinaryDistribution):
    """The number of successes before total_count failures of Bernoulli(probs) trials (a gamma-Poisson mixture,
    as count regression uses it); give probs or logits."""

    arg_constraints = {"total_count": constraints.greater_than_eq(0), "probs": constraints.half_open_interval(0.0, 1.0),
                       "logits": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(self, total_count, probs=None, logits=None, validate_args: bool | None = None):
        self._set_probs_or_logits(validate_args, probs, logits, total_count=total_count)

    def expand(self, batch_shape, _instance=None):
        return self._expand_probs_or_logits(NegativeBinomial, batch_shape, _instance, "total_count")

    @property
    def mean(self) -> Tensor:
        return self.total_count * exp(self.logits)

    @property
    def mode(self) -> Tensor:
        return clamp(((self.total_count - 1) * exp(self.logits)).floor(), min=0.0)

    @property
    def variance(self) -> Tensor:
        return self.mean / sigmoid(-self.logits)

    @lazy_property
    def _gamma(self) -> Gamma:
        return Gamma(concentration=self.total_count, rate=exp(-self.logits), validate_args=False)

    def sample(self, sample_shape=()) -> Tensor:
        with no_grad():
            return poisson(self._gamma.sample(sample_shape))

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        log_unnormalized_prob = self.total_count * logsigmoid(-self.logits) + value * logsigmoid(self.logits)
        log_normalization = -lgamma(self.total_count + value) + lgamma(1.0 + value) + lgamma(self.total_count)
        # a zero count with zero total_count has probability 1
        log_normalization = log_normalization.masked_fill(self.total_count + value == 0.0, 0.0)
        return log_unnormalized_prob - log_normalization
