"""torch.distributions.Multinomial."""
from __future__ import annotations

import math

from .. import dtypes
from ..ops.creation import ones_like, tensor, zeros
from ..ops.elementwise import exp, logical_and, where
from ..ops.indexing import scatter_add
from ..ops.reduction import sum
from ..ops.transcendental import lgamma
from ..ops.view import permute
from ..tensor import Size, Tensor
from . import constraints
from .binomial import Binomial
from .categorical import OverCategorical
from .utils import broadcast_all


class Multinomial(OverCategorical):
    """Counts of total_count draws from Categorical(probs or logits), an event of the categories' size.
    total_count must be an int (NotImplementedError otherwise, as torch's); log_prob takes any total."""

    def __init__(self, total_count: int = 1, probs=None, logits=None, validate_args: bool | None = None):
        if not isinstance(total_count, int):
            raise NotImplementedError("inhomogeneous total_count is not supported")
        self.total_count = total_count
        super().__init__(probs, logits, validate_args=validate_args)
        self._binomial = Binomial(total_count=total_count, probs=self.probs)

    def expand(self, batch_shape, _instance=None):
        return self._expand_categorical(Multinomial, batch_shape, _instance, "total_count")

    @constraints.dependent_property(is_discrete=True, event_dim=1)
    def support(self):
        return constraints.multinomial(self.total_count)

    @property
    def mean(self) -> Tensor:
        return self.probs * self.total_count

    @property
    def variance(self) -> Tensor:
        return self.total_count * self.probs * (1 - self.probs)

    def sample(self, sample_shape=()) -> Tensor:
        sample_shape = Size(sample_shape)
        samples = self._categorical.sample(Size((self.total_count,)) + sample_shape)
        samples = permute(samples, tuple(range(1, samples.ndim)) + (0,))  # the draws last, then counted
        counts = scatter_add(zeros(tuple(self._extended_shape(sample_shape)), dtype=dtypes.int64), -1, samples,
                             ones_like(samples))
        return counts.type_as(self.probs)

    def entropy(self) -> Tensor:
        n = tensor(float(self.total_count), dtype=self.probs.dtype)
        term1 = n * self._categorical.entropy() - lgamma(n + 1)
        support = self._binomial.enumerate_support(expand=False)[1:]
        binomial_probs = exp(self._binomial.log_prob(support))
        return term1 + sum(binomial_probs * lgamma(support + 1), (0, -1))

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        logits, value = broadcast_all(self.logits, value)
        log_factorial_n = lgamma(sum(value, -1) + 1)
        log_factorial_xs = sum(lgamma(value + 1), -1)
        # an impossible category drawn zero times adds nothing (0 * -inf would be NaN)
        logits = where(logical_and(value == 0, logits == -math.inf), 0.0, logits)
        return log_factorial_n - log_factorial_xs + sum(logits * value, -1)
