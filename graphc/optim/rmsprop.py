"""RMSprop (torch's single-tensor algorithm): momentum, centering, smoothing constant alpha, weight decay."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import dtypes
from ..ops.creation import zeros, zeros_like
from ..tensor import Tensor
from .optimizer import Optimizer, ascent, check_hyperparameter, implementation


class RMSprop(Optimizer):
    """torch.optim.RMSprop: p -= lr * g / (sqrt(E[g^2] - (E[g])^2 if centered) + eps), E[.] moving averages with
    smoothing constant alpha, optionally through a momentum buffer (Hinton's lecture 6e; torch's formulation)."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 capturable: bool = False, foreach: bool | None = None, maximize: bool = False,
                 differentiable: bool = False):
        for name, value in (("learning rate", lr), ("epsilon", eps), ("momentum value", momentum),
                            ("weight_decay value", weight_decay), ("alpha value", alpha)):
            check_hyperparameter(name, value)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered, maximize=maximize,
                                      **implementation("RMSprop", foreach=foreach, capturable=capturable,
                                                       differentiable=differentiable)))

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        alpha, momentum = group["alpha"], group["momentum"]
        if not state:
            state["step"] = zeros((), dtype=dtypes.float32)
            state["square_avg"] = zeros_like(param)
            if momentum > 0:
                state["momentum_buffer"] = zeros_like(param)
            if group["centered"]:
                state["grad_avg"] = zeros_like(param)
        state["step"].add_(1)
        grad = ascent(grad, group)
        if group["weight_decay"] != 0:
            grad = grad + param * group["weight_decay"]
        square_avg = state["square_avg"].mul_(alpha).add_(grad * (1 - alpha) * grad)  # torch's rounding order
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg.add_((grad - grad_avg) * (1 - alpha))
            avg = (square_avg - grad_avg * grad_avg).sqrt() + group["eps"]
        else:
            avg = square_avg.sqrt() + group["eps"]
        if momentum > 0:
            buf = state["momentum_buffer"].mul_(momentum).addcdiv_(grad, avg)
            param.sub_(buf * group["lr"])
        else:
            param.addcdiv_(grad, avg, value=-group["lr"])
