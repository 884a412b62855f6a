"""Reductions spread over many programs (kernels/row_reduction.py.tmpl): totals over all rows (a loss mean) with one
program per block of rows, and long rows (`x.sum()` of a big tensor) cut into chunks, both combined with atomics.
Each program runs under Triton's interpreter against torch, its launch grid has more than one program, and its
kernels compile for sm_90."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import KERNEL_BACKEND, assert_close, assert_compiles_for_sm90

import graphc
from graphc.compiler import render_triton_reduction
from graphc.compiler.render_triton_reduction import launch_grid


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))


def randn(*shape, dtype=np.float32):
    return np.random.randn(*shape).astype(dtype)


def programs(report) -> list[int]:
    """How many programs each reduction kernel of the report launches for its traced sizes."""
    return [math.prod(launch_grid(k.group, k.group.space, k.constexprs["BLOCK"])[0]) for k in report.kernels
            if k.kind == "reduction"]


def check(fn, *arrays, rtol=1e-5, atol=1e-6, kernels=1):
    """fn compiled for the interpreter equals fn on torch; every reduction kernel launches several programs and
    compiles for sm_90. Returns the explain report."""
    ours = graphc.compile(fn, backend=KERNEL_BACKEND)(*(graphc.tensor(a) for a in arrays))
    theirs = fn(*(torch.from_numpy(a) for a in arrays))
    for o, t in zip(ours if isinstance(ours, tuple) else (ours,), theirs if isinstance(theirs, tuple) else (theirs,)):
        assert_close(o, t, rtol=rtol, atol=atol)
    report = graphc.explain(fn, *(graphc.tensor(a) for a in arrays))
    assert report.num_kernels == kernels, str(report)
    assert programs(report) and all(p > 1 for p in programs(report)), str(report)
    assert_compiles_for_sm90(report.kernels)
    return report


@pytest.fixture
def few_programs(monkeypatch):
    """Small launch targets and blocks, so small inputs (cheap under the interpreter) give blocks of rows and rows
    cut into chunks of several blocks."""
    monkeypatch.setattr(render_triton_reduction, "PROGRAMS", 8)
    monkeypatch.setattr(render_triton_reduction, "MIN_CHUNK", 64)
    monkeypatch.setattr(render_triton_reduction, "MAX_BLOCK", 32)


def test_full_reductions_of_a_big_tensor_split_into_chunks():
    x = randn(250, 400)
    check(lambda x: x.sum(), x, rtol=1e-5, atol=1e-3)
    check(lambda x: x.mean(), x, rtol=1e-5, atol=1e-6)
    check(lambda x: x.amax(), x)
    ((_, chunks), ints) = launch_grid(graphc.explain(lambda x: x.amin(), graphc.tensor(x)).kernels[0].group,
                                      (250, 400), 4096)
    assert chunks > 1 and ints["chunk"] * chunks >= 250 * 400


def test_keepdim_transposed_and_broadcast_inputs(few_programs):
    x = randn(30, 70)
    check(lambda x: x.t().sum(dim=(0, 1), keepdim=True), x, rtol=1e-5, atol=1e-5)
    check(lambda x: (x.t() * 2).mean(0, keepdim=True), x, rtol=1e-5, atol=1e-6)  # 30 rows of 70, chunked
    check(lambda x, b: (x + b.unsqueeze(1)).amin(), x, randn(30))


def test_integer_float64_and_float16_full_reductions(few_programs):
    a = np.random.randint(-1000, 1000, (40, 50))
    check(lambda a: (a.sum(), a.amax(), a.amin(1)), a, kernels=3)
    check(lambda a: ((a > 990).amax(), (a > -990).amin(), (a > 0).sum()), a, kernels=3)  # bools: int32 scratch
    check(lambda x: (x.amax(), x.mean()), randn(40, 50, dtype=np.float64), rtol=1e-7, atol=1e-7, kernels=2)
    check(lambda x: x.sum(), randn(40, 50, dtype=np.float16), rtol=2e-3, atol=5e-2)


def test_per_row_values_of_chunked_rows_are_finished_by_the_last_chunk(few_programs):
    def f(x):
        y = x * 3
        return y.sum(-1).exp(), y  # a per-element output that needs no reduction is stored chunk by chunk

    check(f, randn(3, 500) * 0.05, rtol=1e-5, atol=1e-6)
    check(lambda x: (x * x).mean(-1).sqrt(), randn(3, 500), rtol=1e-5, atol=1e-6)


def test_totals_over_blocks_of_rows(few_programs):
    def f(x):
        rows = x.sum(-1)
        return rows.mean(), rows.amax(), (-rows).amin(), x.softmax(-1)  # totals beside a row-wise output

    report = check(f, randn(45, 7), rtol=1e-5, atol=1e-5, kernels=2)
    (ints,) = [ints for k in report.kernels for _, ints in [launch_grid(k.group, k.group.space, 32)] if ints]
    assert ints["rows_per_program"] > 1 and 45 % ints["rows_per_program"]  # several rows each, the last ragged

    def layer_stats(x):
        var = x.var(-1)  # two stages per row, a per-row output, and its mean over all rows in the same kernel
        return var, var.mean()

    check(layer_stats, randn(45, 50), rtol=1e-5, atol=1e-6)


def test_totals_of_chunked_rows(few_programs):
    check(lambda x: (x.sum(-1) * 0.1).exp().mean(), randn(3, 700) * 0.1, rtol=1e-5, atol=1e-6)


def test_cross_entropy_forward_and_backward(few_programs):
    F = graphc.nn.functional
    x, y = randn(45, 13), np.random.randint(0, 13, 45)
    y[3] = -100

    def f(x, y):
        loss = F.cross_entropy(x, y)
        loss.backward()
        return loss

    xg = graphc.tensor(x, requires_grad=True)
    loss = graphc.compile(f, backend=KERNEL_BACKEND)(xg, graphc.tensor(y))
    xt = torch.from_numpy(x).requires_grad_()
    want = torch.nn.functional.cross_entropy(xt, torch.from_numpy(y))
    want.backward()
    assert_close(loss, want, rtol=1e-5, atol=1e-6)
    assert_close(xg.grad, xt.grad, rtol=1e-5, atol=1e-7)
    forward = graphc.explain(lambda x, y: F.cross_entropy(x, y), graphc.tensor(x), graphc.tensor(y))
    assert forward.num_kernels == 1 and programs(forward)[0] > 1, str(forward)
    assert_compiles_for_sm90(forward.kernels)
    assert_compiles_for_sm90(graphc.explain(f, graphc.tensor(x, requires_grad=True), graphc.tensor(y)).kernels)


def test_default_heuristic_spreads_a_cross_entropy_batch_over_its_rows():
    F = graphc.nn.functional
    report = graphc.explain(lambda x, y: F.cross_entropy(x, y), graphc.randn(1024, 1000),
                            graphc.randint(0, 1000, (1024,)))
    (kernel,) = report.kernels
    grid, ints = launch_grid(kernel.group, (1024, 1000), kernel.constexprs["BLOCK"])
    assert grid == (1024, 1) and ints == {"rows_per_program": 1}
    grid, ints = launch_grid(kernel.group, (65536, 1000), kernel.constexprs["BLOCK"])
    assert grid == (1024, 1) and ints == {"rows_per_program": 64}


def test_a_row_whose_reduction_feeds_per_element_work_is_never_chunked():
    report = graphc.explain(lambda x: graphc.softmax(x, -1), graphc.randn(1, 100000))
    assert launch_grid(report.kernels[0].group, (1, 100000), 4096)[0] == (1, 1)
    assert "col_start" not in report.kernels[0].source


def test_a_total_used_per_row_stays_a_second_kernel():
    def f(x):
        rows = x.sum(-1)
        return rows - rows.amax()

    report = graphc.explain(f, graphc.randn(4, 5))
    assert report.num_kernels == 2 and any("second pass" in r for r in report.fusion_notes), str(report)
    x = randn(40, 5)
    assert_close(graphc.compile(f, backend=KERNEL_BACKEND)(graphc.tensor(x)), f(torch.from_numpy(x)), atol=1e-5)


def test_bfloat16_totals_and_chunks_compile_for_sm90():
    x = graphc.randn(64, 300).to(graphc.bfloat16)
    report = graphc.explain(lambda x: (x.sum(), x.float().sum(-1).mean().to(graphc.bfloat16)), x)
    assert report.num_kernels == 2 and "*bf16" in str([k.signature for k in report.kernels])
    assert_compiles_for_sm90(report.kernels)


def test_each_launch_leaves_the_scratch_ready_for_the_next(few_programs):
    def f(x):
        return x.sum(-1).amin(), x.amax(), (x * x).sum(-1)

    compiled = graphc.compile(f, backend=KERNEL_BACKEND)
    for rows in (5, 5, 9, 3):  # repeated, then more rows than the scratch was made for, then fewer
        x = randn(rows, 300)
        for ours, theirs in zip(compiled(graphc.tensor(x)), f(torch.from_numpy(x))):
            assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    assert compiled.num_compiles == 1
