"""graphc.special: torch.special's functions (names, signatures and semantics as torch's), over graphc ops so
autograd and the compiler go through them. The Bessel functions, ndtri, log_ndtr and entr are ops in
graphc/ops/special.py; the rest are the top-level ops under torch.special's names, or compositions of them."""
from __future__ import annotations

import math

from .ops.elementwise import eq, erf, exp, expm1, isnan, log1p, logical_and, logical_not, round, sigmoid, where
from .ops.reduction import log_softmax, logsumexp, softmax
from .ops.special import entr, i0, i0e, i1, i1e, log_ndtr, ndtri
from .ops.transcendental import digamma, erfc, erfinv, exp2, lgamma, logit, polygamma, sinc, xlogy
from .tensor import Tensor

__all__ = ["expit", "logit", "erf", "erfc", "erfcx", "erfinv", "gammaln", "digamma", "psi", "polygamma",
           "multigammaln", "xlogy", "xlog1py", "log1p", "expm1", "exp2", "i0", "i0e", "i1", "i1e", "ndtr", "ndtri",
           "log_ndtr", "softmax", "log_softmax", "logsumexp", "sinc", "entr", "round"]

expit = sigmoid
gammaln = lgamma
psi = digamma


def erfcx(x: Tensor) -> Tensor:
    """torch.special.erfcx: exp(x^2) erfc(x), the scaled complementary error function."""
    return exp(x * x) * erfc(x)


def ndtr(x: Tensor) -> Tensor:
    """torch.special.ndtr: the standard normal CDF, 0.5 erfc(-x / sqrt 2) (accurate in the lower tail)."""
    return 0.5 * erfc(-x * (1 / math.sqrt(2)))


def xlog1py(x: Tensor, other: Tensor) -> Tensor:
    """torch.special.xlog1py: x * log1p(other), 0 where x is 0 unless other is NaN."""
    keep = logical_and(eq(x, 0), logical_not(isnan(other)))
    return where(keep, 0.0, x * log1p(other))


def multigammaln(x: Tensor, p: int) -> Tensor:
    """torch.special.multigammaln: log of the multivariate gamma function of dimension p,
    p (p - 1) / 4 log(pi) + sum_j lgamma(x - j / 2) for j < p (inf where x <= (p - 1) / 2, as torch's).
    RuntimeError for p < 1."""
    if p < 1:
        raise RuntimeError("p has to be greater than or equal to 1")
    out = p * (p - 1) / 4 * math.log(math.pi)
    for j in range(p):
        out = out + lgamma(x - j / 2)
    return out
