"""Reinplacing (graphc/compiler/reinplace.py): compiled steps that update their inputs in place compute the new
values straight into the inputs' memory where nothing can tell, and keep the write-back copy where something could
(the old value read later, a result or .grad holding the new value, aliased or oddly laid out arrays). Every test
compares values, gradients and optimizer state with torch after several replayed calls, on the numpy backend and on
the cpu backend's native kernels."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import assert_close

import graphc
from graphc.compiler.runtime import InputsWrittenError

BACKENDS = ["numpy", "cpu"]
RNG = np.random.default_rng(0)


def compiled(fn, backend: str):
    return graphc.compile(fn, backend=backend, mode="max-autotune" if backend == "cpu" else "default")


def written(fn) -> int:
    """How many inputs the cached plans of a compiled function compute new values into."""
    return sum(len(runtime.written) for runtime in fn._plans.values())


def mlp(L, sizes: list[int], dtype=np.float32, bias: bool = True):
    """The same MLP in torch or graphc, weights from one seeded generator."""
    rng = np.random.default_rng(1)
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layer = L.nn.Linear(a, b, bias=bias)
        with L.no_grad():
            layer.weight.copy_(L.tensor(rng.standard_normal((b, a)).astype(dtype) * a**-0.5))
            if bias:
                layer.bias.copy_(L.tensor(rng.standard_normal(b).astype(dtype) * 0.1))
        layers += [layer, L.nn.ReLU()] if i < len(sizes) - 2 else [layer]
    return L.nn.Sequential(*layers)


OPTIMIZERS = {
    "adam": lambda L, p: L.optim.Adam(p, lr=1e-2),
    "adamw": lambda L, p: L.optim.AdamW(p, lr=1e-2, weight_decay=0.1),
    "adam_amsgrad": lambda L, p: L.optim.Adam(p, lr=1e-2, amsgrad=True),
    "sgd_momentum": lambda L, p: L.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-3),
    "sgd_nesterov": lambda L, p: L.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
}


def _train_step(L, model, opt, loss_fn=lambda L, out, y: L.nn.functional.cross_entropy(out, y)):
    def step(x, *targets):
        opt.zero_grad()
        loss = loss_fn(L, model(x), *targets)
        loss.backward()
        opt.step()
        return loss
    return step


def check_training(make_model, make_opt, backend: str, steps: int = 4, rtol=1e-4, atol=1e-5, batch: int = 6,
                   features: int = 8, classes: int = 4):
    """Train graphc (compiled) and torch (eager) from the same weights; compare losses, parameters, gradients and
    optimizer state after every call (the state is created on the first call)."""
    gm, tm = make_model(graphc), make_model(torch)
    gopt, topt = make_opt(graphc, gm.parameters()), make_opt(torch, tm.parameters())
    step = compiled(_train_step(graphc, gm, gopt), backend)
    tstep = _train_step(torch, tm, topt)
    for _ in range(steps):
        x = RNG.standard_normal((batch, features)).astype(np.float32)
        y = RNG.integers(0, classes, batch)
        loss, tloss = step(graphc.tensor(x), graphc.tensor(y)), tstep(torch.tensor(x), torch.tensor(y))
        assert_close(loss, tloss, rtol, atol)
        for p, tp in zip(gm.parameters(), tm.parameters()):
            assert_close(p, tp, rtol, atol)
            assert_close(p.grad, tp.grad, rtol, atol)
            for key, value in topt.state[tp].items():
                if isinstance(value, torch.Tensor):
                    assert_close(gopt.state[p][key], value, rtol, atol)
    return step


@pytest.mark.parametrize("name,backend", [(name, "numpy") for name in OPTIMIZERS] +
                         [("adamw", "cpu"), ("sgd_nesterov", "cpu")])
def test_optimizer_steps_write_parameters_and_state_in_place_like_torch(name, backend):
    step = check_training(lambda L: mlp(L, [8, 16, 4]), OPTIMIZERS[name], backend)
    assert written(step) > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_weight_tied_language_model_matches_torch(backend):
    """The embedding and the output layer share one weight (one input, its gradient summed from both uses)."""
    def make(L):
        rng = np.random.default_rng(2)
        emb = L.nn.Embedding(11, 8)
        head = L.nn.Linear(8, 11, bias=False)
        with L.no_grad():
            emb.weight.copy_(L.tensor(rng.standard_normal((11, 8)).astype(np.float32)))
        head.weight = emb.weight
        model = L.nn.Sequential(emb, L.nn.Tanh(), head)
        return model

    def opt(L, params):
        return L.optim.AdamW(list(dict.fromkeys(params)), lr=1e-2)

    gm, tm = make(graphc), make(torch)
    gopt, topt = opt(graphc, gm.parameters()), opt(torch, tm.parameters())

    def loss(L, out, y):
        return L.nn.functional.cross_entropy(out.reshape(-1, 11), y.reshape(-1))

    gstep, tstep = compiled(_train_step(graphc, gm, gopt, loss), backend), _train_step(torch, tm, topt, loss)
    for _ in range(4):
        x, y = RNG.integers(0, 11, (3, 5)), RNG.integers(0, 11, (3, 5))
        assert_close(gstep(graphc.tensor(x), graphc.tensor(y)), tstep(torch.tensor(x), torch.tensor(y)), 1e-4, 1e-5)
        assert_close(gm[0].weight, tm[0].weight, 1e-4, 1e-5)
        assert gm[2].weight is gm[0].weight
        assert_close(gopt.state[gm[0].weight]["exp_avg"], topt.state[tm[0].weight]["exp_avg"], 1e-4, 1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fp16_parameters_match_torch(backend):
    def make(L):
        return mlp(L, [8, 16, 4], np.float16).to(L.float16)

    gm, tm = make(graphc), make(torch)
    gopt = graphc.optim.SGD(gm.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9)

    def loss(L, out):
        return (out.float() ** 2).mean()

    gstep, tstep = compiled(_train_step(graphc, gm, gopt, loss), backend), _train_step(torch, tm, topt, loss)
    for _ in range(4):
        x = RNG.standard_normal((5, 8)).astype(np.float16)
        assert_close(gstep(graphc.tensor(x)), tstep(torch.tensor(x)), 1e-2, 1e-2)
        for p, tp in zip(gm.parameters(), tm.parameters()):
            assert p.dtype is graphc.float16
            assert_close(p, tp, 1e-2, 1e-3)


def _both(program, arrays, backend: str, calls: int = 4, check_args: bool = True):
    """program(L, *tensors) compiled for graphc equals torch on every call, results and arguments afterwards;
    returns the compiled function and the last results."""
    run = compiled(lambda *args: program(graphc, *args), backend)
    for call in range(calls):
        args = [graphc.tensor(a + call) for a in arrays]
        targs = [torch.tensor(a + call) for a in arrays]
        got, want = run(*args), program(torch, *targs)
        got, want = (got, want) if isinstance(got, tuple) else ((got,), (want,))
        for g, w in zip(got + (tuple(args) if check_args else ()), want + (tuple(targs) if check_args else ())):
            assert_close(g, w)
    return run, got, args


A = RNG.standard_normal((4, 6)).astype(np.float32)
B = RNG.standard_normal((6,)).astype(np.float32)

BOTH, CPU, NONE = {"numpy", "cpu"}, {"cpu"}, set()
# (program(L, *tensors), arrays, the backends whose plan computes the update in place: a numpy ufunc, or a C kernel
# reading the argument at the element it writes; a view op's or a clone's result, and a value also returned, is copied)
PROGRAMS = {
    "update_then_read": (lambda L, x: (x.add_(1), x * 2)[1], [A], BOTH),
    "read_then_update": (lambda L, x: (lambda y: (x.mul_(3), y)[1])(x * 2), [A], BOTH),
    "old_value_cloned_and_returned": (lambda L, x: (lambda old: (x.mul_(2), old + x)[1])(x.clone()), [A], BOTH),
    "view_read_after_the_update": (lambda L, x: (lambda v: (x.add_(1), v * 1)[1])(x.t()), [A], BOTH),
    "new_value_not_read_from_the_argument": (lambda L, x, b: (x.copy_(b * 2), x.sum())[1], [A, B], NONE),
    "zeroed": (lambda L, x: (x.zero_(), x + 1)[1], [A], CPU),
    "chain_of_updates": (lambda L, x, b: x.mul_(0.5).add_(b).clamp_(min=-0.5), [A, B], CPU),
    "the_returned_result_equals_the_new_value": (lambda L, x, b: (x.copy_(b + 1), b + 1)[1], [A, B], NONE),
    "update_of_a_row_then_whole": (lambda L, x: (x[1].mul_(4), x.add_(1), x.sum(0))[2], [A], {"numpy"}),
    "swap_through_a_copy": (lambda L, x, y: (lambda t: (x.copy_(y), y.copy_(t), x - y)[2])(x.clone()),
                            [A, A * 3], NONE),
    "column_scaled_through_a_view": (lambda L, x: (x[:, 0].mul_(2), x.sum(1))[1], [A], NONE),
    "detached_alias_scaled": (lambda L, x: (x.detach().mul_(3), x + 0)[1], [A], BOTH),
    "transposed_alias_updated": (lambda L, x, b: (x.t().add_(b[None, :4]), x * 1)[1], [A, B], NONE),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", PROGRAMS)
def test_functions_updating_arguments_match_torch(name, backend):
    program, arrays, in_place = PROGRAMS[name]
    run, _, _ = _both(program, arrays, backend)
    assert written(run) == (backend in in_place)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_result_holding_the_new_value_is_not_the_argument(backend):
    """x.copy_(b + 1) and a returned b + 1 are one node after CSE: the result must be its own memory (writing to it
    leaves x alone), as torch's is."""
    run, got, args = _both(PROGRAMS["the_returned_result_equals_the_new_value"][0], [A, B], backend)
    got[0].mul_(0)
    assert_close(args[0], torch.tensor(B + 3 + 1).expand(4, 6))


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_argument_viewed_by_another_argument(backend):
    """x.add_(1) where x is a view of the other argument (argument aliasing): the base sees it, as in torch."""
    def program(L, base, x):
        x.add_(1)
        return base * 2

    run = compiled(lambda *args: program(graphc, *args), backend)
    for call in range(4):
        base, tbase = graphc.tensor(A + call), torch.tensor(A + call)
        got, want = run(base, base[1:3]), program(torch, tbase, tbase[1:3])
        assert_close(got, want)
        assert_close(base, tbase)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_same_tensor_passed_twice(backend):
    run = compiled(lambda x, y: x.add_(y).mul_(2), backend)
    for call in range(4):
        x, tx = graphc.tensor(A + call), torch.tensor(A + call)
        run(x, x)
        tx.add_(tx).mul_(2)
        assert_close(x, tx)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", ["transposed", "sliced"])
def test_strided_arguments_updated_in_place(layout, backend):
    """A transposed argument is column-major (computed into); a sliced one has gaps (the copy is kept)."""
    def make(L, a):
        return L.tensor(a).t() if layout == "transposed" else L.tensor(a)[:, :3]

    run = compiled(lambda x, b: x.mul_(2).add_(b), backend)
    for call in range(3):
        x, tx = make(graphc, A.T.copy() + call), make(torch, A.T.copy() + call)
        b = RNG.standard_normal(x.shape[1]).astype(np.float32)
        run(x, graphc.tensor(b))
        tx.mul_(2).add_(torch.tensor(b))
        assert_close(x, tx)


@pytest.mark.parametrize("backend", BACKENDS)
def test_parameter_returned_after_its_update(backend):
    gm, tm = mlp(graphc, [8, 4], bias=False), mlp(torch, [8, 4], bias=False)
    gopt, topt = graphc.optim.SGD(gm.parameters(), lr=0.5), torch.optim.SGD(tm.parameters(), lr=0.5)

    def step(L, model, opt):
        def run(x):
            opt.zero_grad()
            old = model[0].weight.detach().clone()
            model(x).square().mean().backward()
            opt.step()
            return model[0].weight.detach(), old, (model[0].weight * 1).detach()
        return run
    gstep, tstep = compiled(step(graphc, gm, gopt), backend), step(torch, tm, topt)
    for _ in range(4):
        x = RNG.standard_normal((3, 8)).astype(np.float32)
        got, want = gstep(graphc.tensor(x)), tstep(torch.tensor(x))
        for g, w in zip(got, want):
            assert_close(g, w)
        assert got[0].data_ptr() == gm[0].weight.data_ptr()
    assert gstep.num_traces == 2 and written(gstep) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failed_replay_after_an_update_in_place_is_not_run_again(backend):
    """The update happened (as eagerly, before the failing op); running the call again eagerly would apply it twice."""
    table = graphc.tensor(RNG.standard_normal((5, 3)).astype(np.float32))

    def program(x, idx):
        x.mul_(2)
        return table[idx] * 1

    run = compiled(program, backend)
    x = graphc.tensor(A.copy())
    for call in range(3):
        run(x, graphc.tensor(np.array([call, 1])))
    before = x.numpy().copy()
    with pytest.raises(InputsWrittenError, match=r"index \(at .*test_reinplace.py:\d+\) failed after the call had "
                                                 "updated inputs in place"):
        run(x, graphc.tensor(np.array([7, 1])))
    np.testing.assert_array_equal(x.numpy(), before * 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_arrays_sharing_memory_at_a_replay_are_not_written_in_place(backend):
    """A tensor the function reads by identity is made to share the written one's memory after the trace: the replay
    computes into new memory and copies, as before reinplacing."""
    acc, step_size = graphc.tensor(A.copy()), graphc.tensor(A * 0 + 0.5)

    def program(x):
        acc.add_(x * step_size)
        return acc.sum()

    run = compiled(program, backend)
    tacc = torch.tensor(A.copy())
    for call in range(4):
        if call == 2:
            step_size.data = acc.data
        x = RNG.standard_normal((4, 6)).astype(np.float32)
        scale = torch.tensor(A * 0 + 0.5) if call < 2 else tacc.clone()
        tacc.add_(torch.tensor(x) * scale)
        assert_close(run(graphc.tensor(x)), tacc.sum(), 1e-4, 1e-4)
        assert_close(acc, tacc)


def test_mode_check_on_an_updating_step():
    """mode='check' compares every step with op-by-op values computed from the inputs as they were."""
    x = graphc.tensor(A.copy())
    tx = torch.tensor(A.copy())
    run = graphc.compile(lambda x, b: x.mul_(2).add_(b), backend="numpy", mode="check")
    for _ in range(3):
        run(x, graphc.tensor(B))
        tx.mul_(2).add_(torch.tensor(B))
    assert_close(x, tx)


def test_triton_plans_keep_the_write_back():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = graphc.compile(lambda x: x.add_(1), backend="interpret")
        x, tx = graphc.tensor(A.copy()), torch.tensor(A.copy())
        for _ in range(3):
            run(x)
            tx.add_(1)
    assert_close(x, tx)
    assert written(run) == 0
