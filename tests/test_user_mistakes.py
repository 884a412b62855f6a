"""Common user mistakes get torch's kind of error (or warning), naming the op, the argument and the offending
values; torch is run alongside as the reference for the error class and its key words."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import graphc
import graphc.nn.functional as F


def _errors(graphc_call, torch_call):
    """The exceptions both libraries raise for the same mistake."""
    with pytest.raises(Exception) as theirs:
        torch_call()
    with pytest.raises(Exception) as ours:
        graphc_call()
    return ours.value, theirs.value


@pytest.mark.parametrize("call, op, argument", [
    (lambda lib, fn: fn(lib).relu([1.0, -2.0]), "relu", "'input' (position 1)"),
    (lambda lib, fn: fn(lib).mse_loss(lib.ones(3), [1.0, 2.0, 3.0]), "mse_loss", "'target' (position 2)"),
    (lambda lib, fn: fn(lib).mse_loss([1.0, 2.0, 3.0], lib.ones(3)), "mse_loss", "'input' (position 1)"),
    (lambda lib, fn: fn(lib).linear(lib.ones(2, 3), lib.ones(4, 3), "bias"), "linear", "'bias' (position 3)"),
    (lambda lib, fn: lib.ones(3).add([1.0]), "add", "(position 2)"),
    (lambda lib, fn: lib.ones(3) * {"a": 1}, None, None),
    (lambda lib, fn: lib.exp([1.0]), "exp", "(position 1)"),
    (lambda lib, fn: lib.matmul(lib.ones(2, 2), [[1.0], [2.0]]), "matmul", "'other' (position 2)"),
    (lambda lib, fn: fn(lib).layer_norm([1.0, 2.0], (2,)), "layer_norm", "'input' (position 1)"),
    (lambda lib, fn: fn(lib).softmax([1.0, 2.0], 0), "softmax", "'input' (position 1)"),
], ids=["F.relu", "mse_loss target", "mse_loss input", "linear bias", "Tensor.add", "mul dict", "exp", "matmul",
        "F.layer_norm", "F.softmax"])
def test_non_tensor_argument_is_a_type_error_naming_op_and_argument(call, op, argument):
    functional = {graphc: F, torch: torch.nn.functional}
    ours, theirs = _errors(lambda: call(graphc, functional.get), lambda: call(torch, functional.get))
    assert type(ours) is TypeError, ours
    message = str(ours)
    if type(theirs) is TypeError:  # torch's mse_loss fails later, with AttributeError: "'list' object has no ..."
        bad_type = str(theirs).rsplit(" ", 1)[-1].strip("'")  # torch names the type last ("... not list")
        assert bad_type in message, (message, str(theirs))
        assert op is None or op in str(theirs)
    else:
        assert "'list'" in str(theirs) and "not list" in message
    if op is not None:
        assert message.startswith(f"{op}: argument {argument} must be Tensor"), message


def test_numpy_scalars_are_not_mistakes():
    x = graphc.ones(3)
    assert F.relu(x * np.float32(-1.0)).sum().item() == 0.0


@pytest.mark.parametrize("data", [[[1, 2], [3]], [[1, 2], [3, 4], [5]], [[[1], [2]], [[3], [4, 5]]], [[1, 2], 3],
                                  [1, [2]]], ids=["short row", "last row", "dim 2", "number for row", "row for number"])
def test_ragged_nested_lists_name_the_dim_and_lengths(data):
    ours, theirs = _errors(lambda: graphc.tensor(data), lambda: torch.tensor(data))
    assert type(ours) is type(theirs), (ours, theirs)
    if isinstance(theirs, ValueError):
        assert str(theirs) in str(ours), (str(ours), str(theirs))  # "expected sequence of length 2 at dim 1 (got 1)"
    else:
        assert "dim 1" in str(ours)


@pytest.mark.parametrize("index", [[[0, 5]], [[-1, 0]]], ids=["past the end", "negative"])
def test_gather_out_of_range_shows_the_index_and_the_size(index):
    x = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    ours, theirs = _errors(lambda: graphc.gather(graphc.tensor(x), 1, graphc.tensor(index)),
                           lambda: torch.gather(torch.tensor(x), 1, torch.tensor(index)))
    assert str(theirs) in str(ours), (str(ours), str(theirs))  # "index 5 is out of bounds for dimension 1 with size 3"


def test_randint_names_low_and_high():
    ours, theirs = _errors(lambda: graphc.randint(5, 2, (3,)), lambda: torch.randint(5, 2, (3,)))
    assert type(ours) is type(theirs) is RuntimeError
    assert "low=5 >= high=2" in str(ours) and "from=5 >= to=2" in str(theirs)


def _target_size_warnings(call) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in caught if "target size" in str(w.message)]


@pytest.mark.parametrize("loss", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"])
@pytest.mark.parametrize("shapes", [((3, 1), (3,)), ((3,), (3, 1)), ((2, 3), (3,)), ((3,), (3,))])
def test_losses_warn_like_torch_when_target_size_differs(loss, shapes):
    (a, b) = shapes
    ours = _target_size_warnings(lambda: getattr(F, loss)(graphc.ones(*a), graphc.zeros(*b)))
    theirs = _target_size_warnings(lambda: getattr(torch.nn.functional, loss)(torch.ones(*a), torch.zeros(*b)))
    assert len(ours) == len(theirs) <= 1
    for message in ours:
        assert f"Using a target size ({list(b)}) that is different to the input size ({list(a)})" in message
        assert "likely lead to incorrect results due to broadcasting" in message


def test_target_size_warning_points_at_the_users_line():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        graphc.nn.MSELoss()(graphc.ones(3, 1), graphc.zeros(3))
    assert [w.filename for w in caught] == [__file__]


@pytest.mark.parametrize("call", [lambda lib: lib.tensor([1, 2]).mean(), lambda lib: lib.tensor([[1, 2]]).std(1)],
                         ids=["mean", "std"])
def test_a_floating_reduction_of_integers_is_torchs_runtime_error(call):
    ours, theirs = _errors(lambda: call(graphc), lambda: call(torch))
    assert type(ours) is type(theirs) is RuntimeError
    assert "floating point" in str(ours) and "int64" in str(ours) and "mean:" in str(ours)


def test_an_op_numpy_refuses_is_a_clear_error_naming_the_op():
    """gelu of an integer tensor: torch refuses it (NotImplementedError); graphc says so in its own words, naming the
    op and the dtype, not with an internal error from constructing numpy's exception class."""
    ours, theirs = _errors(lambda: F.gelu(graphc.tensor([1, 2])),
                           lambda: torch.nn.functional.gelu(torch.tensor([1, 2])))
    assert type(ours) is type(theirs) is NotImplementedError and str(ours).startswith("gelu:") and "int64" in str(ours)


def test_the_median_of_integers_keeps_their_dtype():
    for values in ([1, -2, 3, 4], [[5, 1], [2, 2]]):
        for name in ("median", "nanmedian"):
            ours, theirs = getattr(graphc.tensor(values), name)(), getattr(torch.tensor(values), name)()
            assert ours.dtype is graphc.int64 and theirs.dtype is torch.int64 and ours.item() == theirs.item()


# ---- values a compiled plan cannot see at trace time: checked when it replays ---------------------------------------
@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("loss, bad", [
    (lambda lib, x, y: lib.nn.functional.cross_entropy(x, y), [0, 5, 2, 1]),
    (lambda lib, x, y: lib.nn.functional.nll_loss(x.log_softmax(1), y), [0, -2, 2, 1]),
    (lambda lib, x, y: lib.nn.functional.one_hot(y, 3).float().sum(0), [0, 3, 2, 1]),
    (lambda lib, x, y: lib.nn.functional.one_hot(y, 3).float().sum(0), [0, -1, 2, 1]),
], ids=["cross_entropy", "nll_loss", "one_hot above", "one_hot negative"])
def test_a_replayed_plan_refuses_class_labels_out_of_range_as_torch(backend, loss, bad):
    compiled = graphc.compile(lambda x, y: loss(graphc, x, y), backend=backend)
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    for good in ([0, 1, 2, 1], [2, 2, 0, 1]):  # traced, then replayed: the labels are values the plan reads
        got = compiled(graphc.tensor(x), graphc.tensor(good))
        np.testing.assert_allclose(got.numpy(), loss(torch, torch.tensor(x), torch.tensor(good)).numpy(), rtol=1e-6)
    ours, theirs = _errors(lambda: compiled(graphc.tensor(x), graphc.tensor(bad)),
                           lambda: loss(torch, torch.tensor(x), torch.tensor(bad)))
    assert isinstance(ours, type(theirs)), (ours, theirs)
    assert str(bad[1]) in str(ours) and "test_user_mistakes.py" in str(ours), ours
    ignored = [0, -100, 2, 1]  # ignore_index is not out of range
    if "one_hot" not in str(ours):
        np.testing.assert_allclose(compiled(graphc.tensor(x), graphc.tensor(ignored)).numpy(),
                                   loss(torch, torch.tensor(x), torch.tensor(ignored)).numpy(), rtol=1e-6)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_a_compiled_batch_norm_refuses_one_value_per_channel_as_torch(backend):
    x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    ours, theirs = graphc.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    compiled = graphc.compile(ours, backend=backend)
    for rows in (4, 5):  # a plan for any batch size
        compiled(graphc.tensor(x[:rows]))
        theirs(torch.tensor(x[:rows]))
    mine, torch_error = _errors(lambda: compiled(graphc.tensor(x[:1])), lambda: theirs(torch.tensor(x[:1])))
    assert isinstance(mine, type(torch_error)) and "more than 1 value per channel" in str(mine), mine
    compiled(graphc.tensor(x[2:8]))
    theirs(torch.tensor(x[2:8]))
    # the refused call changed no statistic (torch's module counts it in num_batches_tracked before refusing)
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(getattr(ours, name).numpy(), getattr(theirs, name).numpy(), rtol=1e-5)


@pytest.mark.parametrize("norm, good, bad", [
    (lambda lib, x: lib.nn.functional.batch_norm(x, None, None, training=True), (4, 3), (1, 3)),
    (lambda lib, x: lib.nn.functional.instance_norm(x), (2, 3, 4), (2, 3, 1)),
], ids=["batch_norm", "instance_norm"])
def test_a_compiled_normalisation_without_running_stats_refuses_one_value(norm, good, bad):
    """Without running statistics nothing else reads the sample count: the plan still checks it."""
    compiled = graphc.compile(lambda x: norm(graphc, x))
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = rng.standard_normal(good).astype(np.float32)
        np.testing.assert_allclose(compiled(graphc.tensor(x)).numpy(), norm(torch, torch.tensor(x)).numpy(),
                                   rtol=1e-5, atol=1e-5)
    x = rng.standard_normal(bad).astype(np.float32)
    ours, theirs = _errors(lambda: compiled(graphc.tensor(x)), lambda: norm(torch, torch.tensor(x)))
    assert isinstance(ours, type(theirs)) and "more than 1" in str(ours), ours
