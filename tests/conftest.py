"""Shared test helpers: graphc <-> torch conversion and comparison."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import graphc

# Where the kernel tests run the Triton kernels they generate: Triton's interpreter on CPU, or with
# GRAPHC_TEST_BACKEND=triton on a GPU (scripts/gpu_check.sh).
KERNEL_BACKEND = os.environ.get("GRAPHC_TEST_BACKEND", "interpret")


@pytest.fixture(autouse=True)
def _defaults():
    graphc.manual_seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    # torch.compile's first use turns torch's distribution validation off for the whole process
    # (torch/_dynamo/eval_frame.py); the reference is torch's default, whichever test ran before
    torch.distributions.Distribution.set_default_validate_args(True)


def to_torch(t: graphc.Tensor, requires_grad: bool | None = None) -> torch.Tensor:
    """A torch tensor with t's values (and strides' effect: a copy), requiring grad like t unless told."""
    out = torch.from_numpy(np.array(t._host().astype(np.float32) if t.dtype is graphc.bfloat16 else t._host()))
    if t.dtype is graphc.bfloat16:
        out = out.to(torch.bfloat16)
    rg = t.requires_grad if requires_grad is None else requires_grad
    return out.requires_grad_(rg) if rg else out


def assert_close(actual, expected, rtol: float = 1e-5, atol: float = 1e-6) -> None:
    """graphc tensor (or array) against a torch tensor: dtype-insensitive values with tolerances."""
    a = actual._host() if isinstance(actual, graphc.Tensor) else np.asarray(actual)
    e = expected.detach().float().numpy() if isinstance(expected, torch.Tensor) and expected.is_floating_point() \
        else (expected.detach().numpy() if isinstance(expected, torch.Tensor) else np.asarray(expected))
    assert a.shape == e.shape, f"shape {a.shape} != {e.shape}"
    np.testing.assert_allclose(a.astype(np.float64), e.astype(np.float64), rtol=rtol, atol=atol)


def assert_compiles_for_sm90(kernels) -> None:
    """Each kernel step compiles ahead of time for sm_90: PTX for that target and a non-empty cubin (no GPU needed)."""
    for kernel in kernels:
        assert ".target sm_90" in kernel.ptx(90), kernel.source
        assert len(kernel.cubin(90)) > 0, kernel.source


def train_compiled_alongside_torch(model, opt, tmodel, topt, x: np.ndarray, lrs=None, schedulers=(), steps=0):
    """Steps minimising mean(model(x) ** 2): graphc's through graphc.compile, torch's eagerly, each optimizer's
    learning rate set to lrs[i] before step i (or, without lrs, `steps` steps each followed by a step of every
    scheduler); the caller compares the parameters. Returns the compiled step."""
    @graphc.compile
    def step(x):
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    for lr in [None] * steps if lrs is None else lrs:
        if lr is not None:
            opt.param_groups[0]["lr"] = topt.param_groups[0]["lr"] = lr
        step(graphc.tensor(x))
        topt.zero_grad()
        (tmodel(torch.from_numpy(x)) ** 2).mean().backward()
        topt.step()
        for scheduler in schedulers:
            scheduler.step()
    return step


def assert_trains_like_torch(build, train, rtol: float = 1e-4) -> None:
    """A training script run under torch and graphc from the same initial weights gives the same losses:
    build(lib) makes the model, train(lib, model) runs the script and returns its losses (lib is torch or graphc)."""
    tmodel, gmodel = build(torch), build(graphc)
    assert list(gmodel.state_dict()) == list(tmodel.state_dict())
    gmodel.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    np.testing.assert_allclose(train(graphc, gmodel), train(torch, tmodel), rtol=rtol)


def clipped_step(lib, model, loss, opt, sched, max_norm: float) -> float:
    """The update of a typical script: backward, clip_grad_norm_, optimizer and scheduler steps; returns the loss."""
    opt.zero_grad()
    loss.backward()
    lib.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    opt.step()
    sched.step()
    return loss.item()
