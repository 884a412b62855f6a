"""Real training on scikit-learn's digits: graphc tracks torch step for step from the same initial weights, and the
examples reach their accuracy and round-trip their checkpoints."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

import graphc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
import digits  # noqa: E402
import train_digits_cnn  # noqa: E402
import train_digits_mlp  # noqa: E402


def torch_mlp() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(64, 100), torch.nn.ReLU(), torch.nn.Linear(100, 100), torch.nn.ReLU(),
                               torch.nn.Linear(100, 10))


def test_mlp_losses_track_torch_for_20_steps():
    """Same initial weights (torch's, through the state dict), same batches, Adam 1e-3: losses agree to 1e-4."""
    train_x, train_y, _, _ = digits.load_split()
    t_model = torch_mlp()
    g_model = train_digits_mlp.make_model()
    g_model.load_state_dict({k: v.numpy() for k, v in t_model.state_dict().items()})
    g_opt, t_opt = graphc.optim.Adam(g_model.parameters(), lr=digits.LR), torch.optim.Adam(t_model.parameters(),
                                                                                         lr=digits.LR)
    order = np.random.default_rng(0).permutation(len(train_y))
    g_losses, t_losses = [], []
    for step in range(20):
        batch = order[(step * digits.BATCH_SIZE) % 1472:][:digits.BATCH_SIZE]
        g_losses.append(digits.train_step(g_model, g_opt, graphc.nn.CrossEntropyLoss(), graphc.tensor(train_x[batch]),
                                          graphc.tensor(train_y[batch])).item())
        t_losses.append(digits.train_step(t_model, t_opt, torch.nn.CrossEntropyLoss(), torch.tensor(train_x[batch]),
                                          torch.tensor(train_y[batch])).item())
    np.testing.assert_allclose(g_losses, t_losses, rtol=1e-4)
    assert t_losses[-1] < t_losses[0] - 0.1  # it did learn


def test_mlp_example_reaches_95_percent(tmp_path, capsys):
    accuracy = train_digits_mlp.main(["--checkpoint", str(tmp_path / "mlp.ckpt")])
    assert accuracy >= 0.95
    out = capsys.readouterr()
    assert "test accuracy" in out.out and "(unchanged)" in out.out and "loss" in out.err
    assert os.path.exists(tmp_path / "mlp.ckpt")


@pytest.mark.parametrize("example", [train_digits_mlp, train_digits_cnn], ids=["mlp", "cnn"])
def test_examples_run_and_checkpoint(example, tmp_path, capsys):
    accuracy = example.main(["--epochs", "1", "--checkpoint", str(tmp_path / "model.ckpt")])
    assert 0.1 < accuracy <= 1.0
    assert "reloaded model + optimizer state" in capsys.readouterr().out


def test_compiled_train_step_matches_eager():
    """The examples' --compile path: nn, cross-entropy, backward and Adam captured by graphc.compile give the eager
    losses and weights, and a smaller last batch reuses the compiled plan."""
    train_x, train_y, _, _ = digits.load_split()
    models = [train_digits_mlp.make_model() for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    optimizers = [graphc.optim.Adam(m.parameters(), lr=digits.LR) for m in models]
    compiled, loss_fn = graphc.compile(digits.train_step), graphc.nn.CrossEntropyLoss()
    for start, size in [(0, 64), (64, 64), (128, 64), (192, 28)]:
        x, y = graphc.tensor(train_x[start:start + size]), graphc.tensor(train_y[start:start + size])
        eager_loss = digits.train_step(models[0], optimizers[0], loss_fn, x, y).item()
        compiled_loss = compiled(models[1], optimizers[1], loss_fn, x, y).item()
        assert compiled_loss == pytest.approx(eager_loss, rel=1e-5)
    assert compiled.num_compiles == 1
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_numpy_plan_shares_buffers_by_liveness():
    """Peak traced memory of steady Adam training steps (parameters, optimizer state, activations): the numpy plan's
    intermediates share buffers by liveness and none are kept between calls, and the optimizer's updates are
    computed into the parameters and moments (reinplacing). Before, every ufunc step kept its own buffer from call
    to call: 2.6x eager's peak here; then 1.5x while every new value lived until it was copied back; now 1.2x (the
    old .grad tensors live until the replay sets the new ones, where eager's zero_grad drops them first). The traces'
    reference cycles are collected before measuring."""
    import gc
    import tracemalloc

    def peak(compiled: bool) -> int:
        tracemalloc.start()
        graphc.manual_seed(0)
        nn = graphc.nn
        model = nn.Sequential(nn.Linear(32, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
        opt = graphc.optim.Adam(model.parameters(), 1e-3)
        x, y = graphc.randn(128, 32), graphc.randint(0, 10, (128,))

        def step(x, y):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss

        fn = graphc.compile(step, backend="numpy") if compiled else step
        for _ in range(2):
            fn(x, y)
        gc.collect()
        tracemalloc.reset_peak()
        for _ in range(3):
            fn(x, y)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    peak(False), peak(True)  # first uses: imports, caches
    eager, compiled = peak(False), peak(True)
    assert compiled <= 1.25 * eager, (compiled, eager)


def test_the_numpy_plan_computes_division_into_shared_buffers():
    """div's forward is a function (for its rounding modes); without one it declares np.true_divide (Op.ufunc), so
    the numpy plan computes it into a shared buffer as it does other ufuncs, and so the ufuncs that feed it: Adam's
    two divisions per parameter and the sqrt and add before them no longer allocate new arrays on every call (the
    cpu backend's first calls run this plan: fresh pages cost the most there)."""
    rng = np.random.default_rng(0)
    a, b = np.abs(rng.standard_normal((64, 48))).astype(np.float32), rng.standard_normal((64, 48)).astype(np.float32)
    s = np.array(0.3)  # a 0-d float64 divisor, as Adam's bias correction: float32 results, as in torch

    def f(a, b, s):
        return ((b * 2) / (a.sqrt() / s + 1e-8) - 1).sum(-1)

    compiled = graphc.compile(f, backend="numpy")
    for _ in range(2):
        got = compiled(graphc.tensor(a), graphc.tensor(b), graphc.tensor(s))
        want = f(torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(s))
        assert got.dtype is graphc.float32
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    (runtime,) = compiled._plans.values()
    steps = [s for s in runtime.plan.steps if s.ops[0] in ("div", "sqrt", "add")]
    assert len(steps) == 4 and all(s.takes for s in steps), [(s.ops, s.takes) for s in steps]


def test_the_numpy_plans_first_call_computes_into_dead_operands_and_matches_torch(monkeypatch):
    """A compiled Adam step's first call (the cpu backend's first tier runs this plan; it also creates Adam's state)
    and the replays after it: a ufunc computes into the buffer of an operand it reads for the last time (a linear
    layer's bias is added into its product's buffer, although the bias's sum_to in the backward reads the product's
    shape later; one parameter's Adam temporaries share arrays), where eager numpy code would allocate. Losses,
    gradients, parameters and moments equal torch's, and the parameters are updated in place (a view taken before
    the calls sees the updates)."""
    from graphc.compiler import runtime

    ran: list[tuple] = []  # (op, shape, output address, operand addresses) of each step of the calls
    made = runtime.OpStep.__init__

    def recorded(self, node, buffers=None):
        made(self, node, buffers)
        run = self.run

        def record(values):
            run(values)
            arrays = [values[x] for x in node.inputs if type(x) is runtime.Node]
            ran.append((node.op.name, values[node].shape, values[node].ctypes.data, [a.ctypes.data for a in arrays]))
        self.run = record

    monkeypatch.setattr(runtime.OpStep, "__init__", recorded)
    rng = np.random.default_rng(0)
    tmodel = torch_mlp()
    model = graphc.nn.Sequential(graphc.nn.Linear(64, 100), graphc.nn.ReLU(), graphc.nn.Linear(100, 100),
                                 graphc.nn.ReLU(), graphc.nn.Linear(100, 10))
    model.load_state_dict({k: graphc.tensor(v.detach().numpy()) for k, v in tmodel.state_dict().items()})
    opt, topt = graphc.optim.Adam(model.parameters(), 1e-2), torch.optim.Adam(tmodel.parameters(), 1e-2)
    views = [p.detach().view(-1) for p in model.parameters()]

    compiled = graphc.compile(digits.train_step, backend="numpy")
    for i in range(3):
        x, y = rng.standard_normal((32, 64)).astype(np.float32), rng.integers(0, 10, 32)
        loss = compiled(model, opt, graphc.nn.CrossEntropyLoss(), graphc.tensor(x), graphc.tensor(y))
        tloss = digits.train_step(tmodel, topt, torch.nn.CrossEntropyLoss(), torch.from_numpy(x), torch.from_numpy(y))
        np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-5)
        if i == 0:
            biased = [r for r in ran if r[0] == "add" and r[1] == (32, 100)]
            assert len(biased) == 2 and all(out in operands for _, _, out, operands in biased), biased
            into = [r for r in ran if r[1] == (100, 100) and r[2] in r[3]]  # Adam's ufuncs on the hidden weight
            assert len(into) >= 6, into
        for p, tp, view in zip(model.parameters(), tmodel.parameters(), views):
            np.testing.assert_allclose(p.grad.numpy(), tp.grad.numpy(), rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(view.numpy(), p.detach().numpy().reshape(-1))
            for key in ("exp_avg", "exp_avg_sq"):
                np.testing.assert_allclose(opt.state[p][key].numpy(), topt.state[tp][key].numpy(), rtol=1e-5,
                                           atol=1e-8)
