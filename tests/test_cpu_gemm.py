"""The cpu backend's products on one thread pool: a matmul group's kernel calls numpy's OpenBLAS from its own OpenMP
threads (render_c.render_gemm, runtime.gemm_layout), the attention templates' products likewise (runtime.PoolMatmul),
and OpenBLAS runs on one thread while a plan runs. Against torch.matmul: odd sizes, transposed and batched operands,
broadcast batches, NaN and inf, float64, fp16 (whose product numpy computes), at 1 and 2 OpenMP threads; numpy's
OpenBLAS thread count is restored after a plan's call; without an OpenBLAS the products come from numpy."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from conftest import assert_close, to_torch
from threadpoolctl import threadpool_info, threadpool_limits

import graphc
import graphc.nn.functional as F
from graphc.compiler import native
from graphc.compiler.runtime import PoolMatmul, TemplateStep

pytestmark = pytest.mark.skipif(native.compiler() is None, reason="no C compiler on this machine")
needs_openblas = pytest.mark.skipif(native.blas() is None, reason="numpy's BLAS is not an OpenBLAS with cblas")


@pytest.fixture(scope="module", autouse=True)
def _kernel_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHC_CACHE_DIR", str(tmp_path_factory.mktemp("native")))
        yield


def randn(*shape, dtype=np.float32):
    return np.random.randn(*shape).astype(dtype)


def products(x, w, b, y, z, p, q):
    """Products as real code writes them: a linear's x @ w.T + b with GELU, a weight gradient's x.T @ g, a 3-d
    linear, a batched product of broadcast batches, products of one row or one column."""
    lib = F if isinstance(x, graphc.Tensor) else TF
    h = lib.gelu(x @ w.T + b)
    return (h, x.T @ h, (y @ w.T).relu() * 2, p @ q, (z @ z.transpose(-1, -2)) - 1, x[:1] @ w.T, h @ w[:, :1],
            (x @ w[:1].T) * b)  # the last: a product broadcast in its epilogue


@needs_openblas
@pytest.mark.parametrize("threads", [1, 2])
def test_products_run_in_the_kernels_and_match_torch(threads):
    # x (M, K), w (N, K), b (N,), y (B, T, K), z batched, p and q with broadcast batches: odd sizes
    arrays = [randn(129, 7), randn(129, 7), randn(129), randn(3, 7, 7), randn(2, 1, 7), randn(1, 3, 7, 5),
              randn(2, 1, 5, 129)]
    arrays[0].flat[:3] = [np.nan, np.inf, -np.inf]
    compiled = graphc.compile(products, backend="cpu", mode="max-autotune")
    with threadpool_limits(threads, user_api="openmp"):
        for _ in range(2):
            ours = compiled(*(graphc.tensor(a) for a in arrays))
    theirs = products(*(torch.from_numpy(a) for a in arrays))
    for o, t in zip(ours, theirs):
        assert_close(o, t, rtol=1e-4, atol=1e-4)
    assert len(gemm_steps(compiled)) == 8


def gemm_steps(compiled) -> list:
    """The matmul steps of a compiled function; each must have run its kernel, and the kernel its own GEMM."""
    steps = [s for runtime in compiled._plans.values() for s in runtime.plan.steps
             if getattr(s, "kind", None) == "matmul"]
    for step in steps:
        assert step._function is not None and step.kernel.gemm, step.source
        assert step._gemm and all(found is not None for found in step._gemm.values()), step.source
    return steps


@needs_openblas
@pytest.mark.parametrize("shapes", [((7, 129), (129, 400)), ((400, 129), (129, 7)), ((4, 33, 64), (64, 50)),
                                    ((4, 33, 64), (4, 64, 50)), ((2, 1, 40, 64), (3, 64, 50))],
                         ids=["by columns", "by rows", "3-d linear", "batched", "broadcast batches"])
def test_products_split_across_two_threads_match_torch(shapes):
    a, b = randn(*shapes[0]), randn(*shapes[1])
    a.flat[5], b.flat[7] = np.nan, np.inf

    def f(a, b):
        return (a @ b) * 0.5, a @ b

    compiled = graphc.compile(f, backend="cpu", mode="max-autotune")
    with threadpool_limits(2, user_api="openmp"):
        ours = compiled(graphc.tensor(a), graphc.tensor(b))
    for o, t in zip(ours, f(torch.from_numpy(a), torch.from_numpy(b))):
        assert_close(o, t, rtol=1e-4, atol=1e-4)
    assert len(gemm_steps(compiled)) == 1


@needs_openblas
def test_float64_products_and_operands_without_a_blas_layout():
    x, w = randn(33, 17, dtype=np.float64), randn(17, 40, dtype=np.float64)

    def f(x, w):
        return (x @ w).tanh(), x[:, :9] @ w[::2, ::3]  # a matrix without a unit stride is copied

    compiled = graphc.compile(f, backend="cpu", mode="max-autotune")
    ours = compiled(graphc.tensor(x), graphc.tensor(w))
    theirs = f(torch.from_numpy(x), torch.from_numpy(w))
    for o, t in zip(ours, theirs):
        assert str(o.dtype) == "graphc.float64"
        np.testing.assert_allclose(o.numpy(), t.numpy(), rtol=1e-12, atol=1e-12)
    gemm_steps(compiled)


@pytest.mark.parametrize("dtype", [graphc.float16, graphc.bfloat16])
def test_low_precision_products_multiply_in_fp32_and_round_once(dtype):
    x, w, b = graphc.randn(31, 129).to(dtype), graphc.randn(129, 7).to(dtype), graphc.randn(7).to(dtype)

    def f(x, w, b):
        return (x @ w + b).relu(), x.T @ x

    compiled = graphc.compile(f, backend="cpu", mode="max-autotune")
    with threadpool_limits(2, user_api="openmp"):
        ours = compiled(x, w, b)
    theirs = f(to_torch(x), to_torch(w), to_torch(b))
    for o, t in zip(ours, theirs):
        assert str(o.dtype) == str(t.dtype).replace("torch.", "graphc.")
        assert_close(o, t, rtol=2e-2, atol=2e-2)


@needs_openblas
def test_openblas_runs_on_one_thread_during_a_plan_and_is_restored_after():
    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["internal_api"] == "openblas"]

    compiled = graphc.compile(lambda x, w: (x @ w).relu(), backend="cpu", mode="max-autotune")
    x, w = graphc.randn(64, 64), graphc.randn(64, 64)
    with threadpool_limits(2, user_api="blas"):
        compiled(x, w)
        assert set(blas_threads()) == {2}
        with native.one_blas_thread():
            assert native.blas().get_threads() == 1
        assert set(blas_threads()) == {2}
    (runtime,) = compiled._plans.values()
    assert runtime.products is not None


@needs_openblas
@pytest.mark.parametrize("threads", [1, 2])
def test_pool_matmul_matches_np_matmul_on_batched_and_transposed_operands(threads):
    compiled = graphc.compile(lambda x, w: x @ w, backend="cpu", mode="max-autotune")
    compiled(graphc.randn(4, 4), graphc.randn(4, 4))
    (runtime,) = compiled._plans.values()
    product = PoolMatmul(runtime.products)
    q, k = randn(2, 4, 129, 16), randn(2, 4, 7, 16)
    pairs = [(q, k.swapaxes(-1, -2)), (q.swapaxes(-1, -2)[..., :7], k), (randn(3, 1, 5, 16), randn(4, 16, 1)),
             (randn(129, 64, dtype=np.float64), randn(64, 129, dtype=np.float64).T.copy().T)]
    with threadpool_limits(threads, user_api="openmp"):
        for a, b in pairs:
            got = product(a, b)
            assert got.dtype == np.matmul(a, b).dtype
            np.testing.assert_allclose(got, torch.matmul(torch.from_numpy(a), torch.from_numpy(b)).numpy(),
                                       rtol=1e-5, atol=1e-4)
    assert len(product.layouts) == len(pairs) and all(v is not None for v in product.layouts.values())


@needs_openblas
def test_attention_products_run_on_the_plans_threads():
    q, k, v = (torch.randn(2, 3, 33, 16, requires_grad=True) for _ in range(3))
    ours = [graphc.tensor(t.detach().numpy(), requires_grad=True) for t in (q, k, v)]

    def step(q, k, v):
        lib = F if isinstance(q, graphc.Tensor) else TF
        loss = lib.scaled_dot_product_attention(q, k, v, is_causal=True).square().sum()
        loss.backward()
        return loss

    compiled = graphc.compile(step, backend="cpu", mode="max-autotune")
    with threadpool_limits(2, user_api="openmp"):
        for _ in range(2):
            for t in ours:
                t.grad = None
            loss = compiled(*ours)
    assert_close(loss, step(q, k, v), rtol=1e-4, atol=1e-3)
    for o, t in zip(ours, (q, k, v)):
        assert_close(o.grad, t.grad, rtol=1e-4, atol=1e-4)
    templates = [s for runtime in compiled._plans.values() for s in runtime.plan.steps if type(s) is TemplateStep]
    assert len(templates) == 2 and all(s.product.layouts and None not in s.product.layouts.values()
                                       for s in templates)


def test_without_openblas_the_products_come_from_numpy(monkeypatch):
    monkeypatch.setattr(native, "blas", lambda: None)
    x, w, b = randn(40, 24), randn(24, 33), randn(33)

    def f(x, w, b):
        return (x @ w + b).sigmoid(), x @ w

    compiled = graphc.compile(f, backend="cpu", mode="max-autotune")
    ours = compiled(graphc.tensor(x), graphc.tensor(w), graphc.tensor(b))
    theirs = f(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b))
    for o, t in zip(ours, theirs):
        assert_close(o, t, rtol=1e-5, atol=1e-5)
    steps = [s for runtime in compiled._plans.values() for s in runtime.plan.steps
             if getattr(s, "kind", None) == "matmul"]
    assert steps and all(s._function is not None and set(s._gemm.values()) == {None} for s in steps)
