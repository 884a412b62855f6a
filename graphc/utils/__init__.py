"""graphc.utils: data loading (graphc.utils.data, as torch.utils.data) and a console progress bar."""
from . import data
from .progress import ProgressBar

__all__ = ["data", "ProgressBar"]
