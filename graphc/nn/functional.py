"""graphc.nn.functional (import as F): torch's functional API. Composites (softmax, layer norm, cross-entropy,
GELU, attention, batch norm ...) are written with primitive graphc ops, so the compiler sees elementwise, reduction
and matmul nodes it can fuse; nothing here bakes a tensor's size into an op, so compiled graphs serve any batch
size."""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..amp.autocast_mode import FP32, FP32_CUDA, LOWER, autocast_policy
from ..autograd import no_grad
from ..dispatch import check_tensor_arguments
from ..errors import op_error, warn_at_user
from ..ops import attention as attention_ops
from ..ops import elementwise, meta, reduction
from ..ops import nn as nn_ops
from ..ops.creation import arange, tensor
from ..ops.elementwise import (
    abs,
    clamp,
    eq,
    exp,
    gt,
    log,
    log1p,
    logical_and,
    logical_not,
    lt,
    masked_fill,
    maximum,
    minimum,
    ne,
    rsqrt,
    sigmoid,
    tanh,
    where,
)
from ..ops.matmul import matmul
from ..ops.reduction import mean, numel_of, sum
from ..ops.view import squeeze, unsqueeze
from ..state import STATE
from ..tensor import Tensor

__all__ = ["linear", "relu", "gelu", "silu", "leaky_relu", "elu", "softplus", "softmax", "log_softmax",
           "cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "mse_loss",
           "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "conv1d", "conv2d", "conv_transpose2d", "max_pool2d",
           "avg_pool2d", "adaptive_avg_pool2d", "layer_norm", "group_norm", "batch_norm", "dropout", "embedding",
           "scaled_dot_product_attention", "one_hot", "normalize", "pad"]

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


@autocast_policy(LOWER)
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
        return elementwise.gelu(input)
    if approximate == "tanh":
        return input * (tanh((input + input * input * input * 0.044715) * math.sqrt(2 / math.pi)) + 1) * 0.5
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def _inplace(input: Tensor, out: Tensor, inplace: bool) -> Tensor:
    return input.copy_(out) if inplace else out


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x)."""
    return _inplace(input, input * sigmoid(input), inplace)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x where x > 0, else negative_slope * x."""
    return _inplace(input, where(gt(input, 0), input, input * negative_slope), inplace)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x where x > 0, else alpha * (exp(x) - 1); exp only sees min(x, 0), so no inf reaches the gradient."""
    return _inplace(input, where(gt(input, 0), input, (exp(minimum(input, 0.0)) - 1) * alpha), inplace)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold (torch's linear regime)."""
    scaled = input * beta
    return where(gt(scaled, threshold), input, log1p(exp(minimum(scaled, threshold))) / beta)


def _legacy_reduction(size_average: bool | None, reduce: bool | None, reduction: str) -> str:
    """torch's deprecated size_average/reduce arguments mapped to a reduction, with torch's warning."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    legacy = "mean" if size_average and reduce else "sum" if reduce else "none"
    warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{legacy}' instead.",
                  UserWarning, stacklevel=3)
    return legacy


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_targets(name: str, input: Tensor, target: Tensor, classes: int, ignore_index: int) -> None:
    """Class-index targets: (N,) for (N, C) input, (N, d1, ...) for (N, C, d1, ...), () for (C,); in range."""
    class_dim = 1 if input.ndim > 1 else 0
    if input.ndim < 1 or tuple(target.shape) != tuple(input.shape[:class_dim]) + tuple(input.shape[class_dim + 1:]):
        raise op_error(name, f"Expected input batch_size and target shape to match: target of shape "
                       f"{list(target.shape)} does not match input of shape {list(input.shape)} (expected (N,) for "
                       "(N, C) input)", (input, target), ValueError)
    if target.dtype.is_floating_point:
        raise op_error(name, f"expected class indices of an integer dtype, got {target.dtype.name}", (input, target),
                       RuntimeError)
    if _eager() and target.numel():
        values = target._host()
        bad = values[((values < 0) | (values >= classes)) & (values != ignore_index)]
        if bad.size:
            raise op_error(name, f"target {bad.ravel()[0]} is out of bounds for {classes} classes "
                           f"(valid [0, {classes}) or ignore_index={ignore_index})", (input, target), IndexError)


def _picked(name: str, input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int) -> Tensor:
    """One-hot mask of each target's class (eq of the target against the class ids), zero for ignored targets and
    scaled by the class weight: input's shape, so sum(picked * input) over the class dim picks input[n, target[n]]."""
    class_dim = 1 if input.ndim > 1 else 0
    classes = input.shape[class_dim]
    _check_targets(name, input, target, classes, ignore_index)
    class_ids = arange(classes, device=input.device)
    class_ids = class_ids.view(_per_class(input)) if input.ndim > 2 else class_ids
    hit = eq(class_ids, unsqueeze(target, class_dim))
    if 0 <= ignore_index < classes:  # else no class id equals ignore_index: ignored rows are all zero already
        hit = logical_and(hit, unsqueeze(ne(target, ignore_index), class_dim))
    return hit.to(input.dtype) if weight is None else hit.to(input.dtype) * weight.view(_per_class(input))


def _per_class(input: Tensor) -> tuple:
    """The view of a (C,) tensor that broadcasts along input's class dim (dim 1, or dim 0 for a 1-d input)."""
    return (-1,) + (1,) * (input.ndim - 2) if input.ndim > 1 else (-1,)


@autocast_policy(FP32)
def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
             ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities (N, C) or (N, C, d1, ...) (or (C,)) at class indices (N, ...):
    -weight[t] * input[n, t]; targets equal to ignore_index count zero, and 'mean' divides by the summed weights of
    the others (torch.nn.functional.nll_loss). Raises ValueError on a target shape mismatch, IndexError on an
    out-of-range class (eagerly)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction("nll_loss", reduction)
    picked = _picked("nll_loss", input, target, weight, ignore_index)
    loss = -sum(picked * input, dim=1 if input.ndim > 1 else 0)
    return _reduce_picked(loss, picked, target, weight, ignore_index, reduction)


def _reduce_picked(loss: Tensor, picked: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
                   reduction: str) -> Tensor:
    """'mean' of a class-index loss divides by the summed class weights of the targets not ignored (without
    weights, their count: a reduction over N, not over the one-hot N x C mask)."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return sum(loss)
    return sum(loss) / (sum(ne(target, ignore_index).to(loss.dtype)) if weight is None else sum(picked))


@autocast_policy(FP32)
def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None, size_average: bool | None = None,
                  ignore_index: int = -100, reduce: bool | None = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits (N, C) or (N, C, d1, ...) against class indices (N,) or (N, d1, ...), or against class
    probabilities shaped like the input (torch.nn.functional.cross_entropy): nll_loss of log_softmax over the class
    dim, mixed with label_smoothing times the mean of -(weighted) log_softmax over the classes; 'mean' divides by the
    summed class weights of the targets not ignored, as torch 2.13 does."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction("cross_entropy", reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    class_dim = 1 if input.ndim > 1 else 0
    logp = log_softmax(input, class_dim)
    if target.dtype.is_floating_point:
        return _soft_cross_entropy(logp, target, weight, class_dim, reduction, label_smoothing)
    picked = _picked("cross_entropy", logp, target, weight, ignore_index)
    loss = -sum(picked * logp, dim=class_dim)
    if label_smoothing > 0:
        weighted = logp if weight is None else logp * weight.view(_per_class(input))
        smooth = masked_fill(-sum(weighted, dim=class_dim), eq(target, ignore_index), 0.0)
        loss = loss * (1 - label_smoothing) + smooth * (label_smoothing / numel_of(input, class_dim))
    return _reduce_picked(loss, picked, target, weight, ignore_index, reduction)


def _soft_cross_entropy(logp: Tensor, target: Tensor, weight: Tensor | None, class_dim: int, reduction: str,
                        label_smoothing: float) -> Tensor:
    """Cross-entropy against class probabilities (target shaped like the input): -sum(target * log_softmax) over the
    class dim, the target smoothed towards uniform; 'mean' divides by the number of samples, as torch does."""
    if tuple(target.shape) != tuple(logp.shape):
        raise op_error("cross_entropy", f"class-probability target of shape {list(target.shape)} does not match "
                       f"input of shape {list(logp.shape)}", (logp, target), ValueError)
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / numel_of(logp, class_dim)
    picked = target * logp if weight is None else target * logp * weight.view(_per_class(logp))
    return _reduce(-sum(picked, dim=class_dim), reduction, "cross_entropy")


def warn_target_size(input: Tensor, target: Tensor) -> None:
    """torch's warning for a pointwise loss whose target shape differs from the input's: broadcasting them (say
    (N, 1) against (N,)) gives an (N, N) loss that is almost never what was meant. Called by every such loss."""
    if isinstance(target, Tensor) and isinstance(input, Tensor) and tuple(target.shape) != tuple(input.shape):
        warn_at_user(f"Using a target size ({list(target.shape)}) that is different to the input size "
                      f"({list(input.shape)}). This will likely lead to incorrect results due to broadcasting. "
                      "Please ensure they have the same size.")


def _same_size(name: str, input: Tensor, target: Tensor) -> None:
    """Losses that torch refuses for differently sized input and target (the BCE family)."""
    if tuple(input.shape) != tuple(target.shape):
        raise op_error(name, f"Using a target size ({list(target.shape)}) that is different to the input size "
                       f"({list(input.shape)}) is not supported; please ensure they have the same size",
                       (input, target), ValueError)


def _weighted(loss: Tensor, weight: Tensor | None, reduction: str, name: str) -> Tensor:
    return _reduce(loss if weight is None else loss * weight, reduction, name)


def _elementwise_weighted(name: str, input: Tensor, loss: Tensor, weight: Tensor | None, reduction: str,
                          mean_by_weight: bool) -> Tensor:
    """A regression loss times an input-sized weight; torch's l1_loss and mse_loss then divide by the summed
    weights for 'mean', huber_loss by the element count."""
    if weight is None:
        return _reduce(loss, reduction, name)
    if tuple(weight.shape) != tuple(input.shape):
        raise op_error(name, "Weights and input must have the same size.", (input, weight), ValueError)
    if reduction == "mean" and mean_by_weight:
        return sum(loss * weight) / sum(weight)
    return _reduce(loss * weight, reduction, name)


@autocast_policy(FP32)
def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         size_average: bool | None = None, reduce: bool | None = None,
                         reduction: str = "mean") -> Tensor:
    """-weight * (t * log(x) + (1 - t) * log(1 - x)) for probabilities x, each log clamped at -100 as in torch.
    Raises ValueError if the sizes differ and (eagerly) RuntimeError if an input is outside [0, 1]."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction("binary_cross_entropy", reduction)
    _same_size("binary_cross_entropy", input, target)
    if _eager() and input.numel():
        x = input._host()
        if not ((x >= 0) & (x <= 1)).all():
            raise op_error("binary_cross_entropy", "all elements of input should be between 0 and 1", (input,),
                           RuntimeError)
    loss = -(target * clamp(log(input), min=-100) + (1 - target) * clamp(log(1 - input), min=-100))
    return _weighted(loss, weight, reduction, "binary_cross_entropy")


@autocast_policy(FP32)
def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     size_average: bool | None = None, reduce: bool | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """binary_cross_entropy(sigmoid(x), t) computed stably: (1 - t) * x + (1 + (pos_weight - 1) * t) * softplus(-x),
    softplus(-x) = log1p(exp(-|x|)) + max(-x, 0) (torch's formula). Raises ValueError if the sizes differ."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    if tuple(input.shape) != tuple(target.shape):
        raise op_error("binary_cross_entropy_with_logits", f"Target size ({list(target.shape)}) must be the same as "
                       f"input size ({list(input.shape)})", (input, target), ValueError)
    softplus_neg = log1p(exp(-abs(input))) + maximum(-input, 0.0)
    log_weight = 1 if pos_weight is None else (pos_weight - 1) * target + 1
    loss = (1 - target) * input + log_weight * softplus_neg
    return _weighted(loss, weight, reduction, "binary_cross_entropy_with_logits")


@autocast_policy(FP32)
def mse_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
             reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """Squared difference of input and target (broadcast), times weight if given, reduced by mean (over the summed
    weights if given), sum or none; torch's warning when the shapes differ. Raises ValueError if weight is not
    input-sized."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    warn_target_size(input, target)
    diff = input - target
    return _elementwise_weighted("mse_loss", input, diff * diff, weight, reduction, True)


@autocast_policy(FP32)
def l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
            reduction: str = "mean", weight: Tensor | None = None) -> Tensor:
    """|input - target| (broadcast), times weight if given, reduced by mean (over the summed weights if given), sum or
    none; torch's warning when the shapes differ. Raises ValueError if weight is not input-sized."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    warn_target_size(input, target)
    return _elementwise_weighted("l1_loss", input, abs(input - target), weight, reduction, True)


@autocast_policy(FP32)
def smooth_l1_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
                   reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 * d**2 / beta where |d| < beta, else |d| - 0.5 * beta, with d = input - target (beta = 0 is l1_loss)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    if beta == 0:
        return l1_loss(input, target, reduction=reduction)
    warn_target_size(input, target)
    d = abs(input - target)
    return _reduce(where(lt(d, beta), d * d * (0.5 / beta), d - 0.5 * beta), reduction, "smooth_l1_loss")


@autocast_policy(FP32)
def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0,
               weight: Tensor | None = None) -> Tensor:
    """0.5 * d**2 where |d| < delta, else delta * (|d| - 0.5 * delta), with d = input - target; times weight."""
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    warn_target_size(input, target)
    d = abs(input - target)
    loss = where(lt(d, delta), d * d * 0.5, (d - 0.5 * delta) * delta)
    return _elementwise_weighted("huber_loss", input, loss, weight, reduction, False)


@autocast_policy(FP32)
def kl_div(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
           reduction: str = "mean", log_target: bool = False) -> Tensor:
    """KL(target || exp(input)) pointwise for log-probabilities input: target * (log(target) - input) (0 where
    target is 0), or exp(target) * (target - input) when log_target. 'batchmean' divides the sum by the batch size
    (dim 0); 'mean' by the element count, with torch's warning."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if reduction not in _REDUCTIONS + ("batchmean",):
        raise ValueError(f"kl_div: reduction must be one of {_REDUCTIONS + ('batchmean',)}, got {reduction!r}")
    if reduction == "mean":
        warnings.warn("reduction: 'mean' divides the total loss by both the batch size and the support size."
                      "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                      "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
                      UserWarning, stacklevel=2)
    if log_target:
        loss = exp(target) * (target - input)
    else:
        positive = gt(target, 0)
        loss = where(positive, target * log(where(positive, target, 1.0)), 0.0) - target * input
    if reduction == "batchmean":
        return sum(loss) / input.shape[0] if input.ndim else sum(loss)
    return _reduce(loss, reduction, "kl_div")


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


def conv1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """1-d convolution of (N, C, L) or unbatched (C, L) input with (O, C/groups, K) weight, plus a per-channel bias:
    conv2d over a height-1 image."""
    if input.ndim not in (2, 3) or weight.ndim != 3:
        raise op_error("conv1d", f"expected a 2-d or 3-d input and a 3-d weight, got input of shape "
                       f"{list(input.shape)} and weight of shape {list(weight.shape)}", (input, weight), ValueError)
    padding = padding if isinstance(padding, str) else (0, _single(padding, "padding"))
    out = conv2d(unsqueeze(input, -2), unsqueeze(weight, -2), bias, (1, _single(stride, "stride")), padding,
                 (1, _single(dilation, "dilation")), groups)
    return squeeze(out, -2)


def _single(value, name: str) -> int:
    """An int or a 1-tuple of ints as an int (torch's 1-d kernel_size/stride/padding/dilation convention)."""
    value = value[0] if isinstance(value, (tuple, list)) and len(value) == 1 else value
    if not isinstance(value, int):
        raise ValueError(f"{name} must be an int or a 1-tuple of ints, got {value!r}")
    return value


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Mean over torch's adaptive bins of an (N, C, H, W) or (C, H, W) input: output row i averages input rows
    floor(i * H / OH) to ceil((i + 1) * H / OH) (likewise for columns); None in output_size keeps that size. Written
    as P_h @ x @ P_w^T with bin-averaging matrices, so it has one form for every size (reading H and W guards
    them under compile)."""
    if input.ndim not in (3, 4):
        raise op_error("adaptive_avg_pool2d", f"expected a 3-d or 4-d input, got shape {list(input.shape)}", (input,),
                       ValueError)
    sizes = (output_size, output_size) if isinstance(output_size, int) or output_size is None else tuple(output_size)
    h, w = input.shape[-2], input.shape[-1]
    oh, ow = (n if o is None else o for n, o in zip((h, w), sizes))
    return matmul(matmul(_bin_matrix(h, oh, input), input), _bin_matrix(w, ow, input).T)


def _bin_matrix(n: int, out: int, like: Tensor) -> Tensor:
    """(out, n) matrix whose row i averages torch's adaptive bin i of n positions."""
    if out <= 0:
        raise ValueError(f"adaptive_avg_pool2d: output size must be positive, got {out}")
    rows = np.zeros((out, n), dtype=like.dtype.np)
    for i in range(out):
        start, end = (i * n) // out, -((-(i + 1) * n) // out)
        rows[i, start:end] = 1.0 / (end - start)
    return tensor(rows, device=like.device)


@autocast_policy(FP32_CUDA)
def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise each sample's channels (dim 1) in num_groups groups over the group's channels and spatial dims,
    then a per-channel affine. Raises ValueError if the channels do not split into num_groups groups."""
    if input.ndim < 2 or input.shape[1] % num_groups:
        raise op_error("group_norm", f"Expected number of channels in input to be divisible by num_groups, but got "
                       f"input of shape {list(input.shape)} and num_groups={num_groups}", (input,), ValueError)
    # the batch size stays -1, so it is not baked into a compiled graph
    grouped = input.reshape((-1, num_groups, input.shape[1] // num_groups) + tuple(input.shape[2:]))
    out, _, _ = _normalize(grouped, tuple(range(2, grouped.ndim)), eps)
    out = out.view_as(input)
    channel = (-1,) + (1,) * (input.ndim - 2)
    if weight is not None:
        out = out * weight.view(channel)
    return out if bias is None else out + bias.view(channel)


def conv_transpose2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """2-d transposed convolution of (N, C_in, H, W) or unbatched (C_in, H, W) input with (C_in, C_out/groups, KH, KW)
    weight, plus a per-channel bias; output size (H - 1) * stride - 2 * padding + dilation * (KH - 1) +
    output_padding + 1 (note torch's argument order: groups before dilation)."""
    out = _unbatched(nn_ops.conv_transpose2d, input, weight, stride, padding, output_padding, groups, dilation)
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


@autocast_policy(FP32_CUDA)
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


def embedding(input: Tensor, weight: Tensor, padding_idx: int | None = None, max_norm: float | None = None,
              norm_type: float = 2.0, scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of weight picked by integer indices; the padding_idx row gets no gradient (sparse=True gives the same
    dense gradient; max_norm and scale_grad_by_freq raise NotImplementedError)."""
    if max_norm is not None or scale_grad_by_freq:
        raise NotImplementedError("embedding: max_norm and scale_grad_by_freq are not supported")
    if padding_idx is not None and padding_idx < 0:
        padding_idx += weight.shape[0]
    return nn_ops.embedding(input, weight, padding_idx)


@autocast_policy(LOWER)
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
    if dropout_p == 0 and query.ndim == key.ndim == value.ndim >= 2 and \
            query.dtype is key.dtype is value.dtype and query.dtype.is_floating_point:
        batch = meta.broadcast(tuple(query.shape[:-2]), tuple(key.shape[:-2]), tuple(value.shape[:-2]))
        q, k, v = (x if tuple(x.shape[:-2]) == batch else x.expand(*batch, *x.shape[-2:]) for x in (query, key, value))
        mask = () if attn_mask is None else (attn_mask if attn_mask.dtype.name == "bool" else
                                             attn_mask.to(query.dtype),)
        return attention_ops.attention(q, k, v, *mask, scale=float(scale), is_causal=bool(is_causal), keep=True,
                                       fill=float("-inf"), safe=True)
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


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """torch.nn.functional.one_hot: (*, num_classes) int64 with a 1 at each index of an integer tensor (*).
    num_classes=-1 takes the largest index + 1 (it reads the values: a graph break inside graphc.compile).
    Raises RuntimeError for a non-integer tensor or an index outside [0, num_classes)."""
    if tensor.dtype.is_floating_point or tensor.dtype.name == "bool":
        raise op_error("one_hot", "one_hot is only applicable to index tensor of type LongTensor", (tensor,),
                       RuntimeError)
    if num_classes == -1:
        if not tensor.numel():
            raise op_error("one_hot", "Can not infer total number of classes from empty tensor.", (tensor,),
                           RuntimeError)
        num_classes = int(tensor.max().item()) + 1
    if _eager() and tensor.numel():
        values = tensor._host()
        if values.min() < 0:
            raise op_error("one_hot", "Class values must be non-negative.", (tensor,), RuntimeError)
        if values.max() >= num_classes:
            raise op_error("one_hot", f"Class values must be smaller than num_classes ({num_classes}), got "
                           f"{values.max()}.", (tensor,), RuntimeError)
    return eq(unsqueeze(tensor, -1), arange(num_classes, device=tensor.device)).long()


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """torch.nn.functional.normalize: input divided by its p-norm along dim, the norm clamped below at eps."""
    return input / clamp(reduction.norm(input, p, dim, keepdim=True), min=eps)


def pad(input: Tensor, pad: tuple, mode: str = "constant", value: float | None = None) -> Tensor:
    """torch.nn.functional.pad in "constant" mode: pad = (left, right) for the last dim, then (top, bottom) for the
    one before, and so on; negative amounts crop. Raises NotImplementedError for the other modes (reflect,
    replicate, circular) and RuntimeError for a pad of odd length or longer than 2 * input.ndim."""
    from ..ops.creation import full
    from ..ops.join import cat
    from ..ops.layout import narrow

    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise op_error("pad", f"Padding length must be divisible by 2 and at most twice the number of dimensions of "
                       f"the input, got {len(pad)} for a {input.ndim}-d input", (input,), RuntimeError)
    if mode != "constant":
        raise op_error("pad", f"mode {mode!r} is not supported yet (only 'constant')", (input,), NotImplementedError)
    out = input
    for i in range(len(pad) // 2):
        dim, before, after = input.ndim - 1 - i, pad[2 * i], pad[2 * i + 1]
        if before < 0:
            out = narrow(out, dim, -before, out.shape[dim] + before)
        if after < 0:
            out = narrow(out, dim, 0, out.shape[dim] + after)
        parts = []
        for amount in (before, after):
            shape = list(out.shape)
            shape[dim] = max(amount, 0)
            parts.append(full(shape, 0 if value is None else value, dtype=out.dtype, device=out.device))
        out = cat([parts[0], out, parts[1]], dim)
    return out


for _name in __all__:  # a non-Tensor where one is needed: the same TypeError as an op's, checked in one place
    globals()[_name] = check_tensor_arguments(globals()[_name])
