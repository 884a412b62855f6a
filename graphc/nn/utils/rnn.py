"""Batches of variable-length sequences: pad_sequence, and PackedSequence with pack_padded_sequence,
pad_packed_sequence and pack_sequence (torch's layout, so RNN, LSTM and GRU take packed input)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ...errors import op_error
from ...ops.creation import tensor
from ...ops.join import cat, stack
from ...state import STATE
from ...tensor import Tensor


def pad_sequence(sequences: Sequence[Tensor], batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right") -> Tensor:
    """Stack tensors of shapes (L_i, *) into (max L, B, *) ((B, max L, *) if batch_first), padding each with
    padding_value after (padding_side='right') or before ('left') its values; differentiable. Raises ValueError for
    an empty list, a bad padding_side or mismatched trailing shapes."""
    if padding_side not in ("right", "left"):
        raise ValueError(f"Expected padding_side to be one of left or right, but got {padding_side}.")
    sequences = list(sequences)
    if not sequences:
        raise ValueError("pad_sequence: received an empty list of sequences")
    trailing = tuple(sequences[0].shape[1:])
    if any(tuple(s.shape[1:]) != trailing for s in sequences):
        raise op_error("pad_sequence", "all sequences must have the same trailing dimensions "
                       f"{list(trailing)}", tuple(sequences), ValueError)
    longest = max(s.shape[0] for s in sequences)
    padded = []
    for s in sequences:
        fill = s.new_full((longest - s.shape[0],) + trailing, padding_value)
        padded.append(cat([s, fill] if padding_side == "right" else [fill, s]))
    return stack(padded, 1 if not batch_first else 0)


class PackedSequence(NamedTuple):
    """Variable-length sequences packed time step by time step, as torch's: `data` holds, for each step t, the
    batch_sizes[t] sequences still running (longest first); sorted_indices orders the batch by decreasing length
    (None when the input was already sorted) and unsorted_indices undoes it."""

    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Tensor | None = None
    unsorted_indices: Tensor | None = None


def _host_lengths(lengths) -> np.ndarray:
    values = lengths._host() if isinstance(lengths, Tensor) else np.asarray(lengths)
    return values.astype(np.int64).reshape(-1)


def pack_padded_sequence(input: Tensor, lengths, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded (T, B, *) batch ((B, T, *) if batch_first) of sequences with the given lengths (a list or a
    CPU tensor). enforce_sorted requires decreasing lengths; otherwise the batch is sorted and the permutation kept.
    Raises RuntimeError for unsorted lengths with enforce_sorted, or a length that is 0 or beyond T."""
    lengths = _host_lengths(lengths)
    if batch_first:
        input = input.transpose(0, 1)
    if len(lengths) != input.shape[1]:
        raise op_error("pack_padded_sequence", f"expected {input.shape[1]} lengths for a batch of {input.shape[1]}, "
                       f"got {len(lengths)}", (input,), RuntimeError)
    if lengths.size and (lengths.min() <= 0 or lengths.max() > input.shape[0]):
        raise op_error("pack_padded_sequence", f"lengths must be in [1, {input.shape[0]}] (all sequences need at "
                       f"least one element), got {lengths.tolist()}", (input,), RuntimeError)
    sorted_indices = unsorted_indices = None
    if enforce_sorted:
        if (np.diff(lengths) > 0).any():
            raise op_error("pack_padded_sequence", "`lengths` array must be sorted in decreasing order when "
                           "`enforce_sorted` is True. You can pass `enforce_sorted=False` to pack_padded_sequence "
                           "and/or pack_sequence to sidestep this requirement if you do not need ONNX "
                           "exportability.", (input,), RuntimeError)
    else:
        order = np.argsort(-lengths, kind="stable")
        sorted_indices, unsorted_indices = tensor(order), tensor(np.argsort(order))
        input, lengths = input[:, sorted_indices], lengths[order]
    batch_sizes = tensor((lengths[None, :] > np.arange(lengths.max())[:, None]).sum(1))
    return pack_sorted(input, *_derived(batch_sizes, sorted_indices, unsorted_indices))


def _derived(*tensors: Tensor | None) -> tuple:
    """The tensors a packing made from the lengths or batch sizes: under graphc.compile, Python may read their
    values (the trace guards the values they follow from: ints passed by value, a small tensor's values)."""
    if STATE.capture is not None:
        for t in tensors:
            if t is not None:
                STATE.capture.note_derived(t)
    return tensors


def pack_sorted(input: Tensor, batch_sizes: Tensor, sorted_indices: Tensor | None,
                unsorted_indices: Tensor | None) -> PackedSequence:
    """Pack a (T, B, *) batch already in sorted order with the given layout (how RNNs pack their output like their
    input)."""
    data = cat([input[t, :int(size)] for t, size in enumerate(_host_lengths(batch_sizes))])
    return PackedSequence(data, batch_sizes, sorted_indices, unsorted_indices)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False, padding_value: float = 0.0,
                        total_length: int | None = None) -> tuple[Tensor, Tensor]:
    """Undo pack_padded_sequence: the padded (T, B, *) batch ((B, T, *) if batch_first) in the original batch order,
    and the lengths (an int64 tensor). total_length pads T further; ValueError if it is below the longest."""
    batch_sizes = _host_lengths(sequence.batch_sizes)
    steps, batch = len(batch_sizes), int(batch_sizes[0])
    if total_length is not None and total_length < steps:
        raise ValueError(f"Expected total_length to be at least the length of the longest sequence ({steps}), but "
                         f"got total_length={total_length}")
    data, rows, offset = sequence.data, [], 0
    trailing = tuple(data.shape[1:])
    for size in batch_sizes:
        size = int(size)
        step = data[offset:offset + size]
        rows.append(step if size == batch else cat([step, data.new_full((batch - size,) + trailing, padding_value)]))
        offset += size
    rows += [data.new_full((batch,) + trailing, padding_value)] * ((total_length or steps) - steps)
    padded = stack(rows)
    lengths = (batch_sizes[None, :] > np.arange(batch)[:, None]).sum(1)
    if sequence.unsorted_indices is not None:
        padded = padded[:, sequence.unsorted_indices]
        lengths = lengths[sequence.unsorted_indices._host()]
    return (padded.transpose(0, 1) if batch_first else padded), _derived(tensor(lengths))[0]


def pack_sequence(sequences: Sequence[Tensor], enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of (L_i, *) tensors: pad_sequence then pack_padded_sequence."""
    return pack_padded_sequence(pad_sequence(sequences), [s.shape[0] for s in sequences],
                                enforce_sorted=enforce_sorted)
