"""graphc.nn.functional against torch.nn.functional: same inputs give the same outputs and input gradients."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from conftest import assert_close, to_torch

import graphc
import graphc.nn.functional as F


def both(*shape, rg=True, low=None):
    """A random float32 tensor in graphc and the same values in torch (both requiring grad unless told)."""
    a = np.random.standard_normal(shape).astype(np.float32)
    if low is not None:
        a = np.abs(a) + low
    return graphc.tensor(a, requires_grad=rg), torch.tensor(a, requires_grad=rg)


def check(g_out, t_out, g_inputs, t_inputs, rtol=1e-5, atol=1e-6):
    """Outputs equal; then the gradients of a random weighting of the outputs equal for every input."""
    assert_close(g_out.detach(), t_out, rtol, atol)
    weights = np.random.standard_normal(tuple(t_out.shape)).astype(np.float32)
    (g_out * graphc.tensor(weights)).sum().backward()
    (t_out * torch.tensor(weights)).sum().backward()
    for g, t in zip(g_inputs, t_inputs):
        assert_close(g.grad, t.grad, rtol, atol)


UNARY = [
    ("relu", lambda f, x: f.relu(x)),
    ("gelu", lambda f, x: f.gelu(x)),
    ("gelu_tanh", lambda f, x: f.gelu(x, approximate="tanh")),
    ("silu", lambda f, x: f.silu(x)),
    ("softmax_last", lambda f, x: f.softmax(x, dim=-1)),
    ("softmax_0", lambda f, x: f.softmax(x, dim=0)),
    ("log_softmax", lambda f, x: f.log_softmax(x, dim=1)),
    ("dropout_eval", lambda f, x: f.dropout(x, 0.5, training=False)),
]


@pytest.mark.parametrize("name,fn", UNARY, ids=[n for n, _ in UNARY])
def test_unary(name, fn):
    gx, tx = both(3, 5, 4)
    check(fn(F, gx), fn(TF, tx), [gx], [tx])


@pytest.mark.parametrize("name,fn", [(n, f) for n, f in UNARY if "softmax" not in n], ids=lambda v: v if
                         isinstance(v, str) else "")
def test_unary_of_a_0d_tensor(name, fn):
    gx, tx = both()
    check(fn(F, gx), fn(TF, tx), [gx], [tx])


def test_linear():
    (gx, tx), (gw, tw), (gb, tb) = both(6, 4), both(3, 4), both(3)
    check(F.linear(gx, gw, gb), TF.linear(tx, tw, tb), [gx, gw, gb], [tx, tw, tb])
    gx2, tx2 = both(2, 5, 4)
    check(F.linear(gx2, gw), TF.linear(tx2, tw), [gx2], [tx2])


CE_CASES = [
    dict(),
    dict(reduction="sum"),
    dict(reduction="none"),
    dict(ignore_index=2),
    dict(label_smoothing=0.1),
    dict(label_smoothing=0.2, ignore_index=1, reduction="sum"),
    dict(weight=True),
    dict(weight=True, ignore_index=0, label_smoothing=0.3),
]


def class_weight_kwargs(kwargs: dict) -> tuple[dict, dict]:
    """graphc and torch keyword arguments, with weight=True replaced by the same random class weights."""
    g_kw, t_kw = dict(kwargs), dict(kwargs)
    if g_kw.pop("weight", False):
        w = np.random.uniform(0.5, 2, 5).astype(np.float32)
        g_kw["weight"], t_kw["weight"] = graphc.tensor(w), torch.tensor(w)
    return g_kw, t_kw


@pytest.mark.parametrize("kwargs", CE_CASES, ids=[str(k) for k in CE_CASES])
@pytest.mark.parametrize("shape", [(8, 5), (6, 5, 3, 2), (5,)], ids=["NC", "NCHW", "C"])
def test_cross_entropy(kwargs, shape):
    gx, tx = both(*shape)
    target = np.random.randint(0, 5, shape[:1] + shape[2:] if len(shape) > 1 else ())
    g_kw, t_kw = class_weight_kwargs(kwargs)
    check(F.cross_entropy(gx, graphc.tensor(target), **g_kw), TF.cross_entropy(tx, torch.tensor(target), **t_kw),
          [gx], [tx])


SOFT_CE_CASES = [dict(), dict(reduction="sum"), dict(reduction="none"), dict(label_smoothing=0.2),
                 dict(weight=True, label_smoothing=0.1)]


@pytest.mark.parametrize("kwargs", SOFT_CE_CASES, ids=[str(k) for k in SOFT_CE_CASES])
@pytest.mark.parametrize("shape", [(8, 5), (3, 5, 2, 2), (5,)], ids=["NC", "NCHW", "C"])
def test_cross_entropy_probability_targets(kwargs, shape):
    gx, tx = both(*shape)
    class_dim = 1 if len(shape) > 1 else 0
    probs = np.random.dirichlet(np.ones(5), size=int(np.prod(shape)) // 5).astype(np.float32)
    probs = np.moveaxis(probs.reshape(shape[:class_dim] + shape[class_dim + 1:] + (5,)), -1, class_dim)
    g_kw, t_kw = class_weight_kwargs(kwargs)
    check(F.cross_entropy(gx, graphc.tensor(probs), **g_kw), TF.cross_entropy(tx, torch.tensor(probs), **t_kw),
          [gx], [tx])


def test_cross_entropy_refuses_bad_targets():
    x = graphc.randn(4, 3)
    with pytest.raises(IndexError, match=r"cross_entropy: target 3 is out of bounds for 3 classes(.|\n)*"
                                         r"test_nn_functional.py:"):
        F.cross_entropy(x, graphc.tensor([0, 1, 3, 2]))
    with pytest.raises(IndexError, match="target -1 is out of bounds"):
        F.cross_entropy(x, graphc.tensor([0, -1, 1, 2]))
    with pytest.raises(ValueError, match=r"target of shape \[3\] does not match input of shape \[4, 3\]"):
        F.cross_entropy(x, graphc.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"class-probability target of shape \[4\] does not match input of shape "
                                         r"\[4, 3\]"):
        F.cross_entropy(x, graphc.randn(4))
    assert F.cross_entropy(x, graphc.tensor([0, -100, 1, 2])).item() == pytest.approx(
        TF.cross_entropy(to_torch(x), torch.tensor([0, -100, 1, 2])).item(), rel=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(reduction):
    (gx, tx), (gy, ty) = both(4, 3), both(4, 3)
    check(F.mse_loss(gx, gy, reduction=reduction), TF.mse_loss(tx, ty, reduction=reduction), [gx, gy], [tx, ty])


@pytest.mark.parametrize("kwargs", [dict(), dict(stride=2, padding=1), dict(padding=(2, 1), dilation=2),
                                    dict(groups=2, stride=(1, 2)), dict(padding="same", dilation=(1, 2)),
                                    dict(padding="valid")], ids=str)
def test_conv2d(kwargs):
    groups = kwargs.get("groups", 1)
    (gx, tx), (gw, tw), (gb, tb) = both(2, 4, 7, 6), both(6, 4 // groups, 3, 3), both(6)
    check(F.conv2d(gx, gw, gb, **kwargs), TF.conv2d(tx, tw, tb, **kwargs), [gx, gw, gb], [tx, tw, tb], 1e-4, 1e-5)


def test_conv2d_refuses_unsupported_padding():
    x, w = graphc.randn(1, 2, 5, 5), graphc.randn(3, 2, 2, 2)
    with pytest.raises(NotImplementedError, match=r"conv2d: padding='same' needs uneven padding for kernel \[2, 2\]"):
        F.conv2d(x, w, padding="same")
    with pytest.raises(RuntimeError, match="conv2d: padding='same' is not supported for strided convolutions"):
        F.conv2d(x, w, stride=2, padding="same")
    with pytest.raises(RuntimeError, match="conv2d: padding must be 'valid', 'same'"):
        F.conv2d(x, w, padding="full")


@pytest.mark.parametrize("name,kwargs", [("max_pool2d", dict(kernel_size=2)),
                                         ("max_pool2d", dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)),
                                         ("avg_pool2d", dict(kernel_size=2)),
                                         ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1,
                                                             count_include_pad=False)),
                                         ("avg_pool2d", dict(kernel_size=3, stride=2, padding=1, divisor_override=4))],
                         ids=str)
def test_pools(name, kwargs):
    gx, tx = both(2, 3, 7, 6)
    check(getattr(F, name)(gx, **kwargs), getattr(TF, name)(tx, **kwargs), [gx], [tx])


@pytest.mark.parametrize("name,kwargs", [("conv2d", dict(padding=1)), ("max_pool2d", dict(kernel_size=2)),
                                         ("avg_pool2d", dict(kernel_size=3, stride=2))], ids=str)
def test_windowed_ops_take_unbatched_inputs(name, kwargs):
    gx, tx = both(2, 7, 6)
    (gw, tw) = both(3, 2, 3, 3)
    extra_g, extra_t = ((gw,), (tw,)) if name == "conv2d" else ((), ())
    check(getattr(F, name)(gx, *extra_g, **kwargs), getattr(TF, name)(tx, *extra_t, **kwargs),
          [gx, *extra_g], [tx, *extra_t], 1e-4, 1e-5)


@pytest.mark.parametrize("shape", [(5,), (3, 5), (2, 3, 4), (2, 3, 4, 2)], ids=str)
def test_softmax_without_dim_uses_torchs_implicit_dim(shape):
    gx, tx = both(*shape)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax"):
        out, expected = F.softmax(gx), TF.softmax(tx, dim=None)
    check(out, expected, [gx], [tx])
    with pytest.warns(UserWarning, match="Implicit dimension choice for log_softmax"):
        out, expected = F.log_softmax(gx.detach()), TF.log_softmax(tx.detach(), dim=None)
    assert_close(out, expected)
    with pytest.raises(TypeError, match="softmax: dim must be an int, got None"):
        gx.softmax(None)


@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(affine):
    gx, tx = both(3, 4, 6)
    (gw, tw), (gb, tb) = both(4, 6), both(4, 6)
    args_g, args_t = ((gw, gb), (tw, tb)) if affine else ((None, None), (None, None))
    check(F.layer_norm(gx, (4, 6), *args_g, eps=1e-4), TF.layer_norm(tx, (4, 6), *args_t, eps=1e-4),
          [gx, *(args_g if affine else ())], [tx, *(args_t if affine else ())], 1e-4, 1e-5)
    with pytest.raises(ValueError, match=r"normalized_shape \[5\] does not match"):
        F.layer_norm(gx, 5)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_functional(training):
    gx, tx = both(5, 3, 4)
    mean, var = np.random.standard_normal(3).astype(np.float32), np.random.uniform(0.5, 2, 3).astype(np.float32)
    g_stats, t_stats = [graphc.tensor(mean), graphc.tensor(var)], [torch.tensor(mean), torch.tensor(var)]
    (gw, tw), (gb, tb) = both(3), both(3)
    check(F.batch_norm(gx, *g_stats, gw, gb, training=training, momentum=0.3),
          TF.batch_norm(tx, *t_stats, tw, tb, training=training, momentum=0.3), [gx, gw, gb], [tx, tw, tb], 1e-4, 1e-5)
    for g, t in zip(g_stats, t_stats):
        assert_close(g, t)


def test_batch_norm_refuses_one_value_per_channel_when_training():
    stats = [graphc.zeros(3), graphc.ones(3)]
    with pytest.raises(ValueError):
        TF.batch_norm(torch.ones(1, 3), torch.zeros(3), torch.ones(3), training=True)
    with pytest.raises(ValueError, match=r"batch_norm: expected more than 1 value per channel when training, got input "
                                         r"of shape \[1, 3\]"):
        F.batch_norm(graphc.ones(1, 3), *stats, training=True)
    assert stats[1].tolist() == [1.0, 1.0, 1.0]
    expected = TF.batch_norm(torch.ones(1, 3), torch.zeros(3), torch.ones(3))
    assert_close(F.batch_norm(graphc.ones(1, 3), *stats), expected)


def test_embedding():
    gw, tw = both(10, 4)
    idx = np.random.randint(0, 10, (3, 5))
    check(F.embedding(graphc.tensor(idx), gw, padding_idx=2), TF.embedding(torch.tensor(idx), tw, padding_idx=2),
          [gw], [tw])


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_embedding_gradient_adds_repeated_rows(dtype):
    """Rows picked many times add up their gradients (a sparse product for float32 and float64, np.add.at for
    others), a NaN gradient stays in its row, padding_idx gets none; int32 indices."""
    table = np.random.standard_normal((7, 5)).astype(dtype)
    idx = np.array([[3, 1, 3, 0], [3, 6, 1, 3]], np.int32)
    weights = np.random.standard_normal((2, 4, 5)).astype(dtype)
    weights[1, 1, 2] = np.nan  # row 6's gradient
    gw, tw = graphc.tensor(table, requires_grad=True), torch.tensor(table, requires_grad=True)
    (F.embedding(graphc.tensor(idx), gw, padding_idx=0) * graphc.tensor(weights)).sum().backward()
    (TF.embedding(torch.tensor(idx), tw, padding_idx=0) * torch.tensor(weights)).sum().backward()
    assert gw.grad.dtype.name == dtype
    assert_close(gw.grad, tw.grad, rtol=1e-3 if dtype == "float16" else 1e-6, atol=1e-3 if dtype == "float16" else 1e-6)
    assert np.isnan(gw.grad.numpy()[6, 2]) and not np.isnan(np.delete(gw.grad.numpy(), 6, axis=0)).any()


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_dropout_statistics(p):
    x = graphc.ones(200, 500)
    out = F.dropout(x, p).numpy()
    kept = out != 0
    assert abs(1 - kept.mean() - p) < 0.01
    np.testing.assert_allclose(out[kept], 1 / (1 - p), rtol=1e-6)
    assert F.dropout(x, 1.0).numpy().max() == 0
    graphc.manual_seed(3)
    first = F.dropout(x, p).numpy()
    graphc.manual_seed(3)
    np.testing.assert_array_equal(first, F.dropout(x, p).numpy())


def test_dropout_gradient_follows_the_mask():
    x = graphc.randn(50, 40, requires_grad=True)
    out = F.dropout(x, 0.3)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), out.detach().numpy() / x.detach().numpy(), rtol=1e-5)


@pytest.mark.parametrize("kwargs", [dict(), dict(is_causal=True), dict(scale=0.3), dict(mask="bool"),
                                    dict(mask="float")], ids=str)
def test_scaled_dot_product_attention(kwargs):
    (gq, tq), (gk, tk), (gv, tv) = both(2, 3, 5, 4), both(2, 3, 6, 4), both(2, 3, 6, 4)
    if kwargs.get("is_causal"):
        (gk, tk), (gv, tv) = both(2, 3, 5, 4), both(2, 3, 5, 4)
    g_kw, t_kw = dict(kwargs), dict(kwargs)
    mask = g_kw.pop("mask", None)
    t_kw.pop("mask", None)
    if mask == "bool":
        m = np.random.rand(5, 6) > 0.3
        m[:, 0] = True
        g_kw["attn_mask"], t_kw["attn_mask"] = graphc.tensor(m), torch.tensor(m)
    elif mask == "float":
        m = np.random.standard_normal((5, 6)).astype(np.float32)
        g_kw["attn_mask"], t_kw["attn_mask"] = graphc.tensor(m), torch.tensor(m)
    check(F.scaled_dot_product_attention(gq, gk, gv, **g_kw), TF.scaled_dot_product_attention(tq, tk, tv, **t_kw),
          [gq, gk, gv], [tq, tk, tv], 1e-5, 1e-6)


def test_scaled_dot_product_attention_enable_gqa():
    (gq, tq), (gk, tk), (gv, tv) = both(2, 4, 5, 3), both(2, 4, 6, 3), both(2, 4, 6, 3)
    check(F.scaled_dot_product_attention(gq, gk, gv, enable_gqa=True),
          TF.scaled_dot_product_attention(tq, tk, tv, enable_gqa=True), [gq, gk, gv], [tq, tk, tv], 1e-5, 1e-6)
    with pytest.raises(NotImplementedError, match="scaled_dot_product_attention: enable_gqa=True with fewer"):
        F.scaled_dot_product_attention(gq, gk[:, :2], gv[:, :2], enable_gqa=True)


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("mode, padding_mode", [("bilinear", "zeros"), ("bilinear", "border"), ("nearest", "zeros"),
                                                ("nearest", "border")])
@pytest.mark.parametrize("compiled", [False, True])
def test_spatial_transformer_sampling_matches_torch(align_corners, mode, padding_mode, compiled):
    """affine_grid then grid_sample (the spatial transformer tutorial), with points outside the input: values and
    the gradients of the input and of theta."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    theta = np.array([[0.9, 0.2, 0.1], [-0.1, 1.1, -0.2]], np.float32) + rng.standard_normal((2, 2, 3)).astype(
        np.float32) * 0.3
    weights = (np.arange(2 * 3 * 4 * 7, dtype=np.float32) % 5).reshape(2, 3, 4, 7)

    def sample(lib, x, theta):
        grid = lib.nn.functional.affine_grid(theta, [2, 3, 4, 7], align_corners=align_corners) * 1.3
        out = lib.nn.functional.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        return out, (out * lib.tensor(weights)).sum()
    results = []
    for lib in (graphc, torch):
        gx, gtheta = lib.tensor(x, requires_grad=True), lib.tensor(theta, requires_grad=True)
        run = graphc.compile(lambda a, b: sample(graphc, a, b)) if compiled and lib is graphc else \
            (lambda a, b, lib=lib: sample(lib, a, b))
        out, loss = run(gx, gtheta)
        loss.backward()
        theta_grad = np.zeros_like(theta) if gtheta.grad is None else gtheta.grad.numpy()  # nearest: no path to theta
        results.append((out.detach().numpy(), gx.grad.numpy(), theta_grad))
    for ours, theirs in zip(*results):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_gumbel_softmax_samples_and_the_straight_through_gradient():
    logits = graphc.tensor(np.log(np.array([[0.7, 0.2, 0.1]] * 4000, np.float32)), requires_grad=True)
    graphc.manual_seed(0)
    soft = F.gumbel_softmax(logits, tau=0.5)
    np.testing.assert_allclose(soft.sum(-1).detach().numpy(), 1.0, rtol=1e-5)
    graphc.manual_seed(0)
    hard = F.gumbel_softmax(logits, tau=0.5, hard=True)
    assert set(np.unique(hard.detach().numpy())) <= {0.0, 1.0} and (hard.sum(-1) == 1).all()
    assert (hard.argmax(-1) == soft.argmax(-1)).all()  # the same noise: the one-hot of the soft sample
    frequencies = hard.detach().numpy().mean(0)  # Gumbel-max: the categorical distribution itself
    np.testing.assert_allclose(frequencies, [0.7, 0.2, 0.1], atol=0.03)
    weights = graphc.tensor(np.arange(3, dtype=np.float32))
    (hard * weights).sum().backward()
    straight = logits.grad.numpy().copy()
    logits.grad = None
    (soft * weights).sum().backward()
    np.testing.assert_allclose(straight, logits.grad.numpy(), rtol=1e-5, atol=1e-7)  # the soft sample's gradient
    torch.manual_seed(0)  # torch's samples have the same properties (its stream differs)
    theirs = TF.gumbel_softmax(torch.tensor(logits.detach().numpy()), tau=0.5, hard=True)
    np.testing.assert_allclose(theirs.numpy().mean(0), [0.7, 0.2, 0.1], atol=0.03)


def test_data_parallel_without_cuda_runs_the_module_with_torchs_state_dict():
    ours, theirs = graphc.nn.DataParallel(graphc.nn.Linear(3, 2)), torch.nn.DataParallel(torch.nn.Linear(3, 2))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["module.weight", "module.bias"]
    ours.load_state_dict(theirs.state_dict())
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(ours(graphc.tensor(x)).detach().numpy(), theirs(torch.tensor(x)).detach().numpy(),
                               rtol=1e-6)
    assert ours.module is ours.get_submodule("module")


@pytest.mark.parametrize("name, fn", [
    ("interpolate nearest", lambda F, a: F.interpolate(a, scale_factor=2, mode="nearest")),
    ("interpolate bilinear", lambda F, a: F.interpolate(a, scale_factor=2, mode="bilinear")),
    ("interpolate size", lambda F, a: F.interpolate(a, size=(5, 4), mode="bilinear")),
    ("interpolate area", lambda F, a: F.interpolate(a, scale_factor=0.5, mode="area")),
    ("pad reflect", lambda F, a: F.pad(a, (1, 1, 2, 0), mode="reflect")),
    ("pad circular", lambda F, a: F.pad(a, (1, 1, 1, 0), mode="circular")),
    ("adaptive avg", lambda F, a: F.adaptive_avg_pool2d(a, (2, 2))),
    ("adaptive max", lambda F, a: F.adaptive_max_pool2d(a, (2, 2))),
    ("im2col", lambda F, a: F.unfold(a, 2)),
    ("frames", lambda F, a: a.unfold(-1, 2, 1)),
])
def test_compiled_resampling_follows_a_new_spatial_size(name, fn):
    """Composites that build gather indices from a spatial size (resampling, reflect padding, adaptive bins, im2col)
    are specialised to it: a call with another size traces again instead of replaying stale indices."""
    compiled = graphc.compile(lambda a: fn(graphc.nn.functional, a), backend="numpy")
    for shape in [(1, 2, 3, 3), (1, 2, 3, 3), (1, 2, 4, 5), (1, 2, 3, 3)]:
        x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
        expected = fn(torch.nn.functional, torch.tensor(x)).numpy()
        out = compiled(graphc.tensor(x)).numpy()
        assert out.shape == expected.shape
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    assert compiled.num_traces == 2


def test_compiled_attention_scale_and_block_diag_follow_a_new_size():
    """sdpa's default scale 1/sqrt(E) and block_diag's zero blocks come from sizes: another size traces again."""
    attend = graphc.compile(lambda q: F.scaled_dot_product_attention(q, q, q), backend="numpy")
    blocks = graphc.compile(lambda x: graphc.block_diag(x, x), backend="numpy")
    for e in (3, 3, 5):
        q = np.random.RandomState(e).randn(1, 4, e).astype(np.float32)
        assert_close(attend(graphc.tensor(q)), TF.scaled_dot_product_attention(*[torch.tensor(q)] * 3))
        assert blocks(graphc.ones(2, e)).tolist() == torch.block_diag(*[torch.ones(2, e)] * 2).tolist()
    assert attend.num_traces == blocks.num_traces == 2


@pytest.mark.parametrize("name, fn, shapes", [
    ("group_norm", lambda F, x: F.group_norm(x, 2), [(1, 4, 4, 4), (1, 4, 4, 4), (2, 4, 6, 8)]),
    ("kl_div batchmean", lambda F, x: F.kl_div(x.log_softmax(1), x.flip(0).softmax(1), reduction="batchmean"),
     [(2, 4), (2, 4), (3, 4)]),
    ("unflatten", lambda F, x: x.flatten(1).unflatten(1, (4, -1)) * 2, [(1, 4, 3, 3), (1, 4, 3, 3), (3, 4, 3, 3)]),
    ("topk", lambda F, x: x.topk(2, 0).values, [(3, 2), (3, 2), (1, 2)]),
    ("pdist", lambda F, x: F.pdist(x), [(4, 3), (4, 3), (5, 3)]),
])
def test_compiled_sizes_from_library_code_follow_a_new_size(name, fn, shapes):
    """Sizes library code reads (group_norm's spatial size, kl_div's batch, unflatten's other dims, topk's k
    against the dim, pdist's pairs) hold for a new size at a replay: values and errors as torch's."""
    compiled = graphc.compile(lambda x: fn(F, x), backend="numpy")
    for shape in shapes:
        x = np.random.RandomState(shape[0]).randn(*shape).astype(np.float32)
        try:
            expected = fn(TF, torch.tensor(x)).numpy()
        except RuntimeError:
            with pytest.raises(RuntimeError):
                compiled(graphc.tensor(x))
            continue
        out = compiled(graphc.tensor(x)).numpy()
        assert out.shape == expected.shape
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_pdist_matches_torch():
    x = np.random.RandomState(0).randn(5, 3).astype(np.float32)
    for p in (2.0, 1.0, 3.0):
        ours, theirs = graphc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        F.pdist(ours, p).sum().backward()
        TF.pdist(theirs, p).sum().backward()
        assert_close(F.pdist(ours, p), TF.pdist(theirs, p))
        assert_close(ours.grad, theirs.grad, rtol=1e-5, atol=1e-6)
