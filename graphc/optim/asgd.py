"""ASGD (torch's single-tensor algorithm): SGD with a decaying step and a running average of the iterates."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import dtypes
from ..ops.creation import ones, tensor, zeros, zeros_like
from ..ops.elementwise import eq, maximum, where
from ..tensor import Tensor
from .optimizer import Optimizer, ascent, check_hyperparameter, implementation


class ASGD(Optimizer):
    """torch.optim.ASGD (Polyak and Juditsky 1992): p = p (1 - lambd eta) - eta g; the average ax follows p with
    weight mu; then eta = lr / (1 + lambd lr t)^alpha and mu = 1 / max(1, t - t0). eta, mu and step are 0-d tensors
    (torch's state), read as tensors so the compiler captures a step whole."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-2, lambd: float = 1e-4,
                 alpha: float = 0.75, t0: float = 1e6, weight_decay: float = 0.0, foreach: bool | None = None,
                 maximize: bool = False, differentiable: bool = False, capturable: bool = False):
        check_hyperparameter("learning rate", lr)
        check_hyperparameter("weight_decay value", weight_decay)
        super().__init__(params, dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0, weight_decay=weight_decay,
                                      maximize=maximize,
                                      **implementation("ASGD", foreach=foreach, capturable=capturable,
                                                       differentiable=differentiable)))

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        lr, lambd = group["lr"], group["lambd"]
        if not state:
            state.update(step=zeros((), dtype=dtypes.float32), eta=tensor(lr, dtype=dtypes.float32),
                         mu=ones((), dtype=dtypes.float32), ax=zeros_like(param))
        step = state["step"].add_(1).double()
        grad = ascent(grad, group)
        if group["weight_decay"] != 0:
            grad = grad + param * group["weight_decay"]
        eta, mu, ax = state["eta"], state["mu"], state["ax"]
        param.mul_(1 - eta.double() * lambd)
        param.sub_(grad * eta)
        ax.copy_(where(eq(mu, 1), param, ax + (param - ax) * mu))
        eta.copy_(lr / (step * (lambd * lr) + 1) ** group["alpha"])
        mu.copy_(1 / maximum(step - group["t0"], 1.0))
