"""Ops of the nn layers that are not composites: sliding windows (convolutions, pools), embedding lookup and the
random dropout mask. Windowed ops run im2col on numpy: a strided window view, one batched matmul or reduction, and a
scatter-add (col2im) for their gradients; one implementation serves every number of spatial dims (_window_ops makes
the 2-d and 3-d ops from it, as torch's conv2d and conv3d; 1-d layers run the 2-d ops over a height-1 image)."""
from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import scipy.sparse
from numpy.lib.stride_tricks import as_strided

from .. import dtypes
from ..amp.autocast_mode import LOWER
from ..dispatch import CROSS, OTHER, op
from ..errors import values_refused
from . import creation


def spatial(value, name: str, dims: int) -> tuple[int, ...]:
    """An int or a dims-tuple of ints as a dims-tuple (torch's kernel_size/stride/padding/dilation convention)."""
    values = (value,) * dims if isinstance(value, int) else tuple(value)
    if len(values) != dims or not all(isinstance(v, int) for v in values):
        raise ValueError(f"{name} must be an int or {'a pair' if dims == 2 else f'a tuple of {dims}'} ints, got "
                         f"{value!r}")
    return values


def pair(value, name: str) -> tuple[int, int]:
    """An int or a pair of ints as a pair."""
    return spatial(value, name, 2)


def _geometry(size, kernel, stride, padding, dilation, ceil_mode: bool = False):
    """Output size of a sliding window over the spatial size, and the (before, after) zero padding each axis needs."""
    out, pads = [], []
    for n, k, s, p, d in zip(size, kernel, stride, padding, dilation):
        span = d * (k - 1) + 1
        o = (n + 2 * p - span + (s - 1 if ceil_mode else 0)) // s + 1
        if ceil_mode and (o - 1) * s >= n + p:  # the last window must start inside the input or its left padding
            o -= 1
        if o < 1:
            raise ValueError(f"input size {list(size)} with padding {list(padding)} is smaller than the kernel "
                             f"{list(kernel)} (dilation {list(dilation)})")
        out.append(o)
        pads.append((p, max(p, (o - 1) * s + span - n - p)))
    return tuple(out), tuple(pads)


def _pad(x: np.ndarray, pads, value=0) -> np.ndarray:
    if not any(a or b for a, b in pads):
        return x
    return np.pad(x, ((0, 0), (0, 0), *pads), constant_values=value)


def _windows(xp: np.ndarray, kernel, stride, dilation, out_size) -> np.ndarray:
    """Read-only view (N, C, *out_size, *kernel) of every window of a padded (N, C, *spatial) array."""
    sn, sc, *steps = xp.strides
    shape = xp.shape[:2] + tuple(out_size) + tuple(kernel)
    strides = (sn, sc, *(t * s for t, s in zip(steps, stride)), *(t * d for t, d in zip(steps, dilation)))
    return as_strided(xp, shape, strides, writeable=False)


def _col2im(cols: np.ndarray, x_shape, pads, stride, dilation) -> np.ndarray:
    """Scatter-add window contributions (N, C, *out, *kernel) back onto the input: the adjoint of _windows."""
    dims = len(pads)
    out_size, kernel = cols.shape[2:2 + dims], cols.shape[2 + dims:]
    out = np.zeros(tuple(x_shape[:2]) + tuple(n + a + b for n, (a, b) in zip(x_shape[2:], pads)), cols.dtype)
    for taps in itertools.product(*map(range, kernel)):
        region = (slice(t * d, t * d + s * (o - 1) + 1, s) for t, d, s, o in zip(taps, dilation, stride, out_size))
        out[(..., *region)] += cols[(..., *taps)]
    return out[(..., *(slice(a, a + n) for n, (a, _) in zip(x_shape[2:], pads)))]


def _require_rank(x, name: str, dims: int) -> None:
    if x.ndim != dims + 2:
        layout = ("N", "C", "D", "H", "W")[3 - dims:] if dims <= 3 else ("N", "C", "...")
        raise ValueError(f"expected a {dims + 2}-d {name} ({', '.join(layout)}), got shape {list(x.shape)}")


def _tail(first: int, dims: int) -> tuple[int, ...]:
    """Axes first .. first + dims - 1: a block of spatial (or kernel) axes in a transpose."""
    return tuple(range(first, first + dims))


# ---- convolution ----------------------------------------------------------------------------------------------
def _conv_padding(padding, weight, stride, dilation) -> tuple[int, ...]:
    """The padding of each spatial dim: ints as given, 'valid' as 0, 'same' as the padding that keeps the size
    (stride 1; it must split evenly between the sides, i.e. dilation * (kernel - 1) is even)."""
    dims = len(stride)
    if not isinstance(padding, str):
        return spatial(padding, "padding", dims)
    if padding == "valid":
        return (0,) * dims
    if padding != "same":
        raise ValueError(f"conv{dims}d: padding must be 'valid', 'same' or ints, got {padding!r}")
    if stride != (1,) * dims:
        raise ValueError(f"conv{dims}d: padding='same' is not supported for strided convolutions (stride "
                         f"{list(stride)})")
    kernel = tuple(weight.shape[2:])
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    if any(t % 2 for t in totals):
        raise NotImplementedError(f"conv{dims}d: padding='same' needs uneven padding for kernel {list(kernel)} with "
                                  f"dilation {list(dilation)}; pass explicit padding")
    return tuple(t // 2 for t in totals)


def _conv_parse(dims: int, x, weight, stride=1, padding=0, dilation=1, groups: int = 1):
    stride, dilation = spatial(stride, "stride", dims), spatial(dilation, "dilation", dims)
    padding = _conv_padding(padding, weight, stride, dilation)
    return (x, weight), {"stride": stride, "padding": padding, "dilation": dilation, "groups": int(groups)}


def _floating_pair(x, weight) -> None:
    if x.dtype is not weight.dtype or not x.dtype.is_floating_point:
        raise TypeError(f"input and weight must have the same floating dtype, got {x.dtype.name} and "
                        f"{weight.dtype.name}")


def _conv_infer(x, weight, stride, padding, dilation, groups):
    _require_rank(x, "input", len(stride))
    _require_rank(weight, "weight", len(stride))
    _floating_pair(x, weight)
    if weight.shape[0] % groups or x.shape[1] != weight.shape[1] * groups:
        raise ValueError(f"weight of shape {list(weight.shape)} with groups={groups} expects "
                         f"{weight.shape[1] * groups} input channels (and out channels divisible by groups), "
                         f"got input of shape {list(x.shape)}")
    out_size, _ = _geometry(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    return (x.shape[0], weight.shape[0]) + out_size, x.dtype


def _im2col(x, w_shape, stride, padding, dilation, groups):
    """The input's windows as one matrix per group: (G, N * prod(out), C/G * prod(kernel))."""
    out_size, pads = _geometry(x.shape[2:], w_shape[2:], stride, padding, dilation)
    win = _windows(_pad(x, pads), w_shape[2:], stride, dilation, out_size)
    n, c, dims = x.shape[0], x.shape[1], len(out_size)
    win = win.reshape(n, groups, c // groups, *win.shape[2:])
    win = win.transpose(1, 0, *_tail(3, dims), 2, *_tail(3 + dims, dims))
    return win.reshape(groups, n * math.prod(out_size), -1), out_size, pads


def _weight_matrix(w, groups):
    """(O, C/G, *kernel) weights as (G, C/G * prod(kernel), O/G)."""
    return w.reshape(groups, w.shape[0] // groups, -1).transpose(0, 2, 1)


def _grad_matrix(g, groups):
    """(N, O, *out) output gradients as (G, N * prod(out), O/G)."""
    n, o, *out_size = g.shape
    g = g.reshape(n, groups, o // groups, *out_size).transpose(1, 0, *_tail(3, len(out_size)), 2)
    return g.reshape(groups, n * math.prod(out_size), -1)


def _convolution(x, w, stride, padding, dilation, groups):
    """Cross-correlation of (N, C, *spatial) input with (O, C/groups, *kernel) weights, without bias."""
    cols, out_size, _ = _im2col(x, w.shape, stride, padding, dilation, groups)
    out = np.matmul(cols, _weight_matrix(w, groups))
    n, dims = x.shape[0], len(out_size)
    out = out.reshape(groups, n, *out_size, -1).transpose(1, 0, 2 + dims, *_tail(2, dims))
    return out.reshape(n, w.shape[0], *out_size)


def _transposed_conv(g, w, x_shape, stride, padding, dilation, groups):
    """The adjoint of a convolution applied to g: the (N, C, *spatial) = x_shape input gradient of a convolution with
    weights w (O, C/groups, *kernel) whose output gradient is g (N, O, *out)."""
    n, c, out_size = x_shape[0], x_shape[1], g.shape[2:]
    dims = len(out_size)
    cols = np.matmul(_grad_matrix(g, groups), _weight_matrix(w, groups).transpose(0, 2, 1))
    cols = cols.reshape(groups, n, *out_size, c // groups, *w.shape[2:])
    cols = cols.transpose(1, 0, 2 + dims, *_tail(2, dims), *_tail(3 + dims, dims))
    _, pads = _geometry(x_shape[2:], w.shape[2:], stride, padding, dilation)
    return _col2im(cols.reshape(n, c, *out_size, *w.shape[2:]), x_shape, pads, stride, dilation)


def _conv_weight_grad(g, x, w, stride, padding, dilation, groups):
    """Gradient of a convolution with respect to its weights w."""
    cols, _, _ = _im2col(x, w.shape, stride, padding, dilation, groups)
    grad = np.matmul(cols.transpose(0, 2, 1), _grad_matrix(g, groups))
    return grad.transpose(0, 2, 1).reshape(w.shape)


def _conv_transpose_parse(dims: int, x, weight, stride=1, padding=0, output_padding=0, groups: int = 1, dilation=1):
    attrs = {"stride": spatial(stride, "stride", dims), "padding": spatial(padding, "padding", dims),
             "output_padding": spatial(output_padding, "output_padding", dims),
             "dilation": spatial(dilation, "dilation", dims), "groups": int(groups)}
    return (x, weight), attrs


def _conv_transpose_infer(x, weight, stride, padding, output_padding, dilation, groups):
    _require_rank(x, "input", len(stride))
    _require_rank(weight, "weight", len(stride))
    _floating_pair(x, weight)
    if x.shape[1] != weight.shape[0] or weight.shape[0] % groups:
        raise ValueError(f"weight of shape {list(weight.shape)} with groups={groups} expects {weight.shape[0]} input "
                         f"channels (divisible by groups), got input of shape {list(x.shape)}")
    if any(op >= s and op >= d for op, s, d in zip(output_padding, stride, dilation)):
        raise ValueError(f"output padding {list(output_padding)} must be smaller than either stride {list(stride)} "
                         f"or dilation {list(dilation)}")
    out_shape = _conv_transpose_shape(x.shape, weight.shape, stride, padding, output_padding, dilation, groups)
    if any(o < 1 for o in out_shape[2:]):
        raise ValueError(f"output size {list(out_shape[2:])} is too small for input of shape {list(x.shape)}")
    return out_shape, x.dtype


def _conv_transpose_shape(x_shape, w_shape, stride, padding, output_padding, dilation, groups) -> tuple:
    """(N, C_out, *out) with out = (size - 1) * stride - 2 * padding + dilation * (K - 1) + output_padding + 1
    (torch.nn.ConvTranspose2d's formula)."""
    return (x_shape[0], w_shape[1] * groups) + tuple(
        (n - 1) * s - 2 * p + d * (k - 1) + op + 1
        for n, s, p, d, k, op in zip(x_shape[2:], stride, padding, dilation, w_shape[2:], output_padding))


def _conv_transpose(x, w, stride, padding, output_padding, dilation, groups):
    """Transposed convolution of (N, C_in, *spatial) input with (C_in, C_out/groups, *kernel) weight, without bias:
    the adjoint of the convolution (each input element scatters its weighted kernel onto the output)."""
    out_shape = _conv_transpose_shape(x.shape, w.shape, stride, padding, output_padding, dilation, groups)
    return _transposed_conv(x, w, out_shape, stride, padding, dilation, groups)


# ---- pooling --------------------------------------------------------------------------------------------------
def _pool_attrs(dims: int, kernel_size, stride, padding, dilation, ceil_mode) -> dict:
    kernel = spatial(kernel_size, "kernel_size", dims)
    return {"kernel": kernel, "stride": kernel if stride is None else spatial(stride, "stride", dims),
            "padding": spatial(padding, "padding", dims), "dilation": spatial(dilation, "dilation", dims),
            "ceil_mode": bool(ceil_mode)}


def _max_parse(dims: int, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False):
    return (x,), _pool_attrs(dims, kernel_size, stride, padding, dilation, ceil_mode)


def _avg_parse(dims: int, x, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None):
    if divisor_override is not None and (not isinstance(divisor_override, int) or divisor_override <= 0):
        raise ValueError(f"avg_pool{dims}d: divisor_override must be a positive int, got {divisor_override!r}")
    attrs = _pool_attrs(dims, kernel_size, stride, padding, 1, ceil_mode)
    return (x,), {**attrs, "count_include_pad": bool(count_include_pad), "divisor_override": divisor_override}


def _pool_infer(x, kernel, stride, padding, dilation, ceil_mode, **_):
    _require_rank(x, "input", len(kernel))
    if not x.dtype.is_floating_point:
        raise TypeError(f"expected a floating point input, got {x.dtype.name}")
    if any(p > k // 2 for p, k in zip(padding, kernel)):
        raise ValueError(f"padding {list(padding)} should be at most half of the kernel size {list(kernel)}")
    out_size, _ = _geometry(x.shape[2:], kernel, stride, padding, dilation, ceil_mode)
    return tuple(x.shape[:2]) + out_size, x.dtype


def _pool_windows(x, kernel, stride, padding, dilation, ceil_mode, fill):
    out_size, pads = _geometry(x.shape[2:], kernel, stride, padding, dilation, ceil_mode)
    return _windows(_pad(x, pads, fill), kernel, stride, dilation, out_size), pads


def _argmax_windows(x, kernel, stride, padding, dilation, ceil_mode):
    """Each window flattened (N, C, *out, prod(kernel)), the position of its first maximum in it (a trailing axis of
    1; NaN counts as the maximum, as in torch), and the padding."""
    win, pads = _pool_windows(x, kernel, stride, padding, dilation, ceil_mode, -np.inf)
    flat = win.reshape(*win.shape[:2 + len(kernel)], -1)
    return flat, np.argmax(flat, axis=-1)[..., None], pads


def _max_pool(x, kernel, stride, padding, dilation, ceil_mode):
    """Maximum over each (dilated) window of an (N, C, *spatial) input; padding counts as -inf."""
    win, _ = _pool_windows(x, kernel, stride, padding, dilation, ceil_mode, -np.inf)
    return win.max(axis=_tail(2 + len(kernel), len(kernel)))


def _max_pool_grad(g, x, kernel, stride, padding, dilation, ceil_mode):
    """Gradient of max pooling: each window's gradient goes to its first maximum, as in torch."""
    flat, argmax, pads = _argmax_windows(x, kernel, stride, padding, dilation, ceil_mode)
    cols = np.zeros(flat.shape, g.dtype)
    np.put_along_axis(cols, argmax, g[..., None], axis=-1)
    return _col2im(cols.reshape(*g.shape, *kernel), x.shape, pads, stride, dilation)


def _max_pool_indices(x, kernel, stride, padding, dilation, ceil_mode):
    """torch's return_indices: where each window's first maximum lies, as a flat index into its (N, C) plane of the
    unpadded input (the index max_unpool scatters to)."""
    _, argmax, _ = _argmax_windows(x, kernel, stride, padding, dilation, ceil_mode)
    taps = np.unravel_index(argmax[..., 0], kernel)
    out_size = argmax.shape[2:-1]
    where = [np.arange(o).reshape((-1,) + (1,) * (len(kernel) - 1 - i)) * s + t * d - p
             for i, (o, s, t, d, p) in enumerate(zip(out_size, stride, taps, dilation, padding))]
    return np.ravel_multi_index(tuple(np.broadcast_arrays(*where)), x.shape[2:]).astype(np.int64)


def _avg_divisor(size, kernel, stride, padding, out_size, count_include_pad: bool, divisor_override):
    """Element count of each window (shape out_size): padding counts unless count_include_pad is False (torch's
    rule); divisor_override replaces it."""
    if divisor_override is not None:
        return divisor_override
    counts = []
    for n, k, s, p, o in zip(size, kernel, stride, padding, out_size):
        start = np.arange(o) * s
        lo, hi = (0, n + 2 * p) if count_include_pad else (p, p + n)
        counts.append(np.clip(start + k, lo, hi) - np.clip(start, lo, hi))
    return functools.reduce(np.multiply.outer, counts)


def _avg_pool(x, kernel, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override):
    """Mean over each window of an (N, C, *spatial) input (or its sum divided by divisor_override)."""
    win, _ = _pool_windows(x, kernel, stride, padding, dilation, ceil_mode, 0)
    total = win.sum(axis=_tail(2 + len(kernel), len(kernel)))
    return total / _avg_divisor(x.shape[2:], kernel, stride, padding, total.shape[2:], count_include_pad,
                                divisor_override)


def _avg_pool_grad(g, x, kernel, stride, padding, dilation, ceil_mode, count_include_pad, divisor_override):
    """Gradient of average pooling: each window's gradient spread evenly over the window."""
    share = g / _avg_divisor(x.shape[2:], kernel, stride, padding, g.shape[2:], count_include_pad, divisor_override)
    _, pads = _geometry(x.shape[2:], kernel, stride, padding, dilation, ceil_mode)
    cols = np.broadcast_to(share[(..., *(None,) * len(kernel))], share.shape + tuple(kernel))
    return _col2im(cols, x.shape, pads, stride, dilation)


def _same_shape_as(i: int):
    """infer of a gradient op: the shape of input i, the dtype of the gradient (input 0)."""
    return lambda *inputs, **attrs: (tuple(inputs[i].shape), inputs[0].dtype)


def _onnx_conv(g, n):
    return g.op("Conv", g.name(n.inputs[0]), g.name(n.inputs[1]), strides=list(n.attrs["stride"]),
                pads=list(n.attrs["padding"]) * 2, dilations=list(n.attrs["dilation"]), group=n.attrs["groups"])


def _onnx_max_pool(g, n):
    return g.op("MaxPool", g.name(n.inputs[0]), kernel_shape=list(n.attrs["kernel"]), strides=list(n.attrs["stride"]),
                pads=list(n.attrs["padding"]) * 2, dilations=list(n.attrs["dilation"]),
                ceil_mode=int(n.attrs["ceil_mode"]))


def _window_ops(dims: int) -> tuple:
    """The ops over `dims` spatial dims: conv, conv_transpose, max_pool, max_pool_indices and avg_pool (named as
    torch's, conv{dims}d ...) and their gradient ops, all from the rank-generic numpy functions above."""
    def conv_backward(c, g):
        x, w = c.inputs
        return (conv_input_grad(g, w, x, **c.attrs) if x.requires_grad else None,
                conv_weight_grad(g, x, w, **c.attrs) if w.requires_grad else None)

    conv = op(f"conv{dims}d", OTHER, _conv_infer, backward=conv_backward, parse=functools.partial(_conv_parse, dims),
              saves=(CROSS,), autocast=LOWER, onnx=_onnx_conv)(_convolution)

    @op(f"conv{dims}d_input_grad", OTHER, _same_shape_as(2), saves=(0, 1),
        backward=lambda c, gg: (conv(gg, c.inputs[1], **c.attrs),
                                conv_weight_grad(c.inputs[0], gg, c.inputs[1], **c.attrs), None))
    def conv_input_grad(g, w, x, stride, padding, dilation, groups):
        """Gradient of the convolution with respect to its input x (a transposed convolution of g with w)."""
        return _transposed_conv(g, w, x.shape, stride, padding, dilation, groups)

    conv_weight_grad = op(f"conv{dims}d_weight_grad", OTHER, _same_shape_as(2), saves=(0, 1),
                          backward=lambda c, gg: (conv(c.inputs[1], gg, **c.attrs),
                                                  conv_input_grad(c.inputs[0], gg, c.inputs[1], **c.attrs), None)
                          )(_conv_weight_grad)

    def conv_transpose_backward(c, g):
        """The transposed convolution is the convolution's input gradient, so its gradients are the convolution
        (input) and the convolution's weight gradient with the roles of input and output swapped."""
        x, w = c.inputs
        attrs = {k: v for k, v in c.attrs.items() if k != "output_padding"}
        return (conv(g, w, **attrs) if x.requires_grad else None,
                conv_weight_grad(x, g, w, **attrs) if w.requires_grad else None)

    conv_transpose = op(f"conv_transpose{dims}d", OTHER, _conv_transpose_infer, backward=conv_transpose_backward,
                        parse=functools.partial(_conv_transpose_parse, dims), saves=(CROSS,))(_conv_transpose)

    max_pool_grad = op(f"max_pool{dims}d_grad", OTHER, _same_shape_as(1))(_max_pool_grad)
    max_pool = op(f"max_pool{dims}d", OTHER, _pool_infer, parse=functools.partial(_max_parse, dims), saves=(0,),
                  backward=lambda c, g: (max_pool_grad(g, c.inputs[0], **c.attrs),),
                  onnx=_onnx_max_pool)(_max_pool)
    max_pool_indices = op(f"max_pool{dims}d_indices", OTHER,
                          lambda x, **attrs: (_pool_infer(x, **attrs)[0], dtypes.int64),
                          parse=functools.partial(_max_parse, dims))(_max_pool_indices)

    avg_pool_grad = op(f"avg_pool{dims}d_grad", OTHER, _same_shape_as(1))(_avg_pool_grad)
    avg_pool = op(f"avg_pool{dims}d", OTHER, _pool_infer, parse=functools.partial(_avg_parse, dims), saves=(),
                  backward=lambda c, g: (avg_pool_grad(g, c.inputs[0], **c.attrs),))(_avg_pool)
    return conv, conv_transpose, max_pool, max_pool_indices, avg_pool


conv2d, conv_transpose2d, max_pool2d, max_pool2d_indices, avg_pool2d = _window_ops(2)
conv3d, conv_transpose3d, max_pool3d, max_pool3d_indices, avg_pool3d = _window_ops(3)


# ---- connectionist temporal classification --------------------------------------------------------------------
def _ctc_infer(log_probs, targets, input_lengths, target_lengths, blank, zero_infinity):
    if log_probs.ndim != 3 or not log_probs.dtype.is_floating_point:
        raise ValueError(f"expected floating log_probs of shape (T, N, C), got {log_probs.dtype.name} of shape "
                         f"{list(log_probs.shape)}")
    for name, t in (("targets", targets), ("input_lengths", input_lengths), ("target_lengths", target_lengths)):
        if t.dtype.is_floating_point or t.dtype is dtypes.bool_:
            raise TypeError(f"{name} must be integers, got {t.dtype.name}")
    n = log_probs.shape[1]
    if tuple(input_lengths.shape) != (n,) or tuple(target_lengths.shape) != (n,):
        raise ValueError(f"input_lengths and target_lengths must have one entry per batch element ({n}), got shapes "
                         f"{list(input_lengths.shape)} and {list(target_lengths.shape)}")
    if targets.ndim not in (1, 2) or targets.ndim == 2 and targets.shape[0] != n:
        raise ValueError(f"targets must be (N, S) padded or 1-d concatenated, got shape {list(targets.shape)} for a "
                         f"batch of {n}")
    if not 0 <= blank < log_probs.shape[2]:
        raise ValueError(f"blank must be in label range, got blank={blank} for {log_probs.shape[2]} classes")
    return (n,), log_probs.dtype


def _ctc_lattice(log_probs, targets, input_lengths, target_lengths, blank):
    """The forward (alpha) and backward (beta) variables of Graves et al. 2006 (eqs. 6-10), in log space, (T, N, L)
    over the extended label sequences (blank, l1, blank, l2, ..., blank; L = 2 * max target length + 1), and
    (float64 log_probs, extended labels (N, L), each sample's negative log-likelihood). Raises ValueError for
    lengths out of range, as torch's checks."""
    lp = log_probs.astype(np.float64)
    steps, n, classes = lp.shape
    in_len, tg_len = input_lengths.astype(np.int64), target_lengths.astype(np.int64)
    if (in_len > steps).any() or (in_len < 1).any():
        raise ValueError(f"Expected input_lengths to have value at most {steps} (and at least 1), but got value "
                         f"{in_len[(in_len > steps) | (in_len < 1)][0]}")
    if (tg_len < 0).any():
        raise ValueError(f"target_lengths must not be negative, got {tg_len.min()}")
    if targets.ndim == 2:
        if tg_len.max(initial=0) > targets.shape[1]:
            raise ValueError(f"Expected tensor to have size at least {tg_len.max()} at dimension 1, but got size "
                             f"{targets.shape[1]} for argument #2 'targets'")
        rows = [targets[i, :k] for i, k in enumerate(tg_len)]
    else:
        if tg_len.sum() > targets.shape[0]:
            raise ValueError(f"target_lengths sum to {tg_len.sum()}, more than the {targets.shape[0]} targets")
        starts = np.concatenate([[0], np.cumsum(tg_len)[:-1]])
        rows = [targets[s:s + k] for s, k in zip(starts, tg_len)]
    width = 2 * int(tg_len.max(initial=0)) + 1
    ext = np.full((n, width), blank, np.int64)
    for i, row in enumerate(rows):
        if row.size and ((row < 0) | (row >= classes) | (row == blank)).any():
            raise ValueError(f"targets of batch element {i} must be in [0, {classes}) and not the blank ({blank})")
        ext[i, 1:2 * row.size:2] = row
    ext_len = 2 * tg_len + 1
    emit = lp[:, np.arange(n)[:, None], ext]  # (T, N, L): log y_t(l'_s)
    valid = np.arange(width) < ext_len[:, None]
    skip = np.zeros((n, width), bool)  # l'_s may follow l'_{s-2} directly: a label that differs from that one
    skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    alpha = np.full((steps, n, width), -np.inf)
    alpha[0, :, :2] = np.where(valid[:, :2], emit[0, :, :2], -np.inf)
    for t in range(1, steps):
        prev = alpha[t - 1]
        a = prev.copy()
        a[:, 1:] = np.logaddexp(a[:, 1:], prev[:, :-1])
        a[:, 2:] = np.where(skip[:, 2:], np.logaddexp(a[:, 2:], prev[:, :-2]), a[:, 2:])
        alpha[t] = np.where(valid, a + emit[t], -np.inf)
    beta = np.full((steps, n, width), -np.inf)
    last = np.stack([np.arange(width) == k - 1 for k in ext_len]) | np.stack([np.arange(width) == k - 2
                                                                               for k in ext_len])
    for t in range(steps - 1, -1, -1):
        b = np.full((n, width), -np.inf)
        if t < steps - 1:
            following = beta[t + 1]
            b = following.copy()
            b[:, :-1] = np.logaddexp(b[:, :-1], following[:, 1:])
            b[:, :-2] = np.where(skip[:, 2:], np.logaddexp(b[:, :-2], following[:, 2:]), b[:, :-2])
        end = (t == in_len - 1)[:, None]
        beta[t] = np.where(end & last, emit[t], np.where((t < in_len - 1)[:, None] & valid, b + emit[t], -np.inf))
    final = alpha[in_len - 1, np.arange(n)]
    nll = -np.logaddexp(final[np.arange(n), ext_len - 1],
                        np.where(ext_len > 1, final[np.arange(n), np.maximum(ext_len - 2, 0)], -np.inf))
    return alpha, beta, lp, ext, nll


@op("ctc_loss_grad", OTHER, _same_shape_as(1))
def ctc_loss_grad(g, log_probs, targets, input_lengths, target_lengths, blank, zero_infinity):
    """Gradient of ctc_loss as torch computes it: exp(log_probs) minus each class's posterior occupation
    (Graves et al. 2006, eq. 16: the sum of alpha * beta over the label's positions, over the sequence's
    probability), for t below the sample's input length (0 after it), times the incoming gradient. That is the
    gradient with respect to the logits of a log_softmax (torch's convention; it differs from the partial derivative
    with respect to log_probs by exp(log_probs), which log_softmax's backward cancels)."""
    alpha, beta, lp, ext, nll = _ctc_lattice(log_probs, targets, input_lengths, target_lengths, blank)
    steps, n, classes = lp.shape
    both = alpha + beta
    top = both.max(axis=2, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    occupied = np.zeros((steps, n, classes))
    rows = np.arange(n)
    for s in range(ext.shape[1]):  # within one s each sample names one class: no repeated index in the sum
        occupied[:, rows, ext[:, s]] += np.exp(both[:, :, s] - top[:, :, 0])
    with np.errstate(divide="ignore", invalid="ignore"):
        grad = np.exp(lp) - np.exp(np.log(occupied) + top + nll[:, None] - lp)
    grad = np.where((np.arange(steps)[:, None] < input_lengths.astype(np.int64))[:, :, None], grad, 0.0)
    if zero_infinity:
        grad = np.where(np.isinf(nll)[None, :, None], 0.0, grad)
    return grad * g.astype(np.float64)[None, :, None]


@op("ctc_loss", OTHER, _ctc_infer, saves=(0, 1, 2, 3),
    backward=lambda c, g: (ctc_loss_grad(g, *c.inputs, **c.attrs), None, None, None))
def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank, zero_infinity):
    """Each sample's negative log-likelihood -log p(target | log_probs) under connectionist temporal classification
    (Graves, Fernandez, Gomez and Schmidhuber 2006, "Connectionist Temporal Classification: Labelling Unsegmented
    Sequence Data with Recurrent Neural Networks"): the forward-backward recursion over the target with blanks
    between its labels, in log space. log_probs (T, N, C), targets (N, S) padded or 1-d concatenated, one input
    and one target length per sample; zero_infinity turns an impossible alignment's inf into 0."""
    nll = _ctc_lattice(log_probs, targets, input_lengths, target_lengths, blank)[4]
    return np.where(np.isinf(nll), 0.0, nll) if zero_infinity else nll


# ---- embedding ------------------------------------------------------------------------------------------------
def _embedding_infer(indices, weight, padding_idx):
    if indices.dtype not in (dtypes.int64, dtypes.int32):
        raise TypeError(f"indices must be int64 or int32, got {indices.dtype.name}")
    if weight.ndim != 2:
        raise ValueError(f"weight must be 2-d (num_embeddings, embedding_dim), got shape {list(weight.shape)}")
    return tuple(indices.shape) + (weight.shape[1],), weight.dtype


@op("embedding", OTHER, _embedding_infer, saves=(0,), parse=lambda indices, weight, padding_idx=None: (
    (indices, weight), {"padding_idx": padding_idx}),
    backward=lambda c, g: (None, embedding_grad(g, *c.inputs, **c.attrs)),
    onnx=lambda g, n: g.op("Gather", g.name(n.inputs[1]), g.name(n.inputs[0]), axis=0))
def embedding(indices, weight, padding_idx):
    """Rows of weight picked by integer indices: output shape indices.shape + (embedding_dim,)."""
    rows = weight.shape[0]
    if indices.size and (indices.min() < 0 or indices.max() >= rows):
        bad = indices[(indices < 0) | (indices >= rows)].ravel()[0]
        raise values_refused(IndexError)(f"index {bad} is out of range for an embedding table of {rows} rows "
                                         f"(valid [0, {rows}))")  # the caller's values, not the program, are wrong
    return np.take(weight, indices, axis=0)


@op("embedding_grad", OTHER, lambda g, indices, weight, padding_idx: (tuple(weight.shape), g.dtype))
def embedding_grad(g, indices, weight, padding_idx):
    """Gradient of embedding: output gradients scatter-added onto the rows they came from (none to padding_idx).
    float32 and float64 as a product of a sparse (rows, positions) matrix of ones with the gradients (scipy adds
    each row's positions in order, as np.add.at does, 20x faster: 0.24 against 5.5 ms for 2048 positions of 256)."""
    rows, g = indices.ravel(), g.reshape(-1, weight.shape[1])
    if g.dtype in (np.float32, np.float64):
        ones = scipy.sparse.csr_array((np.ones(rows.size, g.dtype), (rows, np.arange(rows.size))),
                                      shape=(weight.shape[0], rows.size))
        out = np.asarray(ones @ g, g.dtype)
    else:
        out = np.zeros(weight.shape, g.dtype)
        np.add.at(out, rows, g)
    if padding_idx is not None:
        out[padding_idx] = 0
    return out


# ---- random and structural masks ------------------------------------------------------------------------------
def _dropout_mask_infer(x, p):
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, got {p}")
    return tuple(x.shape), x.dtype


@op("dropout_mask", OTHER, _dropout_mask_infer, backward=lambda c, g: (None,), pure=False, saves=())
def dropout_mask(x, p):
    """x-shaped scale mask: 0 with probability p, else 1/(1-p); drawn from graphc's default generator."""
    keep = creation.default_generator._rng.random(x.shape) >= p
    return keep * (1.0 / (1.0 - p) if p < 1 else 0.0)


@op("causal_mask", OTHER, lambda scores: (tuple(scores.shape[-2:]), dtypes.bool_),
    onnx=lambda g, n: g.cast(g.op(
    "Trilu", g.op("Expand", g.const(np.int64(1)), g.op("Shape", g.name(n.inputs[0]), start=-2)), g.const(np.int64(1)),
    upper=1), n.dtype))
def causal_mask(scores):
    """(L, S) bool mask of the positions a causal attention hides: key index above query index."""
    return np.triu(np.ones(scores.shape[-2:], dtype=bool), k=1)


__all__ = ["conv2d", "conv_transpose2d", "max_pool2d", "max_pool2d_indices", "avg_pool2d", "conv3d", "conv_transpose3d",
           "max_pool3d", "max_pool3d_indices", "avg_pool3d", "ctc_loss", "embedding", "dropout_mask", "causal_mask"]
