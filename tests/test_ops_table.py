"""Every public op against torch: values and gradients on random inputs, contiguous and not (transposed, sliced),
with broadcasting; a sample against finite differences in float64."""
from __future__ import annotations

import inspect
import re
import sys

import numpy as np
import pytest
import torch
from conftest import assert_close

import graphc
from graphc.ops import METHOD_MODULES

INDEX = [2, 0, 2, 1]


def pos(L, x):
    return x.abs() + 0.5


# (name, fn(L, *inputs) with L = graphc or torch, input shapes); pos() makes an input positive (log, sqrt, ...).
CASES = [
    ("neg", lambda L, x: -x, [(3, 4)]),
    ("abs", lambda L, x: L.abs(x), [(3, 4)]),
    ("exp", lambda L, x: L.exp(x), [(3, 4)]),
    ("log", lambda L, x: L.log(pos(L, x)), [(3, 4)]),
    ("log1p", lambda L, x: L.log1p(pos(L, x)), [(3, 4)]),
    ("sqrt", lambda L, x: L.sqrt(pos(L, x)), [(3, 4)]),
    ("rsqrt", lambda L, x: L.rsqrt(pos(L, x)), [(3, 4)]),
    ("reciprocal", lambda L, x: L.reciprocal(pos(L, x)), [(3, 4)]),
    ("sin", lambda L, x: L.sin(x), [(3, 4)]),
    ("cos", lambda L, x: L.cos(x), [(3, 4)]),
    ("tanh", lambda L, x: L.tanh(x), [(3, 4)]),
    ("sigmoid", lambda L, x: L.sigmoid(x), [(3, 4)]),
    ("relu", lambda L, x: L.relu(x), [(3, 4)]),
    ("erf", lambda L, x: L.erf(x), [(3, 4)]),
    ("sign", lambda L, x: L.sign(x) * x, [(3, 4)]),
    ("floor", lambda L, x: L.floor(x * 3) + x, [(3, 4)]),
    ("ceil", lambda L, x: L.ceil(x * 3) + x, [(3, 4)]),
    ("clamp", lambda L, x: L.clamp(x, -0.5, 0.5), [(3, 4)]),
    ("clamp_min", lambda L, x: x.clamp(min=0.1), [(3, 4)]),
    ("clamp_tensor", lambda L, x, lo, hi: L.clamp(x, min=lo - 0.5, max=hi + 0.5), [(3, 4), (4,), (3, 1)]),
    ("clamp_tensor_min", lambda L, x, lo: x.clamp(min=lo), [(3, 4), (3, 4)]),
    ("clip", lambda L, x, lo: L.clip(x, lo), [(3, 4), (4,)]),
    ("add", lambda L, a, b: a + b, [(3, 4), (4,)]),
    ("add_scalar", lambda L, a: 2.5 + a, [(3, 4)]),
    ("sub", lambda L, a, b: a - b, [(3, 1), (1, 4)]),
    ("rsub", lambda L, a: 1 - a, [(3, 4)]),
    ("mul", lambda L, a, b: a * b, [(2, 3, 4), (3, 1)]),
    ("div", lambda L, a, b: a / pos(L, b), [(3, 4), (3, 4)]),
    ("rdiv", lambda L, a: 2 / pos(L, a), [(3, 4)]),
    ("pow", lambda L, a, b: pos(L, a) ** b, [(3, 4), (4,)]),
    ("pow_scalar", lambda L, a: a**3, [(3, 4)]),
    ("pow_scalar_zero", lambda L, a: (a * (a > 0)) ** 0 + a, [(3, 4)]),
    ("pow_zero_base", lambda L, a, b: (a * (a > 0)) ** (b.abs() + 1), [(3, 4), (3, 4)]),
    ("pow_zero_exponent", lambda L, a, b: ((a.abs() + 0.5) * (b > 0)) ** (b * (b > 0)), [(3, 4), (3, 4)]),
    ("maximum", lambda L, a, b: L.maximum(a, b), [(3, 4), (4,)]),
    ("minimum", lambda L, a, b: L.minimum(a, b), [(3, 4), (3, 1)]),
    ("remainder", lambda L, a: L.remainder(a, 0.7), [(3, 4)]),
    ("floor_divide", lambda L, a: L.floor_divide(a.detach(), 0.7) + a, [(3, 4)]),
    ("where", lambda L, a, b: L.where(a > 0, a, b), [(3, 4), (4,)]),
    ("masked_fill", lambda L, a: a.masked_fill(a < 0, 0.25), [(3, 4)]),
    ("masked_fill_tensor_value", lambda L, a, v: a.masked_fill(a < 0, v.sum()), [(3, 4), (2,)]),
    ("masked_fill_broadcast_mask", lambda L, a, m: L.masked_fill(a, m > 0, -1.0), [(3, 4), (4,)]),
    ("where_scalar_branches", lambda L, a: L.where(a > 0, 1.0, a) + L.where(a < 0.5, a, 0.0), [(3, 4)]),
    ("square", lambda L, x: L.square(x), [(3, 4)]),
    ("addcmul", lambda L, a, b, c: L.addcmul(a, b, c, value=0.5), [(3, 4), (3, 4), (4,)]),
    ("addcdiv", lambda L, a, b, c: L.addcdiv(a, b, pos(L, c), value=2), [(3, 4), (3, 4), (3, 4)]),
    ("eq", lambda L, a, b: a == b, [(3, 4), (3, 4)]),
    ("lt", lambda L, a, b: a < b, [(3, 4), (4,)]),
    ("ge", lambda L, a, b: a >= b, [(3, 4), (4,)]),
    ("ne", lambda L, a: a != 0.1, [(3, 4)]),
    ("logical", lambda L, a, b: ((a > 0) & (b > 0)) | ~(a > 0.5), [(3, 4), (3, 4)]),
    ("gt", lambda L, a, b: L.gt(a, b), [(3, 4), (3, 1)]),
    ("logical_fns", lambda L, a, b: L.logical_or(L.logical_and(a > 0, b > 0), L.logical_not(a > 0.5)), [(3, 4), (4,)]),
    ("isnan", lambda L, a: L.isnan(a.masked_fill(a > 0, float("nan"))), [(3, 4)]),
    ("le", lambda L, a, b: L.le(a, b), [(3, 4), (4,)]),
    ("greater", lambda L, a, b: L.greater(a, b) & a.greater_equal(0.1), [(3, 4), (3, 1)]),
    ("less", lambda L, a, b: L.less(a, b) | L.less_equal(a, 0.2) | a.not_equal(b), [(3, 4), (4,)]),
    ("greater_equal", lambda L, a: L.greater_equal(a, 0) ^ L.not_equal(a, 0.5), [(3, 4)]),
    ("less_equal", lambda L, a: a.less_equal(0), [(3, 4)]),
    ("sum", lambda L, x: x.sum(), [(3, 4)]),
    ("sum_dim", lambda L, x: x.sum(1), [(3, 4, 5)]),
    ("sum_dims_keepdim", lambda L, x: x.sum((0, -1), keepdim=True), [(3, 4, 5)]),
    ("sum_dtype", lambda L, x: x.sum(-1, dtype=L.float64), [(3, 4)]),
    ("sum_empty_dims", lambda L, x: x.sum(dim=[]), [(3, 4)]),
    ("prod", lambda L, x: x.prod(), [(3, 4)]),
    ("prod_dim", lambda L, x: L.prod(x, 1, keepdim=True), [(3, 4, 5)]),
    ("prod_zeros", lambda L, x: (x * (x.abs() > 0.5)).prod(1), [(6, 4)]),
    ("all_any", lambda L, x: L.stack([(x > 0).all(), (x > 1).any(), x.any(), L.all(x > -3)]), [(3, 4)]),
    ("all_any_dim", lambda L, x: (x > 0).all(1, keepdim=True) | L.any(x > 0.5, dim=0, keepdim=True), [(3, 4)]),
    ("cumsum", lambda L, x: x.cumsum(1), [(3, 4)]),
    ("cumsum_neg_dim", lambda L, x: L.cumsum(x, dim=-3), [(3, 4, 2)]),
    ("cumsum_bool", lambda L, x: (x > 0).cumsum(0), [(3, 4)]),
    ("mean", lambda L, x: x.mean(-2), [(3, 4, 5)]),
    ("mean_dtype", lambda L, x: L.mean(x, 0, dtype=L.float64), [(3, 4)]),
    ("amax", lambda L, x: x.amax(1), [(3, 4, 5)]),
    ("amin", lambda L, x: x.amin((0, 2), keepdim=True), [(3, 4, 5)]),
    ("max_all", lambda L, x: x.max(), [(3, 4)]),
    ("max_dim", lambda L, x: x.max(1).values, [(3, 4, 5)]),
    ("max_dim_indices", lambda L, x: x.max(-1, keepdim=True).indices, [(3, 4)]),
    ("min_dim", lambda L, x: L.min(x, 0)[0], [(3, 4)]),
    ("min_all", lambda L, x: L.min(x), [(3, 4)]),
    ("max_tensor", lambda L, a, b: L.max(a, b), [(3, 4), (4,)]),
    ("argmax", lambda L, x: x.argmax(1), [(3, 4, 5)]),
    ("argmax_all", lambda L, x: L.argmax(x), [(3, 4)]),
    ("argmin", lambda L, x: x.argmin(-1, keepdim=True), [(3, 4)]),
    ("var", lambda L, x: x.var(), [(3, 4)]),
    ("var_dim", lambda L, x: x.var(1, keepdim=True), [(3, 4, 5)]),
    ("var_biased", lambda L, x: L.var(x, 0, unbiased=False), [(3, 4)]),
    ("var_correction", lambda L, x: L.var(x, (0, 1), correction=0), [(3, 4, 2)]),
    ("std", lambda L, x: x.std(-1), [(3, 4)]),
    ("norm", lambda L, x: x.norm(), [(3, 4)]),
    ("norm_p_dim", lambda L, x: L.norm(x, 3, dim=1, keepdim=True), [(3, 4)]),
    ("norm_zero_row", lambda L, x: L.cat([x, x[:1] * 0]).norm(1.5, dim=1), [(3, 4)]),
    ("norm_inf_1_0", lambda L, x: x.norm(float("inf"), dim=0) + x.norm(1) + x.norm(0, dim=(0, 1)), [(3, 4)]),
    ("logsumexp", lambda L, x: L.logsumexp(x * 30, 1), [(3, 4, 5)]),
    ("logsumexp_keepdim", lambda L, x: x.logsumexp(-1, keepdim=True), [(3, 4)]),
    ("softmax", lambda L, x: L.softmax(x * 20, -1), [(3, 4)]),
    ("softmax_dim0", lambda L, x: x.softmax(0), [(3, 4, 5)]),
    ("log_softmax", lambda L, x: L.log_softmax(x * 20, 1), [(3, 4)]),
    ("matmul", lambda L, a, b: a @ b, [(3, 4), (4, 5)]),
    ("matmul_batched", lambda L, a, b: L.matmul(a, b), [(2, 3, 4), (4, 5)]),
    ("matmul_broadcast", lambda L, a, b: a @ b, [(2, 1, 3, 4), (3, 4, 2)]),
    ("matmul_vec_mat", lambda L, a, b: a @ b, [(4,), (4, 5)]),
    ("matmul_mat_vec", lambda L, a, b: a @ b, [(3, 4), (4,)]),
    ("matmul_dot", lambda L, a, b: a @ b, [(4,), (4,)]),
    ("bmm", lambda L, a, b: L.bmm(a, b), [(2, 3, 4), (2, 4, 5)]),
    ("einsum_mm", lambda L, a, b: L.einsum("ij,jk->ik", a, b), [(3, 4), (4, 5)]),
    ("einsum_batch", lambda L, a, b: L.einsum("bij,bkj->bik", a, b), [(2, 3, 4), (2, 5, 4)]),
    ("einsum_outer", lambda L, a, b: L.einsum("i,j", a, b), [(3,), (4,)]),
    ("einsum_sum", lambda L, a: L.einsum("ij->", a), [(3, 4)]),
    ("einsum_rowsum", lambda L, a, b: L.einsum("ij,i->i", a, b), [(3, 4), (3,)]),
    ("einsum_ellipsis", lambda L, a, b: L.einsum("...ij,jk->...ik", a, b), [(2, 3, 4), (4, 5)]),
    ("einsum_three", lambda L, a, b, c: L.einsum("ij,jk,kl->il", a, b, c), [(2, 3), (3, 4), (4, 5)]),
    ("einsum_trace", lambda L, a: L.einsum("ii", a), [(4, 4)]),
    ("einsum_diagonal", lambda L, a: L.einsum("ii->i", a), [(4, 4)]),
    ("einsum_batch_diagonal", lambda L, a, b: L.einsum("bii,bj->bij", a, b), [(2, 3, 3), (2, 4)]),
    ("einsum_diagonal_ellipsis", lambda L, a, b: L.einsum("...ii,ij->...j", a, b), [(2, 3, 3), (3, 4)]),
    ("einsum_triple_label", lambda L, a: L.einsum("iji->j", a), [(3, 2, 3)]),
    ("reshape", lambda L, x: x.reshape(4, -1), [(3, 4)]),
    ("view", lambda L, x: x.contiguous().view(2, 6), [(3, 4)]),
    ("transpose", lambda L, x: x.transpose(0, -1), [(2, 3, 4)]),
    ("swapdims", lambda L, x: L.swapdims(x, 0, -1) + x.swapaxes(-1, 0), [(2, 3, 2)]),
    ("swapaxes", lambda L, x: L.swapaxes(x, 1, 0), [(2, 3, 4)]),
    ("positive", lambda L, x: L.positive(x) * x.positive(), [(2, 3)]),
    ("permute", lambda L, x: x.permute(2, 0, 1), [(2, 3, 4)]),
    ("T", lambda L, x: x.T * 2, [(3, 4)]),
    ("t", lambda L, x: L.t(x) * 2, [(3, 4)]),
    ("unsqueeze", lambda L, x: x.unsqueeze(-1), [(3, 4)]),
    ("squeeze", lambda L, x: x.unsqueeze(1).squeeze(1), [(3, 4)]),
    ("expand", lambda L, x: x.unsqueeze(0).expand(2, 3, 4), [(3, 4)]),
    ("expand_as", lambda L, x, y: x.expand_as(y) * y, [(1, 4), (3, 4)]),
    ("reshape_as", lambda L, x, y: x.reshape_as(y) * y, [(3, 4), (4, 3)]),
    ("view_as", lambda L, x, y: x.contiguous().view_as(y), [(3, 4), (2, 6)]),
    ("flatten", lambda L, x: x.flatten(1), [(2, 3, 4)]),
    ("ravel", lambda L, x: x.ravel(), [(2, 3, 4)]),
    ("repeat", lambda L, x: x.repeat(2, 1, 3), [(3, 4)]),
    ("repeat_tuple", lambda L, x: x.repeat((3, 2)), [(1, 4)]),
    ("clone", lambda L, x: x.clone(), [(3, 4)]),
    ("int_index", lambda L, x: x[1], [(3, 4)]),
    ("neg_index", lambda L, x: x[-1, -2], [(3, 4)]),
    ("slices", lambda L, x: x[:, 1:3], [(3, 4)]),
    ("step_slice", lambda L, x: x[..., ::2], [(3, 4, 5)]),
    ("neg_slice", lambda L, x: x[-2:, :-1], [(3, 4)]),
    ("none_index", lambda L, x: x[None, 1, ..., None], [(3, 4)]),
    ("list_index", lambda L, x: x[[2, 0, 2]], [(3, 4)]),
    ("tensor_index", lambda L, x: x[:, L.tensor(INDEX)], [(3, 4)]),
    ("mask_index", lambda L, x: x[x > 0], [(3, 4)]),
    ("mixed_index", lambda L, x: x[0, :, [1, 2]], [(2, 3, 4)]),
    ("two_arrays", lambda L, x: x[[0, 1], :, [3, 3]], [(2, 3, 4)]),
    ("gather", lambda L, x: L.gather(x, 1, L.tensor([[0, 2], [1, 1], [3, 0]])), [(3, 4)]),
    ("gather_dim0", lambda L, x: x.gather(0, L.tensor([[2, 0, 1, 1]])), [(3, 4)]),
    ("cat", lambda L, a, b: L.cat([a, b], 1), [(3, 4), (3, 2)]),
    ("cat_neg_dim", lambda L, a, b: L.cat((a, b, a), -2), [(2, 3), (1, 3)]),
    ("stack", lambda L, a, b: L.stack([a, b], -1), [(3, 4), (3, 4)]),
    ("split_int", lambda L, x: x.split(3, 1)[1], [(2, 5)]),
    ("split_sizes", lambda L, x: L.split(x, [1, 3], dim=-1)[1] * 2, [(2, 4)]),
    ("chunk", lambda L, x: L.cat(x.chunk(3, 0)[::-1], 0), [(5, 2)]),
    ("unbind", lambda L, x: L.stack(x.unbind(1)[::-1]) * L.stack(L.unbind(x)).sum(), [(3, 4)]),
    ("tril", lambda L, x: L.tril(x, -1), [(3, 4)]),
    ("triu", lambda L, x: x.triu(1), [(2, 3, 4)]),
    ("flip", lambda L, x: L.flip(x, (0, -1)) * x.flip(1), [(3, 4)]),
    ("flip_permute_dims_keyword", lambda L, x: L.flip(x, dims=[1]) * x.flip(dims=(0,)) + x.permute(dims=(1, 0)).T
     - L.permute(x, dims=[1, 0]).T * 2, [(3, 4)]),
    ("roll", lambda L, x: L.roll(x, 1) + x.roll((1, -2), (0, 1)), [(3, 4)]),
    ("narrow", lambda L, x: L.narrow(x, -1, 1, 2)[1:] + x.narrow(0, -2, 2)[:, :1], [(3, 4)]),
    ("narrow_copy", lambda L, x: L.narrow_copy(x, -1, 1, 2)[1:] * x.narrow_copy(0, 1, 2)[:, :2], [(3, 4)]),
    ("split_with_sizes", lambda L, x: L.split_with_sizes(x, [1, 3], 1)[1] * x.split_with_sizes([2, 1])[0].sum(),
     [(3, 4)]),
    ("diagonal", lambda L, x: x.diagonal(1)[:2] * L.diagonal(x, -1), [(3, 4)]),
    ("diagonal_dims", lambda L, x: L.diagonal(x, -1, 0, 2), [(3, 4, 2)]),
    ("diagonal_scatter", lambda L, x, s: L.diagonal_scatter(x, s, 1) * x.diagonal_scatter(s[:2], dim1=1, dim2=0,
                                                                                          offset=-2), [(3, 4), (3,)]),
    ("diag", lambda L, x: L.diag(x, 1), [(3, 4)]),
    ("diag_vector", lambda L, x: x.diag(-1), [(3,)]),
    ("outer", lambda L, a, b: L.outer(a, b) + L.ger(a, b), [(3,), (4,)]),
    ("tile", lambda L, x: x.tile(2, 1, 2) * L.tile(x, (2,))[None], [(3, 4)]),
    ("repeat_interleave", lambda L, x: x.repeat_interleave(2, dim=1), [(3, 4)]),
    ("repeat_interleave_tensor", lambda L, x: L.repeat_interleave(x, L.tensor([1, 0, 2]), dim=0), [(3, 4)]),
    ("repeat_interleave_flat", lambda L, x: x.repeat_interleave(3), [(2, 3)]),
    ("meshgrid", lambda L, a, b: L.stack(L.meshgrid(a, b, indexing="xy")) + L.meshgrid([b, a], indexing="ij")[1],
     [(3,), (4,)]),
    ("sort", lambda L, x: x.sort(1).values, [(3, 4)]),
    ("sort_descending", lambda L, x: L.sort(x, 0, descending=True)[1], [(3, 4)]),
    ("argsort", lambda L, x: x.argsort(-1, descending=True) + L.argsort(x, 0), [(3, 4)]),
    ("topk", lambda L, x: L.topk(x, 2, dim=0, largest=False).values, [(3, 4)]),
    ("topk_indices", lambda L, x: x.topk(3).indices, [(3, 4)]),
    ("msort", lambda L, x: L.msort(x), [(3, 4)]),
    ("scatter", lambda L, x, s: x.scatter(1, L.tensor([[0, 2], [1, 3], [3, 0]]), s), [(3, 4), (3, 2)]),
    ("scatter_value", lambda L, x: L.scatter(x, 0, L.tensor([[2, 0, 1, 1]]), 0.5), [(3, 4)]),
    ("scatter_add", lambda L, x, s: x.scatter_add(1, L.tensor([[0, 0], [1, 3], [3, 3]]), s), [(3, 4), (3, 2)]),
    ("index_select", lambda L, x: x.index_select(1, L.tensor([3, 0, 3])) * L.index_select(x, 0, L.tensor(1)).sum(),
     [(3, 4)]),
    ("index_add", lambda L, x, s: x.index_add(1, L.tensor([0, 0, 3]), s, alpha=2), [(3, 4), (3, 3)]),
    ("index_copy", lambda L, x, s: L.index_copy(x, 0, L.tensor([2, 0]), s), [(3, 4), (2, 4)]),
    ("index_fill", lambda L, x: x.index_fill(1, L.tensor([1, 3]), -1.5) + L.index_fill(x, 0, L.tensor(2), 0.5),
     [(3, 4)]),
    ("masked_select", lambda L, x: L.masked_select(x, x > 0), [(3, 4)]),
    ("masked_select_broadcast", lambda L, x, m: x.masked_select(m > 0), [(3, 4), (4,)]),
    ("nonzero", lambda L, x: (x > 0).nonzero() + L.argwhere(x > 0), [(3, 4)]),
    ("nonzero_tuple", lambda L, x: L.stack(L.nonzero(x > 0, as_tuple=True)), [(3, 4)]),
    ("isinf_isfinite", lambda L, a: L.stack([L.isinf(a / (a > 0)), a.masked_fill(a > 0, float("nan")).isfinite()]),
     [(3, 4)]),
    ("nan_to_num", lambda L, a: L.nan_to_num(a.log(), nan=0.5, neginf=-2.0) + (a / 0).nan_to_num(), [(3, 4)]),
    ("round", lambda L, x: L.round(x * 3) + x + x.round(decimals=2), [(3, 4)]),
    ("trunc_fix", lambda L, x: L.trunc(x * 3) + x.fix() + x, [(3, 4)]),
    ("fmod", lambda L, a, b: L.fmod(a * 3, pos(L, b)) + a.fmod(0.4), [(3, 4), (4,)]),
    ("remainder_tensor", lambda L, a, b: L.remainder(a * 3, pos(L, b)), [(3, 4), (3, 1)]),
    ("expm1", lambda L, x: L.expm1(x) + (x * 1e-4).expm1() * 1e4, [(3, 4)]),
    ("logaddexp", lambda L, a, b: L.logaddexp(a * 10, b), [(3, 4), (4,)]),
    ("lerp", lambda L, a, b, w: L.lerp(a, b, w) + a.lerp(b, 0.3), [(3, 4), (3, 4), (4,)]),
    ("isclose", lambda L, a: L.logical_xor(L.isclose(a, a + 1e-6), a > 0) ^ L.isclose(a, a * 1.1, rtol=0.05, atol=0.01),
     [(3, 4)]),
    ("allclose_equal", lambda L, a: L.tensor([L.allclose(a, a + 1e-7), L.equal(a, a), L.equal(a, a[:1]),
                                              a.allclose(a * 1.1), a.equal(a + 1)]), [(3, 4)]),
    ("cumprod", lambda L, x: x.cumprod(1) + L.cumprod(x * (x.abs() > 0.5), dim=0), [(3, 4)]),
    ("tan_atan", lambda L, x: L.tan(x * 0.5) + L.atan(x) + x.arctan(), [(3, 4)]),
    ("asin_acos", lambda L, x: L.asin(L.tanh(x) * 0.9) * L.acos(L.tanh(x) * 0.9) + L.arcsin(x * 0.1)
     + x.mul(0.1).arccos(), [(3, 4)]),
    ("sinh_cosh", lambda L, x: L.sinh(x) * L.cosh(x) + x.sinh(), [(3, 4)]),
    ("asinh_acosh_atanh", lambda L, x: L.asinh(x * 3) + L.acosh(pos(L, x) + 1) + L.atanh(L.tanh(x) * 0.9)
     + L.arcsinh(x) + L.arccosh(pos(L, x) + 2) + x.mul(0.1).arctanh(), [(3, 4)]),
    ("atan2", lambda L, a, b: L.atan2(a, b) + L.arctan2(b, a) + a.atan2(b), [(3, 4), (4,)]),
    ("hypot", lambda L, a, b: L.hypot(a, b), [(3, 4), (3, 1)]),
    ("log2_log10_exp2", lambda L, x: L.log2(pos(L, x)) + L.log10(pos(L, x)) + L.exp2(x) + x.abs().add(1).log2(),
     [(3, 4)]),
    ("erfc_erfinv", lambda L, x: L.erfc(x) + L.erfinv(L.tanh(x) * 0.9) + x.erfc(), [(3, 4)]),
    ("lgamma_digamma_polygamma", lambda L, x: L.lgamma(x * 3) + L.digamma(pos(L, x)) + L.polygamma(1, pos(L, x))
     + pos(L, x).polygamma(2) + x.lgamma(), [(3, 4)]),
    ("xlogy", lambda L, a, b: L.xlogy(a * (a > 0), pos(L, b)) + a.xlogy(2.0), [(3, 4), (4,)]),
    ("logit", lambda L, x: L.logit(L.sigmoid(x)) + x.sigmoid().logit(eps=0.3), [(3, 4)]),
    ("logaddexp2", lambda L, a, b: L.logaddexp2(a * 5, b), [(3, 4), (4,)]),
    ("sinc", lambda L, x: L.sinc(x) + L.sinc(x * (x.abs() > 0.5)), [(3, 4)]),
    ("deg2rad_rad2deg", lambda L, x: L.deg2rad(x) + x.rad2deg(), [(3, 4)]),
    ("float_power", lambda L, a, b: L.float_power(pos(L, a), b) + a.float_power(2), [(3, 4), (4,)]),
    ("fmax_fmin", lambda L, a, b: L.fmax(a, b) + L.fmin(a.masked_fill(a > 1, float("nan")), b), [(3, 4), (4,)]),
    ("heaviside", lambda L, a, b: L.heaviside((a * (a > 0)).detach(), b.detach()) + a, [(3, 4), (4,)]),
    ("frac", lambda L, x: L.frac(x * 3) + x.frac(), [(3, 4)]),
    ("signbit_sgn", lambda L, x: L.signbit(x) * x + L.sgn(x) * x, [(3, 4)]),
    ("isposinf_isneginf_isreal", lambda L, x: L.stack([L.isposinf(x / (x > 0)), L.isneginf(x / (x > 0)),
                                                       L.isreal(x)]), [(3, 4)]),
    ("clamp_min_max", lambda L, x: L.clamp_min(x, -0.5) + L.clamp_max(x, 0.5) + x.clamp_min(0.1), [(3, 4)]),
    ("nextafter_ldexp", lambda L, a, b: L.nextafter(a.detach(), b.detach()) + L.ldexp(a, L.tensor([1, 2, 3, 0])),
     [(3, 4), (4,)]),
    ("bitwise_gcd_lcm", lambda L, a, b: L.stack([
        L.bitwise_and((a * 10).long(), (b * 10).long()), L.bitwise_or((a * 10).long(), 5),
        L.bitwise_xor((a * 10).long(), (b * 10).long()), L.bitwise_not((a * 10).long()), (a * 10).long() & 6,
        ~(a > 0) ^ (b > 0) | (a > 1), L.gcd((a * 10).long(), (b * 10).long()), L.lcm((a * 10).long(), (b * 3).long()),
        L.bitwise_left_shift((a * 10).long().abs(), 2), L.bitwise_right_shift((a * 10).long(), (b * 2).long().abs())]),
     [(3, 4), (4,)]),
    ("aliases", lambda L, a, b: L.absolute(a) + L.multiply(a, b) + L.divide(a, pos(L, b)) + L.subtract(a, b)
     + L.negative(a) + L.true_divide(a, 2) + L.not_equal(a, b) + L.greater(a, b) + L.less(a, b)
     + L.greater_equal(a, b) + L.less_equal(a, b), [(3, 4), (4,)]),
    ("movedim_swapaxes", lambda L, x: L.movedim(x, 0, -1) * x.moveaxis((1, 2), (0, 1)) + L.swapaxes(x, 0, 2)
     .permute(1, 0, 2) + x.swapdims(0, 1).transpose(0, 1).permute(1, 2, 0), [(2, 3, 4)]),
    ("broadcast", lambda L, a, b: L.broadcast_to(a, (2, 3, 4)) * L.broadcast_tensors(a, b)[1]
     + L.ones(L.broadcast_shapes((3, 1), (4,))) + a.broadcast_to((3, 4)), [(3, 1), (4,)]),
    ("unflatten_atleast", lambda L, x, s: x.unflatten(1, (2, -1)).sum(-1) + L.atleast_1d(s.sum()) * L.atleast_2d(s)
     + L.atleast_3d(x)[..., 0][:, :2] + L.atleast_2d([s, x])[1][:, :2], [(3, 4), (2,)]),
    ("stacks", lambda L, a, b: L.cat([L.vstack([a, b[0]]).flatten(), L.hstack([a, b]).flatten(),
                                      L.dstack((a, b)).flatten(), L.column_stack([a[:, 0], b]).flatten(),
                                      L.concat([a, b]).flatten(), L.concatenate((a, b), -1).flatten()]),
     [(2, 4), (2, 4)]),
    ("tensor_split", lambda L, x: L.cat([t.flatten() * i for i, t in enumerate(
        L.tensor_split(x, 3, 1) + x.tensor_split([1, 4], dim=1) + L.vsplit(x, 2) + x.hsplit([2]) + L.dsplit(
            x.unsqueeze(-1).expand(4, 5, 2), 2))]), [(4, 5)]),
    ("nansum_nanmean", lambda L, x: L.nansum(x.masked_fill(x > 1, float("nan")), 1) + x.masked_fill(
        x < -1, float("nan")).nanmean(0).sum() + L.nanmean(x, dim=(0, 1), keepdim=True), [(3, 4)]),
    ("var_std_mean", lambda L, x: L.stack(list(L.var_mean(x, 1)) + [t.squeeze(1) for t in L.std_mean(
        x, dim=1, correction=0, keepdim=True)]), [(3, 4)]),
    ("count_nonzero_aminmax", lambda L, x: L.count_nonzero(x > 0, dim=1) * L.aminmax(x, dim=1).max
     + L.aminmax(x).min + x.count_nonzero(), [(3, 4)]),
    ("trace", lambda L, x: L.trace(x) + x[:, :3].trace(), [(3, 4)]),
    ("logcumsumexp", lambda L, x: L.logcumsumexp(x * 20, 1) + x.logcumsumexp(dim=0), [(3, 4)]),
    ("cummax_cummin", lambda L, x: L.cummax(x, 1).values * L.cummin(x, dim=0)[0] + x.cummax(0).indices
     + L.cummin(x, -1).indices, [(3, 4)]),
    ("median", lambda L, x: L.median(x, 1).values[:, None] * L.median(x, dim=0, keepdim=True).indices + L.median(x)
     + x.median(-1)[1][:, None], [(3, 5)]),
    ("nanmedian", lambda L, x: L.nanmedian(x.masked_fill(x > 0.5, float("nan")), 1).values.nan_to_num()
     + x.masked_fill(x > 0.5, float("nan")).nanmedian().nan_to_num(), [(3, 5)]),
    ("kthvalue", lambda L, x: L.kthvalue(x, 2, 1).values + x.kthvalue(3, dim=0, keepdim=True)[0].sum()
     + L.kthvalue(x, 1)[1], [(3, 4)]),
    ("quantile", lambda L, x: L.quantile(x, L.tensor([0.25, 0.5, 0.9], dtype=x.dtype), dim=1, keepdim=True).sum(0)
     + x.quantile(0.3) + L.quantile(x, 0.6, dim=1, interpolation="nearest").sum(), [(3, 4)]),
    ("quantile_interpolations", lambda L, x: L.stack([L.quantile(x, 0.4, 0, interpolation=i) for i in
                                                      ("lower", "higher", "midpoint", "linear")]), [(5, 4)]),
    ("nanquantile", lambda L, x: L.nanquantile(x.masked_fill(x > 0.5, float("nan")), L.tensor([0.1, 0.7]), dim=1)
     .nan_to_num() + x.nanquantile(0.5), [(3, 5)]),
    ("searchsorted_bucketize", lambda L, x: L.searchsorted(x.sort(1).values, x[:, :2]) + L.searchsorted(
        L.tensor([-1.0, 0.0, 1.0]), x, right=True).sum() * L.bucketize(x[:, :2], L.tensor([-0.5, 0.5]))
     + L.searchsorted(x[0].sort().values, x[:, 1:3].detach(), side="right") + L.bucketize(
        x[:, :2], L.tensor([-0.5, 0.5]), right=True, out_int32=True), [(3, 4)]),
    ("isin", lambda L, x: L.isin((x * 2).round(), L.tensor([0.0, 1.0])) ^ L.isin(
        (x * 2).round(), L.tensor([-1.0]), invert=True), [(3, 4)]),
    ("unique", lambda L, x: L.cat([L.unique((x.detach() * 2).round()), L.unique(
        (x.detach() * 2).round(), return_inverse=True)[1].float().flatten(), (x.detach() * 2).round().unique(
        return_counts=True, sorted=True)[1], L.unique((x > 0).long(), dim=1).flatten()]), [(3, 4)]),
    ("unique_consecutive", lambda L, x: L.cat([L.unique_consecutive((x * 0.7).round().flatten(), return_counts=True)[1],
                                               (x > 0).long().unique_consecutive(return_inverse=True, dim=0)[1]]),
     [(3, 4)]),
    ("dot_mv", lambda L, a, b: L.dot(a[0], b) * L.vdot(b, a[1]) + L.mv(a, b) + a.mv(b) + a[0].dot(b),
     [(3, 4), (4,)]),
    ("addmv_addr", lambda L, c, a, b: L.addmv(c, a, b, beta=0.5, alpha=2) + L.addr(a, c, b, alpha=3).sum(1)
     + c.addmv(a, b), [(3,), (3, 4), (4,)]),
    ("tensordot_inner", lambda L, a, b: L.tensordot(a, b, 1).sum(-1) + L.tensordot(
        a, b.transpose(0, 1), ([1, 2], [2, 1])).sum() + L.inner(a, b.sum(-1).T).sum(-1, keepdim=True)
     + a.inner(b[:, 0, 0])[..., None], [(2, 3, 4), (4, 5, 3)]),
    ("kron", lambda L, a, b: L.kron(a, b) + a.kron(b), [(2, 3), (3, 2)]),
    ("take_along_dim", lambda L, x: L.take_along_dim(x, L.tensor([[0], [2], [1]]), 1) + x.take_along_dim(
        L.tensor([[1, 0, 2, 2]]), dim=0) + L.take_along_dim(x, L.tensor([5, 0])).sum(), [(3, 4)]),
    ("select_take", lambda L, x: L.select(x, 1, -1) + x.select(0, 2)[:3] + L.take(x, L.tensor([1, 11, -1]))
     + x.take(L.tensor([[0], [5], [7]])).sum(1), [(3, 4)]),
    ("select_slice_scatter", lambda L, x, s: L.select_scatter(x, s[0], 0, 1) * x.slice_scatter(s, 0, 0, 2)
     + L.slice_scatter(x, s[:, :3].T * 2, 1, 1, None, 2), [(3, 4), (2, 4)]),
    ("rot90_fliplr_flipud", lambda L, x: L.rot90(x) * x.rot90(-1) + L.rot90(x, 2, [1, 0]).T + L.fliplr(x).T
     * x.flipud().T, [(3, 3)]),
    ("diff", lambda L, x, p: L.cat([L.diff(x).flatten(), x.diff(2, 0, prepend=p).flatten(),
                                    L.diff(x, append=x[:, :1]).flatten()]), [(3, 4), (2, 4)]),
    ("diag_embed_diagflat", lambda L, x: L.diag_embed(x).sum(0) + L.diag_embed(x, 1, 0, 2).sum(1)[:4, :4]
     + L.diagflat(x[:2, :2], -2)[:4, :4] + x.diag_embed(-1)[1, 1:, :-1], [(3, 4)]),
    ("block_diag", lambda L, a, b: L.block_diag(a, b[0], L.tensor(2.0), b), [(3, 4), (2, 3)]),
    ("trapezoid", lambda L, x, t: L.trapezoid(x) + L.trapezoid(x, dx=0.5, dim=0).sum() + L.trapezoid(
        x, t.cumsum(0)), [(3, 4), (4,)]),
    ("cartesian_prod_combinations", lambda L, a, b: L.cat([L.cartesian_prod(a, b).flatten(), L.combinations(a, 3)
                                                           .flatten(), L.combinations(b, with_replacement=True)
                                                           .flatten()]), [(4,), (3,)]),
    ("cdist_dist", lambda L, a, b: L.cdist(a, b) + L.cdist(a, b, 1) + L.cdist(a, b, p=3.0) + L.dist(a[0], b, 1.5)
     + L.cdist(a, a[:2]), [(3, 4), (2, 4)]),
    # torch's backward of vander fails (an in-place write in its own graph): values only
    ("vander", lambda L, x: L.vander(x[0].detach()) + L.vander(x[1].detach(), 4, True), [(2, 4)]),
    ("scatter_reduce", lambda L, x, s: L.stack([
        L.scatter_reduce(x, 1, L.tensor([[0, 0, 2], [3, 3, 1], [1, 2, 2]]), s, r, include_self=i)
        for r in ("sum", "mean", "amax", "amin") for i in (True, False)]) + x.scatter_reduce(
        0, L.tensor([[2, 0, 2, 1]]), s[:1, :1].expand(1, 4), "amax"), [(3, 4), (3, 3)]),
    ("renorm", lambda L, x: L.renorm(x, 2, 0, 1.5) + x.renorm(1, 1, 2.0), [(3, 4)]),
    ("masked_scatter", lambda L, x, s: x.masked_scatter(x > 0.5, s) + L.masked_scatter(
        x, L.tensor([True, False, True, False]), s), [(3, 4), (7,)]),
    ("unravel_index", lambda L, x: L.stack(L.unravel_index((x * 4).long().abs(), (2, 3))) + L.stack(
        L.unravel_index(L.tensor([-1, 4, 5, 0]), (2, 3)))[:, None, None], [(3, 4)]),
    ("bincount_histc", lambda L, x: L.cat([L.bincount((x.detach() * 2).abs().long().flatten()).float(), L.bincount(
        (x.detach() * 2).abs().long().flatten(), weights=x.detach().flatten(), minlength=9), L.histc(
        x.detach(), bins=5, min=-1, max=1), x.detach().histc(4)]), [(3, 4)]),
    ("mode", lambda L, x: L.mode((x * 1.5).round(), 1).indices[:, None] * L.mode(x.round(), dim=0, keepdim=True).values
     + x.mode(0)[0] + (x * 2).round().mode(-1)[0][:, None] + L.mode(x.round().flatten())[0], [(3, 4)]),
    ("trapz_cumulative", lambda L, x, t: L.trapz(x, dim=0) + L.cumulative_trapezoid(x, dx=2).sum(1, keepdim=True)
     + L.cumulative_trapezoid(x, t.cumsum(0), dim=-1).sum(1, keepdim=True), [(3, 4), (4,)]),
    ("cov_corrcoef", lambda L, x, w: L.stack([L.cov(x), x.corrcoef(), L.cov(x, correction=0), L.cov(
        x, aweights=w.abs() + 0.1), L.cov(x, fweights=L.tensor([1, 2, 1, 3]), aweights=w.abs() + 0.1, correction=2)])
     .sum(0) + L.cov(x[0]), [(3, 4), (4,)]),
    ("copysign_positive_rsub", lambda L, a, b: L.copysign(a, b) + a.copysign(-0.0) + L.positive(a) + L.rsub(
        a, b, alpha=2) + L.row_stack([b, b])[:1], [(3, 4), (4,)]),
    ("mm", lambda L, a, b: L.mm(a, b) + a.mm(b), [(3, 4), (4, 5)]),
    ("addmm", lambda L, c, a, b: L.addmm(c, a, b, beta=0.5, alpha=2) + c.addmm(a, b, beta=0), [(5,), (3, 4), (4, 5)]),
    ("baddbmm", lambda L, c, a, b: L.baddbmm(c, a, b, alpha=0.5) + c.baddbmm(a, b), [(2, 3, 5), (2, 3, 4), (2, 4, 5)]),
    ("addbmm", lambda L, c, a, b: L.addbmm(c, a, b, beta=2), [(3, 5), (2, 3, 4), (2, 4, 5)]),
]


def _leaf(shape, layout: str) -> tuple[graphc.Tensor, torch.Tensor]:
    """Equal float32 leaves: graphc's in the given memory layout (a view of a bigger base), torch's contiguous."""
    values = np.random.randn(*shape).astype(np.float32)
    strided = values
    if layout == "transposed" and len(shape) >= 2:
        strided = np.ascontiguousarray(values.T).T
    elif layout == "sliced" and len(shape) >= 1:
        base = np.zeros(shape[:-1] + (shape[-1] * 2,), np.float32)
        base[..., ::2] = values
        strided = base[..., ::2]
    return graphc.from_numpy(strided).requires_grad_(True), torch.tensor(values, requires_grad=True)


def _weights(out):
    return np.random.randn(*out.shape)


def test_every_public_op_is_in_the_table():
    table = inspect.getsource(sys.modules[__name__]).split("CASES = [")[1].split("\n]\n")[0]
    public = {name for module in METHOD_MODULES for name in module.__all__}
    assert public - set(re.findall(r"\w+", table)) == set()


def test_layouts_are_not_contiguous():
    for layout in ("transposed", "sliced"):
        ours, theirs = _leaf((3, 4), layout)
        assert not ours.is_contiguous() and ours.stride() != (4, 1)
        assert_close(ours, theirs)


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced"])
@pytest.mark.parametrize("name,fn,shapes", CASES, ids=[c[0] for c in CASES])
def test_op_matches_torch(name, fn, shapes, layout):
    ours, theirs = zip(*(_leaf(shape, layout) for shape in shapes))
    out, expected = fn(graphc, *ours), fn(torch, *theirs)
    assert out.dtype.name == str(expected.dtype).replace("torch.", "")
    assert_close(out, expected, rtol=1e-4, atol=1e-5)
    if not expected.requires_grad:
        return
    w = _weights(out)
    (out * graphc.tensor(w, dtype=out.dtype)).sum().backward()
    (expected * torch.tensor(w, dtype=expected.dtype)).sum().backward()
    for a, b in zip(ours, theirs):
        if b.grad is None:
            assert a.grad is None or not np.asarray(a.grad).any()
        else:
            assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)


FD_SAMPLE = ["div", "pow", "maximum", "var_dim", "logsumexp", "log_softmax", "matmul_broadcast", "einsum_batch",
             "two_arrays", "gather", "cat", "std", "addcdiv", "max_dim", "tanh", "mask_index", "prod_zeros",
             "clamp_tensor", "einsum_batch_diagonal", "cumsum_neg_dim", "repeat", "norm_zero_row", "tril", "roll",
             "diagonal_dims", "diag_vector", "scatter", "scatter_add", "topk", "meshgrid", "repeat_interleave_tensor",
             "cumprod", "logaddexp", "lerp", "fmod", "nan_to_num", "baddbmm", "index_add", "index_copy", "atan2",
             "hypot", "lgamma_digamma_polygamma", "erfc_erfinv", "xlogy", "sinc", "logcumsumexp", "quantile",
             "median", "cdist_dist", "tensordot_inner", "diff", "take_along_dim", "scatter_reduce", "cov_corrcoef",
             "trapz_cumulative"]


@pytest.mark.parametrize("name", FD_SAMPLE)
def test_gradient_matches_finite_differences(name):
    _, fn, shapes = next(c for c in CASES if c[0] == name)
    xs = [graphc.tensor(np.random.randn(*s), dtype=graphc.float64, requires_grad=True) for s in shapes]
    out = fn(graphc, *xs)
    w = graphc.tensor(_weights(out), dtype=graphc.float64)
    (out * w).sum().backward()
    eps = 1e-6
    for x in xs:
        flat = x.numpy(force=True).reshape(-1)
        numeric = np.zeros(flat.size)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            hi = (fn(graphc, *xs) * w).sum().item()
            flat[i] = old - eps
            lo = (fn(graphc, *xs) * w).sum().item()
            flat[i] = old
            numeric[i] = (hi - lo) / (2 * eps)
        np.testing.assert_allclose(x.grad.numpy().reshape(-1), numeric, rtol=1e-5, atol=1e-6)


def _forward_backward(L, fn, xs):
    out = fn(L, *xs)
    if out.requires_grad:
        w = _weights(out)
        (out * L.tensor(w, dtype=out.dtype)).sum().backward()
    return out


@pytest.mark.parametrize("name,fn,shapes", CASES, ids=[c[0] for c in CASES])
def test_compiled_op_follows_shapes(name, fn, shapes):
    """One compiled function called on growing shapes equals torch at each (values and gradients), or raises where
    torch raises: sizes that decide a graph's structure (how many views split or unbind make) are guarded, and a
    plan replays only for sizes its ops accept."""
    compiled = graphc.compile(lambda L, *xs: fn(L, *xs), backend="numpy")
    for grow in (0, 1, 2):
        values = [np.random.randn(*(s + grow for s in shape)).astype(np.float32) for shape in shapes]
        ours = [graphc.tensor(v, requires_grad=True) for v in values]
        theirs = [torch.tensor(v, requires_grad=True) for v in values]
        seed = np.random.randint(1 << 30)
        np.random.seed(seed)
        try:
            expected = _forward_backward(torch, fn, theirs)
        except (RuntimeError, IndexError, ValueError):  # then compiled does what eager graphc does
            try:
                _forward_backward(graphc, fn, [graphc.tensor(v, requires_grad=True) for v in values])
            except Exception as error:
                with pytest.raises(type(error)):
                    _forward_backward(graphc, compiled, ours)
            continue
        np.random.seed(seed)
        out = _forward_backward(graphc, compiled, ours)
        assert_close(out.detach(), expected.detach(), rtol=1e-4, atol=1e-5)
        for a, b in zip(ours, theirs):
            if b.grad is not None:
                assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)
