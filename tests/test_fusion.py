"""Fusion acceptance: kernel counts and modelled bytes from graphc.explain for the benchmark patterns, each program
run on the `interpret` backend (the generated Triton kernels under Triton's interpreter) against torch, and every
generated kernel compiled ahead of time for sm_90 (PTX and cubin, no GPU needed)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import KERNEL_BACKEND, assert_close, assert_compiles_for_sm90

import graphc
from graphc.bench.cases import CASES, Inputs

# case -> (small sizes, the exact kernel count, memory-bound: bytes_moved / bytes_ideal must be <= 1.05). The class
# labels' range check runs on numpy before cross_entropy's kernel (it reads and copies the labels, 2% of the bytes).
EXPECTED = {
    "bias_gelu": (dict(n=6, d=20), 1, True),
    "elementwise_chain": (dict(n=6, d=20), 1, True),
    "softmax": (dict(n=6, d=20), 1, True),
    "layer_norm": (dict(n=6, d=20), 1, True),
    "rms_norm": (dict(n=6, d=20), 1, True),
    "cross_entropy": (dict(n=6, c=200), 1, True),
    "linear_bias_relu": (dict(n=6, k=20, m=24), 1, False),
    "mlp_block": (dict(n=6, d=16, h=24), 2, False),
    "attention": (dict(b=1, h=2, t=8, e=16), 1, False),  # one attention op from capture on: no fusion left to do
    "adam_update": (dict(n=12), 1, True),
    "digits_mlp_train_step": (dict(batch=16), 14, False),  # weight gradients fused into Adam (transposed products)
}


def build(name: str, lib):
    size = EXPECTED[name][0]
    return CASES[name].build(lib, Inputs(lib, "cpu", seed=1), **size)


@pytest.fixture(scope="module", autouse=True)
def _kernel_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHC_CACHE_DIR", str(tmp_path_factory.mktemp("kernels")))
        yield


@pytest.mark.parametrize("name", list(EXPECTED))
def test_kernel_count_and_bytes(name):
    _, kernels, memory_bound = EXPECTED[name]
    setup = build(name, graphc)
    report = graphc.explain(setup.fn, *setup.args)
    assert report.num_kernels == kernels, str(report)
    labelled = name in ("cross_entropy", "digits_mlp_train_step")
    assert [name for name, _ in report.fallbacks] == (["check_bounds"] if labelled else []), str(report)
    if memory_bound:
        assert report.bytes_moved <= 1.05 * report.bytes_ideal, str(report)
    if kernels > 1:
        assert report.num_kernels < report.num_unfused_kernels
        assert report.bytes_moved < report.bytes_moved_unfused


@pytest.mark.parametrize("name", list(EXPECTED))
def test_interpreted_kernels_match_torch_and_compile_for_sm90(name):
    setup, reference = build(name, graphc), build(name, torch)
    compiled = graphc.compile(setup.fn, backend=KERNEL_BACKEND, fullgraph=True)  # a failing plan raises
    for _ in range(2):  # the second call replays the cached plan (and, for optimizers, sees the updated state)
        out, want = compiled(*setup.args), reference.fn(*reference.args)
        if out is not None:
            assert_close(out, want, rtol=1e-4, atol=1e-5)
        for ours, theirs in zip(setup.state, reference.state):
            assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    report = graphc.explain(setup.fn, *setup.args)
    for kernel in report.kernels:
        assert kernel.kind in ("elementwise", "reduction", "matmul", "template")
        assert "@triton.jit" in kernel.source and any(f"{op} at " in kernel.source for op in kernel.ops)
    assert_compiles_for_sm90(report.kernels)


def test_report_kernels_have_the_kind_of_their_group():
    kinds = {}
    for name in ("bias_gelu", "softmax", "linear_bias_relu"):
        setup = build(name, graphc)
        kinds[name] = [k.kind for k in graphc.explain(setup.fn, *setup.args).kernels]
    assert kinds == {"bias_gelu": ["elementwise"], "softmax": ["reduction"], "linear_bias_relu": ["matmul"]}


def test_kernel_source_names_ops_and_user_lines():
    x, b = graphc.randn(4, 8), graphc.randn(8)

    def bias_gelu(x, b):
        return graphc.nn.functional.gelu(x + b)

    (kernel,) = graphc.explain(bias_gelu, x, b).kernels
    assert "test_fusion.py:" in kernel.source and "gelu at" in kernel.source
    assert "size0" in kernel.source and "in0_s1" in kernel.source  # sizes and strides are arguments


def test_one_kernel_serves_every_batch_size():
    from graphc.compiler import cache

    def softmax(x):
        return graphc.softmax(x * 2.0, -1)

    compiled = graphc.compile(softmax, backend=KERNEL_BACKEND)
    loaded = None
    for rows in (3, 7, 1):
        x = np.random.randn(rows, 10).astype(np.float32)
        assert_close(compiled(graphc.tensor(x)), torch.softmax(torch.from_numpy(x) * 2.0, -1), atol=1e-6)
        loaded = loaded or len(cache._loaded)
        assert len(cache._loaded) == loaded  # no new kernel for a new batch size
    assert compiled.num_compiles == 1
