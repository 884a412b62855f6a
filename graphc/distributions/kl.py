"""torch.distributions.kl: kl_divergence(p, q) dispatched on the pair of types, and register_kl to add pairs."""
from __future__ import annotations

import math

from ..linalg import solve_triangular
from ..nn.functional import softplus
from ..ops import meta
from ..ops.elementwise import abs, erf, exp, log, log1p, where
from ..ops.layout import diag_embed, diagonal
from ..ops.matmul import matmul
from ..ops.reduction import sum
from ..ops.transcendental import digamma, lgamma
from ..ops.view import expand, unsqueeze
from ..tensor import Tensor
from .bernoulli import Bernoulli
from .beta import Beta
from .binomial import Binomial
from .categorical import Categorical
from .cauchy import Cauchy
from .continuous_bernoulli import ContinuousBernoulli
from .dirichlet import Dirichlet
from .distribution import Distribution
from .exponential import Exponential
from .gamma import Gamma
from .geometric import Geometric
from .gumbel import EULER_CONSTANT, Gumbel
from .half_normal import HalfNormal
from .independent import Independent
from .laplace import Laplace
from .lowrank_multivariate_normal import (
    LowRankMultivariateNormal,
    _batch_lowrank_logdet,
    _batch_lowrank_mahalanobis,
)
from .multivariate_normal import MultivariateNormal, batch_mahalanobis
from .normal import Normal
from .one_hot_categorical import OneHotCategorical
from .pareto import Pareto
from .poisson import Poisson
from .transformed_distribution import TransformedDistribution
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


@register_kl(Binomial, Binomial)
def _kl_binomial_binomial(p: Binomial, q: Binomial) -> Tensor:
    if bool((p.total_count < q.total_count).any()):
        raise NotImplementedError("KL between Binomials where q.total_count > p.total_count is not implemented")
    kl = p.total_count * (p.probs * (p.logits - q.logits) + log1p(-p.probs) - log1p(-q.probs))
    return where(p.total_count > q.total_count, math.inf, kl)


@register_kl(ContinuousBernoulli, ContinuousBernoulli)
def _kl_continuous_bernoulli_continuous_bernoulli(p: ContinuousBernoulli, q: ContinuousBernoulli) -> Tensor:
    t1 = p.mean * (p.logits - q.logits)
    t2 = p._cont_bern_log_norm() + log1p(-p.probs)
    t3 = -q._cont_bern_log_norm() - log1p(-q.probs)
    return t1 + t2 + t3


@register_kl(Exponential, Exponential)
def _kl_exponential_exponential(p: Exponential, q: Exponential) -> Tensor:
    rate_ratio = q.rate / p.rate
    return -log(rate_ratio) + rate_ratio - 1


@register_kl(Gumbel, Gumbel)
def _kl_gumbel_gumbel(p: Gumbel, q: Gumbel) -> Tensor:
    ct1, ct2, ct3 = p.scale / q.scale, q.loc / q.scale, p.loc / q.scale
    t1 = -log(ct1) - ct2 + ct3
    t3 = exp(ct2 + lgamma(1 + ct1) - ct3)
    return t1 + ct1 * EULER_CONSTANT + t3 - (1 + EULER_CONSTANT)


@register_kl(Geometric, Geometric)
def _kl_geometric_geometric(p: Geometric, q: Geometric) -> Tensor:
    return -p.entropy() - log1p(-q.probs) / p.probs - q.logits


@register_kl(HalfNormal, HalfNormal)
def _kl_halfnormal_halfnormal(p: HalfNormal, q: HalfNormal) -> Tensor:
    return _kl_normal_normal(p.base_dist, q.base_dist)


@register_kl(Laplace, Laplace)
def _kl_laplace_laplace(p: Laplace, q: Laplace) -> Tensor:
    """Gil, "Calculating and Estimating Second Order Rényi Entropies" (2011), as torch's."""
    scale_ratio, loc_abs_diff = p.scale / q.scale, abs(p.loc - q.loc)
    return -log(scale_ratio) + loc_abs_diff / q.scale + scale_ratio * exp(-loc_abs_diff / p.scale) - 1


@register_kl(Pareto, Pareto)
def _kl_pareto_pareto(p: Pareto, q: Pareto) -> Tensor:
    scale_ratio, alpha_ratio = p.scale / q.scale, q.alpha / p.alpha
    result = q.alpha * log(scale_ratio) - log(alpha_ratio) + alpha_ratio - 1
    return where(p.support.lower_bound < q.support.lower_bound, math.inf, result)


@register_kl(Poisson, Poisson)
def _kl_poisson_poisson(p: Poisson, q: Poisson) -> Tensor:
    return p.rate * (log(p.rate) - log(q.rate)) - (p.rate - q.rate)


@register_kl(Cauchy, Cauchy)
def _kl_cauchy_cauchy(p: Cauchy, q: Cauchy) -> Tensor:
    """Chyzak and Nielsen, "A closed-form formula for the Kullback-Leibler divergence between Cauchy
    distributions" (2019)."""
    return log((p.scale + q.scale).pow(2) + (p.loc - q.loc).pow(2)) - log(4 * p.scale * q.scale)


@register_kl(TransformedDistribution, TransformedDistribution)
def _kl_transformed_transformed(p: TransformedDistribution, q: TransformedDistribution) -> Tensor:
    """KL is invariant under one bijection applied to both (LogNormal pairs)."""
    if p.transforms != q.transforms or p.event_shape != q.event_shape:
        raise NotImplementedError
    return kl_divergence(p.base_dist, q.base_dist)


@register_kl(Normal, Laplace)
def _kl_normal_laplace(p: Normal, q: Laplace) -> Tensor:
    loc_diff, scale_ratio = p.loc - q.loc, p.scale / q.scale
    loc_diff_scale_ratio = loc_diff / p.scale
    t2 = math.sqrt(2 / math.pi) * p.scale * exp(-0.5 * loc_diff_scale_ratio.pow(2))
    t3 = loc_diff * erf(math.sqrt(0.5) * loc_diff_scale_ratio)
    return -log(scale_ratio) + (t2 + t3) / q.scale - (0.5 * (1 + math.log(0.5 * math.pi)))


@register_kl(Laplace, Normal)
def _kl_laplace_normal(p: Laplace, q: Normal) -> Tensor:
    var_normal = q.scale.pow(2)
    scale_sqr_var_ratio = p.scale.pow(2) / var_normal
    t1 = 0.5 * log(2 * scale_sqr_var_ratio / math.pi)
    t2, t3, t4 = 0.5 * p.loc.pow(2), p.loc * q.loc, 0.5 * q.loc.pow(2)
    return -t1 + scale_sqr_var_ratio + (t2 - t3 + t4) / var_normal - 1


def _trace_xxt(x: Tensor) -> Tensor:
    """tr(X X^T) of a batch of matrices: the sum of their squared entries."""
    return sum(x * x, (-2, -1))


def _check_event_shapes(p: Distribution, q: Distribution) -> None:
    if p.event_shape != q.event_shape:
        raise ValueError("KL-divergence between two (Low Rank) Multivariate Normals with different event shapes "
                         "cannot be computed")


def _lowrank_logdet(d: LowRankMultivariateNormal) -> Tensor:
    return _batch_lowrank_logdet(d._unbroadcasted_cov_diag, d._capacitance_tril)


def _lowrank_precision_factor(q: LowRankMultivariateNormal) -> Tensor:
    """A with inv(q's covariance) = inv(D) - A^T A (the Woodbury identity)."""
    qwt_qdinv = q._unbroadcasted_cov_factor.mT / unsqueeze(q._unbroadcasted_cov_diag, -2)
    return solve_triangular(q._capacitance_tril, qwt_qdinv, upper=False)


def _lowrank_mahalanobis(q: LowRankMultivariateNormal, x: Tensor) -> Tensor:
    return _batch_lowrank_mahalanobis(q._unbroadcasted_cov_factor, q._unbroadcasted_cov_diag, x, q._capacitance_tril)


@register_kl(LowRankMultivariateNormal, LowRankMultivariateNormal)
def _kl_lowrankmultivariatenormal_lowrankmultivariatenormal(p: LowRankMultivariateNormal,
                                                            q: LowRankMultivariateNormal) -> Tensor:
    """tr(inv(Sq) Sp) expanded as torch's: inv(Sq) Sp = (inv(Dq) - A^T A)(Dp + Wp Wp^T)."""
    _check_event_shapes(p, q)
    term1 = _lowrank_logdet(q) - _lowrank_logdet(p)
    term3 = _lowrank_mahalanobis(q, q.loc - p.loc)
    a = _lowrank_precision_factor(q)
    term21 = sum(p._unbroadcasted_cov_diag / q._unbroadcasted_cov_diag, -1)
    term22 = _trace_xxt(p._unbroadcasted_cov_factor * unsqueeze(q._unbroadcasted_cov_diag.rsqrt(), -1))
    term23 = _trace_xxt(a * unsqueeze(p._unbroadcasted_cov_diag.sqrt(), -2))
    term24 = _trace_xxt(matmul(a, p._unbroadcasted_cov_factor))
    return 0.5 * (term1 + term21 + term22 - term23 - term24 + term3 - p.event_shape[0])


@register_kl(MultivariateNormal, LowRankMultivariateNormal)
def _kl_multivariatenormal_lowrankmultivariatenormal(p: MultivariateNormal, q: LowRankMultivariateNormal) -> Tensor:
    """tr(inv(Sq) Sp) expanded as torch's: inv(Sq) Sp = (inv(Dq) - A^T A) Lp Lp^T."""
    _check_event_shapes(p, q)
    term1 = _lowrank_logdet(q) - 2 * sum(log(diagonal(p._unbroadcasted_scale_tril, 0, -2, -1)), -1)
    term3 = _lowrank_mahalanobis(q, q.loc - p.loc)
    a = _lowrank_precision_factor(q)
    term21 = _trace_xxt(p._unbroadcasted_scale_tril * unsqueeze(q._unbroadcasted_cov_diag.rsqrt(), -1))
    term22 = _trace_xxt(matmul(a, p._unbroadcasted_scale_tril))
    return 0.5 * (term1 + term21 - term22 + term3 - p.event_shape[0])


@register_kl(LowRankMultivariateNormal, MultivariateNormal)
def _kl_lowrankmultivariatenormal_multivariatenormal(p: LowRankMultivariateNormal, q: MultivariateNormal) -> Tensor:
    """tr(inv(Sq) Sp) = |Lq^-1 Wp|^2 + |Lq^-1 Dp^(1/2)|^2 (Frobenius norms), as torch's."""
    _check_event_shapes(p, q)
    term1 = 2 * sum(log(diagonal(q._unbroadcasted_scale_tril, 0, -2, -1)), -1) - _lowrank_logdet(p)
    term3 = batch_mahalanobis(q._unbroadcasted_scale_tril, q.loc - p.loc)
    n, m = p.event_shape[0], p.cov_factor.shape[-1]
    batch = meta.broadcast(tuple(q._unbroadcasted_scale_tril.shape)[:-2],
                           tuple(p._unbroadcasted_cov_factor.shape)[:-2])
    q_scale_tril = expand(q._unbroadcasted_scale_tril, batch + (n, n))
    term21 = _trace_xxt(solve_triangular(q_scale_tril, expand(p._unbroadcasted_cov_factor, batch + (n, m)),
                                         upper=False))
    p_cov_diag = expand(diag_embed(p._unbroadcasted_cov_diag.sqrt()), batch + (n, n))
    term22 = _trace_xxt(solve_triangular(q_scale_tril, p_cov_diag, upper=False))
    return 0.5 * (term1 + term21 + term22 + term3 - p.event_shape[0])
