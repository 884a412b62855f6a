"""Samplers with a tensor of parameters, which graphc.distributions draws from: the gamma sampler with its
reparameterization gradient (Gamma, Beta, Dirichlet, Chi2, StudentT rsample), and the poisson and binomial samplers
(torch.poisson, torch.binomial; no gradient, as torch's)."""
from __future__ import annotations

import numpy as np
import scipy.special

from ..dispatch import OTHER, OUT, op
from .creation import _RANDOM_FALLBACK, default_generator


def _gamma_infer(alpha, generator):
    if not alpha.dtype.is_floating_point:
        raise ValueError(f"_standard_gamma: expected a floating point input, got {alpha.dtype.name}")
    return tuple(alpha.shape), alpha.dtype


@op("standard_gamma", OTHER, _gamma_infer, pure=False, saves=(0, OUT),
    parse=lambda alpha, *, generator=None: ((alpha,), {"generator": generator or default_generator}),
    backward=lambda c, g: (g * standard_gamma_grad(c.out, c.inputs[0]),),
    fallback=_RANDOM_FALLBACK)
def standard_gamma(alpha, generator):
    """Gamma(alpha, 1) samples (torch._standard_gamma), from graphc's generator; their gradient with respect to
    alpha is the implicit reparameterization one (standard_gamma_grad)."""
    return generator._rng.standard_gamma(alpha)


@op("standard_gamma_grad", OTHER, lambda x, alpha: (tuple(x.shape), x.dtype),
    fallback="scipy.special.gammainc has no kernel primitive: runs on numpy")
def standard_gamma_grad(x, alpha):
    """dx/dalpha of a Gamma(alpha, 1) sample x held at a fixed CDF value u = P(alpha, x) (implicit
    reparameterization, Figurnov et al. 2018, "Implicit Reparameterization Gradients", eq. 6):
    -(dP/dalpha) / (dP/dx), with dP/dx the density and dP/dalpha by a central difference of P in float64
    (relative error ~1e-9; torch's _standard_gamma_grad uses series and asymptotic approximations)."""
    x64, a64 = np.asarray(x, np.float64), np.asarray(alpha, np.float64)
    h = 1e-5 * np.maximum(a64, 1.0)
    dp_da = (scipy.special.gammainc(a64 + h, x64) - scipy.special.gammainc(a64 - h, x64)) / (2 * h)
    log_density = scipy.special.xlogy(a64 - 1, x64) - x64 - scipy.special.gammaln(a64)
    with np.errstate(over="ignore", invalid="ignore"):
        return (-dp_da / np.exp(log_density)).astype(np.asarray(x).dtype)


def _floating(name: str, *inputs) -> None:
    for x in inputs:
        if not x.dtype.is_floating_point:
            raise ValueError(f"{name}: expected a floating point input, got {x.dtype.name}")


def _poisson_infer(rates, generator):
    _floating("poisson", rates)
    return tuple(rates.shape), rates.dtype


@op("poisson", OTHER, _poisson_infer, pure=False, saves=(), backward=lambda c, g: (None,),
    parse=lambda rates, generator=None: ((rates,), {"generator": generator or default_generator}),
    fallback=_RANDOM_FALLBACK)
def poisson(rates, generator):
    """torch.poisson: a Poisson(rate) count per entry of rates, in rates' dtype."""
    if (rates < 0).any() or not np.isfinite(rates).all():
        raise ValueError("poisson: invalid Poisson rate, expected rate to be non-negative")
    return generator._rng.poisson(rates).astype(rates.dtype)


def _binomial_infer(count, prob, generator):
    _floating("binomial", count, prob)
    if tuple(count.shape) != tuple(prob.shape):
        raise ValueError(f"binomial: count of shape {tuple(count.shape)} and prob of shape {tuple(prob.shape)} "
                         "differ")
    return tuple(count.shape), count.dtype


@op("binomial", OTHER, _binomial_infer, pure=False, saves=(), backward=lambda c, g: (None, None),
    parse=lambda count, prob, generator=None: ((count, prob), {"generator": generator or default_generator}),
    fallback=_RANDOM_FALLBACK)
def binomial(count, prob, generator):
    """torch.binomial: a Binomial(count, prob) number of successes per entry, in count's dtype."""
    return generator._rng.binomial(count.astype(np.int64), np.clip(prob, 0, 1)).astype(count.dtype)
