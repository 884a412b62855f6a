"""Transcendental elementwise functions beyond exp/log/sin/cos/tanh/erf: the other trigonometric and hyperbolic
functions and their inverses, logarithms and powers in bases 2 and 10, and the error and gamma families. Integer and
bool inputs give the default float dtype, as in torch. Each gradient is the derivative torch's derivatives.yaml
gives, written with graphc ops."""
from __future__ import annotations

import math

import numpy as np
import scipy.special

from .. import dtypes
from ..dispatch import ELEMENTWISE, OUT, op
from ..tensor import Tensor
from .elementwise import (
    _binary,
    _unary,
    cast,
    clamp,
    cos,
    div,
    eq,
    exp,
    le,
    log,
    logaddexp,
    logical_and,
    mul,
    pow,
    sin,
    sqrt,
    unbroadcast,
    where,
)
from .meta import floating

_LN2, _LN10 = math.log(2), math.log(10)

tan = _unary("tan", np.tan, lambda c, g: (g * (c.out * c.out + 1),), "tan({0})", saves=(OUT,))
asin = _unary("asin", np.arcsin, lambda c, g: (g / sqrt(1 - c.inputs[0] * c.inputs[0]),), "asin({0})")
acos = _unary("acos", np.arccos, lambda c, g: (-g / sqrt(1 - c.inputs[0] * c.inputs[0]),), "acos({0})")
atan = _unary("atan", np.arctan, lambda c, g: (g / (c.inputs[0] * c.inputs[0] + 1),), "atan({0})")
sinh = _unary("sinh", np.sinh, lambda c, g: (g * cosh(c.inputs[0]),), "sinh({0})")
cosh = _unary("cosh", np.cosh, lambda c, g: (g * sinh(c.inputs[0]),), "cosh({0})")
asinh = _unary("asinh", np.arcsinh, lambda c, g: (g / sqrt(c.inputs[0] * c.inputs[0] + 1),), "asinh({0})")
acosh = _unary("acosh", np.arccosh, lambda c, g: (g / sqrt(c.inputs[0] * c.inputs[0] - 1),), "acosh({0})")
atanh = _unary("atanh", np.arctanh, lambda c, g: (g / (1 - c.inputs[0] * c.inputs[0]),), "atanh({0})")
log2 = _unary("log2", np.log2, lambda c, g: (g / (c.inputs[0] * _LN2),), "log2({0})")
log10 = _unary("log10", np.log10, lambda c, g: (g / (c.inputs[0] * _LN10),), "log10({0})")
exp2 = _unary("exp2", np.exp2, lambda c, g: (g * c.out * _LN2,), "exp2({0})", saves=(OUT,))
erfc = _unary("erfc", scipy.special.erfc,
              lambda c, g: (g * exp(-c.inputs[0] * c.inputs[0]) * (-2 / math.sqrt(math.pi)),), "erfc({0})")


def _lgamma_forward(x):
    """log |Gamma(x)|: scipy's gammaln, with C's (and torch's) +inf at -inf (gammaln gives -inf)."""
    out = scipy.special.gammaln(x)
    return np.where(x == -np.inf, np.inf, out).astype(out.dtype)


lgamma = _unary("lgamma", _lgamma_forward, lambda c, g: (g * digamma(c.inputs[0]),), "lgamma({0})")


def _atan2_backward(c, g):
    """torch's: g * b / (a² + b²) and -g * a / (a² + b²), with 1 / (a² + b²) taken as 0 where a² + b² is 0 (at the
    origin, or where it underflows), so the gradient there is 0 rather than NaN."""
    a, b = c.inputs
    squares = a * a + b * b
    recip = where(squares == 0, 0.0, 1 / squares)
    return unbroadcast(g * (b * recip), a), unbroadcast(g * (-a * recip), b)


atan2 = _binary("atan2", np.arctan2, _atan2_backward, "atan2({0}, {1})", infer=floating)
hypot = _binary("hypot", np.hypot, lambda c, g: (unbroadcast(g * c.inputs[0] / c.out, c.inputs[0]),
                                                 unbroadcast(g * c.inputs[1] / c.out, c.inputs[1])),
                "hypot({0}, {1})", infer=floating, saves=(0, 1, OUT))


erfinv = op("erfinv", ELEMENTWISE, floating, saves=(OUT,),
            backward=lambda c, g: (g * exp(c.out * c.out) * (math.sqrt(math.pi) / 2),),
            fallback="erfinv has no C or Triton lowering: runs on numpy")(
    # erfinv is odd: the sign of x, as torch's erfinv(-0.0) = -0.0 (scipy's is 0.0)
    lambda x: np.copysign(scipy.special.erfinv(x), x))


def _digamma_forward(x):
    """scipy's psi, with torch's values at the poles: -inf at +0, inf at -0, NaN at the negative integers (psi gives
    NaN at -0, and -inf at both zeros in some versions)."""
    out = scipy.special.psi(x)
    zero = x == 0
    return np.where(zero, np.copysign(np.inf, -np.copysign(1.0, x)), out).astype(out.dtype) if zero.any() else out


digamma = op("digamma", ELEMENTWISE, floating, saves=(0,), backward=lambda c, g: (g * polygamma(1, c.inputs[0]),),
             fallback="digamma has no C or Triton lowering: runs on numpy")(_digamma_forward)


def _polygamma_parse(n: int, input: Tensor):  # noqa: A002  torch's names
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"polygamma(n, x) does not support negative n (or a non-integer n): got n={n!r}")
    return (input,), {"n": n}


def _polygamma_forward(x, n):
    return _digamma_forward(x) if n == 0 else scipy.special.polygamma(n, x).astype(np.result_type(x, np.float32))


polygamma = op("polygamma", ELEMENTWISE, lambda x, n: floating(x), parse=_polygamma_parse, saves=(0,),
               backward=lambda c, g: (g * polygamma(c.attrs["n"] + 1, c.inputs[0]),),
               fallback="polygamma has no C or Triton lowering: runs on numpy")(_polygamma_forward)
polygamma.doc = """torch.polygamma(n, input): the n-th derivative of digamma (n = 0 is digamma itself)."""


def _xlogy_backward(c, g):
    """torch's: d/dx is log(y), but 0 where x is 0 and y <= 0 (not 0 * log 0); d/dy is x / y."""
    x, y = c.inputs
    gx = gy = None
    if isinstance(x, Tensor):
        gx = unbroadcast(where(logical_and(eq(x, 0), le(y, 0)), 0.0, g * log(y)), x)
    if isinstance(y, Tensor):
        gy = unbroadcast(g * x / y, y)
    return gx, gy


def _xlogy_forward(x, y):
    """x * log(y), 0 where x is 0 unless y is NaN (torch's rule; scipy's xlogy gives 0 for a NaN y too)."""
    out = np.multiply(x, np.log(y))
    return np.where((np.asarray(x) == 0) & ~np.isnan(y), 0, out).astype(out.dtype)


xlogy = _binary("xlogy", _xlogy_forward, _xlogy_backward, "where(({0} == 0) & ({1} == {1}), 0, {0} * log({1}))",
                infer=floating)


def logit(x: Tensor, eps: float | None = None) -> Tensor:
    """torch.logit: log(x / (1 - x)), with x first clamped to [eps, 1 - eps] when eps is given (the gradient is
    then 0 outside that range, as torch's)."""
    if eps is not None:
        x = clamp(x, eps, 1 - eps)
    return log(div(x, 1 - x))


def logaddexp2(x: Tensor, other: Tensor) -> Tensor:
    """torch.logaddexp2: log2(2**x + 2**other), computed as logaddexp in base e scaled by ln 2."""
    return div(logaddexp(mul(x, _LN2), mul(other, _LN2)), _LN2)


def _sinc_backward(c, g):
    """torch's: (pi x cos(pi x) - sin(pi x)) / (pi x^2), 0 at 0, as one fraction (autograd's difference of two
    quotients loses every digit for tiny x: -7e13 at 1e-20, where torch's is 0); x = 0 replaced before, so no NaN
    is made even in the branch where() drops."""
    x = c.inputs[0]
    zero = eq(x, 0)
    safe = where(zero, 1.0, x)
    scaled = safe * math.pi
    return (where(zero, 0.0, g * ((scaled * cos(scaled) - sin(scaled)) / (scaled * safe))),)


sinc = _unary("sinc", lambda x: np.sinc(x if x.dtype.kind == "f" else x.astype(dtypes.get_default_dtype().np)),
              _sinc_backward,
              f"where({{0}} == 0, 1, sin({{0}} * {math.pi!r}) / ({{0}} * {math.pi!r}))")
sinc.doc = "torch.sinc: sin(pi x) / (pi x), 1 at 0 (integer inputs give the default float dtype)."


def deg2rad(x: Tensor) -> Tensor:
    """torch.deg2rad: x * pi / 180 (integer inputs give the default float dtype)."""
    return mul(x, math.pi / 180)


def rad2deg(x: Tensor) -> Tensor:
    """torch.rad2deg: x * 180 / pi (integer inputs give the default float dtype)."""
    return mul(x, 180 / math.pi)


def float_power(x, exponent) -> Tensor:
    """torch.float_power: x ** exponent computed in float64 (both operands cast first)."""
    def wide(v):
        return cast(v, dtypes.float64) if isinstance(v, Tensor) else float(v)
    return pow(wide(x), wide(exponent))


arcsin, arccos, arctan, arctan2, arcsinh, arccosh, arctanh = asin, acos, atan, atan2, asinh, acosh, atanh

__all__ = ["tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "asinh", "acosh", "atanh", "arcsin", "arccos",
           "arctan", "arctan2", "arcsinh", "arccosh", "arctanh", "log2", "log10", "exp2", "erfc", "erfinv", "lgamma",
           "digamma", "polygamma", "hypot", "xlogy", "logit", "logaddexp2", "sinc", "deg2rad", "rad2deg",
           "float_power"]
