"""spectral_norm / remove_spectral_norm (torch.nn.utils's hook-based form): a weight divided by its largest singular
value, estimated by power iteration (Miyato et al. 2018), before every forward."""
from __future__ import annotations

from ...autograd import no_grad
from ...ops.matmul import matmul
from ...ops.reduction import sum
from ...tensor import Tensor
from .. import functional as F
from ..module import Module, Parameter


class SpectralNorm:
    """The forward pre-hook that sets module.<name> = <name>_orig / sigma, sigma = u . (W v) with W the weight as a
    matrix (dim first); in training each call first runs n_power_iterations steps v = normalize(W^T u),
    u = normalize(W v) on the buffers <name>_u and <name>_v, without gradient, as torch."""

    def __init__(self, name: str, n_power_iterations: int, dim: int, eps: float):
        if n_power_iterations <= 0:
            raise ValueError(f"Expected n_power_iterations to be positive, but got n_power_iterations="
                             f"{n_power_iterations}")
        self.name, self.n_power_iterations, self.dim, self.eps = name, n_power_iterations, dim, eps

    def reshape_weight_to_matrix(self, weight: Tensor) -> Tensor:
        if self.dim != 0:
            weight = weight.permute(self.dim, *(d for d in range(weight.ndim) if d != self.dim))
        return weight.reshape(weight.shape[0], -1)

    def compute_weight(self, module: Module, do_power_iteration: bool) -> Tensor:
        weight = getattr(module, self.name + "_orig")
        u, v = getattr(module, self.name + "_u"), getattr(module, self.name + "_v")
        matrix = self.reshape_weight_to_matrix(weight)
        if do_power_iteration:
            with no_grad():
                for _ in range(self.n_power_iterations):
                    v.copy_(F.normalize(matmul(matrix.T, u), dim=0, eps=self.eps))
                    u.copy_(F.normalize(matmul(matrix, v), dim=0, eps=self.eps))
            u, v = u.clone(), v.clone()
        return weight / sum(u * matmul(matrix, v))

    def __call__(self, module: Module, inputs: tuple) -> None:
        setattr(module, self.name, self.compute_weight(module, do_power_iteration=module.training))


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: int | None = None) -> Module:
    """Divide module.<name> by its spectral norm before each forward, as torch.nn.utils.spectral_norm: the parameter
    becomes `<name>_orig`, the power-iteration vectors the buffers `<name>_u` and `<name>_v` (N(0, 1), normalised);
    dim defaults to 1 for transposed convolutions, else 0. Raises RuntimeError if it already is."""
    from ..conv import ConvTranspose2d

    if any(isinstance(hook, SpectralNorm) and hook.name == name for hook in module._forward_pre_hooks.values()):
        raise RuntimeError(f"Cannot register two spectral_norm hooks on the same parameter {name}")
    dim = (1 if isinstance(module, ConvTranspose2d) else 0) if dim is None else dim
    hook = SpectralNorm(name, n_power_iterations, dim, eps)
    weight = module._parameters[name]
    with no_grad():
        height, width = hook.reshape_weight_to_matrix(weight).shape
        u = F.normalize(weight.new_empty(height).normal_(0, 1), dim=0, eps=eps)
        v = F.normalize(weight.new_empty(width).normal_(0, 1), dim=0, eps=eps)
    delattr(module, name)
    module.register_parameter(name + "_orig", weight)
    setattr(module, name, weight.detach())
    module.register_buffer(name + "_u", u)
    module.register_buffer(name + "_v", v)
    module.register_forward_pre_hook(hook)
    return module


def remove_spectral_norm(module: Module, name: str = "weight") -> Module:
    """Fold the spectral normalisation back into the parameter <name>. Raises ValueError if it is not applied."""
    for key, hook in module._forward_pre_hooks.items():
        if isinstance(hook, SpectralNorm) and hook.name == name:
            with no_grad():
                weight = hook.compute_weight(module, do_power_iteration=False)
            for suffix in ("", "_u", "_v", "_orig"):
                delattr(module, name + suffix)
            setattr(module, name, Parameter(weight.detach()))
            del module._forward_pre_hooks[key]
            return module
    raise ValueError(f"spectral_norm of '{name}' not found in {module}")
