"""Convolutions (1-d, 2-d, 3-d, transposed) and pooling layers."""
from __future__ import annotations

from ..ops.nn import pair, spatial
from ..tensor import Tensor
from . import functional as F
from .linear import new_parameter, reset_weight_and_bias
from .module import Module


class _ConvNd(Module):
    """Shared by the convolution modules: torch's argument checks, attributes, (transposed) weight layout and
    initialisation. `_size` turns an int or tuple argument into the layer's per-dimension tuple."""

    transposed = False

    @staticmethod
    def _size(value, name: str) -> tuple[int, ...]:
        raise NotImplementedError

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        if padding_mode != "zeros":
            raise ValueError(f"{name}: only padding_mode='zeros' is supported, got {padding_mode!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                             f"divisible by groups ({groups})")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride = self._size(kernel_size, "kernel_size"), self._size(stride, "stride")
        self.padding = padding if isinstance(padding, str) else self._size(padding, "padding")
        self.dilation = self._size(dilation, "dilation")
        channels = (in_channels, out_channels // groups) if self.transposed else (out_channels, in_channels // groups)
        self.weight = new_parameter(*channels, *self.kernel_size, device=device, dtype=dtype)
        self.register_parameter("bias", new_parameter(out_channels, device=device, dtype=dtype) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_weight_and_bias(self.weight, self.bias)

    def extra_repr(self) -> str:
        """torch's: only the arguments that differ from their defaults, after the channels, kernel and stride."""
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0,) * len(self.padding):
            s += f", padding={self.padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += f", dilation={self.dilation}"
        output_padding = getattr(self, "output_padding", ())
        if output_padding != (0,) * len(output_padding):
            s += f", output_padding={output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")


def _single(value, name: str) -> tuple[int]:
    return (F._single(value, name),)


def _triple(value, name: str) -> tuple[int, int, int]:
    return spatial(value, name, 3)


class Conv1d(_ConvNd):
    """1-d convolution (cross-correlation) of (N, C_in, L) inputs; weight (C_out, C_in/groups, K)."""

    _size = staticmethod(_single)

    def forward(self, input: Tensor) -> Tensor:
        return F.conv1d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv2d(_ConvNd):
    """2-d convolution (cross-correlation) of (N, C_in, H, W) inputs; weight (C_out, C_in/groups, KH, KW)."""

    _size = staticmethod(pair)

    def forward(self, input: Tensor) -> Tensor:
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Conv3d(_ConvNd):
    """3-d convolution (cross-correlation) of (N, C_in, D, H, W) inputs; weight (C_out, C_in/groups, KD, KH, KW)."""

    _size = staticmethod(_triple)

    def forward(self, input: Tensor) -> Tensor:
        return F.conv3d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """2-d transposed convolution of (N, C_in, H, W) inputs; weight (C_in, C_out/groups, KH, KW), torch's init.
    forward(input, output_size) picks the output_padding that gives output_size."""

    transposed = True
    _size = staticmethod(pair)
    _conv = staticmethod(F.conv_transpose2d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None,
                 dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        self.output_padding = self._size(output_padding, "output_padding")

    def forward(self, input: Tensor, output_size=None) -> Tensor:
        output_padding = self.output_padding if output_size is None else self._output_padding(input, output_size)
        return self._conv(input, self.weight, self.bias, self.stride, self.padding, output_padding, self.groups,
                          self.dilation)

    def _output_padding(self, input: Tensor, output_size) -> tuple[int, int]:
        """The output_padding (each below the stride) that makes the output output_size; ValueError if none does."""
        dims = len(self.kernel_size)
        size = tuple(output_size)[-dims:]
        smallest = [(n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k in
                    zip(input.shape[-dims:], self.stride, self.padding, self.dilation, self.kernel_size)]
        if any(not 0 <= want - low < s for want, low, s in zip(size, smallest, self.stride)):
            raise ValueError(f"requested an output size of {list(size)}, but valid sizes range from {smallest} to "
                             f"{[low + s - 1 for low, s in zip(smallest, self.stride)]} (for an input of "
                             f"{list(input.shape[-dims:])})")
        return tuple(want - low for want, low in zip(size, smallest))

class ConvTranspose1d(ConvTranspose2d):
    """1-d transposed convolution of (N, C_in, L) inputs; weight (C_in, C_out/groups, K), torch's init."""

    _size = staticmethod(_single)
    _conv = staticmethod(F.conv_transpose1d)


class ConvTranspose3d(ConvTranspose2d):
    """3-d transposed convolution of (N, C_in, D, H, W) inputs; weight (C_in, C_out/groups, KD, KH, KW), torch's
    init."""

    _size = staticmethod(_triple)
    _conv = staticmethod(F.conv_transpose3d)


class MaxPool2d(Module):
    """Maximum over each kernel_size window of (N, C, H, W) inputs (stride defaults to kernel_size); with
    return_indices, forward returns (output, indices) as max_unpool reads them."""

    _pool = staticmethod(F.max_pool2d)

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__()
        self.kernel_size, self.stride = kernel_size, stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input: Tensor):
        return self._pool(input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                          self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(MaxPool2d):
    """Maximum over each kernel_size window of (N, C, L) inputs (stride defaults to kernel_size)."""

    _pool = staticmethod(F.max_pool1d)


class MaxPool3d(MaxPool2d):
    """Maximum over each kernel_size window of (N, C, D, H, W) inputs (stride defaults to kernel_size)."""

    _pool = staticmethod(F.max_pool3d)


class AvgPool2d(Module):
    """Mean over each kernel_size window of (N, C, H, W) inputs (stride defaults to kernel_size)."""

    _pool = staticmethod(F.avg_pool2d)

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride if stride is not None else kernel_size, \
            padding
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override

    def forward(self, input: Tensor) -> Tensor:
        return self._pool(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool3d(AvgPool2d):
    """Mean over each kernel_size window of (N, C, D, H, W) inputs (stride defaults to kernel_size)."""

    _pool = staticmethod(F.avg_pool3d)


class AdaptiveAvgPool2d(Module):
    """Average over torch's adaptive bins to a fixed output_size (an int, or a pair whose None keeps that size)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool3d(AdaptiveAvgPool2d):
    """Average over torch's adaptive bins of (N, C, D, H, W) inputs to output_size (None keeps that size)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool3d(input, self.output_size)


class AvgPool1d(Module):
    """Mean over each kernel_size window of (N, C, L) inputs (stride defaults to kernel_size)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
        super().__init__()
        self.kernel_size = (F._single(kernel_size, "kernel_size"),)
        self.stride = (F._single(stride if stride is not None else kernel_size, "stride"),)
        self.padding = (F._single(padding, "padding"),)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, input: Tensor) -> Tensor:
        return F.avg_pool1d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool1d(AdaptiveAvgPool2d):
    """Average over torch's adaptive bins of (N, C, L) inputs to output_size."""

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_avg_pool1d(input, self.output_size)


class AdaptiveMaxPool1d(Module):
    """Maximum over torch's adaptive bins of (N, C, L) inputs to output_size."""

    def __init__(self, output_size, return_indices: bool = False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_max_pool1d(input, self.output_size, self.return_indices)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(AdaptiveMaxPool1d):
    """Maximum over torch's adaptive bins of (N, C, H, W) inputs to output_size (None keeps that size)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_max_pool2d(input, self.output_size, self.return_indices)


class AdaptiveMaxPool3d(AdaptiveMaxPool1d):
    """Maximum over torch's adaptive bins of (N, C, D, H, W) inputs to output_size (None keeps that size)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.adaptive_max_pool3d(input, self.output_size, self.return_indices)


class _LPPoolNd(Module):
    def __init__(self, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False):
        super().__init__()
        self.norm_type, self.kernel_size, self.stride, self.ceil_mode = norm_type, kernel_size, stride, ceil_mode

    def extra_repr(self) -> str:
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"ceil_mode={self.ceil_mode}")


class LPPool1d(_LPPoolNd):
    """Power-average pooling of (N, C, L) inputs: (sum of x**p over each window)**(1/p)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.lp_pool1d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)


class LPPool2d(_LPPoolNd):
    """Power-average pooling of (N, C, H, W) inputs: (sum of x**p over each window)**(1/p)."""

    def forward(self, input: Tensor) -> Tensor:
        return F.lp_pool2d(input, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)


class _MaxUnpoolNd(Module):
    """The inverse of MaxPool*d(return_indices=True): forward(input, indices, output_size=None) scatters each value
    to its index in zeros of the unpooled size (kernel_size, stride and padding as tuples, as torch keeps them)."""

    _size = staticmethod(pair)
    _unpool = staticmethod(F.max_unpool2d)

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = self._size(kernel_size, "kernel_size")
        self.stride = self._size(stride if stride is not None else kernel_size, "stride")
        self.padding = self._size(padding, "padding")

    def forward(self, input: Tensor, indices: Tensor, output_size=None) -> Tensor:
        return self._unpool(input, indices, self.kernel_size, self.stride, self.padding, output_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpoolNd):
    """The inverse of MaxPool1d(return_indices=True) on (N, C, L) inputs."""

    _size = staticmethod(_single)
    _unpool = staticmethod(F.max_unpool1d)


class MaxUnpool2d(_MaxUnpoolNd):
    """The inverse of MaxPool2d(return_indices=True) on (N, C, H, W) inputs."""


class MaxUnpool3d(_MaxUnpoolNd):
    """The inverse of MaxPool3d(return_indices=True) on (N, C, D, H, W) inputs."""

    _size = staticmethod(_triple)
    _unpool = staticmethod(F.max_unpool3d)
