"""graphc.amp: automatic mixed precision, as torch.amp: autocast regions and GradScaler (docs/mixed-precision.md)."""
from .autocast_mode import autocast, custom_bwd, custom_fwd, get_autocast_dtype, is_autocast_enabled
from .grad_scaler import GradScaler

__all__ = ["autocast", "GradScaler", "custom_fwd", "custom_bwd", "is_autocast_enabled", "get_autocast_dtype"]
