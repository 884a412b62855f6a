"""torch.distributions.kl: kl_divergence(p, q) dispatched on the pair of types, and register_kl to add pairs."""
from __future__ import annotations

import math

from ..nn.functional import softplus
from ..ops import meta
from ..ops.elementwise import log, where
from ..ops.layout import diagonal
from ..ops.reduction import sum
from ..ops.transcendental import digamma, lgamma
from ..ops.view import expand, unsqueeze
from ..tensor import Tensor
from .bernoulli import Bernoulli
from .beta import Beta
from .categorical import Categorical
from .dirichlet import Dirichlet
from .distribution import Distribution
from .gamma import Gamma
from .independent import Independent
from .multivariate_normal import MultivariateNormal, batch_mahalanobis
from .normal import Normal
from .one_hot_categorical import OneHotCategorical
from .uniform import Uniform
from .utils import sum_rightmost

_KL_REGISTRY: dict = {}


def register_kl(type_p: type, type_q: type):
    """Decorator registering fn(p, q) as the KL divergence of a type_p from a type_q (subclasses use the most
    specific registered pair, as torch's)."""
    if not (isinstance(type_p, type) and issubclass(type_p, Distribution) and isinstance(type_q, type)
            and issubclass(type_q, Distribution)):
        raise TypeError(f"Expected type_p and type_q to be subclasses of Distribution, but got {type_p} and {type_q}")

    def decorator(fn):
        _KL_REGISTRY[type_p, type_q] = fn
        return fn
    return decorator


def _dispatch_kl(type_p: type, type_q: type):
    """The registered function of the closest pair of ancestors (by MRO position, p's first)."""
    matches = [(type_p.__mro__.index(p), type_q.__mro__.index(q), fn) for (p, q), fn in _KL_REGISTRY.items()
               if issubclass(type_p, p) and issubclass(type_q, q)]
    return min(matches, key=lambda m: m[:2])[2] if matches else None


def kl_divergence(p: Distribution, q: Distribution) -> Tensor:
    """KL(p || q) = E_p[log p(x) - log q(x)], one value per batch element. NotImplementedError for a pair with no
    registered formula."""
    fn = _dispatch_kl(type(p), type(q))
    if fn is None:
        raise NotImplementedError(f"No KL(p || q) is implemented for p type {p.__class__.__name__} and q type "
                                  f"{q.__class__.__name__}")
    return fn(p, q)


@register_kl(Normal, Normal)
def _kl_normal_normal(p: Normal, q: Normal) -> Tensor:
    var_ratio = (p.scale / q.scale) ** 2
    t1 = ((p.loc - q.loc) / q.scale) ** 2
    return 0.5 * (var_ratio + t1 - 1 - log(var_ratio))


@register_kl(Categorical, Categorical)
def _kl_categorical_categorical(p: Categorical, q: Categorical) -> Tensor:
    t = p.probs * (p.logits - q.logits)
    shape = meta.broadcast(tuple(t.shape), tuple(q.probs.shape))
    t = where(expand(q.probs == 0, shape), math.inf, t)
    t = where(expand(p.probs == 0, shape), 0.0, t)
    return sum(t, -1)


@register_kl(OneHotCategorical, OneHotCategorical)
def _kl_onehotcategorical_onehotcategorical(p: OneHotCategorical, q: OneHotCategorical) -> Tensor:
    return _kl_categorical_categorical(p._categorical, q._categorical)


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli_bernoulli(p: Bernoulli, q: Bernoulli) -> Tensor:
    t1 = p.probs * (softplus(-q.logits) - softplus(-p.logits))
    t1 = where(q.probs == 0, math.inf, t1)
    t1 = where(p.probs == 0, 0.0, t1)
    t2 = (1 - p.probs) * (softplus(q.logits) - softplus(p.logits))
    t2 = where(q.probs == 1, math.inf, t2)
    t2 = where(p.probs == 1, 0.0, t2)
    return t1 + t2


@register_kl(Uniform, Uniform)
def _kl_uniform_uniform(p: Uniform, q: Uniform) -> Tensor:
    result = log((q.high - q.low) / (p.high - p.low))
    return where((q.low > p.low) | (q.high < p.high), math.inf, result)


@register_kl(MultivariateNormal, MultivariateNormal)
def _kl_multivariatenormal_multivariatenormal(p: MultivariateNormal, q: MultivariateNormal) -> Tensor:
    """0.5 (tr(Sq^-1 Sp) + (mq - mp)^T Sq^-1 (mq - mp) - n) + log|Lq| - log|Lp| (torch's formula, through
    triangular solves)."""
    if p.event_shape != q.event_shape:
        raise ValueError("KL-divergence between two Multivariate Normals with different event shapes cannot be "
                         "computed")
    from ..linalg import solve_triangular

    half_term1 = (sum(log(diagonal(q._unbroadcasted_scale_tril, 0, -2, -1)), -1)
                  - sum(log(diagonal(p._unbroadcasted_scale_tril, 0, -2, -1)), -1))
    n = p.event_shape[0]
    batch = meta.broadcast(tuple(q._unbroadcasted_scale_tril.shape)[:-2],
                           tuple(p._unbroadcasted_scale_tril.shape)[:-2])
    ratio = solve_triangular(expand(q._unbroadcasted_scale_tril, batch + (n, n)),
                             expand(p._unbroadcasted_scale_tril, batch + (n, n)), upper=False)
    term2 = sum(ratio * ratio, (-2, -1))
    term3 = batch_mahalanobis(q._unbroadcasted_scale_tril, q.loc - p.loc)
    return half_term1 + 0.5 * (term2 + term3 - n)


@register_kl(Independent, Independent)
def _kl_independent_independent(p: Independent, q: Independent) -> Tensor:
    if p.reinterpreted_batch_ndims != q.reinterpreted_batch_ndims:
        raise NotImplementedError
    return sum_rightmost(kl_divergence(p.base_dist, q.base_dist), p.reinterpreted_batch_ndims)


@register_kl(Gamma, Gamma)
def _kl_gamma_gamma(p: Gamma, q: Gamma) -> Tensor:
    t1 = q.concentration * log(p.rate / q.rate)
    t2 = lgamma(q.concentration) - lgamma(p.concentration)
    t3 = (p.concentration - q.concentration) * digamma(p.concentration)
    t4 = (q.rate - p.rate) * (p.concentration / p.rate)
    return t1 + t2 + t3 + t4


@register_kl(Dirichlet, Dirichlet)
def _kl_dirichlet_dirichlet(p: Dirichlet, q: Dirichlet) -> Tensor:
    sum_p, sum_q = sum(p.concentration, -1), sum(q.concentration, -1)
    t1 = lgamma(sum_p) - lgamma(sum_q)
    t2 = sum(lgamma(p.concentration) - lgamma(q.concentration), -1)
    t3 = p.concentration - q.concentration
    t4 = digamma(p.concentration) - unsqueeze(digamma(sum_p), -1)
    return t1 - t2 + sum(t3 * t4, -1)


@register_kl(Beta, Beta)
def _kl_beta_beta(p: Beta, q: Beta) -> Tensor:
    return _kl_dirichlet_dirichlet(p._dirichlet, q._dirichlet)
