"""Eager per-op overhead on tiny tensors, as a ratio to torch eager measured in the same run.

Usage: python benchmarks/overhead.py [--repeat N]. Tiny inputs make the time per op almost all framework overhead
(dispatch, inference, autograd recording), which is what this measures."""
from __future__ import annotations

import argparse
import timeit

import numpy as np
import torch

import graphc

CHAIN_OPS = 20


def chain(x):
    """20 elementwise ops."""
    for _ in range(CHAIN_OPS // 4):
        x = (x * 1.01 + 0.1).tanh() - x
    return x


def cases(lib, grad: bool):
    """(name, ops per call, fn) for one library; inputs are 8x8 float32."""
    a = lib.tensor(np.random.randn(8, 8).astype(np.float32), requires_grad=grad)
    b = lib.tensor(np.random.randn(8, 8).astype(np.float32), requires_grad=grad)
    return [
        ("add", 1, lambda: a + b),
        ("mul scalar", 1, lambda: a * 2.0),
        ("exp", 1, lambda: a.exp()),
        ("sum(1)", 1, lambda: a.sum(1)),
        (".T", 1, lambda: a.T),
        ("x[1:, 2]", 1, lambda: a[1:, 2]),
        ("matmul 8x8", 1, lambda: a @ b),
        ("softmax(-1)", 1, lambda: a.softmax(-1)),
        (f"{CHAIN_OPS}-op chain", CHAIN_OPS, lambda: chain(a)),
    ]


def best_time(fn, repeat: int) -> float:
    """Seconds per call: the best of 5 runs of `repeat` calls."""
    return min(timeit.repeat(fn, number=repeat, repeat=5)) / repeat


def measure(repeat: int) -> list[tuple[str, bool, float, float]]:
    rows = []
    for grad in (False, True):
        for (name, n, ours), (_, _, theirs) in zip(cases(graphc, grad), cases(torch, grad)):
            rows.append((name, grad, best_time(ours, repeat) / n, best_time(theirs, repeat) / n))
    times = []
    for lib in (graphc, torch):
        x = lib.tensor(np.random.randn(8, 8).astype(np.float32), requires_grad=True)
        times.append(best_time(lambda: chain(x).sum().backward(), repeat // 4) / (CHAIN_OPS + 1))
    rows.append((f"{CHAIN_OPS}-op chain fwd+bwd", True, *times))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2000, help="calls per timing run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = measure(args.repeat)
    print(f"{'op (8x8 float32)':<22}{'grad':>6}{'graphc us/op':>14}{'torch us/op':>13}{'ratio':>8}")
    for name, grad, ours, theirs in rows:
        print(f"{name:<22}{'yes' if grad else 'no':>6}{ours * 1e6:>14.2f}{theirs * 1e6:>13.2f}{ours / theirs:>7.2f}x")


if __name__ == "__main__":
    main()
