"""The number of threads graphc's CPU work runs on (torch.set_num_threads / torch.get_num_threads): the native
kernels' OpenMP threads and numpy's BLAS."""
from __future__ import annotations

import os

from threadpoolctl import threadpool_limits

_threads: int | None = None  # None: OpenMP's and the BLAS's own default (the machine's cores)


def set_num_threads(num: int) -> None:
    """torch.set_num_threads: run CPU kernels and products on `num` threads from now on. Applies to the thread
    pools loaded now (threadpoolctl) and, through OMP_NUM_THREADS, to OpenMP when a first native kernel library
    loads it later. Raises ValueError for num < 1."""
    global _threads
    if not isinstance(num, int) or num < 1:
        raise ValueError(f"set_num_threads: expected a positive integer, got {num!r}")
    os.environ["OMP_NUM_THREADS"] = str(num)
    threadpool_limits(num)
    _threads = num


def get_num_threads() -> int:
    """torch.get_num_threads: the threads CPU kernels run on (set_num_threads', else the cores this process may
    use)."""
    return _threads if _threads is not None else len(os.sched_getaffinity(0))
