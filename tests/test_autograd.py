"""Autograd acceptance: accumulation, retain_graph, grad modes, detach, autograd.grad, anomaly mode, deep graphs."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from conftest import assert_close, to_torch

import graphc


def test_gradients_accumulate_across_backward_calls():
    x = graphc.randn(3, 4, requires_grad=True)
    tx = to_torch(x)
    for _ in range(3):
        (x.sin() * x).sum().backward()
        (tx.sin() * tx).sum().backward()
    assert_close(x.grad, tx.grad)
    x.grad = None
    (x * 2).sum().backward()
    assert_close(x.grad, torch.full((3, 4), 2.0))


def test_shared_subgraph_gradients_add_up():
    x = graphc.randn(5, requires_grad=True)
    tx = to_torch(x)
    y, ty = x.exp(), tx.exp()
    (y * y + y.sum() * x).sum().backward()
    (ty * ty + ty.sum() * tx).sum().backward()
    assert_close(x.grad, tx.grad, rtol=1e-5)


def test_retain_graph_allows_a_second_backward_only_when_asked():
    x = graphc.randn(3, requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert_close(x.grad, 4 * torch.from_numpy(x.numpy(force=True)))
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_no_grad_and_enable_grad():
    x = graphc.randn(3, requires_grad=True)
    with graphc.no_grad():
        y = x * 2
        with graphc.enable_grad():
            z = x * 2
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None
    assert graphc.is_grad_enabled()

    @graphc.no_grad()
    def f(t):
        return t * 3
    assert not f(x).requires_grad

    @graphc.no_grad
    def g(t):
        return t * 3

    @graphc.enable_grad
    def h(t):
        return t * 3
    assert not g(x).requires_grad and g.__name__ == "g"
    with graphc.no_grad():
        assert h(x).requires_grad


def test_detach_cuts_the_graph_and_shares_memory():
    x = graphc.randn(3, requires_grad=True)
    d = (x * 2).detach()
    assert not d.requires_grad and d.is_leaf
    y = x * 2
    y.detach().zero_()
    assert not y.detach().numpy().any()
    (x * d).sum().backward()
    assert_close(x.grad, 2 * torch.from_numpy(x.numpy(force=True)))


def test_autograd_grad_leaves_dot_grad_alone_and_matches_torch():
    x, w = graphc.randn(4, 3, requires_grad=True), graphc.randn(3, requires_grad=True)
    tx, tw = to_torch(x), to_torch(w)
    gx, gw = graphc.autograd.grad((x @ w).tanh().sum(), [x, w])
    tgx, tgw = torch.autograd.grad((tx @ tw).tanh().sum(), [tx, tw])
    assert x.grad is None and w.grad is None
    assert_close(gx, tgx, rtol=1e-5)
    assert_close(gw, tgw, rtol=1e-5)
    with pytest.raises(RuntimeError, match="not used"):
        graphc.autograd.grad((x * 2).sum(), [x, w])
    assert graphc.autograd.grad((x * 2).sum(), [x, w], allow_unused=True)[1] is None


def test_autograd_grad_takes_torchs_only_inputs_and_materialize_grads():
    """WGAN-GP's gradient penalty passes only_inputs=True (deprecated, ignored; False warns); materialize_grads gives
    zeros for an unused input and refuses allow_unused=False, as torch."""
    for lib in (graphc, torch):
        x, w = lib.ones(2, 3, requires_grad=True), lib.ones(3, requires_grad=True)
        (g,) = lib.autograd.grad(outputs=(x * 3).sum(), inputs=x, grad_outputs=lib.tensor(2.0), create_graph=True,
                                 retain_graph=True, only_inputs=True)
        assert g.tolist() == [[6.0] * 3] * 2
        with pytest.warns(FutureWarning, match="only_inputs argument is deprecated"):
            lib.autograd.grad((x * 3).sum(), x, only_inputs=False)
        gx, gw = lib.autograd.grad((x * 2).sum(), [x, w], materialize_grads=True)
        assert gw.tolist() == [0.0] * 3 and gx.tolist() == [[2.0] * 3] * 2
        with pytest.raises(ValueError, match="allow_unused"):
            lib.autograd.grad((x * 2).sum(), [x, w], materialize_grads=True, allow_unused=False)


def test_autograd_grad_of_non_leaves_runs_only_what_it_needs_and_their_hooks():
    """autograd.grad with respect to non-leaf tensors: their tensor hooks (and retain_grad) run on the gradient that
    reaches them, as in torch, and nothing runs in the graph that made them (a hook there is not called); a
    non-leaf's own backward runs when it leads on to another input (h = m * 2 and x both wanted)."""
    def run(lib):
        calls = []
        x = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
        m = x * 1
        m.register_hook(lambda g: calls.append("m") or g)
        h = m * 2
        h.register_hook(lambda g: calls.append("h") or g * 10)
        k = h.tanh()
        k.retain_grad()
        y = (k * 3 + h).sum()
        gh, gk = lib.autograd.grad(y, [h, k], retain_graph=True)
        found = [list(calls)]
        (gx,) = lib.autograd.grad(y, [x])
        return [gh, gk, k.grad, gx], found + [calls]

    got, calls = run(graphc)
    want, tcalls = run(torch)
    for g, t in zip(got, want):
        assert_close(g, t, rtol=1e-6)
    assert calls == tcalls == [["h"], ["h", "h", "m"]]


def test_create_graph_gives_second_derivatives():
    x = graphc.randn(5, requires_grad=True)
    tx = to_torch(x)
    (g,) = graphc.autograd.grad((x**3).sum(), x, create_graph=True)
    (tg,) = torch.autograd.grad((tx**3).sum(), tx, create_graph=True)
    g.sum().backward()
    tg.sum().backward()
    assert_close(x.grad, tx.grad, rtol=1e-5)


@pytest.mark.parametrize("name,fn", [
    ("einsum_diagonal", lambda L, x, y: L.einsum("ii,i->i", x, y) ** 2),
    ("prod_with_zero", lambda L, x, y: (x * (x > 0)).prod(1) * y[:3]),
    ("clamp_tensor_bounds", lambda L, x, y: L.clamp(x, min=y - 0.5, max=y + 0.5) ** 3),
    ("pow_tensor_exponent", lambda L, x, y: x.abs() ** y),
    ("rules_reusing_the_output", lambda L, x, y: (x.exp() + x.sigmoid() + x.tanh() + (x.abs() + 0.5).sqrt()
                                                  + (x.abs() + 0.5).rsqrt() + x.softmax(1)).sum(1) / (y.abs() + 1)),
])
def test_second_derivatives_of_new_backward_rules_match_torch(name, fn):
    x, y = graphc.randn(3, 3, requires_grad=True), graphc.randn(3, requires_grad=True)
    tx, ty = to_torch(x), to_torch(y)
    grads = graphc.autograd.grad(fn(graphc, x, y).sum(), [x, y], create_graph=True)
    tgrads = torch.autograd.grad(fn(torch, tx, ty).sum(), [tx, ty], create_graph=True)
    sum(((g * g).sum() for g in grads), graphc.tensor(0.0)).backward()
    sum((g * g).sum() for g in tgrads).backward()
    assert_close(x.grad, tx.grad, rtol=1e-4, atol=1e-5)
    assert_close(y.grad, ty.grad, rtol=1e-4, atol=1e-5)


IN_PLACE_THROUGH_VIEWS = {
    "mul_row": lambda L, w: (lambda x: (x[0].mul_(3), x)[1])(w * 2),
    "zero_slice": lambda L, w: (lambda x: (x[:, :2].zero_(), x)[1])(w * 2),
    "copy_constant": lambda L, w: (lambda y: (y.copy_(L.ones(2, 3)), y * w)[1])(w * 2),
    "add_transposed": lambda L, w: (lambda x: (x.T.add_(w.T * w.T), x)[1])(w * 2),
    "view_of_view": lambda L, w: (lambda x: (x[1][1:].mul_(w[0, :2]), x)[1])(w * 3),
    "relu_inplace": lambda L, w: (lambda x: (L.nn.functional.relu(x[:, 1:], inplace=True), x)[1])(w - 1),
    "flat_view_add_": lambda L, w: (lambda x: (x.view(-1).add_(L.arange(6.0)), x * x)[1])(w * 2),
    "setitem_on_view": lambda L, w: (lambda x: (x.T.__setitem__(0, w[:, 1] * 5), x)[1])(w * 2),
    "view_used_after": lambda L, w: (lambda x, v: (v.mul_(w[0]), x.sum(0) * v)[1])(*(lambda x: (x, x[1]))(w * 2)),
}


@pytest.mark.parametrize("name", IN_PLACE_THROUGH_VIEWS)
def test_in_place_updates_through_views_reach_the_base_like_torch(name):
    """torch rebases a view's base on an in-place write (CopySlices); graphc gives the base the same gradients."""
    w = graphc.randn(2, 3, requires_grad=True)
    tw = to_torch(w)
    out, expected = IN_PLACE_THROUGH_VIEWS[name](graphc, w), IN_PLACE_THROUGH_VIEWS[name](torch, tw)
    weights = np.random.randn(*expected.shape).astype(np.float32)
    (out * out * graphc.tensor(weights)).sum().backward()
    (expected * expected * torch.tensor(weights)).sum().backward()
    assert_close(out, expected)
    assert_close(w.grad, tw.grad, rtol=1e-5, atol=1e-5)


def test_in_place_update_of_a_view_of_a_leaf_is_refused_like_torch():
    with pytest.raises(RuntimeError, match="a view of a leaf Variable"):
        torch.ones(2, 3, requires_grad=True)[0].mul_(2)
    with pytest.raises(RuntimeError, match=r"in-place update of a view of a leaf tensor that requires grad"):
        graphc.ones(2, 3, requires_grad=True)[0].mul_(2)


def test_zero_and_fill_of_a_non_leaf_cut_its_gradient_like_torch():
    for L in (graphc, torch):
        w = L.ones(2, requires_grad=True)
        a, b = w * 2, w * 3
        a.zero_()
        b.fill_(5.0)
        (a * 3 + b * 4 + w).sum().backward()
        assert w.grad.tolist() == [1.0, 1.0]


def test_edge_gradients_make_no_nan_for_anomaly_mode():
    """pow at a zero base or zero exponent and prod over zeros follow torch's rules without NaN in a hidden branch,
    so anomaly mode does not flag them."""
    x, y = graphc.tensor([0.0, 2.0, 0.0], requires_grad=True), graphc.tensor([0.0, 1.5, 2.0], requires_grad=True)
    tx, ty = to_torch(x), to_torch(y)
    with graphc.autograd.set_detect_anomaly(True):
        (x**y + x.prod() + (x * y).prod()).sum().backward()
    (tx**ty + tx.prod() + (tx * ty).prod()).sum().backward()
    assert_close(x.grad, tx.grad)
    assert_close(y.grad, ty.grad)


def test_anomaly_names_the_forward_op_and_line_that_made_nan():
    x = graphc.tensor([1.0, 4.0], requires_grad=True)
    with graphc.autograd.set_detect_anomaly(True), np.errstate(invalid="ignore"):
        with pytest.raises(RuntimeError) as info:
            graphc.log(x - 2)
    message = str(info.value)
    assert message.startswith("log:") and "NaN" in message and f"{__file__}:" in message


def test_anomaly_names_the_op_whose_backward_made_inf_and_its_line():
    x = graphc.tensor([0.0, 4.0], requires_grad=True)
    with graphc.autograd.set_detect_anomaly(True), np.errstate(divide="ignore"):
        y = x.sqrt()
        line = sys._getframe().f_lineno - 1
        with pytest.raises(RuntimeError) as info:
            (y * 3).sum().backward()
    message = str(info.value)
    assert "SqrtBackward" in message and "'sqrt'" in message and f"{__file__}:{line}" in message
    assert not graphc.autograd.is_anomaly_enabled()


def test_a_20000_op_chain_backpropagates_without_recursion():
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        x = graphc.randn(2, requires_grad=True)
        y = x
        for _ in range(20000):
            y = y * 1.0001
        y.sum().backward()
    finally:
        sys.setrecursionlimit(limit)
    assert_close(x.grad, torch.full((2,), 1.0001**20000), rtol=1e-3)


def test_requires_grad_on_integer_tensors_is_refused():
    with pytest.raises(RuntimeError, match="only floating point tensors can require gradients.*int64"):
        graphc.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError, match="bool"):
        graphc.ones(2, dtype=graphc.bool).requires_grad_()


def test_integer_results_do_not_require_grad():
    x = graphc.randn(3, 4, requires_grad=True)
    assert not x.argmax(1).requires_grad and not (x > 0).requires_grad
    assert x.max(1).values.requires_grad and not x.max(1).indices.requires_grad


def test_in_place_update_of_a_leaf_needs_no_grad():
    w = graphc.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place update of a leaf"):
        w.add_(1.0)
    tw = to_torch(w)
    g = graphc.randn(3)
    with graphc.no_grad():
        w.mul_(0.9).add_(g, alpha=-0.1).addcmul_(g, g, value=0.5).addcdiv_(g, g.abs() + 1, value=-2).clamp_(-1, 1)
        w.sub_(g, alpha=2).div_(3)
    with torch.no_grad():
        tg = to_torch(g)
        tw.mul_(0.9).add_(tg, alpha=-0.1).addcmul_(tg, tg, value=0.5).addcdiv_(tg, tg.abs() + 1, value=-2).clamp_(-1, 1)
        tw.sub_(tg, alpha=2).div_(3)
    assert_close(w, tw)
    with graphc.no_grad():
        w.copy_(g).fill_(2.0).zero_()
    assert not w.detach().numpy().any()


def test_variable_is_a_detached_tensor_as_in_torch():
    for lib in (graphc, torch):
        a = lib.ones(2, requires_grad=True)
        b = a * 2
        v = lib.autograd.Variable(b)
        assert not v.requires_grad and v.grad_fn is None and isinstance(lib.ones(1), lib.autograd.Variable)
        w = lib.autograd.Variable(lib.ones(2), requires_grad=True)
        assert w.requires_grad and w.is_leaf
        (w * 3).sum().backward()
        assert w.grad.tolist() == [3.0, 3.0]


def _checkpointed_net(lib, rng):
    blocks = lib.nn.Sequential(*[lib.nn.Sequential(lib.nn.Linear(8, 8), lib.nn.GELU()) for _ in range(4)])
    with lib.no_grad():
        for p in blocks.parameters():
            p.copy_(lib.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32) * 0.3))
    return blocks


@pytest.mark.parametrize("compiled", [False, True])
def test_checkpoint_gives_torchs_values_and_gradients(compiled):
    """Parameters inside checkpointed blocks get gradients though the input does not require grad (torch's
    use_reentrant=False), through checkpoint and checkpoint_sequential, eagerly and compiled."""
    results = []
    for lib in (graphc, torch):
        rng = np.random.default_rng(0)
        blocks = _checkpointed_net(lib, rng)
        x = lib.tensor(rng.standard_normal((4, 8)).astype(np.float32))

        def loss_fn(x, lib=lib, blocks=blocks):
            h = lib.utils.checkpoint.checkpoint(blocks[0], x, use_reentrant=False)
            h = blocks[1](h)
            h2 = lib.utils.checkpoint.checkpoint_sequential(blocks, 2, h, use_reentrant=False)
            return (h + h2).square().mean()
        run = graphc.compile(loss_fn) if compiled and lib is graphc else loss_fn
        loss = run(x)
        loss.backward()
        results.append((loss, [p.grad for p in blocks.parameters()]))
    (loss, grads), (tloss, tgrads) = results
    assert_close(loss, tloss)
    for g, t in zip(grads, tgrads):
        assert_close(g, t)


def test_checkpoint_recomputes_dropout_with_the_same_mask():
    rng = np.random.default_rng(0)
    grads = []
    for checkpointed in (False, True):
        blocks = _checkpointed_net(graphc, np.random.default_rng(0))
        x = graphc.tensor(rng.standard_normal((4, 8)).astype(np.float32), requires_grad=True)

        def block(h, blocks=blocks):
            return graphc.nn.functional.dropout(blocks[0](h), 0.5)
        graphc.manual_seed(3)
        out = graphc.utils.checkpoint.checkpoint(block, x, use_reentrant=False) if checkpointed else block(x)
        out.square().sum().backward()
        grads.append([x.grad.numpy()] + [p.grad.numpy() for p in blocks[0].parameters()])
        rng = np.random.default_rng(0)
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def _func_net(lib):
    lib.manual_seed(0)
    return lib.nn.Sequential(lib.nn.Linear(3, 4), lib.nn.Tanh(), lib.nn.Linear(4, 1))


def test_func_transforms_match_torch_func():
    """functional_call in a MAML step (second order), per-sample gradients as vmap(grad(functional_call)),
    jacrev, hessian and vmap with an unmapped argument."""
    rng = np.random.default_rng(0)
    x, xs, w = (rng.standard_normal(s).astype(np.float32) for s in ((5, 3), (5, 4), (4, 3)))
    theirs = _func_net(torch)
    ours = _func_net(graphc)
    ours.load_state_dict({k: graphc.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})

    def maml(lib, model):
        params = dict(model.named_parameters())
        inputs = lib.tensor(x)
        grads = lib.autograd.grad(model(inputs).square().mean(), list(params.values()), create_graph=True)
        fast = {k: v - 0.1 * g for (k, v), g in zip(params.items(), grads)}
        lib.func.functional_call(model, fast, (inputs,)).square().mean().backward()
        return [p.grad for p in model.parameters()]
    for a, b in zip(maml(graphc, ours), maml(torch, theirs)):
        assert_close(a, b)

    def per_sample(lib, model):
        params = {k: v.detach() for k, v in model.named_parameters()}

        def loss(p, sample):
            return lib.func.functional_call(model, p, (sample.unsqueeze(0),)).square().sum()
        return lib.func.vmap(lib.func.grad(loss), in_dims=(None, 0))(params, lib.tensor(x))
    mine, reference = per_sample(graphc, ours), per_sample(torch, theirs)
    assert set(mine) == set(reference)
    for name in reference:
        assert_close(mine[name], reference[name])

    def layer(lib):
        return lambda a, b: (a @ b).tanh()

    def energy(lib):
        return lambda a: (a.sin() * a).sum()
    for fn, args in ((lambda lib: lib.func.vmap(layer(lib), in_dims=(0, None)), (xs, w)),
                     (lambda lib: lib.func.jacrev(layer(lib), argnums=1), (xs[0], w)),
                     (lambda lib: lib.func.hessian(energy(lib)), (xs[0],))):
        ours_out = fn(graphc)(*(graphc.tensor(a) for a in args))
        assert not ours_out.requires_grad
        assert_close(ours_out, fn(torch)(*(torch.tensor(a) for a in args)))


def test_jacrev_of_several_outputs_and_vmap_keyword_arguments():
    x = np.array([0.1, 0.2, 0.3], np.float32)
    ours = graphc.func.jacrev(lambda v: (v.sin(), v.sum()))(graphc.tensor(x))
    theirs = torch.func.jacrev(lambda v: (v.sin(), v.sum()))(torch.tensor(x))
    for a, b in zip(ours, theirs):
        assert_close(a, b)
    batch = np.stack([x, 2 * x])
    assert_close(graphc.func.vmap(lambda v, scale=1.0: v * scale)(graphc.tensor(batch), scale=3.0),
                 torch.func.vmap(lambda v, scale=1.0: v * scale)(torch.tensor(batch), scale=3.0))


def _custom_functions(T):
    class GradScale(T.autograd.Function):  # a gradient-reversal layer: the forward returns a view of its input
        @staticmethod
        def forward(ctx, x):
            return x.view_as(x)

        @staticmethod
        def backward(ctx, g):
            return g * -3

    class Tail(T.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x[1:]

        @staticmethod
        def backward(ctx, g):
            return T.cat([T.zeros(1), g * 3])

    class Dirty(T.autograd.Function):  # writes its input in place and returns it
        @staticmethod
        def forward(ctx, x, y):
            x.mul_(y)
            ctx.mark_dirty(x)
            ctx.save_for_backward(y)
            return x

        @staticmethod
        def backward(ctx, g):
            (y,) = ctx.saved_tensors
            return g * y, None

    def step(w, x):
        h = w * 1.0
        z = Dirty.apply(h, x)
        assert z is h  # mark_dirty: the output is the caller's tensor, with this Function's history
        loss = (GradScale.apply(z * h) * x).sum() + Tail.apply(w * x).sum()
        loss.backward()
        return loss
    return step


@pytest.mark.parametrize("backend", [None, "numpy", "cpu"])
def test_custom_functions_returning_a_view_or_a_dirtied_input_run_their_backward(backend):
    """A Function whose forward returns a view of its input (x.view_as(x), x[1:]) has its own backward, not the view
    op's; one that writes its input in place and marks it dirty returns that very tensor, whose history becomes the
    Function's. Both gave torch's values with the wrong gradients, eagerly and compiled."""
    mine = _custom_functions(graphc) if backend is None else graphc.compile(_custom_functions(graphc), backend=backend)
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal(3).astype(np.float32)
        gw, tw = graphc.tensor([1.0, -3.0, 2.0], requires_grad=True), torch.tensor([1.0, -3.0, 2.0], requires_grad=True)
        assert_close(mine(gw, graphc.tensor(x)), _custom_functions(torch)(tw, torch.tensor(x)), rtol=1e-5)
        assert_close(gw.grad, tw.grad, rtol=1e-5)
