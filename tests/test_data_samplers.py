"""graphc.utils.data samplers, datasets and DataLoader options against torch.utils.data: orders and partitions
(exactly where torch's are deterministic, as sets and distributions where they are random), lengths, reproducibility
under graphc.manual_seed, and errors for bad input."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.utils.data as tdata
from conftest import assert_close

import graphc
import graphc.utils.data as gdata


def assert_refused_alike(error: type, ours, theirs) -> None:
    """ours() and theirs() both raise error with the same words up to the first punctuation (torch's message;
    graphc may add details after it)."""
    with pytest.raises(error) as expected:
        theirs()
    with pytest.raises(error) as got:
        ours()
    assert re.split("[.,;]", str(got.value))[0] == re.split("[.,;]", str(expected.value))[0]


# ---- samplers ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n,batch_size,drop_last", [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False),
                                                    (2, 5, True), (0, 4, False), (7, 1, True)])
def test_batch_sampler_matches_torch(n, batch_size, drop_last):
    ours = gdata.BatchSampler(gdata.SequentialSampler(range(n)), batch_size, drop_last)
    theirs = tdata.BatchSampler(tdata.SequentialSampler(range(n)), batch_size, drop_last)
    assert list(ours) == list(theirs) and len(ours) == len(theirs)
    assert list(gdata.BatchSampler(range(n), batch_size, drop_last)) == list(theirs)  # any iterable of indices


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"batch_size": True}, {"batch_size": 2.0},
                                    {"drop_last": 1}], ids=str)
def test_batch_sampler_refuses_like_torch(kwargs):
    args = {"batch_size": 2, "drop_last": False, **kwargs}
    assert_refused_alike(ValueError, lambda: gdata.BatchSampler(range(4), **args),
                         lambda: tdata.BatchSampler(range(4), **args))


def test_random_sampler_is_a_fresh_permutation_each_epoch_and_seeded():
    data = range(50)
    sampler = gdata.RandomSampler(data, generator=graphc.Generator().manual_seed(7))
    first, second = list(sampler), list(sampler)
    assert sorted(first) == sorted(second) == list(range(50)) and first != second and len(sampler) == 50
    assert list(gdata.RandomSampler(data, generator=graphc.Generator().manual_seed(7))) == first
    graphc.manual_seed(3)
    from_default = [list(gdata.RandomSampler(data)) for _ in range(2)]
    graphc.manual_seed(3)
    assert [list(gdata.RandomSampler(data)) for _ in range(2)] == from_default


@pytest.mark.parametrize("num_samples", [3, 50, 120])
def test_random_sampler_num_samples_like_torch(num_samples):
    """Without replacement, whole permutations then a prefix of one; with replacement, independent draws."""
    n = 50
    ours, theirs = gdata.RandomSampler(range(n), num_samples=num_samples), tdata.RandomSampler(
        range(n), num_samples=num_samples)
    got = list(ours)
    assert len(got) == len(ours) == len(list(theirs)) == len(theirs) == num_samples
    for start in range(0, num_samples, n):
        block = got[start:start + n]
        assert len(set(block)) == len(block) and set(block) <= set(range(n))
    drawn = list(gdata.RandomSampler(range(n), replacement=True, num_samples=num_samples))
    assert len(drawn) == num_samples and set(drawn) <= set(range(n))


def test_random_sampler_with_replacement_repeats_indices():
    drawn = list(gdata.RandomSampler(range(5), replacement=True, num_samples=400))
    counts = np.bincount(drawn, minlength=5)
    assert counts.sum() == 400 and (counts > 40).all()  # each expected 80 times; P(<= 40) is about 1e-7


@pytest.mark.parametrize("kwargs,error", [({"replacement": 1}, TypeError), ({"num_samples": 0}, ValueError),
                                          ({"num_samples": -2}, ValueError), ({"num_samples": 2.5}, ValueError)],
                         ids=str)
def test_random_sampler_refuses_like_torch(kwargs, error):
    assert_refused_alike(error, lambda: gdata.RandomSampler(range(4), **kwargs),
                         lambda: tdata.RandomSampler(range(4), **kwargs))


def test_subset_random_sampler_permutes_its_indices():
    indices = [3, 9, 4, 20, 11]
    ours = gdata.SubsetRandomSampler(indices, generator=graphc.Generator().manual_seed(1))
    theirs = tdata.SubsetRandomSampler(indices)
    got = [list(ours) for _ in range(4)]
    assert all(sorted(g) == sorted(list(theirs)) for g in got) and len(ours) == len(theirs) == 5
    assert len({tuple(g) for g in got}) > 1


WEIGHTS = [0.1, 0.9, 0.4, 0.7, 3.0, 0.0, 0.6]


def test_weighted_sampler_with_replacement_follows_the_weights():
    """Frequencies of 30000 draws against the weights (chi-square, 6 degrees of freedom, p = 1e-4 bound) and
    against torch's own frequencies."""
    p = np.array(WEIGHTS) / sum(WEIGHTS)
    ours = np.bincount(list(gdata.WeightedRandomSampler(WEIGHTS, 30000)), minlength=len(p))
    theirs = np.bincount(list(tdata.WeightedRandomSampler(WEIGHTS, 30000)), minlength=len(p))
    for counts in (ours, theirs):
        nonzero = p > 0
        chi2 = (((counts - 30000 * p)[nonzero]) ** 2 / (30000 * p[nonzero])).sum()
        assert counts[~nonzero].sum() == 0 and chi2 < 25.7
    np.testing.assert_allclose(ours / 30000, theirs / 30000, atol=0.015)


def test_weighted_sampler_without_replacement_matches_torchs_inclusion_frequencies():
    """Draws of 3 distinct indices: how often each index is included (a property of sequential sampling without
    replacement, which both implement) agrees with torch's over 3000 draws."""
    runs = 3000
    ours, theirs = np.zeros(len(WEIGHTS)), np.zeros(len(WEIGHTS))
    firsts = np.zeros(len(WEIGHTS))
    sampler, tsampler = gdata.WeightedRandomSampler(WEIGHTS, 3, replacement=False), tdata.WeightedRandomSampler(
        WEIGHTS, 3, replacement=False)
    for _ in range(runs):
        got = list(sampler)
        assert len(set(got)) == 3 and 5 not in got
        ours[got] += 1
        firsts[got[0]] += 1
        theirs[list(tsampler)] += 1
    np.testing.assert_allclose(ours / runs, theirs / runs, atol=0.05)
    np.testing.assert_allclose(firsts / runs, np.array(WEIGHTS) / sum(WEIGHTS), atol=0.04)
    for lib in (gdata, tdata):  # zero weights are drawn last, once the others are used up
        assert list(lib.WeightedRandomSampler([1.0, 0.0, 2.0], 3, replacement=False))[-1] == 1


@pytest.mark.parametrize("weights,num_samples,replacement", [([1.0, -1.0], 1, True), ([0.0, 0.0], 1, True),
                                                             ([1.0, float("nan")], 1, True),
                                                             ([1.0, 2.0], 3, False)], ids=str)
def test_weighted_sampler_refuses_bad_weights_like_torch(weights, num_samples, replacement):
    with pytest.raises(RuntimeError) as theirs:
        list(tdata.WeightedRandomSampler(weights, num_samples, replacement))
    with pytest.raises(RuntimeError) as ours:
        list(gdata.WeightedRandomSampler(weights, num_samples, replacement))
    words = [w for w in ("< 0", "sum of probabilities", "without replacement", "nan") if w in str(theirs.value)]
    assert words and all(w in str(ours.value) for w in words)


@pytest.mark.parametrize("args", [([[1.0, 2.0]], 1), ([1.0], 0), ([1.0], 1, "yes")], ids=str)
def test_weighted_sampler_refuses_bad_arguments_like_torch(args):
    assert_refused_alike(ValueError, lambda: gdata.WeightedRandomSampler(*args),
                         lambda: tdata.WeightedRandomSampler(*args))


# ---- datasets ------------------------------------------------------------------------------------------------
def test_concat_dataset_indexing_matches_torch():
    parts = [list(range(0, 3)), list(range(10, 10)), list(range(20, 25)), [99]]
    ours, theirs = gdata.ConcatDataset(parts), tdata.ConcatDataset(parts)
    assert len(ours) == len(theirs) == 9 and ours.cumulative_sizes == theirs.cumulative_sizes
    for i in range(-9, 9):
        assert ours[i] == theirs[i], i
    for index, error in ((-10, ValueError), (9, IndexError)):
        with pytest.raises(error):
            theirs[index]
        with pytest.raises(error):
            ours[index]
    added = gdata.TensorDataset(graphc.arange(3)) + gdata.TensorDataset(graphc.arange(5, 7))
    assert isinstance(added, gdata.ConcatDataset) and [added[i][0].item() for i in range(5)] == [0, 1, 2, 5, 6]


def test_concat_dataset_refuses_like_torch():
    class Stream(gdata.IterableDataset):
        def __iter__(self):
            return iter(range(3))

    class TorchStream(tdata.IterableDataset):
        def __iter__(self):
            return iter(range(3))

    for lib, stream in ((tdata, TorchStream()), (gdata, Stream())):
        with pytest.raises(AssertionError, match="datasets should not be an empty iterable"):
            lib.ConcatDataset([])
        with pytest.raises(AssertionError, match="ConcatDataset does not support IterableDataset"):
            lib.ConcatDataset([[1], stream])
        assert list(stream + stream) == [0, 1, 2, 0, 1, 2]


def test_subset_indexing_matches_torch():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    ours = gdata.Subset(gdata.TensorDataset(graphc.tensor(x)), [7, 2, 2, 9])
    theirs = tdata.Subset(tdata.TensorDataset(torch.tensor(x)), [7, 2, 2, 9])
    assert len(ours) == len(theirs) == 4
    for i in (0, 1, 3, -1):
        assert_close(ours[i][0], theirs[i][0])
    assert_close(ours[[0, 3]][0], theirs[[0, 3]][0])
    nested = gdata.Subset(ours, [3, 0])
    assert [s[0].tolist() for s in nested.__getitems__([0, 1])] == [[18.0, 19.0], [14.0, 15.0]]


# ---- DataLoader options ----------------------------------------------------------------------------------------
def loaders(x: np.ndarray, **kwargs):
    return (gdata.DataLoader(gdata.TensorDataset(graphc.tensor(x)), **kwargs),
            tdata.DataLoader(tdata.TensorDataset(torch.tensor(x)), **kwargs))


def same_batches(ours, theirs) -> None:
    got, expected = list(ours), list(theirs)
    assert len(got) == len(expected) == len(ours) == len(theirs)
    for g, e in zip(got, expected):
        for a, b in zip(g, e):
            assert_close(a, b)


def test_batch_sampler_and_sampler_arguments_match_torch():
    x = np.arange(26, dtype=np.float32).reshape(13, 2)
    batches = [[4, 0], [12], [3, 3, 5]]
    same_batches(*loaders(x, batch_sampler=batches))
    same_batches(*loaders(x, sampler=[5, 1, 8, 2, 0], batch_size=2, drop_last=True))
    same_batches(*loaders(x, batch_size=None))
    same_batches(*loaders(x, sampler=gdata.SequentialSampler(range(13)), batch_size=4))


def test_random_sampler_through_the_loader_is_reproducible():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    dataset = gdata.TensorDataset(graphc.tensor(x))
    make = lambda: gdata.DataLoader(dataset, batch_size=6, sampler=gdata.RandomSampler(
        dataset, generator=graphc.Generator().manual_seed(0)))
    first = [b[0][:, 0].tolist() for b in make()]
    assert first == [b[0][:, 0].tolist() for b in make()]
    assert sorted(sum(first, [])) == x[:, 0].tolist() and [len(b) for b in first] == [6, 6, 6, 2]


def test_batch_size_none_converts_samples_like_torch():
    samples = [{"image": np.ones((2, 2), np.float32) * i, "label": i, "name": f"s{i}"} for i in range(3)]
    ours, theirs = list(gdata.DataLoader(samples, batch_size=None)), list(tdata.DataLoader(samples, batch_size=None))
    for o, t in zip(ours, theirs):
        assert_close(o["image"], t["image"])
        assert o["label"] == t["label"] and o["name"] == t["name"]
    assert gdata.default_convert((np.int64(3), "a"))[0].dtype is graphc.int64


def numbers(lib, n: int):
    """An IterableDataset of lib (graphc.utils.data or torch.utils.data) yielding range(n), with a length."""
    class Numbers(lib.IterableDataset):
        def __iter__(self):
            return iter(range(n))

        def __len__(self) -> int:
            return n
    return Numbers()


@pytest.mark.parametrize("kwargs", [{"batch_size": 3}, {"batch_size": 3, "drop_last": True}, {"batch_size": None}],
                         ids=str)
def test_iterable_dataset_batches_like_torch(kwargs):
    ours, theirs = gdata.DataLoader(numbers(gdata, 10), **kwargs), tdata.DataLoader(numbers(tdata, 10), **kwargs)
    as_list = lambda b: b if isinstance(b, int) else b.tolist()
    got, expected = [as_list(b) for b in ours], [as_list(b) for b in theirs]
    assert got == expected and len(ours) == len(theirs)


@pytest.mark.parametrize("kwargs", [
    {"num_workers": -1}, {"timeout": -1}, {"prefetch_factor": 2}, {"persistent_workers": True},
    {"shuffle": True, "sampler": [0, 1]}, {"batch_sampler": [[0]], "batch_size": 2},
    {"batch_sampler": [[0]], "drop_last": True}, {"batch_size": None, "drop_last": True}, {"batch_size": 0},
    {"multiprocessing_context": "fork"}], ids=str)
def test_contradictory_options_are_refused_like_torch(kwargs):
    assert_refused_alike(ValueError, lambda: gdata.DataLoader(list(range(4)), **kwargs),
                         lambda: tdata.DataLoader(list(range(4)), **kwargs))


def test_iterable_dataset_refuses_sampling_options_like_torch():
    for kwargs in ({"shuffle": True}, {"sampler": [0]}, {"batch_sampler": [[0]]}):
        for lib in (tdata, gdata):
            with pytest.raises(ValueError, match="DataLoader with IterableDataset: expected unspecified"):
                lib.DataLoader(numbers(lib, 3), **kwargs)


def test_loader_attributes_are_fixed_after_init_like_torch():
    for loader in (gdata.DataLoader([1, 2]), tdata.DataLoader([1, 2])):
        with pytest.raises(ValueError, match="batch_size attribute should not be set after DataLoader is initialized"):
            loader.batch_size = 4
        loader.num_workers = 0  # not fixed
