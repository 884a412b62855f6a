"""torch.nn.utils.parametrizations: weight_norm and spectral_norm as parametrizations (the non-deprecated forms)."""
from __future__ import annotations

from ...autograd import no_grad
from ...ops.matmul import matmul
from ...ops.reduction import sum
from ...tensor import Tensor
from .. import functional as F
from ..module import Module
from .parametrize import register_parametrization
from .weight_norm import norm_except_dim


class _WeightNorm(Module):
    """weight = g * v / norm_except_dim(v, 2, dim), stored as original0 = g, original1 = v."""

    def __init__(self, dim: int | None = 0):
        super().__init__()
        self.dim = -1 if dim is None else dim

    def forward(self, weight_g: Tensor, weight_v: Tensor) -> Tensor:
        return weight_v * (weight_g / norm_except_dim(weight_v, 2, self.dim))

    def right_inverse(self, weight: Tensor) -> tuple[Tensor, Tensor]:
        return norm_except_dim(weight, 2, self.dim), weight


def weight_norm(module: Module, name: str = "weight", dim: int | None = 0) -> Module:
    """Parametrize module.<name> by its magnitude (parametrizations.<name>.original0, the norm over all dims but
    dim; None: the whole tensor) and direction (original1), as torch.nn.utils.parametrizations.weight_norm."""
    return register_parametrization(module, name, _WeightNorm(dim), unsafe=True)


class _SpectralNorm(Module):
    """weight / sigma, sigma = u . (W v) estimated by power iteration on the buffers _u and _v (15 steps at
    registration, n_power_iterations per training forward, without gradient); a 1-d weight is normalised exactly."""

    def __init__(self, weight: Tensor, n_power_iterations: int = 1, dim: int = 0, eps: float = 1e-12):
        super().__init__()
        if not -weight.ndim <= dim < weight.ndim:
            raise IndexError(f"Dimension out of range (expected to be in range of [-{weight.ndim}, "
                             f"{weight.ndim - 1}] but got {dim})")
        if n_power_iterations <= 0:
            raise ValueError(f"Expected n_power_iterations to be positive, but got n_power_iterations="
                             f"{n_power_iterations}")
        self.dim, self.eps, self.n_power_iterations = dim % weight.ndim, eps, n_power_iterations
        if weight.ndim > 1:
            matrix = self._matrix(weight)
            with no_grad():
                height, width = matrix.shape
                self.register_buffer("_u", F.normalize(matrix.new_empty(height).normal_(0, 1), dim=0, eps=eps))
                self.register_buffer("_v", F.normalize(matrix.new_empty(width).normal_(0, 1), dim=0, eps=eps))
            self._power_method(matrix, 15)

    def _matrix(self, weight: Tensor) -> Tensor:
        if self.dim != 0:
            weight = weight.permute(self.dim, *(d for d in range(weight.ndim) if d != self.dim))
        return weight.flatten(1)

    def _power_method(self, matrix: Tensor, n_power_iterations: int) -> None:
        with no_grad():
            for _ in range(n_power_iterations):
                self._u.copy_(F.normalize(matmul(matrix, self._v), dim=0, eps=self.eps))
                self._v.copy_(F.normalize(matmul(matrix.T, self._u), dim=0, eps=self.eps))

    def forward(self, weight: Tensor) -> Tensor:
        if weight.ndim == 1:
            return F.normalize(weight, dim=0, eps=self.eps)
        matrix = self._matrix(weight)
        if self.training:
            self._power_method(matrix, self.n_power_iterations)
        return weight / sum(self._u.clone() * matmul(matrix, self._v.clone()))

    def right_inverse(self, value: Tensor) -> Tensor:
        return value


def spectral_norm(module: Module, name: str = "weight", n_power_iterations: int = 1, eps: float = 1e-12,
                  dim: int | None = None) -> Module:
    """Parametrize module.<name> as itself divided by its spectral norm, as
    torch.nn.utils.parametrizations.spectral_norm (dim defaults to 1 for transposed convolutions, else 0)."""
    from ..conv import ConvTranspose2d

    weight = getattr(module, name)
    dim = (1 if isinstance(module, ConvTranspose2d) else 0) if dim is None else dim
    return register_parametrization(module, name, _SpectralNorm(weight, n_power_iterations, dim, eps))
