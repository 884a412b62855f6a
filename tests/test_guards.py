"""Guards of compiled functions on real programs: identity guards never outlive their object, functions are guarded
by code and closure contents, the plan cap, recompile logs that name the guard, num_traces, and traces that fail
leave no proxy in user state. torch (eager) is the reference."""
from __future__ import annotations

import collections
import math
import warnings

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


@pytest.mark.parametrize("backend", ["numpy", "interpret"])
@pytest.mark.parametrize("later_shape", [(10,), ()])
def test_a_tensor_made_and_freed_during_capture_does_not_stand_for_a_later_one(backend, later_shape):
    """A tensor a factory makes during capture, read and then freed, leaves its id to the next tensor made. The
    capture's map from tensors to nodes named the freed one's node for it: with the same shape the later tensor read
    the earlier one's values (silently wrong), with another the capture crashed in the user's call. Adam's step
    counter, made after the backward's temporaries were freed, hit this in a training step."""
    def step(lib, x):
        a = lib.full((10,), 3.0)
        y = x + a
        del a
        b = lib.zeros(later_shape)
        return y * b.add_(2)

    x = np.arange(10, dtype=np.float32)
    compiled = graphc.compile(lambda x: step(graphc, x), backend=backend)
    for _ in range(2):
        assert_close(compiled(graphc.tensor(x)), step(torch, torch.tensor(x)))
    assert compiled.num_traces == 1


def test_num_traces_counts_every_capture():
    calls = []

    @graphc.compile
    def f(x):
        calls.append(1)  # a side effect: traced on every call, then eager, so it happens each time
        return x + 1

    with pytest.warns(RuntimeWarning, match="runs eagerly from now on.*the length of a list"):
        for _ in range(4):
            f(graphc.ones(2))
    assert f.num_traces == 3 and f.num_compiles == 1 and len(calls) == 4
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
    assert len(record) == 2 and f.num_compiles == MAX_ENTRIES and f.num_traces == MAX_ENTRIES
    assert "traced again for a new value of a Python int (argument n: 2 -> 3)" in str(record[0].message)
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

    def broken_run(self, arrays, inplace=False):
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
    def train_step(x, y):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()

    def count(i: int) -> None:
        global step
        step = i

    _mse_steps_alongside_torch(train_step, model, tmodel, topt, (5, 4, 3), count)


def _compiled_mse_step(model, opt):
    """A compiled training step as scripts write it: zero_grad, MSE loss, backward, step."""
    @graphc.compile
    def train_step(x, y):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return train_step


def _mse_steps_alongside_torch(train_step, model, tmodel, topt, sizes: tuple, before_step) -> None:
    """50 steps of train_step(x, y) on random batches of sizes (batch, in, out), torch's model trained alongside
    with the same MSE loss; before_step(i) runs before step i. The step replays and the parameters agree."""
    rng = np.random.default_rng(1)
    batch, inputs, outputs = sizes
    for i in range(50):
        before_step(i)
        x, y = rng.standard_normal((batch, inputs)).astype(np.float32), rng.standard_normal(
            (batch, outputs)).astype(np.float32)
        train_step(graphc.tensor(x), graphc.tensor(y))
        topt.zero_grad()
        torch.nn.functional.mse_loss(tmodel(torch.from_numpy(x)), torch.from_numpy(y)).backward()
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
    with pytest.warns(RuntimeWarning, match="runs eagerly from now on.*ema of Smoother"):
        for i in range(4):
            want = want * 0.5 + 2.0 * i
            assert_close(f(graphc.full((2,), float(i))), want)
    assert f.num_traces == 3


def test_a_float_that_feeds_tensor_math_is_a_runtime_input():
    f = graphc.compile(lambda x, k: x * k)
    x = np.random.default_rng(3).standard_normal(4).astype(np.float32)
    for k in range(30):
        assert_close(f(graphc.tensor(x), float(k)), torch.from_numpy(x) * float(k))
    assert_close(f(graphc.tensor(x), np.float64(2.5)), torch.from_numpy(x) * 2.5)
    assert_close(f(graphc.tensor(x), np.float32(0.5)), torch.from_numpy(x) * 0.5)
    assert f.num_traces == 1 and f.num_compiles == 1
    g = graphc.compile(lambda x, k: (x * (1 - k * 0.5), k * 2, -k))  # Python arithmetic on it stays a number
    for k in (0.5, 3.0):
        got, twice, negated = g(graphc.tensor(x), k)
        assert_close(got, torch.from_numpy(x) * (1 - k * 0.5))
        assert type(twice) is float and (twice, negated) == (k * 2, -k)
    assert g.num_traces == 1


def test_a_float_used_in_python_is_guarded_on_what_python_decided():
    @graphc.compile
    def f(x, k):
        return x * k if k > 0 else x - k

    x = graphc.ones(3)
    for k in (1.0, 2.0, 3.0, -1.0, -2.0, 4.0):
        assert_close(f(x, k), torch.ones(3) * k if k > 0 else torch.ones(3) - k)
    assert f.num_traces == 2  # one per outcome of `k > 0`, not one per value
    g = graphc.compile(lambda x, k: x * math.cos(k))  # the value itself reaches Python: guarded by value
    for k in (0.0, 1.0, 1.0, 0.0):
        assert_close(g(x, k), torch.ones(3) * math.cos(k))
    assert g.num_traces == 2
    h = graphc.compile(lambda x, k: x + graphc.full_like(x, k))  # an op's attribute: guarded by value
    for k in (0.5, 2.0, 2.0):
        assert_close(h(x, k), torch.ones(3) + torch.full_like(torch.ones(3), k))
    assert h.num_traces == 2
    c = graphc.compile(lambda x, k: x.clamp(min=k))  # an operand: a runtime input
    for k in (0.5, 2.0, 3.0):
        assert_close(c(x, k), torch.ones(3).clamp(min=k))
    assert c.num_traces == 1


def test_past_the_plan_cap_a_float_used_in_python_runs_eagerly_with_one_warning():
    g = graphc.compile(lambda x, k: x * math.cos(k))
    x = graphc.ones(2)
    with pytest.warns(RuntimeWarning, match="has 8 plans.*argument k, whose value the function uses") as record:
        for k in range(12):
            assert_close(g(x, float(k)), torch.ones(2) * math.cos(k))
    assert len(record) == 1 and g.num_traces == MAX_ENTRIES


@pytest.mark.parametrize("opt_name", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("lr_type", [float, np.float64])
def test_a_learning_rate_schedule_replays(opt_name, lr_type):
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    tmodel = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    tmodel.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    make = {"sgd": lambda m, p: m.SGD(p, lr=0.1), "momentum": lambda m, p: m.SGD(p, lr=0.1, momentum=0.9),
            "adam": lambda m, p: m.Adam(p, lr=0.01)}[opt_name]
    opt, topt = make(graphc.optim, model.parameters()), make(torch.optim, tmodel.parameters())
    base = opt.param_groups[0]["lr"]

    train_step = _compiled_mse_step(model, opt)

    def cosine_annealing(i: int) -> None:  # computed with math.cos, as training scripts do
        lr = base * 0.5 * (1 + math.cos(math.pi * i / 50))
        opt.param_groups[0]["lr"], topt.param_groups[0]["lr"] = lr_type(lr), lr

    _mse_steps_alongside_torch(train_step, model, tmodel, topt, (8, 4, 2), cosine_annealing)


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4 * 3 * 3, 5)

    def forward(self, x):
        return self.fc(nn.functional.max_pool2d(nn.functional.relu(self.conv(x)), 2).flatten(1))


class TorchConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = torch.nn.Conv2d(1, 4, 3), torch.nn.Linear(4 * 3 * 3, 5)

    def forward(self, x):
        return self.fc(torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 2).flatten(1))


@pytest.mark.parametrize("backend", ["numpy", "interpret"])
@pytest.mark.parametrize("net", ["mlp", "cnn"])
def test_a_compiled_module_with_the_loss_and_backward_outside_replays(backend, net):
    if net == "mlp":
        model, tmodel, opt, topt = _models("sgd")
        shape, steps = (4,), 50 if backend == "numpy" else 4
    else:
        graphc.manual_seed(0)
        model, tmodel = ConvNet(), TorchConvNet()
        tmodel.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
        opt = graphc.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        topt = torch.optim.SGD(tmodel.parameters(), lr=0.05, momentum=0.9)
        shape, steps = (1, 8, 8), 4
    compiled = graphc.compile(model, backend=backend)
    loss_fn, tloss_fn = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(5)
    for i in range(steps):
        batch = 6 if i % 3 else 3  # a short batch now and then: the same plans
        x, y = rng.standard_normal((batch, *shape)).astype(np.float32), rng.integers(0, 3, batch)
        opt.zero_grad()
        loss = loss_fn(compiled(graphc.tensor(x)), graphc.tensor(y))
        loss.backward()
        opt.step()
        topt.zero_grad()
        tloss = tloss_fn(tmodel(torch.from_numpy(x)), torch.from_numpy(y))
        tloss.backward()
        topt.step()
        assert_close(loss.detach(), tloss, rtol=1e-4, atol=1e-5)
        for p, tp in zip(model.parameters(), tmodel.parameters()):
            assert_close(p.grad, tp.grad, rtol=1e-3, atol=1e-5)
    assert compiled.num_traces == 1
    _assert_same_parameters(model, tmodel)


def test_a_compiled_forward_gives_gradients_to_its_input_and_refuses_a_second_backward():
    graphc.manual_seed(0)
    w = graphc.randn(3, 4, requires_grad=True)
    f = graphc.compile(lambda x: (x @ w).tanh())
    tw = torch.from_numpy(w.detach().numpy().copy()).requires_grad_()
    for _ in range(3):
        x = np.random.default_rng(6).standard_normal((2, 3)).astype(np.float32)
        gx, tx = graphc.tensor(x, requires_grad=True), torch.from_numpy(x).requires_grad_()
        out = f(gx)
        (out * out).sum().backward(retain_graph=False)
        (torch.tanh(tx @ tw) ** 2).sum().backward()
        assert_close(gx.grad, tx.grad, rtol=1e-5, atol=1e-6)
    assert_close(w.grad, tw.grad, rtol=1e-5, atol=1e-6)
    assert f.num_traces == 1 and out.grad_fn.name() == "CompiledBackward0"
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        out.sum().backward()
        out.sum().backward()


def test_a_float_argument_of_a_function_with_a_graph_break():
    @graphc.compile
    def f(x, k):
        y = x * k
        if y.sum() > 0:  # a graph break: traced on every call, with k a plain value
            return y + graphc.full_like(x, k)
        return y - k

    for k in (1.0, 2.0, -1.0):
        want = torch.ones(2) * k
        assert_close(f(graphc.ones(2), k), want + k if k > 0 else want - k)


@pytest.mark.parametrize("backend", ["numpy", "interpret"])
def test_split_chunk_unbind_meshgrid_follow_the_split_size(backend):
    """How many views split, chunk and unbind make, where each starts, and meshgrid's grid sizes depend on a size:
    the compiled function is guarded by it (a new size traces again, as torch.compile specialises), values and
    gradients equal torch at each size (a stale plan would clamp its slices or read out of bounds)."""
    def fn(L, x, a):
        parts = [p * (i + 1) for i, p in enumerate(x.split(2))] + [c.exp() for c in x.chunk(3, dim=1)]
        rows = L.stack([r.sum() for r in x.unbind(0)])
        gx, gy = L.meshgrid(a, rows, indexing="xy")
        return L.cat([p.flatten() for p in parts]).sum() + (gx * gy).sum()

    compiled = graphc.compile(lambda x, a: fn(graphc, x, a), backend=backend)
    for n, m in ((4, 3), (5, 3), (6, 4), (4, 3)):
        values = np.random.randn(n, 6).astype(np.float32), np.random.randn(m).astype(np.float32)
        ours = [graphc.tensor(v, requires_grad=True) for v in values]
        theirs = [torch.tensor(v, requires_grad=True) for v in values]
        out, expected = compiled(*ours), fn(torch, *theirs)
        assert_close(out.detach(), expected, rtol=1e-4, atol=1e-4)
        out.backward()
        expected.backward()
        for a, b in zip(ours, theirs):
            assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-4)
    assert compiled.num_traces == 3


@pytest.mark.parametrize("opt_name", ["adam", "sgd_momentum"])
def test_one_cycle_with_momentum_cycling_replays(opt_name):
    """OneCycleLR(cycle_momentum=True) writes lr and Adam's betas tuple (or SGD's momentum) into param_groups every
    step, as the scheduler is used in public training scripts: the floats inside the tuple are runtime scalars like
    lr, so the compiled step replays (at most 2 traces in 50 steps) and the parameters equal torch's."""
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    tmodel = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    tmodel.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    make = {"adam": lambda m, p: m.Adam(p, lr=0.01),
            "sgd_momentum": lambda m, p: m.SGD(p, lr=0.01, momentum=0.9)}[opt_name]
    opt, topt = make(graphc.optim, model.parameters()), make(torch.optim, tmodel.parameters())
    schedule = graphc.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=60, cycle_momentum=True)
    tschedule = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.1, total_steps=60, cycle_momentum=True)

    train_step = _compiled_mse_step(model, opt)

    def after_previous_step(i: int) -> None:
        if i:
            schedule.step()
            tschedule.step()

    _mse_steps_alongside_torch(train_step, model, tmodel, topt, (8, 4, 2), after_previous_step)


def test_a_function_without_tensor_ops_replays():
    """A compiled function that runs no tensor op (it returns an argument, or computes with Python numbers) is cached
    like any other: an empty plan, guarded as usual, so it replays instead of tracing on every call, and gives what
    the function gives eagerly (floats are runtime scalars; a returned argument is the caller's tensor)."""
    add = graphc.compile(lambda a, b: a * b + 1)
    for a, b in [(1.5, 2.0), (2.5, -1.0), (0.25, 4.0)]:
        assert add(a, b) == a * b + 1
    assert add.num_traces == 1
    pick = graphc.compile(lambda xs, i: xs[i])
    xs = [graphc.ones(2), graphc.zeros(3)]
    for i in (0, 1, 0, 1):
        assert pick(xs, i) is xs[i]
    assert pick.num_traces == 2


def test_a_reseeded_generator_argument_replays():
    """A graphc.Generator passed to a compiled step and reseeded between calls (as data-augmentation code does per
    epoch) replays: the plan draws from the generator's stream at run time, so its state is not a guard. Draws equal
    eager ones from a generator with the same seeds (graphc's stream is numpy's PCG64, not torch's: eager graphc
    is the reference), and a call without reseeding continues the stream as eagerly."""
    def noisy(x, gen):
        return x + graphc.rand(x.shape, generator=gen) * 0.1 + graphc.randn(3, generator=gen)

    compiled = graphc.compile(noisy, backend="numpy")
    gen, eager_gen = graphc.Generator(), graphc.Generator()
    x = graphc.ones(4, 3)
    for seed in (0, 1, None, 7, None):
        if seed is not None:
            gen.manual_seed(seed)
            eager_gen.manual_seed(seed)
        assert_close(compiled(x, gen), noisy(x, eager_gen))
    assert compiled.num_traces == 1


@pytest.mark.parametrize("backend", ["numpy", "interpret"])
def test_cumulative_batch_norm_training_step_replays(backend):
    """BatchNorm1d(momentum=None) keeps a cumulative average of the batch statistics (momentum 1 / batches seen):
    the count is read at run time as a tensor, not with .item() (a graph break on every call), so a compiled
    training step replays; losses, parameters, running statistics and the count equal torch's."""
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=None), nn.ReLU(), nn.Linear(4, 1))
    tmodel = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4, momentum=None), torch.nn.ReLU(),
                                 torch.nn.Linear(4, 1))
    tmodel.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})
    opt, topt = graphc.optim.SGD(model.parameters(), lr=0.1), torch.optim.SGD(tmodel.parameters(), lr=0.1)

    @graphc.compile(backend=backend)
    def step(x):
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        opt.step()
        return loss

    rng = np.random.default_rng(0)
    for _ in range(6):
        x = rng.standard_normal((5, 3)).astype(np.float32)
        topt.zero_grad()
        expected = tmodel(torch.from_numpy(x)).pow(2).mean()
        expected.backward()
        topt.step()
        assert_close(step(graphc.tensor(x)), expected.detach(), atol=1e-5)
    assert step.num_traces <= 2
    for ours, theirs in zip(model.state_dict().values(), tmodel.state_dict().values()):
        assert_close(ours, theirs, atol=1e-5)


class ClassConfig:
    """Settings kept on the class, as scripts do (`Config.lr`, `Config.scale`), read without an instance."""
    scale = 2.0
    mode = "mul"


class SlotConfig:
    __slots__ = ("k",)

    def __init__(self, k: float):
        self.k = k


OFFSETS = np.array([1.0, 2.0, 3.0], np.float32)  # a global numpy array the step reads, changed in place between calls
ENABLED: set = {"bias"}
HISTORY = collections.deque([1.5])


def _state_reading_step(L, x, cfg, slots):
    out = x * ClassConfig.scale if ClassConfig.mode == "mul" else x + ClassConfig.scale
    out = out * cfg.scale + slots.k + L.tensor(OFFSETS)
    return out + HISTORY[-1] if "bias" in ENABLED else out


def test_state_that_changes_in_place_is_guarded():
    """Class attributes (read through the class), __slots__ attributes, a global numpy array changed in place, a
    set and a deque are guarded by value: a change between calls traces again instead of replaying a stale plan.
    torch, given the same state, is the reference."""
    slots = SlotConfig(0.5)
    compiled = graphc.compile(lambda x, cfg, s: _state_reading_step(graphc, x, cfg, s), backend="numpy")
    x = np.arange(3, dtype=np.float32)
    changes = [lambda: None, lambda: setattr(ClassConfig, "scale", 3.0), lambda: setattr(ClassConfig, "mode", "add"),
               lambda: setattr(slots, "k", -1.0), lambda: OFFSETS.__setitem__(1, 7.0), lambda: ENABLED.clear(),
               lambda: ENABLED.add("bias"), lambda: HISTORY.append(4.0), lambda: None]
    try:
        for change in changes:
            change()
            assert_close(compiled(graphc.tensor(x), ClassConfig, slots),
                         _state_reading_step(torch, torch.tensor(x), ClassConfig, slots))
    finally:
        ClassConfig.scale, ClassConfig.mode = 2.0, "mul"
        OFFSETS[:] = [1.0, 2.0, 3.0]
    assert compiled.num_traces == 7  # putting "bias" back replays the plan traced before clear(); so does the last


def test_iterators_and_generators_are_advanced_on_every_call():
    """next() on an iterator argument or a generator read as state runs on every call, as eagerly: such a function
    is traced on every call (with one warning), never replayed with the value of the first draw."""
    def step(x, it):
        return x * next(it) + next(schedule)

    def warmup():
        yield from (0.1, 0.2, 0.3)

    schedule = warmup()
    compiled = graphc.compile(step, backend="numpy")
    values = iter([2.0, 3.0, 5.0])
    with pytest.warns(RuntimeWarning, match="iterator or generator"):
        got = [compiled(graphc.ones(2), values) for _ in range(3)]
    for out, (k, b) in zip(got, [(2.0, 0.1), (3.0, 0.2), (5.0, 0.3)]):
        assert_close(out, torch.ones(2) * k + b)


def test_negative_zero_is_not_positive_zero():
    """x / k for k = 0.0 and k = -0.0 gives inf and -inf as torch does: the float is a runtime input, not a value
    guard that 0.0 == -0.0 would let replay."""
    compiled = graphc.compile(lambda x, k: x / k, backend="numpy")
    x = np.array([1.0, -2.0], np.float32)
    for k in (0.0, -0.0, 0.0):
        assert_close(compiled(graphc.tensor(x), k), torch.tensor(x) / k)


@pytest.mark.parametrize("backend", ["numpy", "interpret"])
def test_reseeding_and_rng_state_inside_a_compiled_function_equal_eager(backend):
    """manual_seed, get_rng_state and set_rng_state inside a compiled function happen where eager has them: random
    ops recorded before them draw first (a graph break), so replaying a draw with a saved state gives the same
    values, and reseeding gives the seeded draws on every call (eager graphc is the reference: its stream is
    numpy's PCG64, not torch's)."""
    def step(x):
        state = graphc.get_rng_state()
        a = graphc.rand(3)
        graphc.set_rng_state(state)
        b = graphc.rand(3)
        graphc.manual_seed(5)
        return x + a - b + graphc.randn(3)

    compiled = graphc.compile(step, backend=backend)
    for _ in range(3):
        out = compiled(graphc.ones(3))
        assert_close(out, step(graphc.ones(3)))


@pytest.mark.parametrize("returns", ["shape", "pair"])
def test_a_returned_shape_is_guarded_and_does_not_keep_its_tensor(returns):
    """`return out.shape`: the sizes handed back are guards (a replay for another size returned the traced
    shape), and the shape does not keep the tensor it came from alive (that made the function run eagerly)."""
    def f(L, x):
        y = x * 2
        return y.shape if returns == "shape" else (y, y.shape)

    compiled = graphc.compile(lambda x: f(graphc, x), backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for n in (8, 8, 16, 4, 16):
            got, want = compiled(graphc.ones(n)), f(torch, torch.ones(n))
            assert tuple(got if returns == "shape" else got[1]) == tuple(want if returns == "shape" else want[1])
    assert compiled.num_traces == 3


def test_squeeze_replays_only_where_the_same_dims_have_size_one():
    """squeeze() removes the dims of size 1 that it is given (all, without dim): which dims go is part of the
    program, so those sizes are guards. A trace at (1, 3) replayed at (2, 3) summed the wrong dim, silently."""
    programs = [lambda x: x.squeeze().sum(), lambda x: x.squeeze().softmax(-1), lambda x: x.squeeze(1).sum(0),
                lambda x: x.squeeze((0, 1)) * 2]
    compiled = [graphc.compile(p) for p in programs]
    for shape in [(1, 3), (1, 3), (2, 3), (4, 1), (1, 1), (3, 1), (5, 1)]:
        x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
        for p, c in zip(programs, compiled):
            assert_close(c(graphc.tensor(x)), p(torch.tensor(x)))
    assert compiled[2].num_traces == 2  # squeeze(1): only dim 1's size is a guard


def test_guards_on_tensors_inside_dicts_and_keywords_trace_again_when_they_miss():
    """A size or values read of a tensor passed in a dict (an HF-style batch) or by keyword (model(input_ids=...)):
    a miss traces again, and its message names the argument (naming it crashed with an IndexError: the names of
    the leaves skipped the dicts' keys)."""
    def batch(L, n):
        return {"x": L.ones(n, 2, 2), "v": L.arange(3.0), "m": L.tensor([True, n == 3, True])}

    programs = [lambda d: d["x"].view(d["x"].size(0), -1).sum(1), lambda d: d["v"][d["m"]].sum() + 0]
    for program in programs:
        compiled = graphc.compile(program)
        for n in (2, 3, 2):
            assert_close(compiled(batch(graphc, n)), program(batch(torch, n)))
        assert compiled.num_traces == 2

    def keyword(L):
        def forward(input_ids=None):
            return input_ids.view(input_ids.size(0), -1).sum(1)
        return forward
    compiled = graphc.compile(keyword(graphc))
    for n in (2, 3):
        assert_close(compiled(input_ids=graphc.ones(n, 2, 2)), keyword(torch)(input_ids=torch.ones(n, 2, 2)))
