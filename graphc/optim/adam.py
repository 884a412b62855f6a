"""Adam and AdamW (torch's single-tensor algorithm; AdamW is Adam with decoupled weight decay)."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import dtypes
from ..ops.creation import zeros, zeros_like
from ..ops.elementwise import maximum
from ..tensor import Tensor
from .optimizer import Optimizer, ascent, check_hyperparameter, implementation


class Adam(Optimizer):
    """torch.optim.Adam: moment estimates with bias correction. `step` is a 0-d tensor and the bias corrections
    are tensor ops in float64 (torch computes them with Python floats), so the compiler captures a step whole."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0,
                 amsgrad: bool = False, *, foreach: bool | None = None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False, fused: bool | None = None,
                 decoupled_weight_decay: bool = False):
        check_hyperparameter("learning rate", lr)
        check_hyperparameter("epsilon", eps)
        check_hyperparameter("beta at index 0", betas[0], 1.0)
        check_hyperparameter("beta at index 1", betas[1], 1.0)
        check_hyperparameter("weight_decay", weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                                      maximize=maximize, decoupled_weight_decay=decoupled_weight_decay,
                                      **implementation(type(self).__name__, foreach=foreach, capturable=capturable,
                                                       differentiable=differentiable, fused=fused)))

    def _step_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """Parameters that have stepped together share one `step` tensor, so the step count and the bias corrections
        are computed once per group, not once per parameter (a parameter left out of a step gets its own copy)."""
        fresh = [p for p in params if not self.state.get(p)]
        if fresh:
            step = zeros((), dtype=dtypes.float32)
            for p in fresh:
                self.state[p] = {"step": step, "exp_avg": zeros_like(p), "exp_avg_sq": zeros_like(p)}
                if group["amsgrad"]:
                    self.state[p]["max_exp_avg_sq"] = zeros_like(p)
        stepping = {id(self.state[p]["step"]) for p in params}
        for p in group["params"]:
            state = self.state.get(p)
            if p.grad is None and state and id(state["step"]) in stepping:
                state["step"] = state["step"].clone()
        (beta1, beta2), lr = group["betas"], group["lr"]
        corrections: dict[int, tuple[Tensor, Tensor]] = {}
        for p in params:
            state = self.state[p]
            key = id(state["step"])
            if key not in corrections:
                state["step"].add_(1)
                step = state["step"].double()
                corrections[key] = (lr / (1 - beta1**step), (1 - beta2**step).sqrt())
            self._update(p, p.grad, state, group, *corrections[key])

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any],
                step_size: Tensor, bias_correction2_sqrt: Tensor) -> None:
        _, exp_avg, exp_avg_sq = update_moments(param, grad, state, group)
        second_moment = exp_avg_sq
        if group["amsgrad"]:
            second_moment = state["max_exp_avg_sq"].copy_(maximum(state["max_exp_avg_sq"], exp_avg_sq))
        denom = second_moment.sqrt() / bias_correction2_sqrt + group["eps"]
        param.sub_(exp_avg * step_size / denom)


class AdamW(Adam):
    """torch.optim.AdamW: Adam whose weight decay shrinks the parameters directly (p *= 1 - lr * weight_decay)."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, weight_decay: float = 1e-2,
                 amsgrad: bool = False, *, maximize: bool = False, foreach: bool | None = None,
                 capturable: bool = False, differentiable: bool = False, fused: bool | None = None):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, foreach=foreach,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)


def update_moments(param: Tensor, grad: Tensor, state: dict[str, Any],
                   group: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
    """The step Adam, NAdam and RAdam share: weight decay (added to the gradient, or decoupled: p *= 1 - lr * wd),
    then the moving averages exp_avg and exp_avg_sq of the gradient and its square, updated in place (in torch's
    rounding order). Returns (the gradient followed, exp_avg, exp_avg_sq)."""
    (beta1, beta2), lr, weight_decay = group["betas"], group["lr"], group["weight_decay"]
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    grad = ascent(grad, group)
    if weight_decay != 0:
        if group["decoupled_weight_decay"]:
            param.mul_(1 - lr * weight_decay)
        else:
            grad = grad + param * weight_decay
    exp_avg.add_((grad - exp_avg) * (1 - beta1))
    exp_avg_sq.mul_(beta2).add_(grad * (1 - beta2) * grad)
    return grad, exp_avg, exp_avg_sq
