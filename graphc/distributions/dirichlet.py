"""torch.distributions.Dirichlet."""
from __future__ import annotations

import math

import numpy as np

from ..nn.functional import one_hot
from ..ops.elementwise import clamp, where
from ..ops.gamma import standard_gamma
from ..ops.reduction import all, argmax, sum
from ..ops.transcendental import digamma, lgamma, xlogy
from ..ops.view import expand, unsqueeze
from ..tensor import Size, Tensor
from . import constraints
from .distribution import Distribution


class Dirichlet(Distribution):
    """The Dirichlet distribution over the simplex of the last dim of concentration. rsample normalises gamma
    samples, so its gradients are the gamma samples' implicit reparameterization gradients through the
    normalisation (torch's _dirichlet_grad approximates the same derivative)."""

    arg_constraints = {"concentration": constraints.independent(constraints.positive, 1)}
    support = constraints.simplex
    has_rsample = True

    def __init__(self, concentration: Tensor, validate_args: bool | None = None):
        if concentration.ndim < 1:
            raise ValueError("`concentration` parameter must be at least one-dimensional.")
        self.concentration = concentration
        super().__init__(concentration.shape[:-1], concentration.shape[-1:], validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(Dirichlet, _instance)
        batch_shape = Size(batch_shape)
        new.concentration = expand(self.concentration, batch_shape + self.event_shape)
        return self._expanded(new, batch_shape)

    def rsample(self, sample_shape=()) -> Tensor:
        gammas = standard_gamma(expand(self.concentration, self._extended_shape(sample_shape)))
        tiny = float(np.finfo(gammas.dtype.np).tiny)
        value = gammas / sum(gammas, -1, keepdim=True)
        return value + (clamp(value.detach(), tiny, 1 - float(np.finfo(gammas.dtype.np).eps)) - value.detach())

    def log_prob(self, value: Tensor) -> Tensor:
        if self._validate_args:
            self._validate_sample(value)
        c = self.concentration
        return sum(xlogy(c - 1.0, value), -1) + lgamma(sum(c, -1)) - sum(lgamma(c), -1)

    @property
    def mean(self) -> Tensor:
        return self.concentration / sum(self.concentration, -1, keepdim=True)

    @property
    def mode(self) -> Tensor:
        """(alpha - 1) / sum(alpha - 1) with alpha - 1 clamped at 0; where every alpha < 1 (each vertex is a mode)
        the one-hot of that row's argmax, as torch's (its 0/0 NaNs make it the first vertex)."""
        above = clamp(self.concentration - 1, min=0.0)
        total = sum(above, -1, keepdim=True)
        empty = total == 0  # torch's 0/0 (NaN), made without dividing so no NaN reaches the gradient
        share = above / where(empty, 1.0, total)
        vertex = one_hot(argmax(share, -1), share.shape[-1]).to(share.dtype)
        return where(unsqueeze(all(self.concentration < 1, -1), -1), vertex, where(empty, math.nan, share))

    @property
    def variance(self) -> Tensor:
        c0 = sum(self.concentration, -1, keepdim=True)
        return self.concentration * (c0 - self.concentration) / (c0 ** 2 * (c0 + 1))

    def entropy(self) -> Tensor:
        c = self.concentration
        k, c0 = c.shape[-1], sum(c, -1)
        return (sum(lgamma(c), -1) - lgamma(c0) - (k - c0) * digamma(c0)
                - sum((c - 1.0) * digamma(c), -1))
