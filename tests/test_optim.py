"""Optimizers against torch.optim: same parameters and gradients give the same updates and state, step by step."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_close, train_compiled_alongside_torch

import graphc
from graphc import optim

SHAPES = [(4, 3), (3,), (2, 2, 2)]
CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.05, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.05, weight_decay=0.1, amsgrad=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.05, weight_decay=0.1, maximize=True)),
    ("AdamW", dict(lr=0.05, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.5, eps=1e-8)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1, maximize=True)),
    ("Adamax", dict()),
    ("Adamax", dict(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)),
    ("NAdam", dict()),
    ("NAdam", dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1, momentum_decay=0.01, maximize=True)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict(lr=0.01, betas=(0.9, 0.9))),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict(weight_decay=0.1, maximize=True)),
    ("Rprop", dict()),
    ("Rprop", dict(lr=0.1, etas=(0.3, 1.5), step_sizes=(0.01, 0.2), maximize=True)),
    ("ASGD", dict()),
    ("ASGD", dict(lr=0.05, lambd=0.01, alpha=0.5, t0=2.0, weight_decay=0.1)),
]


def make_params(rng):
    arrays = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    return ([graphc.tensor(a, requires_grad=True) for a in arrays],
            [torch.tensor(a, requires_grad=True) for a in arrays])


def step_both(rng, g_opt, t_opt, g_params, t_params, skip=None):
    """One step of each optimizer with the same random gradients (parameter `skip` gets none)."""
    for i, (gp, tp) in enumerate(zip(g_params, t_params)):
        grad = None if i == skip else rng.standard_normal(gp.shape).astype(tp.detach().numpy().dtype)
        gp.grad = None if grad is None else graphc.tensor(grad)
        tp.grad = None if grad is None else torch.tensor(grad)
    g_opt.step()
    t_opt.step()


# Dividing by sqrt of a running average magnifies one-ulp differences from torch's fused CPU kernels
TOLERANCES = {"RMSprop": (1e-5, 1e-6), "Adadelta": (1e-5, 1e-6)}


def assert_same(g_opt, t_opt, g_params, t_params, rtol=1e-6, atol=1e-7):
    for gp, tp in zip(g_params, t_params):
        assert_close(gp.detach(), tp, rtol=rtol, atol=atol)
    g_state, t_state = g_opt.state_dict()["state"], t_opt.state_dict()["state"]
    assert g_state.keys() == t_state.keys()
    for index, t_entry in t_state.items():
        assert g_state[index].keys() == t_entry.keys()
        for key, value in t_entry.items():
            assert_close(g_state[index][key], value, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{'-'.join(k)}" for n, k in CONFIGS])
def test_matches_torch(name, kwargs):
    rng = np.random.default_rng(1)
    g_params, t_params = make_params(rng)
    g_opt, t_opt = getattr(optim, name)(g_params, **kwargs), getattr(torch.optim, name)(t_params, **kwargs)
    for step in range(6):
        step_both(rng, g_opt, t_opt, g_params, t_params, skip=1 if step == 2 else None)
        assert_same(g_opt, t_opt, g_params, t_params, *TOLERANCES.get(name, ()))


def test_centered_rmsprop_matches_torch_in_float64():
    """Centered RMSprop divides by sqrt(E[g^2] - E[g]^2), which magnifies float32 rounding (one ulp apart from torch's
    kernels); in float64 the two agree to rounding."""
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s) for s in SHAPES]
    g_params = [graphc.tensor(a, requires_grad=True) for a in arrays]
    t_params = [torch.tensor(a, requires_grad=True) for a in arrays]
    kwargs = dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.9, centered=True)
    g_opt, t_opt = optim.RMSprop(g_params, **kwargs), torch.optim.RMSprop(t_params, **kwargs)
    for _ in range(6):
        step_both(rng, g_opt, t_opt, g_params, t_params)
    for gp, tp in zip(g_params, t_params):
        np.testing.assert_allclose(gp.detach().numpy(), tp.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert g_opt.state[g_params[0]].keys() == t_opt.state[t_params[0]].keys()


def test_param_groups_have_their_own_hyperparameters():
    rng = np.random.default_rng(2)
    g_params, t_params = make_params(rng)
    g_opt = optim.SGD([{"params": g_params[:1]}, {"params": g_params[1:], "lr": 0.5}], lr=0.1, momentum=0.5)
    t_opt = torch.optim.SGD([{"params": t_params[:1]}, {"params": t_params[1:], "lr": 0.5}], lr=0.1, momentum=0.5)
    for _ in range(3):
        step_both(rng, g_opt, t_opt, g_params, t_params)
    assert_same(g_opt, t_opt, g_params, t_params)
    assert [g["lr"] for g in g_opt.param_groups] == [0.1, 0.5]


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9)), ("Adam", dict(lr=0.05))])
def test_hyperparameter_changes_mid_run_take_effect(name, kwargs):
    """Schedulers and users edit param_groups between steps (lr, betas, momentum); the next step uses the new value."""
    rng = np.random.default_rng(3)
    g_params, t_params = make_params(rng)
    g_opt, t_opt = getattr(optim, name)(g_params, **kwargs), getattr(torch.optim, name)(t_params, **kwargs)
    for step in range(5):
        if step == 2:
            for group in g_opt.param_groups + t_opt.param_groups:
                group["lr"] *= 0.1
                group["weight_decay"] = 0.05
                if name == "Adam":
                    group["betas"] = (0.8, 0.95)
                else:
                    group["momentum"] = 0.5
        step_both(rng, g_opt, t_opt, g_params, t_params)
        assert_same(g_opt, t_opt, g_params, t_params)


def test_zero_grad():
    p = graphc.ones(3, requires_grad=True)
    opt = optim.SGD([p], lr=0.1)
    p.grad = graphc.ones(3)
    opt.zero_grad(set_to_none=False)
    assert p.grad is not None and p.grad.tolist() == [0.0, 0.0, 0.0]
    opt.zero_grad()
    assert p.grad is None


def test_step_runs_closure_with_grad_enabled():
    p = graphc.tensor([1.0, -2.0], requires_grad=True)
    opt = optim.SGD([p], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with graphc.no_grad():
        loss = opt.step(closure)
    assert loss.item() == 5.0
    assert p.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("name,kwargs", [CONFIGS[3], CONFIGS[6]], ids=["SGD", "Adam"])
def test_state_dict_round_trip_continues_identically(name, kwargs, tmp_path):
    """Train, checkpoint through graphc.save/load, resume in a fresh optimizer: it tracks torch from there on."""
    rng = np.random.default_rng(3)
    g_params, t_params = make_params(rng)
    g_opt, t_opt = getattr(optim, name)(g_params, **kwargs), getattr(torch.optim, name)(t_params, **kwargs)
    for _ in range(3):
        step_both(rng, g_opt, t_opt, g_params, t_params)
    graphc.save(g_opt.state_dict(), tmp_path / "opt.ckpt")
    resumed = getattr(optim, name)(g_params, lr=123.0)
    resumed.load_state_dict(graphc.load(tmp_path / "opt.ckpt"))
    assert resumed.param_groups[0]["lr"] == kwargs["lr"]
    for _ in range(3):
        step_both(rng, resumed, t_opt, g_params, t_params)
    assert_same(resumed, t_opt, g_params, t_params)


LOADED = [("Adam", dict(lr=0.02, amsgrad=True)), CONFIGS[13], CONFIGS[16], CONFIGS[18], CONFIGS[20]]


@pytest.mark.parametrize("name,kwargs", LOADED, ids=[n for n, _ in LOADED])
def test_loads_torch_state_dict(name, kwargs):
    """A torch optimizer's state dict, its tensors converted to graphc, resumes training in graphc."""
    rng = np.random.default_rng(4)
    g_params, t_params = make_params(rng)
    t_opt = getattr(torch.optim, name)(t_params, **kwargs)
    g_opt = getattr(optim, name)(g_params, **kwargs)
    for _ in range(3):
        step_both(rng, g_opt, t_opt, g_params, t_params)
    converted = t_opt.state_dict()
    converted["state"] = {i: {k: graphc.tensor(v.numpy()) for k, v in s.items()} for i, s in converted["state"].items()}
    resumed = getattr(optim, name)(g_params, lr=123.0)
    resumed.load_state_dict(converted)
    assert resumed.param_groups[0]["lr"] == kwargs["lr"]
    for _ in range(3):
        step_both(rng, resumed, t_opt, g_params, t_params)
    assert_same(resumed, t_opt, g_params, t_params, *TOLERANCES.get(name, ()))


def test_loaded_state_is_a_copy():
    p = graphc.ones(2, requires_grad=True)
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = graphc.ones(2)
    opt.step()
    other = optim.SGD([p], lr=0.1, momentum=0.9)
    other.load_state_dict(opt.state_dict())
    other.step()
    assert opt.state[p]["momentum_buffer"].tolist() == [1.0, 1.0]


def test_state_dict_mismatch_raises():
    a, b = graphc.ones(2, requires_grad=True), graphc.ones(2, requires_grad=True)
    saved = optim.Adam([a, b]).state_dict()
    with pytest.raises(ValueError, match="parameter group 0 has 2 parameters in the state dict and 1"):
        optim.Adam([a]).load_state_dict(saved)
    with pytest.raises(ValueError, match="has 1 parameter groups, the optimizer has 2"):
        optim.Adam([{"params": [a]}, {"params": [b]}]).load_state_dict(saved)


@pytest.mark.parametrize("make,message", [
    (lambda p: optim.SGD(p, lr=-1.0), "Invalid learning rate"),
    (lambda p: optim.SGD(p, momentum=-0.5), "Invalid momentum"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "Nesterov"),
    (lambda p: optim.Adam(p, betas=(0.9, 1.0)), "beta at index 1"),
    (lambda p: optim.AdamW(p, eps=-1e-8), "epsilon"),
    (lambda p: optim.Adam([]), "empty parameter list"),
    (lambda p: optim.Adam(p + p), "more than once"),
    (lambda p: optim.Adam([p[0] * 2]), "non-leaf"),
    (lambda p: optim.RMSprop(p, alpha=-0.1), "Invalid alpha value"),
    (lambda p: optim.Adagrad(p, lr_decay=-1.0), "Invalid lr_decay value"),
    (lambda p: optim.Adadelta(p, rho=1.5), "Invalid rho value"),
    (lambda p: optim.Adamax(p, betas=(1.0, 0.9)), "beta parameter at index 0"),
    (lambda p: optim.NAdam(p, momentum_decay=-1.0), "Invalid momentum_decay value"),
    (lambda p: optim.RAdam(p, betas=(0.9, 1.0)), "beta parameter at index 1"),
    (lambda p: optim.Rprop(p, etas=(1.1, 1.2)), "Invalid eta values"),
    (lambda p: optim.ASGD(p, lr=-0.1), "Invalid learning rate"),
])
def test_bad_arguments_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make([graphc.ones(2, requires_grad=True)])


NEW = [("NAdam", dict(lr=0.05)), ("RAdam", dict(lr=0.05, betas=(0.9, 0.9))), ("Rprop", dict(lr=0.05)),
       ("ASGD", dict(lr=0.05, lambd=0.01, t0=2.0, weight_decay=0.1))]


@pytest.mark.parametrize("name,kwargs", NEW, ids=[n for n, _ in NEW])
def test_compiled_step_matches_torch(name, kwargs):
    """The optimizer's state is tensors (no .item()): a compiled training step captures it once and tracks torch."""
    model, tmodel = graphc.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    model.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    opt = getattr(optim, name)(model.parameters(), **kwargs)
    topt = getattr(torch.optim, name)(tmodel.parameters(), **kwargs)
    step = train_compiled_alongside_torch(model, opt, tmodel, topt, np.random.randn(5, 4).astype(np.float32),
                                          steps=7)
    assert step.num_compiles == 1
    for tp, p in zip(tmodel.parameters(), model.parameters()):
        assert_close(p.detach(), tp, rtol=1e-5, atol=1e-6)


def _logistic_lbfgs(lib, **kwargs):
    """A few LBFGS steps of L2-regularised logistic regression (two parameters, one flat vector to LBFGS), in float64:
    near the optimum float32 rounding moves the weights by 1e-4 between any two implementations."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 5))
    y = (x @ rng.standard_normal(5) + 0.3 * rng.standard_normal(64) > 0).astype(np.float64)
    w, b = lib.zeros(5, dtype=lib.float64, requires_grad=True), lib.zeros(1, dtype=lib.float64, requires_grad=True)
    opt = lib.optim.LBFGS([w, b], **kwargs)
    xs, ys = lib.tensor(x), lib.tensor(y)

    def closure():
        opt.zero_grad()
        loss = lib.nn.functional.binary_cross_entropy_with_logits(xs @ w + b, ys) + 0.01 * (w * w).sum()
        loss.backward()
        return loss

    losses = [float(opt.step(closure)) for _ in range(3)]
    return losses, w, b, opt.state[w]


@pytest.mark.parametrize("kwargs", [dict(lr=0.5, max_iter=6), dict(lr=0.3, max_iter=4, history_size=2),
                                    dict(lr=1, max_iter=8, line_search_fn="strong_wolfe")],
                         ids=["fixed-step", "short-history", "strong-wolfe"])
def test_lbfgs_matches_torch(kwargs):
    """torch.optim.LBFGS: the losses each step returns, the parameters, and the iteration and evaluation counts."""
    (gl, gw, gb, gs), (tl, tw, tb, ts) = _logistic_lbfgs(graphc, **kwargs), _logistic_lbfgs(torch, **kwargs)
    np.testing.assert_allclose(gl, tl, rtol=1e-12)
    np.testing.assert_allclose(gw.detach().numpy(), tw.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gb.detach().numpy(), tb.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert (gs["n_iter"], gs["func_evals"]) == (ts["n_iter"], ts["func_evals"])
    assert gl[-1] < gl[0]


def test_lbfgs_refuses_what_torch_refuses():
    for lib in (graphc, torch):
        with pytest.raises(ValueError, match="per-parameter options"):
            lib.optim.LBFGS([{"params": [lib.zeros(2, requires_grad=True)]},
                             {"params": [lib.zeros(2, requires_grad=True)]}])
        w = lib.zeros(2, requires_grad=True)
        opt = lib.optim.LBFGS([w], line_search_fn="backtracking")

        def closure():
            opt.zero_grad()
            loss = ((w - 1) ** 2).sum()
            loss.backward()
            return loss
        with pytest.raises(RuntimeError, match="only 'strong_wolfe' is supported"):
            opt.step(closure)


def _swa_run(lib):
    rng = np.random.default_rng(0)
    model = lib.nn.Sequential(lib.nn.Linear(4, 8), lib.nn.BatchNorm1d(8), lib.nn.ReLU(), lib.nn.Linear(8, 1))
    with lib.no_grad():
        for p in model.parameters():
            p.copy_(lib.tensor(rng.standard_normal(tuple(p.shape)).astype(np.float32)))
    opt = lib.optim.SGD(model.parameters(), lr=0.1)
    swa_utils = lib.optim.swa_utils
    averaged = [swa_utils.AveragedModel(model),
                swa_utils.AveragedModel(model, multi_avg_fn=swa_utils.get_ema_multi_avg_fn(0.9)),
                swa_utils.AveragedModel(model, avg_fn=swa_utils.get_ema_avg_fn(0.8), use_buffers=True)]
    scheduler = swa_utils.SWALR(opt, swa_lr=0.02, anneal_epochs=3, anneal_strategy="cos")
    x = lib.tensor(rng.standard_normal((16, 4)).astype(np.float32))
    y = lib.tensor(rng.standard_normal((16, 1)).astype(np.float32))
    lrs = []
    for _ in range(6):
        opt.zero_grad()
        lib.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        for m in averaged:
            m.update_parameters(model)
        scheduler.step()
        lrs.append(opt.param_groups[0]["lr"])
    swa_utils.update_bn([(x, y)], averaged[0])
    state = [t.detach().numpy().copy() for m in averaged for t in [*m.parameters(), *m.buffers()]]
    return state, lrs, averaged[0](x).detach().numpy()


def test_swa_utils_average_and_anneal_as_torch():
    """AveragedModel as SWA's running mean, an EMA through multi_avg_fn, an EMA of parameters and buffers through
    avg_fn; SWALR's cosine annealing; update_bn's recomputed statistics."""
    (state, lrs, out), (tstate, tlrs, tout) = _swa_run(graphc), _swa_run(torch)
    assert len(state) == len(tstate)
    for a, b in zip(state, tstate):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lrs, tlrs, rtol=1e-12)
    np.testing.assert_allclose(out, tout, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "Adagrad", "Adadelta", "Adamax", "ASGD", "NAdam", "RAdam",
                                  "RMSprop", "Rprop", "LBFGS"])
def test_implementation_flags_are_accepted_and_recorded_as_torch(name):
    """foreach / fused / capturable choose among torch's implementations of the same update: accepted where torch's
    optimizer takes them (nanoGPT's AdamW(fused=...)), recorded in the groups with torch's keys; a flag torch's
    optimizer does not take is a TypeError in both; differentiable=True is refused."""
    import inspect

    accepted = [f for f in ("foreach", "capturable", "differentiable", "fused")
                if f in inspect.signature(getattr(torch.optim, name).__init__).parameters]
    flags = {f: False for f in accepted if f != "differentiable"}
    mine = getattr(graphc.optim, name)([graphc.nn.Parameter(graphc.ones(2))], lr=0.1, **flags)
    theirs = getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(2))], lr=0.1, **flags)
    drop = lambda g: {k: v for k, v in g.items() if k != "params"}
    assert drop(mine.param_groups[0]) == drop(theirs.param_groups[0])
    for flag in {"foreach", "fused"} - set(accepted):
        with pytest.raises(TypeError):
            getattr(torch.optim, name)([torch.nn.Parameter(torch.ones(2))], **{flag: False})
        with pytest.raises(TypeError):
            getattr(graphc.optim, name)([graphc.nn.Parameter(graphc.ones(2))], **{flag: False})
    if "differentiable" in accepted:
        with pytest.raises(NotImplementedError, match="differentiable"):
            getattr(graphc.optim, name)([graphc.nn.Parameter(graphc.ones(2))], differentiable=True)
