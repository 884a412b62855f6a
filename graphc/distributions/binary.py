"""The distributions of one success probability, given as probs or as its log-odds logits (Bernoulli, Geometric,
Binomial, NegativeBinomial, ContinuousBernoulli, LogitRelaxedBernoulli): how they store, derive and expand it."""
from __future__ import annotations

from ..tensor import Size, Tensor
from .distribution import Distribution
from .utils import broadcast_all, lazy_property, logits_to_probs, probs_to_logits


class BinaryDistribution(Distribution):
    """A distribution with exactly one of probs and logits given; the other is derived on first use."""

    def _set_probs_or_logits(self, validate_args: bool | None, probs, logits, **others) -> None:
        """Store exactly one of probs and logits (ValueError otherwise, as torch's) as _param, broadcast with the
        other parameters (others, stored in its dtype); the batch shape is theirs. The other of probs and logits is
        derived on first use (a lazy_property of the subclass)."""
        if (probs is None) == (logits is None):
            raise ValueError("Either `probs` or `logits` must be specified, but not both.")
        name, value = ("probs", probs) if probs is not None else ("logits", logits)
        param, *rest = broadcast_all(value, *others.values())
        setattr(self, name, param)
        for other, tensor in zip(others, rest):
            setattr(self, other, tensor.type_as(param))
        self._param = param
        Distribution.__init__(self, param.shape, validate_args=validate_args)

    def _expand_probs_or_logits(self, cls: type, batch_shape, _instance, *others: str) -> Distribution:
        """expand() of a distribution stored by _set_probs_or_logits."""
        new = self._expand_parameters(cls, batch_shape, _instance,
                                      *others, *(k for k in ("probs", "logits") if k in self.__dict__))
        new._param = new.__dict__["probs" if self._param is self.__dict__.get("probs") else "logits"]
        return new

    @lazy_property
    def logits(self) -> Tensor:
        return probs_to_logits(self.probs, is_binary=True)

    @lazy_property
    def probs(self) -> Tensor:
        return logits_to_probs(self.logits, is_binary=True)

    @property
    def param_shape(self) -> Size:
        return self._param.shape
