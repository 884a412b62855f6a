"""Embedding: a lookup table of num_embeddings rows, initialised N(0, 1) with the padding row zeroed, as in torch."""
from __future__ import annotations

import numpy as np

from ..autograd import no_grad
from ..ops.creation import from_numpy
from ..tensor import Tensor
from . import functional as F
from . import init
from .linear import new_parameter
from .module import Module


class Embedding(Module):
    """Rows of a (num_embeddings, embedding_dim) table picked by integer indices; the padding_idx row gets no
    gradient."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, device=None,
                 dtype=None):
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within num_embeddings "
                                 f"({num_embeddings})")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.weight = new_parameter(num_embeddings, embedding_dim, device=device, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            keep = np.ones((self.num_embeddings, 1), dtype=self.weight.dtype.np)
            keep[self.padding_idx] = 0
            with no_grad():
                self.weight.mul_(from_numpy(keep))

    def forward(self, input: Tensor) -> Tensor:
        return F.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}" + (
            "" if self.padding_idx is None else f", padding_idx={self.padding_idx}")
