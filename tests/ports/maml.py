"""MAML on sine-wave regression in the manner of the public MAML-in-PyTorch tutorials: a functional forward over an
OrderedDict of weights, inner-loop updates from torch.autograd.grad(loss, params.values(), create_graph=True),
fast weights built with a dict comprehension, the meta-loss summed over a meta-batch of tasks (two fixed meta-batches
alternate) and divided, an outer Adam step; also
torch.func.functional_call for the evaluation."""
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call


class SineModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(OrderedDict([("l1", nn.Linear(1, 32)), ("relu1", nn.ReLU()),
                                              ("l2", nn.Linear(32, 32)), ("relu2", nn.ReLU()),
                                              ("l3", nn.Linear(32, 1))]))

    def forward(self, x):
        return self.net(x)

    def argforward(self, x, weights):
        x = F.relu(F.linear(x, weights["net.l1.weight"], weights["net.l1.bias"]))
        x = F.relu(F.linear(x, weights["net.l2.weight"], weights["net.l2.bias"]))
        return F.linear(x, weights["net.l3.weight"], weights["net.l3.bias"])


def make_model():
    return SineModel()


def sample_task(rng, k=10):
    amp, phase = rng.uniform(0.1, 5.0), rng.uniform(0, np.pi)
    xs = rng.uniform(-5, 5, (2 * k, 1)).astype(np.float32)
    ys = (amp * np.sin(xs + phase)).astype(np.float32)
    return torch.from_numpy(xs[:k]), torch.from_numpy(ys[:k]), torch.from_numpy(xs[k:]), torch.from_numpy(ys[k:])


def run(model, compile=False, meta_steps=12, tasks_per_batch=4, inner_lr=0.01, inner_steps=1):
    rng = np.random.default_rng(0)
    weights = OrderedDict(model.named_parameters())
    meta_optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)

    def meta_step(tasks):
        meta_loss = 0
        for x_s, y_s, x_q, y_q in tasks:
            temp_weights = OrderedDict((name, param) for name, param in weights.items())
            for _ in range(inner_steps):
                loss = F.mse_loss(model.argforward(x_s, temp_weights), y_s)
                grads = torch.autograd.grad(loss, temp_weights.values(), create_graph=True)
                temp_weights = OrderedDict((name, param - inner_lr * grad)
                                           for ((name, param), grad) in zip(temp_weights.items(), grads))
            meta_loss = meta_loss + F.mse_loss(model.argforward(x_q, temp_weights), y_q)
        meta_loss = meta_loss / len(tasks)
        meta_optimiser.zero_grad()
        meta_loss.backward()
        meta_optimiser.step()
        return meta_loss

    step = torch.compile(meta_step) if compile else meta_step
    losses = []
    meta_train = [sample_task(rng) for _ in range(2 * tasks_per_batch)]
    for it in range(meta_steps):
        tasks = meta_train[(it % 2) * tasks_per_batch:(it % 2 + 1) * tasks_per_batch]
        losses.append(step(tasks).item())
        if it % 4 == 0:
            print(f"meta step {it}: loss {losses[-1]:.4f}")
    x_s, y_s, x_q, y_q = sample_task(rng)
    params = {k: v.detach() for k, v in model.named_parameters()}
    with torch.no_grad():
        before = F.mse_loss(functional_call(model, params, (x_q,)), y_q).item()
    return losses + [before]
