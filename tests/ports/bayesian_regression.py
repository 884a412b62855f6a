"""Probabilistic regression in the manner of public Bayes-by-backprop and heteroscedastic-regression code: a
Bayesian linear layer (a Normal posterior over its weights, sampled by the reparameterization trick, its KL to a
Normal prior from kl_divergence) feeding a network that predicts a Student-t (robust to the outliers in the data)
for one target and a LogNormal for a positive one; the loss is their negative log-likelihood plus the scaled KL
(the ELBO). The weight noise comes from a numpy generator, so both libraries draw the same weights."""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import LogNormal, Normal, StudentT, kl_divergence


class BayesianLinear(nn.Module):
    def __init__(self, in_features, out_features, prior_sigma=1.0):
        super().__init__()
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features).uniform_(-0.2, 0.2))
        self.weight_rho = nn.Parameter(torch.full((out_features, in_features), -3.0))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.prior = Normal(0.0, prior_sigma)

    def forward(self, x, eps):
        sigma = F.softplus(self.weight_rho)
        posterior = Normal(self.weight_mu, sigma)
        weight = self.weight_mu + sigma * eps
        self.kl = kl_divergence(posterior, self.prior).sum()
        return F.linear(x, weight, self.bias)


class Regressor(nn.Module):
    def __init__(self, in_features=4, hidden=32):
        super().__init__()
        self.bayes = BayesianLinear(in_features, hidden)
        self.head = nn.Linear(hidden, 4)

    def forward(self, x, eps):
        h = torch.tanh(self.bayes(x, eps))
        loc, raw_scale, log_loc, raw_log_scale = self.head(h).unbind(-1)
        student = StudentT(df=4.0, loc=loc, scale=F.softplus(raw_scale) + 1e-3)
        lognormal = LogNormal(log_loc, F.softplus(raw_log_scale) + 1e-3)
        return student, lognormal


def make_model():
    return Regressor()


def make_data(rng, n=96):
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0]) + 0.3 * rng.standard_t(3, size=n)).astype(np.float32)
    y[::17] += 6.0  # outliers, which the Student-t tolerates
    z = np.exp(0.5 * x[:, 0] - 0.3 + 0.2 * rng.normal(size=n)).astype(np.float32)
    return torch.tensor(x), torch.tensor(y), torch.tensor(z)


def run(model, compile=False, epochs=4, batch_size=32):
    rng = np.random.default_rng(0)
    x, y, z = make_data(rng)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    kl_weight = 1.0 / len(x)

    def train_step(xb, yb, zb, eps):
        student, lognormal = model(xb, eps)
        nll = -(student.log_prob(yb) + lognormal.log_prob(zb)).mean()
        loss = nll + kl_weight * model.bayes.kl
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.detach()

    step = torch.compile(train_step) if compile else train_step
    losses = []
    for epoch in range(epochs):
        for i in range(0, len(x), batch_size):
            eps = torch.tensor(rng.normal(size=tuple(model.bayes.weight_mu.shape)), dtype=torch.float32)
            losses.append(step(x[i:i + batch_size], y[i:i + batch_size], z[i:i + batch_size], eps).item())
        print(f"epoch {epoch}: loss {losses[-1]:.4f}")
    with torch.no_grad():
        student, lognormal = model(x[:8], torch.zeros_like(model.bayes.weight_mu))
        assert student.sample().shape == (8,) and (lognormal.sample((2,)) > 0).all()
        assert math.isfinite(lognormal.mean.sum().item())
    return losses


if __name__ == "__main__":
    torch.manual_seed(0)
    run(make_model())
