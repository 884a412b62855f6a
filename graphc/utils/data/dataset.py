"""Datasets, as torch.utils.data.dataset: map-style (Dataset, TensorDataset, Subset, ConcatDataset), iterable
(IterableDataset, ChainDataset), and random_split."""
from __future__ import annotations

import bisect
import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ...ops.creation import Generator
from ...tensor import Tensor
from .sampler import permutation

__all__ = ["ChainDataset", "ConcatDataset", "Dataset", "IterableDataset", "Subset", "TensorDataset", "random_split"]


class Dataset:
    """A map-style dataset: subclasses define __getitem__(index) and, for samplers and len(DataLoader), __len__().
    `a + b` is ConcatDataset([a, b])."""

    def __getitem__(self, index) -> Any:
        raise NotImplementedError(f"Subclasses of Dataset should implement __getitem__ ({type(self).__name__} does "
                                  "not)")

    def __add__(self, other: Dataset) -> ConcatDataset:
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """A dataset read as a stream: subclasses define __iter__(). With DataLoader workers, each worker iterates its own
    copy; get_worker_info() tells a copy which share to yield. `a + b` is ChainDataset([a, b])."""

    def __iter__(self) -> Iterator[Any]:
        raise NotImplementedError(f"Subclasses of IterableDataset should implement __iter__ ({type(self).__name__} "
                                  "does not)")

    def __add__(self, other: Dataset) -> ChainDataset:
        return ChainDataset([self, other])


class TensorDataset(Dataset):
    """Samples are rows of the given tensors: dataset[i] is (t[i] for each tensor).
    Raises AssertionError (as torch does) when the tensors' first dimensions differ."""

    def __init__(self, *tensors: Tensor):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        sizes = [t.shape[0] if t.ndim else None for t in tensors]
        if None in sizes or len(set(sizes)) != 1:
            raise AssertionError(f"Size mismatch between tensors: their first dimensions differ (shapes "
                                 f"{[list(t.shape) for t in tensors]})")
        self.tensors = tensors

    def __getitem__(self, index) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of dataset at the given indices, in that order: subset[i] is dataset[indices[i]]."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices: list[int]) -> list:
        """The samples at several indices (what DataLoader asks for one batch)."""
        inner = [self.indices[i] for i in indices]
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__(inner)
        return [self.dataset[i] for i in inner]

    def __len__(self) -> int:
        return len(self.indices)


class ConcatDataset(Dataset):
    """Map-style datasets one after another: index i falls in the dataset whose cumulative size first exceeds it.
    Raises AssertionError for an empty list or an IterableDataset (as torch does); a negative index counts from the
    end, and ValueError when it reaches before the start."""

    def __init__(self, datasets: Iterable[Dataset]):
        self.datasets = list(datasets)
        if not self.datasets:
            raise AssertionError("datasets should not be an empty iterable")
        if any(isinstance(d, IterableDataset) for d in self.datasets):
            raise AssertionError("ConcatDataset does not support IterableDataset")
        self.cumulative_sizes = [int(n) for n in _running_sum(len(d) for d in self.datasets)]

    def __len__(self) -> int:
        return self.cumulative_sizes[-1]

    def __getitem__(self, idx: int):
        if idx < 0:
            if -idx > len(self):
                raise ValueError(f"absolute value of index should not exceed dataset length (index {idx}, length "
                                 f"{len(self)})")
            idx += len(self)
        which = bisect.bisect_right(self.cumulative_sizes, idx)
        if which == len(self.datasets):
            raise IndexError(f"index {idx} is out of range for a ConcatDataset of length {len(self)}")
        return self.datasets[which][idx - (self.cumulative_sizes[which - 1] if which else 0)]


class ChainDataset(IterableDataset):
    """Iterable datasets one after another. Raises AssertionError when iterated (or measured) if one is not an
    IterableDataset, as torch does."""

    def __init__(self, datasets: Iterable[Dataset]):
        self.datasets = datasets

    def __iter__(self) -> Iterator[Any]:
        for d in self.datasets:
            _require_iterable(d)
            yield from d

    def __len__(self) -> int:
        return sum(len(_require_iterable(d)) for d in self.datasets)


def _require_iterable(d: Dataset) -> Dataset:
    if not isinstance(d, IterableDataset):
        raise AssertionError("ChainDataset only supports IterableDataset")
    return d


def _running_sum(values: Iterable[int]) -> list[int]:
    out, total = [], 0
    for v in values:
        total += v
        out.append(total)
    return out


def random_split(dataset: Dataset, lengths: Sequence[int | float], generator: Generator | None = None) -> list[Subset]:
    """Disjoint random Subsets of the given lengths, or of fractions summing to 1 (floor(n * fraction) each, the
    remainder handed out one by one from the first subset, as torch does; an empty split warns). The permutation is
    drawn from generator, or graphc's default generator.
    Raises ValueError when a fraction is outside [0, 1] or the lengths do not add up to len(dataset)."""
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        for i, fraction in enumerate(lengths):
            if not 0 <= fraction <= 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1 (got {fraction})")
        counts = [math.floor(n * fraction) for fraction in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        for i, count in enumerate(counts):
            if count == 0:
                warnings.warn(f"Length of split at index {i} is 0. This might result in an empty dataset.",
                              UserWarning, stacklevel=2)
    else:
        counts = list(lengths)
    if sum(counts) != n:
        raise ValueError(f"Sum of input lengths does not equal the length of the input dataset! (lengths "
                         f"{list(lengths)}, dataset of {n} samples)")
    order = permutation(n, generator)
    ends = _running_sum(counts)
    return [Subset(dataset, order[end - count:end]) for end, count in zip(ends, counts)]
