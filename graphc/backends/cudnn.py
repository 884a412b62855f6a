"""graphc.backends.cudnn, as torch.backends.cudnn: settable flags with torch's defaults. graphc's kernels are its own
Triton kernels, never cuDNN's, so the flags change nothing (graphc's kernels are deterministic either way)."""
from __future__ import annotations

benchmark = False
deterministic = False
enabled = True
allow_tf32 = True


def is_available() -> bool:
    """False: graphc does not use cuDNN."""
    return False
