"""The cpu backend's products on one thread pool: a matmul group's kernel calls a BLAS (native.gemm: numpy's OpenBLAS,
or on Intel CPUs the MKL inside torch) from its own OpenMP threads (render_c.render_gemm, runtime.gemm_layout), the
attention templates' C functions likewise (render_c_attention), and the BLAS runs on one thread while a plan runs.
Against torch.matmul and torch's attention, through both BLAS interfaces (cblas, and MKL's Fortran sgemm_ called
column-major): odd sizes, transposed and batched operands, broadcast batches, NaN and inf, float64, fp16 (whose
product numpy computes), at 1 and 2 OpenMP threads; numpy's OpenBLAS thread count is restored after a plan's call;
without a BLAS the products come from numpy."""
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
from graphc.compiler.runtime import TemplateStep

pytestmark = pytest.mark.skipif(native.compiler() is None, reason="no C compiler on this machine")
needs_openblas = pytest.mark.skipif(native.blas() is None, reason="numpy's BLAS is not an OpenBLAS with cblas")


@pytest.fixture(scope="module", autouse=True)
def _kernel_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHC_CACHE_DIR", str(tmp_path_factory.mktemp("native")))
        yield


BLASES = ["openblas", "mkl"]


def use_blas(monkeypatch, name: str) -> None:
    """The kernels call numpy's OpenBLAS (cblas) or the MKL inside torch (Fortran ?gemm_, which native.gemm picks on
    Intel CPUs), whatever this machine's CPU."""
    if name == "openblas":
        monkeypatch.setattr(native, "gemm", native.blas)
        return
    monkeypatch.setattr(native, "cpu_vendor", lambda: "GenuineIntel")
    native.torch_mkl.cache_clear()
    found = native.torch_mkl()
    native.torch_mkl.cache_clear()  # the machine's own choice again after the test
    if found is None:
        pytest.skip("torch has no MKL on this platform")
    monkeypatch.setattr(native, "gemm", lambda: found)


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
@pytest.mark.parametrize("blas", BLASES)
@pytest.mark.parametrize("threads", [1, 2])
def test_products_run_in_the_kernels_and_match_torch(monkeypatch, threads, blas):
    use_blas(monkeypatch, blas)
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
@pytest.mark.parametrize("blas", BLASES)
def test_products_split_across_two_threads_match_torch(monkeypatch, shapes, blas):
    use_blas(monkeypatch, blas)
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
@pytest.mark.parametrize("blas", BLASES)
def test_float64_products_and_operands_without_a_blas_layout(monkeypatch, blas):
    use_blas(monkeypatch, blas)
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


def sdpa_step(is_causal: bool):
    """A training step through scaled_dot_product_attention (the mask, if any, as attn_mask)."""
    def step(q, k, v, w, *mask):
        lib = F if isinstance(q, graphc.Tensor) else TF
        out = lib.scaled_dot_product_attention(q, k, v, attn_mask=mask[0] if mask else None, is_causal=is_causal)
        loss = (out.float() * w).sum()
        loss.backward()
        return loss
    return step


ATTENTION = [  # is_causal, mask (None, "bool", "float"), dtype, (b, h, lq, lk, e, ev): odd sizes, not multiples of the
    # C kernel's 32-row blocks
    (True, None, "float32", (2, 3, 70, 70, 16, 16)),  # three blocks of query rows, the last partial
    (True, None, "float16", (1, 2, 37, 21, 32, 8)),  # more queries than keys: torch's top-left causal mask
    (False, "bool", "float32", (2, 2, 33, 45, 8, 12)),  # query 1 sees no key: 0 (and no gradient), as torch
    (False, "float", "float64", (1, 3, 19, 40, 24, 24)),
    (False, None, "float32", (3, 1, 5, 67, 64, 64)),
]


@needs_openblas
@pytest.mark.parametrize("blas", BLASES)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("is_causal,mask,dtype,sizes", ATTENTION,
                         ids=[f"{'causal' if c else m}-{d}-{'x'.join(map(str, s))}" for c, m, d, s in ATTENTION])
def test_attention_runs_in_c_and_matches_torch(monkeypatch, threads, is_causal, mask, dtype, sizes, blas):
    """The attention templates' C functions (render_c_attention.SOURCE): values and the three gradients against
    torch's scaled_dot_product_attention, at 1 and 2 OpenMP threads."""
    from graphc.compiler import render_c_attention

    use_blas(monkeypatch, blas)
    calls = []
    native_launch = render_c_attention._native
    monkeypatch.setattr(render_c_attention, "_native", lambda *a: calls.append(a[0]) or native_launch(*a))
    b, h, lq, lk, e, ev = sizes
    arrays = [randn(b, h, lq, e), randn(b, h, lk, e), randn(b, h, lk, ev), randn(b, h, lq, ev)]
    masks = []
    if mask == "bool":
        masks = [np.random.rand(lq, lk) > 0.4]
        masks[0][1] = False
    elif mask == "float":
        masks = [randn(lq, lk).astype(dtype)]
    ours = [graphc.tensor(a.astype(dtype) if i < 3 else a, requires_grad=i < 3) for i, a in enumerate(arrays)]
    theirs = [torch.tensor(a.astype(dtype) if i < 3 else a, requires_grad=i < 3) for i, a in enumerate(arrays)]
    compiled = graphc.compile(sdpa_step(is_causal), backend="cpu", mode="max-autotune")
    compiled(*ours, *(graphc.tensor(m) for m in masks))  # builds the library: OpenMP's thread count applies after
    with threadpool_limits(threads, user_api="openmp"):
        for t in ours[:3]:
            t.grad = None
        loss = compiled(*ours, *(graphc.tensor(m) for m in masks))
    want = sdpa_step(is_causal)(*theirs, *(torch.tensor(m) for m in masks))
    tol = dict(rtol=1e-4, atol=1e-4) if dtype != "float16" else dict(rtol=2e-2, atol=2e-2)
    assert_close(loss, want, **tol)
    for name, o, t in zip("qkv", ours, theirs):
        assert o.grad.dtype.name == dtype, name
        assert_close(o.grad, t.grad, **tol)
    assert len(calls) == 4  # per call, the forward with the logsumexp its backward reads, then the gradients


@needs_openblas
def test_attention_in_c_propagates_nan_and_reads_any_layout():
    """NaN in a query: its output row, and every key's and value's gradient, are NaN, as torch's; q, k, v are views
    of one tensor with three batch dims that no stride joins (the C functions take two: they are copied)."""
    base = torch.randn(2, 11, 3, 2, 3, 16)  # (batch, seq, head_a, head_b, q/k/v, dim)
    base[1, 4, 2, 0, 0, 5] = float("nan")
    w = torch.randn(2, 2, 3, 11, 16)

    def step(x, w):
        lib = F if isinstance(x, graphc.Tensor) else TF
        q, k, v = (x[..., i, :].permute(0, 3, 2, 1, 4) for i in range(3))  # (batch, head_b, head_a, seq, dim)
        loss = (lib.scaled_dot_product_attention(q, k, v) * w).sum(dim=(-1, -2))
        loss.sum().backward()
        return loss

    ours = graphc.tensor(base.numpy(), requires_grad=True)
    compiled = graphc.compile(step, backend="cpu", mode="max-autotune")
    for _ in range(2):
        ours.grad = None
        loss = compiled(ours, graphc.tensor(w.numpy()))
    theirs = base.clone().requires_grad_(True)
    want = step(theirs, w)
    assert_close(loss, want, rtol=1e-4, atol=1e-4)
    assert_close(ours.grad, theirs.grad, rtol=1e-4, atol=1e-4)
    values = loss.detach().numpy()
    assert np.isnan(values[1, 0, 2]) and not np.isnan(values[0]).any()
    templates = [s for runtime in compiled._plans.values() for s in runtime.plan.steps if type(s) is TemplateStep]
    assert len(templates) == 2 and all(s.library.handle is not None for s in templates)


def test_without_a_blas_the_products_come_from_numpy(monkeypatch):
    monkeypatch.setattr(native, "gemm", lambda: None)
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


@needs_openblas
def test_the_numpy_plan_runs_attention_on_one_blas_thread(monkeypatch):
    """The numpy plan (the cpu backend's first calls, the numpy backend) runs an op computed by a kernel template
    (attention: a batch of small products) with numpy's OpenBLAS on one thread, restored after; products of their
    own (a linear) keep OpenBLAS's threads."""
    from graphc.ops import attention

    seen = []
    outputs = attention.outputs

    def recording(*args, **kwargs):
        seen.append(native.blas().get_threads())
        return outputs(*args, **kwargs)

    monkeypatch.setattr(attention, "outputs", recording)
    q, k, v, w = randn(2, 3, 16, 8), randn(2, 3, 16, 8), randn(2, 3, 16, 8), randn(8, 8)

    def f(q, k, v, w):
        lib = F if isinstance(q, graphc.Tensor) else TF
        return lib.scaled_dot_product_attention(q, k, v, is_causal=True) @ w

    compiled = graphc.compile(f, backend="numpy")
    with threadpool_limits(2, user_api="blas"):
        got = compiled(*(graphc.tensor(a) for a in (q, k, v, w)))
        assert seen == [1] and native.blas().get_threads() == 2
    assert_close(got, f(*(torch.from_numpy(a) for a in (q, k, v, w))), rtol=1e-5, atol=1e-5)
