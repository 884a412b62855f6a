"""graphc.nn.parallel: DistributedDataParallel on torch.distributed."""
from .distributed import DistributedDataParallel

__all__ = ["DistributedDataParallel"]
