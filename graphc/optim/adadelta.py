"""Adadelta (torch's single-tensor algorithm)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import dtypes
from ..ops.creation import zeros, zeros_like
from ..tensor import Tensor
from .optimizer import Optimizer, ascent, check_hyperparameter, implementation


class Adadelta(Optimizer):
    """torch.optim.Adadelta: an update of size sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g, both expectations
    moving averages with coefficient rho, scaled by lr (Zeiler 2012)."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1.0, rho: float = 0.9,
                 eps: float = 1e-6, weight_decay: float = 0.0, foreach: bool | None = None, *,
                 capturable: bool = False, maximize: bool = False, differentiable: bool = False):
        check_hyperparameter("learning rate", lr)
        if not 0.0 <= rho <= 1.0:
            raise ValueError(f"Invalid rho value: {rho}")
        check_hyperparameter("epsilon value", eps)
        check_hyperparameter("weight_decay value", weight_decay)
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                                      **implementation("Adadelta", foreach=foreach, capturable=capturable,
                                                       differentiable=differentiable)))

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        rho, eps = group["rho"], group["eps"]
        if not state:
            state.update(step=zeros((), dtype=dtypes.float32), square_avg=zeros_like(param),
                         acc_delta=zeros_like(param))
        state["step"].add_(1)
        grad = ascent(grad, group)
        if group["weight_decay"] != 0:
            grad = grad + param * group["weight_decay"]
        square_avg = state["square_avg"].mul_(rho).add_(grad * (1 - rho) * grad)  # torch's rounding order
        delta = (state["acc_delta"] + eps).sqrt() / (square_avg + eps).sqrt() * grad
        state["acc_delta"].mul_(rho).add_(delta * (1 - rho) * delta)
        param.sub_(delta * group["lr"])
