"""Ops whose kernel lowering must keep torch's exact semantics (found by an adversarial tester of the cpu backend):
rounding, floor division, rounding modes, integer division by zero, integer pow, pow 0.5, reductions over an empty
dim. Each runs eagerly and compiled on every backend, against torch."""
import numpy as np
import pytest
import torch
from conftest import KERNEL_BACKEND, assert_close

import graphc
from graphc.compiler.native import compiler

BACKENDS = ["eager", "numpy", KERNEL_BACKEND] + (["cpu"] if compiler() is not None else [])


@pytest.fixture(scope="module", autouse=True)
def _kernel_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHC_CACHE_DIR", str(tmp_path_factory.mktemp("lowering")))
        yield


def run(fn, backend, *arrays):
    """fn on graphc tensors: eagerly, or compiled (native kernels from the first call for cpu), called twice."""
    f = fn if backend == "eager" else graphc.compile(fn, backend=backend, mode="max-autotune")
    for _ in range(2):
        out = f(*(graphc.tensor(a) for a in arrays))
    return out


def same(ours, theirs) -> None:
    """Equal values, dtype, NaN positions and signs of zero."""
    a, b = ours.numpy(), theirs.numpy()
    assert str(a.dtype) == str(b.dtype), (a.dtype, b.dtype)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.signbit(a[a == 0]), np.signbit(b[b == 0]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_round_is_half_to_even_without_double_rounding(backend):
    x = np.array([0.49999997, -0.49999997, 8388609.0, 2.5, 3.5, -2.5, -0.5, 0.5, 1.5, -1.7, 1e30, np.inf, -np.inf,
                  -0.0, 0.0, 123.456], np.float32)
    same(run(lambda a: (a * 1).round(), backend, x), (torch.from_numpy(x) * 1).round())
    same(run(lambda a: (a * 1).round(decimals=2), backend, x[-1:]), (torch.from_numpy(x[-1:]) * 1).round(decimals=2))


@pytest.mark.parametrize("backend", BACKENDS)
def test_floor_divide_of_floats_is_torch_s_not_floor_of_the_quotient(backend):
    x = np.array([1.0, 1e-30, np.inf, 7.0, -7.0, 5.0], np.float32)
    y = np.array([0.1, -np.inf, -1e-30, 2.0, 2.0, 0.0], np.float32)
    fn = lambda a, b: (a * 1) // b  # noqa: E731
    same(run(fn, backend, x, y), fn(torch.from_numpy(x), torch.from_numpy(y)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_div_rounding_modes(backend):
    a, b = np.array([7, -7, 2**40 + 1, 2**62 + 3], np.int64), np.array([2, 2, 1, 2], np.int64)
    xf, yf = np.array([7.5, -7.5, 1.0], np.float32), np.array([2.0, 2.0, 0.1], np.float32)
    for mode in ("floor", "trunc"):
        fn = lambda p, q: graphc.div(p * 1, q, rounding_mode=mode) if isinstance(p, graphc.Tensor) else \
            torch.div(p * 1, q, rounding_mode=mode)  # noqa: E731
        same(run(fn, backend, a, b), fn(torch.from_numpy(a), torch.from_numpy(b)))
        same(run(fn, backend, xf, yf), fn(torch.from_numpy(xf), torch.from_numpy(yf)))
    for mode in ("floor", "trunc"):
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            torch.div(torch.tensor([5]), torch.tensor([0]), rounding_mode=mode)
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            run(lambda p, q: graphc.div(p * 1, q, rounding_mode=mode), backend, a[:1], np.zeros(1, np.int64))
    with pytest.raises(RuntimeError, match="rounding_mode"):
        graphc.div(graphc.tensor(xf), graphc.tensor(yf), rounding_mode="round")


def test_div_rounding_mode_has_torch_s_zero_gradient():
    x = np.array([1.5, -2.5, 3.0], np.float32)
    a, t = graphc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    (graphc.div(a, 2.0, rounding_mode="floor") * a).sum().backward()
    (torch.div(t, 2.0, rounding_mode="floor") * t).sum().backward()
    assert_close(a.grad, t.grad)


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_division_like_ops_are_exact_and_refuse_zero(backend):
    a = np.array([46341, 3, -46341, 2**31 - 1, -(2**31)], np.int32)
    fn = lambda p: (p + 0) ** 2  # noqa: E731  wraps around in int32, as torch
    same(run(fn, backend, a), fn(torch.from_numpy(a)))
    big = np.array([9007199254740993, 2**62 + 1, -7], np.int64)
    div = np.array([3, 1, 2], np.int64)
    fn = lambda p, q: (p * 1) // q  # noqa: E731  beyond 2**53: no double round trip
    same(run(fn, backend, big, div), fn(torch.from_numpy(big), torch.from_numpy(div)))
    fn = lambda p, q: (p * 1).remainder(q)  # noqa: E731
    same(run(fn, backend, np.array([np.iinfo(np.int64).min, 7], np.int64), np.array([-1, -2], np.int64)),
         fn(torch.tensor([np.iinfo(np.int64).min, 7]), torch.tensor([-1, -2])))
    for name in ("remainder", "fmod", "floor_divide"):
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            getattr(torch, name)(torch.tensor([5]), torch.tensor([0]))
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            run(lambda p, q: getattr(graphc, name)(p * 1, q), backend, np.array([5], np.int64),
                np.array([0], np.int64))


@pytest.mark.parametrize("backend", BACKENDS)
def test_pow_one_half_is_sqrt(backend):
    x = np.array([-np.inf, -0.0, 4.0, 2.0], np.float32)
    got, want = run(lambda a: (a * 1) ** 0.5, backend, x), (torch.from_numpy(x) * 1) ** 0.5
    np.testing.assert_array_equal(got.numpy(), want.numpy())
    np.testing.assert_array_equal(np.signbit(got.numpy()[1]), np.signbit(want.numpy()[1]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_pow_tanh_log1p_expm1_special_values_are_c99_s(backend):
    """A negative base to an infinite or non-integer power at infinity, -1 to an infinite power, and signed zeros:
    the interpreter's stand-ins computed pow as exp(b log|a|) and gave NaN for (-inf) ** 3.7 and (-1) ** inf."""
    a = np.array([-np.inf, -1.0, -1.0, -np.inf, -np.inf, -2.0, 0.5, -0.0, 3.0, np.nan], np.float32)
    b = np.array([3.7, np.inf, -np.inf, -3.0, 2.0, 0.5, -np.inf, 3.0, 0.0, 0.0], np.float32)
    x = np.array([-0.0, 0.0, 1e-8, -1e-8, -np.inf, np.inf, 20.0, -1.0], np.float32)
    same(run(lambda p, q: (p * 1) ** q, backend, a, b), (torch.from_numpy(a) * 1) ** torch.from_numpy(b))
    for name in ("tanh", "log1p", "expm1"):
        fn = lambda t, f=name: getattr(t * 1, f)()  # noqa: E731
        got, want = run(fn, backend, x), fn(torch.from_numpy(x))
        assert_close(got, want, rtol=1e-6, atol=0)
        np.testing.assert_array_equal(np.signbit(got.numpy()[:2]), np.signbit(want.numpy()[:2]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_reductions_over_an_empty_dim(backend):
    x, y = np.zeros((0, 5), np.float32), np.zeros((3, 0), np.float32)
    assert_close(run(lambda a: (a * 2).exp().sum(0), backend, x), (torch.from_numpy(x) * 2).exp().sum(0))
    assert_close(run(lambda a: (a + 1).mean(1), backend, y), (torch.from_numpy(y) + 1).mean(1))


@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_layer_norm_weight_grad_of_an_empty_batch(backend):
    ln, tln = graphc.nn.LayerNorm(4), torch.nn.LayerNorm(4)

    def step(m, x):
        m.weight.grad = None
        m(x * 1).sum().backward()
        return m.weight.grad

    compiled = graphc.compile(step, backend=backend, mode="max-autotune")
    for rows in (4, 0, 0):
        x = np.random.randn(rows, 4).astype(np.float32)
        assert_close(compiled(ln, graphc.tensor(x)), step(tln, torch.from_numpy(x)))


def test_nan_to_num_of_bfloat16():
    x = torch.tensor([float("nan"), float("inf"), -1.0], dtype=torch.bfloat16)
    got = graphc.tensor(x.float().numpy()).to(graphc.bfloat16).nan_to_num()
    np.testing.assert_array_equal(got.float().numpy(), x.nan_to_num().float().numpy())


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_cast_from_float16_or_bfloat16_reads_the_rounded_value(backend):
    """Inside a fused kernel fp16/bf16 arithmetic runs in fp32 and rounds when stored; an explicit cast of such a
    value (`.float()` of an fp16 product) reads it rounded, as eager stored it. And the interpreter's float32 to
    bfloat16 conversion rounds to nearest even, as compiled code and torch do (Triton's interpreter truncates)."""
    x = np.array([1.0049, 2.0079, 3.01, -1.0051, 0.33333, 1e-3, 65504.0, -7.77], np.float32)
    for fn in (lambda L, t: (t.half() * 1.5).float(), lambda L, t: (t.bfloat16() + 1).float(),
               lambda L, t: (t.bfloat16() * t.bfloat16()).double() - 1, lambda L, t: t.bfloat16().float() * 3):
        same(run(lambda t: fn(graphc, t), backend, x), fn(torch, torch.tensor(x)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_per_row_value_beside_rows_as_long_as_the_reduced_dim(backend):
    """The batch equals the reduced size (6 rows of 6): the flag of each row must stay that row's
    (tests/test_fusion_graphs.py has the partition)."""
    def fn(L, x):
        rows = L.cat([x, x * 2], 1)
        return (rows > 0.5).any(1).float() * rows.sum(1)
    x = np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)
    assert_close(run(lambda t: fn(graphc, t), backend, x), fn(torch, torch.tensor(x)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_sum_over_an_expanded_total_counts_every_copy(backend):
    """s.expand(3).sum(0) of a total s is 3 s: with as many rows as copies, fusion took the second sum for a sum over
    the rows of s (one row) and dropped the expand."""
    def fn(L, x):
        return (x * 2).sum(0, keepdim=True).expand(3).sum(0)
    x = np.arange(3, dtype=np.float32)
    assert_close(run(lambda t: fn(graphc, t), backend, x), fn(torch, torch.tensor(x)))
