"""torch.distributions.Distribution: the base class (shapes, validation, sample/rsample, the moments)."""
from __future__ import annotations

import warnings

from ..autograd import no_grad
from ..ops.indexing import _assert_async
from ..ops.reduction import all
from ..ops.view import expand
from ..state import STATE
from ..tensor import Size, Tensor
from . import constraints
from .utils import broadcast_all, lazy_property


class Distribution:
    """A batch of distributions of batch_shape, each over events of event_shape. Parameters are checked against
    arg_constraints and log_prob's values against support when validate_args (by default, as torch's: on unless
    Python runs with -O; Distribution.set_default_validate_args changes it). Inside graphc.compile a check is an op
    of the plan (_assert_async), run at every replay, not a graph break."""

    has_rsample = False
    has_enumerate_support = False
    _validate_args = __debug__

    @staticmethod
    def set_default_validate_args(value: bool) -> None:
        """Turn parameter and sample validation on or off for distributions made from now on."""
        if value not in (True, False):
            raise ValueError
        Distribution._validate_args = value

    def __init__(self, batch_shape=(), event_shape=(), validate_args: bool | None = None):
        self._batch_shape, self._event_shape = Size(batch_shape), Size(event_shape)
        if validate_args is not None:
            self._validate_args = validate_args
        if self._validate_args:
            for param, constraint in self.arg_constraints.items():
                if constraints.is_dependent(constraint):
                    continue
                if param not in self.__dict__ and isinstance(getattr(type(self), param), lazy_property):
                    continue  # a parameter derived from the one given (probs from logits) is not checked
                value = getattr(self, param)
                self._check(constraint.check(value), value, lambda shown, value=value, param=param,
                            constraint=constraint: f"Expected parameter {param} ({type(value).__name__} of shape "
                            f"{tuple(value.shape)}) of distribution {shown} to satisfy the constraint "
                            f"{constraint!r}, but found invalid values")

    def expand(self, batch_shape, _instance=None):
        """This distribution with its parameters expanded to batch_shape (no copy)."""
        raise NotImplementedError

    def _set_parameters(self, validate_args: bool | None, **values) -> None:
        """Store parameters given as numbers or tensors, broadcast together (numbers as tensors); the batch shape is
        theirs, () when all are numbers."""
        numbers = not any(isinstance(v, Tensor) for v in values.values())
        tensors = broadcast_all(*values.values())
        for name, value in zip(values, tensors):
            setattr(self, name, value)
        Distribution.__init__(self, Size() if numbers else tensors[0].shape, validate_args=validate_args)

    def _expand_parameters(self, cls: type, batch_shape, _instance, *names: str) -> Distribution:
        """expand() of a distribution whose parameters (names) each have its batch shape."""
        new = self._get_checked_instance(cls, _instance)
        batch_shape = Size(batch_shape)
        for name in names:
            setattr(new, name, expand(getattr(self, name), batch_shape))
        return self._expanded(new, batch_shape)

    def _expanded(self, new: Distribution, batch_shape: Size) -> Distribution:
        """new (its parameters already expanded) with batch_shape, this event_shape and this validation setting."""
        Distribution.__init__(new, batch_shape, self._event_shape, validate_args=False)
        new._validate_args = self._validate_args
        return new

    def _get_checked_instance(self, cls, _instance=None):
        if _instance is None and type(self).__init__ != cls.__init__:
            raise NotImplementedError(f"Subclass {self.__class__.__name__} of {cls.__name__} that defines a custom "
                                      "__init__ method must also define a custom .expand() method.")
        return self.__new__(type(self)) if _instance is None else _instance

    @property
    def batch_shape(self) -> Size:
        return self._batch_shape

    @property
    def event_shape(self) -> Size:
        return self._event_shape

    @property
    def arg_constraints(self) -> dict:
        raise NotImplementedError

    @property
    def support(self):
        raise NotImplementedError

    @property
    def mean(self) -> Tensor:
        raise NotImplementedError

    @property
    def mode(self) -> Tensor:
        raise NotImplementedError(f"{self.__class__} does not implement mode")

    @property
    def variance(self) -> Tensor:
        raise NotImplementedError

    @property
    def stddev(self) -> Tensor:
        return self.variance.sqrt()

    def sample(self, sample_shape=()) -> Tensor:
        """A sample of shape sample_shape + batch_shape + event_shape, outside autograd."""
        with no_grad():
            return self.rsample(sample_shape)

    def rsample(self, sample_shape=()) -> Tensor:
        """A reparameterized sample: gradients flow to the parameters."""
        raise NotImplementedError

    def sample_n(self, n: int) -> Tensor:
        warnings.warn("sample_n will be deprecated. Use .sample((n,)) instead", UserWarning, stacklevel=2)
        return self.sample((n,))

    def log_prob(self, value: Tensor) -> Tensor:
        raise NotImplementedError

    def cdf(self, value: Tensor) -> Tensor:
        raise NotImplementedError

    def icdf(self, value: Tensor) -> Tensor:
        raise NotImplementedError

    def enumerate_support(self, expand: bool = True) -> Tensor:
        raise NotImplementedError

    def entropy(self) -> Tensor:
        raise NotImplementedError

    def perplexity(self) -> Tensor:
        return self.entropy().exp()

    def _extended_shape(self, sample_shape=()) -> Size:
        return Size(tuple(sample_shape) + tuple(self._batch_shape) + tuple(self._event_shape))

    def _validate_sample(self, value: Tensor) -> None:
        """torch's check of log_prob's value: a tensor, of a shape broadcastable to the batch, in the support."""
        if not isinstance(value, Tensor):
            raise ValueError("The value argument to log_prob must be a Tensor")
        event_dim_start = value.ndim - len(self._event_shape)
        if tuple(value.shape)[event_dim_start:] != tuple(self._event_shape):
            raise ValueError(f"The right-most size of value must match event_shape: {value.shape} vs "
                             f"{self._event_shape}.")
        actual, expected = value.shape, self._batch_shape + self._event_shape
        for i, j in zip(reversed(actual), reversed(expected)):
            if i != 1 and j != 1 and i != j:
                raise ValueError(f"Value is not broadcastable with batch_shape+event_shape: {actual} vs {expected}.")
        try:
            support = self.support
        except NotImplementedError:
            warnings.warn(f"{self.__class__} does not define `support` to enable sample validation. Please "
                          "initialize the distribution with `validate_args=False` to turn off validation.",
                          stacklevel=2)
            return
        self._check(support.check(value), value, lambda shown: f"Expected value argument ({type(value).__name__} "
                    f"of shape {tuple(value.shape)}) to be within the support ({support!r}) of the distribution "
                    f"{shown}, but found invalid values")

    def _check(self, ok: Tensor, value: Tensor, message) -> None:
        """Raise ValueError(message(this distribution's repr) and the values) unless ok is true everywhere. While
        graphc.compile traces, the check is the plan's op _assert_async (the values are not known while tracing)."""
        if STATE.capture is None:
            if not bool(all(ok)):
                raise ValueError(f"{message(repr(self))}:\n{value}")
        else:
            _assert_async(all(ok), message=message(repr(self)), error="ValueError")

    def __repr__(self) -> str:
        names = [k for k in self.arg_constraints if k in self.__dict__]
        # while graphc.compile traces, values are not known: sizes only
        shown = {p: self.__dict__[p] for p in names}
        args = ", ".join(f"{p}: {v if v.numel() == 1 and STATE.capture is None else Size(v.shape)}"
                         for p, v in shown.items())
        return f"{self.__class__.__name__}({args})"
