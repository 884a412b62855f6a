"""Randomised programs (seeded): compiled equals eager on elementwise ops with broadcasting, views, reductions,
matmul and backward, at three batch sizes (the trace, a replay with another batch size, and a batch of 1); with
special_values, inputs also hold NaN, inf and -inf, which must come out where eager puts them."""
from __future__ import annotations

import numpy as np
import pytest

import graphc

UNARY = ["relu", "tanh", "sigmoid", "neg", "abs", "sin", "cos"]
BINARY = ["add", "sub", "mul", "maximum", "minimum"]
NUM_PROGRAMS = 300


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


def _apply(instruction, values: list):
    kind, operands, extra = instruction
    x = values[operands[0]]
    if kind == "unary":
        return getattr(graphc, extra)(x)
    if kind == "binary":
        return getattr(graphc, extra)(x, values[operands[1]])
    if kind == "scalar":
        return getattr(graphc, extra[0])(x, extra[1])
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


def _program(seed: int):
    """Input shapes (a batch-like first input and a broadcasting parameter), instructions, and whether the
    program runs backward."""
    rng = np.random.default_rng(seed)
    rank = int(rng.integers(1, 4))
    x_shape = tuple(int(n) for n in rng.integers(1, 5, rank))
    w_shape = tuple(1 if rng.random() < 0.3 else n for n in x_shape[1:])
    shapes, instructions = [x_shape, w_shape], []
    for _ in range(int(rng.integers(3, 10))):
        instruction, shape = _instruction(rng, shapes)
        if int(np.prod(shape)) > 4096:
            continue
        instructions.append(instruction)
        shapes.append(shape)
    return x_shape, w_shape, instructions, bool(rng.integers(2))


def _make(instructions, w, backward: bool):
    def program(x):
        values = [x, w]
        for instruction in instructions:
            values.append(_apply(instruction, values))
        out = values[-1]
        if backward:
            ((out * out).sum() + (w * w).sum()).backward()
            return out.detach(), w.grad
        return out
    return program


def _special(rng, a: np.ndarray) -> np.ndarray:
    """a with about one element in six replaced by NaN, inf or -inf."""
    a = a.copy()
    hit = rng.random(a.shape) < 1 / 6
    a[hit] = rng.choice(np.array([np.nan, np.inf, -np.inf], np.float32), int(hit.sum()))
    return a


def _leaves(result):
    return list(result) if isinstance(result, tuple) else [result]


def check_program(seed: int, backend: str = "auto", rtol: float = 1e-5, special_values: bool = False):
    """Program `seed` compiled for backend equals eager (values and w.grad) at three batch sizes, the last 1;
    returns the compiled function. With special_values, x and w hold NaN and infinities (drawn from their own
    random stream, so the program and its finite values stay those of the same seed without them)."""
    x_shape, w_shape, instructions, backward = _program(seed)
    rng = np.random.default_rng(10_000 + seed)
    specials = np.random.default_rng(60_000 + seed)
    poison = (lambda a: _special(specials, a)) if special_values else (lambda a: a)
    w_init = poison(rng.standard_normal(w_shape).astype(np.float32))
    w_eager = graphc.tensor(w_init, requires_grad=backward)
    w_comp = graphc.tensor(w_init, requires_grad=backward)
    eager = _make(instructions, w_eager, backward)
    compiled = graphc.compile(_make(instructions, w_comp, backward), backend=backend)
    for batch in (x_shape[0], x_shape[0] + 2, 1):
        x = poison(rng.standard_normal((batch,) + x_shape[1:]).astype(np.float32))
        w_eager.grad = w_comp.grad = None
        try:
            want = eager(graphc.tensor(x))
        except (RuntimeError, ValueError, TypeError, IndexError):
            break  # the program does not fit this batch size (a view baked a size); eager refuses too
        got = compiled(graphc.tensor(x))
        for g, e in zip(_leaves(got), _leaves(want)):
            assert g.shape == e.shape, f"program {seed}: {instructions}"
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=rtol, atol=1e-5,  # NaN and inf where eager has them
                                       err_msg=f"program {seed}: {instructions}")
    return compiled


@pytest.mark.parametrize("block", range(10))
def test_random_programs_compiled_equal_eager(block):
    per_block = NUM_PROGRAMS // 10
    for seed in range(block * per_block, (block + 1) * per_block):
        check_program(seed)


@pytest.mark.filterwarnings("ignore:(invalid value|overflow|divide by zero) encountered:RuntimeWarning")  # numpy's
@pytest.mark.parametrize("block", range(4))
def test_random_programs_with_nan_and_inf(block):
    for seed in range(block, NUM_PROGRAMS, 4 * 3):  # 100 of the programs, fed NaN and inf
        check_program(seed, special_values=True)
