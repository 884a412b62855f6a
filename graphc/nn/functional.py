"""graphc.nn.functional (import as F): torch's functional API. Composites (softmax, layer norm, cross-entropy,
GELU, attention, batch norm ...) are written with primitive graphc ops, so the compiler sees elementwise, reduction
and matmul nodes it can fuse; nothing here bakes a tensor's size into an op, so compiled graphs serve any batch
size."""
from __future__ import annotations

import math
import warnings

from ..autograd import no_grad
from ..errors import op_error, warn_at_user
from ..ops import elementwise, reduction
from ..ops import nn as nn_ops
from ..ops.creation import arange
from ..ops.elementwise import eq, erf, logical_and, logical_not, masked_fill, ne, rsqrt, sigmoid, tanh
from ..ops.matmul import matmul
from ..ops.reduction import mean, numel_of, sum
from ..ops.view import squeeze, unsqueeze
from ..state import STATE
from ..tensor import Tensor

__all__ = ["linear", "relu", "gelu", "silu", "softmax", "log_softmax", "cross_entropy", "mse_loss", "conv2d",
           "max_pool2d", "avg_pool2d", "layer_norm", "batch_norm", "dropout", "embedding",
           "scaled_dot_product_attention"]

_REDUCTIONS = ("mean", "sum", "none")


def _eager() -> bool:
    """True outside @graphc.compile: values can be read for checks without a graph break."""
    return STATE.capture is None


def _reduce(loss: Tensor, reduction: str, name: str) -> Tensor:
    if reduction == "mean":
        return mean(loss)
    if reduction == "sum":
        return sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _implicit_dim(name: str, input: Tensor, dim: int | None) -> int:
    """torch's legacy choice when F.softmax gets no dim (dim 0 for 0-, 1- and 3-d inputs, else 1), with its warning."""
    if dim is not None:
        return dim
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. Change the call to include dim=X as "
                  "an argument.", UserWarning, stacklevel=3)
    return 0 if input.ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None, *, dtype=None) -> Tensor:
    """torch.nn.functional.softmax: softmax along dim (without dim, torch's legacy implicit choice and warning)."""
    return reduction.softmax(input, _implicit_dim("softmax", input, dim), dtype)


def log_softmax(input: Tensor, dim: int | None = None, *, dtype=None) -> Tensor:
    """torch.nn.functional.log_softmax: log-softmax along dim (without dim, torch's legacy implicit choice)."""
    return reduction.log_softmax(input, _implicit_dim("log_softmax", input, dim), dtype)


def linear(input: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """input @ weight.T + bias."""
    out = matmul(input, weight.T)
    return out if bias is None else out + bias


def relu(input: Tensor, inplace: bool = False) -> Tensor:
    """max(x, 0); inplace=True writes the result into input."""
    out = elementwise.relu(input)
    return input.copy_(out) if inplace else out


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x) with the exact erf form, or torch's tanh approximation (approximate='tanh')."""
    if approximate == "none":
        return input * (erf(input * (1 / math.sqrt(2))) + 1) * 0.5
    if approximate == "tanh":
        return input * (tanh((input + input * input * input * 0.044715) * math.sqrt(2 / math.pi)) + 1) * 0.5
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(input: Tensor) -> Tensor:
    """x * sigmoid(x)."""
    return input * sigmoid(input)


def _check_targets(input: Tensor, target: Tensor, classes: int, ignore_index: int) -> None:
    class_dim = 1 if input.ndim > 1 else 0
    if input.ndim < 1 or tuple(target.shape) != tuple(input.shape[:class_dim]) + tuple(input.shape[class_dim + 1:]):
        raise op_error("cross_entropy", f"target of shape {list(target.shape)} does not match input of shape "
                       f"{list(input.shape)} (expected (N,) for (N, C) logits)", (input, target), ValueError)
    if _eager() and target.numel():
        values = target._host()
        bad = values[((values < 0) | (values >= classes)) & (values != ignore_index)]
        if bad.size:
            raise op_error("cross_entropy", f"target {bad.ravel()[0]} is out of bounds for {classes} classes "
                           f"(valid [0, {classes}) or ignore_index={ignore_index})", (input, target), IndexError)


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits (N, C) or (N, C, d1, ...) against class indices (N,) or (N, d1, ...), or against class
    probabilities shaped like the input, as torch: log_softmax over dim 1; a class index's column is picked with a
    one-hot mask (eq of the target against the class ids), targets equal to ignore_index skipped, and 'mean' divides
    by the (class-weighted) count of the others."""
    class_dim = 1 if input.ndim > 1 else 0
    if reduction not in _REDUCTIONS:
        raise ValueError(f"cross_entropy: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    logp = log_softmax(input, class_dim)
    per_class = (-1,) + (1,) * (input.ndim - 2)  # a (C,) tensor viewed to broadcast along the class dim
    if target.dtype.is_floating_point:
        return _soft_cross_entropy(logp, target, weight, class_dim, per_class, reduction, label_smoothing)
    classes = input.shape[class_dim]
    _check_targets(input, target, classes, ignore_index)
    class_ids = arange(classes, device=input.device)
    class_ids = class_ids.view(per_class) if input.ndim > 2 else class_ids
    keep = ne(target, ignore_index)
    hit = eq(class_ids, unsqueeze(target, class_dim))
    if 0 <= ignore_index < classes:  # else no class id equals ignore_index: ignored rows are all zero already
        hit = logical_and(hit, unsqueeze(keep, class_dim))
    picked = hit.to(input.dtype) if weight is None else hit.to(input.dtype) * weight.view(per_class)
    loss = -sum(picked * logp, dim=class_dim)
    keep = keep.to(input.dtype)
    if label_smoothing > 0:
        all_classes = logp if weight is None else logp * weight.view(per_class)
        smooth = -sum(all_classes, dim=class_dim) * keep
        loss = loss * (1 - label_smoothing) + smooth * label_smoothing / numel_of(input, class_dim)
    if reduction == "none":
        return loss
    return sum(loss) if reduction == "sum" else sum(loss) / (sum(keep) if weight is None else sum(picked))


def _soft_cross_entropy(logp: Tensor, target: Tensor, weight: Tensor | None, class_dim: int, per_class: tuple,
                        reduction: str, label_smoothing: float) -> Tensor:
    """Cross-entropy against class probabilities (target shaped like the input): -sum(target * log_softmax) over the
    class dim, the target smoothed towards uniform; 'mean' divides by the number of samples, as torch does."""
    if tuple(target.shape) != tuple(logp.shape):
        raise op_error("cross_entropy", f"class-probability target of shape {list(target.shape)} does not match "
                       f"input of shape {list(logp.shape)}", (logp, target), ValueError)
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / numel_of(logp, class_dim)
    picked = target * logp if weight is None else target * logp * weight.view(per_class)
    loss = -sum(picked, dim=class_dim)
    return _reduce(loss, reduction, "cross_entropy")


def warn_target_size(input: Tensor, target: Tensor) -> None:
    """torch's warning for a pointwise loss whose target shape differs from the input's: broadcasting them (say
    (N, 1) against (N,)) gives an (N, N) loss that is almost never what was meant. Called by every such loss."""
    if isinstance(target, Tensor) and isinstance(input, Tensor) and tuple(target.shape) != tuple(input.shape):
        warn_at_user(f"Using a target size ({list(target.shape)}) that is different to the input size "
                      f"({list(input.shape)}). This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.")


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Squared difference of input and target (broadcast, with torch's warning when their shapes differ), reduced
    by mean (default), sum or none."""
    warn_target_size(input, target)
    diff = input - target
    return _reduce(diff * diff, reduction, "mse_loss")


def _unbatched(op, input: Tensor, *args) -> Tensor:
    """Run a windowed op of (N, C, H, W) inputs; an unbatched (C, H, W) input runs as a batch of one, as in torch."""
    if input.ndim == 3:
        return squeeze(op(unsqueeze(input, 0), *args), 0)
    return op(input, *args)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """2-d convolution of (N, C, H, W) or unbatched (C, H, W) input with (O, C/groups, KH, KW) weight, plus a
    per-channel bias."""
    out = _unbatched(nn_ops.conv2d, input, weight, stride, padding, dilation, groups)
    return out if bias is None else out + bias.view(-1, 1, 1)


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor:
    """Maximum over each window of an (N, C, H, W) or (C, H, W) input (stride defaults to kernel_size)."""
    if return_indices:
        raise NotImplementedError("max_pool2d: return_indices=True is not supported")
    return _unbatched(nn_ops.max_pool2d, input, kernel_size, stride, padding, dilation, ceil_mode)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None) -> Tensor:
    """Mean over each window of an (N, C, H, W) or (C, H, W) input (stride defaults to kernel_size)."""
    return _unbatched(nn_ops.avg_pool2d, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                      divisor_override)


def _normalize(x: Tensor, dims: tuple[int, ...], eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """(x - mean) / sqrt(var + eps) over dims (biased variance), with the mean and variance (keepdim)."""
    mu = mean(x, dim=dims, keepdim=True)
    centered = x - mu
    var = mean(centered * centered, dim=dims, keepdim=True)
    return centered * rsqrt(var + eps), mu, var


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise over the last len(normalized_shape) dims, then scale and shift."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if _eager() and tuple(input.shape[input.ndim - len(normalized_shape):]) != normalized_shape:
        raise op_error("layer_norm", f"normalized_shape {list(normalized_shape)} does not match the last dims of the "
                       f"input of shape {list(input.shape)}", (input,), ValueError)
    out, _, _ = _normalize(input, tuple(range(input.ndim - len(normalized_shape), input.ndim)), eps)
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None, weight: Tensor | None = None,
               bias: Tensor | None = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Normalise each channel (dim 1) over the batch and spatial dims. Training: batch statistics, and the running
    ones (if given) move towards them by momentum, the variance unbiased, in place; else the running statistics."""
    if input.ndim < 2:
        raise op_error("batch_norm", f"expected an input of at least 2 dims (N, C, ...), got shape "
                       f"{list(input.shape)}", (input,), ValueError)
    dims = (0,) + tuple(range(2, input.ndim))
    channel = (-1,) + (1,) * (input.ndim - 2)
    if training and _eager() and input.numel() == input.shape[1]:
        raise op_error("batch_norm", f"expected more than 1 value per channel when training, got input of shape "
                       f"{list(input.shape)}", (input,), ValueError)
    if training:
        out, mu, var = _normalize(input, dims, eps)
        if running_mean is not None:
            with no_grad():
                n = numel_of(input, dims)
                running_mean.mul_(1 - momentum).add_(mu.detach().view(-1) * momentum)
                running_var.mul_(1 - momentum).add_(var.detach().view(-1) * (n / (n - 1)) * momentum)
    else:
        out = (input - running_mean.view(channel)) * rsqrt(running_var.view(channel) + eps)
    if weight is not None:
        out = out * weight.view(channel)
    return out if bias is None else out + bias.view(channel)


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (training only)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
    if not training or p == 0.0:
        return input
    out = input * nn_ops.dropout_mask(input, p)
    return input.copy_(out) if inplace else out


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of weight picked by integer indices; the padding_idx row gets no gradient."""
    if padding_idx is not None and padding_idx < 0:
        padding_idx += weight.shape[0]
    return nn_ops.embedding(input, weight, padding_idx)


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """softmax(q @ k^T * scale + mask) @ v over the last two dims; a bool attn_mask marks the positions that may
    attend (True), a float one is added to the scores; is_causal hides keys after each query."""
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: pass attn_mask or is_causal, not both")
    if enable_gqa and query.ndim > 2 and query.shape[-3] != key.shape[-3]:
        raise op_error("scaled_dot_product_attention", "enable_gqa=True with fewer key/value heads than query heads "
                       "is not supported; repeat the key and value heads", (query, key, value), NotImplementedError)
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = matmul(query, key.transpose(-2, -1)) * scale
    if is_causal:
        scores = masked_fill(scores, nn_ops.causal_mask(scores), float("-inf"))
    elif attn_mask is not None:
        scores = masked_fill(scores, logical_not(attn_mask), float("-inf")) if attn_mask.dtype.name == "bool" \
            else scores + attn_mask
    weights = softmax(scores, dim=-1)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p)
    return matmul(weights, value)
