"""Gradient clipping: clip_grad_norm_ and clip_grad_value_."""
from __future__ import annotations

import math
from collections.abc import Iterable

from ...autograd import no_grad
from ...ops.creation import zeros
from ...ops.elementwise import abs, clamp, isnan, logical_or, maximum
from ...ops.reduction import amax, sum
from ...tensor import Tensor


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale the gradients in place so that their joint norm is at most max_norm; returns the norm before clipping
    (a 0-d tensor). Everything stays a tensor op (no .item()) unless error_if_nonfinite asks for a check."""
    params = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return zeros(())
    with no_grad():
        if norm_type == math.inf:
            total = amax(abs(grads[0]))
            for g in grads[1:]:
                total = maximum(total, amax(abs(g)))
        else:
            total = sum(abs(grads[0]) ** norm_type)
            for g in grads[1:]:
                total = total + sum(abs(g) ** norm_type)
            total = total ** (1.0 / norm_type)
        if error_if_nonfinite and bool(logical_or(isnan(total), total == math.inf)):
            raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                               f"{total.item()}; pass error_if_nonfinite=False to clip anyway")
        scale = clamp(max_norm / (total + 1e-6), max=1.0)
        for g in grads:
            g.mul_(scale.to(g.dtype))
    return total


def _as_list(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    return [parameters] if isinstance(parameters, Tensor) else list(parameters)


def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float, foreach: bool | None = None) -> None:
    """Clamp every gradient to [-clip_value, clip_value] in place (foreach is accepted for torch's signature)."""
    with no_grad():
        for p in _as_list(parameters):
            if p.grad is not None:
                p.grad.clamp_(min=-clip_value, max=clip_value)
