"""Gradients of reductions and norms where the input is constant, zero or of size 1, and of atan2 at the origin,
equal torch's (0 where torch masks 0/0, NaN where torch gives NaN), eagerly and in a compiled step."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import graphc
import graphc.nn.functional as F


def _functional(lib):
    return F if lib is graphc else torch.nn.functional


FUNCTIONS = {
    "std": lambda lib, x: x.std(),
    "std correction=0": lambda lib, x: x.std(correction=0),
    "std unbiased=False": lambda lib, x: x.std(unbiased=False),
    "std dim": lambda lib, x: x.std(-1),
    "std dim keepdim": lambda lib, x: x.std(-1, keepdim=True),
    "std dims": lambda lib, x: x.std(tuple(range(x.ndim))),
    "var": lambda lib, x: x.var(),
    "var correction=0": lambda lib, x: x.var(correction=0),
    "var dim keepdim": lambda lib, x: x.var(0, keepdim=True),
    "norm": lambda lib, x: x.norm(),
    "norm p=1": lambda lib, x: x.norm(1),
    "norm p=3": lambda lib, x: x.norm(3),
    "norm p=0.5": lambda lib, x: x.norm(0.5),
    "norm p=-1": lambda lib, x: x.norm(-1),
    "norm p=inf": lambda lib, x: x.norm(float("inf")),
    "norm p=-inf": lambda lib, x: x.norm(float("-inf")),
    "norm dim": lambda lib, x: x.norm(dim=-1),
    "layer_norm": lambda lib, x: _functional(lib).layer_norm(x, x.shape[-1:]) * lib.arange(x.shape[-1]),
    "layer_norm affine": lambda lib, x: _functional(lib).layer_norm(
        x, x.shape[-1:], lib.ones(x.shape[-1]) * 2, lib.ones(x.shape[-1])) * lib.arange(x.shape[-1]),
    "logsumexp": lambda lib, x: x.logsumexp(-1),
    "softmax": lambda lib, x: x.softmax(-1) * lib.arange(x.shape[-1]),
    "amax": lambda lib, x: x.amax(),
    "max": lambda lib, x: x.max(),
    "prod": lambda lib, x: x.prod(),
    "mean": lambda lib, x: x.mean(),
}
INPUTS = {
    "constant": np.full(3, 0.3, np.float32),
    "size 1": np.array([0.3], np.float32),
    "zeros": np.zeros(3, np.float32),
    "constant rows": np.full((2, 3), 0.7, np.float32),
    "rows of size 1": np.full((2, 1), 0.5, np.float32),
    "single zero": np.zeros(1, np.float32),
}


def _grad(lib, fn, data):
    x = lib.tensor(data, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns for degrees of freedom <= 0
        fn(lib, x).sum().backward()
    return np.asarray(x.grad.tolist(), dtype=np.float64)


@pytest.mark.parametrize("data", INPUTS)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_edge_gradients_match_torch(name, data):
    fn, x = FUNCTIONS[name], INPUTS[data]
    np.testing.assert_allclose(_grad(graphc, fn, x), _grad(torch, fn, x), rtol=1e-5, atol=1e-6)  # NaN where torch


def test_the_issue_example():
    x = graphc.tensor([0.3, 0.3, 0.3], requires_grad=True)
    x.std().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("backend", ["numpy", "interpret"])
@pytest.mark.parametrize("name", ["std", "std dim keepdim", "norm", "layer_norm"])
def test_edge_gradients_compiled(name, backend):
    fn, x = FUNCTIONS[name], INPUTS["constant rows"]

    @graphc.compile(backend=backend)
    def step(t):
        fn(graphc, t).sum().backward()

    t = graphc.tensor(x, requires_grad=True)
    step(t)
    np.testing.assert_allclose(t.grad.tolist(), _grad(torch, fn, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", [None, "numpy", "interpret"])
def test_atan2_gradient_at_the_origin_is_zero_as_in_torch(backend):
    """torch takes 1 / (a² + b²) as 0 where a² + b² is 0 (the origin, or an underflow), keeping signed zeros and the
    NaN of an infinite incoming gradient."""
    a, b = [0.0, -0.0, 0.0, 1e-30, 1.0, 3.0], [0.0, 0.0, -0.0, 1e-30, 0.0, -4.0]
    g = [1.0, 2.0, np.inf, 1.0, 1.0, 1.0]
    grads = []
    for lib in (torch, graphc):
        x, y = lib.tensor(a, requires_grad=True), lib.tensor(b, requires_grad=True)
        step = (lambda x, y, g: lib.atan2(x, y).backward(g)) if lib is torch or backend is None else \
            graphc.compile(lambda x, y, g: lib.atan2(x, y).backward(g), backend=backend)
        step(x, y, lib.tensor(g))
        grads.append([x.grad.numpy(), y.grad.numpy()])
    for ours, theirs in zip(grads[1], grads[0]):
        np.testing.assert_array_equal(ours, theirs)
        if backend != "interpret":  # Triton 3.6's interpreter negates 0 to +0 (3.9's, and compiled code, to -0)
            np.testing.assert_array_equal(np.signbit(ours), np.signbit(theirs))


def test_remainder_divisor_gradient_uses_torch_s_floor_division():
    """d remainder(a, b) / d b is -floor_divide(a, b), which torch computes as NaN for inf // 2 and -1 for
    7 // -inf (not floor(a / b): inf and -0)."""
    a, b = [1.0, np.inf, -np.inf, 5.0, 2.0, 7.0, -3.0], [2.0, 2.0, 3.0, np.inf, 0.5, -np.inf, 2.0]
    grads = []
    for lib in (torch, graphc):
        x, y = lib.tensor(a, requires_grad=True), lib.tensor(b, requires_grad=True)
        lib.remainder(x, y).sum().backward()
        grads.append(y.grad.numpy())
    np.testing.assert_array_equal(grads[1], grads[0])


MASKED = {
    "floor": lambda lib, a: a.floor(), "ceil": lambda lib, a: a.ceil(), "round": lambda lib, a: a.round(),
    "trunc": lambda lib, a: a.trunc(), "sign": lambda lib, a: a.sign(), "frac": lambda lib, a: a.frac(),
    "relu": lambda lib, a: a.relu(), "clamp": lambda lib, a: a.clamp(-1, 1), "pow 0": lambda lib, a: a ** 0,
    "div floor": lambda lib, a: lib.div(a, 2.0, rounding_mode="floor"),
    "maximum": lambda lib, a: lib.maximum(a, a.flip(0)), "minimum": lambda lib, a: lib.minimum(a, lib.ones_like(a)),
}


@pytest.mark.parametrize("backend", [None, "numpy", "interpret"])
@pytest.mark.parametrize("name", MASKED)
def test_masked_and_step_gradients_of_inf_and_nan_are_torch_s(name, backend):
    """Where torch masks a gradient (a relu's or clamp's cut-off side, the loser of maximum) or a step function has
    none (floor, sign), an incoming inf or NaN gives 0, not NaN (g * mask); maximum gives both sides the gradient
    where one is NaN."""
    data, incoming = [0.0, 1.5, -2.0, 3.0, -0.5, np.nan, 1.0], [np.inf, np.nan, -np.inf, 1.0, 2.0, 3.0, -np.inf]
    grads = []
    for lib in (torch, graphc):
        def step(a, g, lib=lib):
            MASKED[name](lib, a).backward(g)
        a = lib.tensor(data, requires_grad=True)
        (step if lib is torch or backend is None else graphc.compile(step, backend=backend))(a, lib.tensor(incoming))
        grads.append(a.grad.numpy())
    np.testing.assert_array_equal(grads[1], grads[0])
