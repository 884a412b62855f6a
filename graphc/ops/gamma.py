"""The gamma sampler with its reparameterization gradient, which Gamma, Beta and Dirichlet rsample build on."""
from __future__ import annotations

import numpy as np
import scipy.special

from ..dispatch import OTHER, OUT, op
from .creation import default_generator


def _gamma_infer(alpha, generator):
    if not alpha.dtype.is_floating_point:
        raise ValueError(f"_standard_gamma: expected a floating point input, got {alpha.dtype.name}")
    return tuple(alpha.shape), alpha.dtype


@op("standard_gamma", OTHER, _gamma_infer, pure=False, saves=(0, OUT),
    parse=lambda alpha, *, generator=None: ((alpha,), {"generator": generator or default_generator}),
    backward=lambda c, g: (g * standard_gamma_grad(c.out, c.inputs[0]),),
    fallback="draws from a graphc.Generator (numpy's PCG64), which has no Triton lowering: runs on numpy")
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
