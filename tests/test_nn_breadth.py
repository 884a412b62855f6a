"""The activations, resampling, padding, distance and normalisation layers that ported scripts use, against torch:
values, gradients of inputs and parameters, state dicts loaded from torch, reprs, errors, and a compiled model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from conftest import assert_close

import graphc
import graphc.nn.functional as F
from graphc import nn


def pair(make):
    """(graphc module, torch module) built alike, the graphc one loaded with the torch one's state dict."""
    g, t = make(graphc.nn), make(torch.nn)
    g.load_state_dict({k: v.detach().numpy().copy() for k, v in t.state_dict().items()})
    return g, t


def check(g_fn, t_fn, *shapes, scale=2.0, rtol=1e-5, atol=1e-5, params=((), ())):
    """g_fn and t_fn on the same random inputs: equal outputs, then equal gradients of a random weighting of the
    output for every input and the given (graphc, torch) parameters."""
    arrays = [np.random.standard_normal(s).astype(np.float32) * scale for s in shapes]
    gs = [graphc.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    g_out, t_out = g_fn(*gs), t_fn(*ts)
    assert_close(g_out.detach(), t_out, rtol, atol)
    w = np.random.standard_normal(tuple(t_out.shape)).astype(np.float32)
    (g_out * graphc.tensor(w)).sum().backward()
    (t_out * torch.tensor(w)).sum().backward()
    for g, t in list(zip(gs, ts)) + list(zip(*params)):
        assert_close(g.grad, t.grad, rtol, atol)


ACTIVATIONS = [
    ("relu6", lambda f, x: f.relu6(x * 3)),
    ("hardtanh", lambda f, x: f.hardtanh(x, -0.5, 2.0)),
    ("hardswish", lambda f, x: f.hardswish(x * 2)),
    ("hardsigmoid", lambda f, x: f.hardsigmoid(x * 2)),
    ("mish", lambda f, x: f.mish(x)),
    ("selu", lambda f, x: f.selu(x)),
    ("celu", lambda f, x: f.celu(x, 0.7)),
    ("logsigmoid", lambda f, x: f.logsigmoid(x * 20)),
    ("softmin", lambda f, x: f.softmin(x, dim=1)),
    ("softsign", lambda f, x: f.softsign(x)),
    ("softshrink", lambda f, x: f.softshrink(x, 0.7)),
    ("hardshrink", lambda f, x: f.hardshrink(x)),
    ("tanhshrink", lambda f, x: f.tanhshrink(x)),
    ("threshold", lambda f, x: f.threshold(x, 0.3, -2.0)),
    ("glu", lambda f, x: f.glu(x, 1)),
    ("rrelu_eval", lambda f, x: f.rrelu(x, 0.1, 0.3)),
]


@pytest.mark.parametrize("fn", [fn for _, fn in ACTIVATIONS], ids=[name for name, _ in ACTIVATIONS])
def test_activation(fn):
    check(lambda x: fn(F, x), lambda x: fn(TF, x), (4, 6, 3))


def test_activation_gradient_at_the_bounds():
    """hardtanh/relu6 pass no gradient at their bounds (torch's choice; clamp's passes it)."""
    values = np.array([-2.0, -1.0, 0.0, 1.0, 6.0, 7.0], dtype=np.float32)
    for g_fn, t_fn in ((F.hardtanh, TF.hardtanh), (F.relu6, TF.relu6), (F.hardsigmoid, TF.hardsigmoid)):
        gx, tx = graphc.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
        g_fn(gx).sum().backward()
        t_fn(tx).sum().backward()
        assert_close(gx.grad, tx.grad)


def test_inplace_activations():
    values = np.random.standard_normal((3, 4)).astype(np.float32)
    for name in ("relu_", "elu_", "leaky_relu_", "hardtanh_", "selu_", "celu_"):
        g, t = graphc.tensor(values), torch.tensor(values)
        out = getattr(F, name)(g)
        getattr(TF, name)(t)
        assert out is g
        assert_close(g, t)
    for module in ("ReLU6", "Hardswish", "Hardsigmoid", "Mish", "SELU"):
        g, t = graphc.tensor(values), torch.tensor(values)
        getattr(nn, module)(inplace=True)(g)
        getattr(torch.nn, module)(inplace=True)(t)
        assert_close(g, t)


def test_rrelu_training_draws_slopes_in_range():
    x = graphc.tensor(-np.ones((200,), dtype=np.float32))
    slopes = -F.rrelu(x, 0.1, 0.3, training=True)._host()
    assert slopes.min() >= 0.1 and slopes.max() <= 0.3 and slopes.std() > 0.01
    assert (F.rrelu(-x, training=True)._host() == 1).all()


@pytest.mark.parametrize("shape,num", [((4, 3, 5), 3), ((4, 3, 2, 2), 1), ((5,), 1)])
def test_prelu(shape, num):
    g, t = pair(lambda m: m.PReLU(num, init=0.3))
    check(g, t, shape, params=([g.weight], [t.weight]))
    assert list(g.state_dict()) == ["weight"]


MODULES = [
    ("Hardtanh", lambda m: m.Hardtanh(-2, 3)), ("ReLU6", lambda m: m.ReLU6()), ("Hardswish", lambda m: m.Hardswish()),
    ("Mish", lambda m: m.Mish()), ("CELU", lambda m: m.CELU(0.5)), ("Softmin", lambda m: m.Softmin(dim=-1)),
    ("Softshrink", lambda m: m.Softshrink(0.3)), ("Hardshrink", lambda m: m.Hardshrink(0.3)),
    ("Threshold", lambda m: m.Threshold(0.1, 20)), ("GLU", lambda m: m.GLU()), ("RReLU", lambda m: m.RReLU().eval()),
    ("LogSigmoid", lambda m: m.LogSigmoid()), ("Softsign", lambda m: m.Softsign()),
    ("Tanhshrink", lambda m: m.Tanhshrink()), ("SELU", lambda m: m.SELU()), ("Hardsigmoid", lambda m: m.Hardsigmoid()),
    ("PReLU", lambda m: m.PReLU(4)), ("RMSNorm", lambda m: m.RMSNorm(4)),
    ("Upsample", lambda m: m.Upsample(scale_factor=2, mode="bilinear")),
    ("UpsamplingNearest2d", lambda m: m.UpsamplingNearest2d(size=(5, 7))),
    ("UpsamplingBilinear2d", lambda m: m.UpsamplingBilinear2d(scale_factor=2)),
    ("PixelShuffle", lambda m: m.PixelShuffle(2)), ("PixelUnshuffle", lambda m: m.PixelUnshuffle(2)),
    ("ZeroPad2d", lambda m: m.ZeroPad2d((1, 0, 2, 1))), ("ConstantPad1d", lambda m: m.ConstantPad1d(2, 3.5)),
    ("ConstantPad2d", lambda m: m.ConstantPad2d((1, 1, 0, 2), -1.0)),
    ("ReflectionPad1d", lambda m: m.ReflectionPad1d((3, 1)), (2, 4, 4)),
    ("ReflectionPad2d", lambda m: m.ReflectionPad2d(2)),
    ("ReplicationPad2d", lambda m: m.ReplicationPad2d((3, 0, 1, 5))),
    ("CircularPad2d", lambda m: m.CircularPad2d(1)),
]


@pytest.mark.parametrize("case", MODULES, ids=[case[0] for case in MODULES])
def test_module_against_torch(case):
    g, t = pair(case[1])
    assert repr(g) == repr(t)
    assert list(g.state_dict()) == list(t.state_dict())
    check(g, t, case[2] if len(case) > 2 else (2, 4, 4, 4), params=(list(g.parameters()), list(t.parameters())))


INTERPOLATIONS = [
    ((2, 3, 5), dict(scale_factor=2)),
    ((2, 3, 5), dict(size=12, mode="linear")),
    ((2, 3, 5), dict(size=3, mode="linear", align_corners=True)),
    ((2, 3, 4, 5), dict(scale_factor=2, mode="nearest")),
    ((2, 3, 4, 5), dict(size=(7, 3))),
    ((2, 3, 4, 5), dict(scale_factor=1.7)),
    ((2, 3, 4, 5), dict(scale_factor=(2, 3), mode="bilinear")),
    ((2, 3, 4, 5), dict(size=(9, 8), mode="bilinear", align_corners=True)),
    ((2, 3, 4, 5), dict(scale_factor=1.5, mode="bilinear")),
    ((2, 3, 4, 5), dict(scale_factor=1.5, mode="bilinear", recompute_scale_factor=True)),
    ((2, 3, 6, 5), dict(size=(3, 2), mode="bilinear")),
    ((2, 3, 4, 5), dict(size=(7, 6), mode="nearest-exact")),
    ((2, 3, 4, 5), dict(size=(7, 9), mode="bicubic")),
    ((2, 3, 4, 5), dict(scale_factor=2, mode="bicubic", align_corners=True)),
    ((2, 3, 7, 5), dict(size=(3, 4), mode="area")),
    ((1, 2, 3, 4, 2), dict(scale_factor=2, mode="trilinear")),
    ((1, 2, 3, 4, 2), dict(size=(2, 5, 3))),
]


@pytest.mark.parametrize("shape,kwargs", INTERPOLATIONS, ids=[str(k) for _, k in INTERPOLATIONS])
def test_interpolate(shape, kwargs):
    check(lambda x: F.interpolate(x, **kwargs), lambda x: TF.interpolate(x, **kwargs), shape, atol=2e-5)


@pytest.mark.parametrize("kwargs,error", [
    (dict(scale_factor=2, align_corners=True), ValueError),
    (dict(), ValueError),
    (dict(size=4, scale_factor=2), ValueError),
    (dict(size=(2, 3, 4)), ValueError),
    (dict(size=4, mode="bilinear"), NotImplementedError),
    (dict(size=4, mode="foo"), NotImplementedError),
])
def test_interpolate_errors(kwargs, error):
    with pytest.raises(error) as theirs:
        TF.interpolate(torch.zeros(1, 2, 3), **kwargs)
    with pytest.raises(error) as ours:
        F.interpolate(graphc.zeros(1, 2, 3), **kwargs)
    assert str(theirs.value).split(" (")[0].split(",")[0] in str(ours.value)


def test_interpolate_integers_only_in_nearest_modes():
    x = np.arange(12).reshape(1, 2, 6)
    assert_close(F.interpolate(graphc.tensor(x), scale_factor=1.5),
                 TF.interpolate(torch.tensor(x).float(), scale_factor=1.5).long())
    with pytest.raises(RuntimeError):
        TF.interpolate(torch.tensor(x), scale_factor=2, mode="linear")
    with pytest.raises(RuntimeError):
        F.interpolate(graphc.tensor(x), scale_factor=2, mode="linear")


PADS = [
    ((2, 3, 5), (2, 3), "reflect"), ((3, 5), (4, 0), "reflect"), ((2, 3, 4, 5), (1, 2, 3, 1), "reflect"),
    ((2, 3, 4, 5), (-1, 2, 3, 1), "reflect"), ((2, 3, 5), (2, 7), "replicate"), ((2, 4, 5), (1, 2, 2, 3), "replicate"),
    ((1, 2, 3, 4, 5), (1, 1, 2, 0, 1, 2), "replicate"), ((2, 3, 5), (5, 2), "circular"),
    ((2, 3, 4, 5), (1, 2, 3, 4), "circular"), ((1, 2, 3, 4, 5), (1, 2, 2, 1, 1, 0), "reflect"),
]


@pytest.mark.parametrize("shape,amounts,mode", PADS, ids=[f"{m}{a}" for _, a, m in PADS])
def test_pad_modes(shape, amounts, mode):
    check(lambda x: F.pad(x, amounts, mode), lambda x: TF.pad(x, amounts, mode), shape)


@pytest.mark.parametrize("shape,amounts,mode,value,error", [
    ((1, 2, 3), (3, 1), "reflect", None, RuntimeError),
    ((1, 2, 3), (4, 0), "circular", None, RuntimeError),
    ((1, 2, 3), (1, 1), "reflect", 2.0, RuntimeError),
    ((1, 2, 3), (1, 1), "foo", None, NotImplementedError),
    ((2, 3), (1, 1, 1, 1, 1, 1), "replicate", None, RuntimeError),
    ((2, 3, 3, 3, 3, 3), (1, 1), "replicate", None, NotImplementedError),
])
def test_pad_errors(shape, amounts, mode, value, error):
    with pytest.raises(error):
        TF.pad(torch.zeros(shape), amounts, mode, value)
    with pytest.raises(error):
        F.pad(graphc.zeros(shape), amounts, mode, value)


def test_pixel_shuffle_round_trip_and_errors():
    check(lambda x: F.pixel_shuffle(x, 3), lambda x: TF.pixel_shuffle(x, 3), (2, 18, 2, 3))
    check(lambda x: F.pixel_unshuffle(x, 2), lambda x: TF.pixel_unshuffle(x, 2), (3, 4, 6))
    for fn, tfn, shape in ((F.pixel_shuffle, TF.pixel_shuffle, (1, 3, 2, 2)),
                           (F.pixel_unshuffle, TF.pixel_unshuffle, (1, 3, 3, 2))):
        with pytest.raises(RuntimeError) as theirs:
            tfn(torch.zeros(shape), 2)
        with pytest.raises(RuntimeError) as ours:
            fn(graphc.zeros(shape), 2)
        assert str(theirs.value) in str(ours.value)


@pytest.mark.parametrize("shapes,kwargs", [
    (((5, 8), (5, 8)), dict()), (((5, 8), (1, 8)), dict(dim=-1)), (((2, 3, 4), (2, 3, 4)), dict(dim=0, eps=0.1))])
def test_cosine_similarity(shapes, kwargs):
    check(lambda a, b: F.cosine_similarity(a, b, **kwargs), lambda a, b: TF.cosine_similarity(a, b, **kwargs),
          *shapes)
    check(lambda a, b: nn.CosineSimilarity(**kwargs)(a, b), lambda a, b: torch.nn.CosineSimilarity(**kwargs)(a, b),
          *shapes)


def test_cosine_similarity_of_a_zero_vector():
    """A norm below eps is clamped in value only: torch's gradient is the unclamped norm's."""
    x = np.zeros((2, 3), dtype=np.float32)
    x[1] = [1e-9, 2e-9, 0]
    y = np.ones((2, 3), dtype=np.float32)
    gx, tx = graphc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    g_out, t_out = F.cosine_similarity(gx, graphc.tensor(y)), TF.cosine_similarity(tx, torch.tensor(y))
    assert_close(g_out.detach(), t_out)
    g_out.sum().backward()
    t_out.sum().backward()
    np.testing.assert_allclose(gx.grad._host(), tx.grad.numpy(), rtol=1e-4)


@pytest.mark.parametrize("kwargs", [dict(), dict(p=1.0, keepdim=True), dict(p=3.0, eps=0.0)])
def test_pairwise_distance(kwargs):
    check(lambda a, b: F.pairwise_distance(a, b, **kwargs), lambda a, b: TF.pairwise_distance(a, b, **kwargs),
          (6, 5), (6, 5))
    check(lambda a, b: nn.PairwiseDistance(**kwargs)(a, b), lambda a, b: torch.nn.PairwiseDistance(**kwargs)(a, b),
          (5,), (5,))


@pytest.mark.parametrize("normalized_shape,eps", [((6,), None), ((4, 6), 1e-3)])
def test_rms_norm(normalized_shape, eps):
    g, t = pair(lambda m: m.RMSNorm(normalized_shape, eps=eps))
    with torch.no_grad():
        t.weight.uniform_()
    g.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    check(g, t, (3, 4, 6), params=([g.weight], [t.weight]))
    check(lambda x: F.rms_norm(x, normalized_shape, eps=eps), lambda x: TF.rms_norm(x, normalized_shape, eps=eps),
          (2, 4, 6), scale=1e-3)
    with pytest.raises(ValueError):
        F.rms_norm(graphc.zeros(3, 5), (4,))


def test_argument_errors_as_torch():
    x, t = graphc.zeros(3, 3), torch.zeros(3, 3)
    for call in (lambda f, x: f.glu(x), lambda f, x: f.softshrink(x, -1.0), lambda f, x: f.celu(x, 0.0),
                 lambda f, x: f.prelu(x, type(x)([1.0, 2.0]) if f is TF else graphc.tensor([1.0, 2.0]))):
        with pytest.raises(RuntimeError):
            call(TF, t)
        with pytest.raises(RuntimeError):
            call(F, x)
    with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
        nn.Hardtanh(2.0, 1.0)


def test_compiled_model_of_new_layers():
    """A small decoder built from several of the new layers: one compiled training step equals eager torch."""
    def make(m):
        return m.Sequential(m.ReflectionPad2d(1), m.Conv2d(2, 8, 3), m.PReLU(8), m.Upsample(scale_factor=2,
                            mode="bilinear"), m.Hardswish(), m.PixelUnshuffle(2), m.Mish(), m.Conv2d(32, 4, 1),
                            m.GLU(dim=1), m.Flatten(), m.RMSNorm(2 * 5 * 6))

    g, t = pair(make)
    x = np.random.standard_normal((3, 2, 5, 6)).astype(np.float32)

    @graphc.compile(backend="numpy")
    def step(x):
        loss = g(x).square().mean()
        loss.backward()
        return loss

    for _ in range(2):
        g.zero_grad()
        loss = step(graphc.tensor(x))
    assert step.num_compiles == 1
    t_loss = t(torch.tensor(x)).square().mean()
    t_loss.backward()
    assert_close(loss, t_loss, 1e-4, 1e-5)
    for gp, tp in zip(g.parameters(), t.parameters()):
        assert_close(gp.grad, tp.grad, 1e-4, 1e-5)


LAYERS = [
    ("InstanceNorm1d", lambda m: m.InstanceNorm1d(4), (2, 4, 5)),
    ("InstanceNorm1d_unbatched", lambda m: m.InstanceNorm1d(4, affine=True), (4, 5)),
    ("InstanceNorm2d_affine", lambda m: m.InstanceNorm2d(4, affine=True, track_running_stats=True), (2, 4, 3, 5)),
    ("InstanceNorm2d_eval", lambda m: m.InstanceNorm2d(4, track_running_stats=True).eval(), (2, 4, 3, 5)),
    ("InstanceNorm3d", lambda m: m.InstanceNorm3d(2, affine=True, bias=False), (2, 2, 3, 2, 2)),
    ("BatchNorm3d", lambda m: m.BatchNorm3d(2), (3, 2, 2, 3, 2)),
    ("MaxPool1d", lambda m: m.MaxPool1d(3, 2, padding=1), (2, 3, 9)),
    ("MaxPool1d_dilated", lambda m: m.MaxPool1d(2, dilation=2, ceil_mode=True), (3, 8)),
    ("AvgPool1d", lambda m: m.AvgPool1d(3, 2, padding=1, count_include_pad=False), (2, 3, 9)),
    ("AdaptiveAvgPool1d", lambda m: m.AdaptiveAvgPool1d(4), (2, 3, 10)),
    ("AdaptiveMaxPool1d", lambda m: m.AdaptiveMaxPool1d(3), (2, 3, 7)),
    ("AdaptiveMaxPool2d", lambda m: m.AdaptiveMaxPool2d((3, None)), (2, 3, 7, 4)),
    ("AdaptiveMaxPool2d_int", lambda m: m.AdaptiveMaxPool2d(2), (3, 5, 5)),
    ("ConvTranspose1d", lambda m: m.ConvTranspose1d(3, 4, 3, stride=2, padding=1, output_padding=1), (2, 3, 6)),
    ("ConvTranspose1d_groups", lambda m: m.ConvTranspose1d(4, 6, 2, groups=2, dilation=2, bias=False), (4, 5)),
    ("Unflatten", lambda m: m.Unflatten(1, (2, -1)), (3, 8, 2)),
    ("Unfold", lambda m: m.Unfold((2, 3), dilation=(1, 2), padding=1, stride=(2, 1)), (2, 3, 5, 6)),
    ("Unfold_unbatched", lambda m: m.Unfold(2), (3, 4, 4)),
    ("Fold", lambda m: m.Fold((5, 6), (2, 3), dilation=(1, 2), padding=1, stride=(2, 1)), (2, 18, 12)),
    ("Fold_unbatched", lambda m: m.Fold(4, 2, stride=2), (12, 4)),
]


@pytest.mark.parametrize("case", LAYERS, ids=[case[0] for case in LAYERS])
def test_layer_against_torch(case):
    name, make, shape = case
    g, t = pair(make)
    assert list(g.state_dict()) == list(t.state_dict())
    if name.startswith(("Instance", "Batch", "Fold", "Unfold", "Unflatten", "Adaptive", "MaxPool1d")):
        assert repr(g) == repr(t)
    check(g, t, shape, params=(list(g.parameters()), list(t.parameters())))
    for key, value in t.state_dict().items():  # running statistics moved alike
        assert_close(g.state_dict()[key], value, 1e-5, 1e-6)


def test_bilinear():
    g, t = pair(lambda m: m.Bilinear(3, 4, 5))
    assert repr(g) == repr(t) and list(g.state_dict()) == ["weight", "bias"]
    check(g, t, (6, 3), (6, 4), params=(list(g.parameters()), list(t.parameters())))
    assert_close(graphc.tensor(g.weight.detach()._host().std()), torch.tensor(0.577 / 3 ** 0.5), 0.3)


@pytest.mark.parametrize("kwargs,offsets", [(dict(mode="mean"), [0, 2, 2, 5]), (dict(mode="sum"), [0, 3]),
                                            (dict(mode="sum", include_last_offset=True), [0, 1, 4, 7]),
                                            (dict(mode="mean", padding_idx=1), [0, 4]), (dict(), None)])
def test_embedding_bag(kwargs, offsets):
    g, t = pair(lambda m: m.EmbeddingBag(6, 3, **kwargs))
    assert repr(g) == repr(t)
    if offsets is None:
        index = np.random.randint(0, 6, (4, 3))
        g_out, t_out = g(graphc.tensor(index)), t(torch.tensor(index))
    else:
        index = np.random.randint(0, 6, (7,))
        index[:3] = 1
        g_out = g(graphc.tensor(index), graphc.tensor(offsets))
        t_out = t(torch.tensor(index), torch.tensor(offsets))
    assert_close(g_out.detach(), t_out)
    g_out.square().sum().backward()
    t_out.square().sum().backward()
    assert_close(g.weight.grad, t.weight.grad)


def test_embedding_bag_compiled_replays_for_every_text_length():
    """The text-classification tutorial's step: token ids of a batch concatenated, so their count changes on every
    call; one plan serves them all (the bags come from the offsets, not from the sizes) and the losses are torch's.
    The last batch ends with an empty bag (its offset equals the text length)."""
    g, t = pair(lambda m: m.EmbeddingBag(10, 4, mode="mean"))
    g_opt, t_opt = graphc.optim.SGD(g.parameters(), lr=0.5), torch.optim.SGD(t.parameters(), lr=0.5)

    def step(L, model, opt, text, offsets):
        opt.zero_grad()
        loss = L.nn.functional.cross_entropy(model(text, offsets), L.arange(offsets.shape[0]) % 4)
        loss.backward()
        opt.step()
        return loss

    g_step = graphc.compile(lambda text, offsets: step(graphc, g, g_opt, text, offsets))
    rng = np.random.default_rng(0)
    for lengths in ([3, 5, 2], [4, 1, 6], [2, 2, 7], [5, 3, 0]):
        text, offsets = rng.integers(0, 10, sum(lengths)), np.cumsum([0] + lengths[:-1])
        assert_close(g_step(graphc.tensor(text), graphc.tensor(offsets)),
                     step(torch, t, t_opt, torch.tensor(text), torch.tensor(offsets)), 1e-5, 1e-6)
    assert g_step.num_traces <= 2


def test_embedding_bag_per_sample_weights():
    index, offsets, w = np.array([0, 2, 4, 1]), np.array([0, 1]), np.random.rand(4).astype(np.float32)
    table = np.random.standard_normal((5, 2)).astype(np.float32)
    gw = graphc.tensor(w, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    g_out = F.embedding_bag(graphc.tensor(index), graphc.tensor(table), graphc.tensor(offsets), mode="sum",
                            per_sample_weights=gw)
    t_out = TF.embedding_bag(torch.tensor(index), torch.tensor(table), torch.tensor(offsets), mode="sum",
                             per_sample_weights=tw)
    assert_close(g_out.detach(), t_out)
    g_out.sum().backward()
    t_out.sum().backward()
    assert_close(gw.grad, tw.grad)


@pytest.mark.filterwarnings("ignore:dropout2d. Received a 3D input")
@pytest.mark.parametrize("name,shape,channels", [
    ("dropout1d", (8, 6, 3), (8, 6)), ("dropout1d", (6, 3), (6,)), ("dropout2d", (8, 6, 3, 3), (8, 6)),
    ("dropout2d", (8, 6, 3), (8, 6)), ("dropout3d", (8, 6, 3, 3, 3), (8, 6)), ("dropout3d", (6, 3, 3, 3), (6,))])
def test_channel_dropout(name, shape, channels):
    """Whole channels dropped, where torch reads the channel dim to be (a 3-d input to dropout2d is (N, C, L))."""
    x = graphc.ones(*shape)
    out = getattr(F, name)(x, 0.5)._host().reshape(*channels, -1)
    assert (out.min(-1) == out.max(-1)).all() and set(np.unique(out)) <= {0.0, 2.0}
    assert 0.2 < (out[..., 0] == 0).mean() < 0.8
    assert getattr(F, name)(x, 0.5, training=False) is x


def test_channel_dropout_rank_errors():
    with pytest.raises(RuntimeError, match="Expected 2D or 3D input"):
        TF.dropout1d(torch.ones(2), 0.5)
    with pytest.raises(RuntimeError, match="Expected 2D or 3D input"):
        F.dropout1d(graphc.ones(2), 0.5)
    with pytest.warns(UserWarning, match="Received a 1-D input to dropout3d"):
        assert F.dropout3d(graphc.ones(4), 0.5).shape == (4,)


def test_alpha_dropout_keeps_selu_statistics():
    x = graphc.randn(200_000)
    out = nn.AlphaDropout(0.2)(x)._host()
    assert abs(out.mean()) < 0.02 and abs(out.std() - 1) < 0.02
    assert nn.AlphaDropout(0.2).eval()(x) is x


def _labels(shape, values=(-1.0, 1.0)):
    return np.random.choice(values, size=shape).astype(np.float32)


LOSSES = [
    ("margin_ranking", lambda f, a, b, y, **k: f.margin_ranking_loss(a, b, y, **k), dict(margin=0.3), "pair"),
    ("hinge_embedding", lambda f, a, y, **k: f.hinge_embedding_loss(a, y, **k), dict(margin=0.7), "single"),
    ("soft_margin", lambda f, a, y, **k: f.soft_margin_loss(a, y, **k), dict(), "single"),
    ("cosine_embedding", lambda f, a, b, y, **k: f.cosine_embedding_loss(a, b, y, **k), dict(margin=0.2), "rows"),
    ("multilabel_soft_margin", lambda f, a, y, **k: f.multilabel_soft_margin_loss(a, y, **k), dict(), "multilabel"),
    ("triplet_margin", lambda f, a, b, c, **k: f.triplet_margin_loss(a, b, c, **k), dict(margin=2.0), "triplet"),
    ("triplet_margin_swap", lambda f, a, b, c, **k: f.triplet_margin_loss(a, b, c, **k), dict(p=1, swap=True),
     "triplet"),
    ("poisson_nll", lambda f, a, y, **k: f.poisson_nll_loss(a, y, **k), dict(), "counts"),
    ("poisson_nll_full", lambda f, a, y, **k: f.poisson_nll_loss(a, y, **k), dict(log_input=False, full=True),
     "counts"),
    ("gaussian_nll", lambda f, a, y, v, **k: f.gaussian_nll_loss(a, y, v, **k), dict(full=True), "gaussian"),
]


def _loss_arrays(kind):
    x = np.random.standard_normal((5, 4)).astype(np.float32)
    other = np.random.standard_normal((5, 4)).astype(np.float32)
    if kind == "pair":
        return [x[:, 0], other[:, 0]], _labels((5,))
    if kind == "single":
        return [x], _labels((5, 4))
    if kind == "rows":
        return [x, other], _labels((5,))
    if kind == "multilabel":
        return [x], _labels((5, 4), (0.0, 1.0))
    if kind == "triplet":
        return [x, other, np.random.standard_normal((5, 4)).astype(np.float32)], None
    if kind == "counts":
        return [np.abs(x) + 0.1], np.random.poisson(2.0, (5, 4)).astype(np.float32)
    return [x, np.abs(other[:, :1]) + 0.1], None  # gaussian: mean and a homoscedastic (5, 1) variance


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", LOSSES, ids=[case[0] for case in LOSSES])
def test_loss_against_torch(case, reduction):
    _, fn, kwargs, kind = case
    arrays, target = _loss_arrays(kind)
    gs = [graphc.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    if kind == "gaussian":
        y = np.random.standard_normal((5, 4)).astype(np.float32)
        g_out = fn(F, gs[0], graphc.tensor(y), gs[1], reduction=reduction, **kwargs)
        t_out = fn(TF, ts[0], torch.tensor(y), ts[1], reduction=reduction, **kwargs)
    else:
        extra = () if target is None else (target,)
        g_out = fn(F, *gs, *(graphc.tensor(a) for a in extra), reduction=reduction, **kwargs)
        t_out = fn(TF, *ts, *(torch.tensor(a) for a in extra), reduction=reduction, **kwargs)
    assert_close(g_out.detach(), t_out, 1e-5, 1e-5)
    w = np.random.standard_normal(tuple(t_out.shape)).astype(np.float32)
    (g_out * graphc.tensor(w)).sum().backward()
    (t_out * torch.tensor(w)).sum().backward()
    for g, t in zip(gs, ts):
        assert_close(g.grad, t.grad, 1e-5, 1e-5)


@pytest.mark.parametrize("kwargs", [dict(), dict(p=2, margin=0.5), dict(weight=[0.2, 1.0, 3.0, 0.5])])
@pytest.mark.parametrize("shape", [(6, 4), (4,)])
def test_multi_margin_loss(kwargs, shape):
    x = np.random.standard_normal(shape).astype(np.float32)
    target = np.random.randint(0, 4, shape[:-1])
    weight = kwargs.pop("weight", None)
    gx, tx = graphc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    g = nn.MultiMarginLoss(weight=None if weight is None else graphc.tensor(weight), **kwargs)
    t = torch.nn.MultiMarginLoss(weight=None if weight is None else torch.tensor(weight), **kwargs)
    g_out, t_out = g(gx, graphc.tensor(target)), t(tx, torch.tensor(target))
    assert_close(g_out.detach(), t_out)
    g_out.backward()
    t_out.backward()
    assert_close(gx.grad, tx.grad)
    assert list(g.state_dict()) == list(t.state_dict())


LOSS_MODULES = [
    ("TripletMarginLoss", lambda m: m.TripletMarginLoss(margin=0.5, p=3.0), 3),
    ("TripletMarginWithDistanceLoss", lambda m: m.TripletMarginWithDistanceLoss(swap=True), 3),
    ("MarginRankingLoss", lambda m: m.MarginRankingLoss(0.1, reduction="sum"), "pair"),
    ("CosineEmbeddingLoss", lambda m: m.CosineEmbeddingLoss(), "rows"),
    ("HingeEmbeddingLoss", lambda m: m.HingeEmbeddingLoss(2.0), "single"),
    ("SoftMarginLoss", lambda m: m.SoftMarginLoss(), "single"),
    ("MultiLabelSoftMarginLoss", lambda m: m.MultiLabelSoftMarginLoss(), "multilabel"),
    ("PoissonNLLLoss", lambda m: m.PoissonNLLLoss(full=True), "counts"),
    ("GaussianNLLLoss", lambda m: m.GaussianNLLLoss(eps=0.5), "gaussian"),
]


@pytest.mark.parametrize("case", LOSS_MODULES, ids=[case[0] for case in LOSS_MODULES])
def test_loss_module_against_torch(case):
    _, make, kind = case
    g, t = make(nn), make(torch.nn)
    assert list(g.state_dict()) == list(t.state_dict())
    arrays, target = _loss_arrays("triplet" if kind == 3 else kind)
    if kind == "gaussian":
        arrays, target = arrays[:1], np.random.standard_normal((5, 4)).astype(np.float32)
        arrays.append(np.full((5, 4), 0.2, np.float32))  # below eps: clamped in value only
    gs = [graphc.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    if kind == "gaussian":
        g_out, t_out = g(gs[0], graphc.tensor(target), gs[1]), t(ts[0], torch.tensor(target), ts[1])
    else:
        extra = () if target is None else (target,)
        g_out = g(*gs, *(graphc.tensor(a) for a in extra))
        t_out = t(*ts, *(torch.tensor(a) for a in extra))
    assert_close(g_out.detach(), t_out, 1e-5, 1e-5)
    g_out.backward()
    t_out.backward()
    for ga, ta in zip(gs, ts):
        assert_close(ga.grad, ta.grad, 1e-5, 1e-5)


def test_loss_argument_errors_as_torch():
    x, t = graphc.zeros(3, 4), torch.zeros(3, 4)
    for fn in (lambda f, x: f.triplet_margin_loss(x, x, x, margin=0.0),
               lambda f, x: f.multi_margin_loss(x, x[:, 0].long(), p=3),
               lambda f, x: f.gaussian_nll_loss(x, x, x[:, :2] + 1),
               lambda f, x: f.gaussian_nll_loss(x, x, -1.0),
               lambda f, x: f.poisson_nll_loss(x, x, reduction="batchmean")):
        with pytest.raises(ValueError):
            fn(TF, t)
        with pytest.raises(ValueError):
            fn(F, x)
    for fn in (lambda f, x: f.triplet_margin_loss(x, x, x[0]),
               lambda f, x: f.margin_ranking_loss(x, x, x[0]),
               lambda f, x: f.cosine_embedding_loss(x, x, x)):
        with pytest.raises(RuntimeError):
            fn(TF, t)
        with pytest.raises(RuntimeError):
            fn(F, x)


def _copy_into(g, t):
    g.load_state_dict({k: v.detach().numpy().copy() for k, v in t.state_dict().items()})


@pytest.mark.filterwarnings("ignore:.*nn.utils.weight_norm. is deprecated:FutureWarning")
@pytest.mark.parametrize("make,dim", [(lambda m: m.Linear(3, 4), 0), (lambda m: m.Conv1d(2, 3, 3), 1),
                                      (lambda m: m.Linear(3, 4), None)])
def test_weight_norm(make, dim):
    t = torch.nn.utils.weight_norm(make(torch.nn), dim=dim)
    with pytest.warns(FutureWarning, match="parametrizations.weight_norm"):
        g = nn.utils.weight_norm(make(nn), dim=dim)
    assert list(g.state_dict()) == list(t.state_dict())
    _copy_into(g, t)
    shape = (2, 3) if isinstance(g, nn.Linear) else (2, 2, 5)
    check(g, t, shape, params=([g.weight_g, g.weight_v], [t.weight_g, t.weight_v]))
    with pytest.raises(RuntimeError, match="Cannot register two weight_norm hooks"):
        nn.utils.weight_norm(g, dim=dim)
    nn.utils.remove_weight_norm(g)
    torch.nn.utils.remove_weight_norm(t)
    assert list(g.state_dict()) == list(t.state_dict())
    assert_close(g.weight.detach(), t.weight)
    with pytest.raises(ValueError):
        nn.utils.remove_weight_norm(g)


@pytest.mark.parametrize("make,shape", [(lambda m: m.Linear(3, 4), (2, 3)), (lambda m: m.Conv2d(2, 3, 3), (2, 2, 4, 4)),
                                        (lambda m: m.ConvTranspose2d(2, 3, 2), (1, 2, 3, 3))])
def test_spectral_norm(make, shape):
    """Training forwards run a power-iteration step on the u, v buffers; eval uses them as they are."""
    t = torch.nn.utils.spectral_norm(make(torch.nn), n_power_iterations=2)
    g = nn.utils.spectral_norm(make(nn), n_power_iterations=2)
    assert list(g.state_dict()) == list(t.state_dict())
    _copy_into(g, t)
    for _ in range(2):
        check(g, t, shape, params=([g.weight_orig], [t.weight_orig]), rtol=1e-4, atol=1e-5)
        for name in ("weight_u", "weight_v"):
            assert_close(getattr(g, name), getattr(t, name), 1e-4, 1e-6)
    g.eval(), t.eval()
    check(g, t, shape, rtol=1e-4, atol=1e-5)
    nn.utils.remove_spectral_norm(g)
    torch.nn.utils.remove_spectral_norm(t)
    assert list(g.state_dict()) == list(t.state_dict())
    assert_close(g.weight.detach(), t.weight, 1e-4, 1e-6)


@pytest.mark.filterwarnings("ignore:.*nn.utils.weight_norm. is deprecated:FutureWarning")
def test_weight_and_spectral_norm_compile():
    """Hook-based and parametrization forms, power iterations included, replay in one compiled step."""
    def build():
        return nn.Sequential(nn.utils.weight_norm(nn.Linear(3, 4)), nn.ReLU(), nn.utils.spectral_norm(nn.Linear(4, 4)),
                             nn.utils.parametrizations.weight_norm(nn.Linear(4, 3)),
                             nn.utils.parametrizations.spectral_norm(nn.Linear(3, 2)))

    model, reference = build(), build()
    reference.load_state_dict(model.state_dict())
    opt = graphc.optim.SGD(model.parameters(), lr=0.1)
    x = graphc.randn(5, 3)

    @graphc.compile(backend="numpy")
    def step(x):
        opt.zero_grad()
        loss = model(x).square().mean()
        loss.backward()
        opt.step()
        return loss

    ref_opt = graphc.optim.SGD(reference.parameters(), lr=0.1)
    for _ in range(3):
        loss = step(x)
        ref_opt.zero_grad()
        ref_loss = reference(x).square().mean()
        ref_loss.backward()
        ref_opt.step()
        assert_close(loss, ref_loss._host(), 1e-5, 1e-6)
    assert step.num_compiles == 1
    for (name, p), q in zip(model.state_dict().items(), reference.state_dict().values()):
        assert_close(p, q._host(), 1e-5, 1e-6), name


@pytest.mark.parametrize("transpose", [False, True])
def test_fuse_conv_bn_eval(transpose):
    def make(m):
        conv = m.ConvTranspose2d(2, 3, 3) if transpose else m.Conv2d(2, 3, 3, bias=False)
        return conv.eval(), m.BatchNorm2d(3).eval()

    t_conv, t_bn = make(torch.nn)
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean"):
            getattr(t_bn, name).normal_()
        t_bn.running_var.uniform_(0.5, 2)
    g_conv, g_bn = make(nn)
    _copy_into(g_conv, t_conv)
    _copy_into(g_bn, t_bn)
    g_fused = nn.utils.fuse_conv_bn_eval(g_conv, g_bn, transpose)
    t_fused = torch.nn.utils.fuse_conv_bn_eval(t_conv, t_bn, transpose)
    assert list(g_fused.state_dict()) == list(t_fused.state_dict())
    x = np.random.standard_normal((2, 2, 5, 5)).astype(np.float32)
    assert_close(g_fused(graphc.tensor(x)), t_bn(t_conv(torch.tensor(x))), 1e-4, 1e-5)
    with pytest.raises(RuntimeError, match="Fusion only for eval"):
        nn.utils.fuse_conv_bn_eval(g_conv.train(), g_bn)


def test_get_total_norm_and_clip_grads_with_norm():
    arrays = [np.random.standard_normal(s).astype(np.float32) for s in ((3, 4), (5,))]
    g_params = [graphc.tensor(a, requires_grad=True) for a in arrays]
    t_params = [torch.tensor(a, requires_grad=True) for a in arrays]
    for p, a in zip(g_params + t_params, arrays + arrays):
        p.grad = graphc.tensor(a * 3) if isinstance(p, graphc.Tensor) else torch.tensor(a * 3)
    for norm_type in (2.0, 1.0, float("inf")):
        g_total = nn.utils.get_total_norm([p.grad for p in g_params], norm_type)
        t_total = torch.nn.utils.get_total_norm([p.grad for p in t_params], norm_type)
        assert_close(g_total, t_total, 1e-5)
    nn.utils.clip_grads_with_norm_(g_params, 1.0, g_total)
    torch.nn.utils.clip_grads_with_norm_(t_params, 1.0, t_total)
    for g, t in zip(g_params, t_params):
        assert_close(g.grad, t.grad, 1e-5)
    assert nn.utils.get_total_norm([]).item() == 0


MORE = [
    ("LPPool1d", lambda m: m.LPPool1d(2, 3, stride=2), (2, 3, 9)),
    ("LPPool1d_p4", lambda m: m.LPPool1d(4.0, 2), (3, 8)),
    ("LPPool2d", lambda m: m.LPPool2d(2, (2, 3), stride=1), (2, 3, 5, 6)),
    ("LPPool2d_inf", lambda m: m.LPPool2d(float("inf"), 2), (2, 3, 4, 4)),
    ("LocalResponseNorm", lambda m: m.LocalResponseNorm(3, alpha=0.1, beta=0.6, k=2.0), (2, 5, 4)),
    ("LocalResponseNorm_4d", lambda m: m.LocalResponseNorm(4), (2, 6, 3, 3)),
    ("Softmax2d", lambda m: m.Softmax2d(), (2, 3, 4, 4)),
    ("ChannelShuffle", lambda m: m.ChannelShuffle(3), (2, 6, 2, 3)),
    ("FeatureAlphaDropout_eval", lambda m: m.FeatureAlphaDropout(0.3).eval(), (2, 3, 4)),
]


@pytest.mark.parametrize("case", MORE, ids=[case[0] for case in MORE])
def test_more_layers_against_torch(case):
    _, make, shape = case
    g, t = make(nn), make(torch.nn)
    assert repr(g) == repr(t)
    check(g, t, shape, rtol=1e-4, atol=1e-5)


def test_feature_alpha_dropout_drops_whole_channels():
    out = F.feature_alpha_dropout(graphc.zeros(100, 8, 5), 0.5, training=True)._host()
    assert (out.min(-1) == out.max(-1)).all() and len(np.unique(out)) == 2
    with pytest.raises(RuntimeError):
        F.feature_alpha_dropout(graphc.zeros(3), 0.5, training=True)


@pytest.mark.parametrize("make,shape,dim", [(lambda m: m.Linear(3, 4), (2, 3), 0),
                                            (lambda m: m.Conv1d(2, 3, 3), (2, 2, 5), None)])
def test_parametrizations_weight_norm(make, shape, dim):
    t = torch.nn.utils.parametrizations.weight_norm(make(torch.nn), dim=dim)
    g = nn.utils.parametrizations.weight_norm(make(nn), dim=dim)
    assert repr(g) == repr(t) and list(g.state_dict()) == list(t.state_dict())
    _copy_into(g, t)
    originals = ([g.parametrizations.weight.original0, g.parametrizations.weight.original1],
                 [t.parametrizations.weight.original0, t.parametrizations.weight.original1])
    check(g, t, shape, params=originals)
    nn.utils.parametrize.remove_parametrizations(g, "weight")
    torch.nn.utils.parametrize.remove_parametrizations(t, "weight")
    assert type(g).__name__ == type(t).__name__ and list(g.state_dict()) == list(t.state_dict())
    assert_close(g.weight.detach(), t.weight)


@pytest.mark.parametrize("make,shape", [(lambda m: m.Linear(3, 4), (2, 3)),
                                        (lambda m: m.ConvTranspose2d(2, 3, 2), (1, 2, 3, 3))])
def test_parametrizations_spectral_norm(make, shape):
    t = torch.nn.utils.parametrizations.spectral_norm(make(torch.nn))
    g = nn.utils.parametrizations.spectral_norm(make(nn))
    assert list(g.state_dict()) == list(t.state_dict())
    _copy_into(g, t)
    for _ in range(2):
        check(g, t, shape, params=([g.parametrizations.weight.original], [t.parametrizations.weight.original]),
              rtol=1e-4, atol=1e-5)
    for key, value in t.state_dict().items():
        assert_close(g.state_dict()[key], value, 1e-4, 1e-6)


class Symmetric(nn.Module):
    def forward(self, x):
        return x.triu() + x.triu(1).transpose(-1, -2)

    def right_inverse(self, a):
        return a.triu()


class Head(nn.Module):
    def forward(self, x):
        return x[:1]


def test_register_parametrization():
    layer = nn.Linear(3, 3)
    nn.utils.parametrize.register_parametrization(layer, "weight", Symmetric())
    w = layer.weight
    assert_close(w, w.T._host()) and nn.utils.parametrize.is_parametrized(layer, "weight")
    assert not nn.utils.parametrize.is_parametrized(layer, "bias")
    target = graphc.tensor(np.random.standard_normal((3, 3)).astype(np.float32))
    layer.weight = target + target.T  # stored through right_inverse
    assert_close(layer.weight, (target + target.T)._host(), 1e-6)
    with nn.utils.parametrize.cached():
        assert layer.weight is layer.weight
    opt = graphc.optim.SGD(layer.parameters(), lr=0.1)
    layer(graphc.randn(4, 3)).square().sum().backward()
    opt.step()
    assert_close(layer.weight, layer.weight.T._host())
    with pytest.raises(ValueError, match="does not have a parameter"):
        nn.utils.parametrize.register_parametrization(layer, "scale", Symmetric())
    with pytest.raises(ValueError, match="may not change the shape"):
        nn.utils.parametrize.register_parametrization(nn.Linear(3, 2), "bias", Head())
    nn.utils.parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
    assert type(layer) is nn.Linear and not hasattr(layer, "parametrizations")
    assert_close(layer.weight, np.triu(layer.weight._host()))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_multilabel_margin_loss(reduction):
    x = np.random.standard_normal((4, 5)).astype(np.float32)
    target = np.array([[3, 0, -1, 1, 2], [1, 2, 3, 4, 0], [-1, 1, 1, 1, 1], [4, 4, -1, 0, 0]])
    gx, tx = graphc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    g_out = nn.MultiLabelMarginLoss(reduction=reduction)(gx, graphc.tensor(target))
    t_out = torch.nn.MultiLabelMarginLoss(reduction=reduction)(tx, torch.tensor(target))
    assert_close(g_out.detach(), t_out)
    g_out.sum().backward()
    t_out.sum().backward()
    assert_close(gx.grad, tx.grad)
    assert_close(F.multilabel_margin_loss(gx[0], graphc.tensor(target[0])).detach(),
                 TF.multilabel_margin_loss(tx[0], torch.tensor(target[0])))


@pytest.mark.parametrize("shape,groups", [((6, 3, 3, 3), 2), ((6, 3, 3), 1), ((4, 4, 3, 3, 3), 1), ((2, 5, 3, 3), 1)])
def test_dirac_init_like_torch(shape, groups):
    w, t = graphc.empty(*shape), torch.empty(*shape)
    graphc.nn.init.dirac_(w, groups=groups)
    torch.nn.init.dirac_(t, groups=groups)
    np.testing.assert_array_equal(w.numpy(), t.numpy())
    with pytest.raises(ValueError, match="divisible"):
        graphc.nn.init.dirac_(graphc.empty(5, 3, 3), groups=2)
    with pytest.raises(ValueError, match="divisible"):
        torch.nn.init.dirac_(torch.empty(5, 3, 3), groups=2)


def test_sparse_init_zeros_each_column_like_torch():
    w, t = graphc.empty(10, 7), torch.empty(10, 7)
    graphc.nn.init.sparse_(w, 0.3, std=0.5)
    torch.nn.init.sparse_(t, 0.3, std=0.5)
    np.testing.assert_array_equal((w.numpy() == 0).sum(0), (t.numpy() == 0).sum(0))
    assert 0.2 < w.numpy()[w.numpy() != 0].std() < 1.0


def test_jit_script_and_trace_return_what_runs_as_python():
    """Programs written for TorchScript run: script/trace give back the module or function; jit.save refuses."""
    model = graphc.nn.Sequential(graphc.nn.Linear(3, 2), graphc.nn.ReLU())
    x = graphc.randn(4, 3)
    scripted, traced = graphc.jit.script(model), graphc.jit.trace(model, x)
    assert_close(scripted(x), model(x))
    assert_close(traced(x), model(x))

    def gelu(L, x):
        return x * 0.5 * (1.0 + L.erf(x / 1.41421))

    t = torch.randn(5)
    scripted_gelu = graphc.jit.script(lambda x: gelu(graphc, x))
    assert_close(scripted_gelu(graphc.tensor(t.numpy())), gelu(torch, t))
    assert graphc.jit.is_scripting() is torch.jit.is_scripting() is False
    assert graphc.jit.ignore(gelu) is gelu and graphc.jit.unused(gelu) is gelu
    with pytest.raises(NotImplementedError, match="state_dict"):
        graphc.jit.save(scripted, "model.pt")


def test_stateless_functional_call_is_func_functional_call():
    model = graphc.nn.Linear(3, 2)
    x = graphc.randn(4, 3)
    params = {"weight": graphc.zeros(2, 3), "bias": graphc.ones(2)}
    assert_close(graphc.nn.utils.stateless.functional_call(model, params, (x,)), torch.ones(4, 2))
