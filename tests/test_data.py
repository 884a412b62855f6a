"""graphc.utils.data against torch.utils.data: datasets, batching, shuffling and collation."""
from __future__ import annotations

from collections import namedtuple

import numpy as np
import pytest
import torch
import torch.utils.data as tdata
from conftest import assert_close

import graphc
from graphc.utils.data import DataLoader, Dataset, TensorDataset, default_collate

Point = namedtuple("Point", ["x", "label"])


def digit_like_data(n: int = 23):
    rng = np.random.default_rng(0)
    return rng.random((n, 4)).astype(np.float32), rng.integers(0, 10, n)


def batches_as_numpy(loader):
    return [[b.numpy() for b in batch] for batch in loader]


@pytest.mark.parametrize("batch_size,drop_last", [(5, False), (5, True), (23, False), (1, True), (30, True)])
def test_sequential_batches_match_torch(batch_size, drop_last):
    x, y = digit_like_data()
    ours = DataLoader(TensorDataset(graphc.tensor(x), graphc.tensor(y)), batch_size=batch_size, drop_last=drop_last)
    theirs = tdata.DataLoader(tdata.TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=batch_size,
                              drop_last=drop_last)
    assert len(ours) == len(theirs)
    got, expected = batches_as_numpy(ours), batches_as_numpy(theirs)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        for ga, ea in zip(g, e):
            assert ga.dtype == ea.dtype and np.array_equal(ga, ea)


def test_tensor_dataset_indexing():
    x, y = digit_like_data()
    ours, theirs = TensorDataset(graphc.tensor(x), graphc.tensor(y)), tdata.TensorDataset(torch.tensor(x),
                                                                                           torch.tensor(y))
    assert len(ours) == len(theirs) == 23
    for i in (0, 7, 22):
        for g, t in zip(ours[i], theirs[i]):
            assert_close(g, t)
    with pytest.raises(AssertionError, match="Size mismatch between tensors"):
        tdata.TensorDataset(torch.tensor(x), torch.tensor(y[:22]))
    with pytest.raises(AssertionError, match=r"Size mismatch between tensors.*\[23, 4\], \[22\]"):
        TensorDataset(graphc.tensor(x), graphc.tensor(y[:22]))


def shuffled_labels(loader) -> list[list[int]]:
    return [batch[0].tolist() for batch in loader]


def test_shuffle_is_seeded_and_fresh_each_epoch():
    labels = graphc.arange(20)
    make = lambda seed: DataLoader(TensorDataset(labels), batch_size=6, shuffle=True,
                                   generator=graphc.Generator().manual_seed(seed))
    loader = make(1)
    first, second = shuffled_labels(loader), shuffled_labels(loader)
    assert first == shuffled_labels(make(1)) and second != first
    assert shuffled_labels(make(2)) != first
    for epoch in (first, second):
        assert [len(b) for b in epoch] == [6, 6, 6, 2]
        assert sorted(sum(epoch, [])) == list(range(20))
    graphc.manual_seed(5)
    default_stream = shuffled_labels(DataLoader(TensorDataset(labels), batch_size=6, shuffle=True))
    graphc.manual_seed(5)
    assert shuffled_labels(DataLoader(TensorDataset(labels), batch_size=6, shuffle=True)) == default_stream
    assert sorted(sum(default_stream, [])) == list(range(20))


def test_tensor_dataset_batches_equal_collated_samples():
    """The TensorDataset fast path (one gather per tensor) gives exactly what collating the samples one by one does."""
    x, y = digit_like_data()
    dataset = TensorDataset(graphc.tensor(x), graphc.tensor(y))
    make = lambda collate: DataLoader(dataset, batch_size=5, shuffle=True, collate_fn=collate,
                                      generator=graphc.Generator().manual_seed(3))
    fast, slow = batches_as_numpy(make(None)), batches_as_numpy(make(lambda samples: default_collate(samples)))
    assert len(fast) == len(slow) == 5
    for f, s in zip(fast, slow):
        for fa, sa in zip(f, s):
            assert fa.dtype == sa.dtype and np.array_equal(fa, sa)


def test_default_collate_matches_torch():
    rng = np.random.default_rng(1)
    samples = [{"image": rng.random((2, 3)).astype(np.float32), "label": int(rng.integers(10)), "weight": 0.5 * i,
                "flag": bool(i % 2), "name": f"s{i}", "pair": (rng.random(2).astype(np.float32), i),
                "point": Point(float(i), i)} for i in range(4)]
    ours = default_collate([{**s, "image": graphc.tensor(s["image"]), "pair": (graphc.tensor(s["pair"][0]),
                                                                             s["pair"][1])} for s in samples])
    theirs = tdata.default_collate([{**s, "image": torch.tensor(s["image"]), "pair": (torch.tensor(s["pair"][0]),
                                                                                     s["pair"][1])} for s in samples])
    assert ours.keys() == theirs.keys()
    for key in ("image", "label", "weight", "flag"):
        assert ours[key].dtype.name == str(theirs[key].dtype).removeprefix("torch."), key
        assert_close(ours[key], theirs[key])
    assert ours["name"] == theirs["name"]
    assert isinstance(ours["pair"], list) and isinstance(theirs["pair"], list)
    for g, t in zip(ours["pair"], theirs["pair"]):
        assert_close(g, t)
    assert isinstance(ours["point"], Point)
    assert_close(ours["point"].x, theirs["point"].x)


def test_numpy_samples_are_stacked():
    batch = default_collate([np.arange(3, dtype=np.int32), np.arange(3, 6, dtype=np.int32)])
    assert batch.dtype is graphc.int32 and batch.tolist() == [[0, 1, 2], [3, 4, 5]]


class Sentences(Dataset):
    """Ragged samples: token id sequences of different lengths."""

    def __init__(self):
        self.items = [[1, 2, 3], [4], [5, 6], [7, 8, 9, 10]]

    def __getitem__(self, index):
        return graphc.tensor(self.items[index]), len(self.items[index])

    def __len__(self):
        return len(self.items)


def pad_batch(batch):
    """Pad sequences with zeros to the longest one; return (padded, lengths)."""
    longest = max(n for _, n in batch)
    padded = [graphc.tensor(seq.tolist() + [0] * (longest - n)) for seq, n in batch]
    return default_collate(padded), graphc.tensor([n for _, n in batch])


def test_ragged_samples_need_a_collate_fn():
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        next(iter(tdata.DataLoader([torch.tensor(s) for s in Sentences().items], batch_size=2)))
    with pytest.raises(RuntimeError, match=r"equal size, got shapes \[\(1,\), \(3,\)\].*collate_fn"):
        next(iter(DataLoader(Sentences(), batch_size=2)))
    padded, lengths = next(iter(DataLoader(Sentences(), batch_size=3, collate_fn=pad_batch)))
    reference = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in Sentences().items[:3]], batch_first=True)
    assert_close(padded, reference)
    assert lengths.tolist() == [3, 1, 2]


def test_bad_arguments():
    with pytest.raises(NotImplementedError, match="should implement __getitem__"):
        tdata.Dataset()[0]
    with pytest.raises(NotImplementedError, match="should implement __getitem__"):
        Dataset()[0]
    for collate, kind in ((tdata.default_collate, TypeError), (default_collate, TypeError)):
        with pytest.raises(kind, match="batch must contain tensors, numpy arrays, numbers, dicts or lists"):
            collate([object()])
        with pytest.raises(kind, match="batch must contain tensors, numpy arrays, numbers, dicts or lists; found <U1"):
            collate([np.array(["a"]), np.array(["b"])])
    for collate in (tdata.default_collate, default_collate):
        with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
            collate([(1, 2), (3, 4, 5)])


@pytest.mark.parametrize("lengths", [[10, 7, 6], [0.5, 0.3, 0.2], [0.7, 0.3]], ids=str)
def test_random_split_partitions_like_torch(lengths):
    x, _ = digit_like_data()
    ours = graphc.utils.data.random_split(TensorDataset(graphc.tensor(x)), lengths,
                                          generator=graphc.Generator().manual_seed(0))
    theirs = tdata.random_split(tdata.TensorDataset(torch.tensor(x)), lengths,
                                generator=torch.Generator().manual_seed(0))
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    rows = sorted(tuple(s[i][0].tolist()) for s in ours for i in range(len(s)))
    assert rows == sorted(tuple(r) for r in x.tolist())
    again = graphc.utils.data.random_split(TensorDataset(graphc.tensor(x)), lengths,
                                           generator=graphc.Generator().manual_seed(0))
    assert [s.indices for s in again] == [s.indices for s in ours]



def test_random_split_errors_like_torch():
    x, _ = digit_like_data()
    for lib, ds in ((tdata, tdata.TensorDataset(torch.tensor(x))),
                    (graphc.utils.data, TensorDataset(graphc.tensor(x)))):
        with pytest.raises(ValueError, match="Sum of input lengths does not equal the length of the input dataset"):
            lib.random_split(ds, [5, 5])
        with pytest.raises(ValueError, match="Fraction at index 0 is not between 0 and 1"):
            lib.random_split(ds, [1.5, -0.5])
        with pytest.warns(UserWarning, match="Length of split at index 1 is 0"):
            lib.random_split(ds, [0.99, 0.01])


def test_subset_and_torch_loader_arguments():
    x, y = digit_like_data()
    subset = graphc.utils.data.Subset(TensorDataset(graphc.tensor(x), graphc.tensor(y)), [4, 0, 7])
    tsubset = tdata.Subset(tdata.TensorDataset(torch.tensor(x), torch.tensor(y)), [4, 0, 7])
    with pytest.warns(UserWarning, match="'pin_memory' argument is set as true but no accelerator is found"):
        ours = list(DataLoader(subset, batch_size=2, num_workers=0, pin_memory=True))
    theirs = list(tdata.DataLoader(tsubset, batch_size=2, num_workers=0, pin_memory=False))
    assert len(ours) == len(theirs) == 2
    for a, b in zip(ours, theirs):
        for u, v in zip(a, b):
            assert_close(u, v)
