"""Rprop (torch's single-tensor algorithm): per-element step sizes adapted by the sign of successive gradients."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import dtypes
from ..ops.creation import full_like, zeros, zeros_like
from ..ops.elementwise import eq, gt, lt, where
from ..tensor import Tensor
from .optimizer import Optimizer, ascent, check_hyperparameter, implementation


class Rprop(Optimizer):
    """torch.optim.Rprop (Riedmiller and Braun 1993, without weight backtracking): each step size grows by etaplus
    where the gradient kept its sign, shrinks by etaminus where it flipped (and that gradient is then skipped),
    clamped to step_sizes; p -= sign(g) * step_size."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-2,
                 etas: tuple[float, float] = (0.5, 1.2), step_sizes: tuple[float, float] = (1e-6, 50), *,
                 capturable: bool = False, foreach: bool | None = None, maximize: bool = False,
                 differentiable: bool = False):
        check_hyperparameter("learning rate", lr)
        if not 0.0 < etas[0] < 1.0 < etas[1]:
            raise ValueError(f"Invalid eta values: {etas[0]}, {etas[1]}")
        super().__init__(params, dict(lr=lr, etas=tuple(etas), step_sizes=tuple(step_sizes), maximize=maximize,
                                      **implementation("Rprop", foreach=foreach, capturable=capturable,
                                                       differentiable=differentiable)))

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        (etaminus, etaplus), (step_size_min, step_size_max) = group["etas"], group["step_sizes"]
        if not state:
            state.update(step=zeros((), dtype=dtypes.float32), prev=zeros_like(param),
                         step_size=full_like(param, group["lr"]))
        state["step"].add_(1)
        grad = ascent(grad, group)
        sign = (grad * state["prev"]).sign()
        factor = where(gt(sign, 0), etaplus, where(lt(sign, 0), etaminus, 1.0))
        step_size = state["step_size"].mul_(factor).clamp_(step_size_min, step_size_max)
        grad = where(eq(factor, etaminus), 0.0, grad)
        param.sub_(grad.sign() * step_size)
        state["prev"].copy_(grad)
