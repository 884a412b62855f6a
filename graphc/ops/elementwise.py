"""Elementwise ops: arithmetic, comparisons, unary math, where/clamp/masked_fill, casts.
Each op's lowering is an expression over its operands {0}, {1}, ... and attrs in the renderer-neutral language
that graphc.dispatch.Lowering defines."""

from __future__ import annotations

import builtins
import math

import ml_dtypes
import numpy as np
import scipy.special

from .. import dtypes
from ..amp.autocast_mode import FP32_CUDA
from ..dispatch import CROSS, ELEMENTWISE, OUT, Lowering, op
from ..errors import op_error
from ..tensor import Tensor
from . import meta
from .meta import elementwise, floating, predicate, same


def unbroadcast(grad: Tensor, x) -> Tensor | None:
    """The gradient for operand x of a broadcasting op: grad summed back to x's shape (None for scalars)."""
    if not isinstance(x, Tensor):
        return None
    if x._data is not None and grad._data is not None and x._data.shape == grad._data.shape:
        return grad
    from .reduction import sum_to

    return sum_to(grad, x)


def _zero_grad(c, g):
    """A step function's gradient (floor, sign, ...): zeros, as torch's; g * 0 would be NaN where g is inf or NaN."""
    from .creation import zeros_like
    return (zeros_like(g),)


def _binary(name, fn, backward, expr, infer=elementwise, saves=(0, 1), autocast=None, onnx=None, when=None,
            parse=None, operands=("input", "other")):
    return op(name, ELEMENTWISE, infer, backward=backward, lowering=Lowering(expr, when=when), saves=saves,
              autocast=autocast, onnx=onnx, parse=parse, operands=operands)(fn)


def _alpha_parse(input, other, *, alpha=1):  # noqa: A002  torch's names
    """torch.add/sub's alpha=: other scaled before the op."""
    return (input, other if alpha == 1 else mul(other, alpha)), {}


def _floating(dtype, attrs) -> bool:
    """Integer results of division-like ops run on numpy: C traps on an integer division by zero (SIGFPE), and
    pow/floor through double lose int64 precision and overflow undefined."""
    return dtype.is_floating_point


def _unary(name, fn, backward, expr, infer=floating, saves=(0,), autocast=None, onnx=None):
    return op(name, ELEMENTWISE, infer, backward=backward, lowering=Lowering(expr), saves=saves, autocast=autocast,
              onnx=onnx)(fn)


def _no_bool(name: str, infer):
    """infer refusing a bool tensor operand, as torch's subtraction and negation do (RuntimeError, where numpy's is
    a TypeError)."""
    def refusing(*xs):
        for x in xs:
            if getattr(x, "dtype", None) is dtypes.bool_:
                raise ValueError(f"{name}, the `-` operator, with a bool tensor is not supported. If you are trying "
                                 f"to invert a mask, use the `~` or `logical_not()` operator instead.")
        return infer(*xs)
    return refusing


add = _binary("add", np.add, lambda c, g: (unbroadcast(g, c.inputs[0]), unbroadcast(g, c.inputs[1])), "{0} + {1}",
              saves=(), onnx="Add", parse=_alpha_parse)
sub = _binary("sub", np.subtract, lambda c, g: (unbroadcast(g, c.inputs[0]), unbroadcast(-g, c.inputs[1])), "{0} - {1}",
              infer=_no_bool("Subtraction", elementwise), saves=(), onnx="Sub", parse=_alpha_parse)
mul = _binary(
    "mul",
    np.multiply,
    lambda c, g: (unbroadcast(g * c.inputs[1], c.inputs[0]), unbroadcast(g * c.inputs[0], c.inputs[1])),
    "{0} * {1}",
    saves=(CROSS,),
    onnx="Mul",
)
def _check_integer_divisor(name: str, b) -> None:
    """torch refuses an integer division by zero (numpy would return 0 with a warning). For integer results only."""
    if np.any(np.asarray(b) == 0):
        raise RuntimeError(f"{name}: ZeroDivisionError (an integer divisor is 0)")


def _integer_safe(name: str, fn):
    def forward(a, b):
        if np.result_type(a, b).kind in "biu":
            _check_integer_divisor(name, b)
        return fn(a, b)

    forward.__doc__ = fn.__doc__
    return forward


def _div_parse(input, other, *, rounding_mode: str | None = None):  # noqa: A002  torch's names
    if rounding_mode not in (None, "trunc", "floor"):
        raise ValueError(f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
                         f"'{rounding_mode}'")
    return (input, other), ({"rounding_mode": rounding_mode} if rounding_mode else {})


def _div_infer(a, b, rounding_mode=None):
    return floating(a, b) if rounding_mode is None else elementwise(a, b)


def _div_forward(a, b, rounding_mode=None):
    """True division; torch's rounding modes: "floor" is floor division, "trunc" rounds toward zero (integers
    exactly, without a float round trip, and an integer divisor of 0 refused as torch does)."""
    if rounding_mode is None:
        return np.true_divide(a, b)
    integer = np.result_type(a, b).kind in "biu"
    if integer:
        _check_integer_divisor("div", b)
    if rounding_mode == "floor":
        return np.floor_divide(a, b)
    return np.subtract(a, np.fmod(a, b)) // b if integer else np.trunc(np.true_divide(a, b))


def _div_backward(c, g):
    a, b = c.inputs
    if c.attrs.get("rounding_mode") is not None:  # a step function: torch's gradient is zero
        zero = _zero_grad(c, g)[0]
        return unbroadcast(zero, a), unbroadcast(zero, b)
    return unbroadcast(g / b, a), unbroadcast(-g * a / (b * b), b)


def _div_onnx(g, n) -> str:
    if n.attrs.get("rounding_mode") is not None:
        raise NotImplementedError(f"graphc.onnx.export: div with rounding_mode={n.attrs['rounding_mode']!r} (at "
                                  f"{n.where or 'an unknown line'}) has no ONNX mapping")
    return g.op("Div", *g.promoted(n, n.inputs))


div = op("div", ELEMENTWISE, _div_infer, parse=_div_parse, backward=_div_backward, saves=(CROSS, 1),
         lowering=Lowering("{0} / {1}", when=lambda dtype, attrs: "rounding_mode" not in attrs),
         onnx=_div_onnx, ufunc=np.true_divide)(_div_forward)


def _pow_backward(c, g):
    """torch's rules at the edges: d/da a**0 is 0 (not 0 * a**-1) and d/db 0**b is 0 for b >= 0 (not 0 * log 0);
    the masked values are replaced before the multiply, so no NaN is made even in branches where() drops."""
    a, b = c.inputs
    ga = gb = None
    if isinstance(a, Tensor):
        if isinstance(b, Tensor):
            ga = g * b * a ** (where(eq(b, 0), 1, b) - 1)
        else:
            ga = g * b * a ** (b - 1) if b != 0 else _zero_grad(c, g)[0]
        ga = unbroadcast(ga, a)
    if isinstance(b, Tensor):
        if isinstance(a, Tensor):
            at_zero = logical_and(eq(a, 0), ge(b, 0))
            gb = where(at_zero, 0.0, g * a ** b * log(where(at_zero, 1, a)))
        else:
            gb = g * a ** b * log(a)
        gb = unbroadcast(gb, b)
    return ga, gb


# an exponent of 0.5 is sqrt, as in torch and numpy (sqrt(-inf) is NaN and sqrt(-0.) is -0., where pow gives inf, 0.)
def _pow_forward(a, b):
    """np.power, with torch's integer powers: a tensor of negative integer exponents gives 1 for a base of 1, +-1 for
    -1 and 0 for other bases (truncated), where numpy raises; a negative Python int exponent is refused, as torch."""
    if type(b) is not np.ndarray or np.result_type(a, b).kind not in "iu" or not (b < 0).any():
        return np.power(a, b)
    whole = np.power(a, np.maximum(b, 0))
    return np.where(b >= 0, whole, np.where(a == 1, 1, np.where(a == -1, 1 - 2 * (b % 2), 0))).astype(whole.dtype)


pow = _binary("pow", _pow_forward, _pow_backward, "where({1} == 0.5, sqrt({0}), pow({0}, {1}))", autocast=FP32_CUDA,
              onnx="Pow", when=_floating, operands=("input", "exponent"))


def _minmax_backward(loses):
    """torch's: the gradient goes to the operand picked, halved at a tie, and is masked (0 even where it is inf or
    NaN) where the operand loses; where one is NaN neither loses, so both get it."""
    def backward(c, g):
        a, b = c.inputs
        split = where(eq(a, b), g * 0.5, g)
        return tuple(unbroadcast(where(loses(x, y), 0.0, split), x) if isinstance(x, Tensor) else None
                     for x, y in ((a, b), (b, a)))

    return backward


# NaN in, NaN out, as torch and numpy: Triton's maximum/minimum drop NaN unless told (max.NaN.f32 in PTX)
maximum = _binary("maximum", np.maximum, _minmax_backward(lambda a, b: lt(a, b)), "maximum({0}, {1})", onnx="Max")
minimum = _binary("minimum", np.minimum, _minmax_backward(lambda a, b: gt(a, b)), "minimum({0}, {1})", onnx="Min")
def _remainder_forward(a, b):
    """torch's remainder: for floats fmod moved into the divisor's sign, as the lowering (numpy's remainder gives
    a zero result the divisor's sign, torch fmod's: -3.4e38 % 1.0 is -0.0)."""
    if np.result_type(a, b).kind in "biu":
        _check_integer_divisor("remainder", b)
        return np.remainder(a, b)
    mod = np.fmod(a, b)
    return np.where((mod != 0) & ((mod < 0) != (np.asarray(b) < 0)), mod + b, mod)


remainder = _binary(
    "remainder",
    _remainder_forward,
    # torch's floor division (NaN for inf // 2, -1 for 7 // -inf), not floor of the quotient
    lambda c, g: (unbroadcast(g, c.inputs[0]), unbroadcast(-g * div(*c.inputs, rounding_mode="floor"), c.inputs[1])),
    # fmod (Triton's %, exact) moved into the divisor's sign, as torch computes it: a - floor(a / b) * b is off by b
    # where a / b rounds up to a whole number
    "where((({0} % {1}) != 0) & ((({0} % {1}) < 0) != ({1} < 0)), ({0} % {1}) + {1}, {0} % {1})",
    when=_floating,
)
fmod = _binary(
    "fmod",
    _integer_safe("fmod", np.fmod),
    lambda c, g: (unbroadcast(g, c.inputs[0]), unbroadcast(-g * trunc(div(*c.inputs)), c.inputs[1])),
    "{0} % {1}",
    when=_floating,
)


def _logaddexp_backward(c, g):
    a, b = c.inputs
    return unbroadcast(g * sigmoid(a - b), a), unbroadcast(g * sigmoid(b - a), b)


logaddexp = _binary(
    "logaddexp",
    np.logaddexp,
    _logaddexp_backward,
    "where({0} == {1}, {0} + 0.6931471805599453, "  # equal (also both inf) must not make inf - inf
    "maximum({0}, {1}) + log1p(exp(-abs({0} - {1}))))",
    infer=floating,
)
# no lowering: torch's floor division of floats is fmod-based (1.0 // 0.1 is 9, floor(1.0 / 0.1) is 10), as numpy's
floor_divide = _binary("floor_divide", _integer_safe("floor_divide", np.floor_divide), None, None)

eq = _binary("eq", np.equal, None, "{0} == {1}", infer=predicate,
             onnx="Equal")
ne = _binary("ne", np.not_equal, None, "{0} != {1}", infer=predicate)
lt = _binary("lt", np.less, None, "{0} < {1}", infer=predicate,
             onnx="Less")
le = _binary("le", np.less_equal, None, "{0} <= {1}", infer=predicate,
             onnx="LessOrEqual")
gt = _binary("gt", np.greater, None, "{0} > {1}", infer=predicate,
             onnx="Greater")
ge = _binary("ge", np.greater_equal, None, "{0} >= {1}", infer=predicate,
             onnx="GreaterOrEqual")
logical_and = _binary("logical_and", np.logical_and, None, "({0} != 0) & ({1} != 0)", infer=predicate)
logical_or = _binary("logical_or", np.logical_or, None, "({0} != 0) | ({1} != 0)", infer=predicate)
logical_xor = _binary("logical_xor", np.logical_xor, None, "({0} != 0) != ({1} != 0)", infer=predicate)
logical_not = _unary("logical_not", np.logical_not, None, "{0} == 0", infer=predicate)
isnan = _unary("isnan", np.isnan, None, "{0} != {0}", infer=predicate)
isinf = _unary("isinf", np.isinf, None, '(({0} == inf) | ({0} == -inf))', infer=predicate)
isfinite = _unary("isfinite", np.isfinite, None, '(({0} == {0}) & (abs({0}) != inf))', infer=predicate)

neg = _unary("neg", np.negative, lambda c, g: (-g,), "-{0}", infer=_no_bool("Negation", same), saves=(),
             onnx="Neg")
abs = _unary("abs", np.abs, lambda c, g: (g * sign(c.inputs[0]),), "abs({0})", infer=same, onnx="Abs")
sign = _unary("sign", lambda x: np.sign(np.where(x != x, 0, x)),  # torch's sign(NaN) is 0 (numpy's is NaN)
              _zero_grad, "sign({0})", infer=same, saves=())
exp = _unary("exp", np.exp, lambda c, g: (g * c.out,), "exp({0})", saves=(OUT,), autocast=FP32_CUDA, onnx="Exp")
log = _unary("log", np.log, lambda c, g: (g / c.inputs[0],), "log({0})", autocast=FP32_CUDA, onnx="Log")
log1p = _unary("log1p", np.log1p, lambda c, g: (g / (c.inputs[0] + 1),), "log1p({0})")
expm1 = _unary("expm1", np.expm1, lambda c, g: (g * (c.out + 1),), "expm1({0})", saves=(OUT,))
sqrt = _unary("sqrt", np.sqrt, lambda c, g: (g / (c.out * 2),), "sqrt({0})", saves=(OUT,), onnx="Sqrt")
rsqrt = _unary("rsqrt", lambda x: 1 / np.sqrt(x), lambda c, g: (g * c.out**3 * -0.5,), "rsqrt({0})", saves=(OUT,),
               onnx=lambda g, n: g.op("Reciprocal", g.op("Sqrt", g.name(n.inputs[0]))))
reciprocal = _unary("reciprocal", lambda x: 1 / x, lambda c, g: (-g * c.out * c.out,), "1.0 / {0}", saves=(OUT,),
                    onnx="Reciprocal")
sin = _unary("sin", np.sin, lambda c, g: (g * cos(c.inputs[0]),), "sin({0})", onnx="Sin")
cos = _unary("cos", np.cos, lambda c, g: (-g * sin(c.inputs[0]),), "cos({0})", onnx="Cos")
tanh = _unary("tanh", np.tanh, lambda c, g: (g * (1 - c.out * c.out),), "tanh({0})", saves=(OUT,), onnx="Tanh")
sigmoid = _unary("sigmoid", lambda x: 0.5 * (np.tanh(0.5 * x) + 1), lambda c, g: (g * c.out * (1 - c.out),),
                 "1 / (1 + exp(-{0}))", saves=(OUT,), onnx="Sigmoid")
relu = _unary("relu", lambda x: np.maximum(x, 0), lambda c, g: (where(le(c.out, 0), 0.0, g),), "maximum({0}, 0)",
              infer=same, saves=(OUT,), onnx="Relu")
floor = _unary("floor", np.floor, _zero_grad, "floor({0})", infer=same, saves=(), onnx="Floor")
ceil = _unary("ceil", np.ceil, _zero_grad, "ceil({0})", infer=same, saves=(), onnx="Ceil")
trunc = _unary("trunc", np.trunc, _zero_grad,
               "where({0} >= 0, floor({0}), ceil({0}))", infer=same, saves=())
fix = trunc


def _round_parse(x, decimals: int = 0):
    return (x,), {"decimals": int(decimals), "scale": 10.0 ** int(decimals)}


def _round_infer(x, decimals, scale):
    if not x.dtype.is_floating_point and decimals:
        raise TypeError(f"round with decimals is not implemented for {x.dtype.name} inputs")
    return tuple(x.shape), x.dtype


# half to even, as torch and numpy round (nearbyint): compared through the fraction y - floor(y), which is exact,
# since floor(y + 0.5) rounds y + 0.5 first (0.49999997 + 0.5 is 1.0 in float32); a tie goes to the even neighbour,
# and a zero result keeps y's sign (y * 0)
_ROUNDED = ("where({y} - floor({y}) > 0.5, floor({y}) + 1, where({y} - floor({y}) < 0.5, floor({y}), "
            "2 * floor({y} * 0.5 + 0.5)))")
_SCALED = "({0} * {scale})"
_HALF_EVEN = f"where({_ROUNDED} == 0, {{y}} * 0, {_ROUNDED}) / {{{{scale}}}}".format(y=_SCALED)
round = op("round", ELEMENTWISE, _round_infer, parse=_round_parse, backward=_zero_grad, saves=(),
           lowering=Lowering(_HALF_EVEN, when=_floating))(lambda x, decimals, scale: np.round(x, decimals))


def _nan_to_num_parse(x, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None):
    # an integer or bool x has no NaN or inf: its own extremes stand in for the defaults, which it never uses
    info = ml_dtypes.finfo(x.dtype.np) if x.dtype.is_floating_point else np.iinfo(np.int64)
    return (x,), {"nan": float(nan), "posinf": float(info.max if posinf is None else posinf),
                  "neginf": float(info.min if neginf is None else neginf)}


nan_to_num = op(
    "nan_to_num",
    ELEMENTWISE,
    lambda x, nan, posinf, neginf: (tuple(x.shape), x.dtype),
    parse=_nan_to_num_parse,
    backward=lambda c, g: (g * isfinite(c.inputs[0]),),
    saves=(0,),
    lowering=Lowering("where({0} != {0}, {nan}, where({0} == inf, {posinf}, where({0} == -inf, {neginf}, {0})))"),
)(lambda x, nan, posinf, neginf: np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf))
erf = _unary(
    "erf",
    scipy.special.erf,
    lambda c, g: (g * exp(-c.inputs[0] * c.inputs[0]) * (2 / math.sqrt(math.pi)),),
    "erf({0})",
    onnx="Erf",
)


# 1 / sqrt(2), one constant for gelu's forward, lowering and backward: a fused kernel computing gelu and its gradient
# (a training step's epilogue) then calls erf on the same value twice, and the C compiler computes it once
SQRT_HALF = math.sqrt(0.5)


def _gelu_forward(x):
    """x * Phi(x) = x * (1 + erf(x / sqrt 2)) / 2, in place on one temporary (five passes, one allocation); halved
    before the multiply by x, so that x near the float max does not overflow to inf."""
    out = np.multiply(x, SQRT_HALF, out=np.empty_like(x))  # an array also for a 0-d x (not a numpy scalar)
    scipy.special.erf(out, out=out)
    out += 1
    out *= 0.5
    out *= x
    return out


def _gelu_backward(c, g):
    """d/dx x Phi(x) = Phi(x) + x phi(x), phi the standard normal density (torch's gelu backward)."""
    x = c.inputs[0]
    cdf = (erf(x * SQRT_HALF) + 1) * 0.5
    return (g * (cdf + x * exp(x * x * -0.5) * (1 / math.sqrt(2 * math.pi))),)


def _gelu_onnx(g, n) -> str:
    """x * (erf(x / sqrt 2) + 1) / 2 in ONNX primitives (opset 18 has no Gelu: it came in opset 20)."""
    x = g.name(n.inputs[0])
    cdf = g.op("Add", g.op("Erf", g.op("Mul", x, g.name(SQRT_HALF, n))), g.name(1.0, n))
    return g.op("Mul", g.op("Mul", x, cdf), g.name(0.5, n))


def _gelu_infer(x):
    """Floating inputs only: torch's GeluKernelImpl refuses integers and bool (NotImplementedError)."""
    if not x.dtype.is_floating_point:
        raise op_error("gelu", f"not implemented for {x.dtype.name} (GeluKernelImpl takes floating point inputs)",
                       (), NotImplementedError)
    return same(x)


gelu = op("gelu", ELEMENTWISE, _gelu_infer, backward=_gelu_backward, saves=(0,),
          lowering=Lowering(f"{{0}} * ((erf({{0}} * {SQRT_HALF!r}) + 1) * 0.5)"), onnx=_gelu_onnx)(_gelu_forward)


def _where_infer(cond, a, b):
    if not isinstance(cond, Tensor) and not hasattr(cond, "shape"):
        raise TypeError("where: condition must be a tensor")
    if cond.dtype is not dtypes.bool_:
        raise ValueError(f"where expected condition to be a boolean tensor, got {cond.dtype.name}")
    return meta.broadcast(meta.shape_of(cond), meta.shape_of(a), meta.shape_of(b)), dtypes.result_type(a, b)


def _where_forward(condition, input, other):
    """np.where, computed as a select of bits where the operands share a 4- or 8-byte dtype (a Python number taking
    the array's, as in np.where) and the condition is large: numpy's where branches on every element, and a random
    mask (a ReLU's backward) mispredicts half of them: on 1M float32 elements 4.7-8.8 ms against 1.5 ms. The bits
    are the selected operand's, NaN payloads and signed zeros included."""
    like = input if type(input) is np.ndarray else other
    if (getattr(condition, "dtype", None) != np.bool_ or condition.size < 65536 or type(like) is not np.ndarray
            or like.dtype.kind not in "fiu" or like.dtype.itemsize not in (4, 8)):
        return np.where(condition, input, other)
    try:
        a, b = (x if type(x) is np.ndarray else np.asarray(x, like.dtype)
                if type(x) is int or type(x) is float and like.dtype.kind == "f" else None for x in (input, other))
    except OverflowError:  # an int the array's dtype cannot hold: numpy's own promotion decides
        return np.where(condition, input, other)
    if a is None or b is None or a.dtype != b.dtype:
        return np.where(condition, input, other)
    bits = np.dtype(f"i{like.dtype.itemsize}")
    mask = np.negative(condition.view(np.int8), dtype=bits)  # all ones where the condition holds
    into = mask if mask.shape == np.broadcast_shapes(mask.shape, a.shape, b.shape) else None  # no new memory
    if b.ndim == 0 and not b.view(bits):  # other is +0 (a gradient's zero): its bits are all zero
        return np.bitwise_and(a.view(bits), mask, out=into).view(like.dtype)
    others = np.bitwise_and(b.view(bits), np.invert(mask))
    return np.bitwise_or(np.bitwise_and(a.view(bits), mask, out=into), others, out=into).view(like.dtype)


where = op(
    "where",
    ELEMENTWISE,
    _where_infer,
    lowering=Lowering("where({0}, {1}, {2})", cast_operands=False),
    saves=(0,),
    backward=lambda c, g: (
        None,
        unbroadcast(where(c.inputs[0], g, 0.0), c.inputs[1]),
        unbroadcast(where(c.inputs[0], 0.0, g), c.inputs[2]),
    ),
    onnx=lambda g, n: g.op("Where", g.name(n.inputs[0]), *g.promoted(n, n.inputs[1:])),
    operands=("condition", "input", "other"),
)(_where_forward)


def _clamp_parse(x, min=None, max=None):
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return (x,), {"min": min, "max": max}


def _clamp_backward(c, g):
    x, lo, hi = c.inputs[0], c.attrs["min"], c.attrs["max"]
    inside = ge(x, lo) if lo is not None else None
    if hi is not None:
        inside = le(x, hi) if inside is None else logical_and(inside, le(x, hi))
    return (where(inside, g, 0.0),)  # torch's: a masked inf or NaN gradient gives 0


_clamp = op(
    "clamp",
    ELEMENTWISE,
    lambda x, min=None, max=None: elementwise(x, *(v for v in (min, max) if v is not None)),
    backward=_clamp_backward,
    parse=_clamp_parse,
    lowering=Lowering("minimum(maximum({0}, {min}), {max})", defaults={"min": -math.inf, "max": math.inf}),
    saves=(0,),
)(lambda x, min, max: np.clip(x, min, max))


def clamp(x: Tensor, min=None, max=None) -> Tensor:
    """torch.clamp: x limited to [min, max]; each bound is a number, a (broadcast) tensor or None. Tensor bounds
    get gradients where they bind, as in torch."""
    if not isinstance(min, Tensor) and not isinstance(max, Tensor):
        return _clamp(x, min, max)
    out = x if min is None else where(logical_or(lt(x, min), isnan(min)), min, x)  # a NaN bound gives NaN, as torch
    return out if max is None else where(logical_or(gt(out, max), isnan(max)), max, out)


clip = clamp


def _masked_fill_infer(x, mask, value):
    if mask.dtype is not dtypes.bool_:
        raise ValueError(f"masked_fill only supports boolean masks, got a mask of dtype {mask.dtype.name}")
    return meta.broadcast(tuple(x.shape), tuple(mask.shape)), x.dtype  # x broadcasts too, as torch's out-of-place


masked_fill = op(
    "masked_fill",
    ELEMENTWISE,
    _masked_fill_infer,
    lowering=Lowering("where({1}, {2}, {0})", cast_operands=False),
    saves=(1,),
    backward=lambda c, g: (unbroadcast(where(c.inputs[1], 0.0, g), c.inputs[0]), None,
                           unbroadcast(where(c.inputs[1], g, 0.0), c.inputs[2])),
    onnx=lambda g, n: g.op("Where", g.name(n.inputs[1]), g.name(n.inputs[2], n), g.name(n.inputs[0])),
)(lambda x, mask, value: np.where(mask, np.asarray(value, dtype=x.dtype), x))


def _cast_parse(x, dtype):
    return (x,), {"dtype": dtypes.to_dtype(dtype)}


cast = op(
    "cast",
    ELEMENTWISE,
    lambda x, dtype: (tuple(x.shape), dtype),
    parse=_cast_parse,
    lowering=Lowering("{0}", rounds=True),
    saves=(),
    backward=lambda c, g: (cast(g, c.inputs[0].dtype) if c.inputs[0].dtype.is_floating_point else None,),
    onnx=lambda g, n: g.cast(g.name(n.inputs[0]), n.dtype),
)(lambda x, dtype: x.astype(dtype.np))



def square(x: Tensor) -> Tensor:
    """torch.square: x * x (of a bool tensor, int64, as torch's pow(x, 2))."""
    if x.dtype is dtypes.bool_:
        x = cast(x, dtypes.int64)
    return mul(x, x)


def addcmul(x: Tensor, tensor1: Tensor, tensor2: Tensor, value=1) -> Tensor:
    """torch.addcmul: x + value * tensor1 * tensor2 (addcmul_ is the in-place form optimizers use)."""
    return add(x, mul(mul(tensor1, tensor2), value))


def addcdiv(x: Tensor, tensor1: Tensor, tensor2: Tensor, value=1) -> Tensor:
    """torch.addcdiv: x + value * tensor1 / tensor2."""
    return add(x, mul(div(tensor1, tensor2), value))


def isclose(x: Tensor, other: Tensor, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> Tensor:
    """torch.isclose: |x - other| <= atol + rtol * |other| elementwise (equal values, infinities included, are
    close; NaN only with equal_nan)."""
    if rtol < 0 or atol < 0:
        raise op_error("isclose", f"rtol and atol must be greater than or equal to zero, but got rtol={rtol} and "
                       f"atol={atol}", (x, other))
    if x.dtype is dtypes.bool_ and getattr(other, "dtype", None) is dtypes.bool_:
        return eq(x, other)
    error = abs(sub(x, other))  # infinite beside an inf: then only equal values are close, as torch's
    close = logical_or(eq(x, other), logical_and(isfinite(error), le(error, add(mul(abs(other), rtol), atol))))
    return logical_or(close, logical_and(isnan(x), isnan(other))) if equal_nan else close


def lerp(x: Tensor, end: Tensor, weight) -> Tensor:
    """torch.lerp: x + weight * (end - x), weight a number or a (broadcast) tensor; gradients flow to all three.
    As torch computes it, end - (end - x) * (1 - weight) where |weight| >= 0.5, which is exact at weight 1 and
    keeps an infinite x (inf - inf would be NaN)."""
    near_start, near_end = add(x, mul(weight, sub(end, x))), sub(end, mul(sub(end, x), 1 - weight))
    if not isinstance(weight, Tensor):
        return near_start if builtins.abs(weight) < 0.5 else near_end
    return where(lt(abs(weight), 0.5), near_start, near_end)


def _fminmax_backward(first_wins):
    """torch's fmax/fmin gradient: all to the operand picked (the first on a tie, the other where one is NaN)."""
    def backward(c, g):
        a, b = c.inputs
        first = logical_or(first_wins(a, b), isnan(b))
        return unbroadcast(where(first, g, 0.0), a), unbroadcast(where(first, 0.0, g), b)

    return backward


# NaN only where both are NaN (C's fmax/fmin, numpy's fmax/fmin)
fmax = _binary("fmax", np.fmax, _fminmax_backward(lambda a, b: ge(a, b)),
               "where({0} != {0}, {1}, where({1} != {1}, {0}, maximum({0}, {1})))")
fmin = _binary("fmin", np.fmin, _fminmax_backward(lambda a, b: le(a, b)),
               "where({0} != {0}, {1}, where({1} != {1}, {0}, minimum({0}, {1})))")


def _heaviside_infer(x, values):
    if getattr(values, "dtype", None) is not x.dtype:  # values must be a tensor
        raise ValueError("heaviside is not yet implemented for tensors with different dtypes (input "
                        f"{x.dtype.name}, values {getattr(values, 'dtype', type(values).__name__)})")
    return elementwise(x, values)


heaviside = _binary("heaviside", lambda x, values: np.where(x == 0, values, x > 0).astype(np.result_type(x, values)),
                    None, "where({0} == 0, {1}, where({0} > 0, 1, 0))",
                    infer=_heaviside_infer)
heaviside.doc = "torch.heaviside(input, values): values where input is 0, 1 where it is > 0, else 0 (NaN too)."
nextafter = _binary("nextafter", np.nextafter, None, None, infer=floating)
nextafter.doc = "torch.nextafter(input, other): the next float after input towards other."


def _integer_infer(name):
    def infer(*xs):
        shape, dt = elementwise(*xs)
        if dt.is_floating_point:
            raise op_error(name, f"\"{name}_cpu\" not implemented for '{dt.name}' (integer and bool tensors only)",
                           xs, NotImplementedError)
        return shape, dt
    return infer


def _bitwise(name, fn, expr):
    """An integer op; its lowering covers bool results, where bitwise is logical (masks combined in kernels)."""
    return op(name, ELEMENTWISE, _integer_infer(name), saves=(),
              lowering=Lowering(expr, when=lambda dtype, attrs: dtype is dtypes.bool_))(fn)


bitwise_and = _bitwise("bitwise_and", np.bitwise_and, "({0} != 0) & ({1} != 0)")
bitwise_or = _bitwise("bitwise_or", np.bitwise_or, "({0} != 0) | ({1} != 0)")
bitwise_xor = _bitwise("bitwise_xor", np.bitwise_xor, "({0} != 0) != ({1} != 0)")
bitwise_not = _bitwise("bitwise_not", np.invert, "{0} == 0")


def _shift(name, fn):
    """torch's shifts of integers: the shift count taken modulo nothing, so a count at or past the width gives 0
    (and -1 for a negative value shifted right), as torch computes them; numpy's C shift is undefined there."""
    def forward(a, b):
        a, b = np.asarray(a), np.asarray(b)
        out = np.asarray(fn(a, np.clip(b, 0, None)))
        width = np.dtype(out.dtype).itemsize * 8
        past = (np.asarray(b) >= width) | (np.asarray(b) < 0)
        if past.any():
            fill = np.where(a < 0, -1, 0) if fn is np.right_shift else 0
            out = np.where(past, np.asarray(fill).astype(out.dtype), out)
        return out
    forward.__doc__ = f"torch.{name}(input, other): input shifted by other bits (integer tensors)."
    return op(name, ELEMENTWISE, _integer_infer(name), saves=())(forward)


bitwise_left_shift = _shift("bitwise_left_shift", np.left_shift)
bitwise_right_shift = _shift("bitwise_right_shift", np.right_shift)
gcd = op("gcd", ELEMENTWISE, _integer_infer("gcd"), saves=())(np.gcd)
lcm = op("lcm", ELEMENTWISE, _integer_infer("lcm"), saves=())(np.lcm)
signbit = _unary("signbit", np.signbit, None, None, infer=predicate)
signbit.doc = "torch.signbit: whether the sign bit is set (True for -0.0 and negative NaN)."


def clamp_min(x: Tensor, min) -> Tensor:  # noqa: A002  torch's name
    """torch.clamp_min: clamp(x, min=min)."""
    return clamp(x, min=min)


def clamp_max(x: Tensor, max) -> Tensor:  # noqa: A002  torch's name
    """torch.clamp_max: clamp(x, max=max)."""
    return clamp(x, max=max)


def frac(x: Tensor) -> Tensor:
    """torch.frac: x - trunc(x), the fractional part with x's sign (float inputs only, as torch)."""
    if not x.dtype.is_floating_point:
        raise op_error("frac", f"\"frac_cpu\" not implemented for '{x.dtype.name}'", (x,), NotImplementedError)
    return sub(x, trunc(x))


def isposinf(x: Tensor) -> Tensor:
    """torch.isposinf: x == inf."""
    return eq(x, math.inf)


def isneginf(x: Tensor) -> Tensor:
    """torch.isneginf: x == -inf."""
    return eq(x, -math.inf)


def isreal(x: Tensor) -> Tensor:
    """torch.isreal: True everywhere (graphc has no complex dtypes)."""
    from .creation import ones_like
    return ones_like(x, dtype=dtypes.bool_)


def ldexp(x: Tensor, other: Tensor) -> Tensor:
    """torch.ldexp: x * 2 ** other (integer inputs give the default float dtype)."""
    return mul(x, pow(2.0, other))


def _copysign_backward(c, g):
    """torch's: g * (result / x) to x, 0 where x is 0 (NaN where x is inf or NaN, as torch's); zeros to other (a
    step function)."""
    x, other = c.inputs
    gx = unbroadcast(g * where(eq(x, 0), 0.0, c.out / x), x)
    if not isinstance(other, Tensor):
        return gx, None
    from .creation import zeros_like
    return gx, unbroadcast(zeros_like(g), other)


# signbit (-0.0 and negative NaN count as negative) has no expression in the lowering language
copysign = op("copysign", ELEMENTWISE, floating, backward=_copysign_backward, saves=(0, OUT))(np.copysign)
copysign.doc = ("torch.copysign: |x| with the sign of other (its sign bit: -0.0 counts as negative); the default "
                "float dtype for integer inputs. Gradients as torch's: 0 for x where x is 0, zeros for other.")


def positive(x: Tensor) -> Tensor:
    """torch.positive: x itself (refused for bool, as torch)."""
    if x.dtype is dtypes.bool_:
        raise op_error("positive", "The `+` operator, on a bool tensor is not supported.", (x,))
    return x


def rsub(x: Tensor, other, *, alpha=1) -> Tensor:
    """torch.rsub: other - alpha * x."""
    return sub(other, x, alpha=alpha)


def true_divide(x: Tensor, other) -> Tensor:
    """torch.true_divide: div(x, other)."""
    return div(x, other)


absolute, multiply, divide, subtract, negative, not_equal, sgn = abs, mul, div, sub, neg, ne, sign
greater, greater_equal, less, less_equal = gt, ge, lt, le

__all__ = [
    "copysign",
    "positive",
    "rsub",
    "fmax",
    "fmin",
    "heaviside",
    "nextafter",
    "bitwise_and",
    "bitwise_or",
    "bitwise_xor",
    "bitwise_not",
    "bitwise_left_shift",
    "bitwise_right_shift",
    "gcd",
    "lcm",
    "signbit",
    "clamp_min",
    "clamp_max",
    "frac",
    "isposinf",
    "isneginf",
    "isreal",
    "ldexp",
    "true_divide",
    "absolute",
    "multiply",
    "divide",
    "subtract",
    "negative",
    "not_equal",
    "sgn",
    "greater",
    "greater_equal",
    "less",
    "less_equal",
    "add",
    "sub",
    "mul",
    "div",
    "pow",
    "maximum",
    "minimum",
    "remainder",
    "fmod",
    "logaddexp",
    "floor_divide",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "logical_and",
    "logical_or",
    "logical_xor",
    "logical_not",
    "isnan",
    "isinf",
    "isfinite",
    "neg",
    "abs",
    "sign",
    "exp",
    "log",
    "log1p",
    "expm1",
    "sqrt",
    "rsqrt",
    "reciprocal",
    "sin",
    "cos",
    "tanh",
    "sigmoid",
    "relu",
    "floor",
    "ceil",
    "trunc",
    "fix",
    "round",
    "nan_to_num",
    "erf",
    "where",
    "clamp",
    "clip",
    "masked_fill",
    "square",
    "addcmul",
    "addcdiv",
    "lerp",
    "isclose",
]
