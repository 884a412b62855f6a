"""Lazy modules (torch.nn.LazyLinear, LazyConv1d/2d/3d): the input size is read off the first input, as scripts
that do not compute a flattened feature count rely on. The parameters are UninitializedParameters until the first
forward (a forward pre-hook materializes and initialises them), then the module becomes its ordinary class
(cls_to_become), as in torch. Build the optimizer after a dry run (torch's advice); one built before still works,
as materializing keeps each parameter's identity. The first forward must run eagerly: under graphc.compile it
changes a parameter's shape, so that call runs eagerly with a warning."""
from __future__ import annotations

from ..autograd import no_grad
from ..tensor import Tensor
from . import conv
from .linear import Linear
from .module import Module
from .parameter import UninitializedParameter, is_lazy, materialize


class LazyModuleMixin:
    """torch.nn.modules.lazy.LazyModuleMixin: initialize_parameters(*inputs) runs before the first forward (or
    parameters are materialized from a state dict's shapes), then the module's class becomes cls_to_become."""

    cls_to_become: type | None = None

    def _start_lazy(self) -> None:
        self._initialize_hook = self.register_forward_pre_hook(LazyModuleMixin._infer_parameters)

    def has_uninitialized_params(self) -> bool:
        return any(p is not None and is_lazy(p) for p in self._parameters.values())

    def initialize_parameters(self, *args) -> None:
        raise NotImplementedError(f"initialize_parameters is not implemented for {type(self).__name__}")

    @staticmethod
    def _infer_parameters(module, args: tuple) -> None:
        module.initialize_parameters(*args)
        if module.has_uninitialized_params():
            raise RuntimeError(f"module {type(module).__name__} has not been fully initialized")
        module._initialize_hook.remove()
        del module._initialize_hook
        if module.cls_to_become is not None:
            object.__setattr__(module, "__class__", module.cls_to_become)

    def load_state_dict(self, state_dict: dict, strict: bool = True):
        """Lazy parameters take the shapes of their entries in state_dict first (torch's lazy load hook)."""
        for name, p in self._parameters.items():
            if p is not None and is_lazy(p) and name in state_dict:
                materialize(p, tuple(state_dict[name].shape))
        return Module.load_state_dict(self, state_dict, strict)

    def _materialize_and_reset(self, weight_shape: tuple[int, ...], bias_shape: tuple[int, ...]) -> None:
        with no_grad():
            materialize(self.weight, weight_shape)
            if self.bias is not None:
                materialize(self.bias, bias_shape)
            self.reset_parameters()


class LazyLinear(LazyModuleMixin, Linear):
    """torch.nn.LazyLinear(out_features): a Linear whose in_features is the last dim of its first input."""

    cls_to_become = Linear

    def __init__(self, out_features: int, bias: bool = True, device=None, dtype=None):
        Module.__init__(self)
        self.in_features, self.out_features = 0, out_features
        self.weight = UninitializedParameter(device=device, dtype=dtype)
        self.register_parameter("bias", UninitializedParameter(device=device, dtype=dtype) if bias else None)
        self._start_lazy()

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.in_features != 0:
            super().reset_parameters()

    def initialize_parameters(self, input: Tensor) -> None:
        if self.has_uninitialized_params():
            self.in_features = input.shape[-1]
            self._materialize_and_reset((self.out_features, self.in_features), (self.out_features,))


class _LazyConvMixin(LazyModuleMixin):
    """The lazy convolutions: in_channels is dim 1 of the first input (dim 0 when it is unbatched)."""

    def __init__(self, out_channels: int, kernel_size, stride=1, padding=0, dilation=1, groups: int = 1,
                 bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        # built with one input channel per group (the checks and attributes of the ordinary class), then lazy
        super().__init__(groups, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                         device, dtype)
        self.in_channels = 0
        self.weight = UninitializedParameter(device=device, dtype=dtype)
        if bias:
            self.bias = UninitializedParameter(device=device, dtype=dtype)
        self._start_lazy()

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.in_channels != 0:
            super().reset_parameters()

    def initialize_parameters(self, input: Tensor, *args) -> None:
        if self.has_uninitialized_params():
            in_channels = input.shape[0 if input.ndim == len(self.kernel_size) + 1 else 1]
            if in_channels % self.groups:
                raise ValueError(f"{type(self).__name__}: in_channels ({in_channels}) must be divisible by groups "
                                 f"({self.groups})")
            self.in_channels = in_channels
            self._materialize_and_reset((self.out_channels, in_channels // self.groups, *self.kernel_size),
                                        (self.out_channels,))


class LazyConv1d(_LazyConvMixin, conv.Conv1d):
    """torch.nn.LazyConv1d(out_channels, kernel_size, ...): a Conv1d whose in_channels comes from the first input."""

    cls_to_become = conv.Conv1d


class LazyConv2d(_LazyConvMixin, conv.Conv2d):
    """torch.nn.LazyConv2d(out_channels, kernel_size, ...): a Conv2d whose in_channels comes from the first input."""

    cls_to_become = conv.Conv2d


class LazyConv3d(_LazyConvMixin, conv.Conv3d):
    """torch.nn.LazyConv3d(out_channels, kernel_size, ...): a Conv3d whose in_channels comes from the first input."""

    cls_to_become = conv.Conv3d
