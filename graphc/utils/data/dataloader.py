"""DataLoader, as torch.utils.data.dataloader: batches of a dataset, built in the calling process (num_workers=0) or
in worker processes (num_workers > 0) that prefetch while the training step runs.

Order and contents of batches are the same either way: a sampler (or batch_sampler) in the main process decides
which indices form each batch; workers only build them. With workers, the main process hands out at most
prefetch_factor tasks per worker, waits on the workers' pipes and process handles together (so a worker that dies is
noticed at once, not at a timeout), and yields the batches in sampler order."""
from __future__ import annotations

import itertools
import multiprocessing
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import wait
from typing import Any

from ...ops.creation import Generator, default_generator, randint, tensor
from .collate import default_collate, default_convert
from .dataset import Dataset, IterableDataset, Subset, TensorDataset
from .sampler import BatchSampler, RandomSampler, Sampler, SequentialSampler
from .worker import IterationEnd, WorkerError, get_worker_info, worker_loop

__all__ = ["DataLoader", "default_collate", "default_convert", "get_worker_info"]


class _InfiniteSampler(Sampler):
    """An IterableDataset's sampler: one None per item or batch; the dataset's iterator decides when to stop."""

    def __iter__(self) -> Iterator[None]:
        return itertools.repeat(None)


def _rows(dataset: Dataset, indices: list[int]) -> list | None:
    """The batch of a TensorDataset (or a Subset of one) as one gather per tensor: exactly what stacking the samples
    gives, far faster. None for other datasets."""
    while type(dataset) is Subset:
        indices, dataset = [dataset.indices[i] for i in indices], dataset.dataset
    if type(dataset) is not TensorDataset:
        return None
    index = tensor(indices)
    return [t[index] for t in dataset.tensors]


class Fetcher:
    """Builds one batch from a task: the dataset indices of a batch (or of one sample when automatic batching is off,
    batch_size=None), or for an IterableDataset the next batch_size items of its iterator. Picklable, so worker
    processes started by spawn get it too."""

    def __init__(self, dataset: Dataset, collate_fn: Callable, batch_size: int | None, drop_last: bool,
                 auto_collation: bool):
        self.dataset, self.collate_fn, self.batch_size, self.drop_last = dataset, collate_fn, batch_size, drop_last
        self.auto_collation, self.iterable = auto_collation, isinstance(dataset, IterableDataset)

    def __call__(self, indices, iterator: Iterator | None):
        if self.iterable:
            if not self.auto_collation:
                return self.collate_fn(next(iterator))
            items = list(itertools.islice(iterator, self.batch_size))
            if not items or (self.drop_last and len(items) < self.batch_size):
                raise StopIteration
            return self.collate_fn(items)
        if not self.auto_collation:
            return self.collate_fn(self.dataset[indices])
        if self.collate_fn is default_collate:
            rows = _rows(self.dataset, indices)
            if rows is not None:
                return rows
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.collate_fn(self.dataset.__getitems__(indices))
        return self.collate_fn([self.dataset[i] for i in indices])


class DataLoader:
    """Iterate over a dataset in batches, as torch.utils.data.DataLoader.

    Which indices form a batch: batch_sampler if given; else batch_size consecutive indices of sampler (a
    RandomSampler drawing from generator when shuffle=True, else SequentialSampler), the last short batch dropped
    when drop_last. batch_size=None turns batching off (each sample passes through default_convert). collate_fn
    (default_collate) builds a batch from its samples.

    num_workers > 0 builds batches in that many worker processes (multiprocessing_context, default: the platform's
    start method), each seeded from one base seed drawn per epoch from generator (or graphc's default generator),
    so graphc.manual_seed makes augmentation reproducible; worker_init_fn(worker_id) runs in each worker first;
    persistent_workers keeps them across epochs; timeout bounds the wait for one batch (0: no bound);
    prefetch_factor tasks are queued per worker (default 2). pin_memory and pin_memory_device are accepted: batches
    are CPU tensors in numpy memory, moved by .to(device) (a warning says so when no GPU is present, as torch's).

    Raises ValueError for contradictory or out-of-range options (with torch's messages); while iterating,
    RuntimeError when a worker dies or the timeout passes, and a worker's own exception (same type, with the
    worker's traceback in the message)."""

    def __init__(self, dataset: Dataset, batch_size: int | None = 1, shuffle: bool | None = None,
                 sampler: Sampler | Iterable | None = None, batch_sampler: Sampler | Iterable | None = None,
                 num_workers: int = 0, collate_fn: Callable[[list], Any] | None = None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn: Callable[[int], None] | None = None,
                 multiprocessing_context=None, generator: Generator | None = None, *,
                 prefetch_factor: int | None = None, persistent_workers: bool = False, pin_memory_device: str = "",
                 in_order: bool = True):
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable "
                             "multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing. Let num_workers > 0 "
                             "to enable multiprocessing, otherwise set prefetch_factor to None.")
        if prefetch_factor is not None and prefetch_factor < 0:
            raise ValueError("prefetch_factor option should be non-negative")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if batch_size is not None and (not isinstance(batch_size, int) or isinstance(batch_size, bool)
                                       or batch_size <= 0):
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size!r}")
        iterable = isinstance(dataset, IterableDataset)
        if iterable:
            for name, value in (("shuffle", shuffle), ("sampler", sampler), ("batch_sampler", batch_sampler)):
                if value not in (None, False):
                    raise ValueError(f"DataLoader with IterableDataset: expected unspecified {name} option, but got "
                                     f"{name}={value}")
        shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and "
                                 "drop_last")
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually exclusive with drop_last")
        if sampler is None:
            sampler = (_InfiniteSampler() if iterable else RandomSampler(dataset, generator=generator) if shuffle
                       else SequentialSampler(dataset))
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        if multiprocessing_context is not None:
            if num_workers == 0:
                raise ValueError(f"multiprocessing_context can only be used with multi-process loading "
                                 f"(num_workers > 0), but got num_workers={num_workers}")
            if isinstance(multiprocessing_context, str):
                methods = multiprocessing.get_all_start_methods()
                if multiprocessing_context not in methods:
                    raise ValueError(f"multiprocessing_context option should specify a valid start method in "
                                     f"{methods!r}, but got multiprocessing_context={multiprocessing_context!r}")
                multiprocessing_context = multiprocessing.get_context(multiprocessing_context)
        self.dataset, self.batch_size, self.drop_last, self.num_workers = dataset, batch_size, drop_last, num_workers
        self.sampler, self.batch_sampler, self.generator = sampler, batch_sampler, generator
        self.collate_fn = collate_fn if collate_fn is not None else (
            default_collate if batch_sampler is not None else default_convert)
        self.prefetch_factor = 2 if num_workers > 0 and prefetch_factor is None else prefetch_factor
        self.pin_memory, self.pin_memory_device, self.timeout = pin_memory, pin_memory_device, timeout
        self.worker_init_fn, self.multiprocessing_context = worker_init_fn, multiprocessing_context
        self.persistent_workers, self.in_order = persistent_workers, in_order
        self._iterator: _MultiProcessIterator | None = None
        if num_workers > (os.cpu_count() or 1):
            warnings.warn(f"This DataLoader will create {num_workers} worker processes in total. Our suggested max "
                          f"number of worker in current system is {os.cpu_count()}, which is smaller than what this "
                          "DataLoader is going to create. Please be aware that excessive worker creation might get "
                          "DataLoader running slow or even freeze, lower the worker number to avoid potential "
                          "slowness/freeze if necessary.", UserWarning, stacklevel=2)

    def __setattr__(self, name: str, value) -> None:
        if name in _FIXED and name in self.__dict__:
            raise ValueError(f"{name} attribute should not be set after {type(self).__name__} is initialized")
        super().__setattr__(name, value)

    @property
    def _index_sampler(self) -> Iterable:
        return self.batch_sampler if self.batch_sampler is not None else self.sampler

    def _fetcher(self) -> Fetcher:
        return Fetcher(self.dataset, self.collate_fn, self.batch_size, self.drop_last, self.batch_sampler is not None)

    def __len__(self) -> int:
        if isinstance(self.dataset, IterableDataset):
            n = len(self.dataset)
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self._index_sampler)

    def __iter__(self) -> Iterator[Any]:
        if self.pin_memory and not _cuda_available():
            warnings.warn("'pin_memory' argument is set as true but no accelerator is found, then device pinned "
                          "memory won't be used.", UserWarning, stacklevel=2)
        if self.num_workers == 0:
            return self._single_process()
        if not self.persistent_workers:
            return _MultiProcessIterator(self)
        if self._iterator is None or self._iterator.closed:
            self._iterator = _MultiProcessIterator(self)
        else:
            self._iterator.start_epoch()
        return self._iterator

    def _single_process(self) -> Iterator[Any]:
        fetch = self._fetcher()
        iterator = iter(self.dataset) if fetch.iterable else None
        for indices in self._index_sampler:
            try:
                batch = fetch(indices, iterator)
            except StopIteration:
                return
            yield batch


_FIXED = ("batch_size", "batch_sampler", "sampler", "drop_last", "dataset", "persistent_workers")


def _cuda_available() -> bool:
    from ... import cuda
    return cuda.is_available()


def _seed(generator: Generator | None) -> int:
    """A base seed for the workers of one epoch, drawn from generator or graphc's default generator."""
    return int(randint(0, 2**62, (), generator=generator or default_generator).item())


class _MultiProcessIterator:
    """Batches built by worker processes, yielded in sampler order (see the module docstring)."""

    def __init__(self, loader: DataLoader):
        self.loader, self.closed, self.owner = loader, False, os.getpid()
        ctx = loader.multiprocessing_context or multiprocessing.get_context()
        base_seed, fetch = _seed(loader.generator), loader._fetcher()
        self.index_queues, self.connections, self.workers = [], [], []
        for worker_id in range(loader.num_workers):
            index_queue = ctx.Queue()
            index_queue.cancel_join_thread()  # never block exit on tasks a stopped worker did not read
            reader, writer = ctx.Pipe(duplex=False)
            worker = ctx.Process(target=worker_loop, daemon=True,
                                 args=(fetch, index_queue, writer, base_seed, loader.worker_init_fn, worker_id,
                                       loader.num_workers))
            worker.start()
            writer.close()  # the worker holds the writing end: a dead worker then reads as EOF here
            self.index_queues.append(index_queue)
            self.connections.append(reader)
            self.workers.append(worker)
        self.epoch = 0
        self.start_epoch(first=True)

    def start_epoch(self, first: bool = False) -> None:
        """Start handing out the tasks of a new epoch (persistent workers are reused; a late result of an earlier
        epoch is recognised by its epoch number and dropped)."""
        if not first:
            self.epoch += 1
        self.tasks = iter(self.loader._index_sampler)
        self.sent = self.received = 0
        self.ready: dict[int, Any] = {}
        self.active = [True] * len(self.workers)
        self.next_worker = itertools.cycle(range(len(self.workers)))
        for _ in range(self.loader.prefetch_factor * len(self.workers)):
            self._send_task()

    def _send_task(self) -> None:
        """Queue the next batch's indices at the next worker that still has data (all of them, for map-style)."""
        if not any(self.active):
            return
        worker_id = next(w for w in self.next_worker if self.active[w])
        indices = next(self.tasks, _DONE)
        if indices is _DONE:
            return
        self.index_queues[worker_id].put((self.epoch, self.sent, indices))
        self.sent += 1

    def __iter__(self) -> _MultiProcessIterator:
        return self

    def __next__(self):
        while self.received < self.sent:
            if self.received not in self.ready:
                self._receive()
                continue
            batch = self.ready.pop(self.received)
            self.received += 1
            self._send_task()
            if isinstance(batch, IterationEnd):
                continue
            if isinstance(batch, WorkerError):
                self.close(terminate=True)
                batch.reraise()
            return batch
        if not self.loader.persistent_workers:
            self.close()
        raise StopIteration

    def _receive(self) -> None:
        """Wait for any worker's next result (or death, or the timeout) and file it under its task index."""
        timeout = self.loader.timeout or None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = wait(self.connections + [w.sentinel for w in self.workers], left)
            results = [c for c in ready if c in self.connections]
            if results:
                break
            if ready:  # only sentinels: a worker exited while the epoch needs it
                self._worker_died()
            if deadline is not None and time.monotonic() >= deadline:
                self.close(terminate=True)
                raise RuntimeError(f"DataLoader timed out after {timeout} seconds waiting for a batch")
        for connection in results:
            try:
                epoch, task_index, worker_id, batch = connection.recv()
            except EOFError:  # the worker exited before it finished sending
                self._worker_died()
            if epoch != self.epoch:
                continue
            if isinstance(batch, IterationEnd):
                self.active[worker_id] = False
            self.ready[task_index] = batch

    def _worker_died(self) -> None:
        for w in self.workers:
            w.join(timeout=0.1)
        dead = [w for w in self.workers if w.exitcode is not None]
        self.close(terminate=True)
        details = ", ".join(f"{w.pid}: {_exit_reason(w.exitcode)}" for w in dead)
        raise RuntimeError(f"DataLoader worker (pid(s) {details}) exited unexpectedly. A worker killed by SIGKILL "
                           "usually ran out of memory; set num_workers=0 to see the error in the main process")

    def close(self, terminate: bool = False) -> None:
        """Stop the workers: ask each to exit and give it a moment, then terminate the ones still running (at once
        when terminate: after an error, their work is not wanted)."""
        if self.closed or os.getpid() != self.owner:  # a forked child holding a copy: the workers are not its own
            return
        self.closed = True
        for index_queue, worker in zip(self.index_queues, self.workers):
            if worker.is_alive() and not terminate:
                index_queue.put(None)
        for connection in self.connections:  # a worker still writing a batch nobody will read gets EPIPE and exits
            connection.close()
        for worker in self.workers:
            worker.join(timeout=0 if terminate else 2.0)
            if worker.is_alive():
                worker.terminate()
                worker.join()
        for index_queue in self.index_queues:
            index_queue.close()

    def __len__(self) -> int:
        return len(self.loader)

    def __del__(self) -> None:
        if not getattr(self, "closed", True):
            self.close()


_DONE = object()


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"
