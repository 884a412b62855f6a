"""The elementwise math functions (graphc/ops/transcendental.py and torch's float helpers) at the edges of their
domains, eagerly and compiled on every backend, against torch: NaN, infinities, signed zeros, poles, integer inputs,
and torch's errors."""
import numpy as np
import pytest
import torch
from conftest import KERNEL_BACKEND, assert_close, assert_compiles_for_sm90

import graphc
from graphc.compiler.native import compiler

BACKENDS = ["eager", "numpy", KERNEL_BACKEND] + (["cpu"] if compiler() is not None else [])
EDGES = np.array([-np.inf, -100, -3, -2.5, -1, -0.5, -0.0, 0.0, 1e-30, 0.5, 1, 1.5, 3, 30, 100, np.inf, np.nan],
                 np.float32)


@pytest.fixture(scope="module", autouse=True)
def _kernel_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHC_CACHE_DIR", str(tmp_path_factory.mktemp("math")))
        yield


def unary(L, x):
    return L.stack([L.tan(x), L.asin(x), L.acos(x), L.atan(x), L.sinh(x), L.cosh(x), L.asinh(x), L.acosh(x),
                    L.atanh(x), L.log2(x), L.log10(x), L.exp2(x), L.erfc(x), L.lgamma(x), L.sinc(x), L.logit(x),
                    L.deg2rad(x), L.frac(x), L.signbit(x).float(), L.isposinf(x).float(), L.isneginf(x).float()])


def binary(L, a, b):
    return L.stack([L.atan2(a, b), L.hypot(a, b), L.xlogy(a, b), L.fmax(a, b), L.fmin(a, b), L.heaviside(a, b),
                    L.logaddexp2(a, b)])


def run(fn, backend, *arrays):
    f = fn if backend == "eager" else graphc.compile(fn, backend=backend, mode="max-autotune")
    for _ in range(2):
        out = f(graphc, *(graphc.tensor(a) for a in arrays))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_unary_math_at_the_edges(backend):
    with np.errstate(all="ignore"):
        assert_close(run(unary, backend, EDGES), unary(torch, torch.from_numpy(EDGES)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_binary_math_at_the_edges(backend):
    a, b = (np.array(v, np.float32).ravel() for v in np.meshgrid(EDGES[::2], EDGES[1::2]))
    with np.errstate(all="ignore"):
        assert_close(run(binary, backend, a, b), binary(torch, torch.from_numpy(a), torch.from_numpy(b)), rtol=1e-5,
                     atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_inputs_give_the_default_float(backend):
    x = np.array([-3, 0, 1, 2, 5], np.int64)

    def fn(L, x):
        return L.stack([L.tan(x), L.atan2(x, x + 1), L.log2(x), L.exp2(x), L.lgamma(x), L.erfc(x), L.xlogy(x, x)])

    out, expected = run(fn, backend, x), fn(torch, torch.from_numpy(x))
    assert out.dtype is graphc.float32 and expected.dtype == torch.float32
    with np.errstate(all="ignore"):
        assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_math_kernels_compile_for_sm90():
    """The libdevice calls the Triton renderer writes compile for a GPU (the interpreter runs numpy stand-ins): every
    new primitive in one fused kernel."""
    def fn(x, y):
        L = graphc
        return (L.tan(x) + L.asin(x) + L.acos(x) + L.atan(x) + L.sinh(x) + L.cosh(x) + L.asinh(x) + L.acosh(x)
                + L.atanh(x) + L.log2(x) + L.log10(x) + L.exp2(x) + L.erfc(x) + L.lgamma(x) + L.atan2(x, y)
                + L.hypot(x, y) + L.xlogy(x, y) + L.fmax(x, y) + L.fmin(x, y))

    report = graphc.explain(fn, graphc.randn(64), graphc.randn(64))
    assert report.num_kernels == 1 and not report.fallbacks, str(report)
    assert_compiles_for_sm90(report.kernels)


def test_no_lowering_ops_at_the_edges():
    x = torch.from_numpy(EDGES)
    for name in ("erfinv", "digamma"):
        assert_close(getattr(graphc, name)(graphc.tensor(EDGES)), getattr(torch, name)(x), rtol=1e-5, atol=1e-5)
    off_poles = EDGES[np.isfinite(EDGES) & (EDGES > 0)]  # torch's float polygamma at the poles is rounding noise
    assert_close(graphc.polygamma(1, graphc.tensor(off_poles)), torch.polygamma(1, torch.from_numpy(off_poles)),
                 rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("call", [
    lambda L: L.polygamma(-1, L.ones(2)),
    lambda L: L.bitwise_and(L.ones(2), L.ones(2)),
    lambda L: L.ones(2) & L.ones(2),
    lambda L: L.heaviside(L.ones(2), L.ones(2, dtype=L.float64)),
    lambda L: L.frac(L.tensor([1, 2])),
    lambda L: L.gcd(L.ones(2), L.ones(2)),
])
def test_errors_are_torch_s(call):
    with pytest.raises(Exception) as theirs:
        call(torch)
    with pytest.raises(type(theirs.value)):
        call(graphc)


def test_logspace_and_triangle_indices():
    for L in (graphc, torch):
        assert L.logspace(0, 2, 5).dtype == L.float32
    assert_close(graphc.logspace(-1, 2, 7, base=2.0), torch.logspace(-1, 2, 7, base=2.0))
    for name in ("tril_indices", "triu_indices"):
        for args in ((3, 4), (4, 3, 1), (3, 3, -1)):
            ours, theirs = getattr(graphc, name)(*args), getattr(torch, name)(*args)
            assert ours.dtype is graphc.int64
            assert_close(ours, theirs)
