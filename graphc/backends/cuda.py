"""graphc.backends.cuda, as torch.backends.cuda: matmul.allow_tf32 (default False) switches float32 matmul kernels on
CUDA to TF32 inputs (a 10-bit mantissa, fp32 accumulation); compiled plans guard on it, so changing it recompiles."""
from __future__ import annotations

from ..state import STATE


class _Matmul:
    """torch.backends.cuda.matmul: allow_tf32 reads and sets the switch the Triton matmul codegen reads."""

    __slots__ = ()

    @property
    def allow_tf32(self) -> bool:
        return STATE.float32_matmul_precision != "highest"

    @allow_tf32.setter
    def allow_tf32(self, value: bool) -> None:
        STATE.float32_matmul_precision = "high" if value else "highest"


matmul = _Matmul()


def is_built() -> bool:
    """Whether the torch that graphc's CUDA tensors run on was built with CUDA."""
    import torch

    return torch.backends.cuda.is_built()
