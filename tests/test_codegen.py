"""Codegen on the `interpret` backend against torch: views as index arithmetic, broadcast and 0-d outputs, looped
and column reductions, low precision, integer and boolean ops, matmul epilogues, numpy fallbacks between kernels,
and the fusion reasons the explain report shows."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_close

import graphc
from graphc.compiler.codegen import plan_kernels


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))


def check(fn, *arrays, rtol=1e-5, atol=1e-6, kernels=None):
    """fn compiled for the interpreter equals fn on torch tensors; returns the explain report."""
    compiled = graphc.compile(fn, backend="interpret")
    ours = compiled(*(graphc.tensor(a) for a in arrays))
    theirs = fn(*(torch.from_numpy(a) for a in arrays))
    for o, t in zip(ours if isinstance(ours, tuple) else (ours,), theirs if isinstance(theirs, tuple) else (theirs,)):
        assert_close(o, t, rtol=rtol, atol=atol)
    report = graphc.explain(fn, *(graphc.tensor(a) for a in arrays))
    if kernels is not None:
        assert report.num_kernels == kernels, str(report)
    return report


def randn(*shape, dtype=np.float32):
    return np.random.randn(*shape).astype(dtype)


def test_views_are_index_math_in_one_kernel():
    def f(x, y):
        return (x.transpose(0, 1) * y.unsqueeze(0)).exp() + x.t().reshape(3, 5)

    check(f, randn(5, 3), randn(5), kernels=1)


def test_permuted_and_expanded_inputs_and_broadcast_outputs():
    def f(x, b):
        y = x.permute(2, 0, 1) + b.view(-1, 1, 1)
        return y.sigmoid(), (b * 2).tanh(), y.sum()

    check(f, randn(2, 3, 4), randn(4), rtol=1e-4, atol=1e-5)


def test_looped_reduction_when_the_row_does_not_fit():
    def f(x):
        return torch_like_softmax(x), x.var(-1)

    check(f, randn(2, 5000), rtol=1e-4, atol=1e-6)


def torch_like_softmax(x):
    e = (x - x.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


def test_column_and_multi_dim_reductions():
    check(lambda x: (x.sum(0), x.mean(dim=(0, 2)), x.amax(1)), randn(3, 4, 5), rtol=1e-5, atol=1e-5)


def test_keepdim_false_results_broadcast_back():
    def f(x):
        m = x.mean(-1)
        return x - m.unsqueeze(-1), m * 3

    check(f, randn(4, 6), kernels=1)


def test_float16_computes_in_float32_and_rounds_once():
    check(lambda x, y: (x * y + 1).exp() / (x * x).sum(-1, keepdim=True), randn(4, 8, dtype=np.float16),
          randn(4, 8, dtype=np.float16), rtol=2e-3, atol=1e-3)


def test_integer_and_boolean_ops():
    def f(a, b, x):
        mask = (a > b) | (a == 0)
        return (a + b * 2, torch_where(mask, x, -x), x.masked_fill(mask, 0.5), x.clamp(min=0.1), a.sum(-1))

    check(f, np.random.randint(-3, 3, (3, 5)), np.random.randint(-3, 3, (3, 5)), randn(3, 5))


def torch_where(mask, a, b):
    return a.where(mask, b) if isinstance(a, torch.Tensor) else graphc.where(mask, a, b)


def test_pow_and_libdevice_functions():
    def f(x):
        return x ** 2, x.abs() ** 0.5, (x * 0.3).tanh(), x.sigmoid(), x.erf(), 2.0 ** x

    check(f, randn(3, 7), rtol=1e-5, atol=1e-6)


def test_batched_matmul_with_transposed_operand_and_residual_epilogue():
    def f(q, k, r):
        return (q @ k.transpose(-1, -2)) * 0.5 + r

    check(f, randn(2, 3, 17, 8), randn(3, 19, 8), randn(19), rtol=1e-4, atol=1e-5, kernels=1)


def test_fallback_ops_run_between_kernels():
    def f(x, w):
        nn = graphc.nn.functional if isinstance(x, graphc.Tensor) else torch.nn.functional
        return nn.max_pool2d(nn.conv2d((x * 2).relu(), w), 2).sigmoid()

    report = check(f, randn(1, 2, 8, 8), randn(3, 2, 3, 3), rtol=1e-4, atol=1e-5)
    assert {name for name, _ in report.fallbacks} == {"conv2d", "max_pool2d"}
    assert all("no Triton lowering" in reason for _, reason in report.fallbacks)
    assert report.num_kernels == 2


def test_a_second_pass_over_all_rows_splits_the_kernel_and_says_why():
    def f(x):
        rows = x.sum(-1)
        return rows - rows.mean()  # needs the mean over all rows before any row's result

    report = check(f, randn(4, 5), kernels=2, rtol=1e-5, atol=1e-5)
    steps = plan_kernels(report.graphs[0], "interpret")
    assert any("second pass" in reason for reason in steps[0].fusion.reasons)


def test_batch_size_one_at_trace_time_stays_correct_later():
    def f(x, w):
        return (x * w).sum(0) + x.mean()

    compiled = graphc.compile(f, backend="interpret")
    w = randn(1, 4)
    for rows in (1, 3):
        x = randn(rows, 4)
        assert_close(compiled(graphc.tensor(x), graphc.tensor(w)), f(torch.from_numpy(x), torch.from_numpy(w)),
                     rtol=1e-5, atol=1e-6)
