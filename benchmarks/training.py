"""Digits-MLP training time, graphc eager against torch eager: same machine, same run, same data, same initial
weights, same batches (the examples' MLP, Adam lr 1e-3, batch 64). Target: graphc within 2x of torch.
Both run with the same number of BLAS/intra-op threads (--threads, default 1: these matmuls are too small to gain
from threads, and on a shared 2-core machine threads make both frameworks' timings erratic).

    python benchmarks/training.py [--epochs 3] [--repeats 3] [--threads 1] [--profile]
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
from threadpoolctl import threadpool_limits

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


def step_phases(init: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, steps: int) -> dict:
    """Fastest forward (with loss), backward and Adam step of each framework over `steps` steps on one batch,
    graphc and torch interleaved step by step so that both see the same machine load: {lib: [fwd, bwd, adam]}."""
    runs = {}
    for lib in (graphc, torch):
        model = make_model() if lib is graphc else torch_model()
        model.load_state_dict({k: lib.tensor(v) for k, v in init.items()})
        runs[lib] = (model, lib.optim.Adam(model.parameters(), lr=LR), lib.nn.CrossEntropyLoss(),
                     lib.tensor(x[:BATCH_SIZE]), lib.tensor(y[:BATCH_SIZE]))
    best = {lib: [float("inf")] * 3 for lib in runs}
    for _ in range(steps):
        for lib, (model, optimizer, loss_fn, xb, yb) in runs.items():
            t0 = time.perf_counter()
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            optimizer.step()
            loss.item()
            t3 = time.perf_counter()
            best[lib] = [min(b, t) for b, t in zip(best[lib], (t1 - t0, t2 - t1, t3 - t2))]
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (numpy) and intra-op threads (torch)")
    parser.add_argument("--profile", action="store_true", help="print graphc's cProfile top functions")
    args = parser.parse_args()
    threadpool_limits(args.threads)
    torch.set_num_threads(args.threads)

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
          f"ratio {g / t:.2f}x (target <= 2x), {args.threads} thread(s)")
    phases = step_phases(init, x, y, steps=400)
    for lib, (fwd, bwd, adam) in phases.items():
        print(f"{lib.__name__:6s} one train step, fastest of 400: {(fwd + bwd + adam) * 1e3:.3f} ms (forward "
              f"{fwd * 1e3:.3f}, backward {bwd * 1e3:.3f}, Adam {adam * 1e3:.3f})")
    print(f"train-step ratio {sum(phases[graphc]) / sum(phases[torch]):.2f}x")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(train, graphc, init, x, y, orders)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
