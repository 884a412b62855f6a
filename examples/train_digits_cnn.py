"""Train a small LeNet-style CNN on scikit-learn's 8x8 handwritten digits: two conv+ReLU+max-pool blocks, then a
linear classifier (Adam, lr 1e-3, batch 64, 10 epochs, cross-entropy). Prints test accuracy, round-trips a checkpoint.

    python examples/train_digits_cnn.py [--epochs N] [--checkpoint PATH] [--compile]
"""
from __future__ import annotations

from digits import run

from graphc import nn


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 1x8x8 -> 16x4x4
        nn.Conv2d(16, 32, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # -> 32x2x2
        nn.Flatten(), nn.Linear(32 * 2 * 2, 10),
    )


def main(argv: list[str] | None = None) -> float:
    """Train and evaluate; returns the test accuracy."""
    return run(make_model, (1, 8, 8), __doc__, argv)


if __name__ == "__main__":
    main()
