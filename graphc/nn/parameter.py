"""torch.nn.Parameter (graphc.nn.parameter, as torch.nn.parameter)."""
from __future__ import annotations

import weakref

from ..ops.creation import tensor
from ..tensor import Tensor

_PARAMETERS: weakref.WeakValueDictionary[int, Tensor] = weakref.WeakValueDictionary()


class _ParameterType(type):
    def __instancecheck__(cls, obj) -> bool:
        return type(obj) is Tensor and _PARAMETERS.get(id(obj)) is obj


class Parameter(metaclass=_ParameterType):
    """torch.nn.Parameter: a leaf tensor that a Module registers as a parameter when assigned as an attribute.
    Parameter(t) returns a plain graphc Tensor sharing t's storage (isinstance(p, Parameter) is True), so every op
    treats it as a tensor; the dispatch never sees a subclass."""

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True) -> Tensor:
        data = tensor([]) if data is None else data
        if data._data is None:  # a value graphc.compile is tracing: a new leaf each call, which a replay cannot make
            from ..compiler.capture import CaptureError
            from ..errors import user_line

            raise CaptureError(f"nn.Parameter of a value the compiled function computes (at {user_line()}): make "
                               "parameters outside it, and update them in place under no_grad")
        p = Tensor._make(data._storage(), data.dtype, requires_grad)
        _PARAMETERS[id(p)] = p
        return p


_UNINITIALIZED: weakref.WeakValueDictionary[int, Tensor] = weakref.WeakValueDictionary()


class _UninitializedType(_ParameterType):
    def __instancecheck__(cls, obj) -> bool:
        return type(obj) is Tensor and _UNINITIALIZED.get(id(obj)) is obj


class UninitializedParameter(Parameter, metaclass=_UninitializedType):
    """torch.nn.parameter.UninitializedParameter: a Parameter whose shape is not known yet (a lazy module's until
    its first forward). It holds no elements; materialize(param, shape) gives it memory in place, so an optimizer
    that holds it sees the materialized parameter (torch's materialize, a function here because a graphc Parameter
    is a plain Tensor)."""

    def __new__(cls, requires_grad: bool = True, device=None, dtype=None) -> Tensor:
        from ..ops.creation import empty

        p = Parameter(empty(0, device=device, dtype=dtype), requires_grad)
        _UNINITIALIZED[id(p)] = p
        return p


def is_lazy(param: Tensor) -> bool:
    """torch.nn.parameter.is_lazy: whether param is an UninitializedParameter."""
    return isinstance(param, UninitializedParameter)


def materialize(param: Tensor, shape: tuple[int, ...]) -> None:
    """Give an UninitializedParameter uninitialised memory of `shape` (its dtype and device); it stays the same
    object and becomes an ordinary Parameter. Raises RuntimeError for a parameter that is not lazy."""
    from ..ops.creation import empty

    if not is_lazy(param):
        raise RuntimeError("materialize: the parameter is already initialized")
    param.data = empty(*shape, dtype=param.dtype, device=param.device)
    del _UNINITIALIZED[id(param)]
