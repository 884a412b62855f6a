"""MultiheadAttention with torch's parameters (in_proj_weight, in_proj_bias, out_proj; q/k/v_proj_weight when the key
and value widths differ), initialisation, layouts and masks, written with graphc matmuls and softmax."""
from __future__ import annotations

import math

from ..errors import op_error
from ..ops.creation import zeros_like
from ..ops.elementwise import masked_fill
from ..ops.join import cat
from ..ops.matmul import matmul
from ..ops.view import squeeze, unsqueeze
from ..tensor import Tensor
from . import functional as F
from . import init
from .linear import Linear, new_parameter
from .module import Module


def apply_mask(scores: Tensor, mask: Tensor | None) -> Tensor:
    """torch.nn's attention-mask convention: a bool mask hides the positions that are True (-inf before the
    softmax), a float mask is added to the scores."""
    if mask is None:
        return scores
    return masked_fill(scores, mask, float("-inf")) if mask.dtype.name == "bool" else scores + mask


def _extend(mask: Tensor | None) -> Tensor | None:
    """A mask with one more key column that hides nothing (False or 0.0), for an added key."""
    return None if mask is None else cat([mask, zeros_like(mask[..., :1])], -1)


class MultiheadAttention(Module):
    """Multi-head attention (Vaswani et al. 2017): project query, key and value, attend per head with
    softmax(q k^T / sqrt(head_dim) + masks), concatenate the heads and project with out_proj. forward returns
    (attn_output, attn_weights averaged over heads, or per head, or None when need_weights=False)."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim: int | None = None,
                 vdim: int | None = None, batch_first: bool = False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} and "
                             f"num_heads={num_heads} instead")
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim must be divisible by num_heads (embed_dim={embed_dim}, "
                             f"num_heads={num_heads})")
        self.embed_dim, self.num_heads, self.dropout, self.batch_first = embed_dim, num_heads, dropout, batch_first
        self.kdim, self.vdim = kdim or embed_dim, vdim or embed_dim
        self.head_dim = embed_dim // num_heads
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = new_parameter(3 * embed_dim, embed_dim, device=device, dtype=dtype)
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = new_parameter(embed_dim, embed_dim, device=device, dtype=dtype)
            self.k_proj_weight = new_parameter(embed_dim, self.kdim, device=device, dtype=dtype)
            self.v_proj_weight = new_parameter(embed_dim, self.vdim, device=device, dtype=dtype)
            self.register_parameter("in_proj_weight", None)
        self.register_parameter("in_proj_bias", new_parameter(3 * embed_dim, device=device, dtype=dtype)
                                if bias else None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype)
        if add_bias_kv:
            self.bias_k = new_parameter(1, 1, embed_dim, device=device, dtype=dtype)
            self.bias_v = new_parameter(1, 1, embed_dim, device=device, dtype=dtype)
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """torch's scheme: xavier_uniform_ projection weights, zero biases (out_proj keeps Linear's weight init)."""
        for w in (self.in_proj_weight,) if self._qkv_same_embed_dim else \
                (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
            init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    def _projections(self) -> tuple[tuple[Tensor, ...], tuple]:
        weights = self.in_proj_weight.chunk(3) if self._qkv_same_embed_dim else \
            (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        biases = (None, None, None) if self.in_proj_bias is None else self.in_proj_bias.chunk(3)
        return weights, biases

    def _check(self, query: Tensor, key: Tensor, value: Tensor) -> None:
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise op_error("MultiheadAttention", f"query, key and value must all be 2-D (unbatched) or 3-D "
                           f"(batched), got shapes {list(query.shape)}, {list(key.shape)}, {list(value.shape)}",
                           (query, key, value), RuntimeError)
        for t, width, name in ((query, self.embed_dim, "query"), (key, self.kdim, "key"), (value, self.vdim, "value")):
            if t.shape[-1] != width:
                raise op_error("MultiheadAttention", f"was expecting embedding dimension of {width} for the {name}, "
                               f"but got {t.shape[-1]}", (query, key, value), RuntimeError)
        if tuple(key.shape[:-1]) != tuple(value.shape[:-1]):
            raise op_error("MultiheadAttention", f"key shape {list(key.shape)} does not match value shape "
                           f"{list(value.shape)}", (key, value), RuntimeError)

    def _mask(self, attn_mask: Tensor | None, key_padding_mask: Tensor | None, batch: int, tgt_len: int,
              src_len: int) -> tuple[Tensor | None, Tensor | None]:
        """The masks viewed to broadcast against (N, heads, L, S) scores, after torch's shape checks."""
        if attn_mask is not None:
            if attn_mask.ndim == 2 and tuple(attn_mask.shape) != (tgt_len, src_len):
                raise op_error("MultiheadAttention", f"The shape of the 2D attn_mask is {list(attn_mask.shape)}, "
                               f"but should be {(tgt_len, src_len)}.", (attn_mask,), RuntimeError)
            if attn_mask.ndim == 3:
                expected = (batch * self.num_heads, tgt_len, src_len)
                if tuple(attn_mask.shape) != expected:
                    raise op_error("MultiheadAttention", f"The shape of the 3D attn_mask is "
                                   f"{list(attn_mask.shape)}, but should be {expected}.", (attn_mask,), RuntimeError)
                attn_mask = attn_mask.reshape(-1, self.num_heads, tgt_len, src_len)
            elif attn_mask.ndim != 2:
                raise op_error("MultiheadAttention", f"attn_mask's dimension {attn_mask.ndim} is not supported",
                               (attn_mask,), RuntimeError)
        if key_padding_mask is not None:
            if tuple(key_padding_mask.shape) != (batch, src_len):
                raise op_error("MultiheadAttention", f"expecting key_padding_mask shape of {(batch, src_len)}, but "
                               f"got {list(key_padding_mask.shape)}", (key_padding_mask,), RuntimeError)
            key_padding_mask = unsqueeze(unsqueeze(key_padding_mask, 1), 1)
        return attn_mask, key_padding_mask

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        """query (L, N, E) ((N, L, E) if batch_first, or unbatched (L, E)), key (S, N, kdim), value (S, N, vdim);
        key_padding_mask (N, S) and attn_mask (L, S) or (N * num_heads, L, S), bool (True hides) or float (added).
        is_causal is a hint that attn_mask is causal; it requires attn_mask, as in torch."""
        if is_causal and attn_mask is None:
            raise RuntimeError("Need attn_mask if specifying the is_causal hint. You may use the Transformer module "
                               "method `generate_square_subsequent_mask` to create this mask.")
        self._check(query, key, value)
        batched = query.ndim == 3
        if not batched:
            query, key, value = unsqueeze(query, 1), unsqueeze(key, 1), unsqueeze(value, 1)
            key_padding_mask = None if key_padding_mask is None else unsqueeze(key_padding_mask, 0)
        elif self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        tgt_len, batch, src_len = query.shape[0], query.shape[1], key.shape[0]
        attn_mask, key_padding_mask = self._mask(attn_mask, key_padding_mask, batch, tgt_len, src_len)
        (w_q, w_k, w_v), (b_q, b_k, b_v) = self._projections()

        def heads(x: Tensor) -> Tensor:  # (T, N, E) -> (N, heads, T, head_dim)
            return x.reshape(x.shape[0], x.shape[1], self.num_heads, self.head_dim).permute(1, 2, 0, 3)

        q = heads(F.linear(query, w_q, b_q) * (1.0 / math.sqrt(self.head_dim)))
        k, v = F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)
        if self.bias_k is not None:  # one more key and value, learnt, that every query sees
            k, v = cat([k, self.bias_k.expand(1, batch, -1)]), cat([v, self.bias_v.expand(1, batch, -1)])
            attn_mask, key_padding_mask = _extend(attn_mask), _extend(key_padding_mask)
        k, v = heads(k), heads(v)
        if self.add_zero_attn:  # and a key and value of zeros
            k, v = cat([k, zeros_like(k[:, :, :1])], 2), cat([v, zeros_like(v[:, :, :1])], 2)
            attn_mask, key_padding_mask = _extend(attn_mask), _extend(key_padding_mask)
        scores = apply_mask(apply_mask(matmul(q, k.transpose(-2, -1)), attn_mask), key_padding_mask)
        weights = F.dropout(F.softmax(scores, dim=-1), self.dropout, self.training)
        out = matmul(weights, v).permute(2, 0, 1, 3).reshape(tgt_len, batch, self.embed_dim)
        out = self.out_proj(out)
        if not batched:
            out = squeeze(out, 1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        weights = weights.mean(dim=1) if average_attn_weights else weights
        return out, (weights if batched else squeeze(weights, 0))

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, " \
               f"batch_first={self.batch_first}"
