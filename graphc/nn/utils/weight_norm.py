"""weight_norm / remove_weight_norm (torch.nn.utils's hook-based form): a weight re-parameterised as g * v / ||v||
(Salimans and Kingma 2016), recomputed from the parameters `<name>_g` and `<name>_v` before every forward."""
from __future__ import annotations

import warnings

from ...ops.reduction import norm
from ...tensor import Tensor
from ..module import Module, Parameter


def norm_except_dim(v: Tensor, pow: float = 2, dim: int = 0) -> Tensor:
    """The pow-norm of v over every dim but dim (kept, size 1 elsewhere); dim=-1 gives the norm of all of v."""
    if dim == -1:
        return norm(v, pow)
    return norm(v, pow, tuple(d for d in range(v.ndim) if d != dim % v.ndim), keepdim=True)


class WeightNorm:
    """The forward pre-hook that recomputes module.<name> = g * v / norm_except_dim(v, 2, dim)."""

    def __init__(self, name: str, dim: int):
        self.name, self.dim = name, dim

    def compute_weight(self, module: Module) -> Tensor:
        g, v = getattr(module, self.name + "_g"), getattr(module, self.name + "_v")
        return v * (g / norm_except_dim(v, 2, self.dim))

    def __call__(self, module: Module, inputs: tuple) -> None:
        setattr(module, self.name, self.compute_weight(module))


def weight_norm(module: Module, name: str = "weight", dim: int | None = 0) -> Module:
    """Re-parameterise module.<name> by its magnitude `<name>_g` (the norm over all dims but dim; dim=None: the
    whole tensor) and direction `<name>_v`, as torch.nn.utils.weight_norm, with its FutureWarning (use
    parametrizations.weight_norm). Raises RuntimeError if it already is."""
    warnings.warn("`graphc.nn.utils.weight_norm` is deprecated in favor of "
                  "`graphc.nn.utils.parametrizations.weight_norm`.", FutureWarning, stacklevel=2)
    if any(isinstance(hook, WeightNorm) and hook.name == name for hook in module._forward_pre_hooks.values()):
        raise RuntimeError(f"Cannot register two weight_norm hooks on the same parameter {name}")
    hook = WeightNorm(name, -1 if dim is None else dim)
    weight = getattr(module, name)
    del module._parameters[name]
    module.register_parameter(name + "_g", Parameter(norm_except_dim(weight, 2, hook.dim).detach()))
    module.register_parameter(name + "_v", Parameter(weight.detach()))
    setattr(module, name, hook.compute_weight(module))
    module.register_forward_pre_hook(hook)
    return module


def remove_weight_norm(module: Module, name: str = "weight") -> Module:
    """Fold `<name>_g` and `<name>_v` back into the parameter <name>. Raises ValueError if weight_norm is not
    applied to it."""
    for key, hook in module._forward_pre_hooks.items():
        if isinstance(hook, WeightNorm) and hook.name == name:
            weight = hook.compute_weight(module).detach()
            delattr(module, name)
            del module._parameters[name + "_g"], module._parameters[name + "_v"]
            setattr(module, name, Parameter(weight))
            del module._forward_pre_hooks[key]
            return module
    raise ValueError(f"weight_norm of '{name}' not found in {module}")
