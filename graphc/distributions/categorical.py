"""torch.distributions.Categorical."""
from __future__ import annotations

import math

import numpy as np

from ..autograd import no_grad
from ..ops import meta
from ..ops.creation import arange, full, multinomial
from ..ops.elementwise import clamp
from ..ops.indexing import gather
from ..ops.reduction import argmax, sum
from ..ops.view import expand, reshape, squeeze, unsqueeze
from ..tensor import Size, Tensor
from . import constraints
from .distribution import Distribution
from .utils import lazy_property, logits_to_probs, normalized_logits, probs_to_logits


class Categorical(Distribution):
    """A distribution over the indices 0 .. K-1 of the last dim of probs (normalised to sum to 1) or of logits
    (unnormalised log-probabilities); give one of them."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.independent(constraints.real, 1)}
    has_enumerate_support = True

    def __init__(self, probs=None, logits=None, validate_args: bool | None = None):
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        if probs is not None:
            if probs.ndim < 1:
                raise ValueError("`probs` parameter must be at least one-dimensional.")
            self.probs = probs / sum(probs, -1, keepdim=True)
        else:
            if logits.ndim < 1:
                raise ValueError("`logits` parameter must be at least one-dimensional.")
            self.logits = normalized_logits(logits)
        self._param = self.probs if probs is not None else self.logits
        self._num_events = self._param.shape[-1]
        batch_shape = self._param.shape[:-1] if self._param.ndim > 1 else Size()
        super().__init__(batch_shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Categorical, _instance)
        batch_shape = Size(batch_shape)
        param_shape = batch_shape + Size((self._num_events,))
        if "probs" in self.__dict__:
            new.probs = expand(self.probs, param_shape)
            new._param = new.probs
        if "logits" in self.__dict__:
            new.logits = expand(self.logits, param_shape)
            new._param = new.logits
        new._num_events = self._num_events
        return self._expanded(new, batch_shape)

    @constraints.dependent_property(is_discrete=True, event_dim=0)
    def support(self):
        return constraints.integer_interval(0, self._num_events - 1)

    @lazy_property
    def logits(self) -> Tensor:
        return probs_to_logits(self.probs)

    @lazy_property
    def probs(self) -> Tensor:
        return logits_to_probs(self.logits)

    @property
    def param_shape(self) -> Size:
        return self._param.shape

    @property
    def mean(self) -> Tensor:
        return full(self._extended_shape(), math.nan, dtype=self.probs.dtype)

    @property
    def mode(self) -> Tensor:
        return argmax(self.probs, -1)

    @property
    def variance(self) -> Tensor:
        return full(self._extended_shape(), math.nan, dtype=self.probs.dtype)

    def sample(self, sample_shape=()) -> Tensor:
        sample_shape = Size(sample_shape)
        with no_grad():
            probs_2d = reshape(self.probs, (-1, self._num_events))
            samples_2d = multinomial(probs_2d, max(sample_shape.numel(), 1), True).T
            return reshape(samples_2d, self._extended_shape(sample_shape))

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        value, logits = unsqueeze(value.long(), -1), self.logits
        if tuple(value.shape)[:-1] != tuple(logits.shape)[:-1]:  # else no sizes enter a compiled plan
            batch = meta.broadcast(tuple(value.shape)[:-1], tuple(logits.shape)[:-1])
            value, logits = expand(value, batch + (1,)), expand(logits, batch + (self._num_events,))
        return squeeze(gather(logits, -1, value), -1)

    def entropy(self) -> Tensor:
        logits = clamp(self.logits, min=float(np.finfo(self.logits.dtype.np).min))
        return -sum(logits * self.probs, -1)

    def enumerate_support(self, expand: bool = True) -> Tensor:
        values = reshape(arange(self._num_events),
                         (-1,) + (1,) * len(self._batch_shape))
        return values.expand((-1,) + tuple(self._batch_shape)) if expand else values


class OverCategorical(Distribution):
    """A distribution over vectors of a Categorical's K events (one-hot vectors, counts, relaxed one-hot vectors):
    it keeps the Categorical of probs or logits, and its event shape is (K,)."""

    arg_constraints = {"probs": constraints.simplex, "logits": constraints.independent(constraints.real, 1)}

    def __init__(self, probs=None, logits=None, validate_args: bool | None = None):
        self._categorical = Categorical(probs, logits)
        super().__init__(self._categorical.batch_shape, self._categorical.param_shape[-1:],
                         validate_args=validate_args)

    def _expand_categorical(self, cls: type, batch_shape, _instance, *others: str) -> Distribution:
        """expand() of this class cls, with the attributes others (not batched) kept."""
        new = self._get_checked_instance(cls, _instance)
        batch_shape = Size(batch_shape)
        new._categorical = self._categorical.expand(batch_shape)
        for name in others:
            setattr(new, name, getattr(self, name))
        return self._expanded(new, batch_shape)

    @property
    def _param(self) -> Tensor:
        return self._categorical._param

    @property
    def probs(self) -> Tensor:
        return self._categorical.probs

    @property
    def logits(self) -> Tensor:
        return self._categorical.logits

    @property
    def param_shape(self) -> Size:
        return self._categorical.param_shape
