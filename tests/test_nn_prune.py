"""nn.utils.prune against torch: the masks of l1_unstructured (repeated: a PruningContainer), global_unstructured,
ln_structured and custom_from_mask equal torch's, state dict names and order, forward and gradients, remove,
is_pruned, torch's errors, the random methods' counts, and fine-tuning a pruned model in a compiled step."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.utils.prune as tprune
from conftest import assert_close

import graphc
import graphc.nn.utils.prune as gprune


def _net(L):
    return L.nn.Sequential(L.nn.Conv2d(1, 4, 3), L.nn.ReLU(), L.nn.Flatten(), L.nn.Linear(36, 5))


def _pruned_pair():
    tmodel, gmodel = _net(torch), _net(graphc)
    gmodel.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    for prune, model in ((tprune, tmodel), (gprune, gmodel)):
        prune.l1_unstructured(model[0], "weight", amount=0.3)
        prune.l1_unstructured(model[0], "weight", amount=5)  # among the entries still kept
        prune.l1_unstructured(model[3], "bias", amount=2)
        prune.global_unstructured([(model[0], "weight"), (model[3], "weight")], pruning_method=prune.L1Unstructured,
                                  amount=0.4)
    return tmodel, gmodel


def test_pruning_masks_state_dict_and_gradients_match_torch():
    tmodel, gmodel = _pruned_pair()
    assert list(gmodel.state_dict()) == list(tmodel.state_dict())
    for key, value in tmodel.state_dict().items():
        assert np.array_equal(gmodel.state_dict()[key].numpy(), value.numpy()), key
    assert [n for n, _ in gmodel.named_parameters()] == [n for n, _ in tmodel.named_parameters()]
    assert gprune.is_pruned(gmodel) and not gprune.is_pruned(_net(graphc))
    x = np.random.default_rng(0).standard_normal((2, 1, 5, 5)).astype(np.float32)
    out, expected = gmodel(graphc.tensor(x)), tmodel(torch.tensor(x))
    assert_close(out, expected, 1e-5, 1e-6)
    out.sum().backward()
    expected.sum().backward()
    assert_close(gmodel[0].weight_orig.grad, tmodel[0].weight_orig.grad, 1e-5, 1e-6)
    for prune, model in ((tprune, tmodel), (gprune, gmodel)):
        prune.remove(model[0], "weight")
    assert list(gmodel.state_dict()) == list(tmodel.state_dict())
    assert np.array_equal(gmodel[0].weight.detach().numpy(), tmodel[0].weight.detach().numpy())
    assert isinstance(gmodel[0].weight, graphc.nn.Parameter)


def test_structured_pruning_matches_torch():
    tconv, gconv = torch.nn.Conv2d(3, 6, 3), graphc.nn.Conv2d(3, 6, 3)
    gconv.load_state_dict({k: v.detach().numpy() for k, v in tconv.state_dict().items()})
    for prune, conv in ((tprune, tconv), (gprune, gconv)):
        prune.ln_structured(conv, "weight", amount=0.34, n=2, dim=0)
        prune.l1_unstructured(conv, "weight", amount=10)
        prune.ln_structured(conv, "weight", amount=1, n=1, dim=1)  # among the channels not wholly pruned
        prune.ln_structured(conv, "weight", amount=1, n=float("inf"), dim=0)
    assert np.array_equal(gconv.weight_mask.numpy(), tconv.weight_mask.numpy())
    linear = graphc.nn.Linear(6, 8)
    gprune.random_structured(linear, "weight", amount=3, dim=0)
    assert (linear.weight_mask.numpy().sum(1) == 0).sum() == 3
    for lib, prune in ((torch, tprune), (graphc, gprune)):
        with pytest.raises(ValueError, match="Structured pruning can only be applied to multidimensional tensors"):
            prune.ln_structured(lib.nn.Linear(2, 2), "bias", amount=1, n=2, dim=0)


def test_custom_from_mask_and_random_unstructured():
    mask = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    for lib, prune in ((torch, tprune), (graphc, gprune)):
        m = lib.nn.Linear(2, 3)
        prune.custom_from_mask(m, "weight", lib.tensor(mask))
        assert np.array_equal(m.weight_mask.numpy(), mask)
        assert np.array_equal(m.weight.detach().numpy() == 0, mask == 0)
    m = graphc.nn.Linear(10, 10)
    gprune.random_unstructured(m, "weight", amount=0.25)
    gprune.random_unstructured(m, "weight", amount=10)
    assert (m.weight_mask.numpy() == 0).sum() == 25 + 10


@pytest.mark.parametrize("amount,kind", [(1.5, ValueError), (-1, ValueError), ("x", TypeError), (7, ValueError)])
def test_pruning_errors_match_torch(amount, kind):
    for lib, prune in ((torch, tprune), (graphc, gprune)):
        with pytest.raises(kind, match="amount"):
            prune.l1_unstructured(lib.nn.Linear(2, 3), "weight", amount=amount)
        with pytest.raises(ValueError, match="has to be pruned before pruning can be removed"):
            prune.remove(lib.nn.Linear(2, 2), "weight")


def test_compiled_finetuning_of_a_pruned_model_matches_torch():
    tmodel, gmodel = _pruned_pair()
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.1, momentum=0.9)
    gopt = graphc.optim.SGD(gmodel.parameters(), lr=0.1, momentum=0.9)

    @graphc.compile
    def step(x, y):
        gopt.zero_grad()
        loss = graphc.nn.functional.cross_entropy(gmodel(x), y)
        loss.backward()
        gopt.step()
        return loss

    rng = np.random.default_rng(3)
    for _ in range(3):
        x, y = rng.standard_normal((4, 1, 5, 5)).astype(np.float32), rng.integers(0, 5, 4)
        loss = step(graphc.tensor(x), graphc.tensor(y))
        topt.zero_grad()
        expected = torch.nn.functional.cross_entropy(tmodel(torch.tensor(x)), torch.tensor(y))
        expected.backward()
        topt.step()
        assert_close(loss, expected, 1e-4, 1e-5)
    assert step.num_compiles == 1
    assert np.array_equal(gmodel[0].weight.detach().numpy() == 0, tmodel[0].weight.detach().numpy() == 0)
    assert_close(gmodel[0].weight, tmodel[0].weight, 1e-4, 1e-5)
