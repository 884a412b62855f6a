"""Existing ops at their edges, against torch, eagerly and compiled (numpy and native C plans): special values
(NaN, infinities, signed zeros, denormals, the float max), empty tensors, dtype= and keyword spellings of
arguments, bit views (view(dtype)). Signed zeros are compared where torch's sign does not depend on its
vectorised path (it does for maximum, minimum, gelu: not compared)."""
import re

import numpy as np
import pytest
import torch

import graphc
from graphc.compiler.native import compiler

TIERS = ["eager", "numpy"] + (["cpu"] if compiler() is not None else [])
SPECIAL = np.array([-0.0, 0.0, 3.4e38, -3.4e38, -1e-40, 1e-40, 100.0, -100.0, -88.7, np.inf, -np.inf, np.nan, 1.0,
                    -2.5, 0.5, -0.5, 1e-3], np.float32)


@pytest.fixture(scope="module", autouse=True)
def _kernel_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHC_CACHE_DIR", str(tmp_path_factory.mktemp("edges")))
        yield


def run(fn, tier, *arrays):
    """fn(L, *tensors) with graphc, eagerly or compiled for a backend (twice: the trace and a replay)."""
    if tier == "eager":
        return fn(graphc, *(graphc.tensor(a) for a in arrays))
    kw = {"backend": "numpy"} if tier == "numpy" else {"backend": "cpu", "mode": "max-autotune"}
    f = graphc.compile(lambda *xs: fn(graphc, *xs), **kw)
    out = [f(*(graphc.tensor(a) for a in arrays)) for _ in range(2)]
    return out[-1]


def same(expected: torch.Tensor, actual, signed_zeros: bool = True) -> None:
    e, a = expected.detach().numpy(), actual.detach().numpy()
    assert a.dtype == e.dtype and a.shape == e.shape, (a.dtype, a.shape, e.dtype, e.shape)
    np.testing.assert_allclose(a.astype(np.float64), e.astype(np.float64), rtol=1e-5, atol=0, equal_nan=True)
    if signed_zeros:
        zero = e == 0
        np.testing.assert_array_equal(np.signbit(a[zero]), np.signbit(e[zero]), "sign of zero")


def activations(L, x):
    F = L.nn.functional
    # torch's float32 gelu is NaN at +inf on CPUs with AVX-512 (its vectorised kernel) and inf elsewhere, as its
    # float64 gelu is everywhere: that one is the reference
    gelu = F.gelu(x) if L is graphc else F.gelu(x.double()).float()
    return L.stack([F.elu(x), F.elu(x, 0.5), F.celu(x, 2.0), F.selu(x), F.hardshrink(x), F.threshold(x, 0.5, -1.0),
                    gelu.abs(), F.gelu(x, approximate="tanh").abs(), L.erfinv(x / 4e38), x % 1.0, x % -1.5,
                    L.lerp(x, L.zeros_like(x), 0.5), L.lerp(x, L.ones_like(x), 0.25), L.copysign(L.ones_like(x), x)])


@pytest.mark.parametrize("tier", TIERS)
def test_activations_at_special_values_match_torch(tier):
    """gelu of the float max was inf (x * 2 overflowed), elu/celu/selu lost denormals and -0.0 (exp(x) - 1),
    threshold and hardshrink replaced NaN, erfinv(-0.0) and -0.0 % 1.0 were +0.0, lerp of an inf was NaN."""
    same(activations(torch, torch.tensor(SPECIAL)), run(activations, tier, SPECIAL))


def test_activation_gradients_at_special_values_match_torch():
    def grads(L, fn):
        x = L.tensor(SPECIAL, requires_grad=True)
        fn(L, x).sum().backward()
        return x.grad

    for fn in (lambda L, x: L.nn.functional.hardshrink(x), lambda L, x: L.nn.functional.threshold(x, 0.5, -1.0),
               lambda L, x: L.lerp(x, L.zeros_like(x), 0.75)):
        same(grads(torch, fn), grads(graphc, fn), signed_zeros=False)


def test_copysign_gradients_match_torch():
    """torch's copysign gives other a gradient of zeros (graphc gave none) and x's is NaN where x is inf or NaN."""
    x, y = SPECIAL, SPECIAL[::-1].copy()
    for L in (torch, graphc):
        a, b = L.tensor(x, requires_grad=True), L.tensor(y, requires_grad=True)
        L.copysign(a, b).sum().backward()
        if L is torch:
            expected = a.grad, b.grad
    same(expected[0], a.grad)
    same(expected[1], b.grad)
    c = graphc.tensor(x, requires_grad=True)
    graphc.copysign(c, -0.0).sum().backward()
    t = torch.tensor(x, requires_grad=True)
    torch.copysign(t, -0.0).sum().backward()
    same(t.grad, c.grad)


def empty_reductions(L, x):
    return (x.logsumexp(0), x.logsumexp((0, 1)), x.softmax(0), x.log_softmax(0), L.nn.functional.softmax(x.t(), -1),
            x.median(), x.nanmedian(), x.amax(1), x.argmax(1), x.var(0), x.mean(), x.sum(0))


@pytest.mark.parametrize("tier", TIERS)
def test_reductions_of_empty_tensors_match_torch(tier):
    """logsumexp/softmax/log_softmax over an empty dim crashed in amax; median of nothing raised (torch: NaN)."""
    x = np.zeros((0, 3), np.float32)
    for expected, actual in zip(empty_reductions(torch, torch.tensor(x)), run(empty_reductions, tier, x)):
        same(expected, actual)


@pytest.mark.parametrize("call, error, words", [
    (lambda L, x: x.amax(0), IndexError, "Expected reduction dim 0 to have non-zero size"),
    (lambda L, x: x.amin(), RuntimeError, "Expected reduction dim to be specified"),
    (lambda L, x: x.max(), RuntimeError, "Expected reduction dim to be specified"),
    (lambda L, x: x.argmax(0), IndexError, "Expected reduction dim 0 to have non-zero size"),
    (lambda L, x: x.argmin(), IndexError, "Expected reduction dim to be specified"),
    (lambda L, x: x.max(0), IndexError, "Expected reduction dim 0 to have non-zero size"),
    (lambda L, x: x.kthvalue(1, 0), IndexError, "Expected reduction dim 0 to have non-zero size"),
    (lambda L, x: x.median(0), IndexError, "Expected reduction dim 0 to have non-zero size"),
    (lambda L, x: L.aminmax(x, dim=0), IndexError, "Expected reduction dim 0 to have non-zero size"),
    (lambda L, x: L.aminmax(x), RuntimeError, "cannot compute aminmax over an empty dimension"),
])
def test_reductions_without_identity_refuse_empty_dims_as_torch(call, error, words):
    with pytest.raises(error, match=words):
        call(torch, torch.zeros(0, 3))
    with pytest.raises(error, match=words):
        call(graphc, graphc.zeros(0, 3))


@pytest.mark.parametrize("tier", TIERS)
def test_batch_norm_of_an_empty_batch_matches_torch(tier):
    """torch returns the empty output and leaves the running statistics as they were (graphc refused)."""
    def step(L, x, spatial, w):
        mean, var = L.ones(3), L.full((3,), 2.0)
        out = L.nn.functional.batch_norm(x, mean, var, w, w, training=True)
        inst = L.nn.functional.instance_norm(spatial, mean, var, use_input_stats=True)
        return out.sum(0) + inst.sum((0, 2)), mean, var

    x, spatial, w = np.zeros((0, 3), np.float32), np.zeros((2, 3, 0), np.float32), np.ones(3, np.float32)
    expected = step(torch, torch.tensor(x), torch.tensor(spatial), torch.tensor(w))
    for e, a in zip(expected, run(step, tier, x, spatial, w)):
        same(e, a)


def test_batch_norm_still_refuses_one_value_per_channel_and_updates_statistics():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        graphc.nn.functional.batch_norm(graphc.ones(1, 3), None, None, training=True)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    stats = {}
    for L in (torch, graphc):
        mean, var = L.zeros(3), L.ones(3)
        L.nn.functional.batch_norm(L.tensor(x), mean, var, training=True, momentum=0.3)
        stats[L] = mean, var
    for e, a in zip(stats[torch], stats[graphc]):
        np.testing.assert_allclose(a.numpy(), e.numpy(), rtol=1e-6)


@pytest.mark.parametrize("tier", TIERS)
def test_scans_accumulate_in_double_as_torch_on_cpu(tier):
    """torch's CPU cumsum/cumprod of float32 accumulate in double: 1e8 + 1 - 1e8 keeps its 1, and a product that
    passes through an overflow comes back (graphc's float32 scan gave 0 and -inf)."""
    def scans(L, a, b):
        return a.cumsum(0), b.cumprod(0), b.t().cumprod(-1)

    a = np.array([1e8, 1, -1e8, 1], np.float32)
    b = np.array([[3e38, 2], [10, 1.5], [1e-10, -1]], np.float32)
    for e, g in zip(scans(torch, torch.tensor(a), torch.tensor(b)), run(scans, tier, a, b)):
        same(e, g)


def test_keyword_operands_use_torch_names():
    """torch.mul(input=, other=), x.mul(other=), torch.where(condition=, input=, other=), pow(exponent=)."""
    a, b = np.array([[1.5, -2.0], [0.5, 3.0]], np.float32), np.array([[2.0, 0.5], [-1.0, 4.0]], np.float32)
    calls = [
        lambda L, x, y: x.mul(other=y), lambda L, x, y: L.mul(input=x, other=y),
        lambda L, x, y: L.add(input=x, other=y, alpha=2), lambda L, x, y: L.sub(x, other=y, alpha=0.5),
        lambda L, x, y: L.where(condition=x > 0, input=x, other=y), lambda L, x, y: L.maximum(input=x, other=y),
        lambda L, x, y: L.pow(input=x.abs(), exponent=y), lambda L, x, y: x.abs().pow(exponent=2),
        lambda L, x, y: L.atan2(input=x, other=y), lambda L, x, y: x.eq(other=y), lambda L, x, y: L.exp(input=x),
        lambda L, x, y: L.matmul(input=x, other=y), lambda L, x, y: L.fmod(input=x, other=y),
    ]
    for call in calls:
        same(call(torch, torch.tensor(a), torch.tensor(b)), call(graphc, graphc.tensor(a), graphc.tensor(b)))


@pytest.mark.parametrize("tier", TIERS)
def test_sum_and_prod_keep_an_integer_dtype_argument(tier):
    """sum(dtype=torch.int16) is int16 in torch (graphc gave int64), wrapping as torch's."""
    def sums(L, x, f):
        return (x.sum(dtype=L.int16), x.sum(1, dtype=L.int8), x.prod(0, dtype=L.int8), (x > 0).sum(dtype=L.bool),
                f.sum(1, dtype=L.int64), f.sum(dtype=L.float64), x.sum())

    x = np.array([[300, 200, -7], [100, 100, 3]], np.int16)
    f = np.array([[3.5, 2.7, -1.2], [0.5, -0.7, 9.9]], np.float32)
    for e, a in zip(sums(torch, torch.tensor(x), torch.tensor(f)), run(sums, tier, x, f)):
        same(e, a)


@pytest.mark.parametrize("dtype", ["int32", "int16", "float16", "uint8", "int64", "float64", "float32"])
def test_view_dtype_reinterprets_bits_as_torch(dtype):
    a = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    t, g = torch.tensor(a), graphc.tensor(a)
    same(t.view(getattr(torch, dtype)), g.view(getattr(graphc, dtype)))
    for case in (lambda x: x[:, :3].contiguous(), lambda x: x.t(), lambda x: x[0, 0], lambda x: x[:, 1:3]):
        try:
            expected = case(t).view(getattr(torch, dtype))
        except RuntimeError as e:
            rule = str(e).split(" ")[0]  # self.size(-1), self.stride(-1), self.dim(), self.storage_offset()
            with pytest.raises(RuntimeError, match=rf"{re.escape(rule)} .* \(different element sizes\)"):
                case(g).view(getattr(graphc, dtype))
            continue
        same(expected, case(g).view(getattr(graphc, dtype)))


def test_view_dtype_shares_memory_and_has_no_gradient():
    x = graphc.tensor([1.0, -2.0], requires_grad=True).clone()
    bits = x.view(graphc.int32)
    assert not bits.requires_grad and not x.view(graphc.float32).requires_grad
    with graphc.no_grad():
        bits[0] = 0
    assert x.tolist() == [0.0, -2.0]
    assert x.view(2, 1).shape == (2, 1)


def test_view_dtype_inside_compile_runs_eagerly_with_a_warning():
    f = graphc.compile(lambda x: x.view(graphc.int32) + 1)
    with pytest.warns(RuntimeWarning, match="bits as another dtype"):
        out = f(graphc.tensor([1.0, 2.0]))
    assert out.tolist() == (torch.tensor([1.0, 2.0]).view(torch.int32) + 1).tolist()


def test_isclose_of_finite_and_infinite_values_matches_torch():
    a = np.array([1.0, np.inf, -np.inf, np.inf, 3.0, np.nan], np.float32)
    b = np.array([-np.inf, np.inf, 3.0, -np.inf, 3.0, np.nan], np.float32)
    for equal_nan in (False, True):
        same(torch.isclose(torch.tensor(a), torch.tensor(b), equal_nan=equal_nan),
             graphc.isclose(graphc.tensor(a), graphc.tensor(b), equal_nan=equal_nan))


SMALL_CASES = [
    lambda L: L.nn.functional.threshold(L.tensor([-3, 0, 2, 8]), 0.5, 2.7),
    lambda L: L.nn.functional.relu6(L.tensor([-3, 0, 2, 8])),
    lambda L: L.nn.functional.hardtanh(L.tensor([-3, 0, 2, 8]), -1.5, 2.5),
    lambda L: L.ones(1, 4).masked_fill(L.tensor([[True], [False]]), 5.0),
    lambda L: L.tensor(3.0).gather(0, L.tensor(0)),
    lambda L: L.tensor(3.0).flip(0),
    lambda L: L.tensor(3.0).masked_select(L.tensor(True)),
    lambda L: L.tensor(3.0).logcumsumexp(0),
    lambda L: L.tensor([1, 2]).nan_to_num(),
    lambda L: L.isclose(L.tensor([True, False]), L.tensor([True, True])),
    lambda L: L.logsumexp(L.tensor([[True, False]]), 1),
    lambda L: L.stack(L.zeros(0, 3).chunk(3, 0)),
    lambda L: L.sinc(L.tensor([0, 1, 2])),
    lambda L: L.lerp(L.tensor([1.0, 2.0]).half(), L.tensor([3.0, 4.0]).half(), 0.75),
    lambda L: L.nn.functional.layer_norm(L.tensor([[-65500.0, -2.77, 6e-8, 11.0, 2.0]]).half(), (5,)),
    lambda L: L.tensor([[30000.0, -20000.0, 100.0]]).half().std(1),
]
REFUSALS = [
    lambda L: L.tensor([True]) - L.tensor([False]), lambda L: -L.tensor([True]), lambda L: +L.tensor([True]),
    lambda L: L.tensor(3.0).chunk(2, 0), lambda L: L.tensor(3.0).split(1, 0), lambda L: L.tensor(3.0).roll(1, 0),
    lambda L: L.zeros(0).norm(p=float("inf"), dim=0), lambda L: L.ones(3).renorm(2, 0, 1.0),
    lambda L: L.ones(1, 4).masked_fill_(L.tensor([[True], [False]]), 5.0),
]


@pytest.mark.parametrize("case", range(len(SMALL_CASES)))
def test_small_edges_match_torch(case):
    """Found by tests/test_random_op_edges.py: integer threshold/hardtanh promoted to float, masked_fill refused
    to broadcast its input, 0-d gather/flip/masked_select/logcumsumexp crashed, as did integer nan_to_num,
    bool isclose/logsumexp, chunks of an empty dim were one, float16 lerp gave float32, float16 layer_norm and std
    overflowed."""
    same(SMALL_CASES[case](torch), SMALL_CASES[case](graphc), signed_zeros=False)


@pytest.mark.parametrize("case", range(len(REFUSALS)))
def test_refusals_have_torch_error_classes(case):
    with pytest.raises(Exception) as expected:
        REFUSALS[case](torch)
    with pytest.raises(Exception) as actual:
        REFUSALS[case](graphc)
    kinds = (IndexError, ValueError, TypeError, RuntimeError)
    assert [isinstance(expected.value, k) for k in kinds] == [isinstance(actual.value, k) for k in kinds], (
        expected.value, actual.value)


@pytest.mark.parametrize("fn, values", [
    (lambda L, x: x.max(), [1.0, np.nan, 3.0, np.nan]),
    (lambda L, x: x.min(), [1.0, -2.0, -2.0]),
    (lambda L, x: L.xlogy(x, L.tensor([1.05, 0.0, -1.0, 2.0])), [0.0, 0.0, 0.0, 1.0]),
    (lambda L, x: L.sinc(x), [0.0, 1e-20, 1e-3, 0.5, -2.0]),
    (lambda L, x: x.median(), []),
])
def test_gradients_at_edges_match_torch(fn, values):
    """max()/min() share their gradient among the NaN elements when the result is NaN (graphc: NaN everywhere);
    xlogy's gradient at x = 0 is log(y) unless y <= 0 (graphc: 0); sinc's at tiny x is 0 (graphc: -7e13)."""
    grads = []
    for L in (torch, graphc):
        x = L.tensor(np.array(values, np.float32), requires_grad=True)
        fn(L, x).sum().backward()
        grads.append(x.grad)
    same(grads[0], grads[1], signed_zeros=False)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_where_on_large_masks_is_torchs_bit_for_bit(dtype):
    """where over 65,536 elements and more selects bits without branching (ops.elementwise._where_forward): NaN,
    infinities and signed zeros come through, operands broadcast, and a Python number takes the array's dtype, as
    torch's where, eagerly and compiled."""
    rng = np.random.default_rng(0)
    cases = [((512, 256), (512, 256), ()), ((512, 256), (), (512, 256)), ((512, 256), (256,), (512, 1)),
             ((1, 256), (512, 256), (512, 256))]
    for tier in TIERS:
        for shape_c, shape_a, shape_b in cases:
            c = rng.random(shape_c) > 0.5
            a, b = (np.asarray(rng.standard_normal(s) * 10).astype(dtype) for s in (shape_a, shape_b))
            if a.dtype.kind == "f" and a.ndim:
                a.flat[:4] = [np.nan, np.inf, -0.0, -np.inf]
            got = run(lambda L, c, a, b: L.where(c, a, b), tier, c, a, b).numpy()
            want = torch.where(torch.from_numpy(c), torch.from_numpy(a), torch.from_numpy(b)).numpy()
            assert got.dtype == want.dtype and got.shape == want.shape
            assert np.array_equal(got.view(f"i{got.itemsize}"), want.view(f"i{got.itemsize}")), (shape_a, shape_b)
        c, a = rng.random((300, 300)) > 0.5, (rng.standard_normal((300, 300)) * 10).astype(dtype)
        for number in (0.0, -0.0, 2.5, 3):
            got = run(lambda L, c, a: L.where(c, a, number), tier, c, a).numpy()
            want = torch.where(torch.from_numpy(c), torch.from_numpy(a), number).numpy()
            assert got.dtype == want.dtype and np.array_equal(np.signbit(got), np.signbit(want))
            np.testing.assert_array_equal(got, want)
