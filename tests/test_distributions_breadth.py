"""The rest of torch.distributions against torch: Laplace, LogNormal, Exponential, Poisson, Gumbel, Cauchy,
HalfNormal, HalfCauchy, StudentT, Chi2, Binomial, Geometric, NegativeBinomial, Multinomial, RelaxedBernoulli,
RelaxedOneHotCategorical, ContinuousBernoulli, Weibull, Pareto, LowRankMultivariateNormal, VonMises, and
TransformedDistribution with its transforms and biject_to. For fixed parameters: log_prob, moments, entropy,
cdf/icdf with the gradients of them all; sample shapes and moments; rsample's pathwise gradients; KL pairs; torch's
refusals; a SAC-style tanh-squashed Normal eager and compiled."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.distributions as td

import graphc
import graphc.distributions as gd

R = np.random.default_rng(7)
PROBS = R.dirichlet(np.ones(4), size=3)
W_LOW = R.normal(size=(3, 2)) * 0.5
L_LOW = np.tril(R.normal(size=(2, 3, 3)), -1) + np.diag(R.uniform(0.5, 1.5, 3))


def assert_close(ours, theirs, rtol: float = 1e-6, atol: float = 1e-8) -> None:
    expected = theirs.detach().numpy()
    assert tuple(ours.shape) == expected.shape
    np.testing.assert_allclose(ours.numpy(force=True), expected, rtol=rtol, atol=atol)


def _pos(*shape):
    return R.uniform(0.5, 2.0, size=shape)


TOL = (1e-6, 1e-8)
# (id, class name, parameters that are leaves requiring grad, other arguments, a value for log_prob, properties
# compared, (rtol, atol))
CASES = [
    ("laplace", "Laplace", {"loc": R.normal(size=(2, 3)), "scale": _pos(3)}, {}, R.normal(size=(4, 2, 3)),
     ("mean", "mode", "stddev", "variance", "entropy", "cdf", "icdf"), TOL),
    ("cauchy", "Cauchy", {"loc": R.normal(size=3), "scale": _pos(2, 3)}, {}, R.normal(size=(2, 3)),
     ("mean", "mode", "variance", "entropy", "cdf", "icdf"), TOL),
    ("exponential", "Exponential", {"rate": _pos(2, 3)}, {}, _pos(4, 2, 3),
     ("mean", "mode", "stddev", "variance", "entropy", "cdf", "icdf"), TOL),
    ("lognormal", "LogNormal", {"loc": R.normal(size=(2, 3)) * 0.3, "scale": _pos(3) * 0.5}, {}, _pos(4, 2, 3),
     ("mean", "mode", "variance", "entropy", "cdf", "icdf"), TOL),
    ("halfnormal", "HalfNormal", {"scale": _pos(2, 3)}, {}, _pos(2, 3),
     ("mean", "mode", "variance", "entropy", "cdf", "icdf"), TOL),
    ("halfcauchy", "HalfCauchy", {"scale": _pos(3)}, {}, _pos(2, 3),
     ("mean", "mode", "variance", "entropy", "cdf", "icdf"), TOL),
    ("gumbel", "Gumbel", {"loc": R.normal(size=3), "scale": _pos(2, 3)}, {}, R.normal(size=(2, 3)),
     ("mean", "mode", "stddev", "variance", "entropy", "cdf", "icdf"), TOL),
    ("studentt", "StudentT", {"df": np.array([0.8, 1.5, 3.0, 7.0]), "loc": R.normal(size=4), "scale": _pos(4)}, {},
     R.normal(size=(3, 4)), ("mean", "mode", "variance", "entropy"), TOL),
    ("chi2", "Chi2", {"df": _pos(2, 3) * 2}, {}, _pos(2, 3), ("mean", "mode", "variance", "entropy"), TOL),
    ("weibull", "Weibull", {"scale": _pos(3), "concentration": _pos(2, 3) + 0.5}, {}, _pos(2, 3),
     ("mean", "mode", "variance", "entropy", "cdf", "icdf"), TOL),
    ("pareto", "Pareto", {"scale": _pos(3) * 0.5, "alpha": _pos(2, 3) * 2}, {}, _pos(2, 3) + 1.0,
     ("mean", "mode", "variance", "entropy", "cdf", "icdf"), TOL),
    ("poisson", "Poisson", {"rate": _pos(2, 3) * 3}, {}, R.integers(0, 6, size=(4, 2, 3)).astype(float),
     ("mean", "mode", "variance"), TOL),
    ("geometric_probs", "Geometric", {"probs": R.uniform(0.1, 0.9, size=3)}, {}, np.array([0.0, 2.0, 5.0]),
     ("mean", "mode", "variance", "entropy", "logits"), TOL),
    ("geometric_logits", "Geometric", {"logits": R.normal(size=(2, 3))}, {}, np.array([0.0, 2.0, 5.0]),
     ("mean", "variance", "entropy", "probs"), TOL),
    ("binomial", "Binomial", {"probs": R.uniform(0.1, 0.9, size=(2, 3))}, {"total_count": 6},
     R.integers(0, 7, size=(2, 3)).astype(float), ("mean", "mode", "variance", "entropy", "logits"), TOL),
    ("binomial_logits", "Binomial", {"logits": R.normal(size=3) * 2, "total_count": np.array([3.0, 5.0, 9.0])}, {},
     np.array([1.0, 5.0, 0.0]), ("mean", "mode", "variance", "probs"), TOL),
    ("negative_binomial", "NegativeBinomial", {"total_count": _pos(3) * 3, "logits": R.normal(size=(2, 3))}, {},
     R.integers(0, 8, size=(2, 3)).astype(float), ("mean", "mode", "variance", "probs"), TOL),
    ("negative_binomial_probs", "NegativeBinomial", {"probs": R.uniform(0.1, 0.9, size=3)}, {"total_count": 4.0},
     np.array([0.0, 3.0, 9.0]), ("mean", "variance", "logits"), TOL),
    ("multinomial", "Multinomial", {"probs": PROBS * 3}, {"total_count": 5},
     np.array([[1.0, 2.0, 0.0, 2.0], [5.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 3.0]]),
     ("mean", "variance", "entropy", "logits"), TOL),
    ("multinomial_logits", "Multinomial", {"logits": R.normal(size=(2, 4))}, {"total_count": 3},
     np.array([1.0, 0.0, 0.0, 2.0]), ("mean", "variance", "entropy", "probs"), TOL),
    ("relaxed_bernoulli", "RelaxedBernoulli", {"temperature": np.array(0.7), "logits": R.normal(size=(2, 3))}, {},
     R.uniform(0.05, 0.95, size=(2, 3)), ("probs",), TOL),
    ("relaxed_onehot", "RelaxedOneHotCategorical", {"temperature": np.array(0.5), "probs": PROBS}, {},
     PROBS[::-1].copy(), ("logits",), TOL),
    ("continuous_bernoulli", "ContinuousBernoulli", {"probs": np.array([0.1, 0.4995, 0.7, 0.93])}, {},
     np.array([0.3, 0.9, 0.5, 0.01]), ("mean", "variance", "stddev", "entropy", "cdf", "icdf", "logits"), TOL),
    ("continuous_bernoulli_logits", "ContinuousBernoulli", {"logits": R.normal(size=(2, 3)) * 2}, {},
     R.uniform(0.05, 0.95, size=(2, 3)), ("mean", "variance", "entropy", "probs"), TOL),
    ("lowrank_mvn", "LowRankMultivariateNormal", {"loc": R.normal(size=(2, 3)), "cov_factor": W_LOW,
                                                  "cov_diag": _pos(3)}, {}, R.normal(size=(4, 2, 3)),
     ("mean", "mode", "variance", "entropy", "scale_tril", "covariance_matrix", "precision_matrix"), TOL),
    # torch approximates log I0 by a polynomial (error ~1e-7); graphc computes it from i0e
    ("von_mises", "VonMises", {"loc": R.normal(size=3), "concentration": np.array([0.3, 2.0, 9.0])}, {},
     R.uniform(-3, 3, size=(2, 3)), ("mean", "mode", "variance"), (2e-6, 1e-7)),
]


def _leaves(values: dict) -> tuple[dict, dict]:
    return ({k: graphc.tensor(v, requires_grad=True) for k, v in values.items()},
            {k: torch.tensor(v, requires_grad=True) for k, v in values.items()})


def _property(dist, name, value, L):
    if name in ("cdf", "icdf"):
        x = np.clip(value, 0.05, 0.95) if name == "icdf" else value
        return getattr(dist, name)(L.tensor(x))
    result = getattr(dist, name)
    return result() if callable(result) else result


def _make(D, cls, params, other):
    return getattr(D, cls)(**params, **other)


@pytest.mark.parametrize("name,cls,params,other,value,props,tol", CASES, ids=[c[0] for c in CASES])
def test_distribution_matches_torch(name, cls, params, other, value, props, tol):
    rtol, atol = tol
    ours, theirs = _leaves(params)
    p, q = _make(gd, cls, ours, other), _make(td, cls, theirs, other)
    assert p.batch_shape == q.batch_shape and p.event_shape == q.event_shape
    assert p.has_rsample == q.has_rsample and p.has_enumerate_support == q.has_enumerate_support
    assert repr(p.support) == repr(q.support) or cls in ("Pareto", "Binomial")
    pairs = [("log_prob", p.log_prob(graphc.tensor(value)), q.log_prob(torch.tensor(value)))]
    pairs += [(k, _property(p, k, value, graphc), _property(q, k, value, torch)) for k in props]
    loss, loss_t = 0, 0
    for k, a, b in pairs:
        assert a.dtype.name == str(b.dtype).removeprefix("torch."), k
        np.testing.assert_allclose(a.numpy(force=True), b.detach().numpy(), rtol=rtol, atol=atol, err_msg=k)
        if b.requires_grad:
            finite = np.isfinite(b.detach().numpy())
            w = np.where(finite, np.random.randn(*b.shape), 0.0)
            loss = loss + graphc.where(graphc.tensor(finite), a, 0.0).mul(graphc.tensor(w)).sum()
            loss_t = loss_t + torch.where(torch.tensor(finite), b, 0.0).mul(torch.tensor(w)).sum()
    loss.backward()
    loss_t.backward()
    for k in params:
        expected = theirs[k].grad if theirs[k].grad is not None else torch.zeros_like(theirs[k])
        assert_close(ours[k].grad if ours[k].grad is not None else graphc.zeros_like(ours[k]), expected,
                     rtol=rtol, atol=max(atol, 1e-7))
    for shape in ((), (2,)):
        assert p.sample(shape).shape == q.sample(shape).shape
        bigger = (5,) + tuple(p.batch_shape)
        assert p.expand(bigger).sample(shape).shape == q.expand(bigger).sample(shape).shape
        assert type(p.expand(bigger)) is type(p)
    if p.has_rsample:
        assert p.rsample((2,)).shape == q.rsample((2,)).shape
    if p.has_enumerate_support and cls != "Binomial" or name == "binomial":  # one total_count only
        assert_close(p.enumerate_support(), q.enumerate_support())


# (class name, parameters, sample statistics compared with the distribution's moments): 20000 draws each
MOMENTS = [
    ("Laplace", {"loc": [0.5, -1.0], "scale": [1.0, 0.3]}, 4.0),
    ("Exponential", {"rate": [0.5, 3.0]}, 4.0),
    ("LogNormal", {"loc": [0.0, 0.5], "scale": [0.25, 0.4]}, 4.0),
    ("HalfNormal", {"scale": [1.0, 2.5]}, 4.0),
    ("Gumbel", {"loc": [1.0, -2.0], "scale": [0.5, 2.0]}, 4.0),
    ("StudentT", {"df": [5.0, 9.0], "loc": [1.0, 0.0], "scale": [1.0, 0.5]}, 4.0),
    ("Chi2", {"df": [1.5, 6.0]}, 4.0),
    ("Weibull", {"scale": [1.0, 2.0], "concentration": [1.5, 3.0]}, 4.0),
    ("Pareto", {"scale": [1.0, 0.5], "alpha": [5.0, 7.0]}, 4.0),
    ("Poisson", {"rate": [0.7, 12.0]}, 4.0),
    ("Geometric", {"probs": [0.3, 0.8]}, 4.0),
    ("Binomial", {"total_count": [10.0, 3.0], "probs": [0.3, 0.9]}, 4.0),
    ("NegativeBinomial", {"total_count": [4.0, 1.5], "probs": [0.3, 0.6]}, 4.0),
    ("ContinuousBernoulli", {"probs": [0.2, 0.9]}, 4.0),
    ("VonMises", {"loc": [0.5, -2.0], "concentration": [4.0, 20.0]}, 4.0),
    ("LowRankMultivariateNormal", {"loc": [[0.0, 1.0, 2.0]], "cov_factor": W_LOW.tolist(),
                                   "cov_diag": [0.5, 1.0, 1.5]}, 4.0),
]


@pytest.mark.parametrize("cls,params,z", MOMENTS, ids=[m[0] for m in MOMENTS])
def test_sample_moments_match_the_distribution(cls, params, z):
    """The mean and variance of 20000 draws are torch's mean and variance of the distribution, within z standard
    errors (the variance's standard error from the sample's fourth moment)."""
    graphc.manual_seed(11)
    n = 20000
    p = getattr(gd, cls)(**{k: graphc.tensor(v, dtype=graphc.float64) for k, v in params.items()})
    q = getattr(td, cls)(**{k: torch.tensor(v, dtype=torch.float64) for k, v in params.items()})
    x = p.sample((n,)).numpy()
    assert x.dtype == np.float64 and x.shape == (n,) + tuple(q.batch_shape + q.event_shape)
    mean, var = q.mean.numpy(), q.variance.numpy()
    if cls == "VonMises":  # circular: the mean direction and the circular variance
        x = np.exp(1j * x)
        np.testing.assert_allclose(np.angle(x.mean(0)), mean, atol=0.02)
        np.testing.assert_allclose(1 - np.abs(x.mean(0)), var, atol=0.01)
        return
    assert np.all(np.abs(x.mean(0) - mean) <= z * np.sqrt(var / n)), (x.mean(0), mean)
    fourth = ((x - x.mean(0)) ** 4).mean(0)
    assert np.all(np.abs(x.var(0) - var) <= z * np.sqrt((fourth - var ** 2) / n)), (x.var(0), var)
    if p.support.is_discrete:
        assert np.all(x == np.round(x)) and np.all(x >= 0)


# (class name, parameters, the mean as a function of them): the pathwise gradient of a sample mean is the
# gradient of the distribution's mean
PATHWISE = [
    ("Laplace", (0.5, 1.5), lambda a, b: a),
    ("Exponential", (1.5,), lambda a: 1 / a),
    ("LogNormal", (0.2, 0.3), lambda a, b: (a + b ** 2 / 2).exp()),
    ("HalfNormal", (1.5,), lambda a: a * math.sqrt(2 / math.pi)),
    ("Gumbel", (0.5, 1.5), lambda a, b: a + 0.5772156649015329 * b),
    ("StudentT", (6.0, 0.5, 1.5), lambda df, a, b: a),
    ("Weibull", (1.5, 2.0), lambda a, b: a * (1 + 1 / b).lgamma().exp()),
    ("Pareto", (1.0, 4.0), lambda a, b: a * b / (b - 1)),
    ("ContinuousBernoulli", (0.3,), None),
    ("Chi2", (3.0,), lambda a: a),
]


@pytest.mark.parametrize("cls,values,mean", PATHWISE, ids=[p[0] for p in PATHWISE])
def test_rsample_pathwise_gradients(cls, values, mean):
    graphc.manual_seed(5)
    params = [graphc.tensor(v, dtype=graphc.float64, requires_grad=True) for v in values]
    dist = getattr(gd, cls)(*params)
    draws = dist.rsample((40000,))
    assert draws.requires_grad
    draws.mean().backward()
    sampled = np.array([p.grad.item() for p in params])
    exact = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    (getattr(td, cls)(*exact).mean if mean is None else mean(*exact)).backward()
    np.testing.assert_allclose(sampled, [0.0 if e.grad is None else e.grad.item() for e in exact], atol=0.04,
                               rtol=0.04)


def test_transforms_match_torch():
    """Each transform's value, inverse, log|det J| (with gradients), sign, domain/codomain, shapes and caching."""
    x = R.normal(size=(2, 3))
    pos = np.abs(x) + 0.5
    loc, scale = R.normal(size=3), R.uniform(0.5, 2, size=3)
    for make, inp in [
        (lambda T, L: T.ExpTransform(), x), (lambda T, L: T.SigmoidTransform(), x),
        (lambda T, L: T.TanhTransform(), x), (lambda T, L: T.SoftplusTransform(), x),
        (lambda T, L: T.PowerTransform(L.tensor(2.5)), pos), (lambda T, L: T.AffineTransform(0.5, -2.0), x),
        (lambda T, L: T.AffineTransform(L.tensor(loc), L.tensor(scale), event_dim=1), x),
        (lambda T, L: T.ComposeTransform([T.AffineTransform(0.0, 2.0), T.TanhTransform()]), x),
        (lambda T, L: T.ExpTransform().inv, pos), (lambda T, L: T.SoftmaxTransform(), x),
        (lambda T, L: T.IndependentTransform(T.SigmoidTransform(), 1), x),
        (lambda T, L: T.ReshapeTransform((3,), (3, 1)), x), (lambda T, L: T.AbsTransform(), x),
    ]:
        t, tt = make(gd.transforms, graphc), make(td.transforms, torch)
        a, b = graphc.tensor(inp, requires_grad=True), torch.tensor(inp, requires_grad=True)
        y, yt = t(a), tt(b)
        assert_close(y, yt)
        assert_close(t.inv(y), tt.inv(yt), rtol=1e-5)
        assert repr(t.domain) == repr(tt.domain) and repr(t.codomain) == repr(tt.codomain)
        assert t.bijective == tt.bijective
        assert t.forward_shape((4, 2, 3)) == tt.forward_shape((4, 2, 3))
        if tt.bijective and not isinstance(tt, td.transforms.ReshapeTransform):
            lad, lad_t = t.log_abs_det_jacobian(a, y), tt.log_abs_det_jacobian(b, yt)
            assert_close(lad, lad_t, rtol=1e-6)
            assert lad.requires_grad == lad_t.requires_grad
            if not lad_t.requires_grad:
                continue
            lad.sum().backward()
            lad_t.sum().backward()
            assert_close(a.grad, b.grad, rtol=1e-6)
    assert gd.transforms.AffineTransform(1.0, -2.0).sign == -1 and gd.ExpTransform() == gd.ExpTransform()
    cached = gd.TanhTransform(cache_size=1)
    x = graphc.tensor([30.0])
    y = cached(x)
    assert cached.inv(y) is x and cached(x) is y  # no atanh(1) = inf: the cached x comes back
    with pytest.raises(ValueError, match="cache_size must be 0 or 1"):
        gd.ExpTransform(cache_size=2)


def test_biject_to_and_transform_to_match_torch():
    """The transforms that map the reals onto a constraint's region (keeping a parameter positive, bounded or on
    the simplex), applied to the same values; NotImplementedError for a constraint with none."""
    x = R.normal(size=(2, 3))
    for reg, treg in ((gd.biject_to, td.biject_to), (gd.transform_to, td.transform_to)):
        for name, args in (("real", None), ("positive", None), ("nonnegative", None), ("unit_interval", None),
                           ("greater_than", (1.5,)), ("less_than", (-2.0,)), ("interval", (-1.0, 3.0)),
                           ("real_vector", None)):
            c, tc = getattr(gd.constraints, name), getattr(td.constraints, name)
            if args:
                c, tc = c(*args), tc(*args)
            t, tt = reg(c), treg(tc)
            assert_close(t(graphc.tensor(x)), tt(torch.tensor(x)))
            y = t(graphc.tensor(x))
            assert bool(c.check(y).all())
            assert_close(t.log_abs_det_jacobian(graphc.tensor(x), y),
                         tt.log_abs_det_jacobian(torch.tensor(x), tt(torch.tensor(x))))
    assert_close(gd.transform_to(gd.constraints.simplex)(graphc.tensor(x)),
                 td.transform_to(td.constraints.simplex)(torch.tensor(x)))
    for reg in (gd.biject_to, td.biject_to):
        with pytest.raises(NotImplementedError, match="Cannot transform _Boolean constraints"):
            reg(type(reg).__module__.startswith("torch") and td.constraints.boolean or gd.constraints.boolean)


def test_transformed_distribution_matches_torch():
    """A Normal through an affine map and a sigmoid (a logit-normal), and an Independent Normal through a softplus
    with event_dim: log_prob with gradients, cdf/icdf of a decreasing map, shapes, support and expand."""
    ours, theirs = _leaves({"loc": R.normal(size=(2, 3)), "scale": _pos(2, 3)})
    value = R.uniform(0.1, 0.9, size=(4, 2, 3))
    dists = [D.TransformedDistribution(D.Normal(p["loc"], p["scale"]),
                                       [D.transforms.AffineTransform(1.0, -2.0), D.transforms.SigmoidTransform()])
             for D, p in ((gd, ours), (td, theirs))]
    p, q = dists
    assert p.batch_shape == q.batch_shape and p.event_shape == q.event_shape and p.has_rsample
    lp, lpt = p.log_prob(graphc.tensor(value)), q.log_prob(torch.tensor(value))
    assert_close(lp, lpt)
    assert_close(p.cdf(graphc.tensor(value)), q.cdf(torch.tensor(value)))
    assert_close(p.icdf(graphc.tensor(value)), q.icdf(torch.tensor(value)))
    lp.sum().backward()
    lpt.sum().backward()
    for k in ours:
        assert_close(ours[k].grad, theirs[k].grad)
    assert p.expand((5, 2, 3)).sample((2,)).shape == q.expand((5, 2, 3)).sample((2,)).shape
    assert repr(p.support) == repr(q.support)
    vec = [D.TransformedDistribution(D.Normal(L.zeros(2, 3), L.ones(2, 3)),
                                     D.transforms.IndependentTransform(D.transforms.SoftplusTransform(), 1))
           for D, L in ((gd, graphc), (td, torch))]
    assert vec[0].event_shape == vec[1].event_shape == (3,)
    value = _pos(2, 3)
    assert_close(vec[0].log_prob(graphc.tensor(value)), vec[1].log_prob(torch.tensor(value)))


# (class name, parameters of p, parameters of q) for kl_divergence
KL_PAIRS = [
    ("Laplace", "Laplace", {"loc": R.normal(size=3), "scale": _pos(3)}, {"loc": R.normal(size=3), "scale": _pos(3)}),
    ("Exponential", "Exponential", {"rate": _pos(3)}, {"rate": _pos(2, 3)}),
    ("Poisson", "Poisson", {"rate": _pos(3)}, {"rate": _pos(3)}),
    ("Geometric", "Geometric", {"probs": R.uniform(0.1, 0.9, 3)}, {"logits": R.normal(size=3)}),
    ("Binomial", "Binomial", {"total_count": np.array([5.0, 4.0]), "probs": np.array([0.3, 0.6])},
     {"total_count": np.array([5.0, 3.0]), "logits": np.array([0.2, -1.0])}),
    ("Gumbel", "Gumbel", {"loc": R.normal(size=3), "scale": _pos(3)}, {"loc": R.normal(size=3), "scale": _pos(3)}),
    ("HalfNormal", "HalfNormal", {"scale": _pos(3)}, {"scale": _pos(3)}),
    ("Pareto", "Pareto", {"scale": np.array([1.0, 2.0]), "alpha": _pos(2)}, {"scale": np.array([1.5, 1.0]),
                                                                           "alpha": _pos(2)}),
    ("Cauchy", "Cauchy", {"loc": R.normal(size=3), "scale": _pos(3)}, {"loc": R.normal(size=3), "scale": _pos(3)}),
    ("LogNormal", "LogNormal", {"loc": R.normal(size=3), "scale": _pos(3)}, {"loc": R.normal(size=3),
                                                                           "scale": _pos(3)}),
    ("ContinuousBernoulli", "ContinuousBernoulli", {"probs": np.array([0.2, 0.5, 0.8])},
     {"logits": R.normal(size=3)}),
    ("Normal", "Laplace", {"loc": R.normal(size=3), "scale": _pos(3)}, {"loc": R.normal(size=3), "scale": _pos(3)}),
    ("Laplace", "Normal", {"loc": R.normal(size=3), "scale": _pos(3)}, {"loc": R.normal(size=3), "scale": _pos(3)}),
    ("LowRankMultivariateNormal", "LowRankMultivariateNormal",
     {"loc": R.normal(size=(2, 3)), "cov_factor": W_LOW, "cov_diag": _pos(3)},
     {"loc": R.normal(size=3), "cov_factor": R.normal(size=(2, 3, 1)), "cov_diag": _pos(2, 3)}),
    ("MultivariateNormal", "LowRankMultivariateNormal", {"loc": R.normal(size=3), "scale_tril": L_LOW},
     {"loc": R.normal(size=3), "cov_factor": W_LOW, "cov_diag": _pos(3)}),
    ("LowRankMultivariateNormal", "MultivariateNormal",
     {"loc": R.normal(size=3), "cov_factor": W_LOW, "cov_diag": _pos(3)},
     {"loc": R.normal(size=(2, 3)), "scale_tril": L_LOW}),
]


@pytest.mark.parametrize("cp,cq,p_params,q_params", KL_PAIRS, ids=[f"{c[0]}-{c[1]}" for c in KL_PAIRS])
def test_kl_divergence_matches_torch(cp, cq, p_params, q_params):
    (op, tp), (oq, tq) = _leaves(p_params), _leaves(q_params)
    ours = gd.kl_divergence(getattr(gd, cp)(**op), getattr(gd, cq)(**oq))
    theirs = td.kl_divergence(getattr(td, cp)(**tp), getattr(td, cq)(**tq))
    assert_close(ours, theirs)
    finite = np.isfinite(theirs.detach().numpy())
    w = np.where(finite, np.random.randn(*theirs.shape), 0.0)
    graphc.where(graphc.tensor(finite), ours, 0.0).mul(graphc.tensor(w)).sum().backward()
    torch.where(torch.tensor(finite), theirs, 0.0).mul(torch.tensor(w)).sum().backward()
    for ours_leaves, theirs_leaves in ((op, tp), (oq, tq)):
        for k, leaf in ours_leaves.items():
            expected = theirs_leaves[k].grad
            if expected is not None:
                assert_close(leaf.grad, expected, rtol=1e-6, atol=1e-8)


# (fn(D, L) with D = graphc.distributions or torch.distributions and L the library, exception, key words)
ERRORS = [
    (lambda D, L: D.Laplace(L.tensor([0.0]), L.tensor([-1.0])), ValueError, "Expected parameter scale"),
    (lambda D, L: D.Exponential(L.tensor([0.0, 1.0])), ValueError, "GreaterThan(lower_bound=0.0)"),
    (lambda D, L: D.Poisson(L.tensor([1.0])).log_prob(L.tensor([1.5])), ValueError,
     "within the support (IntegerGreaterThan(lower_bound=0))"),
    (lambda D, L: D.Geometric(L.tensor([0.0, 0.5])), ValueError, "to be positive but found invalid values"),
    (lambda D, L: D.Binomial(5, L.tensor([0.5])).log_prob(L.tensor([6.0])), ValueError,
     "to be within the support (IntegerInterval(lower_bound=0, upper_bound="),
    (lambda D, L: D.Binomial(L.tensor([-1.0]), L.tensor([0.5])), ValueError, "Expected parameter total_count"),
    (lambda D, L: D.Multinomial(2.5, L.tensor([0.5, 0.5])), NotImplementedError,
     "inhomogeneous total_count is not supported"),
    (lambda D, L: D.Multinomial(3, L.tensor([0.5, 0.5])).log_prob(L.tensor([-1.0, 4.0])), ValueError,
     "to be within the support (Multinomial()"),
    (lambda D, L: D.LogNormal(L.tensor([0.0]), L.tensor([1.0])).log_prob(L.tensor([-1.0])), ValueError,
     "to be within the support (GreaterThan(lower_bound=0.0)"),
    (lambda D, L: D.Pareto(L.tensor([2.0]), L.tensor([1.0])).log_prob(L.tensor([1.0])), ValueError,
     "to be within the support (GreaterThanEq(lower_bound="),
    (lambda D, L: D.StudentT(L.tensor([-1.0])), ValueError, "Expected parameter df"),
    (lambda D, L: D.Chi2(L.tensor([0.0])), ValueError, "Expected parameter df"),
    (lambda D, L: D.NegativeBinomial(2.0), ValueError, "Either `probs` or `logits` must be specified"),
    (lambda D, L: D.ContinuousBernoulli(L.tensor([1.5]), validate_args=True), ValueError,
     "The parameter probs has invalid values"),
    (lambda D, L: D.LowRankMultivariateNormal(L.zeros(3), L.ones(2, 1), L.ones(3)), ValueError,
     "cov_factor must be a batch of matrices with shape 3 x m"),
    (lambda D, L: D.VonMises(L.tensor([0.0]), L.tensor([0.0])), ValueError, "Expected parameter concentration"),
    (lambda D, L: D.TransformedDistribution(D.Normal(0.0, 1.0), "exp"), ValueError,
     "transforms must be a Transform or list"),
    (lambda D, L: D.Binomial(L.tensor([2.0, 3.0]), L.tensor([0.5, 0.5])).entropy(), NotImplementedError,
     "Inhomogeneous total count not supported by `entropy`."),
    (lambda D, L: D.kl_divergence(D.Binomial(2, L.tensor([0.5])), D.Binomial(3, L.tensor([0.5]))),
     NotImplementedError, "q.total_count > p.total_count"),
]


@pytest.mark.parametrize("fn,error,words", ERRORS)
def test_errors_match_torch(fn, error, words):
    with pytest.raises(error) as theirs:
        fn(td, torch)
    assert words in str(theirs.value)
    with pytest.raises(error) as ours:
        fn(gd, graphc)
    assert words in str(ours.value)


def _sac_actor_loss(D, L, mu, log_std, noise, alpha):
    """SAC's actor: a tanh-squashed Normal, its reparameterized action (from the given noise) and its log-prob."""
    dist = D.TransformedDistribution(D.Normal(mu, log_std.exp()), [D.transforms.TanhTransform(cache_size=1)])
    action = dist.transforms[0](mu + log_std.exp() * noise)
    log_prob = dist.log_prob(action).sum(-1)
    return (alpha * log_prob - action.pow(2).sum(-1)).mean()


def test_tanh_squashed_normal_eager_and_compiled():
    """The SAC actor's loss and its gradients as torch's, eagerly and compiled (one trace for two batch sizes), and
    a compiled step that draws with rsample replays with the same draws as eager under the same seed."""
    compiled = graphc.compile(lambda *a: _sac_actor_loss(gd, graphc, *a))
    for batch in (6, 4):
        mu, log_std, noise = R.normal(size=(batch, 2)), R.normal(size=(batch, 2)) * 0.5, R.normal(size=(batch, 2))
        tm, ts = (torch.tensor(v, requires_grad=True) for v in (mu, log_std))
        expected = _sac_actor_loss(td, torch, tm, ts, torch.tensor(noise), 0.2)
        expected.backward()
        for fn in (lambda *a: _sac_actor_loss(gd, graphc, *a), compiled):
            m, s = graphc.tensor(mu, requires_grad=True), graphc.tensor(log_std, requires_grad=True)
            loss = fn(m, s, graphc.tensor(noise), 0.2)
            assert_close(loss, expected, rtol=1e-6)
            loss.backward()
            assert_close(m.grad, tm.grad, rtol=1e-6)
            assert_close(s.grad, ts.grad, rtol=1e-6)
    assert compiled.num_traces == 1 and not compiled.last_breaks

    def draw(mu, log_std):
        dist = gd.TransformedDistribution(gd.Normal(mu, log_std.exp()), [gd.transforms.TanhTransform(cache_size=1)])
        action = dist.rsample()
        return action, dist.log_prob(action).sum(-1)
    compiled_draw = graphc.compile(draw)
    args = (graphc.randn(5, 2), graphc.randn(5, 2) * 0.3)
    for seed in (0, 1):
        graphc.manual_seed(seed)
        expected = draw(*args)
        graphc.manual_seed(seed)
        for ours, theirs in zip(compiled_draw(*args), expected):
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)
    assert compiled_draw.num_traces == 1 and not compiled_draw.last_breaks
