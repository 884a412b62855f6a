"""What the digits examples share (and tests/test_nn_training.py and benchmarks/training.py reuse): scikit-learn's
bundled 8x8 handwritten digits (no download), a fixed 1500/297 split, and the train / evaluate / checkpoint loop."""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable

import numpy as np

import graphc
from graphc import nn
from graphc.utils import ProgressBar
from graphc.utils.data import DataLoader, TensorDataset

TRAIN_SIZE, BATCH_SIZE, LR = 1500, 64, 1e-3


def load_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train_x, train_y, test_x, test_y): float32 rows of 64 pixels scaled to [0, 1] and int64 labels; the first
    1500 digits of a seeded permutation train, the other 297 test."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(seed).permutation(len(digits.target))
    x, y = (digits.data / 16).astype(np.float32)[order], digits.target.astype(np.int64)[order]
    return x[:TRAIN_SIZE], y[:TRAIN_SIZE], x[TRAIN_SIZE:], y[TRAIN_SIZE:]


def train_step(model: nn.Module, optimizer: graphc.optim.Optimizer, loss_fn: nn.Module, x: graphc.Tensor,
               y: graphc.Tensor) -> graphc.Tensor:
    """One optimisation step on a batch; returns the batch loss."""
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    return loss


def accuracy(model: nn.Module, x: graphc.Tensor, y: graphc.Tensor) -> float:
    """Fraction of digits whose highest logit is the label (the model in eval mode, no autograd)."""
    model.eval()
    with graphc.no_grad():
        hits = (model(x).argmax(dim=1) == y).float().mean().item()
    model.train()
    return hits


def checkpoint_round_trip(model: nn.Module, optimizer: graphc.optim.Optimizer, make_model: Callable[[], nn.Module],
                          path: str, test_x: graphc.Tensor, test_y: graphc.Tensor) -> float:
    """Save model and optimizer state, rebuild both from the file, and check the copy scores the same."""
    graphc.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, path)
    state = graphc.load(path)
    restored = make_model()
    restored.load_state_dict(state["model"])
    graphc.optim.Adam(restored.parameters(), lr=LR).load_state_dict(state["optimizer"])
    before, after = accuracy(model, test_x, test_y), accuracy(restored, test_x, test_y)
    if after != before:
        raise RuntimeError(f"the model reloaded from {path} scores {after:.2%}, the trained one {before:.2%}")
    print(f"checkpoint {path}: reloaded model + optimizer state, test accuracy {after:.2%} (unchanged)")
    return after


def run(make_model: Callable[[], nn.Module], input_shape: tuple[int, ...], description: str,
        argv: list[str] | None = None) -> float:
    """Train make_model() on the digits with Adam and cross-entropy, report test accuracy, round-trip a checkpoint.
    Returns the test accuracy."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", help="where to save the checkpoint (default: a temporary directory)")
    parser.add_argument("--compile", action="store_true", help="run the train step through graphc.compile")
    parser.add_argument("--autocast", action="store_true", help="run forward and loss in bfloat16 (graphc.autocast), "
                        "the weights and optimizer in float32")
    parser.add_argument("--tensorboard", metavar="DIR", help="log loss, accuracy, weights and the captured graph "
                        "for TensorBoard (tensorboard --logdir DIR)")
    args = parser.parse_args(argv)

    graphc.manual_seed(args.seed)
    train_x, train_y, test_x, test_y = (graphc.tensor(a) for a in load_split(args.seed))
    train_x, test_x = train_x.view(-1, *input_shape), test_x.view(-1, *input_shape)
    model = make_model()
    optimizer = graphc.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(train_x, train_y), batch_size=BATCH_SIZE, shuffle=True,
                        generator=graphc.Generator().manual_seed(args.seed))
    step = graphc.autocast("cpu", dtype=graphc.bfloat16)(train_step) if args.autocast else train_step
    step = graphc.compile(step) if args.compile else step
    writer = None
    if args.tensorboard:
        from graphc.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(args.tensorboard)
        writer.add_graph(model, train_x[:BATCH_SIZE])
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        bar = ProgressBar(loader, desc=f"epoch {epoch:2d}/{args.epochs}")
        for i, (x, y) in enumerate(bar):
            loss = step(model, optimizer, loss_fn, x, y).item()
            bar.record(loss)
            if writer is not None:
                writer.add_scalar("train/loss", loss, (epoch - 1) * len(loader) + i)
        if writer is not None:
            writer.add_scalar("test/accuracy", accuracy(model, test_x, test_y), epoch)
            for name, p in model.named_parameters():
                writer.add_histogram(name, p, epoch)
    if writer is not None:
        writer.close()
        print(f"TensorBoard logs in {args.tensorboard}: tensorboard --logdir {args.tensorboard}")
    steps = args.epochs * len(loader)
    how = f"compiled (num_compiles={step.num_compiles})" if args.compile else "eager"
    print(f"trained {steps} steps {how} in {time.perf_counter() - start:.2f} s")
    print(f"test accuracy {accuracy(model, test_x, test_y):.2%} on {len(test_y)} held-out digits")
    with tempfile.TemporaryDirectory() as tmp:
        return checkpoint_round_trip(model, optimizer, make_model, args.checkpoint or os.path.join(tmp, "digits.ckpt"),
                                     test_x, test_y)
