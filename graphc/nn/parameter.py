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
        p = Tensor._make(data._storage(), data.dtype, requires_grad)
        _PARAMETERS[id(p)] = p
        return p
