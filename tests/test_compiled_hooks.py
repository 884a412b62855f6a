"""Tensor hooks (register_hook) inside a compiled training step run at every call, as eagerly: a replay calls each
hook the traced backward ran, with the same gradient's value; a hook that writes tensors in place makes the step
trace on every call, with one warning. torch (eager) is the reference for values, gradients and hook calls."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import assert_close

import graphc

MODES = ["eager", "numpy", "interpret"]
X = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
W = np.random.default_rng(1).standard_normal((3,)).astype(np.float32)


def _step(w, run):
    """A training step in the style of public code: hooks registered once on the weight (a call log through a
    closure, a gradient clamp) and one registered inside the step on an activation (a log line)."""
    def step(x):
        h = x * w
        h.register_hook(lambda g: print(f"activation gradient {tuple(g.shape)}"))
        (h.tanh() ** 2).sum().backward()
        return w.grad
    return step if run is None else run(step)


def _hooked_weight(L, calls: list):
    w = L.tensor(W.copy(), requires_grad=True)
    w.register_hook(lambda g: calls.append(("weight", tuple(g.shape))))
    w.register_hook(lambda g: g.clamp(-0.5, 0.5))
    return w


@pytest.mark.parametrize("mode", MODES)
def test_hooks_with_python_effects_run_at_every_replay_like_torch(mode, capsys):
    runs = {}
    for L in (torch, graphc):
        calls = []
        w = _hooked_weight(L, calls)
        compiled = None if L is torch or mode == "eager" else (lambda f: graphc.compile(f, backend=mode))
        step = _step(w, compiled)
        grads = []
        for call in range(4):
            w.grad = None
            grads.append(step(L.tensor(X + call)).clone())
        runs[L] = (calls, capsys.readouterr().out, grads, step)
    assert runs[graphc][0] == runs[torch][0] == [("weight", (3,))] * 4  # once per call
    assert runs[graphc][1] == runs[torch][1] == "activation gradient (4, 3)\n" * 4
    for got, want in zip(runs[graphc][2], runs[torch][2]):
        assert_close(got, want, atol=1e-6)
    if mode != "eager":
        assert runs[graphc][3].num_traces == 1


@pytest.mark.parametrize("mode", ["numpy", "interpret"])
def test_a_removed_or_added_hook_is_a_guard(mode):
    """The hooks on a tensor the step reads are guarded: removing one traces again, and the removed one is not
    called by a replay (nor a new one skipped)."""
    calls = []
    w = graphc.tensor(W.copy(), requires_grad=True)
    handle = w.register_hook(lambda g: calls.append("first"))
    compiled = graphc.compile(lambda x: (x * w).sum().backward(), backend=mode)

    def step():
        w.grad = None
        compiled(graphc.tensor(X))
    step()
    step()
    handle.remove()
    w.register_hook(lambda g: calls.append("second"))
    step()
    step()
    assert calls == ["first", "first", "second", "second"]
    assert compiled.num_traces == 2


@pytest.mark.parametrize("mode", ["numpy", "interpret"])
def test_a_hook_writing_tensors_in_place_traces_every_call_with_one_warning(mode):
    """A hook that accumulates into a tensor (a gradient-statistics buffer): its write is in the graph, so a replay
    could not call it again; the step traces on every call, and the buffer equals torch's."""
    buffers = {}
    for L in (torch, graphc):
        acc = L.zeros(3)
        w = L.tensor(W.copy(), requires_grad=True)

        def accumulate(g, acc=acc):
            acc.add_(g)
        w.register_hook(accumulate)
        step = (lambda x, w=w: (x * w).sum().backward())
        if L is graphc:
            step = graphc.compile(step, backend=mode)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for call in range(3):
                    step(L.tensor(X + call))
            messages = [str(m.message) for m in caught]
            assert len(messages) == 1 and "accumulate" in messages[0] and "writes tensors in place" in messages[0]
        else:
            for call in range(3):
                step(L.tensor(X + call))
        buffers[L] = acc
    assert_close(buffers[graphc], buffers[torch], atol=1e-5)


def test_a_compiled_module_storing_detached_activations_replays_with_a_backward():
    """`self.last = out.detach()` and a forward hook storing `o.detach()` (feature extraction, Grad-CAM): a detached
    alias of a result that requires grad is regenerated from it at each replay, outside autograd, so the module
    keeps its forward and backward plans (it ran eagerly after three calls). Values, gradients and memory sharing
    are eager's and torch's."""
    def make(L):
        L.manual_seed(0)

        class M(L.nn.Module):
            def __init__(self):
                super().__init__()
                self.l, self.m = L.nn.Linear(4, 2), L.nn.Linear(2, 3)

            def forward(self, x):
                out = self.l(x)
                self.last = out.detach()
                return self.m(out.relu())
        return M()

    tm, gm = make(torch), make(graphc)
    gm.load_state_dict({k: graphc.tensor(v.detach().numpy()) for k, v in tm.state_dict().items()})
    acts = {}
    gm.m.register_forward_hook(lambda mod, i, o: acts.__setitem__("out", o.detach()))
    compiled = graphc.compile(gm)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(4):
            x = rng.standard_normal((5, 4)).astype(np.float32)
            y, ty = compiled(graphc.tensor(x)), tm(torch.tensor(x))
            y.sum().backward()
            ty.sum().backward()
            assert_close(y, ty)
            assert_close(gm.last, tm.last)
            assert_close(gm.l.weight.grad, tm.l.weight.grad, rtol=1e-5)
            assert not gm.last.requires_grad and not acts["out"].requires_grad
            y.detach()[0, 0] = 100.0  # the stored activation shares the result's memory, as eagerly
            assert acts["out"][0, 0].item() == 100.0
    assert compiled.num_traces == 2  # the first call stores a tensor where there was none: traced once more
