"""graphc.optim.lr_scheduler against torch.optim.lr_scheduler: the same schedulers stepped side by side for many steps
give the same learning rates (and momenta) float for float, alone, chained and in sequence; state dicts round-trip
and torch's load; a compiled training step follows the schedule."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import assert_close, train_compiled_alongside_torch

import graphc
from graphc.optim import lr_scheduler as gs

ts = torch.optim.lr_scheduler


def optimizers(name: str = "SGD", groups: int = 2, **kwargs):
    """(graphc optimizer, torch optimizer) over one tiny parameter per group, group i with lr 0.1 * (i + 1)."""
    kwargs = kwargs or ({"lr": 0.1, "momentum": 0.9} if name == "SGD" else {"lr": 0.1})
    g = getattr(graphc.optim, name)([{"params": [graphc.zeros(1, requires_grad=True)], "lr": 0.1 * (i + 1)}
                                     for i in range(groups)], **kwargs)
    t = getattr(torch.optim, name)([{"params": [torch.zeros(1, requires_grad=True)], "lr": 0.1 * (i + 1)}
                                    for i in range(groups)], **kwargs)
    return g, t


def hyper(opt, key: str) -> list:
    return [group[key] for group in opt.param_groups]


def assert_same_schedule(g_opt, t_opt, g_sched, t_sched, steps: int, metrics=None, extra=("momentum", "betas")):
    """Step both `steps` times (optimizer first, as torch wants), comparing every group's lr exactly."""
    assert g_sched.get_last_lr() == t_sched.get_last_lr() == hyper(g_opt, "lr")
    for i in range(steps):
        g_opt.step()
        t_opt.step()
        if metrics is None:
            g_sched.step()
            t_sched.step()
        else:
            g_sched.step(metrics[i])
            t_sched.step(metrics[i])
        assert hyper(g_opt, "lr") == hyper(t_opt, "lr"), f"step {i}"
        assert g_sched.get_last_lr() == t_sched.get_last_lr()
        for key in extra:
            if key in t_opt.param_groups[0]:
                assert hyper(g_opt, key) == hyper(t_opt, key), f"{key} at step {i}"


SCHEDULERS = [
    ("StepLR", lambda m, o: m.StepLR(o, step_size=3, gamma=0.5)),
    ("MultiStepLR", lambda m, o: m.MultiStepLR(o, milestones=[2, 5, 5, 9], gamma=0.3)),
    ("ExponentialLR", lambda m, o: m.ExponentialLR(o, gamma=0.9)),
    ("CosineAnnealingLR", lambda m, o: m.CosineAnnealingLR(o, T_max=7, eta_min=0.01)),
    ("LambdaLR", lambda m, o: m.LambdaLR(o, lambda epoch: 0.95 ** epoch)),
    ("LambdaLR-per-group", lambda m, o: m.LambdaLR(o, [lambda e: 1 / (e + 1), lambda e: min(1.0, (e + 1) / 4)])),
    ("MultiplicativeLR", lambda m, o: m.MultiplicativeLR(o, lambda epoch: 0.97)),
    ("LinearLR", lambda m, o: m.LinearLR(o, start_factor=0.25, total_iters=6)),
    ("LinearLR-decay", lambda m, o: m.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=10)),
    ("ConstantLR", lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=4)),
    ("PolynomialLR", lambda m, o: m.PolynomialLR(o, total_iters=8, power=2.0)),
    ("CosineAnnealingWarmRestarts", lambda m, o: m.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2, eta_min=0.01)),
    ("CyclicLR-triangular2", lambda m, o: m.CyclicLR(o, base_lr=0.01, max_lr=[0.1, 0.2], step_size_up=3,
                                                     step_size_down=5, mode="triangular2")),
    ("CyclicLR-exp_range", lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=4, mode="exp_range", gamma=0.9)),
    ("CyclicLR-scale_fn", lambda m, o: m.CyclicLR(o, 0.01, 0.1, step_size_up=2, scale_fn=lambda x: 0.9 ** x,
                                                  scale_mode="iterations", cycle_momentum=False)),
    ("OneCycleLR", lambda m, o: m.OneCycleLR(o, max_lr=[0.5, 1.0], total_steps=25)),
    ("OneCycleLR-linear-3phase", lambda m, o: m.OneCycleLR(o, max_lr=0.5, epochs=5, steps_per_epoch=5,
                                                           anneal_strategy="linear", three_phase=True)),
    ("SequentialLR", lambda m, o: m.SequentialLR(o, [m.LinearLR(o, start_factor=0.1, total_iters=4),
                                                     m.CosineAnnealingLR(o, T_max=10)], milestones=[4])),
    ("SequentialLR-3", lambda m, o: m.SequentialLR(o, [m.ConstantLR(o, factor=0.5, total_iters=2),
                                                       m.ExponentialLR(o, gamma=0.9),
                                                       m.StepLR(o, step_size=2)], milestones=[3, 8])),
    ("ChainedScheduler", lambda m, o: m.ChainedScheduler([m.LinearLR(o, start_factor=0.5, total_iters=3),
                                                          m.ExponentialLR(o, gamma=0.9)])),
]


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
@pytest.mark.parametrize("make", [m for _, m in SCHEDULERS], ids=[n for n, _ in SCHEDULERS])
def test_schedule_matches_torch(make, optimizer):
    g_opt, t_opt = optimizers(optimizer)
    assert_same_schedule(g_opt, t_opt, make(gs, g_opt), make(ts, t_opt), steps=25)


def test_cosine_annealing_past_t_max_and_chained_with_step_lr():
    """Two schedulers on one optimizer compose through the chainable recurrences, past the cosine's period."""
    g_opt, t_opt = optimizers()
    g = [gs.CosineAnnealingLR(g_opt, T_max=5), gs.StepLR(g_opt, step_size=4, gamma=0.5)]
    t = [ts.CosineAnnealingLR(t_opt, T_max=5), ts.StepLR(t_opt, step_size=4, gamma=0.5)]
    for i in range(30):
        g_opt.step()
        t_opt.step()
        for a, b in zip(g, t):
            a.step()
            b.step()
        assert hyper(g_opt, "lr") == hyper(t_opt, "lr"), f"step {i}"


def test_reduce_lr_on_plateau_matches_torch():
    for kwargs in (dict(patience=2, factor=0.5), dict(mode="max", threshold_mode="abs", threshold=0.1, cooldown=2,
                                                    patience=1, min_lr=[0.02, 0.05])):
        g_opt, t_opt = optimizers()
        rng = np.random.default_rng(0)
        metrics = list(np.cumsum(rng.standard_normal(40) * 0.1) + 1.0)
        metrics[5] = graphc.tensor(metrics[5])  # a 0-d tensor metric, as a loss is
        g, t = gs.ReduceLROnPlateau(g_opt, **kwargs), ts.ReduceLROnPlateau(t_opt, **kwargs)
        t_metrics = [float(m) for m in metrics]
        assert g.get_last_lr() == t.get_last_lr()
        for i in range(40):
            g.step(metrics[i])
            t.step(t_metrics[i])
            assert hyper(g_opt, "lr") == hyper(t_opt, "lr"), f"step {i}"
            assert (g.num_bad_epochs, g.cooldown_counter, g.best) == (t.num_bad_epochs, t.cooldown_counter, t.best)
        assert g.get_last_lr() == t.get_last_lr()


@pytest.mark.parametrize("make", [SCHEDULERS[i][1] for i in (0, 3, 10, 12)],
                         ids=[SCHEDULERS[i][0] for i in (0, 3, 10, 12)])
def test_state_dict_resume_and_torch_state_dict_load(make):
    """Half a schedule, then a fresh scheduler loads the state dict (graphc's, or torch's) and continues exactly."""
    g_opt, t_opt = optimizers()
    g, t = make(gs, g_opt), make(ts, t_opt)
    for _ in range(10):
        g_opt.step()
        t_opt.step()
        g.step()
        t.step()
    state = g.state_dict()
    assert "optimizer" not in state and set(state) <= set(t.state_dict())
    for source in (state, t.state_dict()):
        fresh_opt, _ = optimizers()
        fresh = make(gs, fresh_opt)
        fresh.load_state_dict(source)
        fresh_opt.load_state_dict(g_opt.state_dict())
        assert fresh.get_last_lr() == t.get_last_lr() and fresh.last_epoch == t.last_epoch
    g_resumed, t_opt2 = fresh_opt, t_opt
    assert_same_schedule(g_resumed, t_opt2, fresh, t, steps=10)


def test_lambda_state_dict_keeps_callable_objects_state():
    class Warmup:
        def __init__(self, steps):
            self.steps = steps

        def __call__(self, epoch):
            return min(1.0, (epoch + 1) / self.steps)

    g_opt, _ = optimizers(groups=1)
    sched = gs.LambdaLR(g_opt, Warmup(4))
    saved = sched.state_dict()
    assert saved["lr_lambdas"] == [{"steps": 4}]
    other = gs.LambdaLR(optimizers(groups=1)[0], Warmup(9))
    other.load_state_dict(saved)
    assert other.lr_lambdas[0].steps == 4


def test_scheduler_errors_like_torch():
    g_opt, t_opt = optimizers()
    cases = [
        (lambda m, o: m.StepLR(o, 2, last_epoch=3), KeyError),  # first: no scheduler has set initial_lr yet
        (lambda m, o: m.StepLR("not an optimizer", 2), TypeError),
        (lambda m, o: m.LinearLR(o, start_factor=0.0), ValueError),
        (lambda m, o: m.ConstantLR(o, factor=1.5), ValueError),
        (lambda m, o: m.OneCycleLR(o, max_lr=0.1), ValueError),
        (lambda m, o: m.OneCycleLR(o, max_lr=[0.1], total_steps=5), ValueError),
        (lambda m, o: m.ReduceLROnPlateau(o, factor=1.0), ValueError),
        (lambda m, o: m.ReduceLROnPlateau(o, mode="up"), ValueError),
        (lambda m, o: m.LambdaLR(o, [lambda e: 1.0]), ValueError),
        (lambda m, o: m.SequentialLR(o, [m.ExponentialLR(o, 0.9)], milestones=[3]), ValueError),
    ]
    for make, error in cases:
        with pytest.raises(error):
            make(ts, t_opt)
        with pytest.raises(error):
            make(gs, g_opt)
    sched = gs.OneCycleLR(g_opt, max_lr=0.1, total_steps=2)
    sched.step()
    sched.step()
    with pytest.raises(ValueError, match="Tried to step 3 times"):
        sched.step()


def test_warm_restarts_with_fractional_epochs_match_torch():
    """The SGDR pattern of stepping with epoch + batch / batches."""
    g_opt, t_opt = optimizers()
    g, t = gs.CosineAnnealingWarmRestarts(g_opt, T_0=2, T_mult=2), ts.CosineAnnealingWarmRestarts(t_opt, T_0=2,
                                                                                                    T_mult=2)
    for epoch in range(7):
        for batch in range(3):
            g.step(epoch + batch / 3)
            t.step(epoch + batch / 3)
            assert hyper(g_opt, "lr") == hyper(t_opt, "lr")


def test_step_with_epoch_uses_closed_form_and_warns():
    g_opt, t_opt = optimizers()
    g, t = gs.StepLR(g_opt, step_size=2, gamma=0.5), ts.StepLR(t_opt, step_size=2, gamma=0.5)
    with pytest.warns(UserWarning, match="epoch parameter"):
        g.step(7)
    with pytest.warns(UserWarning):
        t.step(7)
    assert hyper(g_opt, "lr") == hyper(t_opt, "lr")


def test_compiled_step_follows_the_schedule():
    """The lrs graphc's scheduler sets are torch's, and a compiled step trained with them tracks torch."""
    model, tmodel = graphc.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    model.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    opt, topt = graphc.optim.SGD(model.parameters(), lr=0.1), torch.optim.SGD(tmodel.parameters(), lr=0.1)
    sched, tsched = gs.CosineAnnealingLR(opt, T_max=6), ts.CosineAnnealingLR(topt, T_max=6)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        assert lrs[-1] == topt.param_groups[0]["lr"]
        sched.step()
        tsched.step()
    x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    train_compiled_alongside_torch(model, opt, tmodel, topt, x, lrs)
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        assert_close(p, tp, 1e-5, 1e-6)


@pytest.mark.parametrize("name,kwargs", [("SGD", {"momentum": 0.9}), ("Adam", {}), ("Adadelta", {})])
def test_tensor_lr_is_updated_in_place_and_a_compiled_step_does_not_retrace(name, kwargs):
    """With lr given as a tensor (torch allows it), the scheduler fills it in place, as torch's does; a compiled step
    reads it as a graph input, so the whole schedule runs on one plan and tracks torch."""
    model, tmodel = graphc.nn.Linear(3, 1), torch.nn.Linear(3, 1)
    model.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    opt = getattr(graphc.optim, name)(model.parameters(), lr=graphc.tensor(0.1), **kwargs)
    topt = getattr(torch.optim, name)(tmodel.parameters(), lr=torch.tensor(0.1), **kwargs)
    lr = opt.param_groups[0]["lr"]
    sched, tsched = gs.CosineAnnealingLR(opt, T_max=5), ts.CosineAnnealingLR(topt, T_max=5)
    x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    step = train_compiled_alongside_torch(model, opt, tmodel, topt, x, schedulers=(sched, tsched), steps=7)
    assert opt.param_groups[0]["lr"] is lr and float(lr) == float(topt.param_groups[0]["lr"])
    assert step.num_compiles == 1
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        assert_close(p, tp, 1e-5, 1e-6)


@pytest.mark.parametrize("make", [lambda T, opt: T.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0 / (1 + e)),
                                  lambda T, opt: T.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)])
def test_scheduler_step_inside_a_compiled_step_follows_torch(make):
    """scheduler.step() inside the compiled step: the lr a trace is handed for a float that changed between calls
    (a scalar proxy) must be replaced by the scheduler's new lr, not written into (it was put back after the trace:
    the lr stood still for two calls, silently). The step changes Python state on every call, so it runs eagerly
    after three, with one warning naming the scheduler's attribute."""
    def run(T, compiled):
        w = T.nn.Parameter(T.tensor([1.0, 2.0]))
        opt = T.optim.Adam([w], lr=0.1)
        sched = make(T, opt)

        def step(x):
            opt.zero_grad()
            loss = (w * x).pow(2).sum()
            loss.backward()
            opt.step()
            sched.step()
            return loss

        f = graphc.compile(step) if compiled else step
        out = []
        for _ in range(6):
            f(T.tensor([1.0, -0.5]))
            out.append((w.detach().numpy().copy(), opt.param_groups[0]["lr"]))
        return out

    expected = run(torch, False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mine = run(graphc, True)
    for (w, lr), (tw, tlr) in zip(mine, expected):
        np.testing.assert_allclose(w, tw, rtol=1e-6)
        assert lr == pytest.approx(tlr)
    messages = [str(w.message) for w in caught if "runs eagerly" in str(w.message)]
    assert len(messages) == 1 and "last_epoch" in messages[0], messages
