"""graphc.cuda.amp, as torch.cuda.amp: the CUDA spellings of graphc.amp.autocast and graphc.amp.GradScaler (on a
machine without CUDA both warn and disable themselves, as torch's do). docs/mixed-precision.md."""
from __future__ import annotations

from .. import amp
from ..dtypes import float16

__all__ = ["GradScaler", "autocast"]


class autocast(amp.autocast):  # noqa: N801  torch's name
    """torch.cuda.amp.autocast(enabled=True, dtype=float16, cache_enabled=True): graphc.autocast("cuda", ...)."""

    def __init__(self, enabled: bool = True, dtype=float16, cache_enabled: bool = True):
        super().__init__("cuda", dtype=dtype, enabled=enabled, cache_enabled=cache_enabled)


class GradScaler(amp.GradScaler):
    """torch.cuda.amp.GradScaler(init_scale=2**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000,
    enabled=True): graphc.amp.GradScaler("cuda", ...)."""

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True):
        super().__init__("cuda", init_scale, growth_factor, backoff_factor, growth_interval, enabled)
