"""graphc.autograd.functional (jacobian, hessian, vjp, jvp, hvp, vhp) and graphc.vmap against torch: values,
tuple structure, create_graph, and torch's errors."""
from __future__ import annotations

import graphc.autograd.functional as GA
import numpy as np
import pytest
import torch
import torch.autograd.functional as TA
from graphc.autograd.functional import jacobian

import graphc


def _both(*shape, seed=0):
    a = np.random.default_rng(seed + len(shape)).standard_normal(shape)
    return graphc.tensor(a), torch.tensor(a)


def _same(got, expected):
    if isinstance(expected, tuple):
        assert isinstance(got, tuple) and len(got) == len(expected)
        for g, e in zip(got, expected):
            _same(g, e)
        return
    np.testing.assert_allclose(got.detach().numpy(), expected.detach().numpy(), rtol=1e-7, atol=1e-10)
    assert got.requires_grad == expected.requires_grad


def _elementwise(L):
    return lambda x: L.tanh(x) * x.sum()


def _pair(L):
    return lambda x, y: (x @ y, (x ** 2).sum() * y)


def _scalar(L):
    return lambda x: (x.exp() * x.sin()).sum()


def _scalar2(L):
    return lambda x, y: (x.sin() * y.cos()).sum() + (x * x).sum()


x, tx = _both(3)
y, ty = _both(3, seed=1)
X, tX = _both(2, 3)
Y, tY = _both(3, 2)
ONES = ((graphc.ones(2, 2, dtype=graphc.float64), graphc.ones(3, 2, dtype=graphc.float64)),
        (torch.ones(2, 2, dtype=torch.float64), torch.ones(3, 2, dtype=torch.float64)))
CASES = {
    "jacobian": lambda A, L, a: A.jacobian(_elementwise(L), a["x"]),
    "jacobian_tuples": lambda A, L, a: A.jacobian(_pair(L), (a["X"], a["Y"]), vectorize=True),
    "jacobian_create_graph": lambda A, L, a: A.jacobian(_elementwise(L), a["x"], create_graph=True),
    "hessian": lambda A, L, a: A.hessian(_scalar(L), a["x"]),
    "hessian_tuples": lambda A, L, a: A.hessian(_scalar2(L), (a["x"], a["y"])),
    "vjp": lambda A, L, a: A.vjp(_elementwise(L), a["x"], a["y"]),
    "vjp_tuples": lambda A, L, a: A.vjp(_pair(L), (a["X"], a["Y"]), a["ones"]),
    "vjp_scalar": lambda A, L, a: A.vjp(_scalar(L), a["x"]),
    "jvp": lambda A, L, a: A.jvp(_elementwise(L), a["x"], a["y"]),
    "jvp_tuples": lambda A, L, a: A.jvp(_pair(L), (a["X"], a["Y"]), (a["X"] * 0 + 1, a["Y"] * 2)),
    "hvp": lambda A, L, a: A.hvp(_scalar(L), a["x"], a["y"]),
    "vhp_tuples": lambda A, L, a: A.vhp(_scalar2(L), (a["x"], a["y"]), (a["y"], a["x"])),
    "hvp_tuples": lambda A, L, a: A.hvp(_scalar2(L), (a["x"], a["y"]), (a["y"], a["x"]), create_graph=True),
}


@pytest.mark.parametrize("name", CASES)
def test_matches_torch(name):
    got = CASES[name](GA, graphc, {"x": x, "y": y, "X": X, "Y": Y, "ones": ONES[0]})
    expected = CASES[name](TA, torch, {"x": tx, "y": ty, "X": tX, "Y": tY, "ones": ONES[1]})
    _same(got, expected)


def test_create_graph_results_are_differentiable_with_respect_to_the_inputs():
    xg, xt = graphc.tensor([1.0, 2.0], requires_grad=True), torch.tensor([1.0, 2.0], requires_grad=True)
    jacobian(lambda a: a ** 3, xg, create_graph=True).sum().backward()
    TA.jacobian(lambda a: a ** 3, xt, create_graph=True).sum().backward()
    np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy())


ERRORS = [
    (lambda A, L: A.vjp(_elementwise(L), L.ones(3, dtype=L.float64)), RuntimeError, "v can only be None"),
    (lambda A, L: A.hessian(_elementwise(L), L.ones(3, dtype=L.float64)), RuntimeError, "single element"),
    (lambda A, L: A.jacobian(lambda a: 3, L.ones(3)), TypeError, "must be either a Tensor or a tuple of Tensors"),
    (lambda A, L: A.vjp(_elementwise(L), L.ones(3, dtype=L.float64), L.ones(2, dtype=L.float64)), RuntimeError,
     "v has invalid size"),
]


@pytest.mark.parametrize("call,kind,message", ERRORS)
def test_errors_match_torch(call, kind, message):
    with pytest.raises(kind, match=message):
        call(TA, torch)
    with pytest.raises(kind, match=message):
        call(GA, graphc)


def test_vmap_is_torch_vmap():
    assert graphc.vmap is graphc.func.vmap
    batched = torch.randn(4, 3)
    np.testing.assert_allclose(graphc.vmap(lambda r: (r * r).sum())(graphc.tensor(batched.numpy())).numpy(),
                               torch.vmap(lambda r: (r * r).sum())(batched).numpy(), rtol=1e-6)


def test_vmap_and_jacobians_compiled_follow_the_batch_size():
    """vmap calls the function once per mapped index, jacrev/jacobian once per output element: those counts are
    sizes the trace's structure is built from, so they are guards (a replay with a larger batch returned the first
    call's rows, silently)."""
    programs = [(lambda L: lambda x: L.vmap(lambda r: r * 2 + r.sum())(x)),
                (lambda L: lambda x: L.func.vmap(L.func.grad(lambda r: (r ** 2).sum()))(x)),
                (lambda L: lambda x: L.func.jacrev(lambda r: r.sin() * 2)(x[0]))]
    compiled = [graphc.compile(p(graphc)) for p in programs]
    for n in (2, 3, 5):
        x = np.arange(n * 3, dtype=np.float32).reshape(n, 3) / 4
        for p, c in zip(programs, compiled):
            np.testing.assert_allclose(c(graphc.tensor(x)).numpy(), p(torch)(torch.tensor(x)).numpy(), rtol=1e-6)
        mine = graphc.compile(lambda v: jacobian(lambda r: r.exp(), v))(graphc.tensor(x[:, 0]))
        expected = TA.jacobian(lambda r: r.exp(), torch.tensor(x[:, 0]))
        np.testing.assert_allclose(mine.numpy(), expected.numpy(), rtol=1e-6)
