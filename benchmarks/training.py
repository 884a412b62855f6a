"""Digits-MLP training time, graphc eager against torch eager: same machine, same run, same data, same initial
weights, same batches (the examples' MLP, Adam lr 1e-3, batch 64). Target: graphc within 2x of torch.

    python benchmarks/training.py [--epochs 3] [--repeats 3] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time

import numpy as np
import torch

import graphc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
from digits import BATCH_SIZE, LR, load_split, train_step  # noqa: E402
from train_digits_mlp import make_model  # noqa: E402


def torch_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(64, 100), torch.nn.ReLU(), torch.nn.Linear(100, 100),
                               torch.nn.ReLU(), torch.nn.Linear(100, 10))


def train(lib, init: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, orders: list[np.ndarray]) -> tuple:
    """Train one framework's MLP from `init` over the epochs' sample orders; (seconds, last loss).
    Each epoch is a DataLoader over the data in that epoch's order, so both frameworks see the same batches."""
    model = make_model() if lib is graphc else torch_model()
    model.load_state_dict({k: lib.tensor(v) for k, v in init.items()})
    optimizer, loss_fn = lib.optim.Adam(model.parameters(), lr=LR), lib.nn.CrossEntropyLoss()
    start = time.perf_counter()
    for order in orders:
        for xb, yb in lib.utils.data.DataLoader(lib.utils.data.TensorDataset(lib.tensor(x[order]),
                                                                            lib.tensor(y[order])),
                                                batch_size=BATCH_SIZE):
            loss = train_step(model, optimizer, loss_fn, xb, yb).item()
    return time.perf_counter() - start, loss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="print graphc's cProfile top functions")
    args = parser.parse_args()

    torch.manual_seed(0)
    init = {k: v.numpy() for k, v in torch_model().state_dict().items()}
    x, y, _, _ = load_split()
    rng = np.random.default_rng(0)
    orders = [rng.permutation(len(y)) for _ in range(args.epochs)]
    train(graphc, init, x, y, orders[:1])  # warm-up: imports, allocator, caches
    train(torch, init, x, y, orders[:1])
    times: dict = {graphc: [], torch: []}
    for _ in range(args.repeats):
        for lib in (graphc, torch):
            seconds, loss = train(lib, init, x, y, orders)
            times[lib].append(seconds)
            print(f"{lib.__name__:6s} {seconds:7.3f} s   last loss {loss:.6f}")
    g, t = min(times[graphc]), min(times[torch])
    steps = args.epochs * -(-len(y) // BATCH_SIZE)
    print(f"\ndigits MLP, {args.epochs} epochs ({steps} steps), best of {args.repeats}: graphc eager {g:.3f} s "
          f"({g / steps * 1e3:.2f} ms/step), torch eager {t:.3f} s ({t / steps * 1e3:.2f} ms/step), "
          f"ratio {g / t:.2f}x (target <= 2x)")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(train, graphc, init, x, y, orders)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
