"""A compiled forward whose backward runs outside it (graphc/compiler/joint.py), on programs written as public PyTorch
code writes them: values, gradients, replays (num_traces) and warnings against torch eager."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import assert_close

import graphc


def _same_weights(gmodel, tmodel) -> None:
    gmodel.load_state_dict({k: v.detach().numpy().copy() for k, v in tmodel.state_dict().items()})


def _assert_same_grads(gmodel, tmodel, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    for (name, p), tp in zip(gmodel.named_parameters(), tmodel.parameters()):
        assert (p.grad is None) == (tp.grad is None), name
        if p.grad is not None:
            assert_close(p.grad, tp.grad, rtol=rtol, atol=atol)


def _buffer_users(lib):
    class StepScaled(lib.nn.Module):
        """A step counter updated in place, then used to scale the output."""

        def __init__(self):
            super().__init__()
            self.l = lib.nn.Linear(4, 3)
            self.register_buffer("count", lib.zeros(1))

        def forward(self, x):
            self.count.add_(1)
            return self.l(x) / self.count

    class RunningNorm(lib.nn.Module):
        """A running mean updated in place, then subtracted from the input of a layer."""

        def __init__(self):
            super().__init__()
            self.l = lib.nn.Linear(4, 3)
            self.register_buffer("running_mean", lib.zeros(4))

        def forward(self, x):
            self.running_mean.mul_(0.9).add_(0.1 * x.mean(0))
            return self.l(x - self.running_mean).tanh()

    return StepScaled, RunningNorm


def test_a_buffer_updated_in_place_then_used_backpropagates_from_the_first_call():
    for gcls, tcls in zip(_buffer_users(graphc), _buffer_users(torch)):
        tmodel = tcls()
        gmodel = gcls()
        _same_weights(gmodel, tmodel)
        compiled = graphc.compile(gmodel)
        rng = np.random.default_rng(1)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for _ in range(4):
                x = rng.standard_normal((5, 4)).astype(np.float32)
                out, tout = compiled(graphc.tensor(x)), tmodel(torch.from_numpy(x))
                out.pow(2).sum().backward()
                tout.pow(2).sum().backward()
                assert_close(out.detach(), tout, rtol=1e-5, atol=1e-6)
                _assert_same_grads(gmodel, tmodel)
                for b, tb in zip(gmodel.buffers(), tmodel.buffers()):
                    assert_close(b, tb, rtol=1e-6, atol=1e-7)
                gmodel.zero_grad()
                tmodel.zero_grad()
        assert compiled.num_traces == 1, gcls.__name__


def _embedded_block(lib):
    class Model(lib.nn.Module):
        """An uncompiled model with a compiled block inside: the block's input is a non-leaf (an embedding's output,
        requiring grad), and the residual reads it outside the block too."""

        def __init__(self):
            super().__init__()
            self.emb = lib.nn.Embedding(10, 4)
            self.block = lib.nn.Sequential(lib.nn.Linear(4, 4), lib.nn.GELU(), lib.nn.Linear(4, 4))
            self.head = lib.nn.Linear(4, 3)

        def forward(self, idx):
            h = self.emb(idx)
            h = h + self.block(h)
            return self.head(h[:, -1])

    return Model()


def test_a_compiled_block_fed_a_non_leaf_hands_its_gradient_on_into_the_callers_graph():
    tmodel, gmodel = _embedded_block(torch), _embedded_block(graphc)
    _same_weights(gmodel, tmodel)
    gmodel.block = graphc.compile(gmodel.block)
    opt = graphc.optim.SGD(gmodel.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.1, momentum=0.9)
    rng = np.random.default_rng(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(5):
            idx, y = rng.integers(0, 10, (6, 5)), rng.integers(0, 3, 6)
            loss = graphc.nn.functional.cross_entropy(gmodel(graphc.tensor(idx)), graphc.tensor(y))
            tloss = torch.nn.functional.cross_entropy(tmodel(torch.tensor(idx)), torch.tensor(y))
            opt.zero_grad()
            topt.zero_grad()
            loss.backward()
            tloss.backward()
            assert_close(loss.detach(), tloss, rtol=1e-5, atol=1e-6)
            _assert_same_grads(gmodel, tmodel, rtol=1e-4, atol=1e-6)
            opt.step()
            topt.step()
    assert gmodel.block.num_traces == 1


def test_a_compiled_function_of_a_non_leaf_gives_autograd_grad_its_gradient():
    """autograd.grad with respect to the non-leaf input of a compiled function, and a second backward through the
    caller's freed graph raising as torch's does."""
    w = np.random.default_rng(3).standard_normal((3, 3)).astype(np.float32)
    gw, tw = graphc.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
    f = graphc.compile(lambda h: (h @ gw).tanh().sum(1))
    for step in range(3):
        x = np.random.default_rng(step).standard_normal((2, 3)).astype(np.float32)
        gx, tx = graphc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        gh, th = gx * 2, tx * 2
        gw.grad = tw.grad = None
        out, tout = f(gh), (th @ tw).tanh().sum(1)
        (g,), (tg,) = graphc.autograd.grad(out.sum(), [gh], retain_graph=True), torch.autograd.grad(tout.sum(), [th],
                                                                                                   retain_graph=True)
        assert_close(g, tg, rtol=1e-5, atol=1e-6)
        assert gx.grad is None and gw.grad is None
        out.sum().backward()
        tout.sum().backward()
        assert_close(gx.grad, tx.grad, rtol=1e-5, atol=1e-6)
        assert_close(gw.grad, tw.grad, rtol=1e-5, atol=1e-6)
    assert f.num_traces == 1


def _critic(lib):
    return lib.nn.Sequential(lib.nn.Linear(4, 8), lib.nn.Tanh(), lib.nn.Linear(8, 1))


def test_a_gradient_penalty_through_a_compiled_critic_matches_torch():
    """WGAN-GP: autograd.grad of the critic's output with create_graph=True, a penalty on the gradient's norm added
    to the critic's loss: on replays too, the penalty's gradient reaches the parameters (double backward)."""
    tD, gD = _critic(torch), _critic(graphc)
    _same_weights(gD, tD)
    critic = graphc.compile(gD)
    rng = np.random.default_rng(5)
    for _ in range(3):
        real, fake = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal((5, 4)).astype(np.float32)
        for lib, f in ((graphc, critic), (torch, tD)):
            x = lib.tensor(0.3 * real + 0.7 * fake, requires_grad=True)
            g, = lib.autograd.grad(f(x).sum(), x, create_graph=True)
            penalty = ((g.norm(2, dim=1) - 1) ** 2).mean()
            loss = f(lib.tensor(fake)).mean() - f(lib.tensor(real)).mean() + 10 * penalty
            loss.backward()
        _assert_same_grads(gD, tD, rtol=1e-4, atol=1e-6)
        gD.zero_grad()
        tD.zero_grad()
    assert critic.num_traces == 2  # an argument requiring grad, and not


def _heads(lib, shared: bool):
    class TwoHeads(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk, self.a, self.b = lib.nn.Linear(4, 4), lib.nn.Linear(4, 3), lib.nn.Linear(4, 2)

        def forward(self, x):
            h = self.trunk(x).relu() if shared else x
            return self.a(h), self.b(h)

    return TwoHeads()


def test_two_heads_backpropagated_by_two_backward_calls_match_torch():
    """Heads with nothing in common backpropagate one after the other (the second head's parameters have no
    gradient after the first backward, as in torch); heads sharing a trunk refuse the second backward without
    retain_graph, as torch does."""
    for shared in (False, True):
        tmodel, gmodel = _heads(torch, shared), _heads(graphc, shared)
        _same_weights(gmodel, tmodel)
        compiled = graphc.compile(gmodel)
        rng = np.random.default_rng(6)
        for _ in range(3):
            x = rng.standard_normal((5, 4)).astype(np.float32)
            a, b = compiled(graphc.tensor(x))
            ta, tb = tmodel(torch.from_numpy(x))
            a.pow(2).sum().backward()
            ta.pow(2).sum().backward()
            _assert_same_grads(gmodel, tmodel)
            if shared:
                with pytest.raises(RuntimeError, match="backward through the graph a second time"):
                    b.sum().backward()
                with pytest.raises(RuntimeError, match="backward through the graph a second time"):
                    tb.sum().backward()
            else:
                b.sum().backward()
                tb.sum().backward()
                _assert_same_grads(gmodel, tmodel)
                with pytest.raises(RuntimeError, match="backward through the graph a second time"):
                    a.sum().backward()
            gmodel.zero_grad()
            tmodel.zero_grad()
        assert compiled.num_traces == 1


def test_a_compiled_head_tied_to_the_embedding_that_made_its_input():
    """The compiled function reads the embedding's weight (tied weights) and is fed the embedding's output: the
    weight's gradient is the sum of both paths, once each, and a hook the caller put on the input runs once per
    backward, as in torch."""
    weight = np.random.default_rng(7).standard_normal((10, 4)).astype(np.float32)
    gemb, temb = graphc.nn.Embedding(10, 4), torch.nn.Embedding(10, 4)
    gemb.weight.data = graphc.tensor(weight.copy())
    temb.weight.data = torch.tensor(weight)
    head = graphc.compile(lambda h: h.tanh() @ gemb.weight.T)
    calls = []
    for step in range(3):
        idx = np.random.default_rng(step).integers(0, 10, (2, 3))
        for lib, emb, f in ((graphc, gemb, head), (torch, temb, lambda h: h.tanh() @ temb.weight.T)):
            h = emb(lib.tensor(idx))
            h.register_hook(lambda g: calls.append(1) or g * 2)
            f(h).pow(2).mean().backward()
        assert_close(gemb.weight.grad, temb.weight.grad, rtol=1e-5, atol=1e-6)
    assert len(calls) == 6 and head.num_traces == 1


def test_a_compiled_function_writing_into_its_non_leaf_input_keeps_torchs_gradients():
    """`h.mul_(2)` on a non-leaf argument changes h's history; the function cannot replay, and runs eagerly after
    three such calls (with one warning), so the gradient through h's later uses is torch's."""
    w = np.random.default_rng(8).standard_normal((3, 3)).astype(np.float32)
    f = graphc.compile(lambda h: h.mul_(2).tanh())
    with pytest.warns(RuntimeWarning, match="writes in place into a tensor with a history"):
        for step in range(3):
            x = np.random.default_rng(step).standard_normal((2, 3)).astype(np.float32)
            grads = []
            for lib, fn in ((graphc, f), (torch, lambda h: h.mul_(2).tanh())):
                gw = lib.tensor(w, requires_grad=True)
                h = lib.tensor(x) @ gw
                (fn(h).sum() + (h * h).sum()).backward()
                grads.append(gw.grad)
            assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_a_gradient_penalty_through_a_compiled_critic_with_dropout():
    """Double backward through a compiled forward that draws a dropout mask: the gradients are computed with the
    forward's own mask (kept for its backward), so they equal eager graphc's from the same draws (torch draws other
    masks)."""
    critic = graphc.nn.Sequential(graphc.nn.Linear(4, 8), graphc.nn.Tanh(), graphc.nn.Dropout(0.5),
                                  graphc.nn.Linear(8, 1))
    compiled = graphc.compile(critic)
    x = graphc.tensor(np.random.default_rng(10).standard_normal((5, 4)).astype(np.float32), requires_grad=True)
    for seed in range(3):
        grads = []
        for f in (compiled, critic):
            graphc.manual_seed(seed)
            out = f(x)
            g, = graphc.autograd.grad(out.sum(), x, create_graph=True)
            ((g.norm(2, dim=1) - 1) ** 2).mean().backward()
            grads.append([out.detach()] + [p.grad for p in critic.parameters()])
            critic.zero_grad()
        for a, b in zip(*grads):  # the last bias gets no gradient, as in torch
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    assert compiled.num_traces == 1
