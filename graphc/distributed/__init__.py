"""graphc.distributed: process groups and collectives on graphc tensors, implemented on torch.distributed (gloo on
CPU, NCCL on GPU) and launched by torchrun, with torch.distributed's names and semantics.

A CPU tensor reaches torch without a copy (torch.from_numpy on its storage); a CUDA tensor already is torch storage.
User-facing collectives first exchange the operands' shapes and dtypes, so a mismatch across ranks raises an error
naming both instead of hanging or corrupting memory (docs/distributed.md)."""
from __future__ import annotations

import contextlib
import datetime
import os
from typing import Any

import numpy as np

from .. import dtypes
from ..autograd import no_grad
from ..tensor import Tensor, from_torch, to_torch

__all__ = ["ReduceOp", "init_process_group", "destroy_process_group", "is_available", "is_initialized", "get_rank",
           "get_world_size", "get_backend", "barrier", "all_reduce", "broadcast", "all_gather", "reduce_scatter",
           "Work"]


def _dist():
    import torch.distributed

    return torch.distributed


def __getattr__(name: str):
    if name == "ReduceOp":  # torch's enum itself, so ReduceOp.SUM/AVG/MAX/... mean what they mean in torch
        return _dist().ReduceOp
    raise AttributeError(f"module 'graphc.distributed' has no attribute {name!r}")


def is_available() -> bool:
    return _dist().is_available()


def init_process_group(backend: str | None = None, init_method: str | None = None,
                       timeout: datetime.timedelta | None = None, world_size: int = -1, rank: int = -1,
                       **kwargs: Any) -> None:
    """torch.distributed.init_process_group: join the group (env:// by default, as torchrun sets MASTER_ADDR,
    MASTER_PORT, RANK and WORLD_SIZE). backend defaults to "nccl" when CUDA is available, else "gloo".

    Raises RuntimeError naming the rendezvous address when the other ranks do not arrive within timeout."""
    import torch

    dist = _dist()
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    try:
        dist.init_process_group(backend, init_method=init_method, timeout=timeout, world_size=world_size, rank=rank,
                                **kwargs)
    except (RuntimeError, ValueError, TimeoutError) as e:
        where = init_method or f"env://{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
        raise RuntimeError(f"graphc.distributed.init_process_group: the rendezvous at {where} did not complete "
                           f"(rank {rank if rank >= 0 else os.environ.get('RANK', '?')} of "
                           f"{world_size if world_size > 0 else os.environ.get('WORLD_SIZE', '?')}, timeout "
                           f"{timeout or 'default'}): {type(e).__name__}: {str(e).splitlines()[0]}") from e


def destroy_process_group(group=None) -> None:
    _dist().destroy_process_group(group)


def is_initialized() -> bool:
    return _dist().is_available() and _dist().is_initialized()


def get_rank(group=None) -> int:
    return _dist().get_rank(group)


def get_world_size(group=None) -> int:
    return _dist().get_world_size(group)


def get_backend(group=None) -> str:
    return _dist().get_backend(group)


def barrier(group=None, async_op: bool = False):
    return _dist().barrier(group, async_op=async_op)


class Work:
    """The handle of an async collective (async_op=True): wait() finishes it and writes the result back."""

    def __init__(self, op: str, work, finish):
        self._op, self._work, self._finish = op, work, finish

    def wait(self, timeout: datetime.timedelta | None = None) -> bool:
        with _failure(self._op):
            done = self._work.wait() if timeout is None else self._work.wait(timeout)
        self._finish()
        return done

    def is_completed(self) -> bool:
        return self._work.is_completed()


def as_torch(t: Tensor):
    """(torch tensor, write_back): a contiguous torch view of t's storage when it has one, else a copy and the
    function that copies the collective's result back into t."""
    data = t._storage()
    if type(data) is not np.ndarray:  # CUDA: torch storage already
        if data.is_contiguous():
            return data, lambda: None
        contiguous = data.contiguous()
        return contiguous, lambda: data.copy_(contiguous)
    if data.flags.c_contiguous and data.flags.writeable and t.dtype is not dtypes.bfloat16:
        return to_torch(data), lambda: None
    staged = to_torch(np.ascontiguousarray(data))

    def write_back() -> None:
        with no_grad():
            t.copy_(Tensor._make(from_torch(staged), t.dtype))
    return staged, write_back


def _check_same(op: str, tensors: list[Tensor], group) -> None:
    """Exchange (dtype, shape) of each rank's operands; raise on every rank, naming both, where they differ."""
    dist = _dist()
    mine = [(t.dtype.name, list(t.shape)) for t in tensors]
    everyone: list = [None] * dist.get_world_size(group)
    dist.all_gather_object(everyone, mine, group=group)
    for rank, theirs in enumerate(everyone):
        if theirs != everyone[0]:
            shapes = ", ".join(f"[{d} {s}]" if len(s) else f"[{d} scalar]" for d, s in everyone[0])
            other = ", ".join(f"[{d} {s}]" if len(s) else f"[{d} scalar]" for d, s in theirs)
            raise RuntimeError(f"graphc.distributed.{op}: the ranks' tensors differ: rank 0 passed {shapes}, rank "
                               f"{rank} passed {other}; every rank must pass the same shapes and dtypes")


@contextlib.contextmanager
def _failure(op: str):
    """A collective that fails (a peer died, a timeout) as a RuntimeError naming the op and this rank."""
    try:
        yield
    except RuntimeError as e:
        if str(e).startswith("graphc.distributed"):
            raise
        raise RuntimeError(f"graphc.distributed.{op} failed on rank {_dist().get_rank()}: another rank may have "
                           f"exited or stopped answering within the process group's timeout "
                           f"({type(e).__name__}: {str(e).splitlines()[0][:300]})") from e


def _run(op: str, tensors: list[Tensor], call, async_op: bool, group):
    with _failure(op):
        _check_same(op, tensors, group)
        staged = [as_torch(t) for t in tensors]
        work = call([s for s, _ in staged])

    def finish() -> None:
        for _, write_back in staged:
            write_back()
    if async_op:
        return Work(op, work, finish)
    finish()
    return None


def all_reduce(tensor: Tensor, op=None, group=None, async_op: bool = False):
    """Reduce tensor across ranks in place (op: ReduceOp.SUM by default, AVG, MAX, MIN, PRODUCT as torch's)."""
    dist = _dist()
    op = dist.ReduceOp.SUM if op is None else op
    return _run("all_reduce", [tensor], lambda ts: dist.all_reduce(ts[0], op, group, async_op), async_op, group)


def broadcast(tensor: Tensor, src: int, group=None, async_op: bool = False):
    """Copy rank src's tensor into every rank's tensor, in place."""
    dist = _dist()
    return _run("broadcast", [tensor], lambda ts: dist.broadcast(ts[0], src, group, async_op), async_op, group)


def all_gather(tensor_list: list[Tensor], tensor: Tensor, group=None, async_op: bool = False):
    """Fill tensor_list[r] with rank r's tensor (tensor_list has world_size tensors of tensor's shape)."""
    dist = _dist()
    if len(tensor_list) != dist.get_world_size(group):
        raise ValueError(f"graphc.distributed.all_gather: tensor_list has {len(tensor_list)} tensors, the group has "
                         f"{dist.get_world_size(group)} ranks")
    for i, out in enumerate(tensor_list):
        if list(out.shape) != list(tensor.shape) or out.dtype is not tensor.dtype:
            raise ValueError(f"graphc.distributed.all_gather: tensor_list[{i}] is {out.dtype.name} "
                             f"{list(out.shape)}, the input is {tensor.dtype.name} {list(tensor.shape)}")
    return _run("all_gather", [tensor, *tensor_list],
                lambda ts: dist.all_gather(ts[1:], ts[0], group, async_op), async_op, group)


def reduce_scatter(output: Tensor, input_list: list[Tensor], op=None, group=None, async_op: bool = False):
    """output = reduce over ranks of input_list[rank]. gloo has no reduce_scatter, so there it runs as one
    all_reduce of the stacked inputs (same result, world_size times the traffic)."""
    dist = _dist()
    op = dist.ReduceOp.SUM if op is None else op
    if len(input_list) != dist.get_world_size(group):
        raise ValueError(f"graphc.distributed.reduce_scatter: input_list has {len(input_list)} tensors, the group "
                         f"has {dist.get_world_size(group)} ranks")
    if dist.get_backend(group) != "gloo":
        return _run("reduce_scatter", [output, *input_list],
                    lambda ts: dist.reduce_scatter(ts[0], ts[1:], op, group, async_op), async_op, group)
    import torch

    with _failure("reduce_scatter"):
        _check_same("reduce_scatter", [output, *input_list], group)
        stacked = torch.stack([as_torch(t)[0] for t in input_list])
        out, write_back = as_torch(output)
        work = dist.all_reduce(stacked, op, group, async_op)

    def finish() -> None:
        out.copy_(stacked[dist.get_rank(group)])
        write_back()
    if async_op:
        return Work("reduce_scatter", work, finish)
    finish()
    return None
