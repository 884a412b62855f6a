"""torch.distributions.RelaxedBernoulli and LogitRelaxedBernoulli (the binary Concrete distribution)."""
from __future__ import annotations

from ..ops.creation import rand_like
from ..ops.elementwise import exp, log, log1p
from ..ops.view import expand
from ..tensor import Tensor
from . import constraints
from .binary import BinaryDistribution
from .transformed_distribution import TransformedDistribution
from .transforms import SigmoidTransform
from .utils import broadcast_all, clamp_probs


class LogitRelaxedBernoulli(BinaryDistribution):
    """The logit of a RelaxedBernoulli: (logit(U) + logits) / temperature for U ~ Uniform(0, 1) (Maddison et al.
    2017, "The Concrete Distribution"); give probs or logits."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.real

    def __init__(self, temperature: Tensor, probs=None, logits=None, validate_args: bool | None = None):
        self.temperature = temperature
        self._set_probs_or_logits(validate_args, probs, logits)

    def expand(self, batch_shape, _instance=None):
        new = self._expand_probs_or_logits(LogitRelaxedBernoulli, batch_shape, _instance)
        new.temperature = self.temperature
        return new

    def rsample(self, sample_shape=()) -> Tensor:
        probs = clamp_probs(expand(self.probs, self._extended_shape(sample_shape)))
        uniforms = clamp_probs(rand_like(probs))
        return (log(uniforms) - log1p(-uniforms) + log(probs) - log1p(-probs)) / self.temperature

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        diff = logits - value * self.temperature
        return log(self.temperature) + diff - 2 * log1p(exp(diff))


class RelaxedTransformed(TransformedDistribution):
    """A relaxed distribution built on a base with temperature, probs and logits (RelaxedBernoulli,
    RelaxedOneHotCategorical): those are the base's."""

    has_rsample = True

    @property
    def temperature(self) -> Tensor:
        return self.base_dist.temperature

    @property
    def logits(self) -> Tensor:
        return self.base_dist.logits

    @property
    def probs(self) -> Tensor:
        return self.base_dist.probs


class RelaxedBernoulli(RelaxedTransformed):
    """A relaxed (continuous on [0, 1], differentiable) Bernoulli: sigmoid of a LogitRelaxedBernoulli, as torch
    builds it; temperature -> 0 gives Bernoulli(probs)."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.unit_interval

    def __init__(self, temperature: Tensor, probs=None, logits=None, validate_args: bool | None = None):
        super().__init__(LogitRelaxedBernoulli(temperature, probs, logits), SigmoidTransform(),
                         validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, _instance=self._get_checked_instance(RelaxedBernoulli, _instance))
