"""Losses against torch: every reduction, class weights, ignore_index, label smoothing, pos_weight, beta/delta,
log targets; values and gradients of the input (and of weights where torch has them); errors for bad input; one
loss compiled on the numpy backend equals eager."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import assert_close

import graphc
import graphc.nn.functional as F

REDUCTIONS = ["mean", "sum", "none"]


def both(array: np.ndarray, requires_grad: bool = False):
    return graphc.tensor(array, requires_grad=requires_grad), torch.tensor(array, requires_grad=requires_grad)


def check(g_fn, t_fn, inputs: list[np.ndarray], grads: tuple[int, ...] = (0,), rtol=1e-5, atol=1e-6):
    """g_fn(*graphc tensors) against t_fn(*torch tensors): value, and gradients of the inputs listed in grads."""
    g_in, t_in = zip(*(both(a, i in grads) for i, a in enumerate(inputs)))
    g_out, t_out = g_fn(*g_in), t_fn(*t_in)
    assert_close(g_out.detach(), t_out, rtol, atol)
    w = np.random.standard_normal(tuple(t_out.shape)).astype(np.float32)
    (g_out * graphc.tensor(w)).sum().backward()
    (t_out * torch.tensor(w)).sum().backward()
    for i in grads:
        assert_close(g_in[i].grad, t_in[i].grad, rtol, atol)


def randn(*shape) -> np.ndarray:
    return np.random.standard_normal(shape).astype(np.float32)


def classes(high: int, *shape, ignore: int | None = None) -> np.ndarray:
    t = np.random.randint(0, high, shape).astype(np.int64)
    if ignore is not None:
        t.flat[::3] = ignore
    return t


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 1])
def test_nll_loss(reduction, weighted, ignore_index):
    x, t = np.log(np.random.dirichlet(np.ones(4), 6)).astype(np.float32), classes(4, 6, ignore=ignore_index)
    w = np.random.uniform(0.5, 2, 4).astype(np.float32)
    kwargs = dict(ignore_index=ignore_index, reduction=reduction)
    check(lambda x, t, w: F.nll_loss(x, t, w if weighted else None, **kwargs),
          lambda x, t, w: torch.nn.functional.nll_loss(x, t, w if weighted else None, **kwargs), [x, t, w])
    g, tm = graphc.nn.NLLLoss(graphc.tensor(w), ignore_index=ignore_index, reduction=reduction), \
        torch.nn.NLLLoss(torch.tensor(w), ignore_index=ignore_index, reduction=reduction)
    check(g, tm, [x, t])


def test_nll_loss_spatial_and_unbatched():
    check(F.nll_loss, torch.nn.functional.nll_loss, [randn(2, 3, 4, 5), classes(3, 2, 4, 5)])
    check(F.nll_loss, torch.nn.functional.nll_loss, [randn(3), np.array(2)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 2])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_cross_entropy_index_targets(reduction, weighted, ignore_index, label_smoothing):
    x, t, w = randn(6, 5), classes(5, 6, ignore=ignore_index), np.random.uniform(0.5, 2, 5).astype(np.float32)
    kwargs = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)
    check(lambda x, t, w: F.cross_entropy(x, t, w if weighted else None, **kwargs),
          lambda x, t, w: torch.nn.functional.cross_entropy(x, t, w if weighted else None, **kwargs), [x, t, w])
    check(graphc.nn.CrossEntropyLoss(graphc.tensor(w) if weighted else None, **kwargs),
          torch.nn.CrossEntropyLoss(torch.tensor(w) if weighted else None, **kwargs), [x, t])


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_class_index_losses_ignore_masked_minus_inf_logits(compiled):
    """SimCLR's NT-Xent masks the self-similarities with -inf before cross_entropy: only each target's entry is read
    (torch gathers it), so the other -inf log-probabilities give no NaN, in the value or the gradient."""
    x, t, w = randn(6, 6), np.array([3, 4, 5, 0, 1, 2]), np.random.uniform(0.5, 2, 6).astype(np.float32)

    def losses(L, x, t, w):
        x = x.masked_fill(L.eye(6, dtype=L.bool), float("-inf"))
        return L.stack([L.nn.functional.cross_entropy(x, t), L.nn.functional.cross_entropy(x, t, w),
                        L.nn.functional.nll_loss(L.log_softmax(x, 1), t, w),
                        L.nn.functional.multi_margin_loss(x, t)])

    g_fn = graphc.compile(lambda x, t, w: losses(graphc, x, t, w)) if compiled else (
        lambda x, t, w: losses(graphc, x, t, w))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's "invalid value encountered in multiply" was the symptom
        check(g_fn, lambda x, t, w: losses(torch, x, t, w), [x, t, w])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_probability_targets(reduction):
    x, p, w = randn(2, 4, 3), np.random.dirichlet(np.ones(4), (2, 3)).transpose(0, 2, 1).astype(np.float32), \
        np.random.uniform(0.5, 2, 4).astype(np.float32)
    for kwargs in ({}, {"label_smoothing": 0.1}):
        check(lambda x, p, w: F.cross_entropy(x, p, w, reduction=reduction, **kwargs),
              lambda x, p, w: torch.nn.functional.cross_entropy(x, p, w, reduction=reduction, **kwargs), [x, p, w],
              grads=(0, 1))


def test_cross_entropy_loss_positional_arguments_follow_torch():
    """torch's second positional argument is size_average (deprecated), not ignore_index."""
    x, t = randn(4, 3), classes(3, 4)
    with pytest.warns(UserWarning, match="size_average and reduce args will be deprecated"):
        g = graphc.nn.CrossEntropyLoss(None, False)
    with pytest.warns(UserWarning):
        tm = torch.nn.CrossEntropyLoss(None, False)
    assert g.reduction == tm.reduction == "sum"
    check(g, tm, [x, t])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(reduction):
    x, t, w = np.random.uniform(0.05, 0.95, (4, 3)).astype(np.float32), np.random.uniform(0, 1, (4, 3)).astype(
        np.float32), np.random.uniform(0.5, 2, (4, 3)).astype(np.float32)
    check(lambda x, t, w: F.binary_cross_entropy(x, t, w, reduction=reduction),
          lambda x, t, w: torch.nn.functional.binary_cross_entropy(x, t, w, reduction=reduction), [x, t, w], (0, 1))
    check(graphc.nn.BCELoss(reduction=reduction), torch.nn.BCELoss(reduction=reduction), [x, t])
    # torch clamps each log at -100, so probabilities of exactly 0 and 1 give finite losses
    edge, edge_target = np.array([0.0, 1.0, 0.5], np.float32), np.array([1.0, 0.0, 1.0], np.float32)
    assert_close(F.binary_cross_entropy(graphc.tensor(edge), graphc.tensor(edge_target), reduction=reduction),
                 torch.nn.functional.binary_cross_entropy(torch.tensor(edge), torch.tensor(edge_target),
                                                          reduction=reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits(reduction):
    x, t = randn(4, 3) * 30, np.random.uniform(0, 1, (4, 3)).astype(np.float32)
    w, pos = np.random.uniform(0.5, 2, (4, 3)).astype(np.float32), np.random.uniform(0.5, 3, 3).astype(np.float32)
    check(lambda x, t, w, pos: F.binary_cross_entropy_with_logits(x, t, w, reduction=reduction, pos_weight=pos),
          lambda x, t, w, pos: torch.nn.functional.binary_cross_entropy_with_logits(x, t, w, reduction=reduction,
                                                                                  pos_weight=pos),
          [x, t, w, pos], (0, 1), rtol=1e-5, atol=1e-5)
    g = graphc.nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=graphc.tensor(pos))
    assert "pos_weight" in g.state_dict()
    check(g, torch.nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=torch.tensor(pos)), [x, t])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_regression_losses(reduction):
    x, t, w = randn(5, 3) * 2, randn(5, 3) * 2, np.random.uniform(0.5, 2, (5, 3)).astype(np.float32)
    tf = torch.nn.functional
    for name in ("l1_loss", "mse_loss"):
        check(lambda x, t, w: getattr(F, name)(x, t, reduction=reduction, weight=w),
              lambda x, t, w: getattr(tf, name)(x, t, reduction=reduction, weight=w), [x, t, w], (0, 1))
    for beta in (1.0, 0.5, 0.0):
        check(lambda x, t: F.smooth_l1_loss(x, t, reduction=reduction, beta=beta),
              lambda x, t: tf.smooth_l1_loss(x, t, reduction=reduction, beta=beta), [x, t], (0, 1))
        check(graphc.nn.SmoothL1Loss(reduction=reduction, beta=beta),
              torch.nn.SmoothL1Loss(reduction=reduction, beta=beta), [x, t])
    for delta in (1.0, 2.5):
        check(lambda x, t, w: F.huber_loss(x, t, reduction=reduction, delta=delta, weight=w),
              lambda x, t, w: tf.huber_loss(x, t, reduction=reduction, delta=delta, weight=w), [x, t, w], (0, 1))
        check(graphc.nn.HuberLoss(reduction, delta), torch.nn.HuberLoss(reduction, delta), [x, t])
    check(graphc.nn.L1Loss(reduction=reduction), torch.nn.L1Loss(reduction=reduction), [x, t])
    check(graphc.nn.MSELoss(reduction=reduction), torch.nn.MSELoss(reduction=reduction), [x, t])


@pytest.mark.parametrize("reduction", REDUCTIONS + ["batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div(reduction, log_target):
    x = np.log(np.random.dirichlet(np.ones(4), 3)).astype(np.float32)
    p = np.random.dirichlet(np.ones(4), 3).astype(np.float32)
    p[0, 1] = 0.0  # a zero-probability target contributes 0, with a finite gradient
    t = np.log(p + 1e-3).astype(np.float32) if log_target else p
    kwargs = dict(reduction=reduction, log_target=log_target)
    with pytest.warns() if reduction == "mean" else _no_warning():
        # torch's target gradient is NaN where the target is 0 (log 0), so only the input's is compared there
        check(lambda x, t: F.kl_div(x, t, **kwargs), lambda x, t: torch.nn.functional.kl_div(x, t, **kwargs), [x, t],
              (0, 1) if log_target else (0,))
        check(graphc.nn.KLDivLoss(**kwargs), torch.nn.KLDivLoss(**kwargs), [x, t])


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("name,args,error,words", [
    ("nll_loss", lambda: (graphc.randn(4, 3), graphc.tensor([0, 1, 2])), ValueError, "batch_size"),
    ("nll_loss", lambda: (graphc.randn(4, 3), graphc.tensor([0, 1, 2, 3])), IndexError, "out of bounds"),
    ("cross_entropy", lambda: (graphc.randn(4, 3), graphc.tensor([0, 1, 2])), ValueError, "batch_size"),
    ("binary_cross_entropy", lambda: (graphc.rand(4, 3), graphc.rand(4, 1)), ValueError, "target size"),
    ("binary_cross_entropy", lambda: (graphc.randn(4, 3) + 2, graphc.rand(4, 3)), RuntimeError, "between 0 and 1"),
    ("binary_cross_entropy_with_logits", lambda: (graphc.randn(4, 3), graphc.rand(4)), ValueError, "Target size"),
])
def test_loss_errors_like_torch(name, args, error, words):
    g_args = args()
    t_args = [torch.tensor(a.numpy()) for a in g_args]
    with pytest.raises(error, match=words):
        getattr(F, name)(*g_args)
    with pytest.raises(error):
        getattr(torch.nn.functional, name)(*t_args)


@pytest.mark.parametrize("name", ["l1_loss", "mse_loss", "smooth_l1_loss", "huber_loss"])
def test_pointwise_losses_warn_like_torch_when_sizes_differ(name):
    x, t = randn(4, 1), randn(4)
    with pytest.warns(UserWarning, match="target size"):
        getattr(torch.nn.functional, name)(torch.tensor(x), torch.tensor(t))
    with pytest.warns(UserWarning, match="target size"):
        out = getattr(F, name)(graphc.tensor(x), graphc.tensor(t))
    with pytest.warns(UserWarning):
        assert_close(out, getattr(torch.nn.functional, name)(torch.tensor(x), torch.tensor(t)))


def test_bad_reduction_and_hyperparameters():
    x = graphc.randn(3)
    for fn in (F.l1_loss, F.mse_loss, F.binary_cross_entropy_with_logits, F.kl_div):
        with pytest.raises(ValueError, match="reduction"):
            fn(x, x, reduction="avg")
    with pytest.raises(ValueError, match="delta"):
        F.huber_loss(x, x, delta=0.0)
    with pytest.raises(ValueError, match="beta"):
        F.smooth_l1_loss(x, x, beta=-1.0)
    for name in ("l1_loss", "mse_loss", "huber_loss"):
        with pytest.raises(ValueError, match="Weights and input must have the same size"):
            getattr(F, name)(x, x, weight=graphc.ones(1))
        with pytest.raises(ValueError, match="Weights and input must have the same size"):
            getattr(torch.nn.functional, name)(torch.ones(3), torch.ones(3), weight=torch.ones(1))


def test_compiled_loss_equals_eager():
    x, t = randn(8, 5), classes(5, 8, ignore=1)
    w = np.random.uniform(0.5, 2, 5).astype(np.float32)
    loss_fn = graphc.nn.CrossEntropyLoss(graphc.tensor(w), ignore_index=1, label_smoothing=0.1)

    def step(x, t):
        x.grad = None
        loss = loss_fn(x, t) + F.binary_cross_entropy_with_logits(x, graphc.sigmoid(x.detach()))
        loss.backward()
        return loss.detach(), x.grad

    compiled = graphc.compile(step, backend="numpy")
    for _ in range(2):
        gx = graphc.tensor(x, requires_grad=True)
        eager_loss, eager_grad = step(gx, graphc.tensor(t))
        gx2 = graphc.tensor(x, requires_grad=True)
        loss, grad = compiled(gx2, graphc.tensor(t))
        np.testing.assert_allclose(loss.numpy(), eager_loss.numpy(), rtol=1e-6)
        np.testing.assert_allclose(grad.numpy(), eager_grad.numpy(), rtol=1e-6, atol=1e-7)


def test_float64_label_smoothing_is_torch_to_float64_rounding():
    """The smoothing share label_smoothing / C is in the loss's dtype (it was a float32 tensor: 4e-9 off in float64),
    for class indices and for class probabilities."""
    rng = np.random.default_rng(0)
    x, labels, probs = rng.standard_normal((4, 5)), rng.integers(0, 5, 4), rng.dirichlet(np.ones(5), 4)
    for target in (labels, probs):
        mine = graphc.nn.functional.cross_entropy(graphc.tensor(x), graphc.tensor(target), label_smoothing=0.1,
                                                  reduction="none")
        theirs = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(target), label_smoothing=0.1,
                                                   reduction="none")
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-14)
