"""graphc.autocast and GradScaler against torch.autocast("cpu", dtype=torch.bfloat16) and torch.amp.GradScaler:
output dtypes for every op in the policy, values within bf16 tolerance, gradients, compiled regions, and the
scaler's skip/backoff/growth on planted infs, step by step."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import graphc
import graphc.nn.functional as F

rng = np.random.default_rng(0)
X = rng.standard_normal((4, 8)).astype(np.float32)
W = rng.standard_normal((3, 8)).astype(np.float32)
B = rng.standard_normal(3).astype(np.float32)
Y = np.array([0, 2, 1, 2])
K = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)


def cases(lib, fn):
    """name -> f(a) for one library (graphc or torch, with its functional module fn)."""
    t = lib.tensor
    w, b, y, k = t(W), t(B), t(Y), t(K)
    return {
        "matmul": lambda a: a @ w.T, "bmm": lambda a: lib.bmm(a[None], w.T[None]),
        "einsum": lambda a: lib.einsum("ij,kj->ik", a, w), "linear": lambda a: fn.linear(a, w, b),
        "conv2d": lambda a: fn.conv2d(a.reshape(1, 1, 4, 8), k),
        "sdpa": lambda a: fn.scaled_dot_product_attention(a[None], a[None], a[None]),
        "softmax": lambda a: a.softmax(-1), "log_softmax": lambda a: fn.log_softmax(a, -1),
        "layer_norm": lambda a: fn.layer_norm(a, (8,)), "sum": lambda a: a.sum(), "exp": lambda a: a.exp(),
        "log": lambda a: a.abs().log(), "pow": lambda a: a.pow(2), "logsumexp": lambda a: a.logsumexp(-1),
        "norm": lambda a: a.norm(), "prod": lambda a: a.prod(), "gelu": lambda a: fn.gelu(a),
        "cross_entropy": lambda a: fn.cross_entropy(a[:, :3], y), "mse_loss": lambda a: fn.mse_loss(a, a * 0.5),
        "add_mixed": lambda a: a + t(X),
    }


@pytest.mark.parametrize("name", list(cases(graphc, F)))
@pytest.mark.parametrize("input_dtype", ["float32", "bfloat16"])
def test_output_dtype_and_values_match_torch_cpu_autocast(name, input_dtype):
    ours = cases(graphc, F)[name]
    theirs = cases(torch, torch.nn.functional)[name]
    a = graphc.tensor(X).to(getattr(graphc, input_dtype))
    ta = torch.tensor(X).to(getattr(torch, input_dtype))
    with graphc.autocast("cpu", dtype=graphc.bfloat16):
        out = ours(a)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        expected = theirs(ta)
    assert out.dtype.name == str(expected.dtype).removeprefix("torch."), name
    np.testing.assert_allclose(out.float().numpy(), expected.float().numpy(), rtol=3e-2, atol=3e-2)


def test_gradients_flow_back_in_the_parameters_dtype():
    w = graphc.tensor(W, requires_grad=True)
    tw = torch.tensor(W, requires_grad=True)
    with graphc.autocast("cpu"):
        loss = F.cross_entropy(graphc.tensor(X) @ w.T, graphc.tensor(Y[:4] % 3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tloss = torch.nn.functional.cross_entropy(torch.tensor(X) @ tw.T, torch.tensor(Y[:4] % 3))
    assert loss.dtype is graphc.float32 and tloss.dtype == torch.float32
    loss.backward()
    tloss.backward()
    assert w.grad.dtype is graphc.float32
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy(), rtol=3e-2, atol=3e-2)


@pytest.mark.parametrize("compiled", [False, True])
def test_a_float32_residual_around_an_autocast_product_backpropagates(compiled):
    """x + linear(x) with the linear in bfloat16 (a pre-norm transformer's residual stream): the add's gradient
    for its bfloat16 operand is cast to bfloat16 on the way back, as torch's engine does."""
    def step(lib, x, w):
        with lib.autocast("cpu", dtype=lib.bfloat16):
            h = lib.relu(x @ w.T @ w)
        loss = (x + h).square().mean()
        loss.backward()
        return loss
    grads = []
    for lib in (graphc, torch):
        x, w = lib.tensor(X, requires_grad=True), lib.tensor(W, requires_grad=True)
        run = graphc.compile(lambda x, w: step(graphc, x, w)) if compiled and lib is graphc else \
            (lambda x, w, lib=lib: step(lib, x, w))
        for _ in range(2):
            x.grad = w.grad = None
            run(x, w)
        grads.append((x.grad, w.grad))
    (gx, gw), (tx, tw) = grads
    assert gx.dtype is gw.dtype is graphc.float32 and tx.dtype == tw.dtype == torch.float32
    np.testing.assert_allclose(gx.numpy(), tx.numpy(), rtol=3e-2, atol=3e-2)
    np.testing.assert_allclose(gw.numpy(), tw.numpy(), rtol=3e-2, atol=3e-2)


def test_disabled_and_nested_regions_and_the_decorator():
    a = graphc.tensor(X)
    with graphc.autocast("cpu"):
        with graphc.autocast("cpu", enabled=False):
            assert (a @ a.T).dtype is graphc.float32
        assert (a @ a.T).dtype is graphc.bfloat16
    assert (a @ a.T).dtype is graphc.float32

    @graphc.autocast("cpu")
    def f(x):
        return x @ x.T
    assert f(a).dtype is graphc.bfloat16
    with graphc.amp.autocast("cuda"):  # a CUDA region leaves CPU tensors alone, as in torch
        assert (a @ a.T).dtype is graphc.float32
    with pytest.raises(ValueError, match="float16 or bfloat16"):
        graphc.autocast("cpu", dtype=graphc.float64)


@pytest.mark.parametrize("backend", ["numpy"])  # Triton's interpreter cannot hold bfloat16 (graphc refuses it)
def test_compiled_autocast_region_equals_eager_and_fuses_its_casts(backend):
    def f(x, w, b):
        with graphc.autocast("cpu"):
            return F.gelu(F.linear(x, w, b)).sum(-1)
    args = (graphc.tensor(X), graphc.tensor(W), graphc.tensor(B))
    compiled = graphc.compile(f, backend=backend)
    expected = f(*args)
    out = compiled(*args)
    assert out.dtype is expected.dtype is graphc.bfloat16
    np.testing.assert_allclose(out.float().numpy(), expected.float().numpy(), rtol=2e-2, atol=2e-2)
    compiled(*args)
    assert compiled.num_traces == 1
    ops = [n.op.name for g in graphc.explain(f, *args).graphs for n in g.nodes if n.kind == "op"]
    assert "cast" in ops
    plain = graphc.compile(lambda x, w, b: F.gelu(F.linear(x, w, b)).sum(-1), backend=backend)
    assert plain(*args).dtype is graphc.float32  # same code outside a region: a separate plan


def planted_run(lib, scaler_cls, steps: list[bool]) -> list[tuple[float, bool, list]]:
    """Train a linear layer with a GradScaler; steps[i] plants an inf in the loss's gradient. Per step: (scale
    after update, whether the weights changed, weights)."""
    torch.manual_seed(0)
    w = lib.tensor(W.copy(), requires_grad=True)
    opt = (graphc.optim.SGD if lib is graphc else torch.optim.SGD)([w], lr=0.1)
    scaler = scaler_cls("cpu", init_scale=8.0, growth_interval=2)
    out = []
    for inf in steps:
        opt.zero_grad()
        loss = ((lib.tensor(X) @ w.T) ** 2).mean()
        if inf:
            loss = loss * lib.tensor(float("inf"))
        before = w.detach().numpy().copy()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        out.append((scaler.get_scale(), not np.array_equal(before, w.detach().numpy()), w.detach().numpy().copy()))
    return out


def test_grad_scaler_matches_torch_step_by_step_on_planted_infs():
    steps = [False, True, False, False, False, True, True, False]
    ours = planted_run(graphc, graphc.amp.GradScaler, steps)
    theirs = planted_run(torch, torch.amp.GradScaler, steps)
    for (s, moved, w), (ts, tmoved, tw) in zip(ours, theirs):
        assert s == ts and moved == tmoved
        np.testing.assert_allclose(w, tw, rtol=1e-5, atol=1e-6)


def test_grad_scaler_state_unscale_and_errors():
    w = graphc.tensor(W.copy(), requires_grad=True)
    opt = graphc.optim.SGD([w], lr=0.1)
    scaler = graphc.amp.GradScaler("cpu", init_scale=4.0)
    scaler.scale((graphc.tensor(X) @ w.T).sum()).backward()
    scaled = w.grad.numpy().copy()
    scaler.unscale_(opt)
    np.testing.assert_allclose(w.grad.numpy(), scaled / 4.0)
    with pytest.raises(RuntimeError, match="already been called on this optimizer"):
        scaler.unscale_(opt)
    scaler.step(opt)
    scaler.update()
    torch_scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    assert set(scaler.state_dict()) == set(torch_scaler.state_dict())
    other = graphc.amp.GradScaler("cpu")
    other.load_state_dict(scaler.state_dict())
    assert other.get_scale() == scaler.get_scale()


def test_bf16_autocast_training_reaches_the_fp32_accuracy_within_a_point(tmp_path):
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
    import train_digits_mlp

    fp32 = train_digits_mlp.main(["--compile", "--checkpoint", str(tmp_path / "a.ckpt")])
    bf16 = train_digits_mlp.main(["--compile", "--autocast", "--checkpoint", str(tmp_path / "b.ckpt")])
    assert fp32 >= 0.95 and abs(bf16 - fp32) <= 0.01, (fp32, bf16)


def test_compiled_step_with_grad_scaler_matches_torch_with_one_graph_break():
    """A training step with GradScaler compiled: torch's losses and scales through a planted overflow; the inf
    check reads one value for all gradients, so the step has one graph break (torch.compile has one there too)."""
    def run(lib, compiled):
        m = lib.nn.Linear(3, 2)
        with lib.no_grad():
            m.weight.copy_(lib.tensor(W[:2, :3].copy()))
            m.bias.zero_()
        opt = lib.optim.SGD(m.parameters(), lr=0.1)
        scaler = lib.amp.GradScaler("cpu", init_scale=4.0, growth_interval=2)

        def step(x):
            opt.zero_grad()
            loss = m(x).pow(2).mean()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            return loss
        fn = graphc.compile(step) if compiled else step
        out = [(fn(lib.ones(2, 3) * (1e38 if i == 2 else 1.0)).item(), scaler.get_scale()) for i in range(6)]
        return out, fn
    (ours, fn), (theirs, _) = run(graphc, True), run(torch, False)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
    assert len(fn.last_breaks) == 1
