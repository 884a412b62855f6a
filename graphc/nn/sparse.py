"""Embedding and EmbeddingBag: a lookup table of num_embeddings rows, initialised N(0, 1) with the padding row
zeroed, as in torch."""
from __future__ import annotations

import numpy as np

from ..autograd import no_grad
from ..ops.creation import from_numpy
from ..tensor import Tensor
from . import functional as F
from . import init
from .linear import new_parameter
from .module import Module, Parameter


def _set_table(module: Module, weight: Tensor | None, freeze: bool, device, dtype) -> None:
    """module.weight: a new (num_embeddings, embedding_dim) table initialised by reset_parameters, or the given
    one (frozen if told). Raises ValueError for a given table of another shape."""
    if weight is None:
        module.weight = new_parameter(module.num_embeddings, module.embedding_dim, device=device, dtype=dtype)
        module.reset_parameters()
        return
    if tuple(weight.shape) != (module.num_embeddings, module.embedding_dim):
        raise ValueError("Shape of weight does not match num_embeddings and embedding_dim")
    module.weight = Parameter(weight, requires_grad=not freeze)


class Embedding(Module):
    """Rows of a (num_embeddings, embedding_dim) table picked by integer indices; the padding_idx row gets no
    gradient. sparse=True is accepted and gives the same (dense) gradient; max_norm and scale_grad_by_freq raise
    NotImplementedError at forward."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight: Tensor | None = None, _freeze: bool = False, device=None, dtype=None):
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f"Embedding: padding_idx {padding_idx} must be within num_embeddings "
                                 f"({num_embeddings})")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.max_norm, self.norm_type, self.sparse = max_norm, norm_type, sparse
        self.scale_grad_by_freq = scale_grad_by_freq
        _set_table(self, _weight, _freeze, device, dtype)

    @classmethod
    def from_pretrained(cls, embeddings: Tensor, freeze: bool = True, padding_idx: int | None = None,
                        max_norm: float | None = None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> Embedding:
        """An Embedding whose table is the 2-d `embeddings` (shared, not copied), frozen unless freeze=False."""
        if embeddings.ndim != 2:
            raise ValueError("Embeddings parameter is expected to be 2-dimensional")
        rows, cols = embeddings.shape
        return cls(rows, cols, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse, _weight=embeddings,
                   _freeze=freeze)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            keep = np.ones((self.num_embeddings, 1), dtype=self.weight.dtype.np)
            keep[self.padding_idx] = 0
            with no_grad():
                self.weight.mul_(from_numpy(keep))

    def forward(self, input: Tensor) -> Tensor:
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}" + (
            "" if self.padding_idx is None else f", padding_idx={self.padding_idx}")


class EmbeddingBag(Module):
    """Sums or means of bags of rows of a (num_embeddings, embedding_dim) table (N(0, 1) init, the padding row
    zeroed): F.embedding_bag over the table; mode='max', max_norm and scale_grad_by_freq raise NotImplementedError
    at forward."""

    def __init__(self, num_embeddings: int, embedding_dim: int, max_norm: float | None = None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, mode: str = "mean", sparse: bool = False,
                 _weight: Tensor | None = None, include_last_offset: bool = False, padding_idx: int | None = None,
                 device=None, dtype=None):
        super().__init__()
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError("padding_idx must be within num_embeddings")
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.max_norm, self.norm_type, self.scale_grad_by_freq = max_norm, norm_type, scale_grad_by_freq
        self.mode, self.sparse, self.include_last_offset = mode, sparse, include_last_offset
        _set_table(self, _weight, False, device, dtype)

    reset_parameters = Embedding.reset_parameters

    def forward(self, input: Tensor, offsets: Tensor | None = None,
                per_sample_weights: Tensor | None = None) -> Tensor:
        return F.embedding_bag(input, self.weight, offsets, self.max_norm, self.norm_type, self.scale_grad_by_freq,
                               self.mode, self.sparse, per_sample_weights, self.include_last_offset,
                               self.padding_idx)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, mode={self.mode!r}" + (
            "" if self.padding_idx is None else f", padding_idx={self.padding_idx}")
