"""torch.nn.DataParallel, which scripts wrap a model in before training (`model = nn.DataParallel(model)`)."""
from __future__ import annotations

from typing import Any

from ... import cuda
from ...errors import warn_at_user
from ..module import Module


class DataParallel(Module):
    """torch.nn.DataParallel(module, device_ids=None, output_device=None, dim=0): calls module, kept as
    self.module (so state dicts have torch's "module." prefix). Without a CUDA device it runs the module as it is,
    as torch does. With CUDA the module moves to the first device and runs there: graphc does not split a batch
    across GPUs in one process (one UserWarning when more than one device is asked for; DistributedDataParallel
    runs one process per GPU)."""

    def __init__(self, module: Module, device_ids: list | None = None, output_device=None, dim: int = 0):
        super().__init__()
        self.module, self.dim = module, dim
        self.device_ids = [] if not cuda.is_available() else list(device_ids or range(cuda.device_count()))
        self.output_device = output_device
        if len(self.device_ids) > 1:
            warn_at_user(f"DataParallel: graphc runs the module on one device (cuda:{self.device_ids[0]}), not on "
                         f"{len(self.device_ids)}; use DistributedDataParallel with one process per GPU")
        if self.device_ids:
            module.to(f"cuda:{self.device_ids[0]}")

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        return self.module(*inputs, **kwargs)
