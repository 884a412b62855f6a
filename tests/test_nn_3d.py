"""The 3-d family (video and volumetric scripts) against torch: conv3d, conv_transpose3d, max/avg/adaptive pools
(with return_indices), their modules, eagerly and in a compiled training step."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from conftest import assert_close, to_torch

import graphc
import graphc.nn.functional as F
from graphc import nn


def both(*shape):
    g = graphc.randn(*shape, requires_grad=True)
    return g, to_torch(g)


CASES = [
    ("conv3d", lambda L, x, w, b: L.conv3d(x, w, b, stride=(1, 2, 2), padding=1),
     [(2, 4, 5, 6, 7), (6, 4, 3, 3, 3), (6,)]),
    ("conv3d_groups_same", lambda L, x, w: L.conv3d(x, w, groups=2, dilation=(2, 1, 1), padding="same"),
     [(2, 4, 5, 6, 7), (6, 2, 3, 3, 3)]),
    ("conv3d_unbatched", lambda L, x, w: L.conv3d(x, w), [(4, 5, 6, 7), (6, 4, 1, 2, 3)]),
    ("conv_transpose3d", lambda L, x, w, b: L.conv_transpose3d(x, w, b, stride=2, padding=1, output_padding=1,
                                                               groups=2), [(2, 4, 3, 4, 5), (4, 3, 3, 3, 3), (6,)]),
    ("max_pool3d", lambda L, x: L.max_pool3d(x, 3, 2, 1), [(2, 3, 6, 7, 8)]),
    ("max_pool3d_ceil_dilated", lambda L, x: L.max_pool3d(x, (2, 3, 2), stride=2, ceil_mode=True, dilation=(1, 1, 2)),
     [(2, 3, 7, 7, 9)]),
    ("avg_pool3d", lambda L, x: L.avg_pool3d(x, 3, 2, 1, count_include_pad=False), [(2, 3, 6, 7, 8)]),
    ("avg_pool3d_ceil_divisor", lambda L, x: L.avg_pool3d(x, 2, ceil_mode=True, divisor_override=3), [(2, 3, 5, 7, 8)]),
    ("adaptive_avg_pool3d", lambda L, x: L.adaptive_avg_pool3d(x, (2, None, 3)), [(2, 3, 5, 7, 8)]),
    ("adaptive_avg_pool3d_global", lambda L, x: L.adaptive_avg_pool3d(x, 1), [(3, 5, 7, 8)]),
    ("adaptive_max_pool3d", lambda L, x: L.adaptive_max_pool3d(x, (2, 3, 3)), [(2, 3, 5, 7, 8)]),
]


@pytest.mark.parametrize("name,fn,shapes", CASES, ids=[c[0] for c in CASES])
def test_3d_functional_values_and_gradients(name, fn, shapes):
    gs, ts = zip(*(both(*s) for s in shapes))
    out, expected = fn(F, *gs), fn(TF, *ts)
    assert_close(out, expected, 1e-4, 1e-5)
    weight = graphc.randn(*out.shape)
    (out * weight).sum().backward()
    (expected * to_torch(weight)).sum().backward()
    for g, t in zip(gs, ts):
        assert_close(g.grad, t.grad, 1e-4, 1e-4)


@pytest.mark.parametrize("name,args,shape", [
    ("max_pool1d", (3, 2, 1), (2, 3, 9)), ("max_pool2d", (3, 2, 1), (2, 3, 7, 8)), ("max_pool2d", (2,), (3, 6, 8)),
    ("max_pool3d", (3, 2, 1), (2, 3, 6, 7, 8))], ids=str)
def test_max_pool_return_indices(name, args, shape):
    gx, tx = both(*shape)
    (out, indices), (expected, expected_indices) = (getattr(F, name)(gx, *args, return_indices=True),
                                                    getattr(TF, name)(tx, *args, return_indices=True))
    assert_close(out, expected)
    assert indices.dtype is graphc.int64 and np.array_equal(indices.numpy(), expected_indices.numpy())
    module = getattr(nn, name.replace("max_pool", "MaxPool"))(*args, return_indices=True)
    assert np.array_equal(module(gx)[1].numpy(), expected_indices.numpy())


@pytest.mark.parametrize("name,args,shape", [
    ("Conv3d", (3, 4, 3), (2, 3, 5, 6, 6)),
    ("Conv3d", (4, 6, (1, 3, 3), (1, 2, 2), (0, 1, 1), 1, 2, False), (2, 4, 3, 6, 6)),
    ("ConvTranspose3d", (3, 4, (2, 3, 3), 2), (2, 3, 3, 4, 4)), ("MaxPool3d", (2,), (1, 2, 4, 4, 4)),
    ("AvgPool3d", ((1, 2, 2),), (1, 2, 4, 4, 4)), ("AdaptiveAvgPool3d", ((1, 2, 2),), (1, 2, 4, 5, 4)),
    ("AdaptiveMaxPool3d", (2,), (1, 2, 4, 5, 4))], ids=str)
def test_3d_modules_match_torch(name, args, shape):
    tm = getattr(torch.nn, name)(*args)
    gm = getattr(nn, name)(*args)
    assert repr(gm) == repr(tm)
    gm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    gx, tx = both(*shape)
    assert_close(gm(gx), tm(tx), 1e-4, 1e-5)


def test_conv_transpose3d_output_size_and_errors():
    m = nn.ConvTranspose3d(3, 4, 3, stride=2)
    assert tuple(m(graphc.randn(1, 3, 3, 4, 4), output_size=(8, 9, 10)).shape) == (1, 4, 8, 9, 10)
    with pytest.raises(RuntimeError, match="conv3d"):  # torch: "Expected 4D (unbatched) or 5D (batched) input"
        F.conv3d(graphc.randn(2, 3, 5, 5), graphc.randn(4, 3, 3, 3, 3))
    with pytest.raises(RuntimeError):
        TF.conv3d(torch.randn(2, 3, 5, 5), torch.randn(4, 3, 3, 3, 3))
    with pytest.raises(RuntimeError, match="max_pool3d"):
        F.max_pool3d(graphc.randn(1, 1, 1, 4, 4), 2)
    with pytest.raises(RuntimeError):
        TF.max_pool3d(torch.randn(1, 1, 1, 4, 4), 2)


def _video_net(L):
    nn_ = L.nn
    return nn_.Sequential(nn_.Conv3d(3, 4, 3, padding=1), nn_.BatchNorm3d(4), nn_.ReLU(), nn_.MaxPool3d((1, 2, 2)),
                          nn_.Conv3d(4, 6, (3, 3, 3), stride=(1, 2, 2), padding=1), nn_.ReLU(),
                          nn_.AdaptiveAvgPool3d(1), nn_.Flatten(), nn_.Linear(6, 5))


def test_compiled_3d_cnn_trains_like_torch():
    tmodel, gmodel = _video_net(torch), _video_net(graphc)
    gmodel.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    topt, gopt = torch.optim.SGD(tmodel.parameters(), lr=0.1), graphc.optim.SGD(gmodel.parameters(), lr=0.1)

    @graphc.compile
    def step(x, y):
        gopt.zero_grad()
        loss = F.cross_entropy(gmodel(x), y)
        loss.backward()
        gopt.step()
        return loss

    rng = np.random.default_rng(0)
    for batch in (4, 4, 3):  # the short last batch replays the same plan
        x, y = rng.standard_normal((batch, 3, 4, 8, 8)).astype(np.float32), rng.integers(0, 5, batch)
        loss = step(graphc.tensor(x), graphc.tensor(y))
        topt.zero_grad()
        expected = TF.cross_entropy(tmodel(torch.tensor(x)), torch.tensor(y))
        expected.backward()
        topt.step()
        assert_close(loss, expected, 1e-4, 1e-5)
    assert step.num_compiles == 1
    assert_close(gmodel[0].weight, tmodel[0].weight, 1e-4, 1e-5)


@pytest.mark.parametrize("dims,shape,kernel", [(1, (2, 3, 8), 2), (2, (2, 3, 6, 8), 2), (2, (3, 7, 7), 3),
                                               (3, (1, 2, 4, 6, 6), 2)], ids=str)
def test_max_unpool_inverts_max_pool_like_torch(dims, shape, kernel):
    gx, tx = both(*shape)
    out, indices = getattr(F, f"max_pool{dims}d")(gx, kernel, return_indices=True)
    expected, expected_indices = getattr(TF, f"max_pool{dims}d")(tx, kernel, return_indices=True)
    size = shape[-dims:] if kernel == 3 else None  # 7 pooled by 3 comes back as 6 unless told
    unpooled = getattr(F, f"max_unpool{dims}d")(out, indices, kernel, output_size=size)
    expected = getattr(TF, f"max_unpool{dims}d")(expected, expected_indices, kernel, output_size=size)
    assert_close(unpooled, expected)
    weight = graphc.randn(*unpooled.shape)
    (unpooled * weight).sum().backward()
    (expected * to_torch(weight)).sum().backward()
    assert_close(gx.grad, tx.grad)
    assert repr(getattr(nn, f"MaxUnpool{dims}d")(kernel)) == repr(getattr(torch.nn, f"MaxUnpool{dims}d")(kernel))
    for L, lib in ((F, graphc), (TF, torch)):
        with pytest.raises(ValueError, match="invalid output_size"):
            L.max_unpool2d(lib.ones(1, 1, 3, 3), lib.zeros(1, 1, 3, 3, dtype=lib.int64), 2, output_size=(9, 9))


def test_compiled_pool_unpool_replays_for_a_new_batch_size():
    pool, unpool = nn.MaxPool2d(2, return_indices=True), nn.MaxUnpool2d(2)

    @graphc.compile
    def roundtrip(x):
        out, indices = pool(x)
        return unpool(out * 2, indices, output_size=x.shape)

    for batch in (2, 3):
        x = graphc.randn(batch, 3, 6, 6)
        tout, tind = TF.max_pool2d(to_torch(x), 2, return_indices=True)
        assert_close(roundtrip(x), TF.max_unpool2d(tout * 2, tind, 2, output_size=x.shape))
    assert roundtrip.num_compiles == 1
