"""Tabular regression in the Kaggle-notebook style: BatchNorm1d, SiLU, Huber/MSE, ReduceLROnPlateau on a
validation loss, early stopping, best-state checkpoint in memory with copy.deepcopy."""
import copy
import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self, d_in=10):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(d_in, 64), nn.BatchNorm1d(64), nn.SiLU(), nn.Linear(64, 32),
                                    nn.BatchNorm1d(32), nn.SiLU(), nn.Linear(32, 1))

    def forward(self, x):
        return self.layers(x).squeeze(-1)


def make_model():
    return Net()


def run(model, compile=False, epochs=10):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 10)).astype(np.float32)
    w = rng.standard_normal(10).astype(np.float32)
    y = (X @ w + 0.3 * np.sin(3 * X[:, 0])).astype(np.float32)
    mean, std = X[:192].mean(0), X[:192].std(0)
    X = (X - mean) / std
    train = TensorDataset(torch.from_numpy(X[:192]), torch.from_numpy(y[:192]))
    Xv, yv = torch.from_numpy(X[192:]), torch.from_numpy(y[192:])
    loader = DataLoader(train, batch_size=32, shuffle=False, drop_last=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=1)
    loss_fn = nn.HuberLoss(delta=1.0)
    net = torch.compile(model) if compile else model
    best, best_state, bad = float("inf"), None, 0
    losses = []
    for epoch in range(epochs):
        model.train()
        running = 0.0
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            optimizer.step()
            running += loss.item() * xb.size(0)
        model.eval()
        with torch.no_grad():
            val = nn.functional.mse_loss(net(Xv), yv).item()
        scheduler.step(val)
        losses.append(running / len(train))
        if val < best - 1e-4:
            best, best_state, bad = val, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
            if bad >= 4:
                break
    model.load_state_dict(best_state)
    losses.append(best)
    return losses
