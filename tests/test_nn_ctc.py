"""F.ctc_loss / nn.CTCLoss against torch: values and gradients for padded and concatenated targets, every
reduction, another blank, zero_infinity, unbatched input, lengths as lists, torch's errors, and a compiled step."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from conftest import assert_close

import graphc
import graphc.nn.functional as F
from graphc import nn


def _problem(rng, steps, batch, classes, longest, padded=True, blank=0, full_length=False):
    logits = rng.standard_normal((steps, batch, classes)).astype(np.float32)
    target_lengths = rng.integers(1 if longest else 0, longest + 1, batch)
    input_lengths = np.full(batch, steps) if full_length else rng.integers(steps // 2, steps + 1, batch)
    targets = rng.choice([c for c in range(classes) if c != blank], (batch, max(longest, 1)))
    if not padded:
        targets = np.concatenate([targets[i, :k] for i, k in enumerate(target_lengths)])
    return logits, targets, input_lengths, target_lengths


CASES = [dict(steps=12, batch=3, classes=5, longest=4),
         dict(steps=12, batch=3, classes=5, longest=4, padded=False, reduction="sum"),
         dict(steps=12, batch=3, classes=5, longest=4, reduction="none", blank=4),
         dict(steps=6, batch=4, classes=4, longest=5, reduction="none", zero_infinity=True, full_length=True),
         dict(steps=6, batch=4, classes=4, longest=5, full_length=True),  # some alignments impossible: inf, as torch
         dict(steps=10, batch=2, classes=3, longest=0, reduction="none")]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_ctc_loss_matches_torch(case):
    case = dict(case)
    reduction, zero_infinity = case.pop("reduction", "mean"), case.pop("zero_infinity", False)
    blank = case.get("blank", 0)
    logits, targets, input_lengths, target_lengths = _problem(np.random.default_rng(0), **case)
    log_probs = TF.log_softmax(torch.tensor(logits), 2).detach().numpy()
    results = []
    for lib, fn in ((graphc, F), (torch, TF)):
        leaf = lib.tensor(logits, requires_grad=True)
        given = lib.tensor(log_probs, requires_grad=True)  # torch's docs' example: log_probs as the leaf
        args = (lib.tensor(targets), lib.tensor(input_lengths), lib.tensor(target_lengths), blank, reduction,
                zero_infinity)
        loss = fn.ctc_loss(fn.log_softmax(leaf, 2), *args)
        weight = lib.tensor(np.linspace(0.5, 1.5, loss.numel()).reshape(tuple(loss.shape)).astype(np.float32))
        (loss * weight).sum().backward()
        fn.ctc_loss(given, *args).sum().backward()
        results.append((loss, leaf.grad, given.grad))
    for got, expected in zip(*results):
        assert_close(got, expected, 1e-4, 1e-5)


def test_ctc_loss_unbatched_with_lengths_as_lists_and_the_module():
    rng = np.random.default_rng(1)
    log_probs = TF.log_softmax(torch.tensor(rng.standard_normal((8, 2, 4)).astype(np.float32)), 2)
    targets = torch.tensor([[1, 2, 2], [3, 1, 0]])
    expected = torch.nn.CTCLoss(reduction="sum")(log_probs, targets, [8, 6], [3, 2])
    got = nn.CTCLoss(reduction="sum")(graphc.tensor(log_probs.numpy()), graphc.tensor(targets.numpy()), [8, 6], [3, 2])
    assert_close(got, expected, 1e-5, 1e-5)
    one = TF.ctc_loss(log_probs[:, 0], targets[0], torch.tensor(8), torch.tensor(3), reduction="none")
    assert_close(F.ctc_loss(graphc.tensor(log_probs[:, 0].numpy()), graphc.tensor([1, 2, 2]), graphc.tensor(8),
                            graphc.tensor(3), reduction="none"), one, 1e-5, 1e-5)


@pytest.mark.parametrize("change,message", [(dict(input_lengths=[9, 6]), "input_lengths"),
                                            (dict(target_lengths=[4, 2]), "targets"),
                                            (dict(blank=4), "blank")], ids=str)
def test_ctc_loss_errors_match_torch(change, message):
    log_probs = torch.randn(8, 2, 4).log_softmax(2)
    args = dict(targets=torch.tensor([[1, 2, 2], [3, 1, 0]]), input_lengths=[8, 6], target_lengths=[3, 2], blank=0)
    args.update(change)
    with pytest.raises(RuntimeError, match=message):
        TF.ctc_loss(log_probs, **{k: torch.tensor(v) if isinstance(v, list) else v for k, v in args.items()})
    with pytest.raises(RuntimeError, match=f"ctc_loss(.|\n)*{message}"):
        F.ctc_loss(graphc.tensor(log_probs.numpy()), **{k: graphc.tensor(v.numpy()) if isinstance(v, torch.Tensor)
                                                        else v for k, v in args.items()})


def test_compiled_ctc_step_trains_like_torch():
    def build(L):
        return L.nn.Sequential(L.nn.Linear(6, 16), L.nn.Tanh(), L.nn.Linear(16, 5))

    tmodel, gmodel = build(torch), build(graphc)
    gmodel.load_state_dict({k: v.detach().numpy() for k, v in tmodel.state_dict().items()})
    topt, gopt = torch.optim.Adam(tmodel.parameters(), 1e-2), graphc.optim.Adam(gmodel.parameters(), 1e-2)
    gctc, tctc = nn.CTCLoss(zero_infinity=True), torch.nn.CTCLoss(zero_infinity=True)

    @graphc.compile
    def step(x, targets, input_lengths, target_lengths):
        gopt.zero_grad()
        loss = gctc(gmodel(x).log_softmax(2), targets, input_lengths, target_lengths)
        loss.backward()
        gopt.step()
        return loss

    rng = np.random.default_rng(2)
    for batch in (3, 3, 2):
        x = rng.standard_normal((10, batch, 6)).astype(np.float32)
        targets, lengths = rng.integers(1, 5, (batch, 4)), rng.integers(1, 5, batch)
        in_lengths = rng.integers(6, 11, batch)
        loss = step(graphc.tensor(x), graphc.tensor(targets), graphc.tensor(in_lengths), graphc.tensor(lengths))
        topt.zero_grad()
        expected = tctc(tmodel(torch.tensor(x)).log_softmax(2), torch.tensor(targets), torch.tensor(in_lengths),
                        torch.tensor(lengths))
        expected.backward()
        topt.step()
        assert_close(loss, expected, 1e-4, 1e-5)
    assert step.num_compiles == 1
