"""A compiled forward whose backward runs outside it (graphc/compiler/joint.py), on programs written as public PyTorch
code writes them: values, gradients, replays (num_traces) and warnings against torch eager."""
from __future__ import annotations

import warnings

import numpy as np
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
