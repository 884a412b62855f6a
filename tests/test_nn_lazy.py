"""Lazy modules (LazyLinear, LazyConv1d/2d/3d) and SyncBatchNorm against torch: shapes inferred at the first forward,
reprs before and after, state dicts, an optimizer built after the dry run, and the converted batch norms."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_close

import graphc
from graphc import nn
from graphc.nn.parameter import UninitializedParameter, is_lazy


def _net(L):
    return L.nn.Sequential(L.nn.LazyConv2d(8, 3, padding=1), L.nn.ReLU(), L.nn.MaxPool2d(2), L.nn.Flatten(),
                           L.nn.LazyLinear(16), L.nn.ReLU(), L.nn.LazyLinear(4))


def test_lazy_modules_infer_their_input_size_and_train_like_torch():
    gmodel, tmodel = _net(graphc), _net(torch)
    assert repr(gmodel) == repr(tmodel)
    assert isinstance(gmodel[0].weight, UninitializedParameter) and is_lazy(gmodel[4].bias)
    gmodel(graphc.zeros(2, 3, 6, 6))  # the dry run, as scripts do before building the optimizer
    tmodel(torch.zeros(2, 3, 6, 6))
    assert repr(gmodel) == repr(tmodel) and type(gmodel[4]) is nn.Linear
    assert not isinstance(gmodel[0].weight, UninitializedParameter)
    assert [tuple(p.shape) for p in gmodel.parameters()] == [tuple(p.shape) for p in tmodel.parameters()]
    gmodel.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    gopt, topt = graphc.optim.Adam(gmodel.parameters(), lr=1e-2), torch.optim.Adam(tmodel.parameters(), lr=1e-2)

    @graphc.compile
    def step(x, y):
        gopt.zero_grad()
        loss = graphc.nn.functional.cross_entropy(gmodel(x), y)
        loss.backward()
        gopt.step()
        return loss

    rng = np.random.default_rng(0)
    for _ in range(3):
        x, y = rng.standard_normal((4, 3, 6, 6)).astype(np.float32), rng.integers(0, 4, 4)
        loss = step(graphc.tensor(x), graphc.tensor(y))
        topt.zero_grad()
        expected = torch.nn.functional.cross_entropy(tmodel(torch.tensor(x)), torch.tensor(y))
        expected.backward()
        topt.step()
        assert_close(loss, expected, 1e-4, 1e-5)


def test_lazy_parameters_given_to_an_optimizer_before_the_dry_run_are_the_materialized_ones():
    m = nn.LazyLinear(3)
    opt = graphc.optim.SGD(m.parameters(), lr=0.5)
    x = graphc.randn(5, 7)
    m(x).sum().backward()
    before = m.weight.detach().clone()
    opt.step()
    assert tuple(m.weight.shape) == (3, 7)
    assert_close(m.weight, before.numpy() - 0.5 * m.weight.grad.numpy())


@pytest.mark.parametrize("name,kwargs,shape", [("LazyConv1d", dict(kernel_size=3, groups=2), (2, 4, 9)),
                                               ("LazyConv3d", dict(kernel_size=(1, 3, 3), stride=2), (3, 5, 6, 6)),
                                               ("LazyLinear", dict(bias=False), (2, 3, 5))], ids=str)
def test_lazy_module_shapes_match_torch(name, kwargs, shape):
    out_size = 6
    gm, tm = getattr(nn, name)(out_size, **kwargs), getattr(torch.nn, name)(out_size, **kwargs)
    gm(graphc.zeros(*shape))
    tm(torch.zeros(*shape))
    assert repr(gm) == repr(tm) and list(gm.state_dict()) == list(tm.state_dict())
    gm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    assert_close(gm(graphc.tensor(x)), tm(torch.tensor(x)), 1e-5, 1e-5)


def test_lazy_module_takes_its_shapes_from_a_state_dict():
    tm = torch.nn.Linear(5, 3)
    gm = nn.LazyLinear(3)
    gm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = graphc.randn(2, 5)
    assert_close(gm(x), tm(torch.from_numpy(x.numpy())), 1e-5, 1e-6)
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.LazyConv2d(4, 3, groups=2)(graphc.zeros(1, 3, 5, 5))


def _bn_net(L):
    return L.nn.Sequential(L.nn.Conv2d(3, 4, 3), L.nn.BatchNorm2d(4), L.nn.ReLU(), L.nn.InstanceNorm2d(4),
                           L.nn.Sequential(L.nn.Flatten(), L.nn.Linear(36, 4), L.nn.BatchNorm1d(4)))


def test_convert_sync_batchnorm_swaps_batch_norms_and_trains_as_batch_norm():
    gmodel, tmodel = _bn_net(graphc), _bn_net(torch)
    weight = gmodel[1].weight
    gmodel = nn.SyncBatchNorm.convert_sync_batchnorm(gmodel)
    tmodel = torch.nn.SyncBatchNorm.convert_sync_batchnorm(tmodel)
    assert repr(gmodel) == repr(tmodel) and gmodel[1].weight is weight
    assert list(gmodel.state_dict()) == list(tmodel.state_dict())
    gmodel.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((5, 3, 5, 5)).astype(np.float32)
    gx, tx = graphc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, expected = gmodel(gx), tmodel(tx)
    assert_close(out, expected, 1e-4, 1e-5)
    (out ** 2).sum().backward()
    (expected ** 2).sum().backward()
    assert_close(gx.grad, tx.grad, 1e-3, 1e-4)
    assert_close(gmodel[1].running_var, tmodel[1].running_var, 1e-5, 1e-6)
    with pytest.raises(ValueError, match="expected at least 2D input"):
        nn.SyncBatchNorm(3)(graphc.randn(3))
