"""graphc.compile: capture, replay, guards, in-place write-back, graph breaks, fallbacks, modes, explain."""
from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from conftest import assert_close, to_torch, train_compiled_alongside_torch

import graphc
from graphc.compiler import CaptureError, GraphBreakError
from graphc.compiler.compile import MAX_ENTRIES


def test_compiled_matches_torch_and_reads_free_tensors_at_call_time():
    w = graphc.randn(4, 3)
    b = graphc.randn(3)

    @graphc.compile
    def f(x):
        return ((x @ w + b).relu() * 2).sum(dim=1)

    x = graphc.randn(5, 4)
    assert_close(f(x), ((to_torch(x) @ to_torch(w) + to_torch(b)).relu() * 2).sum(dim=1), rtol=1e-5)
    w.mul_(-1.0)  # a parameter update outside: the next call must see it
    assert_close(f(x), ((to_torch(x) @ to_torch(w) + to_torch(b)).relu() * 2).sum(dim=1), rtol=1e-5)
    assert f.num_compiles == 1


def test_one_compile_across_batch_sizes():
    w = graphc.randn(6, 2)

    @graphc.compile
    def f(x):
        return (x @ w).softmax(dim=1) if hasattr(graphc.Tensor, "softmax") else (x @ w).exp()

    for n in (8, 8, 3, 17):
        x = graphc.randn(n, 6)
        tw = to_torch(w)
        want = (to_torch(x) @ tw).softmax(dim=1) if hasattr(graphc.Tensor, "softmax") else (to_torch(x) @ tw).exp()
        assert_close(f(x), want, rtol=1e-5)
    assert f.num_compiles == 1


def test_guards_recompile_on_dtype_rank_and_scalar():
    @graphc.compile
    def f(x, k):
        return x * k

    f(graphc.ones(3), 2.0)
    f(graphc.ones(5), 2.0)
    assert f.num_compiles == 1
    assert f(graphc.ones(3), 3.0).tolist() == [3.0, 3.0, 3.0]
    assert f(graphc.ones(2, 2), 3.0).tolist() == [[3.0, 3.0], [3.0, 3.0]]
    assert f(graphc.ones(3, dtype=graphc.float64), 3.0).dtype is graphc.float64
    assert f.num_compiles == 3  # a float only multiplied is a runtime input: no plan per value


def test_shape_read_specialises_on_sizes():
    @graphc.compile
    def f(x):
        return x.reshape(x.shape[0] * x.shape[1])

    assert f(graphc.ones(2, 3)).shape == (6,)
    assert f(graphc.ones(4, 3)).shape == (12,)
    assert f(graphc.ones(4, 3)).shape == (12,)
    assert f.num_compiles == 2


def test_only_the_sizes_read_are_guarded():
    """Reading h.shape[-1] of an intermediate (a size fixed by the weight) does not tie the plan to the batch size;
    a call where that size changes compiles again and is correct."""
    def block(x, w):
        h = (x @ w).relu()
        return torch_or_graphc(h).nn.functional.layer_norm(h, (h.shape[-1],)) * h.size(-1)

    compiled = graphc.compile(block)
    for rows, cols in ((4, 6), (7, 6), (1, 6), (3, 5), (9, 5)):
        x, w = np.random.randn(rows, 3).astype(np.float32), np.random.randn(3, cols).astype(np.float32)
        assert_close(compiled(graphc.tensor(x), graphc.tensor(w)), block(torch.from_numpy(x), torch.from_numpy(w)),
                     rtol=1e-5, atol=1e-5)
    assert compiled.num_compiles == 2


def torch_or_graphc(t):
    return torch if isinstance(t, torch.Tensor) else graphc


@pytest.mark.parametrize("read", [lambda s: 1 + (s == (4, 3)), lambda s: sum(list(s)), lambda s: int(str(s)[13]),
                                  lambda s: s[0:1][0], lambda s: ((1,) + s)[1], lambda s: {s: 1}.get((4, 3), 2),
                                  lambda s: x_times(*s)])
def test_every_way_of_seeing_a_size_guards_it(read):
    def f(x):
        return x * read(x.shape)

    compiled = graphc.compile(f)
    for rows in (4, 5, 4):
        x = graphc.ones(rows, 3)
        assert_close(compiled(x), f(x))


def x_times(rows, cols):
    return rows * cols


def test_inplace_updates_are_written_back():
    p = graphc.ones(3)
    m = graphc.zeros(3)

    @graphc.compile
    def update(g):
        m.mul_(0.5).add_(g)
        p.sub_(m * 0.1)
        return p.sum()

    g = graphc.tensor([1.0, 2.0, 3.0])
    tp, tm = torch.ones(3), torch.zeros(3)
    for _ in range(3):
        s = update(g)
        tm.mul_(0.5).add_(torch.tensor([1.0, 2.0, 3.0]))
        tp.sub_(tm * 0.1)
        assert_close(p, tp)
        assert_close(m, tm)
        assert s.item() == pytest.approx(float(tp.sum()), rel=1e-6)
    assert update.num_compiles == 1


def test_copy_swap_uses_old_values():
    a, b = graphc.tensor([1.0, 2.0]), graphc.tensor([3.0, 4.0])

    @graphc.compile
    def swap():
        old = a.clone()
        a.copy_(b)
        b.copy_(old)

    swap()
    swap()
    swap()
    assert a.tolist() == [3.0, 4.0] and b.tolist() == [1.0, 2.0]


def _mlp_params(seed: int):
    rng = np.random.default_rng(seed)
    shapes = [(8, 16), (16,), (16, 4), (4,)]
    return [graphc.tensor((rng.standard_normal(s) * 0.3).astype(np.float32), requires_grad=True) for s in shapes]


def _raw_step(params, opt):
    w1, b1, w2, b2 = params

    def step(x, y):
        opt.zero_grad()
        logits = (x @ w1 + b1).relu() @ w2 + b2
        top = logits.amax(dim=1, keepdim=True)
        logp = logits - top - (logits - top).exp().sum(dim=1, keepdim=True).log()
        loss = -(logp * y).sum(dim=1).mean()
        loss.backward()
        opt.step()
        return loss
    return step


def test_compiled_training_step_equals_eager_over_steps():
    eager_params, comp_params = _mlp_params(0), _mlp_params(0)
    eager_opt, comp_opt = graphc.optim.Adam(eager_params, lr=0.01), graphc.optim.Adam(comp_params, lr=0.01)
    eager_step = _raw_step(eager_params, eager_opt)
    comp_step = graphc.compile(_raw_step(comp_params, comp_opt))
    rng = np.random.default_rng(1)
    for n in (10, 10, 10, 4, 10, 3):
        x = graphc.tensor(rng.standard_normal((n, 8)).astype(np.float32))
        y = graphc.tensor(np.eye(4, dtype=np.float32)[rng.integers(0, 4, n)])
        le, lc = eager_step(x, y), comp_step(x, y)
        assert lc.item() == pytest.approx(le.item(), rel=1e-5)
        for a, b in zip(eager_params, comp_params):
            np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=1e-5, atol=1e-6)
    assert comp_step.num_compiles == 1
    with pytest.raises(RuntimeError, match="second time"):
        lc.backward()


def test_compiled_nn_training_matches_torch():
    nn = graphc.nn
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    tmodel = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    with torch.no_grad():
        for tp, p in zip(tmodel.parameters(), model.parameters()):
            tp.copy_(to_torch(p, requires_grad=False))
    opt, topt = graphc.optim.Adam(model.parameters(), lr=0.01), torch.optim.Adam(tmodel.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()

    @graphc.compile
    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    rng = np.random.default_rng(0)
    for n in (16, 16, 16, 5):
        x, y = rng.standard_normal((n, 8)).astype(np.float32), rng.integers(0, 4, n)
        loss = step(graphc.tensor(x), graphc.tensor(y))
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(x)), torch.from_numpy(y))
        tloss.backward()
        topt.step()
        assert loss.item() == pytest.approx(tloss.item(), rel=1e-4)
    for tp, p in zip(tmodel.parameters(), model.parameters()):
        assert_close(p.detach(), tp, rtol=1e-4, atol=1e-5)
    assert step.num_compiles == 1


def test_graph_break_takes_both_branches():
    @graphc.compile
    def f(x):
        y = x * 2
        if y.sum() > 0:
            return y + 1
        return y - 1

    assert f(graphc.tensor([1.0, 2.0])).tolist() == [3.0, 5.0]
    assert f(graphc.tensor([-1.0, -2.0])).tolist() == [-3.0, -5.0]
    assert f(graphc.tensor([3.0, 1.0])).tolist() == [7.0, 3.0]
    assert f(graphc.tensor([5.0, 1.0])).tolist() == [11.0, 3.0]
    assert f.num_compiles == 3  # the graph before the break, and one per branch: reused across values
    report = graphc.explain(f, graphc.tensor([1.0]))
    assert len(report.graph_breaks) == 1
    reason, where = report.graph_breaks[0]
    assert "bool" in reason and where.endswith(f":{f.__wrapped__.__code__.co_firstlineno + 3}")


def test_item_break_inside_loop_is_correct():
    w = graphc.tensor([0.5])

    @graphc.compile
    def f(x):
        total = 0.0
        for _ in range(3):
            x = x * w + 1
            total += x.sum().item()
        return x, total

    x, total = f(graphc.tensor([4.0]))
    assert x.tolist() == [2.25] and total == pytest.approx(3.0 + 2.5 + 2.25)
    x, total = f(graphc.tensor([0.0]))
    assert x.tolist() == [1.75] and total == pytest.approx(1.0 + 1.5 + 1.75)


def test_a_number_read_at_a_graph_break_is_a_runtime_input_of_the_next_piece():
    """`s = t.item()` then `x + s`: the piece after the break reads s at run time (as torch.compile's unspecialized
    floats), so its plan serves every value instead of one new plan per value; eager's promotion is kept (a float32
    tensor stays float32, an integer tensor times a float gives the default float dtype)."""
    def f(lib, x, n):
        s = x.sum().item()
        m = float(x.max())
        return (x + s).exp() * s, n * m, x ** m

    compiled = graphc.compile(lambda x, n: f(graphc, x, n), backend="numpy")
    rng = np.random.default_rng(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the graph break's notice
        for _ in range(12):
            x, n = rng.random(6).astype(np.float32), rng.integers(0, 5, 6)
            for got, want in zip(compiled(graphc.tensor(x), graphc.tensor(n)), f(torch, torch.tensor(x),
                                                                                   torch.tensor(n))):
                assert got.dtype.name == str(want.dtype).removeprefix("torch.")
                assert_close(got, want, rtol=1e-6, atol=1e-6)
    assert compiled.num_traces == 12 and compiled.num_compiles == 3  # the piece before each break, and the last


def test_a_piece_baking_a_new_number_on_every_call_stops_at_the_plan_cap_with_one_warning():
    """A number computed in Python from a tensor's value and used as an op's attribute is part of the next piece's
    graph: each value is a new plan, up to the cap of 8 per piece; past it, one warning names the break, that call's
    piece is planned for it only, and later calls run eagerly (no cache growing without bound), with the right
    values."""
    def f(lib, x):
        s = x.sum().item()
        return x.clamp(max=s * 0.1)

    compiled = graphc.compile(lambda x: f(graphc, x), backend="numpy")
    line = f.__code__.co_firstlineno + 1
    rng = np.random.default_rng(4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(12):
            x = rng.random(6).astype(np.float32)
            assert_close(compiled(graphc.tensor(x)), f(torch, torch.tensor(x)), rtol=1e-6, atol=1e-7)
    capped = [str(w.message) for w in caught if "the most kept per piece" in str(w.message)]
    assert len(capped) == 1 and f"after the graph break at {__file__}:{line}" in capped[0]
    assert compiled.num_traces == 9 and compiled.num_compiles == 1 + 8


def test_a_graph_break_warns_once_naming_the_line_and_the_tensor():
    """A function with a graph break runs its Python on every call: that is a slow path, so it says so once."""
    def f(x):
        y = (x * 2).sum()
        return x + y.item()

    compiled = graphc.compile(f, backend="numpy")
    line = f.__code__.co_firstlineno + 2
    with pytest.warns(RuntimeWarning, match=rf"runs its Python again on every call .* graph break at .*test_compile"
                                            rf".py:{line}: Tensor.item\(\) needs the tensor's value \(sum, shape "
                                            rf"\[\], made at .*test_compile.py:{line - 1}\)"):
        out = compiled(graphc.ones(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = compiled(graphc.ones(2))
    assert out.tolist() == (torch.ones(2) + (torch.ones(2) * 2).sum().item()).tolist()


def test_a_statistic_computed_after_backward_is_returned_from_a_replay():
    """A GAN step returns D(G(z)).mean() computed after its own backward (the DCGAN example's D_G_z2): torch hands
    back a tensor requiring grad whose backward raises (the graph is freed). The step replays, with torch's values,
    and the returned tensor's backward raises as torch's does."""
    def make(lib):
        lib.manual_seed(0)
        d = lib.nn.Sequential(lib.nn.Linear(2, 8), lib.nn.LeakyReLU(0.2), lib.nn.Linear(8, 1))
        return d, lib.optim.Adam(d.parameters(), lr=1e-2, betas=(0.5, 0.999))

    (td, topt), (gd, gopt) = make(torch), make(graphc)
    gd.load_state_dict({k: graphc.tensor(v.detach().numpy()) for k, v in td.state_dict().items()})

    def step(lib, d, opt):
        def f(real):
            opt.zero_grad()
            out = d(real).view(-1)
            loss = lib.nn.functional.binary_cross_entropy_with_logits(out, lib.ones(out.shape[0]))
            loss.backward()
            opt.step()
            return loss, out.mean()
        return f

    compiled, eager = graphc.compile(step(graphc, gd, gopt), backend="numpy"), step(torch, td, topt)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(4):
            real = rng.standard_normal((16, 2)).astype(np.float32)
            (gl, gm), (tl, tm) = compiled(graphc.tensor(real)), eager(torch.tensor(real))
            assert_close(gl, tl)
            assert_close(gm, tm)
    assert compiled.num_traces == 2, compiled.num_traces  # the first call creates Adam's state, the second is replayed
    assert gm.requires_grad and tm.requires_grad
    with pytest.raises(RuntimeError, match="second time"):
        tm.backward()
    with pytest.raises(RuntimeError, match="second time"):
        gm.backward()


def test_fullgraph_raises_naming_the_line():
    def f(x):
        return float(x.sum())

    with pytest.raises(GraphBreakError, match=rf"test_compile.py:{f.__code__.co_firstlineno + 1}"):
        graphc.compile(f, fullgraph=True)(graphc.ones(2))


def test_unsupported_capture_warns_once_and_runs_eagerly():
    @graphc.compile
    def f(x, y):  # overlapping arguments that no argument covers: not functionalized
        x.add_(1)
        return y * 1

    for call in range(2):
        a, ta = graphc.zeros(2, 3), torch.zeros(2, 3)
        if call == 0:
            with pytest.warns(RuntimeWarning, match="runs eagerly: in-place update of an argument"):
                out = f(a[:, :2], a[:, 1:])
        else:
            out = f(a[:, :2], a[:, 1:])
        ta[:, :2].add_(1)
        assert out.tolist() == ta[:, 1:].tolist() and a.tolist() == ta.tolist()
    with pytest.raises(CaptureError):
        graphc.compile(f.__wrapped__, fullgraph=True)(a[:, :2], a[:, 1:])


def test_returned_tensor_requiring_grad_keeps_autograd():
    w = graphc.tensor([1.0, 2.0], requires_grad=True)
    f = graphc.compile(lambda x: (x * w).sum())  # replayed: a forward plan, and a backward plan run by its grad_fn
    f(graphc.ones(2)).backward()
    f(graphc.ones(2)).backward()
    assert w.grad.tolist() == [2.0, 2.0] and f.num_traces == 1


@pytest.mark.parametrize("which", ["first", "second", "both"])
def test_several_results_requiring_grad_replay_with_one_backward_plan(which):
    """`logits, loss = model(x, y)` (nanoGPT), `output, hidden = rnn(x, h)`: a compiled function returning several
    tensors that require grad replays; backward from any of them, or from a sum of both, gives torch's gradients
    (a result no gradient reached contributes zeros), and a second backward through the same call refuses."""
    tw = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    gw = graphc.tensor(tw.detach().numpy(), requires_grad=True)

    def f(lib, w):
        def fn(x, y):
            h = (x * w).tanh()
            return h, (h - y).pow(2).mean(), None
        return fn

    compiled = graphc.compile(f(graphc, gw), backend="numpy")
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            x, y = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((4, 3)).astype(np.float32)
            gh, gl, gnone = compiled(graphc.tensor(x), graphc.tensor(y))
            th, tl, _ = f(torch, tw)(torch.tensor(x), torch.tensor(y))
            assert gnone is None and gh.requires_grad and gl.requires_grad
            assert_close(gh, th)
            assert_close(gl, tl)
            pick = {"first": lambda h, loss: (h * 3).sum(), "second": lambda h, loss: loss,
                    "both": lambda h, loss: h.sum() + 2 * loss}[which]
            pick(gh, gl).backward()
            pick(th, tl).backward()
            assert_close(gw.grad, tw.grad)
    assert compiled.num_traces == 1
    with pytest.raises(RuntimeError, match="second time"):
        gl.backward()


def test_a_module_that_stores_a_tensor_requiring_grad_replays():
    """The Annotated Transformer's attention keeps its weights (`self.attn = p_attn`) for plotting: the compiled
    module replays from the second call (the first gives the attribute its first tensor), the stored tensor is this
    call's, and gradients through the result and through the stored tensor are torch's."""
    def build(lib):
        class Attention(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.q = lib.nn.Linear(4, 4)
                self.attn = None

            def forward(self, x):
                self.attn = (self.q(x) @ x.transpose(-1, -2)).softmax(-1)
                return self.attn @ x
        return Attention()
    ours, theirs = build(graphc), build(torch)
    ours.load_state_dict({k: graphc.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    compiled = graphc.compile(ours)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(4):
            x = rng.standard_normal((2, 3, 4)).astype(np.float32)
            out, tout = compiled(graphc.tensor(x)), theirs(torch.tensor(x))
            assert_close(out, tout)
            assert_close(ours.attn, theirs.attn)
            (out.sum() + ours.attn.square().sum()).backward()
            (tout.sum() + theirs.attn.square().sum()).backward()
            assert_close(ours.q.weight.grad, theirs.q.weight.grad, rtol=1e-4, atol=1e-5)
    assert compiled.num_traces == 2


@dataclass
class _ModelOutput:  # a Hugging Face style output record
    loss: object = None
    logits: object = None


@dataclass
class _Batch:
    inputs: object
    labels: object


def test_dataclass_outputs_and_arguments_replay():
    """A model returning a dataclass (`outputs.loss`, `outputs.logits`, as Hugging Face models do), trained with a
    compiled step that takes a dataclass batch: one forward and backward plan, torch's losses and gradients."""
    def build(lib):
        class Model(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = lib.nn.Linear(4, 3)

            def forward(self, x, labels=None):
                logits = self.linear(x)
                loss = None if labels is None else lib.nn.functional.cross_entropy(logits, labels)
                return _ModelOutput(loss=loss, logits=logits)
        return Model()
    ours, theirs = build(graphc), build(torch)
    ours.load_state_dict({k: graphc.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    compiled = graphc.compile(ours)
    step = graphc.compile(lambda batch: ours(batch.inputs, labels=batch.labels).loss * 2)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            x, y = rng.standard_normal((8, 4)).astype(np.float32), rng.integers(0, 3, 8)
            out, tout = compiled(graphc.tensor(x), labels=graphc.tensor(y)), theirs(torch.tensor(x), torch.tensor(y))
            assert type(out) is _ModelOutput
            assert_close(out.logits, tout.logits)
            out.loss.backward()
            tout.loss.backward()
            assert_close(ours.linear.weight.grad, theirs.linear.weight.grad)
            doubled = step(_Batch(graphc.tensor(x), graphc.tensor(y)))
            assert_close(doubled, tout.loss * 2)
    assert compiled.num_traces == 1 and step.num_traces == 1


def test_a_compiled_module_with_batchnorm_in_training_replays_and_updates_running_stats():
    """`model = torch.compile(model)` on a network with BatchNorm, trained with the loss and backward outside: its
    forward writes the running statistics, and it still replays (a forward plan that also returns the new
    statistics, a backward plan), with torch's outputs, gradients and buffers at every step."""
    def make(lib):
        lib.manual_seed(0)
        return lib.nn.Sequential(lib.nn.Linear(5, 8), lib.nn.BatchNorm1d(8), lib.nn.ReLU(), lib.nn.Linear(8, 3))

    tmodel, gmodel = make(torch), make(graphc)
    gmodel.load_state_dict({k: graphc.tensor(v.detach().numpy()) for k, v in tmodel.state_dict().items()})
    topt, gopt = torch.optim.SGD(tmodel.parameters(), lr=0.1), graphc.optim.SGD(gmodel.parameters(), lr=0.1)
    compiled = graphc.compile(gmodel, backend="numpy")
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            x, y = rng.standard_normal((16, 5)).astype(np.float32), rng.integers(0, 3, 16)
            gloss = graphc.nn.functional.cross_entropy(compiled(graphc.tensor(x)), graphc.tensor(y))
            tloss = torch.nn.functional.cross_entropy(tmodel(torch.tensor(x)), torch.tensor(y))
            gopt.zero_grad(), topt.zero_grad()
            gloss.backward(), tloss.backward()
            for (name, gp), tp in zip(gmodel.named_parameters(), tmodel.parameters()):
                assert_close(gp.grad, tp.grad, rtol=1e-5, atol=1e-6), name
            gopt.step(), topt.step()
            assert_close(gloss, tloss)
            for (name, gb), tb in zip(gmodel.named_buffers(), tmodel.buffers()):
                assert_close(gb, tb, rtol=1e-5, atol=1e-6), name
    assert compiled.num_traces == 1


def test_a_backward_reading_a_tensor_the_forward_updates_in_place_is_not_replayed():
    """The forward saves s for mul's backward and then updates s in place: torch's backward refuses (s was modified
    by an inplace operation). It gets no compiled backward (traced, then run eagerly, saying so once) and the
    backward refuses as torch's."""
    def make(lib):
        w = lib.ones(3, requires_grad=True)
        s = lib.full((3,), 2.0)

        def f(x):
            y = (x * w * s).sum()
            s.mul_(0.5)
            return y
        return f, s

    (tf, ts), (gf, gs) = make(torch), make(graphc)
    compiled = graphc.compile(gf, backend="numpy")
    with pytest.warns(RuntimeWarning, match="runs eagerly from now on: it returns a tensor that requires grad, and no "
                                            "backward plan could be built"):
        for _ in range(3):
            gy, ty = compiled(graphc.ones(3)), tf(torch.ones(3))
    assert_close(gy, ty)
    assert_close(gs, ts)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        ty.backward()
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        gy.backward()


def test_a_custom_function_whose_backward_reads_values_traces_again_and_says_so():
    """A custom autograd.Function whose backward computes with numpy (.numpy() of a saved tensor) cannot join a
    compiled backward: the function runs eagerly after three such calls, with one warning naming the line, and the
    gradients are torch's."""
    def make(lib):
        class Clip(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return x.clamp(-1, 1)

            @staticmethod
            def backward(ctx, g):
                x, = ctx.saved_tensors
                return g * lib.tensor((np.abs(x.detach().numpy()) <= 1).astype(np.float32))
        w = lib.tensor([0.5, 2.0, -0.3], requires_grad=True)
        return (lambda x: Clip.apply(x * w).sum()), w

    (tf, tw), (gf, gw) = make(torch), make(graphc)
    compiled = graphc.compile(gf, backend="numpy")
    rng = np.random.default_rng(0)
    with pytest.warns(RuntimeWarning, match=r"runs eagerly from now on: .*its backward needs a tensor's value: graph "
                                            r"break at .*test_compile.py:\d+: Tensor.numpy\(\)"):
        for _ in range(3):
            x = rng.standard_normal(3).astype(np.float32)
            compiled(graphc.tensor(x)).backward()
            tf(torch.tensor(x)).backward()
    assert_close(gw.grad, tw.grad)


@pytest.mark.parametrize("fn", [lambda x: x.max(dim=1), lambda x: x.sort(dim=-1, descending=True),
                                lambda x: (x.topk(2), x.min(0))], ids=["max", "sort", "topk_min"])
def test_named_tuple_results_replay(fn):
    """max(dim), sort and topk return (values, indices) named tuples: a compiled function returning them replays,
    and hands back named tuples with torch's values and indices."""
    def pairs(result):  # the (values, indices) results, by their field names
        return [result] if hasattr(result, "indices") else [r for x in result for r in pairs(x)]

    compiled = graphc.compile(fn, backend="numpy")
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            x = rng.standard_normal((3, 4)).astype(np.float32)
            got, want = pairs(compiled(graphc.tensor(x))), pairs(fn(torch.tensor(x)))
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert_close(g.values, w.values)
                assert_close(g.indices, w.indices)
    assert compiled.num_traces == 1


def test_an_int_argument_that_changes_every_call_says_so_once():
    """A step counter passed as a Python int is guarded by value: each call is traced again. It says so once (at the
    third value), naming the argument, and the results stay torch's."""
    w = torch.tensor([1.0, 2.0])
    gw = graphc.tensor(w.numpy())

    def f(lib, w):
        return lambda x, step: x * w * (1 + step % 3)

    compiled = graphc.compile(f(graphc, gw), backend="numpy")
    with pytest.warns(RuntimeWarning, match=r"traced again for a new value of a Python int \(argument step: 1 -> 2\)"):
        for step in range(3):
            assert_close(compiled(graphc.ones(2), step), f(torch, w)(torch.ones(2), step))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_close(compiled(graphc.ones(2), 3), f(torch, w)(torch.ones(2), 3))


@pytest.mark.parametrize("write", ["out.mul_(2)", "out[0] = 0", "out.detach().zero_()", "x.add_(1)"])
def test_a_saved_value_written_in_place_before_backward_is_refused_as_torch_refuses(write):
    """exp saves its result and linear its input: writing either in place between a compiled module's call and the
    backward makes torch's backward refuse, on every call; a replay's backward refuses too (it would otherwise read
    the overwritten values: a wrong gradient)."""
    def make(lib):
        lib.manual_seed(0)
        return lib.nn.Linear(4, 3)

    tmodel, gmodel = make(torch), make(graphc)
    gmodel.load_state_dict({k: graphc.tensor(v.detach().numpy()) for k, v in tmodel.state_dict().items()})
    compiled = graphc.compile(lambda x: gmodel(x).exp(), backend="numpy")
    for lib, f in ((torch, lambda x: tmodel(x).exp()), (graphc, compiled)):
        for _ in range(3):
            x = lib.ones(5, 4)
            out = f(x)
            exec(write)
            with pytest.raises(RuntimeError, match="modified by an inplace operation"):
                out.sum().backward()
    assert compiled.num_traces == 1


def test_eager_mode_and_env(monkeypatch):
    calls = []

    def f(x):
        calls.append(x.numpy().sum())  # reading a value is fine op by op
        return x + 1

    assert graphc.compile(f, mode="eager")(graphc.ones(2)).tolist() == [2.0, 2.0]
    monkeypatch.setenv("GRAPHC_EAGER", "1")
    g = graphc.compile(f)
    g(graphc.ones(2))
    assert g.num_compiles == 0 and len(calls) == 2


def test_check_mode_runs_and_compares():
    w = graphc.randn(3, 3)
    f = graphc.compile(lambda x: (x @ w).tanh().sum(dim=0), mode="check")
    x = graphc.randn(4, 3)
    assert_close(f(x), (to_torch(x) @ to_torch(w)).tanh().sum(dim=0), rtol=1e-5)


def test_check_mode_names_a_divergent_step(monkeypatch):
    from graphc.compiler import CheckError, runtime

    real = runtime.numpy_steps

    def broken(graph):
        steps = real(graph)
        run = steps[-1].run

        def wrong(values):
            run(values)
            node = steps[-1].writes[0]
            values[node] = values[node] + 1
        steps[-1].run = wrong
        return steps
    monkeypatch.setattr(sys.modules["graphc.compiler.compile"], "numpy_steps", broken)
    f = graphc.compile(lambda x: x.exp() * 3, backend="numpy", mode="check")
    with pytest.raises(CheckError, match="mul"):
        f(graphc.ones(2))


def test_logs(monkeypatch, capsys):
    monkeypatch.setenv("GRAPHC_LOGS", "graph,breaks,recompiles")
    f = graphc.compile(lambda x: x * 2 if bool(x.sum() > 0) else x)
    f(graphc.ones(2))
    g = graphc.compile(lambda x: x * 2)
    g(graphc.ones(2))
    g(graphc.ones(2, 2))
    err = capsys.readouterr().err
    assert "graph]" in err and "breaks]" in err and "recompiles]" in err


def test_reset_drops_caches():
    f = graphc.compile(lambda x: x + 1)
    f(graphc.ones(1))
    graphc.compiler.reset()
    f(graphc.ones(1))
    assert f.num_compiles == 2


def test_random_ops_draw_anew_each_call():
    f = graphc.compile(lambda x: x + graphc.rand(3))
    a, b = f(graphc.zeros(3)), f(graphc.zeros(3))
    assert not np.array_equal(a.numpy(), b.numpy())
    assert f.num_compiles == 1


def test_explain_report_fields():
    b = graphc.randn(8)

    def f(x):
        return ((x + b) * 2).exp()

    report = graphc.explain(f, graphc.randn(4, 8))
    assert report.num_unfused_kernels == 3
    assert report.num_kernels == 1, str(report)
    assert report.bytes_ideal == (4 * 8 + 8 + 4 * 8) * 4
    assert report.bytes_ideal <= report.bytes_moved <= report.bytes_moved_unfused
    assert report.graph_breaks == [] and report.fallbacks == []
    assert all(k.kind == "elementwise" and set(k.ops) <= {"add", "mul", "exp"} for k in report.kernels)
    assert "exp" in str(report) and "kernels:" in str(report)


def test_capture_error_on_list_operand_names_op():
    with pytest.raises(CaptureError, match="list of tensors"):
        from graphc.compiler.capture import _plain
        _plain(graphc.ops.OPS["add"], [graphc.ones(1)])


def test_compiled_optimizer_step_reads_fresh_grads():
    params = _mlp_params(3)
    twin = [graphc.tensor(p.detach().numpy().copy(), requires_grad=True) for p in params]
    opt, twin_opt = graphc.optim.Adam(params, lr=0.05), graphc.optim.Adam(twin, lr=0.05)
    step = graphc.compile(opt.step)
    for k in range(4):
        for ps in (params, twin):
            for p in ps:
                p.grad = graphc.full_like(p.detach(), float(k + 1)) * p.detach()  # a new grad object each time
        step()
        twin_opt.step()
        for a, b in zip(params, twin):
            np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-6, atol=1e-7)
    assert step.num_compiles == 1


def test_gradient_accumulation_across_calls():
    w, w_eager = graphc.tensor([1.0, -2.0], requires_grad=True), graphc.tensor([1.0, -2.0], requires_grad=True)

    def loss(w, x):
        (w * x).pow(2).sum().backward()

    f = graphc.compile(loss)
    for k in range(4):
        x = graphc.tensor([float(k), 1.0])
        f(w, x)
        loss(w_eager, x)
        assert w.grad.tolist() == w_eager.grad.tolist()
    assert f.num_compiles == 2  # the first call starts from no .grad, later ones accumulate


def test_constant_outputs_are_copies():
    f = graphc.compile(lambda x: (x, graphc.tensor([1.0, 2.0]) * 2))
    for _ in range(3):
        _, c = f(graphc.ones(1))
        assert c.tolist() == [2.0, 4.0]
        c.add_(100.0)


def test_detached_parameter_is_read_at_call_time_and_temporaries_fold():
    w = graphc.ones(2)
    f = graphc.compile(lambda x: x * w.detach() + graphc.tensor([1.0, 2.0]).exp())
    assert f(graphc.ones(2)).tolist() == pytest.approx([1 + np.e, 1 + np.e**2])
    w.add_(1.0)
    assert f(graphc.ones(2)).tolist() == pytest.approx([2 + np.e, 2 + np.e**2])
    graph = graphc.explain(f, graphc.ones(2)).graphs[0]
    assert "exp" not in [n.label for n in graph.nodes]  # the constant's exp was folded


def test_keyword_arguments_are_matched_by_name():
    f = graphc.compile(lambda a, b: a - b)
    assert f(a=graphc.tensor([3.0]), b=graphc.tensor([1.0])).tolist() == [2.0]
    assert f(b=graphc.tensor([1.0]), a=graphc.tensor([3.0])).tolist() == [2.0]


def test_inplace_update_of_an_argument_and_print_break(capsys):
    @graphc.compile
    def bump(x, k):
        x.add_(k)
        print(x)
        return x * 2

    a, b = graphc.zeros(2), graphc.ones(2)
    assert bump(a, 1.0).tolist() == [2.0, 2.0] and a.tolist() == [1.0, 1.0]
    assert bump(b, 1.0).tolist() == [4.0, 4.0] and b.tolist() == [2.0, 2.0]
    assert "tensor([1., 1.])" in capsys.readouterr().out
    report = graphc.explain(bump.__wrapped__, graphc.zeros(2), 1.0)
    assert report.graph_breaks[0][0].startswith("printing a tensor needs the tensor's value (add, shape [2], made at ")


def test_inplace_update_of_an_argument_replays():
    @graphc.compile
    def bump(x):
        x.mul_(2.0)

    a, b = graphc.ones(2), graphc.full((3,), 3.0)
    bump(a)
    bump(b)
    bump(a)
    assert a.tolist() == [4.0, 4.0] and b.tolist() == [6.0, 6.0, 6.0] and bump.num_compiles == 1


def test_tensors_made_and_updated_in_place_inside_own_their_storage():
    state = {}

    @graphc.compile
    def f(x):
        if not state:
            state["a"], state["b"] = graphc.zeros(3), graphc.zeros(3)
            state["a"].copy_(x.sum())  # a broadcast of one value
            state["b"].copy_(state["a"])  # the same value again
        else:
            state["a"].add_(x.sum())  # later calls write into the storage the first call made
        return state["a"] * 1

    for n in (1, 2, 3):
        assert f(graphc.ones(2)).tolist() == [2.0 * n] * 3
    assert state["b"].tolist() == [2.0, 2.0, 2.0]


def test_compiled_amsgrad_training_matches_torch():
    graphc.manual_seed(0)
    model, tmodel = graphc.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    with torch.no_grad():
        for tp, p in zip(tmodel.parameters(), model.parameters()):
            tp.copy_(to_torch(p, requires_grad=False))
    opt = graphc.optim.AdamW(model.parameters(), lr=0.01, amsgrad=True)
    topt = torch.optim.AdamW(tmodel.parameters(), lr=0.01, amsgrad=True)
    train_compiled_alongside_torch(model, opt, tmodel, topt, np.random.randn(5, 4).astype(np.float32), [0.01] * 4)
    for tp, p in zip(tmodel.parameters(), model.parameters()):
        assert_close(p.detach(), tp, rtol=1e-5, atol=1e-6)


def test_a_computed_tensor_kept_after_the_call_warns_once_naming_its_line():
    """Not replayable (a replay could not give the kept tensor its value): after three such calls in a row it runs
    eagerly, and says so once."""
    kept = []

    def f(x):
        y = x * 2
        kept.append(y + 1)
        return y

    compiled = graphc.compile(f, backend="numpy")
    x = graphc.randn(3)
    compiled(x)
    compiled(x)
    with pytest.warns(RuntimeWarning, match=r"runs eagerly from now on: a tensor it computes \(add, shape \[3\], "
                                            r"made at .*test_compile.py"):
        compiled(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compiled(x)
    assert compiled.num_traces == 3 and len(kept) == 4
    np.testing.assert_allclose(kept[-1].numpy(), x.numpy() * 2 + 1)


@pytest.mark.parametrize("fn, args_per_call", [
    (lambda x, k: x * k.item(), [(torch.ones(2), torch.tensor(2.0)), (torch.ones(2), torch.tensor(3.0))]),
    (lambda x, i: x[i], [(torch.arange(3.0), torch.tensor(0)), (torch.arange(3.0), torch.tensor(2))]),
    (lambda x, m: x[m], [(torch.arange(3.0), torch.tensor([True, True, False])),
                         (torch.arange(3.0), torch.tensor([False, False, True]))]),
    (lambda x, m: x + 1 if m else x - 1, [(torch.ones(2), torch.tensor(True)), (torch.ones(2), torch.tensor(False))]),
], ids=["item", "0-d index", "bool mask", "bool()"])
def test_reading_an_arguments_values_is_never_replayed_stale(fn, args_per_call):
    """Python that reads an argument's values makes the trace depend on them: the values are guarded, so each call
    gets its own values (as in torch), and values seen before replay their plan."""
    compiled = graphc.compile(fn, backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for args in args_per_call * 2:
            out = compiled(*(graphc.tensor(a.numpy()) for a in args))
            np.testing.assert_allclose(out.numpy(), fn(*args).numpy())
    assert compiled.num_traces == 2


def test_values_read_from_closures_are_guarded_and_changing_values_warn():
    """A bool mask a step reads from its enclosing scope (GNN training on data.train_mask) replays until the mask is
    written; values new on three calls in a row make the function run eagerly, saying so once, naming the argument
    and the line."""
    def make(lib):
        w = lib.tensor(np.linspace(-1, 1, 18, dtype=np.float32).reshape(6, 3), requires_grad=True)
        y, mask = lib.tensor([0, 1, 2, 0, 1, 2]), lib.tensor([True, True, False, True, False, True])
        opt = lib.optim.SGD([w], lr=0.1)

        def step():
            opt.zero_grad()
            loss = lib.nn.functional.cross_entropy(w[mask], y[mask])
            loss.backward()
            opt.step()
            return loss
        return step, mask
    (step, mask), (tstep, tmask) = make(graphc), make(torch)
    compiled = graphc.compile(step)
    for i in range(5):
        if i == 3:
            mask[2] = tmask[2] = True
        assert abs(compiled().item() - tstep().item()) < 1e-6
    assert compiled.num_traces == 3  # the first two calls (w.grad, then SGD's state appear) and the written mask
    scaled = graphc.compile(lambda x, n: x * n.item())
    with pytest.warns(RuntimeWarning, match=r"runs eagerly from now on: the values of argument n, which the "
                                            r"function reads at .*test_compile.py:\d+"):
        for i in range(MAX_ENTRIES + 2):
            assert scaled(graphc.ones(2), graphc.tensor(float(i))).tolist() == [float(i)] * 2
    assert scaled.num_traces == 2


def test_a_refused_call_raises_without_tracing_again():
    """Labels out of range at a replay raise torch's IndexError from the plan's check, naming the traced line; the
    function neither traces again nor falls back to eager, first call included."""
    compiled = graphc.compile(lambda x, y: graphc.nn.functional.cross_entropy(x, y))
    x = graphc.randn(4, 5)
    for labels in ([0, 9, 2, 3], [0, 1, 2, 3], [0, 7, 2, 3], [0, 1, 2, 3]):
        try:
            expected = torch.nn.functional.cross_entropy(torch.tensor(x.numpy()), torch.tensor(labels)).item()
        except IndexError:
            with pytest.raises(IndexError, match=r"out of bounds(.|\n)*traced at .*test_compile.py:\d+"):
                compiled(x, graphc.tensor(labels))
        else:
            assert abs(compiled(x, graphc.tensor(labels)).item() - expected) < 1e-6
    assert compiled.num_traces == 2 and compiled._eager_reason is None  # the refused first call kept no plan


def test_dicts_with_the_same_keys_in_another_order_get_their_own_plan():
    compiled = graphc.compile(lambda d, s: d["a"] - d["b"] * s["k"], backend="numpy")
    compiled({"a": graphc.ones(1), "b": graphc.zeros(1)}, {"k": 2.0, "j": 1.0})
    out = compiled({"b": graphc.ones(1), "a": graphc.zeros(1)}, {"j": 2.0, "k": 1.0})
    assert out.tolist() == [-1.0]


def test_a_plan_runs_without_numpy_huge_page_advice_and_restores_it(monkeypatch):
    """A plan's run allocates as torch does, without transparent huge pages (runtime.small_pages: fresh huge pages
    fault in slowly on a virtual machine); numpy's setting is restored after the run, and NUMPY_MADVISE_HUGEPAGE,
    when set, decides."""
    from graphc.compiler import runtime

    def advice() -> bool:
        before = runtime._set_madvise_hugepage(False)
        runtime._set_madvise_hugepage(before)
        return before

    seen = []
    run_all = runtime.Runtime._run_all
    monkeypatch.setattr(runtime.Runtime, "_run_all", lambda self, *a: seen.append(advice()) or run_all(self, *a))
    compiled = graphc.compile(lambda x: (x * 2).exp(), backend="numpy")
    x = np.random.randn(3, 4).astype(np.float32)
    before = runtime._set_madvise_hugepage(True)
    try:
        assert_close(compiled(graphc.tensor(x)), torch.from_numpy(x * 2).exp())
        assert seen == [False] and advice() is True
        monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
        compiled(graphc.tensor(x))
        assert seen == [False, True]
    finally:
        runtime._set_madvise_hugepage(before)


def test_a_float_argument_of_a_function_differentiated_outside_it():
    """`f(w, 2.0).backward()` and a module whose float attribute (an annealed temperature) changes between calls,
    with the backward outside: the float the trace lifted into an input is the number it stood for in the trace's
    autograd graph (before: the backward failed on it)."""
    tw = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    gw = graphc.tensor(tw.detach().numpy(), requires_grad=True)
    compiled = graphc.compile(lambda w, s: (w * s).square().sum())
    for scale in (2.0, 3.0, 3.0, 0.5):
        gw.grad, tw.grad = None, None
        compiled(gw, scale).backward()
        (tw * scale).square().sum().backward()
        assert_close(gw.grad, tw.grad)

    def build(lib):
        class Tempered(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = lib.nn.Linear(4, 3)
                self.tau = 0.5

            def forward(self, x):
                return self.linear(x) / self.tau
        return Tempered()
    ours, theirs = build(graphc), build(torch)
    ours.load_state_dict({k: graphc.tensor(v.detach().numpy()) for k, v in theirs.state_dict().items()})
    model = graphc.compile(ours)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    for tau in (0.5, 0.7, 0.9, 0.9):
        ours.tau = theirs.tau = tau
        ours.zero_grad()
        theirs.zero_grad()
        model(graphc.tensor(x)).square().sum().backward()
        theirs(torch.tensor(x)).square().sum().backward()
        assert_close(ours.linear.weight.grad, theirs.linear.weight.grad, rtol=1e-5, atol=1e-5)


def test_a_made_tensor_written_in_place_then_saved_backpropagates_from_the_first_call():
    """`graphc.zeros_like(x).add_(1) * x`: mul saves the written tensor; after the trace its memory is a new root's,
    whose version must count the write (before: the first call's backward refused it as modified in place)."""
    for _ in range(3):
        x, tx = graphc.tensor([1.0, -2.0, 3.0], requires_grad=True), torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
        for make in (lambda lib, v: lib.zeros_like(v).add_(1) * v, lambda lib, v: lib.ones_like(v).mul_(2) * v):
            x.grad = tx.grad = None
            graphc.compile(lambda v, make=make: make(graphc, v))(x).sum().backward()
            make(torch, tx).sum().backward()
            assert_close(x.grad, tx.grad)


def test_a_result_computed_into_a_made_tensor_stays_writable():
    """`graphc.empty_like(x).copy_(x * 2)` returned: once the native kernels run, the result was a read-only view of
    the plan's input, and the caller's in-place update raised."""
    compiled = graphc.compile(lambda x: graphc.empty_like(x).copy_(x * 2), mode="max-autotune")
    for _ in range(3):
        y = compiled(graphc.ones(2, 3))
        y.add_(1)
        assert_close(y, torch.full((2, 3), 3.0))


def test_a_returned_generator_runs_eagerly_with_one_warning():
    """A generator's items are computed as they are read, after the call: no plan could hand them out again."""
    f = graphc.compile(lambda x: (x * k for k in (2, 3)))
    with pytest.warns(RuntimeWarning, match="runs eagerly from now on: it returns an iterator or a generator") as rec:
        got = [[t.tolist() for t in f(graphc.ones(2) * n)] for n in (1, 1, 3)]
    assert len(rec) == 1
    assert got == [[t.tolist() for t in (torch.ones(2) * n * k for k in (2, 3))] for n in (1, 1, 3)]


def test_eager_ops_in_another_thread_are_not_captured_into_a_trace():
    """A data or metrics thread running eager ops while the main thread traces: each keeps its own values (the
    active capture belongs to the thread that traces)."""
    import threading

    def slow(x):
        for _ in range(200):
            x = x * 1.0001 + 0.0001
        return x

    f = graphc.compile(slow, backend="numpy")
    stop, errors, sums = threading.Event(), [], []

    def eager_worker():
        a = graphc.ones(3)
        while not stop.is_set():
            try:
                sums.append(float((a * 2 + 1).sum()))
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(repr(e))

    worker = threading.Thread(target=eager_worker, daemon=True)
    worker.start()
    try:
        got = [f(graphc.full((3,), float(i))) for i in range(3)]
    finally:
        stop.set()
        worker.join(10)
    assert not errors and sums and set(sums) == {float((torch.ones(3) * 2 + 1).sum())}
    for i, g in enumerate(got):
        assert_close(g, slow(torch.full((3,), float(i))), rtol=1e-5)


def test_an_intermediate_held_only_by_a_reference_cycle_does_not_escape():
    """A tensor an object in a garbage reference cycle holds (a transform and its inverse, caching x) is freed by
    the cyclic collector, not when the function returns: it is not state the call left behind, so the plan
    replays."""
    class Cycle:
        def __init__(self):
            self.me = self

    def f(x):
        c = Cycle()
        c.kept = x.tanh()
        return x.exp()

    compiled = graphc.compile(f)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(4):
            x = np.random.default_rng(0).standard_normal(3).astype(np.float32)
            assert_close(compiled(graphc.tensor(x)), torch.tensor(x).exp())
    assert compiled.num_traces == 1


def test_a_first_optimizer_step_does_not_look_for_reference_cycles(monkeypatch):
    """Adam's moments, made by its first step, are kept by the optimizer's state, not by a reference cycle: the first
    call does not run the cyclic collector for them (a full collection of the objects torch and graphc leave cost
    30-70 ms, a third of an MLP step's first call); the parameters after two steps are torch's."""
    collections = []
    monkeypatch.setattr(sys.modules["graphc.compiler.compile"].gc, "collect",
                        lambda generation=2: collections.append(generation))
    tmodel = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    model = graphc.nn.Sequential(graphc.nn.Linear(4, 8), graphc.nn.Tanh(), graphc.nn.Linear(8, 2))
    model.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    opt, topt = graphc.optim.Adam(model.parameters(), 0.01), torch.optim.Adam(tmodel.parameters(), 0.01)
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    train_compiled_alongside_torch(model, opt, tmodel, topt, x, steps=2)
    assert collections == []
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        assert_close(p, tp.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("like", [False, True])
@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_an_in_place_write_between_two_graph_breaks_keeps_its_history(like, backend):
    """A mixture-of-experts routing loop: `nonzero` breaks the graph at each expert, and `out.index_add_` between
    two breaks gives `out` a new grad_fn whose output must get its value at the next break (it crashed with a
    KeyError on a node of an earlier piece). With `zeros_like(h)`, `out` views a storage whose root no one holds
    (an expanded zero): that root, made at the first break, must be known as its alias (a false CaptureError said
    `out` shared memory with a tensor made outside the function). The loss and the gradients are torch's."""
    def make(L):
        w = L.tensor(np.arange(12, dtype=np.float32).reshape(4, 3) / 10 - 0.5, requires_grad=True)

        def step(x):
            h = x @ w + 1
            out = L.zeros_like(h) if like else L.zeros(6, 3)
            for e in range(2):
                (top_x,) = (h[:, e] > 0).nonzero(as_tuple=True)
                out.index_add_(0, top_x, h[top_x])
            loss = out.sum()
            loss.backward()
            return loss
        return w, step

    (gw, gstep), (tw, tstep) = make(graphc), make(torch)
    compiled = graphc.compile(gstep, backend=backend)
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the graph breaks are announced once
        for _ in range(3):
            x = rng.standard_normal((6, 4)).astype(np.float32)
            gw.grad = tw.grad = None
            assert_close(compiled(graphc.tensor(x)), tstep(torch.tensor(x)), rtol=1e-5)
            assert_close(gw.grad, tw.grad, rtol=1e-5, atol=1e-6)


def test_torch_compile_keywords_disable_and_dynamic():
    def f(x):
        return x * 2

    assert graphc.compile(f, disable=True) is f
    compiled = graphc.compile(f, dynamic=True)
    for n in (2, 5):
        assert_close(compiled(graphc.ones(n)), torch.ones(n) * 2)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_floats_by_keyword_and_in_dicts_are_read_by_name(backend):
    """Floats passed by keyword (out of the signature's order, through **kwargs or functools.partial) and the floats
    of a dict argument (a config of hyper-parameters) are runtime inputs: each must be bound to its own name (a
    dict's keys count among the arguments' leaves; the floats were bound one place off, silently)."""
    import functools

    programs = {
        "keywords": (lambda L, x, y: lambda f: f(x, y=x, bias=1.5), lambda x, y, bias=0.0: x + 10 * y + 100 * bias),
        "reordered": (lambda L, x, y: lambda f: f(x, b=2.0, a=-1.0), lambda x, a=0.0, b=0.0: x + 10 * a + 100 * b),
        "kwargs": (lambda L, x, y: lambda f: f(x, y=y, s=0.5), lambda x, **kw: x + 10 * kw["y"] + 100 * kw["s"]),
        "dict": (lambda L, x, y: lambda f: f(x, {"a": 1.5, "b": -2.0}), lambda x, s: x * s["b"] + 10 * s["a"]),
        "partial": (lambda L, x, y: lambda f: functools.partial(f, scale=2.0, bias=0.5)(x, y=y, bias=1.0),
                    lambda x, y, scale=1.0, bias=0.0: x * scale + y * bias),
    }
    for name, (call, fn) in programs.items():
        x, y = [1.0, -2.0, 3.0], [0.5, 4.0, -1.0]
        expected = call(torch, torch.tensor(x), torch.tensor(y))(fn)
        compiled = graphc.compile(fn, backend=backend)
        for _ in range(3):
            assert_close(call(graphc, graphc.tensor(x), graphc.tensor(y))(compiled), expected), name


def test_initialisers_inside_a_compiled_function_draw_anew_at_each_call():
    """nn.init draws with numpy: traced, the draws would be constants every replay repeats (a module built inside
    the function gave the same weights at each call, silently). The function runs eagerly, with one warning, and
    each call draws anew, as in torch."""
    fns = [graphc.compile(lambda x: x + graphc.nn.init.normal_(graphc.empty(3))),
           graphc.compile(lambda x: graphc.nn.Linear(2, 2)(x))]
    for fn in fns:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            draws = {tuple(fn(graphc.ones(1, 3) if fn is fns[0] else graphc.ones(1, 2)).detach().numpy().ravel())
                     for _ in range(4)}
        assert len(draws) == 4
        messages = [str(w.message) for w in caught if "nn.init" in str(w.message)]
        assert len(messages) == 1, messages


def _contiguity(x):
    y = (x * 2).t()
    z = y.contiguous() if not y.is_contiguous() else y
    return z.view(-1) + (3 if (x + 1).is_contiguous() else 4) + (5 if x.permute(1, 0).is_contiguous() else 6)


def _strides(x):
    y = (x * 2).t()
    z = y[1:]
    return y * y.stride(0) + z.storage_offset() + sum(z.stride()) + x.stride(1)


@pytest.mark.parametrize("program", [_contiguity, _strides])
def test_the_layout_of_a_traced_value_is_read_without_a_graph_break(program):
    """`if not y.is_contiguous(): y = y.contiguous()` after a transpose, stride(), storage_offset(): the layout of a
    value the trace computes is the one eager gives it (the compiler models it), so reading it is no graph break;
    values are torch's."""
    compiled = graphc.compile(program)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for n in (2, 3, 2):
            x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
            assert_close(compiled(graphc.tensor(x)), program(torch.tensor(x)))
    assert compiled.num_traces == 1


def test_autograd_grad_inside_replays_when_its_gradient_views_a_split():
    """autograd.grad inside a compiled function: the gradient of a stacked (or concatenated) input is a view that
    keeps the other parts' inputs alive for their shapes (a zeros_like among them); those are not state the
    function left behind, so the function replays (it counted them as escaped and ran eagerly after three calls)."""
    def programs(L):
        def stacked(x):
            y = L.stack([x, L.zeros_like(x)]).sum(0)
            (g,) = L.autograd.grad(y.sum(), [x])
            return y, g

        def group_norm(x):
            y = L.nn.functional.group_norm((x * 2).reshape(1, 2, -1), 2)
            (g,) = L.autograd.grad((y * y).sum(), [x])
            return y, g
        return [stacked, group_norm]

    for mine, theirs, sizes, traces in zip(programs(graphc), programs(torch), [(3, 3, 3, 3), (3, 3, 5, 3, 5)], [1, 2]):
        compiled = graphc.compile(mine)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for n in sizes:
                x = np.random.default_rng(n).standard_normal((n, 2)).astype(np.float32)
                y, g = compiled(graphc.tensor(x, requires_grad=True))
                ty, tg = theirs(torch.tensor(x, requires_grad=True))
                assert_close(y, ty, rtol=1e-5, atol=1e-5)
                assert_close(g, tg, rtol=1e-4, atol=1e-5)
        assert compiled.num_traces == traces


def test_deepcopy_of_a_compiled_module_is_an_independent_compiled_copy():
    """copy.deepcopy after model.compile() or of graphc.compile(model) (an EMA or teacher model) copies the module
    and compiles it anew (it raised: cannot pickle '_thread.lock'); the copy runs with its own parameters, as in
    torch."""
    import copy

    for compiled_in_place in (True, False):
        model = graphc.nn.Linear(2, 2)
        compiled = model if compiled_in_place else graphc.compile(model)
        if compiled_in_place:
            model.compile()
        for _ in range(3):
            compiled(graphc.ones(1, 2))
        twin = copy.deepcopy(compiled)
        twin_model = twin if compiled_in_place else twin.compiled_module
        with graphc.no_grad():
            twin_model.weight.zero_()
        assert_close(twin(graphc.ones(1, 2)), torch.tensor(twin_model.bias.detach().numpy())[None])
        weight, bias = (torch.tensor(p.detach().numpy()) for p in (model.weight, model.bias))
        expected = torch.ones(1, 2) @ weight.T + bias
        assert_close(compiled(graphc.ones(1, 2)), expected)


def test_a_compiled_module_exposes_the_original_as_torch_does():
    """torch.compile(model)._orig_mod is the model (scripts save `model._orig_mod.state_dict()`)."""
    model = graphc.nn.Linear(2, 2)
    compiled, theirs = graphc.compile(model), torch.compile(torch.nn.Linear(2, 2))
    assert compiled._orig_mod is model and isinstance(theirs._orig_mod, torch.nn.Linear)
    assert list(compiled._orig_mod.state_dict()) == list(theirs._orig_mod.state_dict())


def test_a_parameter_made_of_a_traced_value_runs_eagerly_with_a_clear_warning():
    """nn.Parameter(x * 2) inside a compiled function is a new leaf at each call, which a replay cannot make: the
    function runs eagerly with one warning naming nn.Parameter and the line (it was a graph break blaming an
    internal Tensor.storage() and a new plan per call). Gradients are torch's."""
    def f(L, x):
        p = L.nn.Parameter(x * 2)
        (p ** 2).sum().backward()
        return p.grad

    compiled = graphc.compile(lambda x: f(graphc, x))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(4):
            assert_close(compiled(graphc.ones(3)), f(torch, torch.ones(3)))
    messages = [str(w.message) for w in caught if "nn.Parameter" in str(w.message)]
    assert len(messages) == 1 and "storage" not in messages[0], messages


@pytest.mark.parametrize("kwargs", [{"mode": "reduce-overhead"}, {"mode": "max-autotune-no-cudagraphs"},
                                    {"backend": "inductor"}, {"backend": "eager"}, {"backend": "aot_eager"},
                                    {"mode": None}, {"options": {"triton.cudagraphs": True}}])
def test_torch_compile_backend_and_mode_names_are_accepted(kwargs):
    """Scripts written for torch.compile pass its backend and mode names (and Inductor options): graphc reads them
    as its own, and says once that it ignores options."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compiled = graphc.compile(lambda x: x.exp() * 2, **kwargs)
        for _ in range(2):
            assert_close(compiled(graphc.ones(3)), torch.ones(3).exp() * 2)
    assert [str(w.message) for w in caught if "options" in str(w.message)] == (
        [] if "options" not in kwargs else [str(caught[0].message)])
