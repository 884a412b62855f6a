"""DistributedSampler: each rank of a process group iterates its own share of a dataset (torch's semantics)."""
from __future__ import annotations

import math
from collections.abc import Iterator

from ...ops.creation import Generator
from .sampler import Sampler, permutation


class DistributedSampler(Sampler):
    """torch.utils.data.DistributedSampler(dataset, num_replicas=None, rank=None, shuffle=True, seed=0,
    drop_last=False): rank r yields indices r, r + num_replicas, ... of the (shuffled, then padded or trimmed to a
    multiple of num_replicas) index list, so the ranks' shares are disjoint and equally long. Shuffling draws from a
    graphc.Generator seeded with seed + epoch: every rank draws the same order; call set_epoch(epoch) before each
    epoch for a new one. num_replicas and rank default to the process group's. Raises ValueError for a rank
    outside [0, num_replicas)."""

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False):
        if num_replicas is None or rank is None:
            from ... import distributed as dist

            if not dist.is_initialized():
                raise RuntimeError("DistributedSampler: pass num_replicas and rank, or initialize the process group "
                                   "first (graphc.distributed.init_process_group)")
            num_replicas = dist.get_world_size() if num_replicas is None else num_replicas
            rank = dist.get_rank() if rank is None else rank
        if not 0 <= rank < num_replicas:
            raise ValueError(f"Invalid rank {rank}, rank should be in the interval [0, {num_replicas - 1}]")
        self.dataset, self.num_replicas, self.rank, self.shuffle = dataset, num_replicas, rank, shuffle
        self.seed, self.drop_last, self.epoch = seed, drop_last, 0
        n = len(dataset)
        if drop_last and n % num_replicas:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        if self.shuffle:
            indices = permutation(n, Generator().manual_seed(self.seed + self.epoch))
        else:
            indices = list(range(n))
        if self.drop_last:
            indices = indices[:self.total_size]
        else:
            padding = self.total_size - len(indices)
            indices += (indices * math.ceil(padding / max(len(indices), 1)))[:padding]
        return iter(indices[self.rank:self.total_size:self.num_replicas])

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Use a new shuffle for this epoch (the same on every rank)."""
        self.epoch = epoch
