"""Helpers shared by the distributions, as torch.distributions.utils."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..ops.creation import tensor
from ..ops.elementwise import clamp, log, log1p, sigmoid
from ..ops.reduction import log_softmax, softmax, sum
from ..ops.view import expand
from ..tensor import Tensor


def broadcast_all(*values) -> tuple[Tensor, ...]:
    """torch.distributions.utils.broadcast_all: numbers as tensors (of the tensors' dtype, else the default dtype),
    all expanded to one broadcast shape. TypeError for anything else."""
    tensors = [v for v in values if isinstance(v, Tensor)]
    for v in values:
        if not isinstance(v, (Tensor, int, float)):
            raise ValueError("Input arguments must all be instances of numbers.Number, torch.Tensor or objects "
                             "implementing __torch_function__.")
    dtype = tensors[0].dtype if tensors else dtypes.get_default_dtype()
    values = [v if isinstance(v, Tensor) else tensor(float(v), dtype=dtype) for v in values]
    from ..ops.meta import broadcast

    shape = broadcast(*(tuple(v.shape) for v in values))
    return tuple(v if tuple(v.shape) == shape else expand(v, shape) for v in values)


def clamp_probs(probs: Tensor) -> Tensor:
    """probs clamped to [eps, 1 - eps] of their dtype, so log and log1p stay finite."""
    eps = float(np.finfo(probs.dtype.np).eps)
    return clamp(probs, eps, 1 - eps)


def probs_to_logits(probs: Tensor, is_binary: bool = False) -> Tensor:
    """torch's probs_to_logits: log-odds for a Bernoulli (is_binary), else log-probabilities."""
    ps_clamped = clamp_probs(probs)
    if is_binary:
        return log(ps_clamped) - log1p(-ps_clamped)
    return log(ps_clamped)


def logits_to_probs(logits: Tensor, is_binary: bool = False) -> Tensor:
    """torch's logits_to_probs: sigmoid for a Bernoulli (is_binary), else softmax over the last dim."""
    return sigmoid(logits) if is_binary else softmax(logits, -1)


def normalized_logits(logits: Tensor) -> Tensor:
    """Logits shifted so that they are log-probabilities (logits - logsumexp), as Categorical stores them."""
    return log_softmax(logits, -1)


def sum_rightmost(value: Tensor, dim: int) -> Tensor:
    """value summed over its `dim` rightmost dims."""
    return sum(value, tuple(range(-dim, 0))) if dim > 0 else value


class lazy_property:  # noqa: N801  torch's name
    """A property computed on first access and then stored on the instance (probs from logits and back)."""

    def __init__(self, wrapped):
        self.wrapped = wrapped
        self.__doc__ = wrapped.__doc__

    def __get__(self, instance, obj_type=None):
        if instance is None:
            return self
        value = self.wrapped(instance)
        setattr(instance, self.wrapped.__name__, value)
        return value
