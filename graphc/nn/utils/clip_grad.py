"""Gradient clipping: clip_grad_norm_ (get_total_norm, then clip_grads_with_norm_) and clip_grad_value_."""
from __future__ import annotations

import math
from collections.abc import Iterable

from ...autograd import no_grad
from ...ops.creation import zeros
from ...ops.elementwise import abs, clamp, isnan, logical_or, maximum
from ...ops.reduction import amax, sum
from ...tensor import Tensor


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, foreach: bool | None = None) -> Tensor:
    """Scale the gradients in place so that their joint norm is at most max_norm; returns the norm before clipping
    (a 0-d tensor): get_total_norm of the gradients, then clip_grads_with_norm_, as torch composes it."""
    params = _as_list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return zeros(())
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    clip_grads_with_norm_(params, max_norm, total)
    return total


def get_total_norm(tensors: Tensor | Iterable[Tensor], norm_type: float = 2.0, error_if_nonfinite: bool = False,
                   foreach: bool | None = None) -> Tensor:
    """The norm of the norms of tensors (the norm of all their elements together), a 0-d tensor; 0 for none.
    Everything stays a tensor op (no .item()) unless error_if_nonfinite asks for a check, which raises
    RuntimeError for a NaN or infinite norm."""
    tensors = _as_list(tensors)
    if not tensors:
        return zeros(())
    with no_grad():
        if norm_type == math.inf:
            total = amax(abs(tensors[0]))
            for g in tensors[1:]:
                total = maximum(total, amax(abs(g)))
        else:
            total = sum(abs(tensors[0]) ** norm_type)
            for g in tensors[1:]:
                total = total + sum(abs(g) ** norm_type)
            total = total ** (1.0 / norm_type)
        if error_if_nonfinite and bool(logical_or(isnan(total), total == math.inf)):
            raise RuntimeError(f"the total norm of order {norm_type} of the gradients is {total.item()}, "
                               "non-finite, so it cannot be clipped; pass error_if_nonfinite=False to clip anyway")
    return total


def clip_grads_with_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, total_norm: Tensor,
                          foreach: bool | None = None) -> None:
    """Scale the parameters' gradients in place by min(1, max_norm / (total_norm + 1e-6))."""
    with no_grad():
        scale = clamp(max_norm / (total_norm + 1e-6), max=1.0)
        for p in _as_list(parameters):
            if p.grad is not None:
                p.grad.mul_(scale.to(p.grad.dtype))


def _as_list(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient to [-clip_value, clip_value] in place (foreach is accepted for torch's signature)."""
    with no_grad():
        for p in _as_list(parameters):
            if p.grad is not None:
                p.grad.clamp_(min=-clip_value, max=clip_value)
