"""graphc.distributions against torch.distributions: log_prob, cdf/icdf, entropy, moments and KL for fixed
parameters with their gradients, shapes of samples, sample statistics with a fixed seed, validation errors, and a
REINFORCE policy-gradient step eager and compiled."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
import torch.distributions as td

import graphc
import graphc.distributions as gd
import graphc.nn as nn


def assert_close(ours, theirs, rtol: float = 1e-6, atol: float = 1e-8) -> None:
    expected = theirs.detach().numpy()
    assert tuple(ours.shape) == expected.shape
    np.testing.assert_allclose(ours.numpy(force=True), expected, rtol=rtol, atol=atol)


def leaves(values: dict) -> tuple[dict, dict]:
    """Each parameter as a float64 leaf requiring grad, in graphc and in torch."""
    return ({k: graphc.tensor(v, requires_grad=True) for k, v in values.items()},
            {k: torch.tensor(v, requires_grad=True) for k, v in values.items()})


R = np.random.default_rng(0)
PROBS = R.dirichlet(np.ones(4), size=3)
L_LOW = np.tril(R.normal(size=(2, 3, 3)), -1) + np.diag(R.uniform(0.5, 1.5, 3))
SPD = L_LOW @ L_LOW.transpose(0, 2, 1)

# (name, distribution class name, parameters, a value for log_prob, properties compared)
CASES = [
    ("normal", "Normal", {"loc": R.normal(size=(2, 3)), "scale": R.uniform(0.5, 2, size=3)}, R.normal(size=(4, 2, 3)),
     ("mean", "mode", "stddev", "variance", "entropy", "cdf", "icdf")),
    ("uniform", "Uniform", {"low": -R.uniform(size=3), "high": R.uniform(1, 2, size=3)}, R.uniform(size=(2, 3)),
     ("mean", "stddev", "variance", "entropy", "cdf", "icdf")),
    ("bernoulli_probs", "Bernoulli", {"probs": R.uniform(0.1, 0.9, size=(2, 3))},
     R.integers(0, 2, size=(2, 3)).astype(float), ("mean", "mode", "variance", "entropy", "logits")),
    ("bernoulli_logits", "Bernoulli", {"logits": R.normal(size=3)}, np.array([0.0, 1.0, 1.0]),
     ("mean", "variance", "entropy", "probs")),
    ("categorical_probs", "Categorical", {"probs": PROBS * 2}, np.array([0, 3, 1]),
     ("mode", "entropy", "logits", "probs")),
    ("categorical_logits", "Categorical", {"logits": R.normal(size=(2, 3, 4))}, np.array([[0, 3, 1], [2, 2, 0]]),
     ("mode", "entropy", "logits", "probs")),
    ("onehot", "OneHotCategorical", {"logits": R.normal(size=(3, 4))}, np.eye(4)[[1, 3, 0]],
     ("mean", "mode", "variance", "entropy")),
    ("gamma", "Gamma", {"concentration": R.uniform(0.5, 3, size=(2, 3)), "rate": R.uniform(0.5, 2, size=3)},
     R.uniform(0.1, 4, size=(2, 3)), ("mean", "mode", "variance", "entropy")),
    ("beta", "Beta", {"concentration1": R.uniform(1.2, 3, size=3), "concentration0": R.uniform(1.2, 3, size=(2, 3))},
     R.uniform(0.05, 0.95, size=(2, 3)), ("mean", "mode", "variance", "entropy")),
    ("dirichlet", "Dirichlet", {"concentration": R.uniform(0.5, 3, size=(2, 4))}, PROBS[:2],
     ("mean", "variance", "entropy")),
    ("dirichlet_mode", "Dirichlet", {"concentration": np.array([[0.5, 0.7, 0.2], [1.5, 3.0, 2.0]])}, PROBS[:2, :3] /
     PROBS[:2, :3].sum(-1, keepdims=True), ("mode",)),
    ("mvn_scale_tril", "MultivariateNormal", {"loc": R.normal(size=(2, 3)), "scale_tril": L_LOW},
     R.normal(size=(5, 2, 3)), ("mean", "variance", "entropy", "covariance_matrix", "precision_matrix")),
    ("mvn_covariance", "MultivariateNormal", {"loc": R.normal(size=3), "covariance_matrix": SPD},
     R.normal(size=(2, 3)), ("mean", "variance", "entropy", "scale_tril")),
    ("mvn_precision", "MultivariateNormal", {"loc": R.normal(size=3), "precision_matrix": SPD[0]},
     R.normal(size=3), ("variance", "entropy", "scale_tril")),
]


def _property(dist, name, value, L):
    if name in ("cdf", "icdf"):
        return getattr(dist, name)(L.tensor(1 / (1 + np.exp(-value)) if name == "icdf" else value))
    result = getattr(dist, name)
    return result() if callable(result) else result


@pytest.mark.parametrize("name,cls,params,value,props", CASES, ids=[c[0] for c in CASES])
def test_distribution_matches_torch(name, cls, params, value, props):
    ours, theirs = leaves(params)
    p, q = getattr(gd, cls)(**ours), getattr(td, cls)(**theirs)
    assert p.batch_shape == q.batch_shape and p.event_shape == q.event_shape
    assert p.has_rsample == q.has_rsample and p.has_enumerate_support == q.has_enumerate_support
    pairs = [(p.log_prob(graphc.tensor(value)), q.log_prob(torch.tensor(value)))]
    pairs += [(_property(p, k, value, graphc), _property(q, k, value, torch)) for k in props]
    loss, loss_t = 0, 0
    for a, b in pairs:
        assert a.dtype.name == str(b.dtype).removeprefix("torch.")
        assert_close(a, b)
        if b.requires_grad:
            w = np.random.randn(*b.shape)
            loss, loss_t = loss + (a * graphc.tensor(w)).sum(), loss_t + (b * torch.tensor(w)).sum()
    loss.backward()
    loss_t.backward()
    for k in params:
        assert_close(ours[k].grad, theirs[k].grad, rtol=1e-6, atol=1e-8)
    for shape in ((), (2,), (4, 1)):
        assert p.sample(shape).shape == q.sample(shape).shape
        assert p.expand((5,) + tuple(p.batch_shape)).sample(shape).shape == \
            q.expand((5,) + tuple(q.batch_shape)).sample(shape).shape
    if p.has_enumerate_support:
        assert_close(p.enumerate_support(), q.enumerate_support())


def test_independent_normal_matches_torch():
    ours, theirs = leaves({"loc": R.normal(size=(2, 3)), "scale": R.uniform(0.5, 2, size=(2, 3))})
    p = gd.Independent(gd.Normal(ours["loc"], ours["scale"]), 1)
    q = td.Independent(td.Normal(theirs["loc"], theirs["scale"]), 1)
    assert p.batch_shape == q.batch_shape and p.event_shape == q.event_shape
    value = R.normal(size=(4, 2, 3))
    a, b = p.log_prob(graphc.tensor(value)) + p.entropy(), q.log_prob(torch.tensor(value)) + q.entropy()
    assert_close(a, b)
    a.sum().backward()
    b.sum().backward()
    assert_close(ours["scale"].grad, theirs["scale"].grad)
    assert p.rsample((7,)).shape == q.rsample((7,)).shape


KL_PAIRS = [
    ("Normal", {"loc": R.normal(size=3), "scale": R.uniform(0.5, 2, size=3)},
     {"loc": R.normal(size=(2, 3)), "scale": R.uniform(0.5, 2, size=(2, 3))}),
    ("Categorical", {"logits": R.normal(size=(2, 4))}, {"probs": PROBS[:2]}),
    ("Bernoulli", {"probs": R.uniform(0.1, 0.9, size=3)}, {"logits": R.normal(size=3)}),
    ("OneHotCategorical", {"probs": PROBS}, {"logits": R.normal(size=(3, 4))}),
    ("Uniform", {"low": np.array([0.0, 0.5]), "high": np.array([1.0, 0.9])},
     {"low": np.array([-1.0, 0.6]), "high": np.array([2.0, 3.0])}),
    ("Gamma", {"concentration": R.uniform(0.5, 3, size=3), "rate": R.uniform(0.5, 2, size=3)},
     {"concentration": R.uniform(0.5, 3, size=(2, 3)), "rate": R.uniform(0.5, 2, size=3)}),
    ("Beta", {"concentration1": R.uniform(0.5, 3, size=3), "concentration0": R.uniform(0.5, 3, size=3)},
     {"concentration1": R.uniform(0.5, 3, size=3), "concentration0": R.uniform(0.5, 3, size=3)}),
    ("Dirichlet", {"concentration": R.uniform(0.5, 3, size=(2, 4))}, {"concentration": R.uniform(0.5, 3, size=4)}),
    ("MultivariateNormal", {"loc": R.normal(size=(2, 3)), "scale_tril": L_LOW},
     {"loc": R.normal(size=3), "covariance_matrix": SPD[1]}),
]


@pytest.mark.parametrize("cls,p_params,q_params", KL_PAIRS, ids=[c[0] for c in KL_PAIRS])
def test_kl_divergence_matches_torch(cls, p_params, q_params):
    (op, tp), (oq, tq) = leaves(p_params), leaves(q_params)
    ours = gd.kl_divergence(getattr(gd, cls)(**op), getattr(gd, cls)(**oq))
    theirs = td.kl_divergence(getattr(td, cls)(**tp), getattr(td, cls)(**tq))
    assert_close(ours, theirs)
    finite = np.isfinite(theirs.detach().numpy())
    w = np.where(finite, np.random.randn(*theirs.shape), 0.0)
    graphc.where(graphc.tensor(finite), ours, 0.0).mul(graphc.tensor(w)).sum().backward()
    torch.where(torch.tensor(finite), theirs, 0.0).mul(torch.tensor(w)).sum().backward()
    for k in (*p_params, *q_params):
        for ours_leaf, theirs_leaf in ((op.get(k), tp.get(k)), (oq.get(k), tq.get(k))):
            if ours_leaf is not None:
                assert_close(ours_leaf.grad, theirs_leaf.grad)


def test_kl_divergence_independent_and_unregistered_pair():
    loc, scale = graphc.zeros(2, 3), graphc.ones(2, 3)
    p = gd.Independent(gd.Normal(loc, scale), 1)
    q = gd.Independent(gd.Normal(loc + 1, scale * 2), 1)
    expected = td.kl_divergence(td.Independent(td.Normal(torch.zeros(2, 3), torch.ones(2, 3)), 1),
                                td.Independent(td.Normal(torch.ones(2, 3), torch.full((2, 3), 2.0)), 1))
    np.testing.assert_allclose(gd.kl_divergence(p, q).numpy(), expected.numpy(), rtol=1e-6)
    with pytest.raises(NotImplementedError):
        gd.kl_divergence(gd.Normal(0.0, 1.0), gd.Bernoulli(0.5))


def test_sample_statistics_with_a_fixed_seed():
    """Moments of 20000 draws per distribution are those of the distribution (to ~4 standard errors); the same
    seed gives the same draws; rsample carries gradients to the parameters."""
    graphc.manual_seed(1)
    n = 20000
    normal = gd.Normal(graphc.tensor([1.0, -2.0]), graphc.tensor([0.5, 3.0]))
    x = normal.sample((n,)).numpy()
    np.testing.assert_allclose(x.mean(0), [1.0, -2.0], atol=4 * 3.0 / n ** 0.5)
    np.testing.assert_allclose(x.std(0), [0.5, 3.0], rtol=0.03)
    probs = np.array([0.1, 0.2, 0.7])
    counts = np.bincount(gd.Categorical(graphc.tensor(probs)).sample((n,)).numpy(), minlength=3) / n
    np.testing.assert_allclose(counts, probs, atol=4 * (0.25 / n) ** 0.5)
    assert abs(gd.Bernoulli(0.3).sample((n,)).numpy().mean() - 0.3) < 4 * (0.21 / n) ** 0.5
    u = gd.Uniform(2.0, 5.0).sample((n,)).numpy()
    assert u.min() >= 2.0 and u.max() < 5.0 and abs(u.mean() - 3.5) < 0.05
    mvn = gd.MultivariateNormal(graphc.zeros(3, dtype=graphc.float64), graphc.tensor(SPD[0]))
    np.testing.assert_allclose(np.cov(mvn.sample((n,)).numpy().T), SPD[0], atol=0.15)
    graphc.manual_seed(5)
    first = normal.sample((3,)).numpy()
    graphc.manual_seed(5)
    np.testing.assert_array_equal(normal.sample((3,)).numpy(), first)
    scale = graphc.tensor([0.5, 3.0], requires_grad=True)
    draw = gd.Normal(graphc.zeros(2), scale).rsample((4,))
    assert draw.requires_grad and not gd.Normal(graphc.zeros(2), scale).sample().requires_grad
    draw.sum().backward()
    np.testing.assert_allclose(scale.grad.numpy(), (draw.detach() / scale.detach()).sum(0).numpy(), rtol=1e-6)


def test_gamma_family_rsample_gradients():
    """Gamma samples' implicit reparameterization gradient matches torch's _standard_gamma_grad (within its
    approximation error); pathwise gradients of Gamma, Beta and Dirichlet sample means equal the gradients of the
    distributions' means (to sampling error)."""
    alpha = np.array([0.05, 0.5, 2.0, 10.0, 50.0])
    x = np.array([0.001, 0.3, 1.5, 12.0, 45.0])
    from graphc.ops.gamma import standard_gamma_grad
    np.testing.assert_allclose(standard_gamma_grad(graphc.tensor(x), graphc.tensor(alpha)).numpy(),
                               torch._standard_gamma_grad(torch.tensor(alpha), torch.tensor(x)).numpy(), rtol=2e-4)
    graphc.manual_seed(3)
    n = 40000
    for make, exact in (
            (lambda a, b: gd.Gamma(a, b), lambda a, b: a / b),
            (lambda a, b: gd.Beta(a, b), lambda a, b: a / (a + b)),
            (lambda a, b: gd.Dirichlet(graphc.stack([a, b, a * b])), lambda a, b: a / (a + b + a * b))):
        params = [graphc.tensor(v, dtype=graphc.float64, requires_grad=True) for v in (1.5, 2.5)]
        make(*params).rsample((n,))[..., 0].mean().backward() if make(*params).event_shape else \
            make(*params).rsample((n,)).mean().backward()
        sampled = [p.grad.item() for p in params]
        expected = graphc.tensor([1.5, 2.5], dtype=graphc.float64, requires_grad=True)
        exact(expected[0], expected[1]).backward()
        np.testing.assert_allclose(sampled, expected.grad.numpy(), atol=0.02)


# (fn(D) with D = graphc.distributions or torch.distributions and L the library): each raises a ValueError
ERRORS = [
    (lambda D, L: D.Normal(L.tensor([0.0]), L.tensor([-1.0])), "Expected parameter scale"),
    (lambda D, L: D.Categorical(L.tensor([0.5, -0.1, 0.6])), "Expected parameter probs"),
    (lambda D, L: D.Categorical(), "Either `probs` or `logits` must be specified, but not both."),
    (lambda D, L: D.Bernoulli(probs=L.tensor([0.5]), logits=L.tensor([0.0])), "Either `probs` or `logits`"),
    (lambda D, L: D.Bernoulli(L.tensor([1.5])), "to satisfy the constraint Interval(lower_bound=0.0, upper_bound="),
    (lambda D, L: D.Uniform(1.0, 0.0), "Expected parameter low (Tensor of shape ()) of distribution Uniform(low: "
     "1.0, high: 0.0) to satisfy the constraint LessThan(upper_bound=0.0)"),
    (lambda D, L: D.Normal(0.0, 1.0).log_prob(0.5), "The value argument to log_prob must be a Tensor"),
    (lambda D, L: D.Categorical(L.ones(3)).log_prob(L.tensor([3])), "to be within the support (IntegerInterval"),
    (lambda D, L: D.Bernoulli(0.5).log_prob(L.tensor([0.5])), "to be within the support (Boolean()"),
    (lambda D, L: D.Normal(L.zeros(3), 1.0).log_prob(L.zeros(2)), "Value is not broadcastable with batch_shape"),
    (lambda D, L: D.MultivariateNormal(L.zeros(2), L.eye(2), scale_tril=L.eye(2)), "Exactly one of"),
    (lambda D, L: D.MultivariateNormal(L.zeros(2), scale_tril=L.ones(2, 2)), "Expected parameter scale_tril"),
    (lambda D, L: D.MultivariateNormal(L.zeros(2), L.tensor([[1.0, 2.0], [2.0, 1.0]])),
     "Expected parameter covariance_matrix"),
]


@pytest.mark.parametrize("fn,words", ERRORS)
def test_validation_errors_match_torch(fn, words):
    with pytest.raises(ValueError, match=None) as theirs:
        fn(td, torch)
    assert words in str(theirs.value)
    with pytest.raises(ValueError) as ours:
        fn(gd, graphc)
    assert words in str(ours.value)


def test_validate_args_false_skips_the_checks():
    assert gd.Normal(0.0, -1.0, validate_args=False).scale.item() == -1.0
    assert gd.Categorical(graphc.ones(3), validate_args=False).log_prob(graphc.tensor(1)).item() == \
        pytest.approx(-math.log(3))


def _policy(nn_module):
    return nn_module.Sequential(nn_module.Linear(4, 16), nn_module.Tanh(), nn_module.Linear(16, 3))


def test_reinforce_step_eager_and_compiled_match_torch():
    """REINFORCE as public policy-gradient scripts write it: actions sampled from Categorical(logits=policy(obs)),
    loss = -(log_prob(action) * advantage).mean() - 0.01 * entropy, an SGD step. The weights follow torch's for the
    same actions, eagerly and with the whole step compiled: the validation checks are ops of the plan, not graph
    breaks, so the step is one plan (a new batch size replays it)."""
    torch_policy = _policy(torch.nn)
    weights = {k: v.detach().numpy().copy() for k, v in torch_policy.state_dict().items()}
    torch_opt = torch.optim.SGD(torch_policy.parameters(), lr=0.1)

    def make_step(L, D, net, opt):
        def step(obs, action, advantage):
            dist = D.Categorical(logits=net(obs))
            loss = -(dist.log_prob(action) * advantage).mean() - 0.01 * dist.entropy().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.detach()
        return step

    runs = {}
    for compiled in (False, True):
        policy = _policy(nn)
        policy.load_state_dict({k: graphc.tensor(v) for k, v in weights.items()})
        step = make_step(graphc, gd, policy, graphc.optim.SGD(policy.parameters(), lr=0.1))
        runs[compiled] = (policy, graphc.compile(step, backend="numpy") if compiled else step)
    torch_step = make_step(torch, td, torch_policy, torch_opt)
    for batch in (8, 5):
        obs = np.random.randn(batch, 4).astype(np.float32)
        with graphc.no_grad():
            action = gd.Categorical(logits=runs[False][0](graphc.tensor(obs))).sample()
        assert action.shape == (batch,) and action.dtype is graphc.int64
        advantage = np.random.randn(batch).astype(np.float32)
        expected = torch_step(torch.tensor(obs), torch.tensor(action.numpy()), torch.tensor(advantage))
        for policy, step in runs.values():
            loss = step(graphc.tensor(obs), action, graphc.tensor(advantage))
            assert abs(loss.item() - expected.item()) < 1e-5
            for (name, p), tp in zip(policy.named_parameters(), torch_policy.parameters()):
                np.testing.assert_allclose(p.detach().numpy(), tp.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
    assert runs[True][1].num_traces == 2 and not runs[True][1].last_breaks  # the first call creates SGD's state


def test_compiled_sampling_draws_as_eager():
    """With the same seed, a compiled function that samples draws what it draws eagerly, at every call."""
    def draw(logits, loc, scale):
        return gd.Categorical(logits=logits).sample((2,)), gd.Normal(loc, scale).rsample() * 2
    compiled = graphc.compile(draw, backend="numpy")
    args = (graphc.randn(3, 4), graphc.randn(3), graphc.rand(3) + 0.5)
    for seed in (0, 1):
        graphc.manual_seed(seed)
        expected = draw(*args)
        graphc.manual_seed(seed)
        for ours, theirs in zip(compiled(*args), expected):
            np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_compiled_validation_refuses_as_eager():
    """Argument and support checks inside a compiled function: one plan, each call checked (ValueError as torch's,
    naming the parameter and the constraint), no graph break and no new trace after a refused call."""
    def make(D):
        return lambda mu, scale, v: D.Normal(mu, scale).log_prob(mu).sum() + D.Bernoulli(probs=scale.sigmoid()) \
            .log_prob(v).sum()
    compiled = graphc.compile(make(gd))
    for scale, v in (([1.0, 2.0], [1.0, 0.0]), ([1.0, -2.0], [1.0, 0.0]), ([1.0, 3.0], [0.5, 0.0]),
                     ([0.5, 1.0], [0.0, 0.0])):
        def run(lib, fn):
            try:
                return fn(lib.tensor([0.0, 1.0]), lib.tensor(scale), lib.tensor(v)).item()
            except ValueError as e:
                return re.sub(r"\(.*?\)\)", "", str(e)).split(", but")[0]
        ours, theirs = run(graphc, compiled), run(torch, make(td))
        if isinstance(theirs, float):
            assert abs(ours - theirs) < 1e-5
        else:
            assert ours.replace("graphc.", "torch.") == theirs
    assert compiled.num_traces == 1 and not compiled.last_breaks


def test_mixture_same_family_matches_torch():
    """A mixture density network's likelihood, as public MDN code writes it: MixtureSameFamily(Categorical(logits),
    Independent(Normal(loc, scale), 1)); log_prob with its gradients, mean, variance, cdf of a scalar mixture, sample
    and expand shapes, the repr, and the constructor's refusals, against torch."""
    logits, loc, scale = R.normal(size=(5, 3)), R.normal(size=(5, 3, 2)), R.uniform(0.5, 2, size=(5, 3, 2))
    value = R.normal(size=(4, 5, 2))
    (ours, theirs) = leaves({"logits": logits, "loc": loc, "scale": scale})
    mixtures = [D.MixtureSameFamily(D.Categorical(logits=p["logits"]), D.Independent(D.Normal(p["loc"], p["scale"]), 1))
                for D, p in ((gd, ours), (td, theirs))]
    p, q = mixtures
    assert p.batch_shape == q.batch_shape and p.event_shape == q.event_shape and p.has_rsample == q.has_rsample
    lp, tlp = p.log_prob(graphc.tensor(value)), q.log_prob(torch.tensor(value))
    assert_close(lp, tlp)
    lp.sum().backward()
    tlp.sum().backward()
    for k in ours:
        assert_close(ours[k].grad, theirs[k].grad)
    assert_close(p.mean, q.mean)
    assert_close(p.variance, q.variance)
    assert p.sample((7,)).shape == q.sample((7,)).shape and p.expand((2, 5)).sample().shape == (2, 5, 2)
    scalar = [D.MixtureSameFamily(D.Categorical(probs=L.tensor([0.3, 0.7])), D.Normal(L.tensor([-1.0, 2.0]),
                                                                                      L.tensor([0.5, 1.0])))
              for L, D in ((graphc, gd), (torch, td))]
    assert_close(scalar[0].cdf(graphc.tensor([0.0, 1.0])), scalar[1].cdf(torch.tensor([0.0, 1.0])))
    assert repr(scalar[0]).replace("graphc", "torch") == repr(scalar[1])
    for L, D in ((graphc, gd), (torch, td)):
        with pytest.raises(ValueError, match="Categorical"):
            D.MixtureSameFamily(D.Normal(L.zeros(2), L.ones(2)), D.Normal(L.zeros(2), L.ones(2)))
        with pytest.raises(ValueError, match="does not equal"):
            D.MixtureSameFamily(D.Categorical(logits=L.zeros(3)), D.Normal(L.zeros(2), L.ones(2)))
        with pytest.raises(ValueError, match="not compatible"):
            D.MixtureSameFamily(D.Categorical(logits=L.zeros(4, 2)), D.Normal(L.zeros(3, 2), L.ones(3, 2)))


def test_mixture_density_network_step_compiled_matches_torch():
    """An MDN training step compiled (validate_args=False, as MDN code passes for speed) follows torch's losses."""
    weights = R.normal(size=(9, 4)).astype(np.float32) * 0.5
    x, y = R.normal(size=(16, 4)).astype(np.float32), R.normal(size=(16, 1)).astype(np.float32)

    def make_step(L, D, w):
        opt = L.optim.SGD([w], lr=0.1)

        def step(x, y):
            out = x @ w.T
            pi, mu, log_sigma = out[:, :3], out[:, 3:6], out[:, 6:]
            mix = D.MixtureSameFamily(D.Categorical(logits=pi, validate_args=False),
                                      D.Normal(mu, log_sigma.exp(), validate_args=False), validate_args=False)
            loss = -mix.log_prob(y.squeeze(1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss
        return step

    tw, gw = torch.tensor(weights, requires_grad=True), graphc.tensor(weights, requires_grad=True)
    torch_step, graphc_step = make_step(torch, td, tw), graphc.compile(make_step(graphc, gd, gw))
    for _ in range(4):
        assert_close(graphc_step(graphc.tensor(x), graphc.tensor(y)), torch_step(torch.tensor(x), torch.tensor(y)),
                     rtol=1e-5, atol=1e-6)
    assert graphc_step.num_traces <= 2
