"""Randomised programs (seeded): compiled equals eager, and both equal torch, on elementwise ops with broadcasting,
views, reductions, matmul and backward, at three batch sizes (the trace, a replay with another batch size, and a
batch of 1); with special_values, inputs also hold NaN, inf and -inf, which must come out where eager puts them.

Each feature of the generator is a switch (FEATURES; `check_program(seed, features=...)`), drawn from its own random
stream, so adding one leaves the programs of the others as they were:

- "in_place_chains": a clone updated by a chain of in-place ops (add_, sub_, mul_, div_ by numbers or tensors,
  then relu_ or clamp_);
- "views_in_place": the same chain written through a view of the clone (views feeding in-place ops), or written to
  the clone while a view made before is read after (in-place ops feeding views);
- "aliasing_args": the program also takes a view of its input (x[:], a column, a transpose, a strided slice) and
  updates it in place first; x is read afterwards and compared after the call;
- backward through all of it: about half the programs train w (the gradient is compared).

Sweep: `GRAPHC_RANDOM_SWEEP=1 python -m pytest -q tests/test_random_programs.py tests/test_codegen_random.py` runs
2000 programs on the numpy backend and 200 on `interpret` (a few minutes per 1000 on numpy)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import graphc

UNARY = ["relu", "tanh", "sigmoid", "neg", "abs", "sin", "cos"]
BINARY = ["add", "sub", "mul", "maximum", "minimum"]
FEATURES = frozenset({"in_place_chains", "views_in_place", "aliasing_args"})
SWEEP = os.environ.get("GRAPHC_RANDOM_SWEEP", "0") not in ("", "0")
NUM_PROGRAMS = 2000 if SWEEP else 300
NUM_SCALAR_PROGRAMS = 2000 if SWEEP else 60  # programs that also take a Python float argument
UPDATES = ["add_", "sub_", "mul_", "div_"]  # in-place ops whose backward saves nothing of the tensor they update
LAST_UPDATES = ["relu_", "clamp_min", "clamp_max"]  # these save it: only last in a chain, as torch requires
WRITE_VIEWS = ["transpose", "strided", "select", "flatten", "unsqueeze", "permute"]
ARGUMENT_VIEWS = ["whole", "strided", "select", "transpose"]


def _instruction(rng, shapes: list[tuple]) -> tuple:
    """One random instruction over the values so far: (name, operand indices, extra) and its result shape."""
    i = int(rng.integers(len(shapes)))
    shape = shapes[i]
    kind = rng.choice(["unary", "binary", "binary", "scalar", "reduce", "view", "matmul", "exp"])
    if kind == "binary":
        j = int(rng.integers(len(shapes)))
        try:
            return ("binary", (i, j), str(rng.choice(BINARY))), tuple(np.broadcast_shapes(shape, shapes[j]))
        except ValueError:
            kind = "scalar"
    if kind == "reduce" and shape:
        dim, keepdim = int(rng.integers(len(shape))), bool(rng.integers(2))
        name = str(rng.choice(["sum", "mean", "amax"]))
        out = tuple(1 if d == dim else n for d, n in enumerate(shape)) if keepdim else shape[:dim] + shape[dim + 1:]
        return ("reduce", (i,), (name, dim, keepdim)), out
    if kind == "view" and shape:
        choice = str(rng.choice(["transpose", "unsqueeze", "flatten", "expand", "permute"]))
        if choice == "transpose" and len(shape) >= 2:
            return ("view", (i,), ("transpose",)), shape[:-2] + (shape[-1], shape[-2])
        if choice == "expand" and 1 in shape[1:]:
            d = shape.index(1, 1)
            return ("view", (i,), ("expand", d)), shape[:d] + (3,) + shape[d + 1:]
        if choice == "permute":
            return ("view", (i,), ("permute",)), shape[::-1]
        if choice == "flatten" and len(shape) >= 2:
            return ("view", (i,), ("flatten",)), shape[:-2] + (shape[-2] * shape[-1],)
        return ("view", (i,), ("unsqueeze",)), shape + (1,)
    if kind == "matmul" and len(shape) >= 2:
        return ("matmul", (i,), None), shape[:-1] + (shape[-2],)
    if kind == "exp":
        return ("exp", (i,), None), shape
    if kind == "scalar":
        return ("scalar", (i,), (str(rng.choice(BINARY)), float(np.round(rng.uniform(-2, 2), 2)))), shape
    return ("unary", (i,), str(rng.choice(UNARY))), shape


def _view_shape(shape: tuple, view: str) -> tuple | None:
    """The shape of `view` of a tensor of this shape, or None where the view does not apply."""
    if view in ("transpose", "permute") and len(shape) >= 2:
        return shape[::-1] if view == "permute" else shape[:-2] + (shape[-1], shape[-2])
    if view == "strided" and shape:
        return shape[:-1] + ((shape[-1] + 1) // 2,)
    if view == "select" and shape:
        return shape[:-1]
    if view == "flatten" and shape:
        return (int(np.prod(shape)),)
    if view == "unsqueeze":
        return (1,) + shape
    if view == "whole":
        return shape
    if view == "expand" and shape:
        return (2,) + shape
    return None


def _view(x, view: str):
    """x viewed (sharing its memory) as _view_shape says."""
    if view == "transpose":
        return x.transpose(-2, -1)
    if view == "permute":
        return x.permute(*range(x.ndim - 1, -1, -1))
    if view == "strided":
        return x[..., ::2]
    if view == "select":
        return x[..., 0]
    if view == "flatten":
        return x.flatten()
    if view == "unsqueeze":
        return x.unsqueeze(0)
    if view == "expand":
        return x.unsqueeze(0).expand(2, *x.shape)
    return x[:]


def _chain(rng, target: tuple, shapes: list[tuple], tensors: bool) -> tuple:
    """A chain of in-place updates of a tensor of shape target: (op, operand) pairs, the operand a number or (with
    tensors) the index of a value that broadcasts to target."""
    chain = []
    for _ in range(int(rng.integers(1, 4))):
        op = str(rng.choice(UPDATES))
        fits = [j for j, s in enumerate(shapes) if tensors and op in ("add_", "sub_") and
                len(s) <= len(target) and _broadcasts_to(s, target)]
        if fits and rng.random() < 0.5:
            chain.append((op, int(rng.choice(fits))))
        else:
            chain.append((op, float(np.round(rng.uniform(0.5, 2), 2))))
    if rng.random() < 0.5:
        chain.append((str(rng.choice(LAST_UPDATES)), float(np.round(rng.uniform(-0.5, 0.5), 2))))
    return tuple(chain)


def _broadcasts_to(shape: tuple, target: tuple) -> bool:
    try:
        return tuple(np.broadcast_shapes(shape, target)) == target
    except ValueError:
        return False


def _in_place(rng, features: frozenset, shapes: list[tuple]) -> tuple | None:
    """A clone of a value updated in place, directly or through a view; None if no feature asks for one."""
    i = int(rng.integers(len(shapes)))
    shape = shapes[i]
    views = [v for v in WRITE_VIEWS if _view_shape(shape, v) is not None] if "views_in_place" in features else []
    if views and ("in_place_chains" not in features or rng.random() < 0.7):
        view = str(rng.choice(views))
        if rng.random() < 0.5:  # a view feeding in-place ops: write through it, read the clone
            return ("in_place", (i,), (view, "view", _chain(rng, _view_shape(shape, view), shapes, True), "base")), \
                shape
        if rng.random() < 0.3 and shape:
            view = "expand"  # read only: its elements share memory
        return ("in_place", (i,), (view, "base", _chain(rng, shape, shapes, True), "view")), _view_shape(shape, view)
    if "in_place_chains" in features:
        return ("in_place", (i,), (None, "base", _chain(rng, shape, shapes, True), "base")), shape
    return None


def _update(L, target, op: str, operand, values: list):
    if op in ("clamp_min", "clamp_max"):
        return target.clamp_(**{op[-3:]: operand})
    if op == "relu_":
        return target.relu_()
    return getattr(target, op)(values[operand] if type(operand) is int else operand)


def _apply(instruction, values: list, L, k: float | None = None):
    """One instruction on graphc or torch (L) values; with a float argument k, constant scalars read it (in tensor
    math, in Python arithmetic and in an `if`)."""
    kind, operands, extra = instruction
    x = values[operands[0]]
    if kind == "in_place":
        view, write, chain, read = extra
        base = x.clone()
        seen = _view(base, view) if view is not None else base
        target = seen if write == "view" else base
        for op, operand in chain:
            _update(L, target, op, operand, values)
        return base if read == "base" else seen
    if kind == "unary":
        return getattr(L, extra)(x)
    if kind == "binary":
        return getattr(L, extra)(x, values[operands[1]])
    if kind == "scalar":
        name, number = extra
        if k is not None:
            number = number * (1 + k) if k > 0 else number - k
        return getattr(L, name)(x, L.tensor(number) if L is torch and name in ("maximum", "minimum") else number)
    if kind == "exp":
        return x.tanh().exp()
    if kind == "reduce":
        name, dim, keepdim = extra
        return getattr(x, name)(dim=dim, keepdim=keepdim)
    if kind == "matmul":
        return x @ x.transpose(-1, -2) * 0.1
    view = extra[0]
    if view == "transpose":
        return x.transpose(-2, -1)
    if view == "expand":
        return x.expand(*[3 if d == extra[1] else -1 for d in range(x.ndim)])
    if view == "permute":
        return x.permute(*range(x.ndim - 1, -1, -1))
    if view == "flatten":
        return x.flatten(-2)
    return x.unsqueeze(-1)


@dataclass
class Program:
    x_shape: tuple
    w_shape: tuple
    instructions: list
    backward: bool
    argument: tuple | None  # (view of x passed beside x, chain of in-place updates of it), with aliasing_args


def _program(seed: int, features: frozenset = FEATURES) -> Program:
    """Input shapes (a batch-like first input and a broadcasting parameter), instructions, whether the program runs
    backward, and (aliasing_args) the view of x it also takes. Each feature draws from its own stream."""
    rng = np.random.default_rng(seed)
    streams = {name: np.random.default_rng([seed, k]) for k, name in enumerate(sorted(FEATURES))}
    rank = int(rng.integers(1, 4))
    x_shape = tuple(int(n) for n in rng.integers(1, 5, rank))
    w_shape = tuple(1 if rng.random() < 0.3 else n for n in x_shape[1:])
    shapes, instructions = [x_shape, w_shape], []
    argument = None
    if "aliasing_args" in features and streams["aliasing_args"].random() < 0.4:
        a = streams["aliasing_args"]
        view = str(a.choice([v for v in ARGUMENT_VIEWS if _view_shape(x_shape, v) is not None]))
        argument = (view, _chain(a, _view_shape(x_shape, view), [], False))
    in_place = streams["views_in_place"] if "views_in_place" in features else streams["in_place_chains"]
    for _ in range(int(rng.integers(3, 10))):
        instruction, shape = _instruction(rng, shapes)
        if features & {"in_place_chains", "views_in_place"} and in_place.random() < 0.3:
            instruction, shape = _in_place(in_place, features, shapes) or (instruction, shape)
        if int(np.prod(shape)) > 4096:
            continue
        instructions.append(instruction)
        shapes.append(shape)
    return Program(x_shape, w_shape, instructions, bool(rng.integers(2)), argument)


def _make(program: Program, w, L, scalar_argument: bool = False):
    def run(x, *arguments):
        k, argument = (arguments[0], arguments[1:]) if scalar_argument else (None, arguments)
        if argument:  # the view of x passed beside it, updated first (before anything saves x for backward)
            for op, operand in program.argument[1]:
                _update(L, argument[0], op, operand, [])
        values = [x, w]
        for instruction in program.instructions:
            values.append(_apply(instruction, values, L, k))
        out = values[-1]
        if program.backward:
            ((out * out).sum() + (w * w).sum()).backward()
            return out.detach(), w.grad
        return out
    return run


def _special(rng, a: np.ndarray) -> np.ndarray:
    """a with about one element in six replaced by NaN, inf or -inf."""
    a = a.copy()
    hit = rng.random(a.shape) < 1 / 6
    a[hit] = rng.choice(np.array([np.nan, np.inf, -np.inf], np.float32), int(hit.sum()))
    return a


def _leaves(result):
    return list(result) if isinstance(result, tuple) else [result]


def _host(t) -> np.ndarray:
    return t.detach().numpy() if isinstance(t, torch.Tensor) else t.detach().numpy()


def check_program(seed: int, backend: str = "auto", rtol: float = 1e-5, features: frozenset = FEATURES,
                  special_values: bool = False, scalar_argument: bool = False, mode: str = "default"):
    """Program `seed` compiled for backend equals eager (values, w.grad, and x after it), and eager equals torch, at
    three batch sizes, the last 1; returns the compiled function. With special_values, x and w hold NaN and
    infinities (drawn from their own random stream, so the program and its finite values stay those of the same
    seed without them). With scalar_argument, the program also takes a Python float that its constant scalars read
    (see _apply); it is called twice at each batch size with a new value, and the second call must replay. mode:
    graphc.compile's."""
    program = _program(seed, features)
    rng = np.random.default_rng(10_000 + seed)
    specials = np.random.default_rng(60_000 + seed)
    floats = np.random.default_rng(70_000 + seed)
    poison = (lambda a: _special(specials, a)) if special_values else (lambda a: a)
    w_init = poison(rng.standard_normal(program.w_shape).astype(np.float32))
    ws = {name: L.tensor(w_init, requires_grad=program.backward) for name, L in
          (("eager", graphc), ("compiled", graphc), ("torch", torch))}
    runs = {"eager": _make(program, ws["eager"], graphc, scalar_argument),
            "torch": _make(program, ws["torch"], torch, scalar_argument),
            "compiled": graphc.compile(_make(program, ws["compiled"], graphc, scalar_argument), backend=backend,
                                       mode=mode)}
    what = f"program {seed}: {program}"
    for batch in (program.x_shape[0], program.x_shape[0] + 2, 1):
        x = poison(rng.standard_normal((batch,) + program.x_shape[1:]).astype(np.float32))
        sign = 1.0 if floats.random() < 0.5 else -1.0  # both branches of the program's `if k > 0`, across batches
        for call, k in enumerate([sign * float(v) for v in floats.uniform(0.1, 2.0, 2)] if scalar_argument else [None]):
            traces = runs["compiled"].num_traces
            results = {}
            for name, run in runs.items():
                L = torch if name == "torch" else graphc
                ws[name].grad = None
                xt = L.tensor(x)
                args = (xt, *([] if k is None else [k]), *([_view(xt, program.argument[0])] if program.argument
                                                             else []))
                try:
                    results[name] = [_host(t) for t in _leaves(run(*args)) + [xt]]
                except (RuntimeError, ValueError, TypeError, IndexError):
                    if name == "eager":
                        return runs["compiled"]  # the program does not fit this batch size (a view baked a size)
                    raise
            if call == 1 and runs["compiled"]._entries:  # (a function that never replays has no entry)
                assert runs["compiled"].num_traces == traces, f"a new float value traced again, {what}"
            for g, e, t in zip(results["compiled"], results["eager"], results["torch"]):
                assert g.shape == e.shape == t.shape, what
                np.testing.assert_allclose(g, e, rtol=rtol, atol=1e-5, err_msg=f"compiled != eager, {what}")
                if not special_values:  # NaN against inf in some gradients: compiled is held to eager there
                    np.testing.assert_allclose(e, t, rtol=1e-4, atol=1e-4, err_msg=f"eager != torch, {what}")
    return runs["compiled"]


@pytest.mark.parametrize("block", range(10))
def test_random_programs_compiled_equal_eager(block):
    per_block = NUM_PROGRAMS // 10
    for seed in range(block * per_block, (block + 1) * per_block):
        check_program(seed)


@pytest.mark.filterwarnings("ignore:(invalid value|overflow|divide by zero) encountered:RuntimeWarning")  # numpy's
@pytest.mark.parametrize("block", range(4))
def test_random_programs_with_nan_and_inf(block):
    for seed in range(block, 300, 4 * 3):  # 100 of the programs, fed NaN and inf
        check_program(seed, special_values=True)


@pytest.mark.parametrize("block", range(2))
def test_random_programs_with_a_float_argument(block):
    for seed in range(block, NUM_SCALAR_PROGRAMS, 2):
        check_program(seed, scalar_argument=True)
