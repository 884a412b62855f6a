"""Adagrad (torch's single-tensor algorithm): per-coordinate step sizes from the running sum of squared gradients."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import dtypes
from ..ops.creation import full_like, zeros
from ..tensor import Tensor
from .optimizer import Optimizer, ascent, check_hyperparameter, implementation


class Adagrad(Optimizer):
    """torch.optim.Adagrad: sum += g^2; p -= lr / (1 + (step - 1) * lr_decay) * g / (sqrt(sum) + eps) (Duchi et al.
    2011). As in torch, the state (step 0, sum = initial_accumulator_value) exists from construction."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0, eps: float = 1e-10,
                 foreach: bool | None = None, *, maximize: bool = False, differentiable: bool = False,
                 fused: bool | None = None):
        for name, value in (("learning rate", lr), ("lr_decay value", lr_decay), ("weight_decay value", weight_decay),
                            ("initial_accumulator_value value", initial_accumulator_value), ("epsilon value", eps)):
            check_hyperparameter(name, value)
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, maximize=maximize,
                                      **implementation("Adagrad", foreach=foreach, differentiable=differentiable,
                                                       fused=fused)))
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p] = {"step": zeros((), dtype=dtypes.float32),
                                 "sum": full_like(p, group["initial_accumulator_value"])}

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        state["step"].add_(1)
        grad = ascent(grad, group)
        if group["weight_decay"] != 0:
            grad = grad + param * group["weight_decay"]
        clr = group["lr"] / ((state["step"].double() - 1) * group["lr_decay"] + 1)
        state["sum"].addcmul_(grad, grad, value=1)
        param.sub_(grad / (state["sum"].sqrt() + group["eps"]) * clr)
