"""Collation, as torch.utils.data's default_collate and default_convert: samples into batches."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ...ops.creation import as_tensor, tensor
from ...tensor import Tensor

__all__ = ["default_collate", "default_convert"]


def _numeric_array(x) -> bool:
    """A numpy array or scalar holding numbers (not strings or objects, which collate leaves alone or refuses)."""
    return isinstance(x, (np.ndarray, np.generic)) and np.asarray(x).dtype.kind in "biuf"


def default_collate(batch: list) -> Any:
    """Merge a list of samples into a batch, as torch does: tensors and numpy arrays are stacked; Python ints and
    bools become an int64 / bool tensor, floats a float64 one; dicts, lists and tuples are collated field by field
    (tuples come back as lists, named tuples as themselves); strings stay a list.
    Raises RuntimeError for tensors of different shapes or sequences of different lengths, TypeError for anything
    else (pass a collate_fn then)."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        shapes = {tuple(x.shape) for x in batch}
        if len(shapes) != 1:
            raise RuntimeError(f"default_collate: stack expects each tensor to be equal size, got shapes "
                               f"{sorted(shapes)}; pass a collate_fn (padding, say) to DataLoader for ragged samples")
        from ...ops.join import stack
        return stack(batch)
    if _numeric_array(elem):
        return default_collate([tensor(np.asarray(x)) for x in batch])
    if isinstance(elem, (bool, int, float)):
        return tensor(batch, dtype="float64" if isinstance(elem, float) else None)
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, Mapping):
        return {key: default_collate([sample[key] for sample in batch]) for key in elem}
    if isinstance(elem, Sequence) and not isinstance(elem, np.ndarray):
        if len({len(sample) for sample in batch}) != 1:
            raise RuntimeError("default_collate: each element in list of batch should be of equal size")
        fields = [default_collate(list(column)) for column in zip(*batch)]
        return type(elem)(*fields) if hasattr(elem, "_fields") else fields
    raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found "
                    f"{getattr(elem, 'dtype', type(elem).__name__)}")


def default_convert(data: Any) -> Any:
    """What DataLoader(batch_size=None) applies to each sample, as torch does: numeric numpy arrays and scalars
    become tensors, inside dicts, lists and tuples too; everything else is returned as it is."""
    if _numeric_array(data):
        return as_tensor(np.asarray(data))
    if isinstance(data, Mapping):
        return {key: default_convert(value) for key, value in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, (list, tuple)):
        return type(data)(default_convert(d) for d in data)
    return data
