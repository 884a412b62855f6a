"""NaN in, NaN out, as torch: every max/min-based op (elementwise and reductions, fused or alone, one program or
many combined with atomics) eagerly, on the numpy plan and in Triton kernels under the interpreter."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import assert_compiles_for_sm90

import graphc
import graphc.nn.functional as F

NAN, INF = float("nan"), float("inf")


def _functional(lib):
    return F if lib is graphc else torch.nn.functional


def _values(out):
    return [o for o in out] if isinstance(out, tuple) else [out]


CASES = {
    "relu": lambda lib, x, y: x.relu(),
    "F.relu": lambda lib, x, y: _functional(lib).relu(x * 2),
    "clamp": lambda lib, x, y: x.clamp(-1.0, 1.0),
    "clamp min": lambda lib, x, y: x.clamp(min=0.0),
    "clamp max": lambda lib, x, y: x.clamp(max=0.0),
    "clamp tensor bounds": lambda lib, x, y: x.clamp(min=y * 0 - 1, max=y * 0 + 1),
    "maximum": lambda lib, x, y: lib.maximum(x, y),
    "minimum": lambda lib, x, y: lib.minimum(y, x),
    "max binary": lambda lib, x, y: lib.max(x, y),
    "sign": lambda lib, x, y: x.sign() * 2,
    "amax": lambda lib, x, y: x.amax(),
    "amin": lambda lib, x, y: x.amin(),
    "amax dim": lambda lib, x, y: (x * 1).amax(1),
    "amin dim keepdim": lambda lib, x, y: (x + 0).amin(0, keepdim=True),
    "max": lambda lib, x, y: x.max(),
    "min": lambda lib, x, y: x.min(),
    "max dim": lambda lib, x, y: x.max(1),
    "min dim": lambda lib, x, y: x.min(0),
    "softmax": lambda lib, x, y: x.softmax(-1),
    "log_softmax": lambda lib, x, y: (x * 2).log_softmax(1),
    "logsumexp": lambda lib, x, y: x.logsumexp(1),
    "norm inf": lambda lib, x, y: x.norm(float("inf"), dim=1),
    "max_pool2d": lambda lib, x, y: _functional(lib).max_pool2d(x.reshape(1, 1, 4, 8), 2),
    "row max then all min": lambda lib, x, y: (x - x.amax(1, keepdim=True)).amin(),
    "max of relu": lambda lib, x, y: (x.relu() + y).amax(),
}


def _inputs(kind: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 8)).astype(np.float32)
    y = rng.standard_normal((4, 8)).astype(np.float32)
    if kind == "nan":
        x[1, 3] = x[3, 0] = NAN
        y[0, 5] = NAN
    elif kind == "inf":
        x[1, 3], x[2, 2], y[0, 5] = INF, -INF, -INF
    else:  # a whole row of NaN, and NaN mixed with inf
        x[2, :] = NAN
        x[0, 1], x[0, 2], y[3, 3] = INF, NAN, -INF
    return x, y


def _compare(ours, theirs) -> None:
    for a, b in zip(_values(ours), _values(theirs)):
        np.testing.assert_allclose(np.asarray(a.tolist(), dtype=np.float64), np.asarray(b.tolist(), dtype=np.float64),
                                   rtol=1e-5, atol=1e-6)  # NaN and inf where torch has them, exactly


@pytest.mark.parametrize("kind", ["nan", "inf", "nan row"])
@pytest.mark.parametrize("mode", ["eager", "numpy", "interpret"])
@pytest.mark.parametrize("name", CASES)
def test_nan_and_inf_propagate_like_torch(name, mode, kind):
    x, y = _inputs(kind)
    fn = CASES[name]
    expected = fn(torch, torch.from_numpy(x), torch.from_numpy(y))
    run = (lambda a, b: fn(graphc, a, b)) if mode == "eager" else graphc.compile(
        lambda a, b: fn(graphc, a, b), backend=mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ops without a lowering run as numpy steps, with a note
        warnings.filterwarnings("error", "graphc.compile.*runs eagerly")  # a kernel that fails is a failure
        out = run(graphc.tensor(x), graphc.tensor(y))
    if name.endswith(" dim") and name.startswith(("max", "min")):
        np.testing.assert_array_equal(out.indices.tolist(), expected.indices.tolist())
    _compare(out, expected)


@pytest.mark.parametrize("op", ["amax", "amin"])
@pytest.mark.parametrize("where", [0, 20000, 39999])
def test_nan_survives_rows_split_across_programs(op, where):
    """A long row is cut into chunks whose partial results meet in a scratch buffer through atomic max/min."""
    x = np.random.default_rng(2).standard_normal((2, 40000)).astype(np.float32)
    x[1, where] = NAN
    fn = graphc.compile(lambda t: getattr(t * 1, op)(1), backend="interpret", fullgraph=True)
    _compare(fn(graphc.tensor(x)), getattr(torch.from_numpy(x), op)(1))


@pytest.mark.parametrize("op", ["amax", "amin"])
def test_nan_survives_totals_over_all_rows(op):
    """A reduction over all rows of a large input: each program's partial total meets the others' atomically."""
    x = np.random.default_rng(3).standard_normal((300, 700)).astype(np.float32)
    x[217, 5] = NAN
    fn = graphc.compile(lambda t: getattr(t.exp(), op)(), backend="interpret", fullgraph=True)
    _compare(fn(graphc.tensor(x)), getattr(torch.from_numpy(x).exp(), op)())


def test_max_lowerings_propagate_nan_in_gpu_code():
    """On a GPU Triton's maximum/minimum drop NaN unless asked (the interpreter cannot show it): the PTX for sm_90
    uses the NaN-propagating instructions."""
    x = graphc.randn(64, 64)
    report = graphc.explain(lambda t: (t.relu().clamp(max=1.0) + t.amax(1, keepdim=True)).amin(1), x)
    assert_compiles_for_sm90(report.kernels)
    ptx = "".join(k.ptx(90) for k in report.kernels)
    assert "max.NaN.f32" in ptx and "min.NaN.f32" in ptx  # (the final fold keeps max.f32 and checks NaN after)
