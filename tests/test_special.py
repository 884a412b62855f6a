"""graphc.special against torch.special: values and gradients in float64 (inputs in each function's domain), and a
compiled call."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import graphc


def unit(x):
    return x.sigmoid() * 0.98 + 0.01


def positive(x):
    return x.abs() + 0.5


# (name, fn(S, *inputs) with S = graphc.special or torch.special, input shapes)
CASES = [
    ("expit", lambda S, x: S.expit(x), [(3, 4)]),
    ("logit", lambda S, x: S.logit(unit(x)), [(3, 4)]),
    ("logit_eps", lambda S, x: S.logit(unit(x), eps=0.2), [(3, 4)]),
    ("erf", lambda S, x: S.erf(x), [(3, 4)]),
    ("erfc", lambda S, x: S.erfc(x), [(3, 4)]),
    ("erfcx", lambda S, x: S.erfcx(x), [(3, 4)]),
    ("erfinv", lambda S, x: S.erfinv(unit(x) * 2 - 1), [(3, 4)]),
    ("gammaln", lambda S, x: S.gammaln(positive(x)), [(3, 4)]),
    ("digamma", lambda S, x: S.digamma(positive(x)), [(3, 4)]),
    ("psi", lambda S, x: S.psi(positive(x)), [(3, 4)]),
    ("polygamma", lambda S, x: S.polygamma(2, positive(x)), [(3, 4)]),
    ("multigammaln", lambda S, x: S.multigammaln(positive(x) + 1, 3), [(3, 4)]),
    ("xlogy", lambda S, x, y: S.xlogy(x * (x > 0), positive(y)), [(3, 4), (4,)]),
    ("xlog1py", lambda S, x, y: S.xlog1py(x * (x > 0), positive(y)), [(3, 4), (3, 1)]),
    ("log1p", lambda S, x: S.log1p(positive(x)), [(3, 4)]),
    ("expm1", lambda S, x: S.expm1(x), [(3, 4)]),
    ("exp2", lambda S, x: S.exp2(x), [(3, 4)]),
    ("i0", lambda S, x: S.i0(x * 3), [(3, 4)]),
    ("i0e", lambda S, x: S.i0e(x * 3), [(3, 4)]),
    ("i1", lambda S, x: S.i1(x * 3), [(3, 4)]),
    ("i1e", lambda S, x: S.i1e(x * 3), [(3, 4)]),
    ("ndtr", lambda S, x: S.ndtr(x * 4), [(3, 4)]),
    ("ndtri", lambda S, x: S.ndtri(unit(x)), [(3, 4)]),
    ("log_ndtr", lambda S, x: S.log_ndtr(x * 10), [(3, 4)]),
    ("softmax", lambda S, x: S.softmax(x, 1), [(3, 4)]),
    ("log_softmax", lambda S, x: S.log_softmax(x, 0), [(3, 4)]),
    ("logsumexp", lambda S, x: S.logsumexp(x, 1, keepdim=True), [(3, 4)]),
    ("sinc", lambda S, x: S.sinc(x), [(3, 4)]),
    ("entr", lambda S, x: S.entr(positive(x)), [(3, 4)]),
    ("round", lambda S, x: S.round(x * 5) + x, [(3, 4)]),
]


def test_every_function_is_in_the_table():
    assert set(graphc.special.__all__) - {c[0] for c in CASES} == set()


@pytest.mark.parametrize("name,fn,shapes", CASES, ids=[c[0] for c in CASES])
def test_special_matches_torch(name, fn, shapes):
    values = [np.random.randn(*s) for s in shapes]
    ours = [graphc.tensor(v, requires_grad=True) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    out, expected = fn(graphc.special, *ours), fn(torch.special, *theirs)
    assert out.dtype.name == str(expected.dtype).removeprefix("torch.")
    np.testing.assert_allclose(out.numpy(force=True), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    w = np.random.randn(*expected.shape)
    (out * graphc.tensor(w)).sum().backward()
    (expected * torch.tensor(w)).sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-8, atol=1e-10)


def test_edge_values_match_torch():
    x = [0.0, -1.0, float("nan"), float("inf")]
    for name, args in (("entr", (x,)), ("xlog1py", ([0.0, 0.0, 1.0, 2.0], [float("nan"), 1.0, -1.0, -2.0])),
                       ("i1", (x,)), ("ndtri", ([0.0, 1.0, 0.5, 2.0],))):
        ours = getattr(graphc.special, name)(*(graphc.tensor(a, dtype=graphc.float64) for a in args))
        theirs = getattr(torch.special, name)(*(torch.tensor(a, dtype=torch.float64) for a in args))
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-12)
    np.testing.assert_allclose(graphc.special.multigammaln(graphc.tensor([0.5, 2.0]), 3).numpy(),
                               torch.special.multigammaln(torch.tensor([0.5, 2.0]), 3).numpy(), rtol=1e-6)
    for lib in (torch, graphc):
        with pytest.raises(RuntimeError, match="p has to be greater than or equal to 1"):
            lib.special.multigammaln(lib.tensor([2.0]), 0)


def test_compiled_special_matches_torch():
    def fn(S, x):
        return S.log_ndtr(x) + S.xlog1py(x, x.abs()) - S.i0e(x) * S.entr(x.abs()) + S.ndtr(x)
    compiled = graphc.compile(lambda x: fn(graphc.special, x), backend="numpy")
    for n in (5, 7):
        v = np.random.randn(n)
        ours, theirs = graphc.tensor(v, requires_grad=True), torch.tensor(v, requires_grad=True)
        out, expected = compiled(ours), fn(torch.special, theirs)
        np.testing.assert_allclose(out.detach().numpy(), expected.detach().numpy(), rtol=1e-10)
        out.sum().backward()
        expected.sum().backward()
        np.testing.assert_allclose(ours.grad.numpy(), theirs.grad.numpy(), rtol=1e-8, atol=1e-12)
    assert compiled.num_compiles == 1
