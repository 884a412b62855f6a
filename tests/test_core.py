"""The spine: dispatch, autograd engine, views and promotion, checked against torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_close, to_torch

import graphc


def test_broadcast_arithmetic_values_and_grads():
    a, b = graphc.randn(3, 1, 4, requires_grad=True), graphc.randn(5, 1, requires_grad=True)
    ta, tb = to_torch(a), to_torch(b)
    out = ((a * b + a.exp()) / (b * b + 1)).mean()
    tout = ((ta * tb + ta.exp()) / (tb * tb + 1)).mean()
    out.backward()
    tout.backward()
    assert_close(out, tout)
    assert_close(a.grad, ta.grad)
    assert_close(b.grad, tb.grad)


def test_view_shares_storage():
    base = graphc.zeros(2, 3)
    v = base.view(3, 2)
    v.add_(1.0)
    t = base.transpose(0, 1)
    assert t.data_ptr() == base.data_ptr()
    assert base.numpy()[0, 0] == v.numpy()[0, 0]
    assert base.sum().item() == pytest.approx(float(np.asarray(base).sum()))


def test_promotion_matches_torch():
    cases = [
        (graphc.ones(2, dtype=graphc.int64), graphc.ones(2)),
        (graphc.ones(2, dtype=graphc.float16), graphc.ones(2)),
        (graphc.ones(2, dtype=graphc.bool), graphc.ones(2, dtype=graphc.bool)),
        (graphc.ones(2, dtype=graphc.int32), 2.5),
        (graphc.ones(2, dtype=graphc.float16), graphc.tensor(1.0, dtype=graphc.float64)),
    ]
    for a, b in cases:
        ta = to_torch(a)
        tb = to_torch(b) if isinstance(b, graphc.Tensor) else b
        assert str(ta.__add__(tb).dtype).replace("torch.", "") == (a + b).dtype.name


def test_second_backward_without_retain_graph_raises():
    x = graphc.randn(3, requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert_close(x.grad, 4 * torch.from_numpy(x.numpy(force=True)).exp())
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_deep_chain_has_no_recursion_limit():
    x = graphc.ones(2, requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0
    y.sum().backward()
    assert_close(x.grad, torch.ones(2))


def test_shape_error_names_op_shapes_and_line():
    with pytest.raises(RuntimeError) as info:
        graphc.ones(2, 3) + graphc.ones(4)
    message = str(info.value)
    assert "add" in message and "[2, 3]" in message and "[4]" in message and "test_core.py" in message
