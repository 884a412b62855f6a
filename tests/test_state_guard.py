"""Python state a compiled function reads besides its arguments (module modes, hyperparameters, globals, closures,
reassigned parameters) is guarded, and Python side effects happen on every call, as eagerly."""
from __future__ import annotations

import random
import warnings
from collections import namedtuple

import numpy as np
import pytest
import torch
from conftest import assert_close, to_torch, train_compiled_alongside_torch

import graphc
from graphc import nn
from graphc.compiler.compile import MAX_ENTRIES

SCALE = 2.0


def copy_weights(model: nn.Module, tmodel: torch.nn.Module) -> None:
    tmodel.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()})


def test_train_eval_and_module_attributes_are_guarded():
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Dropout(0.0))
    tmodel = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.BatchNorm1d(5), torch.nn.Dropout(0.0))
    copy_weights(model, tmodel)
    forward = graphc.compile(lambda x: model(x))
    x = np.random.randn(8, 6).astype(np.float32)
    with graphc.no_grad(), torch.no_grad():
        for mode in ("train", "eval", "train", "eval"):
            getattr(model, mode)()
            getattr(tmodel, mode)()
            assert_close(forward(graphc.tensor(x)), tmodel(torch.from_numpy(x)), rtol=1e-5, atol=1e-5)
        assert forward.num_compiles == 2  # one plan per mode, each replayed when its mode comes back
        model[2].p = tmodel[2].p = 1.0  # dropout that drops everything
        model.train()
        assert np.all(forward(graphc.tensor(x)).numpy() == 0)


def test_a_learning_rate_schedule_changes_the_compiled_step():
    graphc.manual_seed(0)
    model, tmodel = nn.Linear(4, 3), torch.nn.Linear(4, 3)
    copy_weights(model, tmodel)
    opt, topt = graphc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), torch.optim.SGD(
        tmodel.parameters(), lr=0.1, momentum=0.9)
    x = np.random.randn(5, 4).astype(np.float32)
    train_compiled_alongside_torch(model, opt, tmodel, topt, x, [0.1, 0.1, 0.05, 0.05, 0.01])
    assert_close(model.weight.detach(), tmodel.weight, rtol=1e-5, atol=1e-6)
    assert_close(model.bias.detach(), tmodel.bias, rtol=1e-5, atol=1e-6)


def test_globals_and_closure_variables_are_guarded():
    global SCALE
    shift = 1.0

    @graphc.compile
    def f(x):
        return x * SCALE + shift

    x = np.random.randn(3).astype(np.float32)
    for SCALE, shift in ((2.0, 1.0), (3.0, 1.0), (3.0, -4.0), (2.0, 1.0)):  # noqa: B007
        assert_close(f(graphc.tensor(x)), torch.from_numpy(x) * SCALE + shift, rtol=1e-6)
    assert f.num_compiles == 3


def test_python_side_effects_happen_on_every_call():
    calls = []

    @graphc.compile
    def f(x):
        calls.append(len(calls))
        return x * len(calls)

    class Counter:
        calls = 0

    @graphc.compile
    def g(x, counter: Counter):
        counter.calls += 1
        return x * counter.calls

    x = np.random.randn(4).astype(np.float32)
    counter = Counter()
    with pytest.warns(RuntimeWarning, match="runs eagerly from now on") as record:
        for n in range(1, 5):
            assert_close(f(graphc.tensor(x)), torch.from_numpy(x) * n, rtol=1e-6)
            assert_close(g(graphc.tensor(x), counter), torch.from_numpy(x) * n, rtol=1e-6)
    assert calls == [0, 1, 2, 3] and counter.calls == 4
    assert len(record) == 2 and "list in calls" in str(record[0].message) and "calls of Counter: 2 -> 3" in str(
        record[1].message)
    assert f.num_traces == g.num_traces == 3


def test_a_reassigned_parameter_is_read():
    model = nn.Linear(3, 2)
    forward = graphc.compile(model)
    x = graphc.randn(4, 3)
    with graphc.no_grad():
        forward(x)
        forward(x)
        model.weight = nn.Parameter(graphc.randn(2, 3))
        got = forward(x)
    want = torch.nn.functional.linear(to_torch(x), to_torch(model.weight, False), to_torch(model.bias, False))
    assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert forward.num_compiles == 1  # same program, new parameter: the plan is reused for the new entry


def test_a_compiled_module_is_called_and_read_like_the_module():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    compiled = graphc.compile(model)
    assert compiled.__name__ == "Sequential"
    assert [p is q for p, q in zip(compiled.parameters(), model.parameters())] == [True, True]
    assert list(compiled.state_dict()) == ["0.weight", "0.bias"]
    x = graphc.randn(2, 3)
    with graphc.no_grad():
        assert_close(compiled(x), torch.relu(torch.nn.functional.linear(
            to_torch(x), to_torch(model[0].weight), to_torch(model[0].bias))), rtol=1e-5, atol=1e-6)


def test_global_random_draws_happen_on_every_call():
    @graphc.compile
    def f(x):
        return x * float(np.random.rand()) + random.random()

    x = graphc.ones(3)
    np.random.seed(0)
    random.seed(0)
    with pytest.warns(RuntimeWarning, match=r"runs eagerly from now on: .* global random state") as record:
        got = [f(x).numpy()[0] for _ in range(3)]
    assert len(record) == 1
    np.random.seed(0)
    random.seed(0)
    want = [float(np.random.rand()) + random.random() for _ in range(3)]
    assert np.allclose(got, want, rtol=1e-6)


def test_state_that_changes_on_every_call_keeps_a_bounded_cache_and_warns_once():
    global SCALE

    @graphc.compile
    def f(x):
        return x * SCALE

    x = graphc.ones(2)
    with pytest.warns(RuntimeWarning, match="global SCALE .* keeps changing") as record:
        for SCALE in range(12):  # noqa: B007
            assert f(x).tolist() == [SCALE, SCALE]
    assert len(record) == 1 and max(len(e) for e in f._entries.values()) == MAX_ENTRIES
    SCALE = 2.0


def _policy(lib):
    class Policy(lib.nn.Module):
        """REINFORCE's policy: the caller appends to its lists on every call; forward never reads them."""

        def __init__(self):
            super().__init__()
            self.affine1, self.affine2 = lib.nn.Linear(4, 8), lib.nn.Linear(8, 2)
            self.saved_log_probs, self.rewards = [], []

        def forward(self, x):
            return lib.nn.functional.softmax(self.affine2(lib.relu(self.affine1(x))), dim=1)

    return Policy()


def test_lists_the_caller_appends_to_and_the_function_never_names_are_not_guarded():
    """REINFORCE: select_action appends each call's log-probability and reward to lists on the policy; the compiled
    policy replays (its forward never names them), and the loss over the saved log-probabilities trains it like
    torch's."""
    tmodel, gmodel = _policy(torch), _policy(graphc)
    gmodel.load_state_dict({k: v.detach().numpy().copy() for k, v in tmodel.state_dict().items()})
    policy = graphc.compile(gmodel)
    opt, topt = graphc.optim.Adam(gmodel.parameters(), lr=0.03), torch.optim.Adam(tmodel.parameters(), lr=0.03)
    rng = np.random.default_rng(0)
    for _ in range(3):  # episodes
        for t in range(4):
            state = rng.standard_normal((1, 4)).astype(np.float32)
            action = t % 2
            probs, tprobs = policy(graphc.tensor(state)), tmodel(torch.from_numpy(state))
            assert_close(probs.detach(), tprobs, rtol=1e-5, atol=1e-6)
            gmodel.saved_log_probs.append(probs[0, action].log())
            tmodel.saved_log_probs.append(tprobs[0, action].log())
            gmodel.rewards.append(float(t))
            tmodel.rewards.append(float(t))
        for model, optimizer, lib in ((gmodel, opt, graphc), (tmodel, topt, torch)):
            optimizer.zero_grad()
            loss = lib.stack([-lp * r for lp, r in zip(model.saved_log_probs, model.rewards)]).sum()
            loss.backward()
            optimizer.step()
            del model.saved_log_probs[:], model.rewards[:]
        for p, tp in zip(gmodel.parameters(), tmodel.parameters()):
            assert_close(p.detach(), tp, rtol=1e-5, atol=1e-6)
    assert policy.num_traces == 1


def test_a_list_attribute_the_function_names_is_guarded():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scales, self.extra, self.added = [1.0], [2.0], ("extra",)

        def forward(self, x):  # the list `extra` is read by a computed name
            return x * self.scales[-1] + sum(sum(getattr(self, name)) for name in self.added)

    model = graphc.compile(Scaled())
    x = graphc.ones(2)
    for scale, extra in ((1.0, 2.0), (3.0, 2.0), (3.0, 5.0), (3.0, 5.0)):
        model.scales.append(scale)
        model.extra[0] = extra
        assert model(x).tolist() == [scale + extra] * 2
    assert model.num_compiles == 3


def test_a_compiled_lbfgs_closure_replays():
    """The closure is what one compiles with LBFGS (forward and backward). LBFGS.step changes its own counters
    between the closure's calls, and .grad is None at the first call only: two traces, then replays, with torch's
    values; a compiled step that calls opt.step() still guards the optimizer's state."""
    def run(lib, compile_closure):
        lib.manual_seed(0)
        m = lib.nn.Linear(3, 1).double()
        gen = np.random.default_rng(0)
        x, y = lib.tensor(gen.standard_normal((20, 3))), lib.tensor(gen.standard_normal((20, 1)))
        m.load_state_dict({k: v.numpy() if lib is graphc else v for k, v in weights.items()})
        opt = lib.optim.LBFGS(m.parameters(), max_iter=10)

        def closure():
            opt.zero_grad()
            loss = ((m(x) - y) ** 2).mean()
            loss.backward()
            return loss

        compiled = compile_closure(closure)
        losses = [opt.step(compiled).item() for _ in range(3)]
        return losses, list(m.parameters()), compiled

    weights = {k: v.detach().clone() for k, v in torch.nn.Linear(3, 1).double().state_dict().items()}
    torch_losses, tparams, _ = run(torch, lambda f: f)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        losses, params, compiled = run(graphc, graphc.compile)
    np.testing.assert_allclose(losses, torch_losses, rtol=1e-6)
    for p, tp in zip(params, tparams):
        assert_close(p.detach(), tp, rtol=1e-6, atol=1e-9)  # as the sine_lbfgs port
    assert compiled.num_traces == 2


def test_an_optimizer_state_replaced_between_compiled_steps_is_read():
    """A compiled step that calls opt.step() reads the optimizer's state (named through Adam.step's own methods):
    moments reset outside between steps (a new tensor in opt.state) are read, as torch reads them."""
    model, tmodel = nn.Linear(3, 2), torch.nn.Linear(3, 2)
    copy_weights(model, tmodel)
    opt, topt = graphc.optim.Adam(model.parameters(), lr=0.1), torch.optim.Adam(tmodel.parameters(), lr=0.1)
    x = np.random.default_rng(9).standard_normal((4, 3)).astype(np.float32)

    @graphc.compile(backend="numpy")
    def step(x):
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        opt.step()

    for i in range(6):
        if i == 3:  # reset the first moments
            for o, lib in ((opt, graphc), (topt, torch)):
                for state in o.state.values():
                    state["exp_avg"] = lib.zeros_like(state["exp_avg"])
        step(graphc.tensor(x))
        topt.zero_grad()
        (tmodel(torch.from_numpy(x)) ** 2).mean().backward()
        topt.step()
        for p, tp in zip(model.parameters(), tmodel.parameters()):
            assert_close(p.detach(), tp, rtol=1e-5, atol=1e-6)
def test_a_namedtuple_class_the_function_reads_does_not_look_changed():
    """The DQN tutorial's `batch = Transition(*zip(*transitions))` inside a compiled step: the class's classmethods
    (`_make`) bind a new method object at every read, which is not a change."""
    transition = namedtuple("Transition", ("state", "reward"))

    def step(lib, x):
        batch = transition(*zip(*[(x, x * 2), (x + 1, x)]))
        return lib.stack(batch.state).sum() + lib.stack(batch.reward).sum()

    compiled = graphc.compile(lambda x: step(graphc, x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            assert compiled(graphc.ones(2)).item() == step(torch, torch.ones(2)).item()
    assert compiled.num_traces == 1


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_writes_before_a_raise_land_as_eagerly(backend):
    """A function that raises after writing in place (an accumulator, an optimizer step before a divergence check)
    keeps those writes, as eager code and torch.compile do."""
    def run(lib, compiled):
        buf = lib.zeros(3)

        def f(x, fail):
            buf.add_(x)
            if fail:
                raise RuntimeError("fail")
            return buf * 1
        fn = graphc.compile(f, backend=backend) if compiled else f
        seen = []
        for i in range(5):
            try:
                fn(lib.ones(3), i % 2 == 1)
            except RuntimeError:
                pass
            seen.append(buf.tolist())
        return seen
    assert run(graphc, True) == run(torch, False)


def test_data_assignment_inside_a_compiled_function():
    """`q.data = value` of q's shape and dtype replays (manual SGD on .data); another shape runs eagerly, warned."""
    def run(lib, compiled):
        w = lib.ones(3, requires_grad=True)
        q = lib.ones(3)

        def step(x):
            loss = ((w * x) ** 2).sum()
            loss.backward()
            w.data = w.data - 0.1 * w.grad.data
            w.grad.zero_()
            q.data = x * 2
            return loss + q.sum()
        fn = graphc.compile(step) if compiled else step
        losses = [fn(lib.ones(3) * (i + 1)).item() for i in range(4)]
        return losses, w.tolist(), q.tolist(), fn
    *ours, fn = run(graphc, True)
    *theirs, _ = run(torch, False)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-6)
    assert ours[1:] == theirs[1:] and fn.num_traces == 2  # the first call creates w.grad
    q = graphc.ones(3)

    def g(x):
        q.data = x.sum(0)
        return q * 1
    with pytest.warns(RuntimeWarning, match=r"runs eagerly: `\.data =` at .*test_state_guard.py:\d+ gives a tensor "
                                            r"of shape \[3\] \(float32\) a value of shape \[4\]"):
        out = graphc.compile(g)(graphc.ones(2, 4))
    assert out.tolist() == q.tolist() == [2.0] * 4


def test_grad_of_a_tensor_made_inside_replays():
    """Input gradients computed inside (saliency maps, gradient penalties): x = x.clone().requires_grad_(), backward,
    return x.grad. The made tensor's .grad is not an effect to redo, so the function replays."""
    def f(lib):
        def g(x):
            x = x.clone().requires_grad_()
            (x * x * 3).sum().backward()
            return x.grad
        return g
    fn = graphc.compile(f(graphc))
    for i in range(4):
        assert fn(graphc.ones(3) * i).tolist() == f(torch)(torch.ones(3) * i).tolist()
    assert fn.num_traces == 1


def test_model_train_and_eval_inside_compiled_steps_replay():
    """model.train() at the top of a compiled training step and model.eval() in a compiled evaluation step, called
    in turn: each replays its plan (setting the mode again), with torch's losses and modes."""
    def make(lib):
        lib.manual_seed(0)
        net = lib.nn.Sequential(lib.nn.Linear(4, 4), lib.nn.BatchNorm1d(4), lib.nn.Dropout(0.0))
        opt = lib.optim.SGD(net.parameters(), lr=0.1)

        def train_step(x):
            net.train()
            opt.zero_grad()
            loss = net(x).square().mean()
            loss.backward()
            opt.step()
            return loss

        def eval_step(x):
            net.eval()
            with lib.no_grad():
                return net(x).square().mean()
        return net, train_step, eval_step
    net, train_step, eval_step = make(graphc)
    tnet, ttrain, teval = make(torch)
    copy_weights(net, tnet)
    train_step, eval_step = graphc.compile(train_step), graphc.compile(eval_step)
    r = np.random.RandomState(0)
    for _ in range(6):
        x = r.randn(8, 4).astype(np.float32)
        assert abs(train_step(graphc.tensor(x)).item() - ttrain(torch.tensor(x)).item()) < 1e-5
        assert net.training and tnet.training
        assert abs(eval_step(graphc.tensor(x)).item() - teval(torch.tensor(x)).item()) < 1e-5
        assert not net.training and not net[1].training
    assert train_step.num_traces == 2 and eval_step.num_traces == 1  # the first training call creates w.grad


def test_requires_grad_toggled_inside_compiled_gan_steps_replays():
    """A GAN's steps freeze the critic for the generator step (`p.requires_grad = False`) and unfreeze it in the
    critic step, as public WGAN scripts do: each step replays its plan, sets the flags again, and the weights follow
    torch's (the critic gets no gradient in the generator step)."""
    r = np.random.RandomState(0)
    init = {name: r.randn(*shape).astype(np.float32) * 0.5 for name, shape in
            [("g.weight", (2, 4)), ("g.bias", (2,)), ("d.weight", (1, 2)), ("d.bias", (1,))]}

    def make(lib):
        g, d = lib.nn.Linear(4, 2), lib.nn.Linear(2, 1)
        for name, value in init.items():
            getattr(g if name[0] == "g" else d, name[2:]).data = lib.tensor(value)
        opt_g, opt_d = lib.optim.SGD(g.parameters(), lr=0.1), lib.optim.SGD(d.parameters(), lr=0.1)

        def critic_step(real, z):
            for p in d.parameters():
                p.requires_grad = True
            opt_d.zero_grad()
            loss = -d(real).mean() + d(g(z).detach()).mean()
            loss.backward()
            opt_d.step()
            return loss

        def generator_step(z):
            for p in d.parameters():
                p.requires_grad = False
            opt_g.zero_grad()
            loss = -d(g(z)).mean()
            loss.backward()
            opt_g.step()
            return loss
        return g, d, critic_step, generator_step
    g, d, critic, generator = make(graphc)
    tg, td, tcritic, tgenerator = make(torch)
    critic, generator = graphc.compile(critic), graphc.compile(generator)
    for _ in range(5):
        real, z = r.randn(8, 2).astype(np.float32), r.randn(8, 4).astype(np.float32)
        assert abs(critic(graphc.tensor(real), graphc.tensor(z)).item() -
                   tcritic(torch.tensor(real), torch.tensor(z)).item()) < 1e-5
        assert abs(generator(graphc.tensor(z)).item() - tgenerator(torch.tensor(z)).item()) < 1e-5
        assert d.weight.requires_grad is td.weight.requires_grad is False
    for ours, theirs in ((g, tg), (d, td)):
        for p, tp in zip(ours.parameters(), theirs.parameters()):
            np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6)
            assert p.requires_grad == tp.requires_grad
    assert critic.num_traces == generator.num_traces == 2  # the first calls create .grad


def test_optimizer_state_cleared_between_compiled_steps():
    """opt.state.clear() (moments reset) between compiled steps: the steps go on as torch's, with no warning."""
    def run(lib, compiled):
        m = lib.nn.Linear(5, 1)
        with lib.no_grad():
            m.weight.copy_(lib.tensor(np.linspace(-1, 1, 5, dtype=np.float32)[None]))
            m.bias.zero_()
        opt = lib.optim.Adam(m.parameters(), lr=1e-2)

        def step(x):
            opt.zero_grad()
            loss = m(x).pow(2).mean()
            loss.backward()
            opt.step()
            return loss
        step = graphc.compile(step) if compiled else step
        losses = []
        for i in range(7):
            if i == 4:
                opt.state.clear()
            losses.append(step(lib.ones(4, 5)).item())
        return losses
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = run(graphc, True)
    np.testing.assert_allclose(ours, run(torch, False), rtol=1e-5)


def test_a_float_argument_prints_as_the_float():
    compiled = graphc.compile(lambda x, k: x * len(str(k)))
    for k in (1.0, 10.5, 1.0):
        assert compiled(graphc.ones(2), k).tolist() == [float(len(str(k)))] * 2


def test_data_assignments_in_a_training_step_land():
    """`.data =` in a compiled step lands as eagerly: WGAN's weight clipping after the step, a gradient scaled
    through .data, a target network's soft update and a buffer's running mean in a module's forward."""
    def run(lib, compiled):
        m = lib.nn.Linear(3, 1)
        with lib.no_grad():
            m.weight.fill_(0.005)
            m.bias.fill_(0.0)
        target = lib.nn.Parameter(lib.zeros(1, 3))
        opt = lib.optim.SGD(m.parameters(), lr=0.05)

        class Centre(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("mean", lib.zeros(3))

            def forward(self, x):
                self.mean.data = 0.9 * self.mean.data + 0.1 * x.mean(0).detach()
                return x - self.mean
        centre = Centre()

        def step(x):
            opt.zero_grad()
            loss = -m(centre(x)).mean()
            loss.backward()
            m.weight.grad.data = m.weight.grad.data * 2
            opt.step()
            for p in m.parameters():
                p.data = p.data.clamp(-0.01, 0.01)
            target.data = 0.9 * target.data + 0.1 * m.weight.data
            return loss
        fn = graphc.compile(step) if compiled else step
        losses = [fn(lib.ones(2, 3) * (i + 1)).item() for i in range(4)]
        return losses, m.weight.tolist(), target.tolist(), centre.mean.tolist()
    ours, theirs = run(graphc, True), run(torch, False)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_attributes_of_a_config_module_are_guarded(tmp_path, monkeypatch):
    """`config.SCALE` read through a module of the user's: a new value is a new trace, as torch.compile guards a
    module's globals (a schedule or a command line edits such a module between calls)."""
    (tmp_path / "train_config.py").write_text("SCALE = 2.0\nSHIFT = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import train_config

    f = graphc.compile(lambda x: x * train_config.SCALE + train_config.SHIFT)
    got = []
    for scale, shift in ((2.0, 3), (2.0, 3), (5.0, 3), (5.0, 1)):
        train_config.SCALE, train_config.SHIFT = scale, shift
        got.append(f(graphc.ones(2)).tolist())
    assert got == [(torch.ones(2) * s + k).tolist() for s, k in ((2.0, 3), (2.0, 3), (5.0, 3), (5.0, 1))]
    assert f.num_traces == 3


def test_a_shape_stored_in_state_replays_and_follows_the_input():
    """`self.input_shape = x.shape` in a compiled forward (an autoencoder unflattening later): the replay sets the
    same shape again, its sizes guarded, so a new input size traces again instead of leaving a stale shape."""
    def build(L):
        class M(L.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = L.nn.Linear(3, 3)
                self.input_shape = None

            def forward(self, x):
                self.input_shape = x.shape
                return self.lin(x)
        return M()

    gm, tm = build(graphc), build(torch)
    compiled = graphc.compile(gm)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with graphc.no_grad():
            for n in (2, 2, 2, 5, 2):
                compiled(graphc.ones(n, 3))
                tm(torch.ones(n, 3))
                assert tuple(gm.input_shape) == tuple(tm.input_shape)
    assert compiled.num_traces < 5


def test_reassigned_defaults_of_the_compiled_function_trace_again():
    """f.__defaults__ / f.__kwdefaults__ set after the first call: the defaults are guarded as attributes of the
    function (as torch.compile guards them), not only their contents."""
    def f(x, s=1.0, *, t=2.0):
        return x * s + t

    def g(x, s=1.0, *, t=2.0):
        return x * s + t

    compiled = graphc.compile(f)
    for defaults, kwdefaults in (((1.0,), {"t": 2.0}), ((5.0,), {"t": 2.0}), ((5.0,), {"t": 0.0})):
        f.__defaults__, f.__kwdefaults__ = defaults, kwdefaults
        g.__defaults__, g.__kwdefaults__ = defaults, kwdefaults
        assert_close(compiled(graphc.tensor([1.0, 2.0, 3.0])), g(torch.tensor([1.0, 2.0, 3.0])))
