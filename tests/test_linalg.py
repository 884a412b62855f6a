"""graphc.linalg and torch's top-level aliases against torch: values and gradients in float64 on batched inputs,
results that are unique only up to signs through sign-free functions of them, errors, and a compiled call."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

import graphc


def spd(L, x):
    """A symmetric positive-definite batch built from x (the gradient flows through the construction)."""
    return x @ x.mT + x.shape[-1] * L.eye(x.shape[-1], dtype=x.dtype)


def sym(L, x):
    return x + x.mT


def assert_close(ours, theirs, rtol: float, atol: float) -> None:
    """float64 comparison (conftest's assert_close compares in float32)."""
    expected = theirs.detach().numpy()
    assert tuple(ours.shape) == expected.shape
    np.testing.assert_allclose(ours.numpy(force=True), expected, rtol=rtol, atol=atol)


def outputs(result) -> tuple:
    return tuple(result) if isinstance(result, tuple) else (result,)


# (name, fn(L, *inputs) with L = graphc or torch, input shapes)
CASES = [
    ("vector_norm", lambda L, x: L.linalg.vector_norm(x), [(3, 4)]),
    ("vector_norm_ord3_dim", lambda L, x: L.linalg.vector_norm(x, 3, dim=(0, 2), keepdim=True), [(2, 3, 4)]),
    ("vector_norm_inf", lambda L, x: L.linalg.vector_norm(x, math.inf, dim=-1), [(3, 4)]),
    ("vector_norm_ord0", lambda L, x: L.linalg.vector_norm(x, 0), [(3, 4)]),
    ("vector_norm_ord1", lambda L, x: L.linalg.vector_norm(x, 1, dim=0), [(3, 4)]),
    ("vector_norm_half", lambda L, x: L.linalg.vector_norm(x, 0.5, dim=1), [(3, 4)]),
    *[(f"matrix_norm_{o}", (lambda o: lambda L, x: L.linalg.matrix_norm(x, o))(o), [(2, 4, 3)])
      for o in ("fro", "nuc", 1, -1, 2, -2, math.inf, -math.inf)],
    ("matrix_norm_dims_keepdim", lambda L, x: L.linalg.matrix_norm(x, 1, dim=(2, 0), keepdim=True), [(3, 2, 4)]),
    ("matrix_norm_nuc_dims", lambda L, x: L.linalg.matrix_norm(x, "nuc", dim=(0, 2)), [(3, 2, 4)]),
    ("norm_default", lambda L, x: L.linalg.norm(x), [(2, 3, 4)]),
    ("norm_matrix_ord", lambda L, x: L.linalg.norm(x, math.inf), [(3, 4)]),
    ("norm_vector_ord", lambda L, x: L.linalg.norm(x, 3), [(5,)]),
    ("norm_dim_int", lambda L, x: L.linalg.norm(x, dim=1), [(3, 4)]),
    ("norm_dim_pair", lambda L, x: L.linalg.norm(x, 2, dim=(-2, -1)), [(2, 3, 4)]),
    ("inv", lambda L, x: L.linalg.inv(x), [(2, 4, 4)]),
    ("inverse", lambda L, x: L.inverse(x), [(3, 3)]),
    ("det", lambda L, x: L.linalg.det(x), [(3, 4, 4)]),
    ("det_method", lambda L, x: x.det(), [(3, 3)]),
    ("slogdet", lambda L, x: L.linalg.slogdet(x), [(3, 4, 4)]),
    ("logdet", lambda L, x: L.logdet(spd(L, x)), [(2, 3, 3)]),
    ("logdet_negative", lambda L, x: L.logdet(-spd(L, x)[..., :3, :3]), [(3, 3)]),
    ("solve_matrix", lambda L, a, b: L.linalg.solve(a, b), [(2, 3, 3), (2, 3, 4)]),
    ("solve_vector", lambda L, a, b: L.linalg.solve(a, b), [(2, 3, 3), (3,)]),
    ("solve_batch_vector", lambda L, a, b: L.linalg.solve(a, b), [(2, 3, 3), (2, 3)]),
    ("solve_broadcast", lambda L, a, b: L.linalg.solve(a, b), [(3, 3), (2, 3, 2)]),
    ("solve_right", lambda L, a, b: L.linalg.solve(a, b, left=False), [(3, 3), (2, 3)]),
    ("solve_triangular", lambda L, a, b: L.linalg.solve_triangular(a + 3 * L.eye(3, dtype=a.dtype), b, upper=True),
     [(2, 3, 3), (3, 2)]),
    ("solve_triangular_right_unit", lambda L, a, b: L.linalg.solve_triangular(a, b, upper=False, left=False,
                                                                               unitriangular=True), [(3, 3), (2, 3)]),
    ("cholesky", lambda L, x: L.linalg.cholesky(spd(L, x)), [(2, 4, 4)]),
    ("cholesky_upper", lambda L, x: L.linalg.cholesky(spd(L, x), upper=True), [(3, 3)]),
    ("cholesky_legacy", lambda L, x: L.cholesky(spd(L, x)), [(3, 3)]),
    ("cholesky_lower_only", lambda L, x: L.linalg.cholesky(L.tril(spd(L, x))), [(3, 3)]),
    ("qr", lambda L, x: L.linalg.qr(x), [(2, 5, 3)]),
    ("qr_square", lambda L, x: L.linalg.qr(x), [(4, 4)]),
    ("qr_r", lambda L, x: L.linalg.qr(x, mode="r").R.detach(), [(4, 3)]),
    ("qr_complete", lambda L, x: L.linalg.qr(x, mode="complete"), [(4, 4)]),
    ("svdvals", lambda L, x: L.linalg.svdvals(x), [(2, 4, 3)]),
    ("svd_product", lambda L, x: (lambda u, s, vh: (u * s.unsqueeze(-2)) @ vh)(*L.linalg.svd(x, False)),
     [(2, 4, 3)]),
    ("svd_tall", lambda L, x: (lambda u, s, vh: (u * u, s, vh * vh))(*L.linalg.svd(x, False)), [(2, 5, 3)]),
    ("svd_wide", lambda L, x: (lambda u, s, vh: (u * u, s, vh * vh))(*L.linalg.svd(x, False)), [(3, 5)]),
    ("svd_square_full", lambda L, x: (lambda u, s, vh: (u[..., :1] @ vh[..., :1, :], s))(*L.linalg.svd(x)),
     [(4, 4)]),
    ("svd_legacy_values", lambda L, x: L.svd(x, some=False, compute_uv=False), [(2, 4, 3)]),
    ("svd_legacy", lambda L, x: (lambda u, s, v: (u @ v.mT, s))(*L.svd(x)), [(5, 3)]),
    ("eigh", lambda L, x: (lambda w, v: (w, v * v))(*L.linalg.eigh(sym(L, x))), [(2, 4, 4)]),
    ("eigh_upper", lambda L, x: (lambda w, v: (w, v * v))(*L.linalg.eigh(sym(L, x), UPLO="U")), [(4, 4)]),
    ("eigh_reconstruct", lambda L, x: (lambda w, v: (v * w.exp().unsqueeze(-2)) @ v.mT)(*L.linalg.eigh(sym(L, x))),
     [(3, 3)]),
    ("eigvalsh", lambda L, x: L.linalg.eigvalsh(x), [(2, 3, 3)]),
    ("pinv_tall", lambda L, x: L.linalg.pinv(x), [(2, 5, 3)]),
    ("pinv_wide", lambda L, x: L.linalg.pinv(x), [(3, 5)]),
    ("pinv_hermitian", lambda L, x: L.linalg.pinv(sym(L, x), hermitian=True), [(4, 4)]),
    ("pinverse", lambda L, x: L.pinverse(x), [(4, 2)]),
    ("lstsq", lambda L, a, b: L.linalg.lstsq(a, b).solution, [(5, 3), (5, 2)]),
    ("lstsq_batch", lambda L, a, b: L.linalg.lstsq(a, b).solution, [(2, 5, 3), (2, 5, 1)]),
    ("cross", lambda L, a, b: L.linalg.cross(a, b), [(4, 3), (1, 3)]),
    ("cross_dim", lambda L, a, b: L.linalg.cross(a, b, dim=0), [(3, 2), (3, 2)]),
    ("cross_legacy", lambda L, a, b: L.cross(a, b, dim=1), [(2, 3), (2, 3)]),
    ("multi_dot", lambda L, a, b, c: L.linalg.multi_dot([a, b, c]), [(3, 4), (4, 5), (5, 2)]),
    ("multi_dot_vectors", lambda L, a, b, c: L.linalg.multi_dot([a, b, c]), [(4,), (4, 5), (5,)]),
    ("matrix_power_3", lambda L, x: L.linalg.matrix_power(x, 3), [(2, 3, 3)]),
    ("matrix_power_0", lambda L, x: L.linalg.matrix_power(x, 0) + x, [(3, 3)]),
    ("matrix_power_neg", lambda L, x: L.matrix_power(x, -2), [(3, 3)]),
    ("diagonal", lambda L, x: L.linalg.diagonal(x, offset=1), [(2, 3, 4)]),
    ("vecdot", lambda L, a, b: L.linalg.vecdot(a, b, dim=0), [(3, 4), (3, 1)]),
]


@pytest.mark.filterwarnings("ignore:torch.cholesky is deprecated")
@pytest.mark.parametrize("name,fn,shapes", CASES, ids=[c[0] for c in CASES])
def test_linalg_matches_torch(name, fn, shapes):
    values = [np.random.randn(*s) for s in shapes]
    ours = [graphc.tensor(v, requires_grad=True) for v in values]
    theirs = [torch.tensor(v, requires_grad=True) for v in values]
    out, expected = outputs(fn(graphc, *ours)), outputs(fn(torch, *theirs))
    assert len(out) == len(expected)
    loss, loss_t = 0, 0
    for o, e in zip(out, expected):
        assert o.dtype.name == str(e.dtype).removeprefix("torch.")
        assert_close(o, e, rtol=1e-7, atol=1e-9)
        if e.requires_grad:
            w = np.random.randn(*e.shape)
            loss, loss_t = loss + (o * graphc.tensor(w)).sum(), loss_t + (e * torch.tensor(w)).sum()
    if isinstance(loss_t, int):
        return
    loss.backward()
    loss_t.backward()
    for a, b in zip(ours, theirs):
        if b.grad is None:
            assert a.grad is None or not a.grad.numpy().any()
        else:
            assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-8)


SINGULAR = np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 2.0], [2.0, 4.0]]])
# (fn(L), key words of torch's message); each raises torch's error type
ERRORS = [
    (lambda L: L.linalg.inv(L.tensor(SINGULAR)), "(Batch element 1): The diagonal element 2 is zero"),
    (lambda L: L.linalg.inv(L.zeros(2, 2)), "The diagonal element 1 is zero"),
    (lambda L: L.linalg.inv(L.ones(2, 3)), "A must be batches of square matrices, but they are 2 by 3 matrices"),
    (lambda L: L.linalg.inv(L.ones(3)), "The input tensor A must have at least 2 dimensions"),
    (lambda L: L.linalg.det(L.ones(2, 2, dtype=L.int64)), "Expected a floating point or complex tensor as input"),
    (lambda L: L.linalg.cholesky(-L.eye(3)), "the leading minor of order 1 is not positive-definite"),
    (lambda L: L.linalg.cholesky(L.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 2.0], [2.0, 1.0]]])),
     "(Batch element 1): The factorization could not be completed because the input is not positive-definite "
     "(the leading minor of order 2"),
    (lambda L: L.linalg.solve(L.zeros(2, 2), L.ones(2)), "The solver failed because the input matrix is singular"),
    (lambda L: L.linalg.matrix_norm(L.ones(3)), "The input tensor A must have at least 2 dimensions"),
    (lambda L: L.linalg.matrix_norm(L.ones(2, 2), 3), "Order 3 not supported"),
    (lambda L: L.linalg.vector_norm(L.ones(2, dtype=L.int64)), "Expected a floating point or complex tensor"),
    (lambda L: L.linalg.norm(L.ones(2, 2, 2), 2), "the input must be 1D or 2D. Got 3D"),
    (lambda L: L.linalg.cross(L.ones(2, 2), L.ones(2, 2)), "must have length 3. Got 2 and 2"),
    (lambda L: L.linalg.qr(L.ones(2, 2), mode="x"), "qr received unrecognized mode 'x'"),
    (lambda L: L.linalg.multi_dot([L.ones(2, 2)]), "expected at least 2 tensors but got 1"),
    (lambda L: L.linalg.qr(L.randn(3, 2, requires_grad=True), mode="r").R.sum().backward(),
     "The derivative of linalg.qr depends on Q, which is not computed when mode='r'"),
]


@pytest.mark.parametrize("fn,words", ERRORS)
def test_linalg_errors_match_torch(fn, words):
    with pytest.raises(Exception) as expected:
        fn(torch)
    with pytest.raises(type(expected.value).__mro__[1] if type(expected.value).__name__ == "_LinAlgError"
                       else type(expected.value), match=re.escape(words)) as ours:
        fn(graphc)
    assert words in str(expected.value)
    assert "test_linalg.py" in str(ours.value)  # the user's line
    if type(expected.value).__name__ == "_LinAlgError":
        assert isinstance(ours.value, graphc.linalg.LinAlgError)


def gaussian_nll(L, x, a, mu):
    """The negative log-likelihood of x under N(mu, A A^T + I), as Gaussian-process and flow code writes it."""
    cov = a @ a.mT + L.eye(a.shape[-1], dtype=a.dtype)
    chol = L.linalg.cholesky(cov)
    diff = (x - mu).unsqueeze(-1)
    z = L.linalg.solve(chol, diff).squeeze(-1)
    return 0.5 * (z * z).sum(-1).mean() + L.log(L.linalg.diagonal(chol)).sum() + 0.5 * L.logdet(cov) * 0


def lamb_trust_ratio(L, w, g):
    """LAMB's per-layer trust ratio ||w|| / ||g|| with torch.linalg.vector_norm, and global-norm clipping."""
    total = L.linalg.vector_norm(L.stack([L.linalg.vector_norm(g), L.linalg.norm(w)]))
    ratio = L.linalg.vector_norm(w) / L.linalg.vector_norm(g)
    return w - 0.1 * ratio * g / L.clamp(total, min=1.0)


@pytest.mark.parametrize("program,shapes,batched", [(gaussian_nll, [(8, 3), (3, 3), (3,)], 1),
                                                    (lamb_trust_ratio, [(4, 5), (4, 5)], 2)])
def test_compiled_linalg_programs_match_torch(program, shapes, batched):
    """Compiled (numpy backend) at two batch sizes (of the first `batched` inputs): values and gradients as torch's."""
    compiled = graphc.compile(lambda *xs: program(graphc, *xs), backend="numpy")
    for grow in (0, 2):
        values = [np.random.randn(*((s[0] + grow,) + s[1:] if i < batched else s)) for i, s in enumerate(shapes)]
        ours = [graphc.tensor(v, requires_grad=True) for v in values]
        theirs = [torch.tensor(v, requires_grad=True) for v in values]
        out, expected = compiled(*ours), program(torch, *theirs)
        assert_close(out, expected, rtol=1e-7, atol=1e-9)
        w = np.random.randn(*expected.shape)
        (out * graphc.tensor(w)).sum().backward()
        (expected * torch.tensor(w)).sum().backward()
        for a, b in zip(ours, theirs):
            assert_close(a.grad, b.grad, rtol=1e-6, atol=1e-8)
