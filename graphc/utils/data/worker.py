"""DataLoader worker processes, as torch.utils.data._utils.worker: the loop each worker runs, get_worker_info, and
how tensors cross the process boundary.

A worker takes tasks (epoch, task index, dataset indices) from its own queue, builds the batch, and sends
(epoch, task index, worker id, batch) back through its own pipe; an exception travels back as a WorkerError and is
raised again in the main process. Batches are pickled by multiprocessing's ForkingPickler, with a reduction for
graphc tensors registered here: that is the only pickling of tensors graphc allows (plain pickle and graphc.save
still refuse them), and it only connects processes of one program."""
from __future__ import annotations

import os
import pickle
import queue
import random
import threading
import traceback
from dataclasses import dataclass
from multiprocessing.reduction import ForkingPickler
from typing import Any

import numpy as np

from ... import dtypes
from ...ops.creation import manual_seed
from ...tensor import Tensor

__all__ = ["WorkerInfo", "get_worker_info"]

STATUS_CHECK_INTERVAL = 1.0  # seconds between a waiting worker's checks that its parent still runs


@dataclass(frozen=True)
class WorkerInfo:
    """What get_worker_info() returns inside a worker: its id (0 .. num_workers - 1), the number of workers, the
    seed it seeded Python's random, numpy's legacy global generator and graphc's default generator with, and its
    own copy of the dataset."""

    id: int
    num_workers: int
    seed: int
    dataset: Any


_worker_info: WorkerInfo | None = None


def get_worker_info() -> WorkerInfo | None:
    """Inside a DataLoader worker process, its WorkerInfo; None in the main process. An IterableDataset uses it to
    yield only its share of the stream (e.g. every num_workers-th item from the id-th)."""
    return _worker_info


class WorkerError:
    """An exception raised in a worker, carried to the main process with its traceback as text."""

    def __init__(self, worker_id: int, error: BaseException):
        self.kind, self.where = type(error), f"in DataLoader worker process {worker_id}"
        self.text = "".join(traceback.format_exception(error))
        try:
            pickle.dumps(self.kind)
        except Exception:  # noqa: BLE001 (a class defined inside a function: raised as RuntimeError instead)
            self.kind = RuntimeError

    def reraise(self):
        message = f"Caught {self.kind.__name__} {self.where}.\nOriginal {self.text}"
        try:
            error = self.kind(message)
        except Exception:  # noqa: BLE001 (an exception type whose constructor wants other arguments)
            error = RuntimeError(message)
        raise error


class IterationEnd:
    """A worker's reply once its copy of an IterableDataset is exhausted for this epoch."""


def _reduce_tensor(t: Tensor):
    if type(t._data) is not np.ndarray:
        raise RuntimeError("a CUDA tensor cannot be sent from a DataLoader worker: return CPU tensors from the "
                           "dataset and move each batch with .to(device) in the main process")
    if t.requires_grad and not t.is_leaf:
        raise RuntimeError("Cowardly refusing to serialize non-leaf tensor which requires_grad, since autograd does "
                           "not support crossing process boundaries; detach() it in the dataset")
    return _rebuild_tensor, (t._data, t.dtype.name, t.requires_grad)


def _rebuild_tensor(array: np.ndarray, dtype_name: str, requires_grad: bool) -> Tensor:
    return Tensor._make(array, dtypes.BY_NAME[dtype_name], requires_grad)


ForkingPickler.register(Tensor, _reduce_tensor)


def seed_worker(base_seed: int, worker_id: int) -> int:
    """Seed this process's random streams for worker worker_id, as torch does: Python's random and graphc's default
    generator with base_seed + worker_id, numpy's legacy global generator from both (so workers never share a numpy
    stream, the classic augmentation bug). Returns the seed."""
    seed = base_seed + worker_id
    random.seed(seed)
    manual_seed(seed)
    np.random.seed(np.random.SeedSequence([worker_id, base_seed]).generate_state(4))
    return seed


def worker_loop(fetch, index_queue, result_conn, base_seed: int, init_fn, worker_id: int, num_workers: int) -> None:
    """Serve tasks until told to stop (None), or the parent process is gone, or it stops reading (broken pipe).
    fetch(indices, iterator) builds one batch of fetch.dataset; for an IterableDataset (fetch.iterable), iterator is
    this worker's iterator of the current epoch (a new one when the epoch changes). Batches are pickled here (so a
    batch that cannot be pickled is reported) and written to the pipe by a sender thread, so the next batch is built
    while the main process reads this one."""
    global _worker_info
    outbox: queue.SimpleQueue = queue.SimpleQueue()
    sender = threading.Thread(target=_send_all, args=(outbox, result_conn), daemon=True)
    sender.start()
    try:
        _worker_info = WorkerInfo(worker_id, num_workers, seed_worker(base_seed, worker_id), fetch.dataset)
        init_error = None
        if init_fn is not None:
            try:
                init_fn(worker_id)
            except Exception as e:  # noqa: BLE001 (reported to the main process at the first batch)
                init_error = WorkerError(worker_id, e)
        parent, epoch, iterator, exhausted = os.getppid(), None, None, False
        while sender.is_alive():
            try:
                task = index_queue.get(timeout=STATUS_CHECK_INTERVAL)
            except queue.Empty:
                if os.getppid() != parent:
                    return
                continue
            if task is None:
                break
            task_epoch, task_index, indices = task
            if task_epoch != epoch:
                epoch, iterator, exhausted = task_epoch, None, False
            if init_error is not None:
                reply = init_error
            elif exhausted:
                reply = IterationEnd()
            else:
                try:
                    if fetch.iterable and iterator is None:
                        iterator = iter(fetch.dataset)
                    reply = fetch(indices, iterator)
                except StopIteration as e:
                    if not fetch.iterable:
                        reply = WorkerError(worker_id, e)
                    else:
                        reply, exhausted = IterationEnd(), True
                except Exception as e:  # noqa: BLE001 (raised again in the main process)
                    reply = WorkerError(worker_id, e)
            try:
                message = ForkingPickler.dumps((epoch, task_index, worker_id, reply))
            except Exception as e:  # noqa: BLE001 (a batch that cannot be pickled: say so in the main process)
                message = ForkingPickler.dumps((epoch, task_index, worker_id, WorkerError(worker_id, e)))
            outbox.put(message)
        outbox.put(None)
        sender.join()
    except KeyboardInterrupt:  # Ctrl-C reaches every process of the group: the main process reports it
        return


def _send_all(outbox: queue.SimpleQueue, conn) -> None:
    """The sender thread: write pickled messages to the pipe until None, or until the main process stops reading."""
    while (message := outbox.get()) is not None:
        try:
            conn.send_bytes(message)
        except OSError:  # broken pipe: the main process closed its end
            return
