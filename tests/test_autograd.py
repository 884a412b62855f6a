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


def test_create_graph_gives_second_derivatives():
    x = graphc.randn(5, requires_grad=True)
    tx = to_torch(x)
    (g,) = graphc.autograd.grad((x**3).sum(), x, create_graph=True)
    (tg,) = torch.autograd.grad((tx**3).sum(), tx, create_graph=True)
    g.sum().backward()
    tg.sum().backward()
    assert_close(x.grad, tx.grad, rtol=1e-5)


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
