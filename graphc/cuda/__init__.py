"""graphc.cuda, as torch.cuda: device queries for device-agnostic scripts.

graphc's CUDA tensors are torch CUDA tensors run through graphc's Triton kernels, so these answer what torch sees:
is_available() is True only when a CUDA build of torch sees a GPU, and the memory counters count graphc's tensors.
Without CUDA, the functions that need a device raise torch's error (AssertionError "Torch not compiled with CUDA
enabled", or RuntimeError when no GPU is found). graphc draws random numbers for CUDA tensors on the host from its
default generator, so graphc.manual_seed seeds them; manual_seed and manual_seed_all here only check their seed."""
from __future__ import annotations

from . import amp

__all__ = ["amp", "current_device", "device_count", "empty_cache", "get_device_name", "is_available",
           "is_bf16_supported", "manual_seed", "manual_seed_all", "max_memory_allocated", "memory_allocated",
           "reset_peak_memory_stats", "synchronize"]


def _torch_cuda():
    import torch  # here, not at import: torch is slow to import and graphc's CPU path does not need it

    return torch.cuda


def is_available() -> bool:
    """Whether CUDA tensors can be made: a CUDA build of torch that sees a GPU."""
    return _torch_cuda().is_available()


def device_count() -> int:
    """The number of GPUs torch sees (0 without CUDA); graphc uses the first."""
    return _torch_cuda().device_count()


def current_device() -> int:
    """The index of the current GPU (graphc always uses 0)."""
    return _torch_cuda().current_device()


def get_device_name(device=None) -> str:
    """The GPU's name, e.g. 'NVIDIA H100 80GB HBM3'."""
    return _torch_cuda().get_device_name(_index(device))


def is_bf16_supported() -> bool:
    """Whether the GPU computes bfloat16 natively (False without CUDA)."""
    return _torch_cuda().is_bf16_supported()


def synchronize(device=None) -> None:
    """Wait for every kernel launched so far to finish (for timing)."""
    _torch_cuda().synchronize(_index(device))


def memory_allocated(device=None) -> int:
    """Bytes held by CUDA tensors now (0 without CUDA)."""
    return _torch_cuda().memory_allocated(_index(device))


def max_memory_allocated(device=None) -> int:
    """The peak of memory_allocated since start or reset_peak_memory_stats (0 without CUDA)."""
    return _torch_cuda().max_memory_allocated(_index(device))


def reset_peak_memory_stats(device=None) -> None:
    """Start max_memory_allocated again from the current allocation."""
    _torch_cuda().reset_peak_memory_stats(_index(device))


def empty_cache() -> None:
    """Return cached, unused GPU memory to the driver (nothing to do without CUDA)."""
    _torch_cuda().empty_cache()


def manual_seed(seed: int) -> None:
    """Accepted for torch scripts: CUDA tensors' random numbers come from graphc's default generator (seeded by
    graphc.manual_seed). A seed int() refuses raises as torch does (ValueError, TypeError)."""
    int(seed)


manual_seed_all = manual_seed


def _index(device) -> int | None:
    """A device argument as torch.cuda takes it: None, an index, or a graphc device / string naming a GPU."""
    from ..tensor import device as Device

    if device is None or isinstance(device, int):
        return device
    return Device(device).index
