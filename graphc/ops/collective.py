"""Collectives as ops over the default torch.distributed process group. Eager code calls graphc.distributed; inside
graphc.compile, DistributedDataParallel reduces its buckets with these ops, so each collective is a step of the
plan (a fallback step that calls torch.distributed), listed by graphc.explain. They are impure: never merged,
folded or dropped, and every rank's plan issues them in the same order, since every rank traces the same code."""
from __future__ import annotations

import numpy as np

from ..dispatch import OTHER, op
from ..tensor import from_torch, to_torch
from .meta import same


def _run(array: np.ndarray, collective) -> np.ndarray:
    staged = to_torch(np.array(array, order="C"))  # a private copy: the op's input stays as it was
    collective(staged)
    return from_torch(staged)


@op("all_reduce", OTHER, same, pure=False)
def all_reduce(array, *, reduce_op: str = "sum"):
    """The elementwise reduction (reduce_op: "sum", "max", "min", "product") of array over all ranks."""
    import torch.distributed as dist

    return _run(array, lambda t: dist.all_reduce(t, getattr(dist.ReduceOp, reduce_op.upper())))


@op("broadcast", OTHER, same, pure=False)
def broadcast(array, *, src: int = 0):
    """Rank src's array, on every rank."""
    import torch.distributed as dist

    return _run(array, lambda t: dist.broadcast(t, src))
