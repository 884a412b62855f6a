"""graphc.nn modules against torch.nn: same weights (copied through state dicts) and inputs give the same outputs,
gradients, buffers and optimizer updates; registration, state dicts, modes, hooks, init and clip_grad_norm_."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import assert_close

import graphc
from graphc import nn


def numpy_state(module: torch.nn.Module) -> dict:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def pair(make, *args, **kwargs):
    """(graphc module, torch module) built alike, the graphc one loaded with the torch one's state dict."""
    g, t = make(graphc.nn, *args, **kwargs), make(torch.nn, *args, **kwargs)
    g.load_state_dict(numpy_state(t))
    return g, t


def assert_same_state(g: nn.Module, t: torch.nn.Module, rtol=1e-5, atol=1e-6) -> None:
    g_state, t_state = g.state_dict(), t.state_dict()
    assert list(g_state) == list(t_state)
    for key, value in t_state.items():
        assert_close(g_state[key], value, rtol, atol)


LAYERS = [
    ("Linear", lambda m: m.Linear(5, 3), (4, 5)),
    ("Linear-nobias", lambda m: m.Linear(5, 3, bias=False), (2, 4, 5)),
    ("Conv2d", lambda m: m.Conv2d(3, 4, 3, padding=1), (2, 3, 6, 5)),
    ("Conv2d-same", lambda m: m.Conv2d(3, 4, (3, 5), padding="same"), (2, 3, 6, 5)),
    ("Conv2d-strided-groups", lambda m: m.Conv2d(4, 6, (3, 2), stride=2, groups=2, bias=False), (2, 4, 7, 6)),
    ("MaxPool2d", lambda m: m.MaxPool2d(2), (2, 3, 6, 6)),
    ("AvgPool2d", lambda m: m.AvgPool2d(3, stride=2, padding=1), (2, 3, 7, 6)),
    ("Flatten", lambda m: m.Flatten(), (2, 3, 4)),
    ("ReLU", lambda m: m.ReLU(), (3, 4)),
    ("GELU", lambda m: m.GELU(), (3, 4)),
    ("GELU-tanh", lambda m: m.GELU(approximate="tanh"), (3, 4)),
    ("Tanh", lambda m: m.Tanh(), (3, 4)),
    ("Sigmoid", lambda m: m.Sigmoid(), (3, 4)),
    ("LayerNorm", lambda m: m.LayerNorm(6), (2, 3, 6)),
    ("LayerNorm-2d", lambda m: m.LayerNorm((3, 6), elementwise_affine=False), (2, 3, 6)),
    ("LayerNorm-nobias", lambda m: m.LayerNorm(6, bias=False), (2, 3, 6)),
    ("BatchNorm1d", lambda m: m.BatchNorm1d(4), (8, 4)),
    ("BatchNorm1d-NCL", lambda m: m.BatchNorm1d(3, momentum=0.5), (4, 3, 5)),
    ("BatchNorm2d", lambda m: m.BatchNorm2d(3), (4, 3, 5, 5)),
    ("BatchNorm2d-cumulative", lambda m: m.BatchNorm2d(3, momentum=None), (4, 3, 2, 3)),
    ("BatchNorm2d-untracked", lambda m: m.BatchNorm2d(3, affine=False, track_running_stats=False), (4, 3, 2, 3)),
    ("Dropout-eval", lambda m: m.Dropout(0.5).eval(), (3, 4)),
    ("Sequential", lambda m: m.Sequential(m.Linear(4, 8), m.ReLU(), m.Linear(8, 2)), (5, 4)),
]


@pytest.mark.parametrize("make,shape", [(m, s) for _, m, s in LAYERS], ids=[n for n, _, _ in LAYERS])
def test_layer_matches_torch(make, shape):
    """Three training-mode steps then eval: outputs, input and parameter gradients, SGD updates, buffers."""
    g, t = pair(make)
    g_opt = graphc.optim.SGD(g.parameters(), lr=0.1, momentum=0.9) if list(g.parameters()) else None
    t_opt = torch.optim.SGD(t.parameters(), lr=0.1, momentum=0.9) if g_opt else None
    for step in range(4):
        if step == 3:
            g.eval()
            t.eval()
        x = np.random.standard_normal(shape).astype(np.float32)
        gx, tx = graphc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        g_out, t_out = g(gx), t(tx)
        assert_close(g_out.detach(), t_out, 1e-4, 1e-5)
        w = np.random.standard_normal(tuple(t_out.shape)).astype(np.float32)
        (g_out * graphc.tensor(w)).sum().backward()
        (t_out * torch.tensor(w)).sum().backward()
        assert_close(gx.grad, tx.grad, 1e-4, 1e-5)
        for (_, gp), (_, tp) in zip(g.named_parameters(), t.named_parameters()):
            assert_close(gp.grad, tp.grad, 1e-4, 1e-5)
        if g_opt:
            g_opt.step()
            t_opt.step()
            g_opt.zero_grad()
            t_opt.zero_grad()
        assert_same_state(g, t, 1e-4, 1e-5)


def test_embedding_matches_torch():
    g, t = pair(lambda m: m.Embedding(10, 3, padding_idx=1))
    idx = np.random.randint(0, 10, (4, 6))
    g_out, t_out = g(graphc.tensor(idx)), t(torch.tensor(idx))
    assert_close(g_out.detach(), t_out)
    g_out.sum().backward()
    t_out.sum().backward()
    assert_close(g.weight.grad, t.weight.grad)


@pytest.mark.parametrize("make,target", [
    (lambda m: m.CrossEntropyLoss(), "index"),
    (lambda m: m.CrossEntropyLoss(label_smoothing=0.1, ignore_index=0, reduction="sum"), "index"),
    (lambda m: m.MSELoss(), "float"),
    (lambda m: m.MSELoss(reduction="none"), "float"),
])
def test_losses_match_torch(make, target):
    x = np.random.standard_normal((6, 4)).astype(np.float32)
    y = np.random.randint(0, 4, 6) if target == "index" else np.random.standard_normal((6, 4)).astype(np.float32)
    gx, tx = graphc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    g_loss, t_loss = make(graphc.nn)(gx, graphc.tensor(y)), make(torch.nn)(tx, torch.tensor(y))
    assert_close(g_loss.detach(), t_loss)
    g_loss.sum().backward()
    t_loss.sum().backward()
    assert_close(gx.grad, tx.grad)


def test_cross_entropy_loss_class_weight_is_a_buffer():
    w = np.array([1.0, 2.0, 0.5], dtype=np.float32)
    g, t = nn.CrossEntropyLoss(weight=graphc.tensor(w)), torch.nn.CrossEntropyLoss(weight=torch.tensor(w))
    assert list(g.state_dict()) == list(t.state_dict()) == ["weight"]
    x, y = np.random.standard_normal((5, 3)).astype(np.float32), np.random.randint(0, 3, 5)
    assert_close(g(graphc.tensor(x), graphc.tensor(y)), t(torch.tensor(x), torch.tensor(y)))


def test_dropout_module_train_and_eval():
    drop, x = nn.Dropout(0.25), graphc.ones(100, 100)
    out = drop(x).numpy()
    assert abs((out == 0).mean() - 0.25) < 0.02
    np.testing.assert_allclose(out[out != 0], 1 / 0.75, rtol=1e-6)
    drop.eval()
    assert drop(x) is x


def build_block(self, m, lib):
    """Submodules, a parameter, a buffer and a non-persistent buffer, set the same way on a graphc or torch module."""
    self.conv = m.Conv2d(1, 2, 3)
    self.bn = m.BatchNorm2d(2)
    self.heads = m.ModuleList([m.Linear(8, 3), m.Linear(8, 2)])
    self.scale = m.Parameter(lib.ones(1))
    self.register_buffer("steps", lib.zeros(()))
    self.register_buffer("scratch", lib.zeros(2), persistent=False)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        build_block(self, nn, graphc)


class TorchBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        build_block(self, torch.nn, torch)


def test_registration_and_state_dict_names_match_torch():
    g, t = Block(), TorchBlock()
    assert list(g.state_dict()) == list(t.state_dict())
    assert [n for n, _ in g.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert [n for n, _ in g.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert [n for n, _ in g.named_modules()] == [n for n, _ in t.named_modules()]
    assert [type(c).__name__ for c in g.children()] == [type(c).__name__ for c in t.children()]
    assert g.state_dict()["bn.num_batches_tracked"].dtype is graphc.int64
    g.load_state_dict(numpy_state(t))
    assert_same_state(g, t)
    assert isinstance(g.scale, nn.Parameter) and not isinstance(g.steps, nn.Parameter)
    g.plain = graphc.zeros(3)  # a plain tensor attribute is neither parameter nor buffer
    assert "plain" not in g.state_dict()
    del g.heads
    assert not any(n.startswith("heads") for n, _ in g.named_parameters())


def test_load_state_dict_errors_and_non_strict():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    state = model.state_dict()
    with pytest.raises(RuntimeError, match=r"Missing key\(s\) in state_dict: '1.running_var'"):
        model.load_state_dict({k: v for k, v in state.items() if k != "1.running_var"})
    with pytest.raises(RuntimeError, match=r"Unexpected key\(s\) in state_dict: 'extra'"):
        model.load_state_dict({**state, "extra": graphc.zeros(1)})
    with pytest.raises(RuntimeError, match=r"size mismatch for 0.weight: copying a param with shape \[2, 4\]"):
        model.load_state_dict({**state, "0.weight": graphc.zeros(2, 4)})
    before = model[0].weight
    result = model.load_state_dict({"0.weight": np.ones((2, 3), np.float32), "extra": graphc.zeros(1)}, strict=False)
    assert result.unexpected_keys == ["extra"] and "0.bias" in result.missing_keys
    assert model[0].weight is before and model[0].weight.numpy(force=True).tolist() == [[1.0] * 3] * 2
    assert model[0].weight.requires_grad


def test_state_dict_round_trips_through_graphc_save(tmp_path):
    g, t = pair(lambda m: m.Sequential(m.Conv2d(1, 2, 3), m.BatchNorm2d(2)))
    t(torch.randn(4, 1, 5, 5))  # move torch's running statistics
    g.load_state_dict(numpy_state(t))
    graphc.save(g.state_dict(), tmp_path / "m.ckpt")
    fresh = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    fresh.load_state_dict(graphc.load(tmp_path / "m.ckpt"))
    assert_same_state(fresh, t)


def test_train_eval_requires_grad_zero_grad_and_to():
    model = nn.Sequential(nn.Linear(3, 4), nn.Dropout(), nn.Sequential(nn.BatchNorm1d(4)))
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    model(graphc.randn(5, 3)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    weight = model[0].weight
    optimizer = graphc.optim.SGD(model.parameters(), lr=0.1)
    model.to(graphc.float64)
    assert model[0].weight is weight and weight.dtype is graphc.float64 and weight.requires_grad
    assert model[2][0].num_batches_tracked.dtype is graphc.int64  # integer buffers keep their dtype
    assert model(graphc.randn(5, 3, dtype=graphc.float64)).dtype is graphc.float64
    assert optimizer.param_groups[0]["params"][0] is weight
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())


def test_forward_hooks():
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    seen = []
    handle = model[0].register_forward_hook(lambda m, args, out: seen.append((m, args[0].shape, out.shape)))
    model[1].register_forward_hook(lambda m, args, out: out * 2)
    x = graphc.randn(4, 3)
    out = model(x)
    assert seen == [(model[0], (4, 3), (4, 2))]
    handle.remove()
    np.testing.assert_allclose(out.detach().numpy(), 2 * np.maximum(model[0](x).detach().numpy(), 0), rtol=1e-6)
    assert len(seen) == 1


def test_full_backward_hooks_match_torch():
    g, t = pair(lambda m: m.Sequential(m.Linear(3, 4), m.Tanh(), m.Linear(4, 2)))
    records = {"g": [], "t": []}
    for key, model in (("g", g), ("t", t)):
        for layer in (model[0], model[1]):
            layer.register_full_backward_hook(
                lambda m, gin, gout, key=key: records[key].append((type(m).__name__, gin, gout)))
        model[2].register_full_backward_hook(lambda m, gin, gout: tuple(x * 3 for x in gin))
    x = np.random.standard_normal((5, 3)).astype(np.float32)
    gx, tx = graphc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    g(gx).sum().backward()
    t(tx).sum().backward()
    assert [r[0] for r in records["g"]] == [r[0] for r in records["t"]] == ["Tanh", "Linear"]
    for (_, g_in, g_out), (_, t_in, t_out) in zip(records["g"], records["t"]):
        for a, b in zip(g_in + g_out, t_in + t_out):
            assert_close(a, b, 1e-5, 1e-6)
    assert_close(gx.grad, tx.grad, 1e-5, 1e-6)  # the x3 replacement of grad_input reached the input
    assert_close(g[0].weight.grad, t[0].weight.grad, 1e-5, 1e-6)


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_first_layer_backward_hook_without_input_grad_matches_torch():
    g, t = pair(lambda m: m.Linear(3, 2))
    calls = {"g": [], "t": []}
    g.register_full_backward_hook(lambda m, gin, gout: calls["g"].append((gin, gout)))
    t.register_full_backward_hook(lambda m, gin, gout: calls["t"].append((gin, gout)))
    x = np.random.standard_normal((4, 3)).astype(np.float32)
    g(graphc.tensor(x)).sum().backward()
    t(torch.tensor(x)).sum().backward()
    (g_in, g_out), (t_in, t_out) = calls["g"][0], calls["t"][0]
    assert g_in == t_in == (None,)
    assert_close(g_out[0], t_out[0])


def test_backward_hook_gives_zeros_for_inputs_without_grad_beside_one_with_like_torch():
    calls = {"g": [], "t": []}

    class Scale(nn.Module):
        def forward(self, a, b):
            return a * b

    class TScale(torch.nn.Module):
        def forward(self, a, b):
            return a * b
    g, t = Scale(), TScale()
    g.register_full_backward_hook(lambda m, gin, gout: calls["g"].append(gin))
    t.register_full_backward_hook(lambda m, gin, gout: calls["t"].append(gin))
    a, b = np.random.standard_normal((2, 3)).astype(np.float32), np.random.standard_normal((2, 3)).astype(np.float32)
    g(graphc.tensor(a, requires_grad=True), graphc.tensor(b)).sum().backward()
    t(torch.tensor(a, requires_grad=True), torch.tensor(b)).sum().backward()
    for ours, theirs in zip(calls["g"][0], calls["t"][0]):
        assert_close(ours, theirs)


def test_containers():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers.append(nn.ReLU())
    layers.insert(0, nn.Tanh())
    assert [type(m).__name__ for m in layers] == ["Tanh", "Linear", "Linear", "Linear", "ReLU"]
    assert len(list(layers.parameters())) == 6 and isinstance(layers[-1], nn.ReLU)
    with pytest.raises(IndexError, match="out of range"):
        layers[5]
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[1:], nn.Sequential) and list(seq[1:].state_dict()) == ["2.weight",
                                                                                                   "2.bias"]
    assert "Linear(in_features=2, out_features=3, bias=True)" in repr(seq)


def test_parameters_are_shared_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.parameters())) == 2
    assert list(model.state_dict()) == list(torch.nn.Sequential(*[torch.nn.Linear(2, 2)] * 1, torch.nn.ReLU(),
                                                                 torch.nn.Linear(2, 2)).state_dict())


@pytest.mark.parametrize("make,expected_std", [
    (lambda: nn.Linear(400, 300).weight, 1 / math.sqrt(400) / math.sqrt(3)),
    (lambda: nn.Linear(400, 300).bias, 1 / math.sqrt(400) / math.sqrt(3)),
    (lambda: nn.Conv2d(16, 32, 3).weight, 1 / math.sqrt(16 * 9) / math.sqrt(3)),
    (lambda: nn.Embedding(300, 200).weight, 1.0),
])
def test_default_initialisation_matches_torch_scheme(make, expected_std):
    w = make().numpy(force=True)
    assert abs(w.std() / expected_std - 1) < 0.05 and abs(w.mean()) < 0.1 * expected_std + 0.01
    if expected_std != 1.0:
        assert np.abs(w).max() <= expected_std * math.sqrt(3) + 1e-7


def test_embedding_padding_row_is_zero():
    assert not nn.Embedding(5, 3, padding_idx=-1).weight.numpy(force=True)[4].any()


@pytest.mark.parametrize("name,kwargs,std", [
    ("xavier_uniform_", dict(gain=2.0), 2 * math.sqrt(2 / (300 + 200))),
    ("xavier_normal_", dict(), math.sqrt(2 / (300 + 200))),
    ("kaiming_uniform_", dict(nonlinearity="relu"), math.sqrt(2 / 200)),
    ("kaiming_normal_", dict(mode="fan_out", nonlinearity="relu"), math.sqrt(2 / 300)),
    ("normal_", dict(mean=1.0, std=0.5), 0.5),
    ("uniform_", dict(a=-2.0, b=2.0), 4 / math.sqrt(12)),
])
def test_init_functions(name, kwargs, std):
    w = graphc.empty(300, 200)
    getattr(nn.init, name)(w, **kwargs)
    t = getattr(torch.nn.init, name)(torch.empty(300, 200), **kwargs)
    assert abs(w.numpy().std() / std - 1) < 0.05 and abs(t.std().item() / std - 1) < 0.05
    assert abs(w.numpy().mean() - t.mean().item()) < 0.05
    assert nn.init.zeros_(w).numpy().max() == 0 and nn.init.ones_(w).numpy().min() == 1
    graphc.manual_seed(5)
    first = getattr(nn.init, name)(graphc.empty(3, 4), **kwargs).numpy().copy()
    graphc.manual_seed(5)
    np.testing.assert_array_equal(first, getattr(nn.init, name)(graphc.empty(3, 4), **kwargs).numpy())


@pytest.mark.parametrize("max_norm,norm_type", [(0.5, 2.0), (100.0, 2.0), (0.3, 1.0), (0.2, math.inf)])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    grads = [np.random.standard_normal(s).astype(np.float32) for s in [(3, 4), (5,)]]
    g_params = [graphc.zeros(*a.shape, requires_grad=True) for a in grads]
    t_params = [torch.zeros(a.shape, requires_grad=True) for a in grads]
    for gp, tp, a in zip(g_params, t_params, grads):
        gp.grad, tp.grad = graphc.tensor(a), torch.tensor(a)
    g_norm = nn.utils.clip_grad_norm_(g_params, max_norm, norm_type)
    t_norm = torch.nn.utils.clip_grad_norm_(t_params, max_norm, norm_type)
    assert_close(g_norm, t_norm)
    for gp, tp in zip(g_params, t_params):
        assert_close(gp.grad, tp.grad)


def test_clip_grad_norm_nonfinite():
    p = graphc.zeros(2, requires_grad=True)
    p.grad = graphc.tensor([float("inf"), 1.0])
    with pytest.raises(RuntimeError, match="total norm of order 2.0 of the gradients is inf"):
        nn.utils.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)


@pytest.mark.parametrize("opt,kwargs", [("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3)),
                                        ("Adam", dict(lr=1e-2)), ("AdamW", dict(lr=1e-2, amsgrad=True))])
def test_model_with_optimizer_and_clipping_tracks_torch(opt, kwargs):
    # no conv bias: before batch norm its gradient is rounding noise, which Adam would amplify to lr-sized steps
    g, t = pair(lambda m: m.Sequential(m.Conv2d(1, 3, 3, bias=False), m.BatchNorm2d(3), m.ReLU(), m.MaxPool2d(2),
                                       m.Flatten(), m.Linear(12, 8), m.GELU(), m.LayerNorm(8), m.Linear(8, 4)))
    g_opt, t_opt = getattr(graphc.optim, opt)(g.parameters(), **kwargs), getattr(torch.optim, opt)(t.parameters(),
                                                                                                  **kwargs)
    for _ in range(5):
        x, y = np.random.standard_normal((6, 1, 6, 6)).astype(np.float32), np.random.randint(0, 4, 6)
        for lib, model, optimizer in ((graphc, g, g_opt), (torch, t, t_opt)):
            optimizer.zero_grad()
            lib.nn.functional.cross_entropy(model(lib.tensor(x)), lib.tensor(y)).backward()
            lib.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        assert_same_state(g, t, 1e-4, 1e-5)
    g_state, t_state = g_opt.state_dict(), t_opt.state_dict()
    assert g_state["param_groups"][0]["params"] == t_state["param_groups"][0]["params"]


def test_sequential_and_module_list_editing_match_torch():
    def run(lib):
        m = lib.nn.Sequential(lib.nn.Linear(2, 3), lib.nn.ReLU(), lib.nn.Linear(3, 1))
        m[1] = lib.nn.Tanh()
        del m[0]
        m.insert(0, lib.nn.Linear(2, 3))
        m.append(lib.nn.Sigmoid())
        popped = m.pop(-1)
        m.extend([lib.nn.ReLU()])
        modules = lib.nn.ModuleList([lib.nn.ReLU(), lib.nn.Tanh(), lib.nn.ReLU()])
        modules[0] = lib.nn.Sigmoid()
        return ([type(x).__name__ for x in m], list(m.state_dict()), type(popped).__name__,
                [type(x).__name__ for x in modules])
    assert run(graphc) == run(torch)


def test_load_state_dict_with_assign_takes_the_values_and_their_dtype_as_torch():
    """assign=True: the state dict's tensors become the parameters and buffers (their dtype kept), parameters
    stay Parameters requiring grad; without it the values are copied into the module's own dtype."""
    def run(L, assign):
        m = L.nn.Sequential(L.nn.Linear(3, 2), L.nn.BatchNorm1d(2))
        sd = {k: v.double() + 1 if v.dtype == L.float32 else v for k, v in m.state_dict().items()}
        m.load_state_dict(sd, assign=assign)
        return m

    for assign in (False, True):
        mine, theirs = run(graphc, assign), run(torch, assign)
        pairs = zip(mine.state_dict(keep_vars=True).items(), theirs.state_dict(keep_vars=True).items())
        for (name, p), (_, tp) in pairs:
            assert str(p.dtype).split(".")[-1] == str(tp.dtype).split(".")[-1], name
            assert p.requires_grad == tp.requires_grad, name
        assert isinstance(mine[0].weight, graphc.nn.Parameter)
        assert [n for n, _ in mine.named_parameters()] == [n for n, _ in theirs.named_parameters()]


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_an_out_of_range_token_is_the_callers_error_not_the_plans(backend):
    """A batch with a token id beyond the table raises torch's IndexError, compiled as eagerly, on the first call
    too: the caller's values are refused (no "plan failed" warning, no eager fallback), and good batches replay."""
    import warnings

    emb = torch.nn.Embedding(5, 2)
    with pytest.raises(IndexError):
        emb(torch.tensor([0, 7]))
    compiled = graphc.compile(nn.Embedding(5, 2), backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for tokens in ([0, 7], [0, 1], [2, 3], [9, 9], [4, 1]):
            if max(tokens) >= 5:
                with pytest.raises(IndexError, match="out of range"):
                    compiled(graphc.tensor(tokens))
            else:
                assert compiled(graphc.tensor(tokens)).shape == (2, 2)
    assert compiled.num_compiles == 1


def test_float64_batch_norm_running_var_is_torch_to_float64_rounding():
    """The unbiased correction n / (n - 1) is applied in the statistic's dtype (it was a float32 factor: 8/7 off by
    float32 rounding in a float64 model's running_var)."""
    x = np.random.default_rng(0).standard_normal((8, 3))
    mine, theirs = nn.BatchNorm1d(3).double(), torch.nn.BatchNorm1d(3).double()
    mine(graphc.tensor(x))
    theirs(torch.tensor(x))
    np.testing.assert_allclose(mine.running_var.numpy(), theirs.running_var.numpy(), rtol=1e-14)
