"""graphc.utils.data: Dataset, TensorDataset and DataLoader (batching, seeded shuffling, collation), as in torch."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..ops.creation import Generator, default_generator, tensor
from ..tensor import Tensor


class Dataset:
    """A map-style dataset: subclasses define __getitem__(index) and __len__()."""

    def __getitem__(self, index: int) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")


class TensorDataset(Dataset):
    """Samples are rows of the given tensors: dataset[i] is (t[i] for each tensor)."""

    def __init__(self, *tensors: Tensor):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        sizes = [t.shape[0] if t.ndim else None for t in tensors]
        if None in sizes or len(set(sizes)) != 1:
            raise ValueError(f"TensorDataset: the tensors' first dimensions differ (shapes "
                             f"{[list(t.shape) for t in tensors]})")
        self.tensors = tensors

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __len__(self) -> int:
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of dataset at the given indices, in that order."""

    def __init__(self, dataset: Dataset, indices: Sequence[int]):
        self.dataset, self.indices = dataset, list(indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[index]]

    def __len__(self) -> int:
        return len(self.indices)


def random_split(dataset: Dataset, lengths: Sequence[int | float], generator: Generator | None = None) -> list[Subset]:
    """Disjoint random Subsets of the given lengths, or fractions summing to 1 (the remainder goes round-robin to the
    first subsets, as in torch); the permutation comes from `generator` or graphc's default generator."""
    n = len(dataset)
    if all(isinstance(x, float) for x in lengths) and math.isclose(sum(lengths), 1.0):
        counts = [int(math.floor(n * frac)) for frac in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
    else:
        counts = [int(x) for x in lengths]
    if sum(counts) != n or any(c < 0 for c in counts):
        raise ValueError(f"random_split: lengths {list(lengths)} do not split a dataset of {n} samples")
    order = (generator or default_generator)._rng.permutation(n).tolist()
    bounds = np.cumsum([0] + counts).tolist()
    return [Subset(dataset, order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def default_collate(batch: list) -> Any:
    """Merge a list of samples into a batch: tensors and numpy arrays are stacked, numbers become a tensor (floats
    as float64), tuples/lists/dicts are collated field by field (tuples come back as lists), strings stay a list,
    all as torch does."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        shapes = {tuple(x.shape) for x in batch}
        if len(shapes) != 1:
            raise RuntimeError(f"default_collate: cannot stack samples of different shapes {sorted(shapes)}; pass "
                               "a collate_fn (padding, say) to DataLoader for ragged samples")
        from .. import stack
        return stack(batch)
    if isinstance(elem, (np.ndarray, np.generic)):
        return default_collate([tensor(np.asarray(x)) for x in batch])
    if isinstance(elem, (bool, int, float)):
        return tensor(batch, dtype="float64" if isinstance(elem, float) else None)
    if isinstance(elem, str):
        return batch
    if isinstance(elem, Mapping):
        return {key: default_collate([sample[key] for sample in batch]) for key in elem}
    if isinstance(elem, Sequence):
        if len({len(sample) for sample in batch}) != 1:
            raise RuntimeError("default_collate: each sample in the batch must have the same number of fields")
        fields = [default_collate(list(column)) for column in zip(*batch)]
        return type(elem)(*fields) if hasattr(elem, "_fields") else fields
    raise TypeError(f"default_collate: cannot batch samples of type {type(elem).__name__}; pass a collate_fn")


class DataLoader:
    """Iterate over a dataset in batches: optional shuffling (a fresh permutation each epoch, drawn from `generator`
    or graphc's default generator), drop_last for a short final batch, collate_fn to build each batch.
    num_workers and pin_memory are accepted so torch scripts run unchanged: batches are always built in the calling
    process, and CPU tensors need no pinning."""

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False,
                 collate_fn: Callable[[list], Any] | None = None, drop_last: bool = False,
                 generator: Generator | None = None, *, num_workers: int = 0, pin_memory: bool = False):
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, batch_size, shuffle, drop_last
        self.collate_fn = collate_fn if collate_fn is not None else default_collate
        self.generator = generator

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        n = len(self.dataset)
        order = (self.generator or default_generator)._rng.permutation(n) if self.shuffle else np.arange(n)
        whole_rows = type(self.dataset) is TensorDataset and self.collate_fn is default_collate
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            batch = order[start:start + self.batch_size]
            if whole_rows:  # the rows in one gather per tensor: what stacking the samples would give, far faster
                index = tensor(batch)
                yield [t[index] for t in self.dataset.tensors]
            else:
                yield self.collate_fn([self.dataset[i] for i in batch.tolist()])
