"""Padding modules (constant, zero, reflection, replication, circular; 1 to 3 padded dims) over F.pad, with torch's
names, padding tuples and reprs."""
from __future__ import annotations

from ..tensor import Tensor
from . import functional as F
from .module import Module


class _PadNd(Module):
    """F.pad with `mode` over the last `dims` dims; padding is an int (every side) or a 2 * dims tuple."""

    mode = "constant"
    dims = 1

    def __init__(self, padding):
        super().__init__()
        padding = (padding,) * (2 * self.dims) if isinstance(padding, int) else tuple(padding)
        if len(padding) != 2 * self.dims:
            raise ValueError(f"{type(self).__name__}: padding must be an int or a {2 * self.dims}-tuple, got "
                             f"{padding}")
        self.padding = padding

    def forward(self, input: Tensor) -> Tensor:
        return F.pad(input, self.padding, self.mode)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding, value: float):
        super().__init__(padding)
        self.value = value

    def forward(self, input: Tensor) -> Tensor:
        return F.pad(input, self.padding, "constant", self.value)

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPadNd):
    """Pad the last dim with value."""


class ConstantPad2d(_ConstantPadNd):
    """Pad the last 2 dims with value."""

    dims = 2


class ConstantPad3d(_ConstantPadNd):
    """Pad the last 3 dims with value."""

    dims = 3


class _ZeroPadNd(_ConstantPadNd):
    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad1d(_ZeroPadNd):
    """Pad the last dim with zeros."""


class ZeroPad2d(_ZeroPadNd):
    """Pad the last 2 dims with zeros."""

    dims = 2


class ZeroPad3d(_ZeroPadNd):
    """Pad the last 3 dims with zeros."""

    dims = 3


class ReflectionPad1d(_PadNd):
    """Pad the last dim with its reflection (the edge not repeated)."""

    mode = "reflect"


class ReflectionPad2d(_PadNd):
    """Pad the last 2 dims with their reflection (the edge not repeated)."""

    mode, dims = "reflect", 2


class ReflectionPad3d(_PadNd):
    """Pad the last 3 dims with their reflection (the edge not repeated)."""

    mode, dims = "reflect", 3


class ReplicationPad1d(_PadNd):
    """Pad the last dim by repeating its edge values."""

    mode = "replicate"


class ReplicationPad2d(_PadNd):
    """Pad the last 2 dims by repeating their edge values."""

    mode, dims = "replicate", 2


class ReplicationPad3d(_PadNd):
    """Pad the last 3 dims by repeating their edge values."""

    mode, dims = "replicate", 3


class CircularPad1d(_PadNd):
    """Pad the last dim with its values wrapped around."""

    mode = "circular"


class CircularPad2d(_PadNd):
    """Pad the last 2 dims with their values wrapped around."""

    mode, dims = "circular", 2


class CircularPad3d(_PadNd):
    """Pad the last 3 dims with their values wrapped around."""

    mode, dims = "circular", 3
