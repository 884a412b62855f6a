"""torch.optim.swa_utils: weight averaging of a model along training, as stochastic weight averaging (SWA; Izmailov
et al., "Averaging Weights Leads to Wider Optima and Better Generalization", 2018) or an exponential moving average
(EMA), the SWA learning-rate schedule, and recomputing BatchNorm statistics for the averaged weights."""
from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable

from ..autograd import no_grad
from ..nn.module import Module
from ..nn.normalization import _BatchNorm
from ..ops.creation import tensor
from ..tensor import Tensor
from .lr_scheduler import LRScheduler, _per_group
from .optimizer import Optimizer


def get_ema_multi_avg_fn(decay: float = 0.999) -> Callable:
    """The in-place EMA update of lists of averaged and current tensors: avg += (1 - decay) * (current - avg)."""
    def ema_update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        for a, c in zip(averaged, current):
            a.lerp_(c, 1 - decay)
    return ema_update


def get_swa_multi_avg_fn() -> Callable:
    """The in-place running mean of lists of tensors: avg += (current - avg) / (num_averaged + 1)."""
    def swa_update(averaged: list[Tensor], current: list[Tensor], num_averaged: Tensor) -> None:
        for a, c in zip(averaged, current):
            a.add_((c - a) / (num_averaged + 1))
    return swa_update


def get_ema_avg_fn(decay: float = 0.999) -> Callable:
    """avg_fn(averaged, current, num_averaged) -> the EMA's next value, decay * averaged + (1 - decay) * current."""
    return lambda averaged, current, num_averaged: decay * averaged + (1 - decay) * current


def get_swa_avg_fn() -> Callable:
    """avg_fn(averaged, current, num_averaged) -> the running mean's next value."""
    return lambda averaged, current, num_averaged: averaged + (current - averaged) / (num_averaged + 1)


class AveragedModel(Module):
    """torch.optim.swa_utils.AveragedModel: a deep copy of model (self.module) whose parameters update_parameters()
    averages with the model's: the running mean (SWA) by default, or avg_fn(averaged, current, n) per tensor, or
    multi_avg_fn(averaged list, current list, n) in place (get_ema_multi_avg_fn for an EMA). The first update copies.
    With use_buffers the buffers are averaged too, else they are copied from the model. n_averaged counts updates.
    Calling it runs the averaged copy."""

    def __init__(self, model: Module, device=None, avg_fn: Callable | None = None,
                 multi_avg_fn: Callable | None = None, use_buffers: bool = False):
        super().__init__()
        if avg_fn is not None and multi_avg_fn is not None:
            raise AssertionError("Only one of avg_fn and multi_avg_fn should be provided")
        self.module = copy.deepcopy(model)
        if device is not None:
            self.module = self.module.to(device)
        self.register_buffer("n_averaged", tensor(0))
        self.avg_fn, self.multi_avg_fn, self.use_buffers = avg_fn, multi_avg_fn, use_buffers

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def _averaged(self, model: Module) -> Iterable[Tensor]:
        return itertools.chain(model.parameters(), model.buffers()) if self.use_buffers else model.parameters()

    def update_parameters(self, model: Module) -> None:
        """Average model's current parameters (and buffers, with use_buffers) into this one's."""
        with no_grad():
            averaged = [p.detach() for p in self._averaged(self.module)]
            current = [p.detach().to(a.device) for a, p in zip(averaged, self._averaged(model))]
            if int(self.n_averaged) == 0:
                for a, c in zip(averaged, current):
                    a.copy_(c)
            elif self.avg_fn is not None:
                for a, c in zip(averaged, current):
                    a.copy_(self.avg_fn(a, c, self.n_averaged))
            else:
                (self.multi_avg_fn or get_swa_multi_avg_fn())(averaged, current, self.n_averaged)
            if not self.use_buffers:  # the buffers follow the model's
                for b, m in zip(self.module.buffers(), model.buffers()):
                    b.copy_(m.detach().to(b.device))
            self.n_averaged += 1


@no_grad()
def update_bn(loader: Iterable, model: Module, device=None) -> None:
    """Recompute the running statistics of model's BatchNorm layers with one pass over loader (each batch a tensor,
    or a list/tuple whose first item is the input), as a cumulative average (momentum None); momenta and the
    train/eval mode are restored after."""
    momenta = {m: m.momentum for m in model.modules() if isinstance(m, _BatchNorm)}
    if not momenta:
        return
    for module in momenta:
        module.reset_running_stats()
        module.momentum = None
    was_training = model.training
    model.train()
    for input in loader:
        if isinstance(input, (list, tuple)):
            input = input[0]
        model(input if device is None else input.to(device))
    for module, momentum in momenta.items():
        module.momentum = momentum
    model.train(was_training)


class SWALR(LRScheduler):
    """torch.optim.swa_utils.SWALR: anneal each group's lr to swa_lr over anneal_epochs steps ('cos' or 'linear'),
    then hold it. Raises ValueError for another strategy or a negative anneal_epochs."""

    def __init__(self, optimizer: Optimizer, swa_lr: float | list, anneal_epochs: int = 10,
                 anneal_strategy: str = "cos", last_epoch: int = -1):
        for lr, group in zip(_per_group("swa_lr", optimizer, swa_lr), optimizer.param_groups):
            group["swa_lr"] = lr
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got {anneal_strategy}")
        if not isinstance(anneal_epochs, int) or anneal_epochs < 0:
            raise ValueError(f"anneal_epochs must be equal or greater than 0, got {anneal_epochs}")
        self.anneal_strategy, self.anneal_epochs = anneal_strategy, anneal_epochs
        super().__init__(optimizer, last_epoch)

    def _anneal(self, t: float) -> float:
        return t if self.anneal_strategy == "linear" else (1 - math.cos(math.pi * t)) / 2

    def get_lr(self) -> list[float]:
        # torch's recurrence: recover the lr the annealing started from, then take the next point
        step = self._step_count - 1
        if self.anneal_epochs == 0:
            step = max(1, step)
        prev_alpha = self._anneal(max(0, min(1, (step - 1) / max(1, self.anneal_epochs))))
        alpha = self._anneal(max(0, min(1, step / max(1, self.anneal_epochs))))
        out = []
        for group in self.optimizer.param_groups:
            lr, swa = float(group["lr"]), group["swa_lr"]
            start = swa if prev_alpha == 1 else (lr - prev_alpha * swa) / (1 - prev_alpha)
            out.append(swa * alpha + start * (1 - alpha))
        return out
