"""The tensor API real scripts use beyond the op table: random streams (Generator), Size, number formatting,
custom autograd Functions, grad modes, and the refusals of the layout/indexing/sorting ops, each against torch."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from conftest import KERNEL_BACKEND, assert_close, assert_compiles_for_sm90, to_torch

import graphc

# ---- refusals: (name, call with L = graphc or torch, key words both messages hold) -------------------------------
ERRORS = [
    ("tril_1d", lambda L: L.tril(L.ones(3)), "at least 2 dimensions"),
    ("triu_1d", lambda L: L.ones(3).triu(), "at least 2 dimensions"),
    ("flip_repeated_dim", lambda L: L.flip(L.ones(3, 3), (0, 0)), "appears multiple times"),
    ("roll_misaligned", lambda L: L.roll(L.ones(3, 3), (1, 2), (0,)), "shifts and dimensions must align"),
    ("narrow_too_long", lambda L: L.narrow(L.ones(3, 3), 0, 2, 2), "exceeds dimension size"),
    ("diagonal_same_dims", lambda L: L.diagonal(L.ones(3, 3), 0, 1, 1), "diagonal dimensions cannot be identical"),
    ("diagonal_dim_range", lambda L: L.diagonal(L.ones(3)), "out of range"),
    ("diag_3d", lambda L: L.diag(L.ones(2, 2, 2)), "1D or 2D"),
    ("outer_2d", lambda L: L.outer(L.ones(3, 3), L.ones(3)), "Expected 1-D argument self"),
    ("topk_k_too_large", lambda L: L.topk(L.ones(3), 4), "selected index k out of range"),
    ("gather_rank", lambda L: L.ones(3, 4).gather(1, L.tensor([0])), "same number of dimensions"),
    ("gather_out_of_bounds", lambda L: L.ones(3, 4).gather(1, L.tensor([[5]])), "out of bounds for dimension 1"),
    ("scatter_dtype", lambda L: L.ones(3, 4).scatter(1, L.tensor([[0]]), L.ones(1, 1, dtype=L.float64)),
     "Expected self.dtype to be equal to src.dtype"),
    ("scatter_index_dtype", lambda L: L.ones(3, 4).scatter(1, L.tensor([[0.0]]), 1.0), "int32/int64 for index"),
    ("scatter_index_too_big", lambda L: L.ones(3, 4).scatter(1, L.tensor([[0, 1, 2]]), L.ones(1, 2)),
     "to be no larger than self"),
    ("index_select_matrix", lambda L: L.ones(3, 4).index_select(1, L.tensor([[0]])), "supposed to be a vector"),
    ("index_select_dtype", lambda L: L.ones(3, 4).index_select(1, L.tensor([1.0])), "int32 or int64 for index"),
    ("index_add_sizes", lambda L: L.zeros(3, 4).index_add(1, L.tensor([0, 0]), L.ones(3, 3)),
     "should be equal to source.size(dim)"),
    ("index_fill_matrix_index", lambda L: L.zeros(3, 4).index_fill(1, L.tensor([[1]]), 5.0), "vector/scalar"),
    ("index_copy_float_index", lambda L: L.zeros(3, 4).index_copy(1, L.tensor([1.0]), L.ones(3, 1)),
     "Expected a long tensor for index"),
    ("masked_select_float_mask", lambda L: L.ones(3, 4).masked_select(L.ones(3, 4)), "BoolTensor"),
    ("meshgrid_2d", lambda L: L.meshgrid(L.ones(2, 2), indexing="ij"), "0D or 1D"),
    ("repeat_interleave_sizes", lambda L: L.ones(3).repeat_interleave(L.tensor([1, 2])),
     "repeats must have the same size"),
    ("multinomial_negative", lambda L: L.multinomial(L.tensor([-1.0, 2.0]), 1), "element < 0"),
    ("multinomial_zero_sum", lambda L: L.multinomial(L.tensor([0.0, 0.0]), 1), "sum of probabilities"),
    ("multinomial_too_many", lambda L: L.multinomial(L.tensor([1.0, 2.0]), 3), "without replacement"),
    ("multinomial_3d", lambda L: L.multinomial(L.ones(2, 2, 2), 1), "1 or 2 dim"),
    ("normal_negative_std", lambda L: L.zeros(3).normal_(0, -1), "std >= 0.0"),
    ("uniform_empty_range", lambda L: L.zeros(3).uniform_(2, 1), "from=2"),
    ("randperm_negative", lambda L: L.randperm(-1), "negative dimension"),
    ("requires_grad_int", lambda L: L.ones(3, dtype=L.int64).requires_grad_(), "floating point"),
    ("format_vector_spec", lambda L: f"{L.ones(2):.2f}", "unsupported format string"),
    ("generator_state", lambda L: L.Generator().set_state(L.ones(3)), ""),
    ("mm_3d", lambda L: L.mm(L.ones(2, 3, 4), L.ones(4, 2)), "self must be a matrix"),
    ("mm_inner", lambda L: L.mm(L.ones(2, 3), L.ones(4, 2)), "cannot be multiplied"),
    ("addmm_input_wider", lambda L: L.addmm(L.ones(5, 2, 2), L.ones(2, 3), L.ones(3, 2)), "2, 2]"),
    ("addmm_input_mismatch", lambda L: L.addmm(L.ones(3), L.ones(2, 3), L.ones(3, 2)), "expanded size"),
    ("baddbmm_batches", lambda L: L.baddbmm(L.ones(2, 2, 2), L.ones(2, 2, 3), L.ones(3, 2, 2)), ""),
    ("cumprod_dim", lambda L: L.cumprod(L.ones(2, 3), 2), "out of range"),
    ("isclose_negative_rtol", lambda L: L.isclose(L.ones(2), L.ones(2), rtol=-1), "greater than or equal to zero"),
    ("lerp_shapes", lambda L: L.lerp(L.ones(2), L.ones(3), 0.5), ""),
]


@pytest.mark.parametrize("name,call,words", ERRORS, ids=[e[0] for e in ERRORS])
def test_refusals_match_torch(name, call, words):
    with pytest.raises(Exception) as theirs:
        call(torch)
    with pytest.raises(Exception) as ours:
        call(graphc)
    assert isinstance(ours.value, type(theirs.value)), (ours.value, theirs.value)
    for text in (str(ours.value), str(theirs.value)):
        assert words in text


# ---- Generator ------------------------------------------------------------------------------------------------
RANDOM_CALLS = [
    lambda g: graphc.rand(3, 4, generator=g),
    lambda g: graphc.randn((5,), generator=g),
    lambda g: graphc.randint(0, 10, (6,), generator=g),
    lambda g: graphc.randint(7, (2, 2), generator=g),
    lambda g: graphc.randperm(9, generator=g),
    lambda g: graphc.multinomial(graphc.tensor([[0.1, 0.5, 0.4], [1.0, 0.0, 2.0]]), 2, generator=g),
    lambda g: graphc.multinomial(graphc.tensor([0.2, 0.8]), 5, replacement=True, generator=g),
    lambda g: graphc.normal(0.0, 2.0, (4,), generator=g),
    lambda g: graphc.normal(graphc.zeros(4), graphc.ones(4), generator=g),
    lambda g: graphc.bernoulli(graphc.full((6,), 0.3), generator=g),
    lambda g: graphc.rand_like(graphc.ones(2, 3), generator=g),
    lambda g: graphc.randn_like(graphc.ones(2, 3), generator=g),
    lambda g: graphc.randint_like(graphc.ones(2, 3), 5, generator=g),
    lambda g: graphc.empty(6).normal_(1.0, 0.5, generator=g),
    lambda g: graphc.empty(6).uniform_(-1, 1, generator=g),
    lambda g: graphc.empty(6).bernoulli_(0.4, generator=g),
    lambda g: graphc.empty(6).bernoulli_(graphc.linspace(0, 1, 6), generator=g),
    lambda g: graphc.empty(6).exponential_(2.0, generator=g),
    lambda g: graphc.empty(6).random_(0, 5, generator=g),
    lambda g: graphc.empty(6).geometric_(0.3, generator=g),
    lambda g: graphc.empty(6).log_normal_(generator=g),
    lambda g: graphc.empty(6).cauchy_(generator=g),
    lambda g: graphc.nn.init.normal_(graphc.empty(3, 3), generator=g),
]


@pytest.mark.parametrize("call", RANDOM_CALLS)
def test_every_random_function_draws_from_the_generator_given(call):
    g = graphc.Generator().manual_seed(123)
    first = call(g).numpy()
    graphc.manual_seed(7)  # the default stream plays no part
    second = call(graphc.Generator().manual_seed(123)).numpy()
    np.testing.assert_array_equal(first, second)
    state = g.get_state()
    again, replay = call(g).numpy(), call(g.set_state(state)).numpy()
    np.testing.assert_array_equal(again, replay)


def test_generator_seed_state_and_default_stream_like_torch():
    g = graphc.Generator()
    assert g.manual_seed(-1).initial_seed() == torch.Generator().manual_seed(-1).initial_seed() == 2**64 - 1
    assert g.device == "cpu" and isinstance(g.seed(), int) and g.initial_seed() == g.initial_seed()
    graphc.manual_seed(5)
    assert graphc.initial_seed() == 5
    state = graphc.get_rng_state()
    a = graphc.randn(4)
    graphc.set_rng_state(state)
    np.testing.assert_array_equal(a.numpy(), graphc.randn(4).numpy())
    with pytest.raises(TypeError, match="graphc.Generator"):
        graphc.rand(2, generator=np.random.default_rng())


def test_random_draws_follow_torch_distributions():
    g = graphc.Generator().manual_seed(0)
    n = 200_000
    checks = [(graphc.rand(n, generator=g), torch.rand(n)), (graphc.randn(n, generator=g), torch.randn(n)),
              (graphc.empty(n).exponential_(3.0, generator=g), torch.empty(n).exponential_(3.0)),
              (graphc.empty(n).normal_(2, 0.5, generator=g), torch.empty(n).normal_(2, 0.5)),
              (graphc.empty(n).geometric_(0.25, generator=g), torch.empty(n).geometric_(0.25)),
              (graphc.randint(3, 9, (n,), generator=g).float(), torch.randint(3, 9, (n,)).float())]
    for ours, theirs in checks:
        assert ours.dtype.name == str(theirs.dtype).removeprefix("torch.")
        assert abs(ours.mean().item() - theirs.mean().item()) < 0.02 * max(1.0, abs(theirs.mean().item()))
        assert abs(ours.std().item() - theirs.std().item()) < 0.02 * max(1.0, theirs.std().item())
    weights = graphc.tensor([[1.0, 0.0, 3.0, 4.0]])
    counts = np.bincount(graphc.multinomial(weights, n, replacement=True, generator=g).numpy().ravel(), minlength=4)
    np.testing.assert_allclose(counts / n, [0.125, 0.0, 0.375, 0.5], atol=0.01)
    firsts = graphc.multinomial(weights.expand(20_000, 4), 2, generator=g).numpy()
    assert (firsts[:, 0] != firsts[:, 1]).all() and not (firsts == 1).any()
    np.testing.assert_allclose(np.bincount(firsts[:, 0], minlength=4) / 20_000, [0.125, 0, 0.375, 0.5], atol=0.02)
    wide = graphc.empty(n).random_(generator=g)
    assert 2**23 < wide.max().item() <= 2**24 and 2**23 < torch.empty(n).random_().max().item() <= 2**24
    perm = graphc.randperm(50, generator=g)
    assert perm.dtype is graphc.int64 and sorted(perm.tolist()) == list(range(50))


def test_random_ops_in_a_compiled_function_draw_anew_from_their_generator():
    g = graphc.Generator().manual_seed(1)

    @graphc.compile
    def noisy(x):
        return x + graphc.randn(x.shape[0], generator=g) + x[graphc.randperm(3, generator=g)]

    x = graphc.zeros(3)
    outs = [noisy(x).numpy() for _ in range(3)]
    g.manual_seed(1)
    expected = [(graphc.randn(3, generator=g) + x[graphc.randperm(3, generator=g)]).numpy() for _ in range(3)]
    np.testing.assert_allclose(outs, expected, rtol=1e-6)
    assert not np.allclose(outs[0], outs[1])


def test_inplace_random_on_a_leaf_that_requires_grad_is_refused_outside_no_grad():
    w = graphc.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf"):
        w.normal_()
    with graphc.no_grad():
        w.uniform_(0.5, 1.0)
    assert w.requires_grad and (w.detach().numpy() >= 0.5).all()


# ---- Size and formatting ----------------------------------------------------------------------------------------
def test_shape_is_a_size_like_torch():
    x, t = graphc.zeros(2, 3, 4), torch.zeros(2, 3, 4)
    for ours, theirs in [(x.shape, t.shape), (x.shape[1:], t.shape[1:]), (x.shape + (5,), t.shape + (5,)),
                         ((1,) + x.shape, (1,) + t.shape), (x.size(), t.size())]:
        assert isinstance(ours, graphc.Size) and type(theirs) is torch.Size
        assert ours == tuple(theirs) and ours.numel() == theirs.numel()
    assert repr(x.shape) == "graphc.Size([2, 3, 4])" and x.shape[0] == 2 and x.nelement() == t.nelement() == 24
    assert graphc.Size([2, 3]) == (2, 3) and graphc.zeros(graphc.Size([2, 3])).shape == (2, 3)


@pytest.mark.parametrize("spec", ["", ".3f", ">10.2e", "g", "+.1%"])
@pytest.mark.parametrize("value", [1.23456, -2.5e-7, 3.0])
def test_zero_dim_tensors_format_like_numbers(spec, value):
    ours, theirs = graphc.tensor(value, dtype=graphc.float64), torch.tensor(value, dtype=torch.float64)
    assert format(ours, spec) == format(theirs, spec)
    assert f"{ours * 1}" == f"{theirs * 1}"
    assert "%.2f" % ours == "%.2f" % theirs and "%d" % graphc.tensor(3) == "%d" % torch.tensor(3)  # noqa: UP031
    assert f"{graphc.tensor(7)}" == f"{torch.tensor(7)}" and f"{graphc.tensor(True)}" == f"{torch.tensor(True)}"


def test_formatting_a_traced_loss_is_a_graph_break_with_the_right_value():
    @graphc.compile
    def f(x):
        loss = (x * x).sum()
        return f"{loss:.2f}"

    assert f(graphc.tensor([1.0, 2.0])) == "5.00"


# ---- autograd: Function, grad modes, hooks, .data ---------------------------------------------------------------
def _function(L):
    class Legendre3(L.autograd.Function):
        """P3(x) = (5x^3 - 3x) / 2 with a hand-written backward, as in the classic polynomial-fit tutorial."""

        @staticmethod
        def forward(ctx, x, scale):
            ctx.save_for_backward(x)
            ctx.scale = scale
            return 0.5 * (5 * x**3 - 3 * x) * scale

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * 1.5 * (5 * x**2 - 1) * ctx.scale, None
    return Legendre3


def _two_outputs(L):
    class SplitSign(L.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            ctx.save_for_backward(x, y)
            positive = x > 0
            ctx.mark_non_differentiable(positive)
            return x * y, x + y, positive

        @staticmethod
        def backward(ctx, g_prod, g_sum, g_positive):
            x, y = ctx.saved_tensors
            assert ctx.needs_input_grad == (True, True)
            return g_prod * y + g_sum, g_prod * x + g_sum
    return SplitSign


def test_custom_function_matches_torch():
    x = graphc.randn(5, requires_grad=True)
    tx = to_torch(x)
    out, tout = _function(graphc).apply(x, 2.0), _function(torch).apply(tx, 2.0)
    assert out.grad_fn.name() == "Legendre3Backward"
    assert_close(out, tout)
    (out * out).sum().backward()
    (tout * tout).sum().backward()
    assert_close(x.grad, tx.grad, rtol=1e-5)

    a, b = graphc.randn(3, requires_grad=True), graphc.randn(3, requires_grad=True)
    ta, tb = to_torch(a), to_torch(b)
    p, s, pos = _two_outputs(graphc).apply(a, b)
    tp, ts, tpos = _two_outputs(torch).apply(ta, tb)
    assert not pos.requires_grad and not tpos.requires_grad and p.grad_fn.name() == "SplitSignBackward"
    (p * 3 + s.exp()).sum().backward()
    (tp * 3 + ts.exp()).sum().backward()
    assert_close(a.grad, ta.grad, rtol=1e-5)
    assert_close(b.grad, tb.grad, rtol=1e-5)
    p2, _, _ = _two_outputs(graphc).apply(a, b)
    p2.sum().backward()  # s got no gradient: backward sees zeros, as in torch


def test_custom_function_refusals_like_torch():
    for L in (graphc, torch):
        class TooMany(L.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2

            @staticmethod
            def backward(ctx, g):
                return g, g
        with pytest.raises(RuntimeError, match="returned an incorrect number of gradients"):
            TooMany.apply(L.ones(2, requires_grad=True)).sum().backward()
        with pytest.raises(RuntimeError, match="a second time"):
            y = _function(L).apply(L.ones(2, requires_grad=True), 1.0).sum()
            y.backward()
            y.backward()
        assert not TooMany.apply(L.ones(2)).requires_grad

        class GradForNumber(L.autograd.Function):
            @staticmethod
            def forward(ctx, x, k):
                return x * k, None

            @staticmethod
            def backward(ctx, g, g_none):
                assert g_none is None
                return g, g
        with pytest.raises(RuntimeError, match="returned a gradient different than None at position 2"):
            GradForNumber.apply(L.ones(2, requires_grad=True), 2.0)[0].sum().backward()


def test_custom_function_inside_compile_replays_its_backward():
    Legendre3 = _function(graphc)
    w = graphc.randn(4, requires_grad=True)
    tw = to_torch(w)

    @graphc.compile
    def step(x):
        w.grad = None
        loss = Legendre3.apply(x * w, 0.5).sum()
        loss.backward()
        return loss

    for _ in range(3):
        x = graphc.randn(4)
        tw.grad = None
        expected = _function(torch).apply(to_torch(x) * tw, 0.5).sum()
        expected.backward()
        assert_close(step(x), expected, rtol=1e-5)
        assert_close(w.grad, tw.grad, rtol=1e-5)
    assert step.num_compiles == 1


def test_inference_mode_and_set_grad_enabled_like_torch():
    for L in (graphc, torch):
        w = L.ones(2, requires_grad=True)
        with L.inference_mode():
            assert not (w * 2).requires_grad
        with L.inference_mode(False):
            assert (w * 2).requires_grad

        @L.inference_mode
        def bare():
            return w * 2

        @L.inference_mode()
        def called():
            return w * 2

        @L.set_grad_enabled(False)
        def no_grad_fn():
            return w * 2
        assert not bare().requires_grad and not called().requires_grad and not no_grad_fn().requires_grad
        assert L.is_grad_enabled()
        L.set_grad_enabled(False)
        assert not (w * 2).requires_grad
        L.set_grad_enabled(True)
        with L.set_grad_enabled(False):
            assert not L.is_grad_enabled()
        assert L.is_grad_enabled()


def test_hooks_retain_grad_and_data_like_torch():
    results = []
    for L in (graphc, torch):
        x = L.tensor([1.0, -2.0, 3.0], requires_grad=True)
        y = x * 2
        y.retain_grad()
        handle = y.register_hook(lambda g: g * 10)
        z = y.sum() * 3
        z.backward()
        x.register_hook(lambda g: g + 1)
        (x * 1).sum().backward()
        handle.remove()
        d = x.data
        d.add_(1)  # .data shares storage and is never tracked
        assert not d.requires_grad and d.grad_fn is None
        x.data = L.zeros(3)
        results.append([y.grad.numpy().copy(), x.grad.numpy().copy(), x.detach().numpy().copy(), x.requires_grad])
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs)


def test_constructors_keep_dtype_and_device_like_torch():
    for L in (graphc, torch):
        x = L.ones(2, 3, dtype=L.float64)
        made = [x.new_zeros(4), x.new_ones((2, 2)), x.new_full((3,), 7), x.new_tensor([1, 2]), L.empty_like(x),
                L.full_like(x, 2.5), L.zeros(2, dtype=L.int64).type_as(x), x.new_zeros(2, dtype=L.int32)]
        assert [str(m.dtype).split(".")[-1] for m in made] == ["float64"] * 7 + ["int32"]
        assert [tuple(m.shape) for m in made] == [(4,), (2, 2), (3,), (2,), (2, 3), (2, 3), (2,), (2,)]
        assert all(not m.requires_grad for m in made) and L.full_like(x, 2.5).sum().item() == 15


def test_meshgrid_without_indexing_warns_and_uses_ij_like_torch():
    a, b = graphc.arange(3), graphc.arange(4)
    with pytest.warns(UserWarning, match="indexing argument"):
        ours = graphc.meshgrid(a, b)
    with pytest.warns(UserWarning, match="indexing argument"):
        theirs = torch.meshgrid(to_torch(a), to_torch(b))
    for o, t in zip(ours, theirs):
        assert_close(o, t)


def test_writes_through_a_diagonal_view_reach_the_base_and_its_gradient_like_torch():
    results = []
    for L in (graphc, torch):
        x = L.zeros(3, 4)
        x.diagonal(1).fill_(1.0)
        w = L.ones(3, 3, requires_grad=True)
        y = w * 2
        y.diagonal().mul_(3)
        y.sum().backward()
        results.append((x.numpy().copy(), w.grad.numpy().copy()))
    for ours, theirs in zip(*results):
        np.testing.assert_array_equal(ours, theirs)


def test_writes_through_a_diagonal_view_inside_compile_are_functionalized():
    w = graphc.randn(3, 3, requires_grad=True)
    tw = to_torch(w)

    def step(L, w, x):
        w.grad = None
        y = w * x
        y.diagonal().mul_(3)
        loss = (y * y).sum()
        loss.backward()
        return loss

    compiled = graphc.compile(lambda x: step(graphc, w, x))
    for _ in range(3):
        x = graphc.randn(3, 3)
        loss = compiled(x)
        expected = step(torch, tw, to_torch(x))
        assert_close(loss, expected, rtol=1e-5)
        assert_close(w.grad, tw.grad, rtol=1e-5)
    assert compiled.num_compiles == 1


def test_in_place_index_updates_like_torch():
    results = []
    for L in (graphc, torch):
        x = L.zeros(3, 4)
        x.index_add_(1, L.tensor([0, 0, 3]), L.ones(3, 3)).index_fill_(0, L.tensor(1), 7.0)
        x.index_copy_(1, L.tensor([2]), L.full((3, 1), 3.0))
        results.append(x.numpy().copy())
    np.testing.assert_array_equal(*results)


def test_scatter_from_a_larger_src_reads_its_leading_block():
    src = graphc.randn(3, 3, requires_grad=True)
    index = graphc.tensor([[0, 2], [1, 3], [3, 0]])
    out = graphc.zeros(3, 4).scatter(1, index, src)
    assert_close(out, torch.zeros(3, 4).scatter(1, to_torch(index), to_torch(src, False)))
    out.sum().backward()  # torch refuses this backward; the gradient is 1 where src was read, 0 elsewhere
    np.testing.assert_array_equal(src.grad.numpy(), [[1, 1, 0], [1, 1, 0], [1, 1, 0]])


def test_nonzero_of_a_scalar_and_index_select_of_a_scalar_like_torch():
    for value in (0.0, 3.0):
        assert_close(graphc.nonzero(graphc.tensor(value)), torch.nonzero(torch.tensor(value)))
        assert_close(graphc.tensor(value).nonzero(as_tuple=True)[0], torch.tensor(value).nonzero(as_tuple=True)[0])
    assert_close(graphc.index_select(graphc.tensor(3.0), 0, graphc.tensor(0)),
                 torch.index_select(torch.tensor(3.0), 0, torch.tensor(0)))


def test_fallback_ops_state_their_reason_in_explain():
    report = graphc.explain(lambda x: graphc.tril(x).sort(-1).values.sum(), graphc.randn(4, 4))
    reasons = dict(report.fallbacks)
    assert re.search("element positions", reasons["tril"]) and "sorting" in reasons["argsort"]


# ---- compiled: the lowered ops fuse into one kernel; the fallbacks run between kernels, backward included ----------
@pytest.fixture
def _kernel_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))


def _lowered(L, a, b):
    special = L.where(a > 1.2, float("inf"), L.where(a < -1.2, float("nan"), a))
    return (L.nan_to_num(special, nan=0.5, posinf=3.0) + L.isinf(special) + L.isfinite(special) * 2
            + L.round(a * 3) + L.round(b, decimals=1) + L.trunc(a * 2) + L.fmod(a * 4, b.abs() + 0.5)
            + L.remainder(a * 4, b.abs() + 0.5) + L.expm1(b) + L.logaddexp(a, b * 3)
            + L.logical_xor(a > 0, b > 0) + L.lerp(a, b, 0.25))


@pytest.mark.parametrize("backend", ["numpy", "interpret"])
def test_new_elementwise_lowerings_fuse_and_match_torch(backend, _kernel_cache):
    a, b = np.random.randn(6, 5).astype(np.float32), np.random.randn(5).astype(np.float32)
    a[0, :3] = [0.5, 1.5, -2.5] / np.float32(3)  # rounding ties, half to even
    compiled = graphc.compile(lambda x, y: _lowered(graphc, x, y), backend=backend)
    assert_close(compiled(graphc.tensor(a), graphc.tensor(b)), _lowered(torch, torch.tensor(a), torch.tensor(b)),
                 rtol=1e-5, atol=1e-5)
    if backend == "interpret":
        report = graphc.explain(lambda x, y: _lowered(graphc, x, y), graphc.tensor(a), graphc.tensor(b))
        assert report.num_kernels == 1 and not report.fallbacks, str(report)
        assert_compiles_for_sm90(report.kernels)


@pytest.mark.parametrize("backend", ["numpy", "interpret"])
def test_remainder_and_fmod_are_exact_where_the_quotient_rounds_to_a_whole_number(backend, _kernel_cache):
    a = np.array([0.3, -0.3, 5.0, -5.0, 2.9999998, 7.0], np.float32)
    b = np.array([0.1, 0.1, -3.0, 3.0, 1.0, 7.0], np.float32)
    compiled = graphc.compile(lambda x, y: (x % y, graphc.fmod(x, y), x.long() % 3), backend=backend)
    for ours, theirs in zip(compiled(graphc.tensor(a), graphc.tensor(b)),
                            (torch.tensor(a) % torch.tensor(b), torch.fmod(torch.tensor(a), torch.tensor(b)),
                             torch.tensor(a).long() % 3)):
        assert_close(ours, theirs, rtol=0, atol=0)


def _fallbacks_step(L, x, w, index):
    h = (x @ w).tril(-1) + (x @ w).triu(1).flip(0).roll(1, 1)
    h = h.scatter_add(1, index, h[:, :2] * 2) + L.diagonal(h).sum() + L.diag(h[0]).sum(0)
    v, i = h.sort(-1, descending=True)
    return (v.cumprod(-1)[:, :3].tanh().sum() + L.topk(h, 2).values.sum() + h.gather(1, i[:, :1]).sum()
            + h.index_select(0, index[:, 0]).cumsum(0).mean())


@pytest.mark.parametrize("backend", ["numpy", "interpret"])
def test_fallback_ops_in_a_compiled_training_step_match_torch(backend, _kernel_cache):
    w = graphc.randn(5, 5, requires_grad=True)
    tw = to_torch(w)
    index = graphc.tensor([[0, 4], [1, 2], [3, 3], [2, 0]])

    @graphc.compile(backend=backend)
    def step(x):
        w.grad = None
        loss = _fallbacks_step(graphc, x, w, index)
        loss.backward()
        return loss

    for _ in range(2):
        x = graphc.randn(4, 5)
        tw.grad = None
        expected = _fallbacks_step(torch, to_torch(x), tw, to_torch(index))
        expected.backward()
        assert_close(step(x), expected, rtol=1e-4, atol=1e-5)
        assert_close(w.grad, tw.grad, rtol=1e-4, atol=1e-5)
    assert step.num_compiles == 1


def test_size_and_storage_queries_as_torch():
    a = np.arange(20, dtype=np.float32).reshape(4, 5)
    g, t = graphc.tensor(a), torch.tensor(a)
    for gv, tv in ((g, t), (g[1:, 2:], t[1:, 2:]), (g.t(), t.t()), (g.long(), t.long()), (g > 2, t > 2)):
        assert gv.element_size() == tv.element_size() and gv.itemsize == tv.itemsize and gv.nbytes == tv.nbytes
        assert gv.storage_offset() == tv.storage_offset() and gv.ndimension() == tv.ndimension()
        assert gv.is_signed() == tv.is_signed() and gv.is_cpu == tv.is_cpu and gv.get_device() == tv.get_device()
    assert g.share_memory_() is g and not g.is_pinned()
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="accelerator"):
            t.pin_memory()
        with pytest.raises(RuntimeError, match="accelerator"):
            g.pin_memory()


def test_retains_grad():
    x = graphc.ones(2, requires_grad=True)
    y, z = x * 2, x * 3
    y.retain_grad()
    assert y.retains_grad and not z.retains_grad and not x.retains_grad


@pytest.mark.parametrize("call", [
    lambda x: x.greater(0), lambda x: x.greater_equal(0.5), lambda x: x.less(0), lambda x: x.less_equal(0),
    lambda x: x.not_equal(0), lambda x: x.swapdims(0, 2), lambda x: x.swapaxes(1, 0), lambda x: x.positive(),
    lambda x: x.narrow_copy(1, 1, 2), lambda x: x.sum_to_size(4, 1), lambda x: x.sum_to_size(1, 4, 5),
    lambda x: x.unfold(1, 2, 1), lambda x: x.unfold(2, 2, 2), lambda x: x.unfold(-1, 5, 1),
    lambda x: x.split_with_sizes([1, 3], 1)[1], lambda x: x.clone().tril_(), lambda x: x.clone().triu_(1),
], ids=["greater", "greater_equal", "less", "less_equal", "not_equal", "swapdims", "swapaxes", "positive",
        "narrow_copy", "sum_to_size", "sum_to_size_lead", "unfold", "unfold_step", "unfold_whole", "split_with_sizes",
        "tril_", "triu_"])
def test_method_aliases_and_views_as_torch(call):
    a = np.random.standard_normal((3, 4, 5)).astype(np.float32)
    g, t = graphc.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    g_out, t_out = call(g), call(t)
    assert_close(g_out.detach(), t_out.detach())
    if t_out.dtype.is_floating_point:
        w = np.random.standard_normal(tuple(t_out.shape)).astype(np.float32)
        (g_out * graphc.tensor(w)).sum().backward()
        (t_out * torch.tensor(w)).sum().backward()
        assert_close(g.grad, t.grad)


def test_method_errors_as_torch():
    g, t = graphc.zeros(3, 4), torch.zeros(3, 4)
    for call in (lambda x: x.unfold(1, 5, 1), lambda x: x.unfold(1, 2, 0), lambda x: x.sum_to_size(3, 2),
                 lambda x: x.split_with_sizes([1, 2], 1), lambda x: x[0].fill_diagonal_(1)):
        with pytest.raises(RuntimeError):
            call(t)
        with pytest.raises(RuntimeError):
            call(g)
    with pytest.raises(RuntimeError, match="bool tensor is not supported"):
        torch.positive(torch.tensor([True]))
    with pytest.raises(RuntimeError, match="bool tensor is not supported"):
        graphc.positive(graphc.tensor([True]))


@pytest.mark.parametrize("shape,wrap", [((7, 3), True), ((7, 3), False), ((3, 5), False), ((4, 4), True),
                                        ((3, 3, 3), False)])
def test_fill_diagonal_(shape, wrap):
    g, t = graphc.zeros(*shape), torch.zeros(*shape)
    assert g.fill_diagonal_(2.5, wrap) is g
    t.fill_diagonal_(2.5, wrap)
    assert_close(g, t)


@pytest.mark.parametrize("accumulate", [False, True])
def test_index_put_and_put_as_torch(accumulate):
    a = np.random.standard_normal((4, 3)).astype(np.float32)
    mask = a > 0
    cases = [lambda L, x: x.index_put((L.tensor([0, 2, 0]), L.tensor([1, 1, 1])), L.tensor([1.0, 2.0, 3.0]),
                                      accumulate=accumulate),
             lambda L, x: x.index_put((L.tensor([3, -1]),), L.tensor([5.0, 6.0, 7.0]), accumulate),
             lambda L, x: x.index_put((L.tensor(mask),), L.tensor(1.5), accumulate),
             lambda L, x: x.put(L.tensor([0, -1, 0]), L.tensor([1.0, 2.0, 3.0]), accumulate)]
    for case in cases:
        g, t = graphc.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        g_out, t_out = case(graphc, g), case(torch, t)
        assert_close(g_out.detach(), t_out.detach())
        (g_out * g_out).sum().backward()
        (t_out * t_out).sum().backward()
        assert_close(g.grad, t.grad)
    g, t = graphc.tensor(a), torch.tensor(a)
    assert g.index_put_((graphc.tensor([1]),), graphc.tensor(2.0), accumulate) is g
    t.index_put_((torch.tensor([1]),), torch.tensor(2.0), accumulate)
    g.put_(graphc.tensor([5]), graphc.tensor([9.0]), accumulate)
    t.put_(torch.tensor([5]), torch.tensor([9.0]), accumulate)
    assert_close(g, t)


# ---- the torch namespace's utilities scripts call: dtype limits, threads, asarray, printing, testing --------------
@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32", "float64"])
def test_finfo_matches_torch(name):
    ours, theirs = graphc.finfo(getattr(graphc, name)), torch.finfo(getattr(torch, name))
    for field in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution", "dtype"):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert graphc.finfo().eps == torch.finfo().eps  # the default dtype's


def test_iinfo_matches_torch_and_both_refuse_the_other_kind():
    for name in ("int32", "int64"):
        ours, theirs = graphc.iinfo(getattr(graphc, name)), torch.iinfo(getattr(torch, name))
        assert (ours.bits, ours.min, ours.max, ours.dtype) == (theirs.bits, theirs.min, theirs.max, theirs.dtype)
    for info, dtype in (("finfo", "int64"), ("iinfo", "float32")):
        with pytest.raises(TypeError):
            getattr(torch, info)(getattr(torch, dtype))
        with pytest.raises(TypeError, match=info):
            getattr(graphc, info)(getattr(graphc, dtype))


def test_a_mask_filled_with_finfo_min_softmaxes_as_in_torch():
    scores = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    mask = np.array([[True, True, False, False], [True, False, False, False]])
    outs = [L.tensor(scores).masked_fill(~L.tensor(mask), L.finfo(L.float32).min).softmax(-1) for L in (graphc, torch)]
    assert_close(*outs)


def test_set_num_threads_limits_numpys_blas():
    from threadpoolctl import threadpool_info
    before = graphc.get_num_threads()
    try:
        graphc.set_num_threads(1)
        assert graphc.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
        with pytest.raises(ValueError):
            graphc.set_num_threads(0)
    finally:
        graphc.set_num_threads(before)


def test_asarray_shares_or_copies_as_torch():
    array = np.ones(3, np.float32)
    ours, theirs = graphc.asarray(array), torch.asarray(array)
    array[0] = 5.0  # both share the numpy array's memory
    assert ours.tolist() == theirs.tolist() == [5.0, 1.0, 1.0]
    x, t = graphc.ones(2), torch.ones(2)
    assert graphc.asarray(x) is x and torch.asarray(t) is t
    copied, tcopied = graphc.asarray(x, copy=True), torch.asarray(t, copy=True)
    copied.add_(1)
    tcopied.add_(1)
    assert x.tolist() == t.tolist() == [1.0, 1.0]
    assert graphc.asarray([1, 2], dtype=graphc.float64).dtype is graphc.float64
    assert x.to(graphc.float32, copy=True) is not x and t.to(torch.float32, copy=True) is not t
    assert graphc.is_floating_point(x) and not graphc.is_floating_point(graphc.tensor([1]))


PRINTED = {
    "fixed": lambda T, r: T.tensor([1.23456789, 2.0, -0.5]),
    "whole floats": lambda T, r: T.tensor([1.0, 2.0, -30.0]),
    "integers": lambda T, r: T.tensor([1, -20, 300]),
    "bools": lambda T, r: T.tensor([True, False]),
    "0-d": lambda T, r: T.tensor(3.14159),
    "0-d integer": lambda T, r: T.tensor(7),
    "scientific": lambda T, r: T.tensor([1e-8, 1.0, 1e8]),
    "non-finite": lambda T, r: T.tensor([1.5, float("nan"), float("inf"), -float("inf")]),
    "whole with nan": lambda T, r: T.tensor([1.0, float("nan")]),
    "2-d": lambda T, r: T.tensor(r.randn(3, 4).astype(np.float32)),
    "3-d": lambda T, r: T.tensor(r.randn(2, 2, 3).astype(np.float32)),
    "summarised 2-d": lambda T, r: T.arange(5000).reshape(50, 100).float(),
    "summarised 1-d": lambda T, r: T.arange(2000),
    "wrapped lines": lambda T, r: T.tensor(r.randn(4, 12), dtype=T.float64),
    "empty": lambda T, r: T.zeros(0),
    "empty 2-d": lambda T, r: T.zeros(0, 3),
    "empty int64": lambda T, r: T.zeros(0, dtype=T.int64),
    "float16": lambda T, r: T.tensor([1.5, 2.25], dtype=T.float16),
    "uint8": lambda T, r: T.tensor([1, 255], dtype=T.uint8),
    "requires grad": lambda T, r: T.ones(2, requires_grad=True),
    "grad_fn": lambda T, r: T.ones(2, requires_grad=True) * 2,
}


@pytest.mark.parametrize("options", [{}, {"precision": 2}, {"sci_mode": True}, {"sci_mode": False},
                                     {"profile": "short"}, {"linewidth": 40}, {"threshold": 5, "edgeitems": 1}])
def test_printed_tensors_match_torch(options):
    try:
        torch.set_printoptions(**options)
        graphc.set_printoptions(**options)
        for name, make in PRINTED.items():
            ours = repr(make(graphc, np.random.RandomState(0))).replace("graphc.", "")
            theirs = repr(make(torch, np.random.RandomState(0))).replace("torch.", "")
            assert ours == theirs, f"{name}:\n{ours}\n{theirs}"
    finally:
        torch.set_printoptions(profile="default")
        graphc.set_printoptions(profile="default")
    assert str(graphc.tensor([0.5])) == "tensor([0.5000])"
    with pytest.raises(ValueError, match="profile"):
        graphc.set_printoptions(profile="long")


def test_testing_assert_close_uses_torchs_default_tolerances():
    for lib in (graphc, torch):
        lib.testing.assert_close(lib.ones(3), lib.ones(3) + 1e-6)
        with pytest.raises(AssertionError, match="not close"):
            lib.testing.assert_close(lib.ones(3), lib.ones(3) + 1e-3)
        with pytest.raises(AssertionError, match="dtype"):
            lib.testing.assert_close(lib.ones(3), lib.ones(3, dtype=lib.float64))
        lib.testing.assert_close(lib.ones(3), lib.ones(3) + 1e-3, rtol=0.0, atol=1e-2)


# ---- the narrow integer dtypes: uint8 (images, old-style masks), int8, int16 ---------------------------------------
_NARROW = {
    "add_wraps": lambda L, a, b, c, f: a + a,
    "mul_wraps": lambda L, a, b, c, f: a * 3,
    "uint8_plus_int8_is_int16": lambda L, a, b, c, f: a + b,
    "int16_times_int8": lambda L, a, b, c, f: c * b,
    "compare_mixed_signs": lambda L, a, b, c, f: (a > b) | (a == 0),
    "to_float_and_scale": lambda L, a, b, c, f: a.float() / 255,
    "true_divide": lambda L, a, b, c, f: a / 2,
    "sum_is_int64": lambda L, a, b, c, f: a.sum(1),
    "amax": lambda L, a, b, c, f: b.amax(0),
    "negate_wraps": lambda L, a, b, c, f: -a,
    "abs": lambda L, a, b, c, f: b.abs(),
    "times_float": lambda L, a, b, c, f: a * f,
    "cumsum": lambda L, a, b, c, f: c.cumsum(0),
    "floor_divide": lambda L, a, b, c, f: b // 3,
    "remainder": lambda L, a, b, c, f: b % 5,
    "bitwise": lambda L, a, b, c, f: (a & 15) | (a ^ 3),
    "byte_char_short": lambda L, a, b, c, f: (f * 100).byte().short() + (f * 100).char(),
    "subsequent_mask": lambda L, a, b, c, f: L.triu(L.ones((1, 4, 4)), diagonal=1).type(L.uint8) == 0,
    "where": lambda L, a, b, c, f: L.where(a > 128, a, L.zeros_like(a)),
    "clamp": lambda L, a, b, c, f: a.clamp(10, 200),
    "max_dim_argmax": lambda L, a, b, c, f: a.max(1).values.short() + a.argmax(1),
    "sort": lambda L, a, b, c, f: b.sort(1).values,
    "factories": lambda L, a, b, c, f: L.zeros(3, dtype=L.uint8) + L.full((3,), 7, dtype=L.int16),
}
_COMPILED = ("uint8_plus_int8_is_int16", "mul_wraps", "compare_mixed_signs", "floor_divide", "sum_is_int64",
             "times_float", "bitwise", "negate_wraps")


def _narrow_inputs(lib):
    rng = np.random.default_rng(0)
    arrays = (rng.integers(0, 255, (4, 6)).astype(np.uint8), rng.integers(-128, 127, (4, 6)).astype(np.int8),
              rng.integers(-3000, 3000, (4, 6)).astype(np.int16), rng.standard_normal((4, 6)).astype(np.float32))
    return [lib.tensor(a) for a in arrays]


# every case eagerly and on the numpy backend; the generated kernels on the cases that mix widths and signs
@pytest.mark.parametrize("name, backend", [(n, b) for b in ("eager", "numpy") for n in _NARROW] +
                         [(n, b) for b in ("cpu", KERNEL_BACKEND) for n in _COMPILED])
def test_narrow_integer_dtypes_compute_as_torch(name, backend):
    fn = _NARROW[name]
    expected = fn(torch, *_narrow_inputs(torch))
    run = (lambda *a: fn(graphc, *a)) if backend == "eager" else graphc.compile(lambda *a: fn(graphc, *a),
                                                                                  backend=backend)
    for _ in range(3):  # the numpy tier, then the generated kernels
        got = run(*_narrow_inputs(graphc))
        assert got.dtype.name == str(expected.dtype).removeprefix("torch."), (got.dtype, expected.dtype)
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6)


def test_a_uint8_index_is_read_as_a_mask_with_torchs_warning():
    values = np.arange(4.0, dtype=np.float32)
    with pytest.warns(UserWarning, match="uint8"):
        ours = graphc.tensor(values)[graphc.tensor([1, 0, 1, 0]).byte()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = torch.tensor(values)[torch.tensor([1, 0, 1, 0]).byte()]
    assert ours.tolist() == theirs.tolist() == [0.0, 2.0]
    assert graphc.promote_types(graphc.uint8, graphc.int8) is graphc.int16
    assert torch.promote_types(torch.uint8, torch.int8) == torch.int16


def test_narrow_integer_kernels_compile_for_sm90(_kernel_cache):
    """The kernels of the mixed-width cases (uint8 loads widened to int16 before an int8 operand) for Hopper."""
    inputs = _narrow_inputs(graphc)
    for name in ("uint8_plus_int8_is_int16", "compare_mixed_signs", "sum_is_int64"):
        report = graphc.explain(lambda *a, name=name: _NARROW[name](graphc, *a), *inputs)
        assert report.num_kernels >= 1 and not report.fallbacks, str(report)
        assert_compiles_for_sm90(report.kernels)


@pytest.mark.parametrize("backend", ["eager", "numpy"])
def test_float_functions_of_narrow_integers_compute_in_float32(backend):
    """numpy computes exp/sqrt of uint8, int8 and bool in float16 (exp(80) overflows); torch in float32."""
    values = {"uint8": [80, 15, 200], "int8": [-100, 3, 88], "bool": [True, False, True]}
    for name, data in values.items():
        for fn in (lambda t: t.exp(), lambda t: t.sqrt(), lambda t: t.sin()):
            ours = graphc.tensor(data, dtype=getattr(graphc, name if name != "bool" else "bool"))
            run = fn if backend == "eager" else graphc.compile(fn, backend=backend)
            expected = fn(torch.tensor(data, dtype=getattr(torch, name)))
            assert_close(run(ours), expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("name", ["uint8", "int8", "int16", "int32", "int64", "bool"])
def test_descending_sort_and_topk_of_integers_match_torch(name):
    """Sorting by the negated values wrapped: uint8 0 and int64's minimum sorted as the largest."""
    info = np.iinfo(name) if name != "bool" else None
    data = [0, 1, 0, 1, 1] if name == "bool" else [info.min, 5, info.max, 5, 0, 1]
    ours, theirs = graphc.tensor(data, dtype=getattr(graphc, name)), torch.tensor(data, dtype=getattr(torch, name))
    mine, reference = ours.sort(descending=True, stable=True), theirs.sort(descending=True, stable=True)
    assert mine.values.tolist() == reference.values.tolist() and mine.indices.tolist() == reference.indices.tolist()
    if name != "bool":
        assert ours.topk(3).values.tolist() == theirs.topk(3).values.tolist()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_var_and_std_accumulate_in_float32(dtype):
    """A float16 column with standard deviation 100: its sum of squares overflows float16; torch's does not."""
    x = (np.random.default_rng(0).standard_normal((150, 3)) * 100).astype(np.float32)
    for fn in (lambda t: t.var(0), lambda t: t.std(0, keepdim=True), lambda t: t.var()):
        ours = fn(graphc.tensor(x).to(getattr(graphc, dtype)))
        theirs = fn(torch.tensor(x).to(getattr(torch, dtype)))
        assert ours.dtype.name == dtype
        np.testing.assert_allclose(ours.float().numpy(), theirs.float().numpy(), rtol=1e-2)


@pytest.mark.parametrize("expr", [
    "T.tensor([0, 200], dtype=T.uint8) + 300", "T.tensor([0, 200], dtype=T.uint8) < -1",
    "T.tensor([100, 200], dtype=T.uint8) * 3", "T.tensor([1, 2], dtype=T.int16) - 70000",
    "T.tensor([1, 2], dtype=T.int8) == 257", "T.tensor([True, False]) + 3",
    "T.tensor([3, -8, 100]) >> 1", "T.tensor([3, -8, 100]) << 2", "1 << T.tensor([1, 2])",
    "T.tensor([3, -8], dtype=T.int8) >> 9", "T.tensor([3, 8], dtype=T.int32) << 40",
    "T.tensor([1, 2]).bitwise_left_shift(T.tensor([1, 3]))", "T.bitwise_right_shift(T.tensor([64]), 3)",
    "7 // T.tensor([2, -3])", "7.5 // T.tensor([2, -3])", "7 % T.tensor([2, -3])", "2.5 % T.tensor([2., -3.])",
    "+T.tensor([1., -2.])", "[3 in T.tensor([1, 2, 3]), 5 in T.tensor([1, 2, 3]), T.tensor(2) in T.tensor([1, 2])]",
    "[T.tensor([1, 2]).is_complex(), T.tensor([1], dtype=T.uint8).is_signed(), T.tensor([1.]).is_nonzero()]",
    "[T.zeros(2).is_same_size(T.zeros(2)), T.zeros(2).is_sparse, T.zeros(1).is_inference()]",
    "list(T.zeros(2, 3).new(4, 5).shape)", "T.zeros(2, 3).new([1, 2])", "T.zeros(1, dtype=T.float64).new(2).dtype",
    "T.tensor([1.5]) >> 1", "T.tensor([1, 2]).is_nonzero()", "'a' in T.tensor([1])",
])
def test_operators_and_predicates_match_torch(expr):
    """Shifts, reflected floor division and modulo, numbers out of a narrow integer dtype's range (torch wraps
    them into it), `in`, and the dense-tensor predicates, against torch: values, dtypes and error classes."""
    def run(lib):
        try:
            out = eval(expr, {"T": lib})
        except Exception as e:
            return type(e).__name__
        if hasattr(out, "tolist"):
            return out.tolist(), str(out.dtype).split(".")[-1]
        return str(out).split(".")[-1]
    assert run(graphc) == run(torch)


def test_inplace_operators_write_through_aliases():
    def run(lib):
        x = lib.tensor([5, 6, 7])
        y = x
        y //= 2
        y %= 2
        m = lib.tensor([True, False])
        n = m
        n &= lib.tensor([True, True])
        n |= lib.tensor([False, True])
        w = lib.tensor([1.0, 2.0])
        v = w
        v **= 2
        s = lib.tensor([1, 2])
        t = s
        t <<= 2
        t >>= 1
        t ^= 3
        return x.tolist(), m.tolist(), w.tolist(), s.tolist()
    assert run(graphc) == run(torch)


def test_writes_and_copies_that_cut_history_match_torch():
    """zero_/fill_/copy_ of a tensor that requires grad give its history zeros (torch's ZeroBackward), not None;
    repeat and tile always copy (their result does not follow later writes to the input, compiled backward included);
    square of bool is int64; an op without a derivative refuses only a backward through it; integer pow with
    negative tensor exponents truncates as torch's."""
    def run(lib):
        out = []
        for write in (lambda y: y.zero_(), lambda y: y.fill_(2.0), lambda y: y.copy_(lib.tensor([5.0, 6.0])),
                      lambda y: y[0:1].zero_()):
            x = lib.tensor([1.0, float("inf")], requires_grad=True)
            y = x.clamp(min=0.1)
            write(y)
            (y * 3).sum().backward()
            out.append((x.grad.tolist(), y.tolist()))
        h = lib.arange(6.0).reshape(2, 3)
        copies = [h.repeat(1, 1), h.tile((1,)), h.repeat(2, 1)]
        h.zero_()
        out.append([c.tolist() for c in copies])
        out.append(lib.tensor([True, False]).square().tolist())
        x = lib.tensor([3.0, 4.0, 5.0], requires_grad=True)
        (x * (x // 2).long()).sum().backward()
        out.append(x.grad.tolist())
        try:
            (x // 2).sum().backward()
        except RuntimeError as e:
            out.append("derivative for" in str(e) and "floor_divide" in str(e))
        out.append((lib.tensor([2, 1, -1, -1, 0, 3], dtype=lib.int32) ** lib.tensor([-1, -3, -3, -2, -1, 2],
                                                                                    dtype=lib.int32)).tolist())
        out.append((2 ** lib.tensor([-1, 2])).tolist())
        return out
    assert run(graphc) == run(torch)

    def repeated_max(x):
        h = x * 1
        m = h.repeat(2, 1).max()
        h.zero_()
        return m
    compiled = graphc.compile(repeated_max)
    for _ in range(3):
        x = graphc.tensor(np.arange(12, dtype=np.float32).reshape(3, 4), requires_grad=True)
        compiled(x).backward()
        assert x.grad.numpy().sum() == 1.0 and x.grad.numpy()[2, 3] == 1.0


def test_module_compile_compiles_its_calls():
    init = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).state_dict()
    losses = {}
    for lib in (torch, graphc):
        m = lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.ReLU(), lib.nn.Linear(4, 2))
        m.load_state_dict({k: lib.tensor(v.numpy()) for k, v in init.items()})
        assert m.compile() is None
        opt = lib.optim.SGD(m.parameters(), lr=0.1)
        for i in range(3):
            loss = m(lib.ones(2, 3) * i).square().sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses[lib] = loss.item()
        assert list(m.state_dict()) == list(init) and type(m).__name__ == "Sequential"
    assert abs(losses[graphc] - losses[torch]) < 1e-6 and m._compiled_call.num_traces == 1


def test_out_argument_matches_torch():
    def run(lib):
        a = lib.ones(3)
        results = []
        out = lib.empty(3)
        results.append((lib.add(a, a, out=out) is out, out.tolist()))
        results.append(lib.exp(a * 0, out=lib.empty(3)).tolist())
        empty = lib.empty(0)
        results.append((lib.mul(a, 3, out=empty) is empty, empty.tolist()))
        for bad in (lambda: lib.add(a, a, out=lib.zeros(3, dtype=lib.int64)),
                    lambda: lib.mul(lib.ones(3, requires_grad=True), 2, out=lib.empty(3))):
            try:
                bad()
            except RuntimeError as e:
                results.append("can't be cast" in str(e) or "don't support automatic differentiation" in str(e))
        return results
    assert run(graphc) == run(torch)
    compiled = graphc.compile(lambda a, o: graphc.add(a, a, out=o))
    for i in range(3):
        o = graphc.zeros(3)
        compiled(graphc.ones(3) * i, o)
        assert o.tolist() == [2.0 * i] * 3
    assert compiled.num_traces == 1


def test_variance_of_an_empty_reduction_is_nan():
    def run(lib):
        x = lib.zeros(0, 3)
        return [x.var(0).tolist(), x.std().item(), lib.ones(1).var().item()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = run(graphc), run(torch)
    assert np.isnan(np.array(ours[0] + ours[1:])).all() and np.isnan(np.array(theirs[0] + theirs[1:])).all()
    compiled = graphc.compile(lambda x: x.var(0), backend="numpy")
    assert np.isnan(compiled(graphc.zeros(0, 3)).numpy()).all()


def test_reductions_of_a_0d_tensor_and_repeat_interleave_are_new_tensors():
    """torch's min/max/sort/topk/median/cummax/kthvalue/mode of a 0-d tensor along dim 0, and repeat_interleave,
    return new tensors: a later write into the input does not show through them."""
    def run(lib):
        out = []
        for f in (lambda a: a.min(0)[0], lambda a: a.max(0).values, lambda a: a.sort(0).values,
                  lambda a: a.topk(1, 0).values, lambda a: a.median(0).values, lambda a: a.cummax(0).values,
                  lambda a: a.kthvalue(1, 0).values, lambda a: a.mode(0).values, lambda a: a.repeat_interleave(4),
                  lambda a: a.reshape(1, 1).repeat_interleave(1, dim=1)):
            a = lib.tensor(5.0)
            m = f(a)
            a.add_(1)
            out.append(m.tolist())
        return out
    assert run(graphc) == run(torch)


def test_in_place_view_ops_and_math_variants_like_torch():
    """t_/transpose_/squeeze_/unsqueeze_/swapdims_ reshape the tensor itself (its memory shared with its views);
    addmm_/cumsum_/scatter_reduce_/masked_scatter_ write their result into it."""
    def program(L):
        x = L.arange(6.).view(2, 3).clone()
        flat = x.view(6)
        x.t_()
        x.mul_(2)  # through the transposed tensor: flat sees it
        y = L.ones(3)
        y.unsqueeze_(0).unsqueeze_(-1)
        z = L.ones(1, 3, 1)
        z.squeeze_(0)
        w = L.arange(6.).view(2, 3).clone()
        w.transpose_(0, 1)
        w.swapdims_(0, 1)
        m = L.zeros(2, 2)
        m.addmm_(L.ones(2, 3), L.arange(6.).view(3, 2), beta=0.5, alpha=2)
        c = L.arange(4.)
        c.cumsum_(0)
        s = L.zeros(3)
        s.scatter_reduce_(0, L.tensor([0, 1, 1]), L.tensor([1., 2., 3.]), reduce="amax")
        ms = L.zeros(4)
        ms.masked_scatter_(L.tensor([True, False, True, False]), L.tensor([5., 6.]))
        return x, flat, y, z, w, m, c, s, ms

    for got, want in zip(program(graphc), program(torch)):
        assert tuple(got.shape) == tuple(want.shape)
        assert_close(got, want)
    q = graphc.ones(3, requires_grad=True) * 2
    with pytest.raises(NotImplementedError, match=r"unsqueeze_.*x = x.unsqueeze"):
        q.unsqueeze_(0)


def test_complex_views_of_real_tensors_like_torch():
    """conj/resolve_conj/real of a real tensor are the tensor; mH/adjoint its transpose; imag raises."""
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    x, t = graphc.tensor(a), torch.tensor(a)
    for name in ("conj", "resolve_conj", "resolve_neg", "adjoint"):
        assert_close(getattr(x, name)(), getattr(t, name)())
    assert_close(x.mH, t.mH)
    assert_close(x.real, t.real)
    assert x.conj() is x and x.is_conj() is t.is_conj() is False
    with pytest.raises(RuntimeError, match="imag is not implemented for tensors with non-complex dtypes"):
        _ = x.imag
    with pytest.raises(RuntimeError, match="imag is not implemented for tensors with non-complex dtypes"):
        _ = t.imag


def test_can_cast_and_index_put_like_torch():
    names = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64"]
    for a in names:
        for b in names:
            assert graphc.can_cast(getattr(graphc, a), getattr(graphc, b)) == torch.can_cast(getattr(torch, a),
                                                                                              getattr(torch, b))
    for accumulate in (False, True):
        got = graphc.index_put(graphc.zeros(4), (graphc.tensor([0, 3, 2]),), graphc.tensor([1., 2., 3.]),
                               accumulate=accumulate)
        want = torch.index_put(torch.zeros(4), (torch.tensor([0, 3, 2]),), torch.tensor([1., 2., 3.]),
                               accumulate=accumulate)
        assert_close(got, want)


def test_legacy_tensor_constructors_like_torch():
    """torch.Tensor(data) and the typed constructors (CleanRL's `torch.Tensor(envs.reset())`, `torch.LongTensor(n)`)."""
    data = np.arange(6, dtype=np.float64).reshape(2, 3)
    for make in (lambda L: L.Tensor(data), lambda L: L.Tensor([1, 2]), lambda L: L.Tensor(2, 3).zero_(),
                 lambda L: L.Tensor(), lambda L: L.FloatTensor([1, 2]), lambda L: L.LongTensor([3, 4]),
                 lambda L: L.LongTensor(3).zero_(), lambda L: L.DoubleTensor(data), lambda L: L.BoolTensor([True]),
                 lambda L: L.ByteTensor([1, 2]), lambda L: L.IntTensor(L.Size([2])).zero_()):
        got, want = make(graphc), make(torch)
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
        assert_close(got, want)
    x = graphc.LongTensor([1])
    assert isinstance(x, graphc.LongTensor) and not isinstance(x, graphc.FloatTensor) and isinstance(x, graphc.Tensor)


def test_setitem_drops_the_values_leading_unit_dims_like_torch():
    def program(L):
        a = L.zeros(4, 3)
        a[3] = L.ones(1, 3)
        a[:, 0] = L.ones(1, 4) * 2
        a[1:3] = L.ones(1, 2, 3) * 3
        a[L.tensor([0])] = L.ones(1, 1, 3) * 4
        return a

    assert_close(program(graphc), program(torch))
    with pytest.raises(RuntimeError):
        graphc.zeros(4, 3)[0] = graphc.ones(2, 3)


def test_copy_copy_of_a_leaf_shares_its_memory_like_torch():
    import copy

    for L in (graphc, torch):
        t = L.ones(2, requires_grad=True)
        c = copy.copy(t)
        assert c.requires_grad and c.is_leaf and c is not t
        with L.no_grad():
            c.add_(1)
        assert t.tolist() == [2.0, 2.0]


def test_where_with_only_a_condition_like_torch():
    m = [[True, False, True], [False, True, False]]
    for got, want in zip(graphc.where(graphc.tensor(m)), torch.where(torch.tensor(m))):
        assert_close(got, want)


def test_deterministic_algorithms_keep_every_eager_call_on_one_tier():
    """With use_deterministic_algorithms(True), a large eager op never switches from numpy to its native kernel
    between calls, so repeated calls give the same bits (torch.are_deterministic_algorithms_enabled reports it)."""
    x = graphc.tensor(np.random.default_rng(0).standard_normal((64, 2048)).astype(np.float32))
    graphc.use_deterministic_algorithms(True)
    try:
        assert graphc.are_deterministic_algorithms_enabled()
        first = graphc.nn.functional.softmax(x, -1).numpy()
        for _ in range(12):
            np.testing.assert_array_equal(graphc.nn.functional.softmax(x, -1).numpy(), first)
    finally:
        graphc.use_deterministic_algorithms(False)
    assert not graphc.are_deterministic_algorithms_enabled()
    assert_close(graphc.tensor(first), torch.softmax(torch.tensor(x.numpy()), -1))


def test_memory_formats_are_accepted_like_torch():
    """channels_last code runs: contiguous/to(memory_format=) keep the values; is_contiguous answers as torch."""
    a = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    for L in (graphc, torch):
        x = L.tensor(a)
        assert_close(x.contiguous(memory_format=L.channels_last), torch.tensor(a))
        assert_close(x.to(memory_format=L.channels_last), torch.tensor(a))
        L.nn.Conv2d(3, 3, 1).to(memory_format=L.channels_last)
    for shape in ((2, 3, 4, 5), (2, 1, 4, 5), (2, 3, 1, 1)):
        assert graphc.ones(*shape).is_contiguous(memory_format=graphc.channels_last) == \
            torch.ones(*shape).is_contiguous(memory_format=torch.channels_last)
    assert graphc.ones(2, 3).is_contiguous(memory_format=graphc.contiguous_format)


OPERATOR_OPERANDS = ["t + np.ones(3, np.float32)", "t * np.full(3, 2.0)", "t - np.arange(3, dtype=np.float32)",
                     "t @ np.ones(3, np.float32)", "t * np.float64(2)", "t + np.array(2.0, np.float32)", "t == None",
                     "t != None", "t + None", "None + t", "t + [1, 2, 3]", "t @ [1.0, 2.0, 3.0]", "t < [1, 2, 3]",
                     "t + 'a'", "u += np.ones(3, np.float32)"]


@pytest.mark.parametrize("expr", OPERATOR_OPERANDS)
def test_operators_take_numpy_arrays_and_refuse_other_types_as_torch(expr):
    """A numpy array is read as a tensor of its dtype; another type makes the operator return NotImplemented, so
    Python raises its own TypeError (torch's message word for word) or `==` falls back to identity."""
    def run(L):
        env = {"t": L.tensor([1.5, -2.0, 3.0]), "u": L.tensor([1.5, -2.0, 3.0]), "np": np}
        try:
            exec(f"r = {expr}" if "+=" not in expr else f"{expr}\nr = u", env)
        except TypeError as e:
            return e
        return env["r"]

    mine, theirs = run(graphc), run(torch)
    if isinstance(theirs, Exception):
        assert isinstance(mine, TypeError) and str(mine) == str(theirs)
    elif isinstance(theirs, torch.Tensor):
        assert_close(mine, theirs)
        assert mine.dtype.name == str(theirs.dtype).removeprefix("torch.")
    else:
        assert mine == theirs


PARTIAL_OVERLAPS = ["a += a[0]", "a += a[:1]", "a[1:] += a[:3]", "a[1:] += a[1:]", "x += x.t()", "x[:, 0] += x[:, 1]",
                    "x[0] += x[1]", "a.mul_(a[1])", "a[:2].copy_(a[1:3])", "x.copy_(x.t())", "a[1:].mul_(a[:3])",
                    "x[:, :2] += x[:, 1:]", "a.clamp_(min=a[1])", "a.addcmul_(a[:1], a[:1])", "x.t().add_(x)",
                    "a.index_add_(0, L.tensor([0]), a[1:2])", "a += a", "a.copy_(a)", "x[1:] -= x[:1]"]


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("code", PARTIAL_OVERLAPS)
def test_in_place_ops_refuse_a_partially_overlapping_input_as_torch(code, compiled):
    """torch's assert_no_partial_overlap: an input covering part of the written memory (or all of it in another
    order) is refused; the same elements, disjoint parts, or strided views are computed. Compiled, the trace sees
    the same layouts (its alias records), so the compiled function refuses or computes as eager does."""
    def run(L, fn):
        try:
            return fn(L.arange(4.0), L.arange(9.0).reshape(3, 3))
        except RuntimeError as e:
            return e

    def program(L):
        def fn(a, x):
            exec(code, {"a": a, "x": x, "L": L})
            return a, x
        return fn

    theirs = run(torch, program(torch))
    fn = program(graphc)
    if compiled:
        fn = graphc.compile(fn, backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exec'd code has no source line: a compiled call may warn of that
        mine = [run(graphc, fn) for _ in range(2 if compiled else 1)][-1]
    if isinstance(theirs, Exception):
        assert isinstance(mine, RuntimeError) and "refer to a single memory location" in str(mine), mine
    else:
        assert_close(mine[0], theirs[0])
        assert_close(mine[1], theirs[1])


@pytest.mark.parametrize("value", ["L.ones(2, dtype=L.float64)", "L.ones(2, dtype=L.int64)",
                                   "L.tensor(1.0, dtype=L.float64)", "1.0"])
@pytest.mark.parametrize("index", ["L.tensor([0, 2])", "L.tensor([True, False, True, False])", "slice(0, 2)"])
def test_index_put_with_another_dtype_is_refused_as_torch(value, index):
    """Writing through a tensor index (an index_put_) asks for the destination's dtype, as torch does; a basic index
    writes as copy_ does, casting."""
    def run(L):
        y = L.zeros(4)
        try:
            y[eval(index)] = eval(value)
        except RuntimeError as e:
            return e
        return y

    mine, theirs = run(graphc), run(torch)
    if isinstance(theirs, Exception):
        assert isinstance(mine, RuntimeError) and "Index put requires the source and destination dtypes match" in \
            str(mine)
    else:
        assert_close(mine, theirs)
