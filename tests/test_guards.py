"""Guards of compiled functions on real programs: identity guards never outlive their object, functions are guarded
by code and closure contents, the plan cap, recompile logs that name the guard, num_traces, and traces that fail
leave no proxy in user state. torch (eager) is the reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_close

import graphc
from graphc import nn
from graphc.compiler import runtime
from graphc.compiler.capture import Capture, CaptureError
from graphc.compiler.compile import MAX_ENTRIES

step = 0  # a global loop counter named like the optimizer's method, as training scripts write it


def make_adder(i: float):
    return lambda x: x + i


class Config:
    def __init__(self, k: float):
        self.k = k


def test_fresh_closures_lambdas_and_configs_are_told_apart():
    h = graphc.compile(lambda x, g: g(x))
    for i in range(5):  # a fresh closure per call, often at the address of the one just freed
        assert_close(h(graphc.ones(5), make_adder(float(i))), torch.ones(5) + i)
    assert h.num_traces == 5
    for _ in range(5):  # a fresh lambda with the same code and no closure: one trace, replayed
        assert_close(h(graphc.ones(5), lambda x: x * 2), torch.ones(5) * 2)
    assert h.num_traces == 6
    f = graphc.compile(lambda x, cfg: x * cfg.k)
    for k in (1.0, 2.0, 2.0, 3.0, 1.0):  # a fresh config object per call: guarded by type and attributes
        assert_close(f(graphc.ones(3), Config(k)), torch.ones(3) * k)
    assert f.num_traces == 3
    obj = object()
    g = graphc.compile(lambda x, o: x * (2.0 if o is obj else 3.0))
    assert_close(g(graphc.ones(2), obj), torch.ones(2) * 2)
    for _ in range(3):  # other objects, some of them where a freed one lived: never the plan made for obj
        assert_close(g(graphc.ones(2), object()), torch.ones(2) * 3)


def test_num_traces_counts_every_capture():
    calls = []

    @graphc.compile
    def f(x):
        calls.append(1)  # a side effect: traced again on every call, so it happens each time
        return x + 1

    with pytest.warns(RuntimeWarning, match="traced again on every call.*the length of a list"):
        for _ in range(4):
            f(graphc.ones(2))
    assert f.num_traces == 4 and f.num_compiles == 1 and len(calls) == 4
    g = graphc.compile(lambda x: x * 2)
    for _ in range(4):
        g(graphc.ones(2))
    assert g.num_traces == 1 and g.num_compiles == 1


def test_recompile_log_names_the_guard_old_and_new(monkeypatch, capfd):
    monkeypatch.setenv("GRAPHC_LOGS", "recompiles")
    cfg = Config(2.0)

    @graphc.compile
    def f(x, flag):
        return x * cfg.k if flag else x

    f(graphc.ones(2), True)
    f(graphc.ones(2, dtype=graphc.float64), True)
    f(graphc.ones(2), False)
    cfg.k = 5.0
    assert f(graphc.ones(2), True).tolist() == [5.0, 5.0]
    err = capfd.readouterr().err
    line = f"test_guards.py:{f.__code__.co_firstlineno}"
    assert "argument x: float32 rank 1 on cpu -> float64 rank 1 on cpu (guards of f at" in err
    assert "argument flag: True -> False" in err
    assert "k of Config: 2.0 -> 5.0" in err and line in err


def test_plan_cap_runs_eagerly_with_one_warning_naming_the_argument():
    f = graphc.compile(lambda x, n: x.reshape(n, -1).sum(1))  # n is a size: guarded by value
    with pytest.warns(RuntimeWarning, match=f"has {MAX_ENTRIES} plans.*argument n: 8 -> 9") as record:
        for n in range(1, 13):
            x = np.arange(n * 2, dtype=np.float32)
            assert_close(f(graphc.tensor(x), n), torch.from_numpy(x).reshape(n, -1).sum(1))
    assert len(record) == 1 and f.num_compiles == MAX_ENTRIES and f.num_traces == MAX_ENTRIES
    assert_close(f(graphc.ones(6), 3), torch.full((3,), 2.0))  # a cached plan still replays
    assert f.num_traces == MAX_ENTRIES


def _models(opt_name: str):
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    tmodel = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    tmodel.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    if opt_name == "adam":
        return model, tmodel, graphc.optim.Adam(model.parameters(), lr=0.01), torch.optim.Adam(
            tmodel.parameters(), lr=0.01)
    return model, tmodel, graphc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9), torch.optim.SGD(
        tmodel.parameters(), lr=0.05, momentum=0.9)


def _assert_same_parameters(model, tmodel) -> None:
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        assert_close(p.detach(), tp, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
@pytest.mark.parametrize("failure", ["plan fails its first run", "capture refused"])
def test_a_failed_trace_leaves_no_proxy_in_optimizer_state(monkeypatch, opt_name, failure):
    model, tmodel, opt, topt = _models(opt_name)
    loss_fn, tloss_fn = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()

    @graphc.compile
    def train_step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()  # creates the optimizer's state lazily while tracing
        return loss

    def broken_run(self, arrays):
        raise RuntimeError("simulated plan failure")

    record = Capture.record

    def refuse_after_state(self, op, inputs, attrs):
        if opt.state:  # refused once the step's state exists
            raise CaptureError(f"{op.name}: simulated refusal")
        return record(self, op, inputs, attrs)

    if failure == "capture refused":
        monkeypatch.setattr(Capture, "record", refuse_after_state)
    else:
        monkeypatch.setattr(runtime.Runtime, "__call__", broken_run)
    rng = np.random.default_rng(0)
    for i in range(3):
        x, y = rng.standard_normal((6, 4)).astype(np.float32), rng.integers(0, 3, 6)
        if i == 0:
            with pytest.warns(RuntimeWarning, match="runs eagerly: .*simulated"):
                train_step(graphc.tensor(x), graphc.tensor(y))
        else:
            train_step(graphc.tensor(x), graphc.tensor(y))
        topt.zero_grad()
        tloss_fn(tmodel(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        topt.step()
    assert all(t._data is not None for s in opt.state.values() for t in s.values() if isinstance(t, graphc.Tensor))
    _assert_same_parameters(model, tmodel)


def test_a_global_named_step_beside_optimizer_step_replays():
    global step
    model, tmodel, opt, topt = _models("sgd")

    @graphc.compile
    def train_step(x):
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        opt.step()
        return loss

    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    for step in range(50):  # noqa: B007
        train_step(graphc.tensor(x))
        topt.zero_grad()
        (tmodel(torch.from_numpy(x)) ** 2).mean().backward()
        topt.step()
    assert train_step.num_traces <= 2
    _assert_same_parameters(model, tmodel)


class Trainer:
    """A trainer in the style of public training scripts: the step stores its loss and logits on self."""

    def __init__(self, model, opt):
        self.model, self.opt, self.loss_fn = model, opt, nn.CrossEntropyLoss()
        self.loss = None

    def train_step(self, x, y):
        self.opt.zero_grad()
        logits = self.model(x)
        loss = self.loss_fn(logits, y)
        loss.backward()
        self.opt.step()
        self.loss = loss
        self.last_logits = logits.detach()
        return loss

    compiled_step = graphc.compile(train_step)


@pytest.mark.parametrize("how", ["bound method", "method compiled in the class"])
def test_a_trainer_that_stores_self_loss_replays(how):
    model, tmodel, opt, topt = _models("adam")
    trainer = Trainer(model, opt)
    step_fn = graphc.compile(trainer.train_step) if how == "bound method" else trainer.compiled_step
    tloss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(2)
    for _ in range(50):
        x, y = rng.standard_normal((6, 4)).astype(np.float32), rng.integers(0, 3, 6)
        loss = step_fn(graphc.tensor(x), graphc.tensor(y))
        topt.zero_grad()
        tlogits = tmodel(torch.from_numpy(x))
        tloss = tloss_fn(tlogits, torch.from_numpy(y))
        tloss.backward()
        topt.step()
        assert trainer.loss is loss  # the side effect is redone after each replay, with the returned object
        assert_close(loss.detach(), tloss, rtol=1e-4, atol=1e-5)
        assert_close(trainer.last_logits, tlogits, rtol=1e-4, atol=1e-5)
    assert (step_fn if how == "bound method" else Trainer.compiled_step).num_traces <= 2
    _assert_same_parameters(model, tmodel)


def test_state_read_then_replaced_is_traced_on_every_call_with_a_warning():
    class Smoother:
        ema = graphc.zeros(())

    smoother = Smoother()

    @graphc.compile
    def f(x):
        smoother.ema = smoother.ema * 0.5 + x.sum()
        return smoother.ema

    want = torch.zeros(())
    with pytest.warns(RuntimeWarning, match="traced again on every call.*ema of Smoother"):
        for i in range(4):
            want = want * 0.5 + 2.0 * i
            assert_close(f(graphc.full((2,), float(i))), want)
    assert f.num_traces == 4
