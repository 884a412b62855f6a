"""Train an MLP (64-100-100-10, ReLU) on scikit-learn's 8x8 handwritten digits: the classic MNIST recipe (Adam,
lr 1e-3, batch 64, 10 epochs, cross-entropy) in graphc. Prints test accuracy and round-trips a checkpoint;
--compile runs the train step through graphc.compile.

    python examples/train_digits_mlp.py [--epochs N] [--checkpoint PATH] [--compile]
"""
from __future__ import annotations

from digits import run

from graphc import nn


def make_model() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 100), nn.ReLU(), nn.Linear(100, 100), nn.ReLU(), nn.Linear(100, 10))


def main(argv: list[str] | None = None) -> float:
    """Train and evaluate; returns the test accuracy."""
    return run(make_model, (64,), __doc__, argv)


if __name__ == "__main__":
    main()
