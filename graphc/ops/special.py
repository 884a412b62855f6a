"""Elementwise special functions of torch.special that have no kernel primitive: the modified Bessel functions
i0, i0e, i1, i1e, the normal quantile ndtri, log_ndtr and entr. Forwards are scipy.special's; gradients are the
derivatives torch's derivatives.yaml gives, written with graphc ops. They run on numpy in a compiled plan (the
renderers have no primitive for them)."""
from __future__ import annotations

import math

import numpy as np
import scipy.special

from ..dispatch import ELEMENTWISE, OUT, op
from .elementwise import eq, exp, log, sign, where
from .meta import floating

_SCIPY = "a scipy.special function without a kernel primitive: runs on numpy"


def _special(name: str, backward, saves=(0,)):
    return lambda forward: op(name, ELEMENTWISE, floating, backward=backward, saves=saves, fallback=_SCIPY)(forward)


def _i1_over_x(x, out):
    """i1(x) / x, with its limit 1/2 at 0 (computed without dividing by zero)."""
    zero = eq(x, 0)
    return where(zero, 0.5, out / where(zero, 1.0, x))


@_special("special_i0", lambda c, g: (g * i1(c.inputs[0]),))
def i0(x):
    """torch.special.i0: the modified Bessel function of the first kind of order 0; derivative i1."""
    return scipy.special.i0(x)


@_special("special_i0e", lambda c, g: (g * (i1e(c.inputs[0]) - sign(c.inputs[0]) * c.out),), saves=(0, OUT))
def i0e(x):
    """torch.special.i0e: exp(-|x|) i0(x); derivative i1e(x) - sign(x) i0e(x)."""
    return scipy.special.i0e(x)


@_special("special_i1", lambda c, g: (g * (i0(c.inputs[0]) - _i1_over_x(c.inputs[0], c.out)),), saves=(0, OUT))
def i1(x):
    """torch.special.i1: the modified Bessel function of the first kind of order 1; derivative i0(x) - i1(x)/x."""
    return scipy.special.i1(x)


@_special("special_i1e", lambda c, g: (g * (i0e(c.inputs[0]) - c.out * sign(c.inputs[0])
                                            - _i1_over_x(c.inputs[0], c.out)),), saves=(0, OUT))
def i1e(x):
    """torch.special.i1e: exp(-|x|) i1(x); derivative i0e(x) - i1e(x) (sign(x) + 1/x)."""
    return scipy.special.i1e(x)


@_special("special_ndtri", lambda c, g: (g * math.sqrt(2 * math.pi) * exp(c.out * c.out * 0.5),), saves=(OUT,))
def ndtri(x):
    """torch.special.ndtri: the standard normal quantile (inverse of ndtr); derivative sqrt(2 pi) exp(ndtri^2 / 2)."""
    return scipy.special.ndtri(x)


@_special("special_log_ndtr", lambda c, g: (g * exp(-0.5 * c.inputs[0] * c.inputs[0] - c.out)
                                            / math.sqrt(2 * math.pi),), saves=(0, OUT))
def log_ndtr(x):
    """torch.special.log_ndtr: log of the standard normal CDF, accurate far into both tails; derivative
    exp(-x^2/2 - log_ndtr(x)) / sqrt(2 pi)."""
    return scipy.special.log_ndtr(x)


@_special("special_entr", lambda c, g: (-g * (1 + log(c.inputs[0])),))
def entr(x):
    """torch.special.entr: -x log(x) for x > 0, 0 at 0, -inf for x < 0; derivative -(1 + log x)."""
    return np.asarray(scipy.special.entr(x))


__all__ = ["i0", "i0e", "i1", "i1e", "ndtri", "log_ndtr", "entr"]
