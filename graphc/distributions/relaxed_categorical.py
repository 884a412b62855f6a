"""torch.distributions.RelaxedOneHotCategorical and ExpRelaxedCategorical (the Concrete / Gumbel-softmax
distribution)."""
from __future__ import annotations

from ..ops.creation import full_like, rand_like
from ..ops.elementwise import log
from ..ops.reduction import logsumexp, sum
from ..ops.transcendental import lgamma
from ..ops.view import expand
from ..tensor import Tensor
from . import constraints
from .categorical import OverCategorical
from .relaxed_bernoulli import RelaxedTransformed
from .transforms import ExpTransform
from .utils import broadcast_all, clamp_probs


class ExpRelaxedCategorical(OverCategorical):
    """The log of a RelaxedOneHotCategorical: log_softmax((logits + Gumbel noise) / temperature) (Maddison et al.
    2017, "The Concrete Distribution": the ExpConcrete density); give probs or logits."""

    support = constraints.real_vector  # the true support is a submanifold of it
    has_rsample = True

    def __init__(self, temperature: Tensor, probs=None, logits=None, validate_args: bool | None = None):
        self.temperature = temperature
        super().__init__(probs, logits, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return self._expand_categorical(ExpRelaxedCategorical, batch_shape, _instance, "temperature")

    def rsample(self, sample_shape=()) -> Tensor:
        uniforms = clamp_probs(rand_like(expand(self.logits, self._extended_shape(sample_shape))))
        gumbels = -log(-log(uniforms))
        scores = (self.logits + gumbels) / self.temperature
        return scores - logsumexp(scores, -1, keepdim=True)

    def log_prob(self, value: Tensor) -> Tensor:
        k = self._categorical._num_events
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        log_scale = lgamma(full_like(self.temperature, float(k))) + log(self.temperature) * (k - 1)
        score = logits - value * self.temperature
        return sum(score - logsumexp(score, -1, keepdim=True), -1) + log_scale


class RelaxedOneHotCategorical(RelaxedTransformed):
    """A relaxed one-hot categorical on the simplex (Gumbel-softmax samples, differentiable): exp of an
    ExpRelaxedCategorical, as torch builds it."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.real_vector}
    support = constraints.simplex

    def __init__(self, temperature: Tensor, probs=None, logits=None, validate_args: bool | None = None):
        super().__init__(ExpRelaxedCategorical(temperature, probs, logits, validate_args=validate_args),
                         ExpTransform(), validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        return super().expand(batch_shape, _instance=self._get_checked_instance(RelaxedOneHotCategorical, _instance))
