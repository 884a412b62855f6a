"""Folding an eval-mode batch norm into the convolution or linear layer before it (torch.nn.utils.fusion)."""
from __future__ import annotations

import copy

from ...autograd import no_grad
from ...ops.creation import zeros
from ...ops.elementwise import rsqrt
from ...tensor import Tensor
from ..module import Module, Parameter


def fuse_conv_bn_weights(conv_w: Tensor, conv_b: Tensor | None, bn_rm: Tensor, bn_rv: Tensor, bn_eps: float,
                         bn_w: Tensor | None, bn_b: Tensor | None, transpose: bool = False) -> tuple[Tensor, Tensor]:
    """(weight, bias) Parameters of a convolution equal to conv followed by the eval-mode batch norm:
    w * s (per output channel), (b - running_mean) * s + bn_b, s = bn_w / sqrt(running_var + eps)."""
    conv_b = zeros(bn_rm.shape[0], dtype=conv_w.dtype) if conv_b is None else conv_b
    bn_w = bn_rm.new_ones(bn_rm.shape) if bn_w is None else bn_w
    bn_b = bn_rm.new_zeros(bn_rm.shape) if bn_b is None else bn_b
    scale = bn_w * rsqrt(bn_rv + bn_eps)
    shape = (1, -1) + (1,) * (conv_w.ndim - 2) if transpose else (-1,) + (1,) * (conv_w.ndim - 1)
    weight = (conv_w * scale.reshape(shape)).to(conv_w.dtype)
    bias = ((conv_b - bn_rm) * scale + bn_b).to(conv_w.dtype)
    return Parameter(weight.detach(), conv_w.requires_grad), Parameter(bias.detach(), conv_b.requires_grad)


def fuse_conv_bn_eval(conv: Module, bn: Module, transpose: bool = False) -> Module:
    """A copy of conv whose weight and bias include the eval-mode batch norm bn. Raises RuntimeError if either is
    in training mode."""
    if conv.training or bn.training:
        raise RuntimeError("Fusion only for eval!")
    fused = copy.deepcopy(conv)
    with no_grad():
        fused.weight, fused.bias = fuse_conv_bn_weights(fused.weight, fused.bias, bn.running_mean, bn.running_var,
                                                        bn.eps, bn.weight, bn.bias, transpose)
    return fused


def fuse_linear_bn_weights(linear_w: Tensor, linear_b: Tensor | None, bn_rm: Tensor, bn_rv: Tensor, bn_eps: float,
                           bn_w: Tensor, bn_b: Tensor) -> tuple[Tensor, Tensor]:
    """(weight, bias) Parameters of a linear layer equal to linear followed by the eval-mode batch norm."""
    return fuse_conv_bn_weights(linear_w, linear_b, bn_rm, bn_rv, bn_eps, bn_w, bn_b)


def fuse_linear_bn_eval(linear: Module, bn: Module) -> Module:
    """A copy of linear whose weight and bias include the eval-mode batch norm bn (over its out_features). Raises
    RuntimeError if either is in training mode."""
    return fuse_conv_bn_eval(linear, bn)
