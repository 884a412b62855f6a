"""Utilities for batches of variable-length sequences: pad_sequence."""
from __future__ import annotations

from collections.abc import Sequence

from ...errors import op_error
from ...ops.join import cat, stack
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
