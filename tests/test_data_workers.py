"""DataLoader with worker processes against torch's: the same batches as loading in the calling process, seeding,
worker_init_fn and get_worker_info, IterableDataset sharding, persistent workers, and the errors a user must see:
a worker's exception, a worker that dies, a timeout. Every wait is bounded (timeout= or a dying worker)."""
from __future__ import annotations

import gc
import os
import pickle
import signal
import time

import numpy as np
import pytest
import torch
import torch.utils.data as tdata
from conftest import assert_close

import graphc
import graphc.utils.data as gdata


class Samples(gdata.Dataset):
    """Dict samples with a numpy image, a tensor, a number, and where (which worker, which process) they were made."""

    def __init__(self, n: int = 10, torch_lib: bool = False):
        self.n, self.torch_lib = n, torch_lib

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        info = (tdata if self.torch_lib else gdata).get_worker_info()
        lib = torch if self.torch_lib else graphc
        return {"image": np.full((2, 2), i, np.float32), "x": lib.tensor([float(i), -i]), "label": i,
                "worker": -1 if info is None else info.id, "pid": os.getpid(), "noise": float(np.random.rand())}


def test_workers_build_the_same_batches_as_torch_and_as_the_main_process():
    sampler = lambda: gdata.RandomSampler(range(10), generator=graphc.Generator().manual_seed(4))
    main = list(gdata.DataLoader(Samples(), batch_size=3, sampler=sampler()))
    workers = list(gdata.DataLoader(Samples(), batch_size=3, sampler=sampler(), num_workers=2, timeout=20))
    theirs = list(tdata.DataLoader(Samples(torch_lib=True), batch_size=3, sampler=main[0]["label"].tolist() +
                                   sum([b["label"].tolist() for b in main[1:]], []), num_workers=2, timeout=20))
    assert len(workers) == len(main) == len(theirs) == 4
    for w, m, t in zip(workers, main, theirs):
        for key in ("image", "x", "label"):
            assert_close(w[key], m[key])
            assert_close(w[key], t[key])
            assert w[key].dtype is m[key].dtype
        assert (m["worker"] == -1).all().item() and set(w["worker"].tolist()) <= {0, 1}
    assert [b["worker"].tolist()[0] for b in workers] == [b["worker"].tolist()[0] for b in theirs] == [0, 1, 0, 1]
    assert gdata.get_worker_info() is None


def test_tensor_dataset_batches_from_workers():
    x, y = np.random.randn(11, 3).astype(np.float32), np.arange(11)
    ours = gdata.DataLoader(gdata.TensorDataset(graphc.tensor(x), graphc.tensor(y)), batch_size=4, num_workers=2,
                            timeout=20)
    theirs = tdata.DataLoader(tdata.TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=4)
    for (a, b), (ta, tb) in zip(ours, theirs, strict=True):
        assert_close(a, ta)
        assert b.dtype is graphc.int64 and b.tolist() == tb.tolist()


def test_workers_are_seeded_from_graphc_manual_seed_and_run_worker_init_fn():
    seen = []

    def init(worker_id):
        info = gdata.get_worker_info()
        assert info.id == worker_id and info.num_workers == 2 and isinstance(info.dataset, Samples)
        np.random.seed(info.seed % 2**32)  # what scripts do; the loader already seeds numpy per worker

    def noise():
        graphc.manual_seed(11)
        loader = gdata.DataLoader(Samples(8), batch_size=2, num_workers=2, worker_init_fn=init, timeout=20)
        batches = list(loader)
        seen.append(sum((b["pid"].tolist() for b in batches), []))
        return [b["noise"].tolist() for b in batches]

    first, second = noise(), noise()
    assert first == second  # reproducible from the seed
    by_worker = [first[0], first[1]]
    assert by_worker[0] != by_worker[1]  # the two workers' numpy streams differ
    assert len(set(seen[0])) == 2 and os.getpid() not in seen[0]


def shards(lib, n: int):
    """An IterableDataset of lib (graphc.utils.data or torch.utils.data) over range(n), each worker yielding every
    num_workers-th item from its id on."""
    class Shards(lib.IterableDataset):
        def __iter__(self):
            info = lib.get_worker_info()
            return iter(range(n) if info is None else range(info.id, n, info.num_workers))
    return Shards()


@pytest.mark.parametrize("kwargs", [{"batch_size": 2}, {"batch_size": 2, "drop_last": True}, {"batch_size": None}],
                         ids=str)
def test_iterable_dataset_shards_come_in_torchs_order(kwargs):
    as_list = lambda b: b if isinstance(b, int) else b.tolist()
    ours = [as_list(b) for b in gdata.DataLoader(shards(gdata, 11), num_workers=2, timeout=20, **kwargs)]
    theirs = [as_list(b) for b in tdata.DataLoader(shards(tdata, 11), num_workers=2, timeout=20, **kwargs)]
    assert ours == theirs


def test_persistent_workers_serve_every_epoch():
    loader = gdata.DataLoader(Samples(6), batch_size=2, shuffle=True, num_workers=2, persistent_workers=True,
                              timeout=20)
    epochs = [list(loader) for _ in range(3)]
    pids = [{p for b in epoch for p in b["pid"].tolist()} for epoch in epochs]
    assert pids[0] == pids[1] == pids[2] and len(pids[0]) == 2
    assert all(sorted(sum((b["label"].tolist() for b in e), [])) == list(range(6)) for e in epochs)
    partial = iter(loader)
    next(partial)  # an epoch left early: the next one starts cleanly
    assert sorted(sum((b["label"].tolist() for b in loader), [])) == list(range(6))
    workers = loader._iterator.workers
    loader._iterator.close()
    assert not any(w.is_alive() for w in workers)


def test_workers_stop_when_the_loop_is_left_early():
    iterator = iter(gdata.DataLoader(Samples(20), batch_size=2, num_workers=2, timeout=20))
    next(iterator)
    workers = iterator.workers
    del iterator
    gc.collect()
    assert not any(w.is_alive() for w in workers)


class Failing(gdata.Dataset):
    """Raises, dies or stalls at index 3."""

    def __init__(self, how: str):
        self.how = how

    def __len__(self) -> int:
        return 8

    def __getitem__(self, i: int):
        if i == 3:
            if self.how == "raise":
                raise KeyError(f"no sample {i}")
            if self.how == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            if self.how == "stall":
                time.sleep(30)
        return i


def test_a_workers_exception_is_raised_in_the_main_process_with_its_traceback():
    with pytest.raises(KeyError, match="Caught KeyError in DataLoader worker process 1") as error:
        list(gdata.DataLoader(Failing("raise"), batch_size=2, num_workers=2, timeout=20))
    assert "no sample 3" in str(error.value) and "__getitem__" in str(error.value)


def test_a_worker_that_dies_is_reported_at_once():
    start = time.monotonic()
    with pytest.raises(RuntimeError, match=r"DataLoader worker \(pid\(s\) \d+: killed by signal SIGKILL\) exited "
                                           "unexpectedly"):
        list(gdata.DataLoader(Failing("die"), batch_size=2, num_workers=2, timeout=20))
    assert time.monotonic() - start < 10


def test_timeout_bounds_the_wait_for_a_batch():
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="DataLoader timed out after 0.5 seconds"):
        list(gdata.DataLoader(Failing("stall"), batch_size=1, num_workers=2, timeout=0.5))
    assert time.monotonic() - start < 10


def test_tensors_cross_to_workers_only():
    """Worker pipes carry tensors; plain pickle (and so graphc.save's promise) still refuses them."""
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(graphc.zeros(2))
    batch = next(iter(gdata.DataLoader([graphc.ones(2, requires_grad=True)], batch_size=None, num_workers=1,
                                       timeout=20)))
    assert batch.requires_grad and batch.is_leaf and batch.tolist() == [1.0, 1.0]
    with pytest.raises(RuntimeError, match="Cowardly refusing to serialize non-leaf tensor which requires_grad"):
        next(iter(gdata.DataLoader([graphc.ones(2, requires_grad=True) * 2], batch_size=None, num_workers=1,
                                   timeout=20)))
