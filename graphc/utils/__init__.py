"""graphc.utils: data loading (graphc.utils.data, as torch.utils.data), activation checkpointing
(graphc.utils.checkpoint) and a console progress bar."""
from . import checkpoint, data
from .progress import ProgressBar

__all__ = ["checkpoint", "data", "ProgressBar"]
