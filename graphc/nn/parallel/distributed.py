"""DistributedDataParallel: data parallelism over a torch.distributed process group, with torch's constructor,
attributes and semantics.

How it works (the design of torch's DDP reducer, Li et al., "PyTorch Distributed", VLDB 2020):
- at construction, the parameters' shapes are checked across ranks and every parameter and buffer is broadcast
  from rank 0, so all replicas start equal;
- parameters are grouped into buckets of about bucket_cap_mb, in reverse registration order (roughly the order
  backward produces their gradients);
- a post-accumulate-grad hook on each parameter marks it ready; a bucket whose parameters are all ready is
  flattened and its asynchronous all-reduce starts at once, so communication overlaps the rest of backward.
  Buckets are launched in index order on every rank, so the ranks' collectives always pair up;
- when the last bucket is launched, the reducer waits for all of them and writes each averaged gradient to .grad.
Under graphc.compile the same buckets are reduced by the all_reduce op, so each collective is a step of the plan."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from ... import distributed as dist
from ...autograd import no_grad
from ...dtypes import int32
from ...ops import collective
from ...state import STATE
from ...tensor import Tensor
from ..module import Module, Parameter


class _Bucket:
    __slots__ = ("params", "pending", "flat", "work")

    def __init__(self, params: list[Parameter]):
        self.params, self.pending, self.flat, self.work = params, set(), None, None


class DistributedDataParallel(Module):
    """Wrap module so that backward averages its gradients over the process group.

    module's forward runs unchanged (self.module); state_dict keys carry the "module." prefix, as in torch.
    find_unused_parameters=True lets a forward leave parameters out of the loss (their gradient counts as zero on
    this rank; a parameter no rank used keeps .grad None). no_sync() skips the all-reduce, for gradient
    accumulation. broadcast_buffers=True copies rank 0's buffers (BatchNorm statistics) at each forward.

    Raises RuntimeError when the ranks' parameters differ in shape, and at the next forward when a backward left
    a parameter without a gradient and find_unused_parameters is False (naming the parameters)."""

    def __init__(self, module: Module, device_ids: list | None = None, output_device: Any = None, dim: int = 0,
                 broadcast_buffers: bool = True, process_group: Any = None, bucket_cap_mb: float | None = None,
                 find_unused_parameters: bool = False, check_reduction: bool = False,
                 gradient_as_bucket_view: bool = False, static_graph: bool = False):
        super().__init__()
        if not dist.is_initialized():
            raise RuntimeError("DistributedDataParallel: the default process group has not been initialized; call "
                               "graphc.distributed.init_process_group() first (torchrun sets its environment)")
        self.module = module
        self.process_group, self.dim, self.broadcast_buffers = process_group, dim, broadcast_buffers
        self.find_unused_parameters, self.require_backward_grad_sync = find_unused_parameters, True
        self.gradient_as_bucket_view, self.static_graph = gradient_as_bucket_view, static_graph
        self.bucket_bytes_cap = int((25 if bucket_cap_mb is None else bucket_cap_mb) * 1024 * 1024)
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._names = {id(p): n for n, p in named}
        self._world = dist.get_world_size(process_group)
        with no_grad():
            for t in [p for _, p in module.named_parameters()] + list(module.buffers()):
                dist.broadcast(t, 0, process_group)  # also checks every rank holds the same shapes and dtypes
        self._buckets = self._make_buckets([p for _, p in named][::-1])
        self._bucket_of = {id(p): b for b in self._buckets for p in b.params}
        self._next = 0
        self._used: set[int] | None = None
        for _, p in named:
            p.register_post_accumulate_grad_hook(self._mark_ready)
        self._reset()

    def _make_buckets(self, params: list[Parameter]) -> list[_Bucket]:
        buckets: list[_Bucket] = []
        size, current, dtype = 0, [], None
        for p in params:
            nbytes = p.numel() * p.dtype.itemsize
            if current and (size + nbytes > self.bucket_bytes_cap or p.dtype is not dtype):
                buckets.append(_Bucket(current))
                size, current = 0, []
            current.append(p)
            size, dtype = size + nbytes, p.dtype
        if current:
            buckets.append(_Bucket(current))
        return buckets

    def _reset(self) -> None:
        for b in self._buckets:
            b.pending, b.flat, b.work = {id(p) for p in b.params}, None, None
        self._next = 0

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        started = self._next > 0 or any(len(b.pending) < len(b.params) for b in self._buckets)
        if self.require_backward_grad_sync and started and self._next <= len(self._buckets):
            self._unfinished()
        self._reset()
        if self.broadcast_buffers and self._world > 1:
            with no_grad():
                for t in self.module.buffers():
                    if STATE.capture is None:
                        dist.broadcast(t, 0, self.process_group)
                    else:
                        t.copy_(collective.broadcast(t, src=0))
        output = self.module(*inputs, **kwargs)
        if self.find_unused_parameters and STATE.grad_enabled and self.require_backward_grad_sync:
            if STATE.capture is not None:
                from ...compiler.capture import CaptureError

                raise CaptureError("DistributedDataParallel(find_unused_parameters=True) decides in Python, per "
                                   "call, which parameters get gradients; it runs eagerly")
            self._used = self._reachable(output)
            for b in self._buckets:
                b.pending &= self._used
            self._launch_ready()
        return output

    def _unfinished(self) -> None:
        missing = [n for i, n in self._names.items() if any(i in b.pending for b in self._buckets)]
        self._reset()
        raise RuntimeError("DistributedDataParallel: expected to have finished reduction in the prior iteration "
                           "before starting a new one. These parameters received no gradient in the last backward: "
                           f"{', '.join(missing)}. Pass find_unused_parameters=True to the constructor if your "
                           "forward leaves parameters out of the loss, and make sure every output that the loss "
                           "uses goes through backward")

    def _reachable(self, output: Any) -> set[int]:
        """ids of the parameters whose gradient backward from output can reach (torch's unused-parameter search)."""
        from ...autograd import LEAF
        from ...topological import postorder

        roots: list = []

        def collect(obj: Any) -> None:
            if isinstance(obj, Tensor):
                if obj.grad_fn is not None:
                    roots.append(obj.grad_fn)
                elif obj.requires_grad:
                    found.add(id(obj))
            elif isinstance(obj, (list, tuple)):
                for x in obj:
                    collect(x)
            elif isinstance(obj, dict):
                for x in obj.values():
                    collect(x)
        found: set[int] = set()
        collect(output)
        for node in postorder(roots, lambda n: [fn for fn in n.edges if fn is not None and fn is not LEAF]):
            for x, fn in zip(node.inputs or (), node.edges):
                if fn is LEAF:
                    found.add(id(x))
        return found & set(self._names)

    def _mark_ready(self, p: Parameter) -> None:
        if not self.require_backward_grad_sync:
            return
        self._bucket_of[id(p)].pending.discard(id(p))
        self._launch_ready()

    def _launch_ready(self) -> None:
        """Start the all-reduce of every ready bucket, in index order; after the last, finish the reduction."""
        from ...ops.join import cat

        while self._next < len(self._buckets) and not self._buckets[self._next].pending:
            b = self._buckets[self._next]
            with no_grad():
                b.flat = cat([(p.grad.detach() if p.grad is not None else p.new_zeros(p.shape)).reshape(-1)
                              for p in b.params])
            if STATE.capture is None:
                b.work = dist.all_reduce(b.flat, group=self.process_group, async_op=True)
            else:  # recorded: the plan runs it
                b.flat = collective.all_reduce(b.flat)
            self._next += 1
        if self._next == len(self._buckets) and self._buckets:
            self._finish()

    def _finish(self) -> None:
        used = None
        if self.find_unused_parameters:  # which parameters some rank used: the others keep .grad None
            mask = Tensor._make(np.array([id(p) in self._used for b in self._buckets for p in b.params], np.int32),
                                int32)
            dist.all_reduce(mask, group=self.process_group)
            used = iter(mask._host() > 0)
        with no_grad():
            for b in self._buckets:
                if b.work is not None:
                    b.work.wait()
                averaged, offset = b.flat / self._world, 0
                for p in b.params:
                    n = p.numel()
                    if used is None or next(used):
                        p.grad = averaged[offset:offset + n].view(p.shape)
                    offset += n
                b.work = b.flat = None  # nothing of this step is kept: a compiled step's values stay in its plan
        self._next = len(self._buckets) + 1  # the reduction is complete

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Inside, backward only accumulates gradients locally; the first synced backward after it averages the
        accumulated gradients (torch's gradient accumulation idiom)."""
        previous, self.require_backward_grad_sync = self.require_backward_grad_sync, False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

