"""Adamax (torch's single-tensor algorithm): Adam with an infinity-norm second moment."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import dtypes
from ..ops.creation import zeros, zeros_like
from ..ops.elementwise import maximum
from ..tensor import Tensor
from .optimizer import Optimizer, ascent, check_moment_hyperparameters, implementation


class Adamax(Optimizer):
    """torch.optim.Adamax: m = beta1 m + (1 - beta1) g, u = max(beta2 u, |g| + eps), p -= lr / (1 - beta1^t) * m / u
    (Kingma and Ba 2014, section 7)."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 2e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 foreach: bool | None = None, *, maximize: bool = False, differentiable: bool = False,
                 capturable: bool = False):
        check_moment_hyperparameters(lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      maximize=maximize,
                                      **implementation("Adamax", foreach=foreach, capturable=capturable,
                                                       differentiable=differentiable)))

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        if not state:
            state.update(step=zeros((), dtype=dtypes.float32), exp_avg=zeros_like(param), exp_inf=zeros_like(param))
        state["step"].add_(1)
        grad = ascent(grad, group)
        if group["weight_decay"] != 0:
            grad = grad + param * group["weight_decay"]
        exp_avg, exp_inf = state["exp_avg"], state["exp_inf"]
        exp_avg.add_((grad - exp_avg) * (1 - beta1))
        exp_inf.copy_(maximum(exp_inf * beta2, grad.abs() + group["eps"]))
        clr = group["lr"] / (1 - beta1 ** state["step"].double())
        param.sub_(exp_avg / exp_inf * clr)
