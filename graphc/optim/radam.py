"""RAdam (torch's single-tensor algorithm): Adam whose adaptive step is rectified while its variance is intractable."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import dtypes
from ..ops.creation import zeros, zeros_like
from ..ops.elementwise import gt, maximum, where
from ..tensor import Tensor
from .adam import update_moments
from .optimizer import Optimizer, check_moment_hyperparameters, implementation


class RAdam(Optimizer):
    """torch.optim.RAdam (Liu et al. 2019): with rho_inf = 2 / (1 - beta2) - 1 and rho_t = rho_inf - 2 t beta2^t /
    (1 - beta2^t), p -= lr m / (1 - beta1^t) * r_t sqrt(1 - beta2^t) / (sqrt(v) + eps) where rho_t > 5, else
    p -= lr m / (1 - beta1^t); r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t)). The
    choice is a `where` on the 0-d step tensor (torch's capturable form), so the compiler captures a step whole."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 decoupled_weight_decay: bool = False, *, foreach: bool | None = None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False):
        check_moment_hyperparameters(lr, betas, eps, weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                                      **implementation("RAdam", foreach=foreach, capturable=capturable,
                                                       differentiable=differentiable)))

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        (beta1, beta2), lr = group["betas"], group["lr"]
        if not state:
            state.update(step=zeros((), dtype=dtypes.float32), exp_avg=zeros_like(param), exp_avg_sq=zeros_like(param))
        step = state["step"].add_(1).double()
        _, exp_avg, exp_avg_sq = update_moments(param, grad, state, group)
        bias_correction2 = 1 - beta2**step
        bias_corrected_exp_avg = exp_avg / (1 - beta1**step)
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - step * 2 * beta2**step / bias_correction2
        rho = maximum(rho_t, 5.0)  # the rectifier is only read where rho_t > 5; this keeps its square root real
        rect = ((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)).sqrt()
        adaptive = bias_correction2.sqrt() / (exp_avg_sq.sqrt() + group["eps"])
        param.sub_(bias_corrected_exp_avg * lr * where(gt(rho_t, 5.0), adaptive * rect, 1.0))
