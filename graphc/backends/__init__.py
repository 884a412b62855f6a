"""graphc.backends, as torch.backends: switches for the GPU libraries a script may set.

Only cuda.matmul.allow_tf32 (and set_float32_matmul_precision, the same switch) changes what graphc computes: the
Triton matmul kernels of float32 tensors on CUDA then read their inputs as TF32. The cudnn and mps flags are settable
so scripts that set them run unchanged; graphc uses neither library."""
from __future__ import annotations

from ..state import STATE
from . import cuda, cudnn, mps

__all__ = ["cuda", "cudnn", "mps", "get_float32_matmul_precision", "set_float32_matmul_precision"]
_PRECISIONS = ("highest", "high", "medium")


def set_float32_matmul_precision(precision: str) -> None:
    """torch.set_float32_matmul_precision: "highest" computes float32 matmuls in full float32; "high" and "medium"
    allow TF32 (graphc.backends.cuda.matmul.allow_tf32 becomes True). Raises RuntimeError for another value."""
    if precision not in _PRECISIONS:
        raise RuntimeError(f"set_float32_matmul_precision: invalid precision {precision!r}, expected one of "
                           f"{', '.join(_PRECISIONS)}")
    STATE.float32_matmul_precision = precision


def get_float32_matmul_precision() -> str:
    """torch.get_float32_matmul_precision: "highest" unless TF32 is allowed."""
    return STATE.float32_matmul_precision
