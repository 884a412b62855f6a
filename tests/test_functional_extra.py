"""F.one_hot, F.normalize, F.pad (constant mode), Tensor.ravel and is_floating_point against torch: values,
gradients and errors, eagerly and compiled."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import graphc
import graphc.nn.functional as F

A = np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32)


def both(fn_graphc, fn_torch, compiled=False):
    x, tx = graphc.tensor(A, requires_grad=True), torch.tensor(A, requires_grad=True)
    run = graphc.compile(fn_graphc, backend="numpy") if compiled else fn_graphc
    out, tout = run(x), fn_torch(tx)
    np.testing.assert_allclose(out.detach().numpy(), tout.detach().numpy(), rtol=1e-5, atol=1e-6)
    (out * graphc.tensor(np.arange(out.numel(), dtype=np.float32).reshape(out.shape))).sum().backward()
    (tout * torch.arange(tout.numel(), dtype=torch.float32).reshape(tout.shape)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("pads, value", [((1, 2), None), ((0, 1, 2, 0), 3.5), ((-1, 1), None),
                                        ((1, 1, 1, 1, 1, 1), 0.0)])
def test_pad_constant(pads, value, compiled):
    both(lambda x: F.pad(x, pads, value=value), lambda x: torch.nn.functional.pad(x, pads, value=value), compiled)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("p, dim", [(2.0, 1), (1.0, -1), (2.0, 0)])
def test_normalize(p, dim, compiled):
    both(lambda x: F.normalize(x, p=p, dim=dim), lambda x: torch.nn.functional.normalize(x, p=p, dim=dim), compiled)


def test_ravel_and_is_floating_point():
    both(lambda x: x.ravel() * 2, lambda x: x.ravel() * 2)
    assert graphc.ones(2).is_floating_point() and not graphc.arange(3).is_floating_point()


def test_one_hot_matches_torch():
    idx = [[0, 2], [1, 3]]
    assert F.one_hot(graphc.tensor(idx)).tolist() == torch.nn.functional.one_hot(torch.tensor(idx)).tolist()
    out = F.one_hot(graphc.tensor(idx), num_classes=5)
    assert out.dtype is graphc.int64 and out.tolist() == torch.nn.functional.one_hot(torch.tensor(idx), 5).tolist()
    for bad, words in ((graphc.tensor([0, 5]), "smaller than num_classes"), (graphc.tensor([-1]), "non-negative"),
                       (graphc.tensor([0.5]), "index tensor")):
        with pytest.raises(RuntimeError, match=words):
            F.one_hot(bad, 5)


def test_pad_refuses_what_torch_refuses():
    with pytest.raises(RuntimeError, match="divisible by 2"):
        F.pad(graphc.ones(2, 2), (1,))
    with pytest.raises(NotImplementedError, match="Unrecognised padding mode"):
        F.pad(graphc.ones(2, 2), (1, 1), mode="mirror")
