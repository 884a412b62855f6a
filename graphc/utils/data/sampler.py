"""Samplers, as torch.utils.data.sampler: which dataset indices a DataLoader visits, in which order and batches.

Random samplers draw from their `generator`, or from graphc's default generator when it is None, so
graphc.manual_seed makes them reproducible (the orders differ from torch's for the same seed; see docs/porting.md)."""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence, Sized

import numpy as np

from ...ops.creation import Generator, default_generator, multinomial, randint, randperm, tensor

__all__ = ["BatchSampler", "RandomSampler", "Sampler", "SequentialSampler", "SubsetRandomSampler",
           "WeightedRandomSampler"]


def permutation(n: int, generator: Generator | None) -> list[int]:
    """A uniformly random ordering of range(n), drawn from generator or graphc's default generator."""
    return randperm(n, generator=generator or default_generator).tolist()


def _positive_int(value, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} should be a positive integer value, but got {name}={value!r}")
    return value


class Sampler:
    """Base class: subclasses define __iter__ (indices, or lists of indices for a batch sampler) and, where the
    length is known, __len__."""

    def __init__(self, data_source: Sized | None = None):
        pass

    def __iter__(self) -> Iterator:
        raise NotImplementedError(f"{type(self).__name__} must define __iter__")


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1, always in that order."""

    def __init__(self, data_source: Sized):
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A fresh random order of the dataset's indices each epoch; with replacement=True, num_samples indices drawn
    uniformly and independently. Without replacement, num_samples beyond len(data_source) continue with further
    permutations (and fewer take a prefix of one), as torch does.
    Raises TypeError for a replacement that is not a bool, ValueError for num_samples that is not a positive int."""

    def __init__(self, data_source: Sized, replacement: bool = False, num_samples: int | None = None,
                 generator: Generator | None = None):
        self.data_source, self.replacement, self._num_samples, self.generator = (data_source, replacement,
                                                                                 num_samples, generator)
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={replacement!r}")
        _positive_int(self.num_samples, "num_samples")

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n, wanted = len(self.data_source), self.num_samples
        if self.replacement:
            yield from randint(0, n, (wanted,), generator=self.generator or default_generator).tolist()
            return
        for _ in range(wanted // n):
            yield from permutation(n, self.generator)
        if wanted % n:
            yield from permutation(n, self.generator)[:wanted % n]

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given indices in a fresh random order each epoch."""

    def __init__(self, indices: Sequence[int], generator: Generator | None = None):
        self.indices, self.generator = indices, generator

    def __iter__(self) -> Iterator[int]:
        for i in permutation(len(self.indices), self.generator):
            yield self.indices[i]

    def __len__(self) -> int:
        return len(self.indices)


class WeightedRandomSampler(Sampler):
    """num_samples indices of range(len(weights)), index i drawn with probability weights[i] / sum(weights); without
    replacement each index is drawn at most once (successive draws among the ones left, in proportion to their
    weights; zero-weight indices come last, once the others are used up, as in torch). Raises ValueError at
    construction for a bad num_samples, replacement or weights shape, and RuntimeError when iterated over weights
    that are negative, not finite or all zero, or (without replacement) fewer than num_samples, with torch's
    messages."""

    def __init__(self, weights: Sequence[float], num_samples: int, replacement: bool = True,
                 generator: Generator | None = None):
        _positive_int(num_samples, "num_samples")
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got replacement={replacement!r}")
        weights = tensor(np.asarray(weights.tolist() if hasattr(weights, "tolist") else weights), dtype="float64")
        if weights.ndim != 1:
            raise ValueError(f"weights should be a 1d sequence but given weights have shape {tuple(weights.shape)}")
        self.weights, self.num_samples, self.replacement, self.generator = weights, num_samples, replacement, generator

    def __iter__(self) -> Iterator[int]:
        yield from multinomial(self.weights, self.num_samples, self.replacement,
                               generator=self.generator or default_generator).tolist()

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler):
    """Lists of batch_size consecutive indices from sampler; the last, shorter one is dropped when drop_last.
    Raises ValueError for a batch_size that is not a positive int or a drop_last that is not a bool."""

    def __init__(self, sampler: Sampler | Iterable[int], batch_size: int, drop_last: bool):
        _positive_int(batch_size, "batch_size")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last!r}")
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last

    def __iter__(self) -> Iterator[list[int]]:
        indices = iter(self.sampler)
        while batch := list(itertools.islice(indices, self.batch_size)):
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
