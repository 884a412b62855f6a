"""graphc.cuda.amp, as torch.cuda.amp: autocast and GradScaler for scripts that guard mixed precision with a flag.

Disabled (enabled=False, or enabled on a machine without CUDA, where torch warns and disables them too) they do what
torch's disabled ones do: autocast changes no dtype, GradScaler scales by 1 and steps the optimizer as usual.
Mixed precision itself is not implemented yet: enabled on a CUDA machine, both raise NotImplementedError rather
than silently computing in float32."""
from __future__ import annotations

import functools
import warnings
from typing import Any

__all__ = ["GradScaler", "autocast"]


def _enabled_on_this_machine(enabled: bool, what: str) -> bool:
    """False when disabled; False with torch's warning when enabled but CUDA is missing; raises when it would have to
    compute in mixed precision."""
    from . import is_available

    if not enabled:
        return False
    if not is_available():
        warnings.warn(f"graphc.cuda.amp.{what} is enabled, but CUDA is not available. Disabling.", UserWarning,
                      stacklevel=3)
        return False
    raise NotImplementedError(f"graphc.cuda.amp.{what}(enabled=True): mixed precision is not implemented yet; pass "
                              "enabled=False to run in float32")


class autocast:  # noqa: N801  torch's name
    """torch.cuda.amp.autocast: a context manager and decorator; disabled, ops keep their dtypes."""

    def __init__(self, enabled: bool = True, dtype=None, cache_enabled: bool = True):
        self.enabled = _enabled_on_this_machine(enabled, "autocast")

    def __enter__(self) -> autocast:
        return self

    def __exit__(self, *exc) -> None:
        return None

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            with self:
                return fn(*args, **kwargs)
        return wrapped


class GradScaler:
    """torch.cuda.amp.GradScaler; disabled, scale() returns its argument, step() runs optimizer.step(), and
    unscale_() and update() do nothing, as in torch."""

    def __init__(self, init_scale: float = 2.0**16, growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True):
        self._enabled = _enabled_on_this_machine(enabled, "GradScaler")

    def is_enabled(self) -> bool:
        return self._enabled

    def scale(self, outputs):
        return outputs

    def unscale_(self, optimizer) -> None:
        return None

    def step(self, optimizer, *args, **kwargs):
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale: float | None = None) -> None:
        return None

    def get_scale(self) -> float:
        return 1.0

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        return None
