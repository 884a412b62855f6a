"""A trainer class in the style of many research codebases: it owns the model, the optimizer, a DataLoader over a
RandomSampler with its own generator, keeps the last loss on self, and runs epochs with a progress print."""
import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset


class Trainer:
    def __init__(self, model, dataset, lr=1e-2, batch_size=16, seed=0, compile=False):
        self.model = model
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.loss_fn = nn.MSELoss()
        generator = torch.Generator()
        generator.manual_seed(seed)
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=RandomSampler(dataset, generator=generator))
        self.loss = None
        self.step_fn = torch.compile(self.train_step) if compile else self.train_step

    def train_step(self, x, y):
        self.optimizer.zero_grad()
        pred = self.model(x)
        loss = self.loss_fn(pred, y)
        loss.backward()
        self.optimizer.step()
        self.loss = loss.detach()
        return loss

    def fit(self, epochs):
        history = []
        for epoch in range(epochs):
            running = 0.0
            for x, y in self.loader:
                running += self.step_fn(x, y).item()
            history.append(running / len(self.loader))
            print(f"epoch {epoch}: loss {history[-1]:.4f} (last batch {self.loss.item():.4f})")
        return history


def make_model():
    return nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 1))


def run(model, compile=False, epochs=6):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 4)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5], [0.0]], np.float32)) + 0.1
    dataset = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    return Trainer(model, dataset, compile=compile).fit(epochs)


if __name__ == "__main__":
    torch.manual_seed(0)
    run(make_model())
