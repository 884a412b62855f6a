"""graphc.nn.parallel: DistributedDataParallel on torch.distributed, and DataParallel."""
from .data_parallel import DataParallel
from .distributed import DistributedDataParallel

__all__ = ["DataParallel", "DistributedDataParallel"]
