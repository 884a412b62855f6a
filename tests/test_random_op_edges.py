"""Random single-op programs on hostile inputs, against torch: a third generator beside the program generators of
tests/test_random_programs.py and tests/test_random_programs_wide.py, which compose float ops into programs and
compile them. This one applies one unary, binary (broadcasting) or reduction/indexing op to inputs of float32,
float64, float16, int64 or bool holding NaN, infinities, -0.0, denormals and the float max, with empty and size-1
dims, 0-d tensors, and transposed, strided, expanded or narrowed views, and compares values, dtypes, shapes and
error classes with torch's, eagerly, compiled on the numpy backend (every fifth program; every one in a sweep) and,
for float inputs without NaN or inf, the gradients of a weighted sum of the outputs.

Where torch refuses an input that graphc computes (integer inputs to float-only functions) the program passes:
graphc is permissive there on purpose. Not compared: the sign of a zero (numpy's and torch's tie-breaking of
maximum/fmax differ between their vectorised and scalar loops), gradients at NaN or infinite inputs (torch's own
differ between those loops), layer_norm of values whose squares overflow (torch's Welford updates give NaN). It
found: isclose of a finite and an infinite value (True), cumsum/cumprod accumulating in float32 (torch: double),
layer_norm and std of float16 overflowing, masked_fill refusing to broadcast its input, lerp of float16 promoted
to float32, threshold/hardtanh of integers promoted to float, xlogy's gradient at x = 0, max() and min() of a NaN
giving NaN gradients, bool subtraction and negation raising numpy's TypeError, crashes on 0-d inputs (gather,
flip, masked_select, logcumsumexp) and on integer nan_to_num.

Sweep: `GRAPHC_EDGE_SEEDS=0-5000 GRAPHC_EDGE_TIERS=eager,numpy,cpu python -m pytest -q
tests/test_random_op_edges.py` (about a minute per 1000 programs eagerly; the cpu tier compiles C per program)."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

import graphc

SEEDS = os.environ.get("GRAPHC_EDGE_SEEDS")
SAMPLE = range(*map(int, SEEDS.split("-"))) if SEEDS else range(400)
TIERS = tuple(os.environ.get("GRAPHC_EDGE_TIERS", "eager,numpy").split(","))
SPECIAL = {"float32": [np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-40, -1e-40, 3.4e38, -3.4e38, 1.0, -1.0, 0.5, 88.0],
           "float16": [np.nan, np.inf, -np.inf, -0.0, 0.0, 6e-8, 65504.0, -65504.0, 1.0, -1.0, 0.5, 11.0]}
SPECIAL["float64"] = SPECIAL["float32"]
DTYPES = ["float32"] * 4 + ["float16", "int64", "int64", "bool", "float64"]
LAYOUTS = ["contiguous", "contiguous", "transposed", "strided", "expanded", "narrowed"]


def _f(L):
    return L.nn.functional


UNARY = {
    "abs": lambda L, x: x.abs(), "neg": lambda L, x: -x, "exp": lambda L, x: x.exp(), "log": lambda L, x: x.log(),
    "sqrt": lambda L, x: x.sqrt(), "rsqrt": lambda L, x: x.rsqrt(), "sin": lambda L, x: x.sin(),
    "tanh": lambda L, x: x.tanh(), "sigmoid": lambda L, x: x.sigmoid(), "relu": lambda L, x: x.relu(),
    "floor": lambda L, x: x.floor(), "round": lambda L, x: x.round(), "trunc": lambda L, x: x.trunc(),
    "frac": lambda L, x: x.frac(), "sign": lambda L, x: x.sign(), "square": lambda L, x: x.square(),
    "reciprocal": lambda L, x: x.reciprocal(), "expm1": lambda L, x: x.expm1(), "log1p": lambda L, x: x.log1p(),
    "erf": lambda L, x: x.erf(), "atan": lambda L, x: x.atan(), "asinh": lambda L, x: x.asinh(),
    "exp2": lambda L, x: x.exp2(), "isnan": lambda L, x: x.isnan(), "isinf": lambda L, x: x.isinf(),
    "signbit": lambda L, x: x.signbit(), "nan_to_num": lambda L, x: x.nan_to_num(),
    "nan_to_num_values": lambda L, x: x.nan_to_num(0.0, 1.0, -1.0), "gelu": lambda L, x: _f(L).gelu(x),
    "gelu_tanh": lambda L, x: _f(L).gelu(x, approximate="tanh"), "silu": lambda L, x: _f(L).silu(x),
    "elu": lambda L, x: _f(L).elu(x), "selu": lambda L, x: _f(L).selu(x), "softplus": lambda L, x: _f(L).softplus(x),
    "logsigmoid": lambda L, x: _f(L).logsigmoid(x), "hardtanh": lambda L, x: _f(L).hardtanh(x),
    "relu6": lambda L, x: _f(L).relu6(x), "hardswish": lambda L, x: _f(L).hardswish(x),
    "leaky_relu": lambda L, x: _f(L).leaky_relu(x, 0.2), "softsign": lambda L, x: _f(L).softsign(x),
    "hardshrink": lambda L, x: _f(L).hardshrink(x), "softshrink": lambda L, x: _f(L).softshrink(x),
    "threshold": lambda L, x: _f(L).threshold(x, 0.1, 20.0), "celu": lambda L, x: _f(L).celu(x, 0.5),
    "clamp": lambda L, x: x.clamp(-1, 2), "clamp_min": lambda L, x: x.clamp(min=0.5),
    "pow2": lambda L, x: x ** 2, "pow_half": lambda L, x: x ** 0.5, "rpow": lambda L, x: 2 ** x,
    "mul_scalar": lambda L, x: x * 2.5, "div_scalar": lambda L, x: x / 3, "floordiv_scalar": lambda L, x: x // 2,
    "mod_scalar": lambda L, x: x % -1.5, "rdiv_scalar": lambda L, x: 1 / x, "gt_scalar": lambda L, x: x > 0.5,
    "half": lambda L, x: x.half(), "double": lambda L, x: x.double(), "bool": lambda L, x: x.bool(),
    "logical_not": lambda L, x: x.logical_not(), "lerp": lambda L, x: L.lerp(x, L.zeros_like(x), 0.75),
    "xlogy": lambda L, x: L.xlogy(x, x), "sinc": lambda L, x: L.sinc(x), "erfinv": lambda L, x: L.erfinv(x),
    "copysign": lambda L, x: L.copysign(L.ones_like(x), x), "fmax0": lambda L, x: L.fmax(x, L.zeros_like(x)),
}
BINARY = {
    "add": lambda L, x, y: x + y, "sub_alpha": lambda L, x, y: L.sub(x, y, alpha=0.5), "mul": lambda L, x, y: x * y,
    "mul_keyword": lambda L, x, y: x.mul(other=y), "div": lambda L, x, y: x / y, "floordiv": lambda L, x, y: x // y,
    "pow": lambda L, x, y: x ** y, "maximum": lambda L, x, y: L.maximum(x, y), "fmin": lambda L, x, y: L.fmin(x, y),
    "atan2": lambda L, x, y: L.atan2(x, y), "hypot": lambda L, x, y: L.hypot(x, y), "eq": lambda L, x, y: x == y,
    "lt": lambda L, x, y: x < y, "logaddexp": lambda L, x, y: L.logaddexp(x, y),
    "copysign": lambda L, x, y: L.copysign(x, y), "and": lambda L, x, y: x & y, "xor": lambda L, x, y: x ^ y,
    "where": lambda L, x, y: L.where(x > 0, x, y), "lerp": lambda L, x, y: L.lerp(x, y, 0.3),
    "lerp_far": lambda L, x, y: L.lerp(x, y, 0.8), "xlogy": lambda L, x, y: L.xlogy(x, y),
    "div_trunc": lambda L, x, y: L.div(x, y, rounding_mode="trunc"), "masked_fill": lambda L, x, y: x.masked_fill(
        y > 0, 7), "isclose": lambda L, x, y: L.isclose(x, y),
}
REDUCTION = {
    "sum": lambda L, x, d, k: x.sum(d, keepdim=k), "sum_all": lambda L, x, d, k: x.sum(),
    "mean": lambda L, x, d, k: x.mean(d, keepdim=k), "prod": lambda L, x, d, k: x.prod(d, keepdim=k),
    "amax": lambda L, x, d, k: x.amax(d, keepdim=k), "max": lambda L, x, d, k: x.max(),
    "max_dim": lambda L, x, d, k: x.max(d, keepdim=k), "min_dim": lambda L, x, d, k: x.min(d, keepdim=k),
    "argmax": lambda L, x, d, k: x.argmax(d, keepdim=k), "argmin_all": lambda L, x, d, k: x.argmin(),
    "var": lambda L, x, d, k: x.var(d, keepdim=k), "std_all": lambda L, x, d, k: x.std(),
    "logsumexp": lambda L, x, d, k: x.logsumexp(d, keepdim=k), "softmax": lambda L, x, d, k: x.softmax(d),
    "log_softmax": lambda L, x, d, k: x.log_softmax(d), "cumsum": lambda L, x, d, k: x.cumsum(d),
    "cumprod": lambda L, x, d, k: x.cumprod(d), "cummax": lambda L, x, d, k: x.cummax(d),
    "logcumsumexp": lambda L, x, d, k: x.logcumsumexp(d), "sort": lambda L, x, d, k: x.sort(dim=d, stable=True),
    "topk": lambda L, x, d, k: x.topk(1, d).values, "median": lambda L, x, d, k: x.median(),
    "median_dim": lambda L, x, d, k: x.median(d, keepdim=k).values,
    "kthvalue": lambda L, x, d, k: x.kthvalue(1, d).values,
    "any": lambda L, x, d, k: x.any(d, keepdim=k), "count_nonzero": lambda L, x, d, k: x.count_nonzero(d),
    "nansum": lambda L, x, d, k: x.nansum(d, keepdim=k), "norm": lambda L, x, d, k: x.norm(dim=d, keepdim=k),
    "norm_inf": lambda L, x, d, k: x.norm(p=float("inf"), dim=d), "aminmax": lambda L, x, d, k: L.aminmax(x, dim=d),
    "flip": lambda L, x, d, k: x.flip(d), "roll": lambda L, x, d, k: x.roll(1, d),
    "sum_float64": lambda L, x, d, k: x.sum(d, dtype=L.float64), "chunk": lambda L, x, d, k: list(x.chunk(2, d)),
    "narrow": lambda L, x, d, k: x.narrow(d, 0, min(1, x.shape[d])) if x.ndim else x,
    "gather": lambda L, x, d, k: x.gather(d, L.zeros_like(x, dtype=L.int64)), "diff": lambda L, x, d, k: x.diff(dim=d),
    "normalize": lambda L, x, d, k: _f(L).normalize(x, dim=d),
    "layer_norm": lambda L, x, d, k: _f(L).layer_norm(x, x.shape[-1:]), "masked_select": lambda L, x, d, k:
        x.masked_select(x > 0), "nonzero": lambda L, x, d, k: x.nonzero(), "tril": lambda L, x, d, k: x.tril(),
    "take_along_dim": lambda L, x, d, k: L.take_along_dim(x, x.argsort(dim=d, stable=True), d),
}


def _array(rng, dtype: str, shape: tuple) -> np.ndarray:
    n = int(np.prod(shape))
    if dtype == "int64":
        return rng.integers(-5, 6, n).astype(np.int64).reshape(shape)
    if dtype == "bool":
        return (rng.random(n) < 0.5).reshape(shape)
    values = rng.standard_normal(n) * rng.choice([1, 3])
    special = rng.random(n) < rng.choice([0.0, 0.2, 0.5])
    return np.where(special, rng.choice(SPECIAL[dtype], n), values).astype(dtype).reshape(shape)


def _shape(rng) -> tuple:
    sizes = [0, 1, 1, 2, 3, 4, 5] if rng.random() < 0.15 else [1, 2, 3, 4, 5]
    return tuple(int(rng.choice(sizes)) for _ in range(int(rng.choice([0, 1, 1, 2, 2, 2, 3]))))


def program(seed: int):
    """(kind, op name, [(array, layout)], extra arguments) of program seed."""
    rng = np.random.default_rng(seed)
    kind = str(rng.choice(["unary", "unary", "binary", "binary", "reduction", "reduction", "reduction"]))
    shape, dtype = _shape(rng), str(rng.choice(DTYPES))
    first = (_array(rng, dtype, shape), str(rng.choice(LAYOUTS)))
    if kind == "binary":
        other = [1 if rng.random() < 0.3 else n for n in shape]
        other = other[1:] if rng.random() < 0.2 and other else other
        other_dtype = dtype if rng.random() < 0.7 else str(rng.choice(DTYPES))
        second = (_array(rng, other_dtype, tuple(other)), "contiguous")
        return kind, str(rng.choice(sorted(BINARY))), [first, second], ()
    if kind == "unary":
        return kind, str(rng.choice(sorted(UNARY))), [first], ()
    dim = int(rng.integers(-len(shape), len(shape))) if shape else 0
    return kind, str(rng.choice(sorted(REDUCTION))), [first], (dim, bool(rng.integers(2)))


def _layout(x, layout: str):
    if layout == "transposed" and x.ndim >= 2:
        return x.transpose(0, -1)
    if layout == "strided" and x.ndim:
        return x[..., ::2]
    if layout == "expanded" and x.ndim and x.shape[0] == 1:
        return x.expand(3, *x.shape[1:])
    if layout == "narrowed" and x.ndim:
        return x.narrow(-1, 0, x.shape[-1])
    return x


def _apply(L, kind: str, name: str, tensors: list, layouts: list, extra: tuple):
    xs = [_layout(x, layout) for x, layout in zip(tensors, layouts)]
    table = {"unary": UNARY, "binary": BINARY, "reduction": REDUCTION}[kind]
    return table[name](L, *xs, *extra)


def _outputs(result) -> list:
    if isinstance(result, (list, tuple)):
        return [y for x in result for y in _outputs(x)]
    return [result]


def _compare(expected, actual, half: bool) -> str | None:
    expected, actual = _outputs(expected), _outputs(actual)
    if len(expected) != len(actual):
        return f"{len(actual)} outputs, torch {len(expected)}"
    for e, a in zip(expected, actual):
        e = (e.float() if e.dtype == torch.bfloat16 else e).detach().numpy()
        a = a.detach().numpy() if isinstance(a, graphc.Tensor) else np.asarray(a)
        if e.shape != a.shape or e.dtype != a.dtype:
            return f"{a.dtype}{list(a.shape)}, torch {e.dtype}{list(e.shape)}"
        if e.dtype.kind in "biu":
            if not np.array_equal(e, a):
                return f"values {a.ravel()[:6]}, torch {e.ravel()[:6]}"
            continue
        tol = 2e-3 if half or e.dtype == np.float16 else 1e-5  # half: a float16 input took part
        close = np.isclose(a.astype(np.float64), e.astype(np.float64), rtol=tol, atol=tol, equal_nan=True)
        if not close.all():
            i = tuple(np.argwhere(~close)[0])
            return f"value at {i} {a[i]!r}, torch {e[i]!r}"
    return None


def _gradients(L, kind, name, arrays, layouts, extra, seed):
    xs = [L.tensor(a).requires_grad_() if a.dtype.kind == "f" and a.dtype != np.float16 else L.tensor(a)
          for a in arrays]
    outs = [o for o in _outputs(_apply(L, kind, name, xs, layouts, extra)) if o.requires_grad]
    if not outs:
        return None
    weights = np.random.default_rng(seed).standard_normal(sum(o.numel() for o in outs)).astype(np.float32)
    total, start = 0, 0
    for o in outs:
        w = L.tensor(weights[start:start + o.numel()].reshape(tuple(o.shape))).to(o.dtype)
        total, start = total + (o * w).sum(), start + o.numel()
    total.backward()
    return [L.zeros(0) if x.grad is None else x.grad for x in xs if x.requires_grad]  # zeros(0): no gradient


def _result(fn):
    try:
        return fn(), None
    except Exception as e:  # noqa: BLE001  the error's class is compared with torch's
        return None, e


def _same_error_class(expected: Exception, actual: Exception) -> bool:
    return any(isinstance(expected, c) and isinstance(actual, c)
               for c in (IndexError, ValueError, TypeError, NotImplementedError, RuntimeError))


def run_program(seed: int, tiers: tuple = TIERS) -> list[str]:
    """The differences from torch of program seed on each tier (empty when it matches)."""
    kind, name, inputs, extra = program(seed)
    arrays, layouts = [a for a, _ in inputs], [layout for _, layout in inputs]
    expected, torch_error = _result(lambda: _apply(torch, kind, name, [torch.tensor(a) for a in arrays], layouts,
                                                   extra))
    where = f"program {seed}: {kind} {name}{extra} on {[(str(a.dtype), a.shape, how) for a, how in inputs]}"
    # torch's layer_norm computes its variance by Welford's updates, which give NaN once a square overflows float32
    overflows = name == "layer_norm" and any(a.dtype.kind == "f" and (np.abs(a) > 1e18).any() for a in arrays)
    half = any(a.dtype == np.float16 for a in arrays)
    problems = []
    for tier in tiers:
        if tier == "eager":
            call = lambda: _apply(graphc, kind, name, [graphc.tensor(a) for a in arrays], layouts, extra)  # noqa: E731
        elif seed % 5 == 0 or SEEDS:
            options = {"backend": "numpy"} if tier == "numpy" else {"backend": "cpu", "mode": "max-autotune"}
            f = graphc.compile(lambda *xs: _apply(graphc, kind, name, list(xs), layouts, extra), **options)
            call = lambda f=f: f(*[graphc.tensor(a) for a in arrays])  # noqa: E731
        else:
            continue
        actual, error = _result(call)
        if error is not None and (torch_error is None or not _same_error_class(torch_error, error)):
            problems.append(f"{where} [{tier}]: {type(error).__name__}: {str(error)[:200]}; torch: {torch_error!r}")
        elif error is None and torch_error is None and not overflows:
            difference = _compare(expected, actual, half)
            if difference:
                problems.append(f"{where} [{tier}]: {difference}")
    finite = all(a.dtype.kind != "f" or np.isfinite(a).all() and np.abs(a).max(initial=0) < 1e4 for a in arrays)
    if torch_error is None and not problems and finite:
        expected, torch_error = _result(lambda: _gradients(torch, kind, name, arrays, layouts, extra, seed))
        if expected is not None:  # None: no output requires grad, or torch has no derivative
            actual, error = _result(lambda: _gradients(graphc, kind, name, arrays, layouts, extra, seed))
            difference = f"{type(error).__name__}: {error}" if error is not None else _compare(expected, actual, half)
            if difference:
                problems.append(f"{where} [gradient]: {difference}")
    return problems


@pytest.mark.parametrize("block", range(4))
def test_random_op_edges_match_torch(block):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        problems = [p for seed in SAMPLE[block::4] for p in run_program(seed)]
    assert not problems, "\n".join(problems)
