"""graphc.backends.mps, as torch.backends.mps: graphc has no Apple-GPU backend."""
from __future__ import annotations


def is_available() -> bool:
    """False: graphc runs on CPU and CUDA only."""
    return False


def is_built() -> bool:
    """False: graphc runs on CPU and CUDA only."""
    return False
