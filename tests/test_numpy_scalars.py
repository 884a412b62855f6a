"""numpy scalars and 0-d arrays are Python numbers in every op and hyperparameter, as in torch (torch is the
reference for values and dtypes), eagerly and compiled."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import assert_close, to_torch

import graphc
import graphc.nn.functional as F

SCALARS = [np.float64(2.5), np.float32(0.5), np.int64(3), np.bool_(True), np.array(1.5), np.array(2)]
IDS = ["float64", "float32", "int64", "bool", "0-d float", "0-d int"]


def _torch_scalar(s):
    """torch reads 0-d arrays as tensors, not numbers; the Python number is what graphc's promise matches."""
    return s.item() if isinstance(s, np.ndarray) else s


OPS = {
    "mul": lambda lib, x, s: x * s,
    "rmul": lambda lib, x, s: s * x,
    "add": lambda lib, x, s: x + s,
    "rsub": lambda lib, x, s: s - x,
    "div": lambda lib, x, s: x / s,
    "rtruediv": lambda lib, x, s: s / (x.abs() + 1),
    "pow": lambda lib, x, s: x.abs() ** s,
    "clamp": lambda lib, x, s: x.clamp(min=s * 0.1, max=s),
    "where": lambda lib, x, s: lib.where(x > 0, x, s),
    "masked_fill": lambda lib, x, s: x.masked_fill(x > 0, s),
    "eq": lambda lib, x, s: (x * 0 + 1) == s,
    "add_": lambda lib, x, s: x.clone().add_(s),
    "mul_": lambda lib, x, s: x.clone().mul_(s),
    "fill_": lambda lib, x, s: x.clone().fill_(s),
}


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("s", SCALARS, ids=IDS)
def test_numpy_scalar_operands_match_torch(name, s):
    x = graphc.randn(3, 4)
    expected = OPS[name](torch, to_torch(x), _torch_scalar(s))
    got = OPS[name](graphc, x, s)
    assert got.dtype.name == str(expected.dtype).removeprefix("torch."), (got.dtype, expected.dtype)
    assert_close(got, expected)


@pytest.mark.parametrize("s", SCALARS, ids=IDS)
def test_numpy_scalar_gradients_match_torch(s):
    x = graphc.randn(3, 4, requires_grad=True)
    tx = to_torch(x)
    ((x * s + s) / (s + 1)).sum().backward()
    ((tx * _torch_scalar(s) + _torch_scalar(s)) / (_torch_scalar(s) + 1)).sum().backward()
    assert_close(x.grad, tx.grad)


@pytest.mark.parametrize("s", [np.float64(2.0), np.float32(2.0), np.int64(2)], ids=IDS[:3])
def test_numpy_scalar_creation_keeps_torchs_dtypes(s):
    assert graphc.full((2,), s).dtype.name == str(torch.full((2,), s).dtype).removeprefix("torch.")
    assert graphc.arange(s).dtype.name == str(torch.arange(s).dtype).removeprefix("torch.")
    assert graphc.tensor(s).dtype.name == str(torch.tensor(s).dtype).removeprefix("torch.")


@pytest.mark.parametrize("backend", ["numpy", "interpret"])
def test_numpy_scalars_compiled(backend):
    f = graphc.compile(lambda x, k: (x * k + np.float32(1.5)).relu(), backend=backend)
    x = graphc.randn(3, 4)
    for k in (np.float64(2.0), np.float64(3.0), np.int64(4), 2.0):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = f(x, k)
        assert out.dtype is graphc.float32
        assert_close(out, (to_torch(x) * float(k) + 1.5).relu())


@pytest.mark.parametrize("make", [
    lambda lib, p, lr: lib.optim.SGD(p, lr=lr, momentum=np.float64(0.9), weight_decay=np.float32(0.01)),
    lambda lib, p, lr: lib.optim.Adam(p, lr=lr, betas=(np.float64(0.9), np.float64(0.99)), eps=np.float64(1e-8)),
    lambda lib, p, lr: lib.optim.AdamW(p, lr=lr, weight_decay=np.float64(0.1)),
], ids=["SGD", "Adam", "AdamW"])
def test_numpy_hyperparameters_match_torch(make):
    w = graphc.randn(4, 3, requires_grad=True)
    tw = to_torch(w)
    opt, topt = make(graphc, [w], np.float64(0.05)), make(torch, [tw], np.float64(0.05))
    for step in range(3):
        lr = np.float64(0.05) * np.cos(step / 3)  # a cosine schedule written with numpy, as scripts do
        opt.param_groups[0]["lr"], topt.param_groups[0]["lr"] = lr, lr
        for o, p in ((opt, w), (topt, tw)):
            o.zero_grad()
            (p * p).sum().backward()
            o.step()
    assert w.dtype is graphc.float32
    assert_close(w, tw, rtol=1e-5, atol=1e-6)


def test_numpy_scalar_hyperparameters_of_functional():
    x = graphc.randn(2, 3, 5)
    tx = to_torch(x)
    assert_close(F.layer_norm(x, (5,), eps=np.float64(1e-5)), torch.nn.functional.layer_norm(tx, (5,), eps=1e-5),
                 rtol=1e-4, atol=1e-5)
    assert F.dropout(x, p=np.float64(0.0)) is x
    assert_close(F.softmax(x * np.float32(2.0), dim=np.int64(-1)), torch.softmax(tx * 2.0, dim=-1))
