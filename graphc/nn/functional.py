"""graphc.nn.functional (import as F): torch's functional API. Composites (softmax, layer norm, cross-entropy,
GELU, attention, batch norm ...) are written with primitive graphc ops, so the compiler sees elementwise, reduction
and matmul nodes it can fuse; nothing here bakes a tensor's size into an op, so compiled graphs serve any batch
size."""
from __future__ import annotations

import builtins
import math
import warnings
from collections.abc import Callable

import ml_dtypes
import numpy as np

from .. import dtypes
from ..amp.autocast_mode import FP32, FP32_CUDA, LOWER, autocast_policy
from ..autograd import no_grad
from ..dispatch import check_tensor_arguments
from ..errors import op_error, warn_at_user
from ..ops import attention as attention_ops
from ..ops import elementwise, meta, reduction
from ..ops import nn as nn_ops
from ..ops.creation import arange, empty_like, ones_like, tensor, zeros_like
from ..ops.elementwise import (
    abs,
    clamp,
    eq,
    exp,
    expm1,
    ge,
    gt,
    le,
    log,
    log1p,
    logical_and,
    logical_not,
    logical_or,
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
from ..ops.indexing import check_bounds
from ..ops.join import stack
from ..ops.matmul import matmul
from ..ops.reduction import mean, numel_of, sum
from ..ops.view import squeeze, unsqueeze
from ..state import STATE
from ..tensor import Tensor

__all__ = ["linear", "relu", "gelu", "silu", "leaky_relu", "elu", "softplus", "softmax", "log_softmax",
           "cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "mse_loss",
           "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "conv1d", "conv2d", "conv_transpose2d", "max_pool2d",
           "avg_pool2d", "adaptive_avg_pool2d", "layer_norm", "group_norm", "batch_norm", "dropout", "embedding",
           "scaled_dot_product_attention", "one_hot", "normalize", "pad", "relu_", "elu_", "leaky_relu_", "hardtanh",
           "hardtanh_", "relu6", "hardswish", "hardsigmoid", "mish", "selu", "selu_", "celu", "celu_", "prelu", "rrelu",
           "rrelu_", "logsigmoid", "softmin", "softsign", "softshrink", "hardshrink", "tanhshrink", "threshold",
           "threshold_", "glu", "rms_norm", "interpolate", "upsample", "upsample_nearest", "upsample_bilinear",
           "cosine_similarity", "pairwise_distance", "pdist", "pixel_shuffle", "pixel_unshuffle", "instance_norm",
           "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "max_pool1d", "avg_pool1d", "adaptive_avg_pool1d",
           "adaptive_max_pool1d", "adaptive_max_pool2d", "conv_transpose1d", "bilinear", "unfold", "fold",
           "embedding_bag", "triplet_margin_loss", "triplet_margin_with_distance_loss", "margin_ranking_loss",
           "hinge_embedding_loss", "soft_margin_loss", "multilabel_soft_margin_loss", "multi_margin_loss",
           "multilabel_margin_loss",
           "cosine_embedding_loss", "gaussian_nll_loss", "poisson_nll_loss", "feature_alpha_dropout", "lp_pool1d",
           "lp_pool2d", "local_response_norm", "channel_shuffle", "conv3d", "conv_transpose3d", "max_pool3d",
           "avg_pool3d", "adaptive_avg_pool3d", "adaptive_max_pool3d", "max_unpool1d", "max_unpool2d", "max_unpool3d",
           "ctc_loss"]

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
    if approximate == "tanh":  # halved before the multiply by x, so x near the float max does not overflow
        return input * ((tanh((input + input * input * input * 0.044715) * math.sqrt(2 / math.pi)) + 1) * 0.5)
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def _inplace(input: Tensor, fn: Callable[[Tensor], Tensor], inplace: bool) -> Tensor:
    """fn(input), written into input when inplace (torch's inplace=True). fn's ops may save their operand for the
    backward, which the write would change; torch's single in-place op keeps the original self for it, so here fn
    reads a copy when input is in autograd."""
    if not inplace:
        return fn(input)
    return input.copy_(fn(input.clone() if STATE.grad_enabled and input.requires_grad else input))


def silu(input: Tensor, inplace: bool = False) -> Tensor:
    """x * sigmoid(x)."""
    return _inplace(input, lambda input: input * sigmoid(input), inplace)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x where x > 0, else negative_slope * x."""
    return _inplace(input, lambda input: where(gt(input, 0), input, input * negative_slope), inplace)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x where x > 0, else alpha * expm1(x) (torch's: exact for tiny x, -0.0 for -0.0)."""
    return _inplace(input, lambda input: _exponential_below_zero(input, 1.0, alpha), inplace)


def _exponential_below_zero(input: Tensor, scale: float, alpha: float) -> Tensor:
    """x where x > 0, else alpha * expm1(x * scale): elu's and celu's. expm1 sees no positive x, so no inf reaches
    the gradient (where, not minimum(x, 0), which would turn -0.0 into 0.0)."""
    positive = gt(input, 0)
    return where(positive, input, expm1(where(positive, 0.0, input) * scale) * alpha)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold (torch's linear regime)."""
    scaled = input * beta
    return where(gt(scaled, threshold), input, log1p(exp(minimum(scaled, threshold))) / beta)


def relu_(input: Tensor) -> Tensor:
    """In-place relu."""
    return relu(input, inplace=True)


def elu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    """In-place elu."""
    return elu(input, alpha, inplace=True)


def leaky_relu_(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """In-place leaky_relu."""
    return leaky_relu(input, negative_slope, inplace=True)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """x limited to [min_val, max_val]; the gradient is 1 strictly inside and 0 at and beyond the bounds, as in
    torch (clamp's passes at the bounds). Raises ValueError if min_val > max_val."""
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    low, high = _written_as(input, min_val), _written_as(input, max_val)
    return _inplace(input, lambda input: where(le(input, min_val), low, where(ge(input, max_val), high, input)),
                    inplace)


def _written_as(input: Tensor, value: float):
    """value as torch writes it into input's dtype (truncated for integers), so an integer input keeps its dtype."""
    return value if input.dtype.is_floating_point else int(value)


def hardtanh_(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """In-place hardtanh."""
    return hardtanh(input, min_val, max_val, inplace=True)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6): hardtanh(x, 0, 6), as torch defines it."""
    return hardtanh(input, 0.0, 6.0, inplace)


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * relu6(x + 3) / 6 (Searching for MobileNetV3, Howard et al. 2019)."""
    return _inplace(input, lambda input: input * hardtanh(input + 3, 0.0, 6.0) / 6, inplace)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    """relu6(x + 3) / 6."""
    return _inplace(input, lambda input: hardtanh(input + 3, 0.0, 6.0) / 6, inplace)


def mish(input: Tensor, inplace: bool = False) -> Tensor:
    """x * tanh(softplus(x)) (Mish, Misra 2019)."""
    return _inplace(input, lambda input: input * tanh(softplus(input)), inplace)


_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946


def selu(input: Tensor, inplace: bool = False) -> Tensor:
    """scale * elu(x, alpha) with the constants of Self-Normalizing Neural Networks (Klambauer et al. 2017)."""
    return _inplace(input, lambda input: elu(input, _SELU_ALPHA) * _SELU_SCALE, inplace)


def selu_(input: Tensor) -> Tensor:
    """In-place selu."""
    return selu(input, inplace=True)


def celu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x where x > 0, else alpha * (exp(x / alpha) - 1) (Barron 2017). Raises RuntimeError for alpha = 0."""
    if alpha == 0:
        raise op_error("celu", "ZeroDivisionError: alpha cannot be 0 for CELU", (input,), RuntimeError)
    return _inplace(input, lambda input: _exponential_below_zero(input, 1 / alpha, alpha), inplace)


def celu_(input: Tensor, alpha: float = 1.0) -> Tensor:
    """In-place celu."""
    return celu(input, alpha, inplace=True)


def prelu(input: Tensor, weight: Tensor) -> Tensor:
    """x where x > 0, else weight * x, weight holding one slope or one per channel (dim 1; dim 0 of a 1-d input).
    Raises RuntimeError if weight has neither 1 element nor one per channel."""
    channels = input.shape[1] if input.ndim > 1 else input.shape[0] if input.ndim else 1
    if weight.numel() not in (1, channels):
        raise op_error("prelu", f"Mismatch of parameter numbers and input channel size. Found parameter numbers = "
                       f"{weight.numel()} and channel size = {channels}.", (input, weight), RuntimeError)
    slope = weight.reshape(()) if weight.numel() == 1 else weight.reshape((-1,) + (1,) * max(input.ndim - 2, 0))
    return where(gt(input, 0), input, slope * input)


def rrelu(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False,
          inplace: bool = False) -> Tensor:
    """Randomized leaky ReLU: negative x times a slope drawn uniformly from [lower, upper] per element in training,
    times (lower + upper) / 2 in eval (Xu et al. 2015)."""
    if not training:
        return leaky_relu(input, (lower + upper) / 2, inplace)
    from ..ops.creation import rand_like

    slope = rand_like(input) * (upper - lower) + lower
    return _inplace(input, lambda input: where(ge(input, 0), input, input * slope), inplace)


def rrelu_(input: Tensor, lower: float = 1.0 / 8, upper: float = 1.0 / 3, training: bool = False) -> Tensor:
    """In-place rrelu."""
    return rrelu(input, lower, upper, training, inplace=True)


def logsigmoid(input: Tensor) -> Tensor:
    """log(sigmoid(x)) computed stably: min(x, 0) - log1p(exp(-|x|))."""
    return minimum(input, 0.0) - log1p(exp(-abs(input)))


def softmin(input: Tensor, dim: int | None = None, _stacklevel: int = 3, dtype=None) -> Tensor:
    """softmax(-x) along dim (without dim, torch's legacy implicit choice and warning)."""
    return reduction.softmax(-input, _implicit_dim("softmin", input, dim), dtype)


def softsign(input: Tensor) -> Tensor:
    """x / (1 + |x|)."""
    return input / (abs(input) + 1)


def _check_lambd(name: str, input: Tensor, lambd: float) -> None:
    if lambd < 0:
        raise op_error(name, f"lambda must be in range [0, inf) for input dtype {input.dtype.name}, but found "
                       f"{lambd}", (input,), RuntimeError)


def softshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """x - lambd above lambd, x + lambd below -lambd, else 0. Raises RuntimeError for a negative lambd."""
    _check_lambd("softshrink", input, lambd)
    return where(gt(input, lambd), input - lambd, where(lt(input, -lambd), input + lambd, input * 0))


def hardshrink(input: Tensor, lambd: float = 0.5) -> Tensor:
    """x where |x| > lambd, else 0."""
    # |x| * 0 is +0.0 (torch's sign) inside and NaN for NaN, detached: torch's gradient is 0 for both
    return where(logical_or(gt(input, lambd), lt(input, -lambd)), input, abs(input.detach()) * 0)


def tanhshrink(input: Tensor) -> Tensor:
    """x - tanh(x)."""
    return input - tanh(input)


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:
    """value where x <= threshold, else x (NaN stays NaN, as torch's); an integer x keeps its dtype."""
    return _inplace(input, lambda input: where(le(input, threshold), _written_as(input, value), input), inplace)


def threshold_(input: Tensor, threshold: float, value: float) -> Tensor:
    """In-place threshold."""
    return _inplace(input, lambda input: where(le(input, threshold), _written_as(input, value), input), True)


def glu(input: Tensor, dim: int = -1) -> Tensor:
    """a * sigmoid(b) for the two halves a, b of input along dim (Dauphin et al. 2017). Raises RuntimeError if that
    dim has an odd size."""
    if input.ndim == 0 or input.shape[dim] % 2:
        raise op_error("glu", f"Halving dimension must be even, but dimension {meta.norm_dim(dim, input.ndim)} is "
                       f"size {input.shape[dim] if input.ndim else 1}", (input,), RuntimeError)
    a, b = input.chunk(2, dim)
    return a * sigmoid(b)


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


def _check_targets(name: str, input: Tensor, target: Tensor, classes: int, ignore_index: int) -> Tensor:
    """Class-index targets: (N,) for (N, C) input, (N, d1, ...) for (N, C, d1, ...), () for (C,); the target, its
    values checked against the classes (in compiled plans too: ops.indexing.check_bounds)."""
    class_dim = 1 if input.ndim > 1 else 0
    if input.ndim < 1 or tuple(target.shape) != tuple(input.shape[:class_dim]) + tuple(input.shape[class_dim + 1:]):
        raise op_error(name, f"Expected input batch_size and target shape to match: target of shape "
                       f"{list(target.shape)} does not match input of shape {list(input.shape)} (expected (N,) for "
                       "(N, C) input)", (input, target), ValueError)
    if target.dtype.is_floating_point:
        raise op_error(name, f"expected class indices of an integer dtype, got {target.dtype.name}", (input, target),
                       RuntimeError)
    return check_bounds(target, low=0, high=classes, ignore_index=ignore_index, error="IndexError",
                        message=f"{name}: target {{}} is out of bounds for {classes} classes (valid [0, {classes}) or "
                                f"ignore_index={ignore_index})")


def _picked(name: str, input: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int) -> Tensor:
    """One-hot mask of each target's class (eq of the target against the class ids), zero for ignored targets and
    scaled by the class weight: input's shape, so _pick(picked, input) over the class dim picks input[n, target[n]]."""
    class_dim = 1 if input.ndim > 1 else 0
    classes = input.shape[class_dim]
    target = _check_targets(name, input, target, classes, ignore_index)
    class_ids = arange(classes, device=input.device)
    class_ids = class_ids.view(_per_class(input)) if input.ndim > 2 else class_ids
    hit = eq(class_ids, unsqueeze(target, class_dim))
    if 0 <= ignore_index < classes:  # else no class id equals ignore_index: ignored rows are all zero already
        hit = logical_and(hit, unsqueeze(ne(target, ignore_index), class_dim))
    return hit.to(input.dtype) if weight is None else hit.to(input.dtype) * weight.view(_per_class(input))


def _pick(picked: Tensor, values: Tensor, dim: int, keepdim: bool = False) -> Tensor:
    """sum(picked * values) over the class dim, reading only the picked entries: a masked logit of -inf elsewhere
    (log_softmax gives -inf there) would make 0 * -inf a NaN, where torch's gather reads the target's entry alone."""
    return sum(where(ne(picked, 0), values, 0.0) * picked, dim=dim, keepdim=keepdim)


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
    loss = -_pick(picked, input, dim=1 if input.ndim > 1 else 0)
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
    loss = -_pick(picked, logp, dim=class_dim)
    if label_smoothing > 0:
        weighted = logp if weight is None else logp * weight.view(_per_class(input))
        smooth = masked_fill(-sum(weighted, dim=class_dim), eq(target, ignore_index), 0.0)
        # the share of each class in the loss's dtype, as torch's double scalar meets it (an int64 count would
        # make it a float32 tensor)
        loss = loss * (1 - label_smoothing) + smooth * (label_smoothing / numel_of(input, class_dim).to(smooth.dtype))
    return _reduce_picked(loss, picked, target, weight, ignore_index, reduction)


def _soft_cross_entropy(logp: Tensor, target: Tensor, weight: Tensor | None, class_dim: int, reduction: str,
                        label_smoothing: float) -> Tensor:
    """Cross-entropy against class probabilities (target shaped like the input): -sum(target * log_softmax) over the
    class dim, the target smoothed towards uniform; 'mean' divides by the number of samples, as torch does."""
    if tuple(target.shape) != tuple(logp.shape):
        raise op_error("cross_entropy", f"class-probability target of shape {list(target.shape)} does not match "
                       f"input of shape {list(logp.shape)}", (logp, target), ValueError)
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / numel_of(logp, class_dim).to(target.dtype)
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
        return sum(loss) / numel_of(input, (0,)) if input.ndim else sum(loss)  # the batch of each call
    return _reduce(loss, reduction, "kl_div")


def _same_ndim(name: str, *inputs: Tensor) -> None:
    if len({x.ndim for x in inputs}) != 1:
        raise op_error(name, f"The anchor, positive, and negative tensors are expected to have the same number of "
                       f"dimensions, but got: anchor {inputs[0].ndim}D, positive {inputs[1].ndim}D, and negative "
                       f"{inputs[2].ndim}D inputs", inputs, RuntimeError)


@autocast_policy(FP32)
def triplet_margin_loss(anchor: Tensor, positive: Tensor, negative: Tensor, margin: float = 1.0, p: float = 2,
                        eps: float = 1e-6, swap: bool = False, size_average: bool | None = None,
                        reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """max(d(a, p) - d(a, n) + margin, 0) with d the pairwise p-distance (Balntas et al. 2016; with swap, d(a, n)
    is min(d(a, n), d(p, n))). Raises ValueError for margin <= 0, RuntimeError for inputs of different ranks."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    return triplet_margin_with_distance_loss(anchor, positive, negative,
                                             distance_function=lambda x, y: pairwise_distance(x, y, p, eps),
                                             margin=margin, swap=swap, reduction=reduction)


def triplet_margin_with_distance_loss(anchor: Tensor, positive: Tensor, negative: Tensor, *, distance_function=None,
                                      margin: float = 1.0, swap: bool = False, reduction: str = "mean") -> Tensor:
    """triplet_margin_loss with any distance_function(x, y) (pairwise_distance by default)."""
    _check_reduction("triplet_margin_loss", reduction)
    if margin <= 0:
        raise ValueError(f"margin must be greater than 0, got {margin}")
    _same_ndim("triplet_margin_loss", anchor, positive, negative)
    distance = pairwise_distance if distance_function is None else distance_function
    positive_distance, negative_distance = distance(anchor, positive), distance(anchor, negative)
    if swap:
        negative_distance = minimum(negative_distance, distance(positive, negative))
    return _reduce(clamp(positive_distance - negative_distance + margin, min=0), reduction, "triplet_margin_loss")


@autocast_policy(FP32)
def margin_ranking_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0,
                        size_average: bool | None = None, reduce: bool | None = None,
                        reduction: str = "mean") -> Tensor:
    """max(0, -target * (input1 - input2) + margin), target holding 1 or -1. Raises RuntimeError for inputs of
    different ranks."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if not input1.ndim == input2.ndim == target.ndim:
        raise op_error("margin_ranking_loss", f"margin_ranking_loss : All input tensors should have same dimension "
                       f"but got sizes: input1: {list(input1.shape)}, input2: {list(input2.shape)}, target: "
                       f"{list(target.shape)} ", (input1, input2, target), RuntimeError)
    return _reduce(clamp(-target * (input1 - input2) + margin, min=0), reduction, "margin_ranking_loss")


@autocast_policy(FP32)
def hinge_embedding_loss(input: Tensor, target: Tensor, margin: float = 1.0, size_average: bool | None = None,
                         reduce: bool | None = None, reduction: str = "mean") -> Tensor:
    """x where target is 1, max(0, margin - x) where it is -1 (ATen's form: each term kept where target is not
    the other label)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    loss = where(ne(target, 1), clamp(margin - input, min=0), 0.0) + where(ne(target, -1), input, 0.0)
    return _reduce(loss, reduction, "hinge_embedding_loss")


@autocast_policy(FP32)
def soft_margin_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
                     reduction: str = "mean") -> Tensor:
    """log(1 + exp(-target * input)), computed as softplus so a large margin gives its value, not inf."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    z = -target * input
    return _reduce(maximum(z, 0.0) + log1p(exp(-abs(z))), reduction, "soft_margin_loss")


@autocast_policy(FP32)
def multilabel_soft_margin_loss(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                size_average: bool | None = None, reduce: bool | None = None,
                                reduction: str = "mean") -> Tensor:
    """-(y * log(sigmoid(x)) + (1 - y) * log(sigmoid(-x))), times weight, averaged over the classes (last dim)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    loss = -(target * logsigmoid(input) + (1 - target) * logsigmoid(-input))
    if weight is not None:
        loss = loss * weight
    return _reduce(mean(loss, dim=-1), reduction, "multilabel_soft_margin_loss")  # over each call's classes


@autocast_policy(FP32)
def multi_margin_loss(input: Tensor, target: Tensor, p: int = 1, margin: float = 1.0, weight: Tensor | None = None,
                      size_average: bool | None = None, reduce: bool | None = None,
                      reduction: str = "mean") -> Tensor:
    """Multi-class hinge loss of (N, C) or (C,) scores at class indices: sum over classes i != y of
    max(0, margin - x[y] + x[i])**p (times weight[y]) / C. Raises ValueError for p other than 1 or 2 or a weight
    that is not 1-d, and the class-index checks of nll_loss."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction("multi_margin_loss", reduction)
    if p not in (1, 2):
        raise ValueError("only p == 1 and p == 2 supported")
    if weight is not None and weight.ndim != 1:
        raise ValueError("weight must be one-dimensional")
    if input.ndim not in (1, 2):
        raise op_error("multi_margin_loss", f"Expected non-empty vector or matrix with optional 0-dim batch size, "
                       f"but got: {list(input.shape)}", (input, target), RuntimeError)
    picked = _picked("multi_margin_loss", input, target, None, -100)
    dim = input.ndim - 1
    z = clamp((margin - _pick(picked, input, dim=dim, keepdim=True)) + input, min=0)
    z = (z if p == 1 else z * z) * (1 - picked)
    if weight is not None:
        z = z * sum(picked * weight, dim=dim, keepdim=True)
    return _reduce(sum(z, dim=dim) / input.shape[-1], reduction, "multi_margin_loss")


@autocast_policy(FP32)
def multilabel_margin_loss(input: Tensor, target: Tensor, size_average: bool | None = None, reduce: bool | None = None,
                           reduction: str = "mean") -> Tensor:
    """Multi-label hinge loss of (N, C) or (C,) scores: target holds class indices, ended by the first -1; the loss
    sums max(0, 1 - (x[j] - x[i])) over target classes j and non-target classes i, divided by C. Raises
    RuntimeError for a target not shaped like the input."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction("multilabel_margin_loss", reduction)
    if input.ndim not in (1, 2) or tuple(target.shape) != tuple(input.shape):
        raise op_error("multilabel_margin_loss", f"inconsistent target size: {list(target.shape)} for input of size: "
                       f"{list(input.shape)}", (input, target), RuntimeError)
    classes = input.shape[-1]
    listed = ne(target, -1).long().cumprod(-1).to(input.dtype)  # 1 up to the first -1
    hits = eq(unsqueeze(target, -1), arange(classes, device=input.device)).to(input.dtype) * unsqueeze(listed, -1)
    is_target = sum(hits, dim=-2)
    target_scores = sum(hits * unsqueeze(input, -2), dim=-1)
    margins = clamp(1 - (unsqueeze(target_scores, -1) - unsqueeze(input, -2)), min=0)
    mask = unsqueeze(listed, -1) * unsqueeze(1 - clamp(is_target, max=1), -2)
    return _reduce(sum(margins * mask, dim=(-2, -1)) / classes, reduction, "multilabel_margin_loss")


@autocast_policy(FP32)
def cosine_embedding_loss(input1: Tensor, input2: Tensor, target: Tensor, margin: float = 0,
                          size_average: bool | None = None, reduce: bool | None = None,
                          reduction: str = "mean") -> Tensor:
    """1 - cos(x1, x2) where target is 1, max(0, cos(x1, x2) - margin) where it is -1; cos over the last dim of
    (N, D) or (D,) inputs with ATen's 1e-12 added to each squared norm. Raises RuntimeError for mismatched ranks."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if target.ndim not in (0, 1) or input1.ndim != target.ndim + 1 or input2.ndim != target.ndim + 1:
        raise op_error("cosine_embedding_loss", f"{target.ndim}D target tensor expects {target.ndim + 1}D input "
                       f"tensors, but found inputs with sizes {list(input1.shape)} and {list(input2.shape)}.",
                       (input1, input2, target), RuntimeError)
    dim = input1.ndim - 1
    squares = (sum(input1 * input1, dim=dim) + 1e-12) * (sum(input2 * input2, dim=dim) + 1e-12)
    cos = sum(input1 * input2, dim=dim) / squares.sqrt()
    loss = where(eq(target, 1), 1 - cos, 0.0) + where(eq(target, -1), clamp(cos - margin, min=0), 0.0)
    return _reduce(loss, reduction, "cosine_embedding_loss")


@autocast_policy(FP32)
def gaussian_nll_loss(input: Tensor, target: Tensor, var, full: bool = False, eps: float = 1e-6,
                      reduction: str = "mean") -> Tensor:
    """0.5 * (log(var) + (input - target)**2 / var) (+ 0.5 * log(2 pi) if full), var clamped below at eps in value
    only, as torch (its clamp runs under no_grad). var may be input-sized, one dim short, have a single mismatched
    dim of size 1, or be a float. Raises ValueError for a negative var (checked eagerly), a var of another size or a
    bad reduction."""
    if isinstance(var, (int, float)):
        if var < 0:
            raise ValueError("var has negative entry/entries")
        var = input.new_full(tuple(input.shape), float(var))
    elif _eager() and var.numel() and (var._host() < 0).any():
        raise ValueError("var has negative entry/entries")
    if tuple(var.shape) != tuple(input.shape):
        if tuple(input.shape[:-1]) == tuple(var.shape):
            var = unsqueeze(var, -1)
        elif not (input.ndim == var.ndim and builtins.sum(v for n, v in zip(input.shape, var.shape) if n != v) == 1):
            raise ValueError("var is of incorrect size")
    if reduction not in _REDUCTIONS:
        raise ValueError(reduction + " is not valid")
    var = var + (clamp(var, min=eps) - var).detach()
    diff = input - target
    loss = (log(var) + diff * diff / var) * 0.5
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction, "gaussian_nll_loss")


@autocast_policy(FP32)
def poisson_nll_loss(input: Tensor, target: Tensor, log_input: bool = True, full: bool = False,
                     size_average: bool | None = None, eps: float = 1e-8, reduce: bool | None = None,
                     reduction: str = "mean") -> Tensor:
    """Poisson negative log-likelihood: exp(input) - target * input for log-rates (log_input), else input - target *
    log(input + eps); full adds Stirling's target * log(target) - target + 0.5 * log(2 pi target) where target > 1.
    Raises ValueError for a bad reduction."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    if reduction not in _REDUCTIONS:
        raise ValueError(reduction + " is not a valid value for reduction")
    loss = exp(input) - target * input if log_input else input - target * log(input + eps)
    if full:
        safe = where(gt(target, 1), target, 2.0)
        stirling = safe * log(safe) - safe + log(safe * (2 * math.pi)) * 0.5
        loss = loss + where(gt(target, 1), stirling, 0.0)
    return _reduce(loss, reduction, "poisson_nll_loss")


def ctc_loss(log_probs: Tensor, targets: Tensor, input_lengths, target_lengths, blank: int = 0,
             reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
    """Connectionist temporal classification loss (Graves et al. 2006) of log_probs (T, N, C), from log_softmax, or
    unbatched (T, C), against targets (N, S) padded or 1-d concatenated, with each sample's input and target length
    (tensors or sequences of ints). 'mean' divides each sample's loss by its target length (at least 1) and averages
    over the batch, as torch; zero_infinity makes an impossible alignment's loss and gradient 0. Raises
    RuntimeError naming ctc_loss for lengths, labels or shapes out of range."""
    _check_reduction("ctc_loss", reduction)
    if log_probs.ndim == 2:  # unbatched: a batch of one
        loss = ctc_loss(log_probs.unsqueeze(1), targets.reshape(1, -1), _lengths(input_lengths).reshape(1),
                        _lengths(target_lengths).reshape(1), blank, reduction, zero_infinity)
        return loss.squeeze(0) if reduction == "none" else loss
    target_lengths = _lengths(target_lengths)
    loss = nn_ops.ctc_loss(log_probs, targets, _lengths(input_lengths), target_lengths, blank=blank,
                           zero_infinity=zero_infinity)
    if reduction == "mean":
        return (loss / clamp(target_lengths, min=1).to(loss.dtype)).mean()
    return loss.sum() if reduction == "sum" else loss


def _lengths(lengths) -> Tensor:
    """ctc_loss's lengths as an int64 tensor: torch takes a tensor or a sequence of ints."""
    return lengths if isinstance(lengths, Tensor) else tensor(list(lengths) if isinstance(lengths, (tuple, list))
                                                              else lengths, dtype=dtypes.int64)


def _unbatched(op, dims: int, input: Tensor, *args) -> Tensor:
    """Run a windowed op of (N, C, *spatial) inputs over `dims` spatial dims; an unbatched (C, *spatial) input runs as
    a batch of one, as in torch."""
    if input.ndim == dims + 1:
        return squeeze(op(unsqueeze(input, 0), *args), 0)
    return op(input, *args)


def _biased(out: Tensor, bias: Tensor | None, dims: int) -> Tensor:
    """A convolution's (N, C, *spatial) or unbatched (C, *spatial) output plus its per-channel bias."""
    return out if bias is None else out + bias.view((-1,) + (1,) * dims)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """2-d convolution of (N, C, H, W) or unbatched (C, H, W) input with (O, C/groups, KH, KW) weight, plus a
    per-channel bias."""
    return _biased(_unbatched(nn_ops.conv2d, 2, input, weight, stride, padding, dilation, groups), bias, 2)


def conv3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """3-d convolution of (N, C, D, H, W) or unbatched (C, D, H, W) input with (O, C/groups, KD, KH, KW) weight, plus
    a per-channel bias."""
    return _biased(_unbatched(nn_ops.conv3d, 3, input, weight, stride, padding, dilation, groups), bias, 3)


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


def _adaptive_avg_pool(name: str, input: Tensor, output_size, spatial: int) -> Tensor:
    """Mean over torch's adaptive bins of the `spatial` trailing dims, one dim at a time (a box's mean is the mean of
    its rows' means): output row i averages input rows floor(i * H / OH) to ceil((i + 1) * H / OH); None in
    output_size keeps that size. Raises ValueError for another rank or an output size that is not positive."""
    if input.ndim not in (spatial + 1, spatial + 2):
        raise op_error(name, f"expected a {spatial + 1}-d or {spatial + 2}-d input, got shape {list(input.shape)}",
                       (input,), ValueError)
    sizes = (output_size,) * spatial if isinstance(output_size, int) or output_size is None else tuple(output_size)
    out = input
    for i, size in enumerate(sizes):
        dim = input.ndim - spatial + i
        out = _bin_mean(out, dim, meta.specialized_size(input, dim) if size is None else size)
    return out


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Mean over torch's adaptive bins of an (N, C, H, W) or (C, H, W) input (None in output_size keeps that
    size)."""
    return _adaptive_avg_pool("adaptive_avg_pool2d", input, output_size, 2)


def adaptive_avg_pool3d(input: Tensor, output_size) -> Tensor:
    """Mean over torch's adaptive bins of an (N, C, D, H, W) or (C, D, H, W) input (None in output_size keeps that
    size)."""
    return _adaptive_avg_pool("adaptive_avg_pool3d", input, output_size, 3)


def _adaptive_bins(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, width) of torch's adaptive bins: output i covers input [floor(i * n_in / n_out), ceil((i + 1) * n_in /
    n_out)). Raises ValueError if n_out is not positive."""
    if n_out <= 0:
        raise ValueError(f"adaptive pooling: output size must be positive, got {n_out}")
    i = np.arange(n_out)
    start = (i * n_in) // n_out
    return start, -((-(i + 1) * n_in) // n_out) - start


def _bin_taps(n_in: int, n_out: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per tap k, (the input index each bin reads, whether the bin has a k-th element): a shorter bin repeats its last
    index where it has none, to be masked out (never multiplied by 0, which would turn an inf into NaN)."""
    start, width = _adaptive_bins(n_in, n_out)
    return [(start + np.minimum(k, width - 1), k < width) for k in range(width.max())]


def _bin_mean(input: Tensor, dim: int, n_out: int) -> Tensor:
    """The mean over each adaptive bin along dim: a reshape and mean where the bins tile the dim evenly (a global
    pool among them), else the bins' taps gathered, masked and summed, over their widths. The bins are built from
    the input's size: a compiled program is specialised to it (meta.specialized_size), as for every gather below
    whose indices are computed from a size."""
    n_in = meta.specialized_size(input, dim)
    if n_out > 0 and n_in % n_out == 0:
        return mean(input.unflatten(dim, (n_out, n_in // n_out)), dim + 1)
    from ..ops.indexing import index_select

    shape = [1] * input.ndim
    shape[dim] = -1
    total = None
    for index, present in _bin_taps(n_in, n_out):
        term = index_select(input, dim, tensor(index, device=input.device))
        if not present.all():
            term = where(tensor(present, device=input.device).view(shape), term, 0.0)
        total = term if total is None else total + term
    width = _adaptive_bins(n_in, n_out)[1].astype(input.dtype.np)
    return total / tensor(width, device=input.device).view(shape)


@autocast_policy(FP32_CUDA)
def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise each sample's channels (dim 1) in num_groups groups over the group's channels and spatial dims,
    then a per-channel affine. Raises ValueError if the channels do not split into num_groups groups."""
    if input.ndim < 2 or input.shape[1] % num_groups:
        raise op_error("group_norm", f"Expected number of channels in input to be divisible by num_groups, but got "
                       f"input of shape {list(input.shape)} and num_groups={num_groups}", (input,), ValueError)
    # the batch size stays -1, so it is not baked into a compiled graph; the spatial sizes are (specialised)
    grouped = input.reshape((-1, num_groups, input.shape[1] // num_groups) +
                            tuple(meta.specialized_size(input, d) for d in range(2, input.ndim)))
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
    out = _unbatched(nn_ops.conv_transpose2d, 2, input, weight, stride, padding, output_padding, groups, dilation)
    return _biased(out, bias, 2)


def conv_transpose3d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """3-d transposed convolution of (N, C_in, D, H, W) or unbatched (C_in, D, H, W) input with (C_in, C_out/groups,
    KD, KH, KW) weight, plus a per-channel bias; each output size as conv_transpose2d's."""
    out = _unbatched(nn_ops.conv_transpose3d, 3, input, weight, stride, padding, output_padding, groups, dilation)
    return _biased(out, bias, 3)


def _max_pool(dims: int, input: Tensor, kernel_size, stride, padding, dilation, ceil_mode: bool,
              return_indices: bool):
    """max_pool{dims}d; with return_indices, also where each maximum lies (a flat index into its (N, C) plane of the
    input, int64, as torch's and as max_unpool reads it)."""
    stride = None if stride == [] else stride  # torch's default, as some scripts spell it
    args = (kernel_size, stride, padding, dilation, ceil_mode)
    out = _unbatched(getattr(nn_ops, f"max_pool{dims}d"), dims, input, *args)
    return (out, _unbatched(getattr(nn_ops, f"max_pool{dims}d_indices"), dims, input, *args)) if return_indices \
        else out


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Maximum over each window of an (N, C, H, W) or (C, H, W) input (stride defaults to kernel_size)."""
    return _max_pool(2, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def max_pool3d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Maximum over each window of an (N, C, D, H, W) or (C, D, H, W) input (stride defaults to kernel_size)."""
    return _max_pool(3, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None) -> Tensor:
    """Mean over each window of an (N, C, H, W) or (C, H, W) input (stride defaults to kernel_size)."""
    return _unbatched(nn_ops.avg_pool2d, 2, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                      divisor_override)


def avg_pool3d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None) -> Tensor:
    """Mean over each window of an (N, C, D, H, W) or (C, D, H, W) input (stride defaults to kernel_size)."""
    return _unbatched(nn_ops.avg_pool3d, 3, input, kernel_size, stride, padding, ceil_mode, count_include_pad,
                      divisor_override)


def _normalize(x: Tensor, dims: tuple[int, ...], eps: float) -> tuple[Tensor, Tensor, Tensor]:
    """(x - mean) / sqrt(var + eps) over dims (biased variance), with the mean and variance (keepdim). A float16 or
    bfloat16 x is normalised in float32 and the result rounded once, as torch's kernels do (float16's variance of
    values past 256 overflows); the statistics stay float32."""
    low = x.dtype if x.dtype.is_low_precision else None
    if low is not None:
        x = x.float()
    mu = mean(x, dim=dims, keepdim=True)
    centered = x - mu
    var = mean(centered * centered, dim=dims, keepdim=True)
    out = centered * rsqrt(var + eps)
    return (out if low is None else out.to(low)), mu, var


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


@autocast_policy(FP32_CUDA)
def rms_norm(input: Tensor, normalized_shape, weight: Tensor | None = None, eps: float | None = None) -> Tensor:
    """x / sqrt(mean(x**2) + eps) over the last len(normalized_shape) dims, times weight (Zhang and Sennrich 2019);
    eps=None takes the machine epsilon of input's dtype, as torch. Raises ValueError if normalized_shape does not
    match the trailing dims."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[input.ndim - len(normalized_shape):]) != normalized_shape:
        raise op_error("rms_norm", f"normalized_shape {list(normalized_shape)} does not match the last dims of the "
                       f"input of shape {list(input.shape)}", (input,), ValueError)
    eps = float(ml_dtypes.finfo(input.dtype.np).eps) if eps is None else eps
    dims = tuple(range(input.ndim - len(normalized_shape), input.ndim))
    out = input * rsqrt(mean(input * input, dim=dims, keepdim=True) + eps)
    return out if weight is None else out * weight


def _sample_count(name: str, input: Tensor, dims: tuple, what: str) -> Tensor:
    """The number of elements over dims that a normalisation's unbiased variance divides by n - 1, refusing one as
    torch does (ValueError): eagerly from the shape, and in a compiled plan, which runs for any size, per call
    (check_bounds; that refusal is a RuntimeError that is also a ValueError). 0 (an empty input) passes, as in torch:
    its output is empty."""
    if _eager() and math.prod(input.shape[d] for d in dims) == 1:
        raise op_error(name, f"expected more than 1 {what} when training, got input of shape {list(input.shape)}",
                       (input,), ValueError)
    return check_bounds(numel_of(input, dims), low=2, high=None, ignore_index=0, error="ValueError",
                        message=f"{name}: expected more than 1 {what} when training, got {{}}")


def _update_running(running: Tensor, batch: Tensor, momentum: float, n: Tensor) -> None:
    """running moved by momentum towards the batch statistic, in place; an empty batch (n == 0, whose statistics
    are NaN) leaves it as it is, as torch's."""
    running.copy_(where(n > 0, running * (1 - momentum) + batch * momentum, running))


def _depending(eps: float, count: Tensor) -> Tensor:
    """eps as a 0-d tensor computed from count, so that a compiled plan keeps count's check_bounds when nothing else
    reads the count (a normalisation without running statistics)."""
    return count * 0 + eps


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
    if training:
        n = _sample_count("batch_norm", input, dims, "value per channel")
        out, mu, var = _normalize(input, dims, eps if running_mean is not None else _depending(eps, n))
        if running_mean is not None:
            with no_grad():
                _update_running(running_mean, mu.detach().view(-1), momentum, n)
                _update_running(running_var, var.detach().view(-1) * n / (n - 1), momentum, n)
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
    scale = 1 / math.sqrt(meta.specialized_size(query, query.ndim - 1)) if scale is None else scale
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
    tensor = check_bounds(tensor, low=0, high=num_classes, ignore_index=None, error="ValueError",
                          message=f"one_hot: Class values must be non-negative and smaller than num_classes "
                                  f"({num_classes}), got {{}}.")
    return eq(unsqueeze(tensor, -1), arange(num_classes, device=tensor.device)).long()


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """torch.nn.functional.normalize: input divided by its p-norm along dim, the norm clamped below at eps."""
    return input / clamp(reduction.norm(input, p, dim, keepdim=True), min=eps)


def pad(input: Tensor, pad: tuple, mode: str = "constant", value: float | None = None) -> Tensor:
    """torch.nn.functional.pad: pad = (left, right) for the last dim, then (top, bottom) for the one before, and so
    on; negative amounts crop. "constant" fills with value (0 by default); "reflect", "replicate" and "circular"
    (the last 1 to 3 dims of a batched or unbatched input) gather the mirrored, edge or wrapped-around positions
    with index_select, so their gradient accumulates into the positions read. Raises RuntimeError for a pad of odd
    length or longer than 2 * input.ndim, for reflect padding not below the dim's size and for circular padding
    larger than it, ValueError for a value with a non-constant mode, NotImplementedError for other ranks."""
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise op_error("pad", f"Padding length must be divisible by 2 and at most twice the number of dimensions of "
                       f"the input, got {len(pad)} for a {input.ndim}-d input", (input,), RuntimeError)
    if mode == "constant":
        return _constant_pad(input, pad, value)
    if mode not in ("reflect", "replicate", "circular"):
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if value is not None and value != 0:
        raise op_error("pad", f'Padding mode "{mode}" doesn\'t take in value argument', (input,), RuntimeError)
    if len(pad) not in (2, 4, 6) or input.ndim not in (len(pad) // 2 + 1, len(pad) // 2 + 2):
        raise op_error("pad", "Only 2D, 3D, 4D, 5D padding with non-constant padding are supported for now",
                       (input,), NotImplementedError)
    out = input
    for i in range(len(pad) // 2):
        dim, before, after = input.ndim - 1 - i, pad[2 * i], pad[2 * i + 1]
        out = _resample(out, dim, [(_pad_source(input, mode, dim, before, after), None)])
    return out


def _pad_source(input: Tensor, mode: str, dim: int, before: int, after: int) -> np.ndarray:
    """The index along dim that each position of the padded dim reads in reflect, replicate or circular mode."""
    n = meta.specialized_size(input, dim)
    position = np.arange(-before, n + after)
    if mode == "reflect":
        if max(before, after) >= n:
            raise op_error("pad", f"Argument #4: Padding size should be less than the corresponding input dimension, "
                           f"but got: padding ({before}, {after}) at dimension {dim} of input {list(input.shape)}",
                           (input,), RuntimeError)
        return (n - 1) - np.abs((n - 1) - np.abs(position))
    if mode == "circular":
        if max(before, after) > n:
            raise op_error("pad", "Padding value causes wrapping around more than once.", (input,), RuntimeError)
        return position % n
    if n == 0:
        raise op_error("pad", f"input of shape {list(input.shape)} has no elements to replicate along dim {dim}",
                       (input,), RuntimeError)
    return np.clip(position, 0, n - 1)


def _constant_pad(input: Tensor, pad: tuple, value: float | None) -> Tensor:
    """pad in "constant" mode: crop the negative amounts, then concatenate value-filled blocks."""
    from ..ops.creation import full
    from ..ops.join import cat
    from ..ops.layout import narrow

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


_LINEAR_MODES = {"linear": 1, "bilinear": 2, "trilinear": 3, "bicubic": 2}


def interpolate(input: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool | None = None,
                recompute_scale_factor: bool | None = None, antialias: bool = False) -> Tensor:
    """torch.nn.functional.interpolate of an (N, C, *spatial) input with 1 to 3 spatial dims to `size` or
    `scale_factor` times its size. Modes: nearest (torch's legacy floor(dst * scale) source), nearest-exact,
    linear / bilinear / trilinear (align_corners or half-pixel sources), bicubic (A = -0.75, borders replicated) and
    area (adaptive average pooling). Each spatial dim is resampled in turn: a sum over a few taps of input gathered
    by index_select and scaled by per-position weights, so the gradient is index_select's. Index and weight
    formulas follow ATen's UpSample.h. Raises ValueError / NotImplementedError as torch for bad arguments;
    antialias=True is not supported (NotImplementedError)."""
    spatial = input.ndim - 2
    if mode in ("nearest", "nearest-exact", "area"):
        if align_corners is not None:
            raise ValueError("align_corners option can only be set with the interpolating modes: "
                             "linear | bilinear | bicubic | trilinear")
    elif mode in _LINEAR_MODES:
        align_corners = bool(align_corners)
    else:
        raise NotImplementedError(f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.ndim}D) for "
                                  f"the modes: nearest | linear | bilinear | bicubic | trilinear | area | "
                                  f"nearest-exact (got {mode})")
    if not 1 <= spatial <= 3 or (mode in _LINEAR_MODES and _LINEAR_MODES[mode] != spatial):
        raise NotImplementedError(f"Got {input.ndim}D input, but {mode} mode needs "
                                  f"{_LINEAR_MODES.get(mode, spatial) + 2}D input" if 1 <= spatial <= 3 else
                                  f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.ndim}D) for "
                                  f"the modes: nearest | linear | bilinear | bicubic | trilinear | area | "
                                  f"nearest-exact (got {mode})")
    if antialias:
        raise op_error("interpolate", "antialias=True is not supported", (input,), NotImplementedError)
    if mode not in ("nearest", "nearest-exact") and not input.dtype.is_floating_point:
        raise op_error("interpolate", f"mode {mode!r} is not implemented for {input.dtype.name} input (only the "
                       "nearest modes copy integer values)", (input,), RuntimeError)
    sizes, scales = _interpolate_sizes(input, size, scale_factor, recompute_scale_factor)
    out = input
    for i, (n_out, scale) in enumerate(zip(sizes, scales)):
        dim, n_in = 2 + i, meta.specialized_size(input, 2 + i)
        if mode == "area":
            out = _bin_mean(out, dim, n_out)
        elif mode in ("nearest", "nearest-exact"):
            out = _resample(out, dim, [(_nearest_source(n_in, n_out, scale, mode == "nearest-exact"), None)])
        else:
            out = _resample(out, dim, _interpolation_taps(n_in, n_out, scale, align_corners, mode == "bicubic"))
    return out


def _interpolate_sizes(input: Tensor, size, scale_factor, recompute_scale_factor) -> tuple[list, list]:
    """The output size of each spatial dim and the scale torch's kernels use for it (the given scale_factor, or
    None: then input size / output size)."""
    spatial = input.ndim - 2
    if (size is None) == (scale_factor is None):
        raise ValueError("only one of size or scale_factor should be defined" if size is not None else
                         "either size or scale_factor should be defined")
    if size is not None:
        sizes = _per_spatial_dim(input, size, "output", f"output size of {size}", "output size in (o1, o2, ...,oK)")
        return [int(n) for n in sizes], [None] * spatial
    factors = _per_spatial_dim(input, scale_factor, "scale_factor", f"scale_factor of shape {scale_factor}",
                               "scale_factor in (s1, s2, ...,sK)")
    sizes = [math.floor(float(n) * float(f)) for n, f in zip(input.shape[2:], factors)]
    return sizes, [None] * spatial if recompute_scale_factor else [float(f) for f in factors]


def _per_spatial_dim(input: Tensor, value, name: str, shown: str, form: str) -> list:
    """A per-spatial-dim argument (an int/float for all, or a sequence with one per dim) as a list; ValueError,
    with torch's message, for a sequence of the wrong length."""
    values = list(value) if isinstance(value, (tuple, list)) else [value] * (input.ndim - 2)
    if len(values) != input.ndim - 2:
        raise ValueError(f"Input and {name} must have the same number of spatial dimensions, but got input with "
                         f"spatial dimensions of {list(input.shape[2:])} and {shown}. Please provide input tensor in "
                         f"(N, C, d1, d2, ...,dK) format and {form} format.")
    return values


def _kernel_scale(n_in: int, n_out: int, scale: float | None) -> np.float32:
    """ATen's source step per output position (float, as its float32 kernels compute it): 1 / scale_factor when
    one was given, else input size / output size."""
    return np.float32(1.0 / scale) if scale is not None and scale > 0 else np.float32(n_in) / np.float32(n_out)


def _nearest_source(n_in: int, n_out: int, scale: float | None, exact: bool) -> np.ndarray:
    """Source index of each output position: floor(dst * scale) (nearest) or floor((dst + 0.5) * scale)
    (nearest-exact), at most n_in - 1."""
    dst = np.arange(n_out, dtype=np.float32) + (np.float32(0.5) if exact else np.float32(0))
    return np.minimum(np.floor(dst * _kernel_scale(n_in, n_out, scale)).astype(np.int64), n_in - 1)


def _interpolation_taps(n_in: int, n_out: int, scale: float | None, align_corners: bool,
                        cubic: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    """(source index, weight) taps of linear (2 taps) or cubic (4 taps, Keys' kernel with A = -0.75) interpolation:
    source position dst * (n_in - 1) / (n_out - 1) with align_corners, else (dst + 0.5) * scale - 0.5 (clamped
    at 0 for linear)."""
    dst = np.arange(n_out, dtype=np.float32)
    if align_corners:
        step = np.float32((n_in - 1) / (n_out - 1)) if n_out > 1 else np.float32(0)
        src = dst * step
    else:
        src = (dst + np.float32(0.5)) * _kernel_scale(n_in, n_out, scale) - np.float32(0.5)
        src = src if cubic else np.maximum(src, np.float32(0))
    base = np.floor(src)
    t = (src - base).astype(np.float64)
    base = base.astype(np.int64)
    if not cubic:
        base = np.minimum(base, n_in - 1)
        t = np.clip(src - base, 0, 1).astype(np.float64)
        return [(base, 1 - t), (np.minimum(base + 1, n_in - 1), t)]
    a = -0.75

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    weights = (far(t + 1), near(t), near(1 - t), far(2 - t))
    return [(np.clip(base + k - 1, 0, n_in - 1), w) for k, w in enumerate(weights)]


def _resample(input: Tensor, dim: int, taps) -> Tensor:
    """sum over taps of input gathered along dim at the tap's indices, times its per-position weight (if any)."""
    from ..ops.indexing import index_select

    shape = [1] * input.ndim
    shape[dim] = -1
    out = None
    for index, weight in taps:
        term = index_select(input, dim, tensor(index, device=input.device))
        if weight is not None:
            term = term * tensor(weight.astype(input.dtype.np), device=input.device).view(shape)
        out = term if out is None else out + term
    return out


def upsample(input: Tensor, size=None, scale_factor=None, mode: str = "nearest",
             align_corners: bool | None = None) -> Tensor:
    """Deprecated alias of interpolate, with torch's warning."""
    warnings.warn("`nn.functional.upsample` is deprecated. Use `nn.functional.interpolate` instead.", stacklevel=2)
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input: Tensor, size=None, scale_factor=None) -> Tensor:
    """Deprecated: interpolate(mode='nearest'), with torch's warning."""
    warnings.warn("`nn.functional.upsample_nearest` is deprecated. Use `nn.functional.interpolate` instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input: Tensor, size=None, scale_factor=None) -> Tensor:
    """Deprecated: interpolate(mode='bilinear', align_corners=True), with torch's warning."""
    warnings.warn("`nn.functional.upsample_bilinear` is deprecated. Use `nn.functional.interpolate` instead.",
                  stacklevel=2)
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """sum((x1 / |x1|) * (x2 / |x2|)) along dim, the inputs broadcast, each norm clamped below at eps in value only
    (the gradient is the unclamped norm's, as ATen's cosine_similarity clamps under no_grad)."""
    norms = []
    for x in (x1, x2):
        n = reduction.norm(x, 2, dim, keepdim=True)
        norms.append(n + (clamp(n, min=eps) - n).detach())
    return sum((x1 / norms[0]) * (x2 / norms[1]), dim)


def pdist(input: Tensor, p: float = 2.0) -> Tensor:
    """torch.nn.functional.pdist: the p-norm distance between every pair of rows i < j of an (N, M) input, as an
    N * (N - 1) / 2 vector in row-major order of the pairs (cdist's entries above the diagonal). Raises RuntimeError
    for another rank."""
    from ..ops.layout import cdist

    if input.ndim != 2:
        raise op_error("pdist", f"pdist only supports 2D tensors, got: {input.ndim}D", (input,), RuntimeError)
    rows, cols = np.triu_indices(meta.specialized_size(input, 0), 1)  # pairs computed from the row count
    return cdist(input, input, p)[tensor(rows), tensor(cols)]


def pairwise_distance(x1: Tensor, x2: Tensor, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    """The p-norm of x1 - x2 + eps over the last dim (torch's formula: eps is added to the difference)."""
    return reduction.norm(x1 - x2 + eps, p, -1, keepdim)


def affine_grid(theta: Tensor, size: list, align_corners: bool | None = None) -> Tensor:
    """torch.nn.functional.affine_grid: the sampling grid (N, H, W, 2) of (x, y) points in [-1, 1] that the 2-d
    affine maps theta (N, 2, 3) give for an output of size (N, C, H, W) (Jaderberg et al., "Spatial Transformer
    Networks", 2015); differentiable in theta. align_corners as in grid_sample (None: False). Raises ValueError for
    another theta shape or size."""
    if len(size) != 4 or theta.ndim != 3 or tuple(theta.shape[1:]) != (2, 3) or theta.shape[0] != size[0]:
        raise op_error("affine_grid", f"expected theta of shape (N, 2, 3) and a 4-d size (N, C, H, W) with the same "
                       f"N, got theta of shape {list(theta.shape)} and size {list(size)}", (theta,), ValueError)
    height, width = size[2], size[3]
    ys, xs = (_grid_positions(n, align_corners, theta) for n in (height, width))
    base = stack([xs.view(1, -1).expand(height, width), ys.view(-1, 1).expand(height, width),
                  ones_like(xs[:1]).view(1, 1).expand(height, width)], -1)  # (H, W, 3): x, y, 1
    return matmul(base.view(1, height * width, 3), theta.transpose(1, 2)).view(size[0], height, width, 2)


def _grid_positions(n: int, align_corners: bool | None, like: Tensor) -> Tensor:
    """The normalised coordinates of n pixel centres: -1 and 1 at the edge centres with align_corners, else at the
    outer edges."""
    steps = arange(n, dtype=like.dtype, device=like.device)
    return steps * (2.0 / max(n - 1, 1)) - 1.0 if align_corners else (steps * 2.0 + 1.0) / n - 1.0


def grid_sample(input: Tensor, grid: Tensor, mode: str = "bilinear", padding_mode: str = "zeros",
                align_corners: bool | None = None) -> Tensor:
    """torch.nn.functional.grid_sample for 4-d input (N, C, H, W): the values at the (x, y) points of grid
    (N, Ho, Wo, 2), normalised to [-1, 1] (align_corners: -1 and 1 are the corner pixels' centres, else their
    outer edges), as (N, C, Ho, Wo). mode "bilinear" or "nearest" (half to even, as torch); padding_mode "zeros"
    (points outside read 0) or "border" (clamped to the edge). Gradients flow to input and, for bilinear, to grid,
    as torch's. Raises NotImplementedError for "bicubic", "reflection" and 5-d input, ValueError for bad shapes."""
    if input.ndim != 4 or grid.ndim != 4 or grid.shape[-1] != 2 or grid.shape[0] != input.shape[0]:
        raise op_error("grid_sample", f"expected 4-d input (N, C, H, W) and grid (N, Ho, Wo, 2), got input of shape "
                       f"{list(input.shape)} and grid of shape {list(grid.shape)}", (input, grid), ValueError)
    if mode not in ("bilinear", "nearest") or padding_mode not in ("zeros", "border"):
        raise NotImplementedError(f"grid_sample: mode {mode!r} with padding_mode {padding_mode!r} is not supported "
                                  "(bilinear or nearest; zeros or border)")
    n, c, height, width = input.shape
    points = grid.shape[1] * grid.shape[2]

    def unnormalise(coord: Tensor, size: int) -> Tensor:
        pos = (coord + 1.0) * ((size - 1) / 2) if align_corners else ((coord + 1.0) * size - 1.0) / 2
        return pos.clamp(0, size - 1) if padding_mode == "border" else pos
    x, y = unnormalise(grid[..., 0], width), unnormalise(grid[..., 1], height)
    flat = input.reshape(n, c, height * width)

    def read(xi: Tensor, yi: Tensor) -> Tensor:
        """input at integer positions (float tensors (N, Ho, Wo)); 0 outside."""
        inside = (xi >= 0) & (xi <= width - 1) & (yi >= 0) & (yi <= height - 1)
        index = (yi.clamp(0, height - 1) * width + xi.clamp(0, width - 1)).long().view(n, 1, points)
        values = flat.gather(2, index.expand(n, c, points)).view(n, c, *grid.shape[1:3])
        return values * inside.unsqueeze(1).to(values.dtype)
    if mode == "nearest":
        return read(x.round(), y.round())
    x0, y0 = x.floor().detach(), y.floor().detach()
    wx, wy = (x - x0).unsqueeze(1), (y - y0).unsqueeze(1)
    return (read(x0, y0) * (1 - wx) * (1 - wy) + read(x0 + 1, y0) * wx * (1 - wy) +
            read(x0, y0 + 1) * (1 - wx) * wy + read(x0 + 1, y0 + 1) * wx * wy)


def gumbel_softmax(logits: Tensor, tau: float = 1.0, hard: bool = False, eps: float = 1e-10, dim: int = -1) -> Tensor:
    """torch.nn.functional.gumbel_softmax: softmax((logits + g) / tau) over dim with Gumbel(0, 1) noise g (Jang et
    al., "Categorical Reparameterization with Gumbel-Softmax", 2017); hard=True returns the one-hot of its argmax,
    with the soft sample's gradient (straight-through). eps is unused, as in torch."""
    gumbels = -empty_like(logits).exponential_().log()
    soft = ((logits + gumbels) / tau).softmax(dim)
    if not hard:
        return soft
    index = soft.argmax(dim, keepdim=True)
    return zeros_like(logits).scatter_(dim, index, 1.0) - soft.detach() + soft


def pixel_shuffle(input: Tensor, upscale_factor: int) -> Tensor:
    """(*, C * r**2, H, W) -> (*, C, H * r, W * r) (Shi et al. 2016): a reshape, a permute and a reshape.
    Raises RuntimeError if the channels do not divide by r**2."""
    r = upscale_factor
    if input.ndim < 3:
        raise op_error("pixel_shuffle", f"pixel_shuffle expects input to have at least 3 dimensions, but got input "
                       f"with {input.ndim} dimension(s)", (input,), RuntimeError)
    if input.shape[-3] % (r * r):
        raise op_error("pixel_shuffle", f"pixel_shuffle expects its input's 'channel' dimension to be divisible by the "
                       f"square of upscale_factor, but input.size(-3)={input.shape[-3]} is not divisible by {r * r}",
                       (input,), RuntimeError)
    *batch, c, h, w = input.shape
    lead = len(batch)
    out = input.reshape(*batch, c // (r * r), r, r, h, w)
    out = out.permute(*range(lead), lead, lead + 3, lead + 1, lead + 4, lead + 2)
    return out.reshape(*batch, c // (r * r), h * r, w * r)


def pixel_unshuffle(input: Tensor, downscale_factor: int) -> Tensor:
    """(*, C, H * r, W * r) -> (*, C * r**2, H, W), the inverse of pixel_shuffle. Raises RuntimeError if H or W
    does not divide by r."""
    r = downscale_factor
    if input.ndim < 3:
        raise op_error("pixel_unshuffle", f"pixel_unshuffle expects input to have at least 3 dimensions, but got "
                       f"input with {input.ndim} dimension(s)", (input,), RuntimeError)
    for name, dim in (("height", -2), ("width", -1)):
        if input.shape[dim] % r:
            raise op_error("pixel_unshuffle", f"pixel_unshuffle expects {name} to be divisible by downscale_factor, "
                           f"but input.size({dim})={input.shape[dim]} is not divisible by {r}", (input,), RuntimeError)
    *batch, c, h, w = input.shape
    lead = len(batch)
    out = input.reshape(*batch, c, h // r, r, w // r, r)
    out = out.permute(*range(lead), lead, lead + 2, lead + 4, lead + 1, lead + 3)
    return out.reshape(*batch, c * r * r, h // r, w // r)


def instance_norm(input: Tensor, running_mean: Tensor | None = None, running_var: Tensor | None = None,
                  weight: Tensor | None = None, bias: Tensor | None = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalise each sample's channels (N, C, *spatial) over the spatial dims, then a per-channel affine. With
    use_input_stats the running statistics (if given) move towards the batch average of the per-instance ones (the
    variance unbiased), in place, as torch; else the running statistics normalise. Raises ValueError for fewer than
    3 dims or a single spatial element in training."""
    if input.ndim < 3:
        raise op_error("instance_norm", f"expected an input of at least 3 dims (N, C, *spatial), got shape "
                       f"{list(input.shape)}", (input,), ValueError)
    dims = tuple(range(2, input.ndim))
    channel = (-1,) + (1,) * (input.ndim - 2)
    if use_input_stats:
        n = _sample_count("instance_norm", input, dims, "spatial element")
        out, mu, var = _normalize(input, dims, eps if running_mean is not None else _depending(eps, n))
        if running_mean is not None:
            with no_grad():
                batch_mu, batch_var = mean(mu.detach(), (0,) + dims), mean(var.detach(), (0,) + dims) * (n / (n - 1))
                _update_running(running_mean, batch_mu, momentum, n)
                _update_running(running_var, batch_var, momentum, n)
    else:
        out = (input - running_mean.view(channel)) * rsqrt(running_var.view(channel) + eps)
    if weight is not None:
        out = out * weight.view(channel)
    return out if bias is None else out + bias.view(channel)


def _feature_dropout(input: Tensor, p: float, training: bool, inplace: bool, batched: bool) -> Tensor:
    """torch's feature dropout: zero each (sample, channel) slice of an (N, C, *) input (or (C, *) when not batched)
    with probability p and scale the rest by 1/(1-p); a mask with the trailing dims of size 1 broadcasts over them.
    Raises ValueError for p outside [0, 1], RuntimeError for fewer than 2 dims (with the batch dim)."""
    from ..ops.layout import narrow

    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if input.ndim + (not batched) < 2:
        raise op_error("dropout", "Feature dropout requires at least 2 dimensions in the input", (input,),
                       RuntimeError)
    if not training or p == 0.0:
        return input
    per_channel = input
    for dim in range(input.ndim - (input.ndim + (not batched) - 2), input.ndim):
        per_channel = narrow(per_channel, dim, 0, 1)
    return _inplace(input, lambda input: input * nn_ops.dropout_mask(per_channel, p), inplace)


def _warn_feature_rank(name: str, input: Tensor, spatial: int) -> None:
    if input.ndim not in (spatial + 1, spatial + 2):
        warnings.warn(f"{name}: Received a {input.ndim}-D input to {name}, which is deprecated and will result in an "
                      f"error in a future release. To retain the behavior and silence this warning, please use "
                      f"dropout instead. Note that {name} exists to provide channel-wise dropout on inputs with "
                      f"{spatial} spatial dimensions, a channel dimension, and an optional batch dimension (i.e. "
                      f"{spatial + 1}D or {spatial + 2}D inputs).", stacklevel=3)


def dropout1d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of an (N, C, L) or (C, L) input with probability p, scale the rest by 1/(1-p) (training
    only). Raises RuntimeError for another rank."""
    if input.ndim not in (2, 3):
        raise op_error("dropout1d", f"dropout1d: Expected 2D or 3D input, but received a {input.ndim}D input. Note "
                       "that dropout1d exists to provide channel-wise dropout on inputs with 1 spatial dimension, a "
                       "channel dimension, and an optional batch dimension (i.e. 2D or 3D inputs).", (input,),
                       RuntimeError)
    return _feature_dropout(input, p, training, inplace, input.ndim == 3)


def dropout2d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of an (N, C, H, W) input with probability p, scale the rest by 1/(1-p) (training only).
    As torch, a 3-d input is read as (N, C, L), with its warning (use dropout1d), and other ranks warn."""
    _warn_feature_rank("dropout2d", input, 2)
    if input.ndim == 3:
        warnings.warn("dropout2d: Received a 3D input to dropout2d and assuming that channel-wise 1D dropout behavior "
                      "is desired - input is interpreted as shape (N, C, L), where C is the channel dim. This "
                      "behavior will change in a future release to interpret the input as one without a batch "
                      "dimension, i.e. shape (C, H, W). To maintain the 1D channel-wise dropout behavior, please "
                      "switch to using dropout1d instead.", stacklevel=2)
    return _feature_dropout(input, p, training, inplace, True)


def dropout3d(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels of an (N, C, D, H, W) or (C, D, H, W) input with probability p, scale the rest by
    1/(1-p) (training only); other ranks warn, as torch, and run as unbatched."""
    _warn_feature_rank("dropout3d", input, 3)
    return _feature_dropout(input, p, training, inplace, input.ndim == 5)


def alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False) -> Tensor:
    """Dropout that keeps SELU activations' mean and variance: dropped elements become -alpha' (the SELU
    saturation value) and an affine map a * x + b restores the statistics (Klambauer et al. 2017; ATen's
    constants). Identity in eval."""
    return _alpha_dropout(input, p, training, inplace, input)


def feature_alpha_dropout(input: Tensor, p: float = 0.5, training: bool = False, inplace: bool = False) -> Tensor:
    """alpha_dropout of whole channels: one draw per (sample, channel) of an (N, C, *) input. Raises RuntimeError
    for fewer than 2 dims."""
    from ..ops.layout import narrow

    if input.ndim < 2:
        raise op_error("feature_alpha_dropout", "Feature dropout requires at least 2 dimensions in the input",
                       (input,), RuntimeError)
    per_channel = input
    for dim in range(2, input.ndim):
        per_channel = narrow(per_channel, dim, 0, 1)
    return _alpha_dropout(input, p, training, inplace, per_channel)


def _alpha_dropout(input: Tensor, p: float, training: bool, inplace: bool, shape_of: Tensor) -> Tensor:
    """Alpha dropout with one keep/drop draw per element of `shape_of` (input, or its per-channel narrowing)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    keep = nn_ops.dropout_mask(shape_of, p) * (1 - p)
    alpha = 1.7580993408473766
    a = 1.0 / math.sqrt((alpha * alpha * p + 1) * (1 - p))
    return _inplace(input, lambda input: input * (keep * a) + (keep - 1) * (alpha * a) + alpha * a * p,
                    inplace)


def _as_2d(op, input: Tensor, *args):
    """A 1-d windowed op of an (N, C, L) or (C, L) input run as its 2-d form over a height-1 image (each of its
    results, where it returns several)."""
    out = op(unsqueeze(input, -2), *args)
    return tuple(squeeze(o, -2) for o in out) if isinstance(out, tuple) else squeeze(out, -2)


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Maximum over each window of an (N, C, L) or (C, L) input (stride defaults to kernel_size); with
    return_indices, also each maximum's position."""
    stride = kernel_size if stride is None or stride == [] else stride
    return _as_2d(max_pool2d, input, (1, _single(kernel_size, "kernel_size")), (1, _single(stride, "stride")),
                  (0, _single(padding, "padding")), (1, _single(dilation, "dilation")), ceil_mode, return_indices)


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """Mean over each window of an (N, C, L) or (C, L) input (stride defaults to kernel_size)."""
    stride = kernel_size if stride is None or stride == [] else stride
    return _as_2d(avg_pool2d, input, (1, _single(kernel_size, "kernel_size")), (1, _single(stride, "stride")),
                  (0, _single(padding, "padding")), ceil_mode, count_include_pad)


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """Mean over torch's adaptive bins of an (N, C, L) or (C, L) input."""
    return _as_2d(adaptive_avg_pool2d, input, (1, _single(output_size, "output_size")))


def _adaptive_max_pool(name: str, input: Tensor, output_size, spatial: int, return_indices: bool) -> Tensor:
    """Maximum over torch's adaptive bins of the `spatial` trailing dims, one dim at a time (a window's maximum is
    the maximum of its rows' maxima): the maximum over the taps of each bin gathered with index_select."""
    if return_indices:
        raise op_error(name, "return_indices=True is not supported", (input,), NotImplementedError)
    if input.ndim not in (spatial + 1, spatial + 2):
        raise op_error(name, f"{name}(): Expected {spatial + 1}D or {spatial + 2}D tensor, but got "
                       f"{list(input.shape)}", (input,), ValueError)
    from ..ops.indexing import index_select

    sizes = (output_size,) * spatial if isinstance(output_size, int) or output_size is None else tuple(output_size)
    out = input
    for i, size in enumerate(sizes):
        dim = input.ndim - spatial + i
        n, pooled = meta.specialized_size(input, dim), None
        for index, _ in _bin_taps(n, n if size is None else size):
            tap = index_select(out, dim, tensor(index, device=input.device))
            pooled = tap if pooled is None else maximum(pooled, tap)
        out = pooled
    return out


def adaptive_max_pool1d(input: Tensor, output_size, return_indices: bool = False) -> Tensor:
    """Maximum over torch's adaptive bins of an (N, C, L) or (C, L) input."""
    return _adaptive_max_pool("adaptive_max_pool1d", input, _single(output_size, "output_size"), 1, return_indices)


def adaptive_max_pool2d(input: Tensor, output_size, return_indices: bool = False) -> Tensor:
    """Maximum over torch's adaptive bins of an (N, C, H, W) or (C, H, W) input (None keeps that size)."""
    return _adaptive_max_pool("adaptive_max_pool2d", input, output_size, 2, return_indices)


def adaptive_max_pool3d(input: Tensor, output_size, return_indices: bool = False) -> Tensor:
    """Maximum over torch's adaptive bins of an (N, C, D, H, W) or (C, D, H, W) input (None keeps that size)."""
    return _adaptive_max_pool("adaptive_max_pool3d", input, output_size, 3, return_indices)


def conv_transpose1d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
                     output_padding=0, groups: int = 1, dilation=1) -> Tensor:
    """1-d transposed convolution of (N, C_in, L) or (C_in, L) input with (C_in, C_out/groups, K) weight: the 2-d
    one over a height-1 image."""
    if input.ndim not in (2, 3) or weight.ndim != 3:
        raise op_error("conv_transpose1d", f"expected a 2-d or 3-d input and a 3-d weight, got input of shape "
                       f"{list(input.shape)} and weight of shape {list(weight.shape)}", (input, weight), ValueError)
    out = conv_transpose2d(unsqueeze(input, -2), unsqueeze(weight, -2), bias, (1, _single(stride, "stride")),
                           (0, _single(padding, "padding")), (0, _single(output_padding, "output_padding")), groups,
                           (1, _single(dilation, "dilation")))
    return squeeze(out, -2)


def _unpool_output_size(input: Tensor, kernel, stride, padding, output_size) -> tuple[int, ...]:
    """torch's max_unpool output size: (size - 1) * stride + kernel - 2 * padding per spatial dim, or output_size
    (its trailing dims; each within a stride of that). Raises ValueError as torch."""
    dims = len(kernel)
    default = [(meta.specialized_size(input, input.ndim - dims + d) - 1) * stride[d] + kernel[d] - 2 * padding[d]
               for d in range(dims)]
    if output_size is None:
        return tuple(default)
    output_size = tuple(output_size)
    if len(output_size) == dims + 2:
        output_size = output_size[2:]
    if len(output_size) != dims:
        raise ValueError(f"output_size should be a sequence containing {dims} or {dims + 2} elements, but it has a "
                         f"length of '{len(output_size)}'")
    for d, size in enumerate(output_size):
        low, high = default[d] - stride[d], default[d] + stride[d]
        if not low < size < high:
            raise ValueError(f'invalid output_size "{output_size}" (dim {d} must be between {low} and {high})')
    return output_size


def _max_unpool(dims: int, input: Tensor, indices: Tensor, kernel_size, stride, padding, output_size) -> Tensor:
    """The inverse of max_pool{dims}d with return_indices: zeros of the unpooled size with each input value
    scattered to its index (a flat position in its (N, C) plane); the gradient gathers from the same positions."""
    from ..ops.indexing import scatter
    from ..ops.nn import spatial

    name = f"max_unpool{dims}d"
    if input.ndim not in (dims + 1, dims + 2) or tuple(indices.shape) != tuple(input.shape):
        raise op_error(name, f"expected a {dims + 1}-d or {dims + 2}-d input and indices of its shape, got input of "
                       f"shape {list(input.shape)} and indices of shape {list(indices.shape)}", (input, indices),
                       ValueError)
    kernel = spatial(kernel_size, "kernel_size", dims)
    stride = kernel if stride is None else spatial(stride, "stride", dims)
    size = _unpool_output_size(input, kernel, stride, spatial(padding, "padding", dims), output_size)
    flat = input.flatten(input.ndim - dims)
    zeros = zeros_like(flat[..., :1]).expand(*(-1,) * (flat.ndim - 1), math.prod(size))
    return scatter(zeros, -1, indices.flatten(input.ndim - dims), flat).unflatten(-1, size)


def max_unpool1d(input: Tensor, indices: Tensor, kernel_size, stride=None, padding=0, output_size=None) -> Tensor:
    """The inverse of max_pool1d(return_indices=True) on (N, C, L) or (C, L) input: non-maxima are zero."""
    return _max_unpool(1, input, indices, kernel_size, stride, padding, output_size)


def max_unpool2d(input: Tensor, indices: Tensor, kernel_size, stride=None, padding=0, output_size=None) -> Tensor:
    """The inverse of max_pool2d(return_indices=True) on (N, C, H, W) or (C, H, W) input: non-maxima are zero."""
    return _max_unpool(2, input, indices, kernel_size, stride, padding, output_size)


def max_unpool3d(input: Tensor, indices: Tensor, kernel_size, stride=None, padding=0, output_size=None) -> Tensor:
    """The inverse of max_pool3d(return_indices=True) on (N, C, D, H, W) or (C, D, H, W) input."""
    return _max_unpool(3, input, indices, kernel_size, stride, padding, output_size)


def bilinear(input1: Tensor, input2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y[..., o] = input1[..., i] * weight[o, i, j] * input2[..., j] + bias[o]."""
    from ..ops.matmul import einsum

    out = einsum("...i,oij,...j->...o", input1, weight, input2)
    return out if bias is None else out + bias


def _pairs(*values):
    return tuple(nn_ops.pair(v, name) for v, name in zip(values, ("kernel_size", "dilation", "padding", "stride")))


def unfold(input: Tensor, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """im2col: (N, C, H, W) -> (N, C * KH * KW, L), column l holding the (dilated) window at output position l,
    channel-major then kernel row, kernel column, as torch. Built from strided slices of the zero-padded input,
    so the values are copies and the gradient sums back into each window."""
    from ..ops.join import stack

    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = _pairs(kernel_size, dilation, padding, stride)
    if input.ndim not in (3, 4):
        raise op_error("unfold", f"Input Error: Only 3D or 4D input Tensors are supported (got {input.ndim}D)",
                       (input,), NotImplementedError)
    batched = input if input.ndim == 4 else unsqueeze(input, 0)
    padded = pad(batched, (pw, pw, ph, ph)) if ph or pw else batched
    oh = (meta.specialized_size(padded, 2) - dh * (kh - 1) - 1) // sh + 1
    ow = (meta.specialized_size(padded, 3) - dw * (kw - 1) - 1) // sw + 1
    if oh <= 0 or ow <= 0:
        raise op_error("unfold", f"Given input with spatial size {list(input.shape[-2:])}, kernel_size {(kh, kw)}, "
                       f"dilation {(dh, dw)}, padding {(ph, pw)}, calculated shape of the array of sliding blocks as "
                       f"({oh}, {ow}), but its components must be at least one.", (input,), RuntimeError)
    windows = [padded[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
               for i in range(kh) for j in range(kw)]
    out = stack(windows, 2).reshape(batched.shape[0], -1, oh * ow)
    return out if input.ndim == 4 else squeeze(out, 0)


def fold(input: Tensor, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """col2im, the adjoint of unfold: (N, C * KH * KW, L) -> (N, C, H, W), each column's values summed into the
    window they came from. Each kernel offset's (N, C, oh, ow) block is spread onto the stride lattice (zeros
    between) and padded to its place, then the blocks are summed. Raises RuntimeError when L or the channels do
    not match."""
    from ..ops.creation import zeros

    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = _pairs(kernel_size, dilation, padding, stride)
    h, w = nn_ops.pair(output_size, "output_size")
    if input.ndim not in (2, 3):
        raise op_error("fold", f"Input Error: Only unbatched (2D) or batched (3D) input Tensors are supported (got "
                       f"{input.ndim}D)", (input,), NotImplementedError)
    batched = input if input.ndim == 3 else unsqueeze(input, 0)
    oh, ow = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if batched.shape[1] % (kh * kw) or batched.shape[2] != oh * ow:
        raise op_error("fold", f"Expected size of input's dimension 1 to be divisible by the product of kernel_size, "
                       f"and dimension 2 to match the calculated number of sliding blocks {oh} * {ow} = {oh * ow}, "
                       f"but got input of shape {list(input.shape)}", (input,), RuntimeError)
    channels = batched.shape[1] // (kh * kw)
    blocks = batched.reshape(-1, channels, kh * kw, oh, ow)
    out = zeros(batched.shape[0], channels, h + 2 * ph, w + 2 * pw, dtype=input.dtype, device=input.device)
    for i in range(kh):
        for j in range(kw):
            block = _spread(_spread(blocks[:, :, i * kw + j], 2, sh), 3, sw)
            top, left = i * dh, j * dw
            out = out + pad(block, (left, w + 2 * pw - left - block.shape[3], top, h + 2 * ph - top - block.shape[2]))
    out = out[:, :, ph:ph + h, pw:pw + w]
    return out if input.ndim == 3 else squeeze(out, 0)


def _spread(x: Tensor, dim: int, step: int) -> Tensor:
    """x with step - 1 zeros after each element along dim, the trailing ones dropped: (n,) -> (step * (n - 1) + 1,)."""
    from ..ops.join import stack
    from ..ops.layout import narrow

    if step == 1:
        return x
    spread = stack([x] + [x * 0] * (step - 1), dim + 1)
    shape = list(x.shape)
    shape[dim] = -1
    return narrow(spread.reshape(shape), dim, 0, step * (x.shape[dim] - 1) + 1)


def embedding_bag(input: Tensor, weight: Tensor, offsets: Tensor | None = None, max_norm: float | None = None,
                  norm_type: float = 2, scale_grad_by_freq: bool = False, mode: str = "mean", sparse: bool = False,
                  per_sample_weights: Tensor | None = None, include_last_offset: bool = False,
                  padding_idx: int | None = None) -> Tensor:
    """Sums or means of bags of embedding rows: a 2-d input is one bag per row; a 1-d input is cut into bags
    at offsets. The bag of each index is found in the offsets in graph ops (searchsorted of its position), and
    index_add sums each bag, so nothing is read back. Empty bags give zeros, padding_idx entries are left out of
    sums and counts, as torch. Raises ValueError for a bad mode or offsets with a 2-d input, NotImplementedError for
    mode='max', max_norm and scale_grad_by_freq."""
    from ..ops.creation import zeros
    from ..ops.indexing import index_add
    from ..ops.sorting import searchsorted

    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"mode has to be one of sum, mean or max, got {mode!r}")
    if mode == "max":
        raise NotImplementedError("embedding_bag: mode='max' is not supported")
    if max_norm is not None or scale_grad_by_freq:
        raise NotImplementedError("embedding_bag: max_norm and scale_grad_by_freq are not supported")
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError(f"embedding_bag: per_sample_weights was not None. per_sample_weights is only "
                                  f"supported for mode='sum' (got mode='{mode}'). Please open a feature request on "
                                  "GitHub.")
    if input.ndim == 2:
        if offsets is not None:
            raise ValueError("if input is 2D, then offsets has to be None, as input is treated is a mini-batch of "
                             "fixed length sequences.")
        bags, length = input.shape
        offsets = arange(0, bags * length, max(length, 1), device=input.device)
        input = input.reshape(-1)
        per_sample_weights = None if per_sample_weights is None else per_sample_weights.reshape(-1)
    elif input.ndim != 1 or offsets is None or offsets.ndim != 1:
        raise ValueError(f"input has to be 1D or 2D Tensor, and offsets a 1D Tensor with a 1D input, got input of "
                         f"shape {list(input.shape)}")
    if include_last_offset:
        offsets = offsets[:-1]
    bags = offsets.shape[0]
    if padding_idx is not None and padding_idx < 0:
        padding_idx += weight.shape[0]
    rows = embedding(input, weight)
    kept = ones_like(input, dtype=weight.dtype, device=weight.device)
    if padding_idx is not None:
        kept = kept * ne(input, padding_idx).to(weight.dtype)
    # made from input and offsets, not from their sizes, so that a compiled step replays for every text length
    positions = ones_like(input, dtype=dtypes.int64).cumsum(0) - 1
    bag = searchsorted(offsets.to(dtypes.int64), positions, right=True) - 1
    weights = kept if per_sample_weights is None else kept * per_sample_weights
    out = index_add(zeros(bags, weight.shape[1], dtype=weight.dtype, device=weight.device), 0, bag,
                    rows * unsqueeze(weights, 1))
    if mode == "sum":
        return out
    counts = index_add(zeros(bags, dtype=weight.dtype, device=weight.device), 0, bag, kept)
    return out / unsqueeze(clamp(counts, min=1), 1)



def lp_pool1d(input: Tensor, norm_type: float, kernel_size: int, stride=None, ceil_mode: bool = False) -> Tensor:
    """(sum of x**p over each window)**(1/p) of an (N, C, L) or (C, L) input (torch's formula: avg_pool times the
    window size; p = +-inf is the max/min of |x|)."""
    if math.isinf(norm_type):
        sign = 1 if norm_type > 0 else -1
        return max_pool1d(abs(input) * sign, kernel_size, stride, 0, 1, ceil_mode) * sign
    return _lp_root(avg_pool1d(input**norm_type, kernel_size, stride, 0, ceil_mode), norm_type,
                    _single(kernel_size, "kernel_size"))


def lp_pool2d(input: Tensor, norm_type: float, kernel_size, stride=None, ceil_mode: bool = False) -> Tensor:
    """(sum of x**p over each window)**(1/p) of an (N, C, H, W) or (C, H, W) input (torch's formula: avg_pool times
    the window size; p = +-inf is the max/min of |x|)."""
    if math.isinf(norm_type):
        sign = 1 if norm_type > 0 else -1
        return max_pool2d(abs(input) * sign, kernel_size, stride, 0, 1, ceil_mode) * sign
    kh, kw = nn_ops.pair(kernel_size, "kernel_size")
    return _lp_root(avg_pool2d(input**norm_type, kernel_size, stride, 0, ceil_mode), norm_type, kh * kw)


def _lp_root(mean: Tensor, norm_type: float, window: int) -> Tensor:
    # torch writes the window sum as sign(s) * relu(|s|): s itself, with a zero gradient where s is 0
    return (elementwise.sign(mean) * elementwise.relu(abs(mean)) * window) ** (1.0 / norm_type)


def local_response_norm(input: Tensor, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0) -> Tensor:
    """x / (k + alpha * mean of x**2 over `size` neighbouring channels)**beta (Krizhevsky et al. 2012), the channel
    window zero-padded by size // 2 before and (size - 1) // 2 after, as torch. Raises ValueError below 3 dims."""
    from ..ops.layout import narrow

    if input.ndim < 3:
        raise ValueError(f"Expected 3D or higher dimensionality input (got {input.ndim} dimensions)")
    if input.numel() == 0:
        return input
    squares = pad(input * input, (0, 0) * (input.ndim - 2) + (size // 2, (size - 1) // 2))
    window = narrow(squares, 1, 0, input.shape[1])
    for shift in range(1, size):
        window = window + narrow(squares, 1, shift, input.shape[1])
    return input / (window * (alpha / size) + k) ** beta


def channel_shuffle(input: Tensor, groups: int) -> Tensor:
    """(N, C, *) with its channels regrouped: channel g * (C / groups) + i moves to i * groups + g (Zhang et al.
    2017, ShuffleNet). Raises RuntimeError if the channels do not divide by groups."""
    if input.ndim < 3 or groups <= 0 or input.shape[1] % groups:
        raise op_error("channel_shuffle", f"Number of channels must be divisible by groups. Got "
                       f"{input.shape[1] if input.ndim > 1 else 0} channels and {groups} groups.", (input,),
                       RuntimeError)
    n, c = input.shape[:2]
    spatial = tuple(input.shape[2:])
    return input.reshape(n, groups, c // groups, *spatial).transpose(1, 2).reshape(n, c, *spatial)


for _name in __all__:  # a non-Tensor where one is needed: the same TypeError as an op's, checked in one place
    globals()[_name] = check_tensor_arguments(globals()[_name])
