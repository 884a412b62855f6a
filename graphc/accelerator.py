"""graphc.accelerator, as torch.accelerator: the one accelerator graphc runs on, CUDA, when torch sees a GPU."""
from __future__ import annotations

from . import cuda
from .tensor import device

__all__ = ["current_accelerator", "current_device_index", "device_count", "is_available", "synchronize"]


def is_available() -> bool:
    """Whether an accelerator (a CUDA GPU) can hold tensors."""
    return cuda.is_available()


def current_accelerator(check_available: bool = False) -> device | None:
    """device('cuda') when CUDA is available, else None (check_available is accepted: graphc only knows CUDA, which
    is either available or absent)."""
    return device("cuda") if cuda.is_available() else None


def device_count() -> int:
    """The number of accelerator devices (0 without CUDA)."""
    return cuda.device_count()


def current_device_index() -> int:
    """The index of the current accelerator device. Raises RuntimeError without one, as torch does."""
    if not cuda.is_available():
        raise RuntimeError("Cannot access accelerator device when none is available.")
    return cuda.current_device()


def synchronize(device=None) -> None:
    """Wait for the accelerator's queued kernels to finish. Raises RuntimeError without one."""
    if not cuda.is_available():
        raise RuntimeError("Cannot access accelerator device when none is available.")
    cuda.synchronize(device)
