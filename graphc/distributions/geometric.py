"""torch.distributions.Geometric."""
from __future__ import annotations

import numpy as np

from ..autograd import no_grad
from ..nn.functional import binary_cross_entropy_with_logits
from ..ops.creation import sample, zeros_like
from ..ops.elementwise import log, log1p, logical_and, where
from ..ops.view import expand
from ..tensor import Tensor
from . import constraints
from .binary import BinaryDistribution
from .utils import broadcast_all


class Geometric(BinaryDistribution):
    """The number of failures before the first success of Bernoulli(probs) trials (0, 1, 2, ...); give probs or
    logits. probs must be positive (ValueError, as torch's)."""

    arg_constraints = {"probs": constraints.unit_interval, "logits": constraints.real}
    support = constraints.nonnegative_integer

    def __init__(self, probs=None, logits=None, validate_args: bool | None = None):
        self._set_probs_or_logits(validate_args, probs, logits)
        if self._validate_args and probs is not None:
            value = self.probs
            self._check(value > 0, value, lambda shown: f"Expected parameter probs ({type(value).__name__} of shape "
                        f"{tuple(value.shape)}) of distribution {shown} to be positive but found invalid values")

    def expand(self, batch_shape, _instance=None):
        return self._expand_probs_or_logits(Geometric, batch_shape, _instance)

    @property
    def mean(self) -> Tensor:
        return 1.0 / self.probs - 1.0

    @property
    def mode(self) -> Tensor:
        return zeros_like(self.probs)

    @property
    def variance(self) -> Tensor:
        return (1.0 / self.probs - 1.0) / self.probs

    def sample(self, sample_shape=()) -> Tensor:
        with no_grad():
            like = expand(self.probs, self._extended_shape(sample_shape))
            u = sample(like, distribution="uniform", params=(float(np.finfo(like.dtype.np).tiny), 1.0))
            return (log(u) / log1p(-self.probs)).floor()

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value, probs = broadcast_all(value, self.probs)
        # a certain success and no failure: 0 * log(0) is 0
        probs = where(logical_and(probs == 1, value == 0), 0.0, probs)
        return value * log1p(-probs) + log(self.probs)

    def entropy(self) -> Tensor:
        return binary_cross_entropy_with_logits(self.logits, self.probs, reduction="none") / self.probs
