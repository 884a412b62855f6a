"""parameters_to_vector and vector_to_parameters: a model's parameters as one flat vector and back."""
from __future__ import annotations

import builtins
from collections.abc import Iterable

from ...autograd import no_grad
from ...ops.join import cat
from ...tensor import Tensor


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """The parameters flattened and concatenated into one 1-d tensor (differentiable, as in torch)."""
    return cat([p.reshape(-1) for p in parameters])


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copy consecutive slices of the 1-d vec into the parameters, in order. Raises TypeError if vec is not a
    tensor, ValueError if its length is not the parameters' total size."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"expected vec to be a Tensor, but got: {type(vec).__name__}")
    params = list(parameters)
    total = builtins.sum(p.numel() for p in params)
    if vec.ndim != 1 or vec.shape[0] != total:
        raise ValueError(f"vector_to_parameters: vec of shape {list(vec.shape)} does not hold the {total} values of "
                         "the parameters")
    offset = 0
    with no_grad():
        for p in params:
            p.copy_(vec[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
