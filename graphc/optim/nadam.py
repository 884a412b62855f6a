"""NAdam (torch's single-tensor algorithm): Adam with Nesterov momentum and a momentum-decay schedule."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import dtypes
from ..ops.creation import ones, zeros, zeros_like
from ..tensor import Tensor
from .adam import update_moments
from .optimizer import Optimizer, check_hyperparameter, check_moment_hyperparameters, implementation


class NAdam(Optimizer):
    """torch.optim.NAdam (Dozat 2016): mu_t = beta1 (1 - 0.5 * 0.96^(t psi)), and the step mixes the gradient and
    the next step's momentum: p -= lr (1 - mu_t) / (1 - prod mu) g / d + lr mu_{t+1} / (1 - prod mu * mu_{t+1}) m / d,
    d = sqrt(v / (1 - beta2^t)) + eps. `step` and `mu_product` are 0-d tensors and the schedule is tensor ops in
    float64 (torch uses Python floats), so the compiler captures a step whole."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 2e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum_decay: float = 4e-3, decoupled_weight_decay: bool = False, *, foreach: bool | None = None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False):
        check_moment_hyperparameters(lr, betas, eps, weight_decay)
        check_hyperparameter("momentum_decay value", momentum_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      momentum_decay=momentum_decay, decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize,
                                      **implementation("NAdam", foreach=foreach, capturable=capturable,
                                                       differentiable=differentiable)))

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        (beta1, beta2), lr = group["betas"], group["lr"]
        if not state:
            state.update(step=zeros((), dtype=dtypes.float32), mu_product=ones((), dtype=dtypes.float32),
                         exp_avg=zeros_like(param), exp_avg_sq=zeros_like(param))
        step = state["step"].add_(1).double()
        grad, exp_avg, exp_avg_sq = update_moments(param, grad, state, group)
        mu = (1.0 - 0.5 * 0.96 ** (step * group["momentum_decay"])) * beta1
        mu_next = (1.0 - 0.5 * 0.96 ** ((step + 1) * group["momentum_decay"])) * beta1
        mu_product = state["mu_product"].mul_(mu).double()
        denom = (exp_avg_sq / (1 - beta2**step)).sqrt() + group["eps"]
        param.sub_(grad / denom * (lr * (1.0 - mu) / (1.0 - mu_product)))
        param.sub_(exp_avg / denom * (lr * mu_next / (1.0 - mu_product * mu_next)))
