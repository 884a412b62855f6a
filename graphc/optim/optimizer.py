"""Optimizer: parameter groups, per-parameter state, zero_grad and torch-layout state dicts."""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from ..autograd import enable_grad, no_grad
from ..tensor import Tensor


def implementation(name: str, **flags) -> dict[str, Any]:
    """torch's switches between implementations of the same update (foreach: loops over lists of tensors; fused: one
    kernel; capturable: CUDA-graph capture), as an optimizer's constructor got them: graphc has one implementation,
    so they are kept in the hyper-parameters (torch's param_groups and state dicts hold them too).
    differentiable=True (an update autograd differentiates through) raises NotImplementedError: graphc's steps
    run under no_grad."""
    if flags.get("differentiable"):
        raise NotImplementedError(f"{name}(differentiable=True): graphc's optimizer steps run under no_grad; "
                                  "differentiate through an update written with tensor ops instead")
    return flags


class Optimizer:
    """torch.optim.Optimizer: holds param_groups (dicts of params plus hyper-parameters) and per-parameter state.
    Subclasses implement step(); updates are in-place graphc ops run under no_grad, so the compiler can capture them."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], defaults: dict[str, Any]):
        self.defaults = defaults
        self.state: dict[Tensor, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        for group in params if isinstance(params[0], dict) else [{"params": params}]:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own hyper-parameters (the rest come from the defaults)."""
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, set):
            raise TypeError("optimizer parameters must be an ordered sequence (a set has no stable order)")
        group["params"] = params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__} can only optimize Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{type(self).__name__} can't optimize a non-leaf Tensor (shape {list(p.shape)})")
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError("some parameters appear more than once in the optimizer's parameter groups")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient: drop it (the default) or fill it with zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if set_to_none:
                        p.grad = None
                    else:
                        p.grad.detach_().zero_()

    def step(self, closure: Callable[[], Any] | None = None):
        """Update every parameter that has a gradient; a closure re-evaluates the loss first and is returned."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                self._step_group(group, [p for p in group["params"] if p.grad is not None])
        return loss

    def _step_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """Update the parameters of one group that have a gradient."""
        for p in params:
            self._update(p, p.grad, self.state.setdefault(p, {}), group)

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """One parameter's in-place update, reading and filling its state dict (empty at the first step)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """{'state': {index: per-parameter state}, 'param_groups': [hyper-parameters + 'params': [indices]]},
        with parameters numbered in group order, as torch does."""
        index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        groups = [{**{k: v for k, v in g.items() if k != "params"}, "params": [index[id(p)] for p in g["params"]]}
                  for g in self.param_groups]
        return {"state": {index[id(p)]: s for p, s in self.state.items() if s}, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyper-parameters and state saved by state_dict() (ours or torch's, converted to graphc tensors);
        state tensors are copied to each parameter's dtype and device, except 'step'."""
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"load_state_dict: the state dict has {len(saved_groups)} parameter groups, the "
                             f"optimizer has {len(self.param_groups)}")
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"load_state_dict: parameter group {i} has {len(saved['params'])} parameters in "
                                 f"the state dict and {len(group['params'])} in the optimizer")
        param_of = {index: p for saved, group in zip(saved_groups, self.param_groups)
                    for index, p in zip(saved["params"], group["params"])}
        self.state = {param_of[index]: {key: _restore(value, param_of[index], key) for key, value in s.items()}
                      for index, s in state_dict["state"].items() if index in param_of}
        self.param_groups = [{**copy.deepcopy({k: v for k, v in saved.items() if k != "params"}),
                              "params": group["params"]} for saved, group in zip(saved_groups, self.param_groups)]

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join(lines + [")"])


def _restore(value, param: Tensor, key: str):
    """A loaded state value as this optimizer's own copy, on the parameter's device (and dtype, but for 'step')."""
    if not isinstance(value, Tensor):
        return copy.deepcopy(value)
    if key != "step" and param.dtype.is_floating_point and value.dtype.is_floating_point:
        value = value.to(param.dtype)
    return value.to(param.device).detach().clone()


def ascent(grad: Tensor, group: dict[str, Any]) -> Tensor:
    """The gradient an update follows: negated when the group maximizes its objective (torch's maximize=True)."""
    return -grad if group.get("maximize") else grad


def check_hyperparameter(name: str, value: float, upper: float | None = None) -> None:
    """Refuse a negative hyper-parameter, or one not below `upper`, as torch does."""
    if not (value >= 0.0 and (upper is None or value < upper)):
        raise ValueError(f"Invalid {name}: {value}" + ("" if upper is None else f" (expected 0 <= {name} < {upper})"))


def check_moment_hyperparameters(lr: float, betas: tuple[float, float], eps: float, weight_decay: float) -> None:
    """Adamax's, NAdam's and RAdam's checks, in torch's words: non-negative lr, eps and weight_decay, betas in
    [0, 1)."""
    check_hyperparameter("learning rate", lr)
    check_hyperparameter("epsilon value", eps)
    check_hyperparameter("beta parameter at index 0", betas[0], 1.0)
    check_hyperparameter("beta parameter at index 1", betas[1], 1.0)
    check_hyperparameter("weight_decay value", weight_decay)
