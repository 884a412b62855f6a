"""A regression model trained by a small Trainer class, in the style of public trainer scripts: a config dataclass,
train/validation splits by random_split, a RandomSampler with replacement feeding persistent workers that seed
their own augmentation, a validation loop, and checkpoints of the best model reloaded with map_location.

    python tests/scripts/regression_trainer.py [--max-epochs N] [--out DIR]
"""
from __future__ import annotations

import argparse
import math
import os
import random
import tempfile
from dataclasses import dataclass

import numpy as np

import graphc
from graphc import nn
from graphc.utils.data import DataLoader, RandomSampler, TensorDataset, get_worker_info, random_split


@dataclass
class TrainerConfig:
    max_epochs: int = 4
    batch_size: int = 32
    learning_rate: float = 1e-2
    weight_decay: float = 1e-4
    grad_norm_clip: float = 1.0
    num_workers: int = 2
    samples_per_epoch: int = 512
    ckpt_path: str | None = None


def seed_worker(worker_id):
    """Seed numpy and random from graphc's per-worker seed, as the reproducibility notes recommend."""
    worker_seed = get_worker_info().seed % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


class Trainer:
    def __init__(self, model, train_dataset, val_dataset, config):
        self.model, self.train_dataset, self.val_dataset, self.config = model, train_dataset, val_dataset, config
        self.device = "cuda" if graphc.cuda.is_available() else "cpu"
        self.model = self.model.to(self.device)
        self.optimizer = graphc.optim.AdamW(model.parameters(), lr=config.learning_rate,
                                            weight_decay=config.weight_decay)

    def save_checkpoint(self):
        print(f"saving {self.config.ckpt_path}")
        graphc.save(self.model.state_dict(), self.config.ckpt_path)

    def run_epoch(self, split, loader):
        is_train = split == "train"
        self.model.train(is_train)
        losses = []
        for x, y in loader:
            x, y = x.to(self.device), y.to(self.device)
            with graphc.set_grad_enabled(is_train):
                loss = nn.functional.mse_loss(self.model(x), y)
                losses.append(loss.item())
            if is_train:
                self.model.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_norm_clip)
                self.optimizer.step()
        return float(np.mean(losses))

    def train(self):
        config = self.config
        sampler = RandomSampler(self.train_dataset, replacement=True, num_samples=config.samples_per_epoch)
        train_loader = DataLoader(self.train_dataset, sampler=sampler, batch_size=config.batch_size,
                                  num_workers=config.num_workers, persistent_workers=True,
                                  worker_init_fn=seed_worker, timeout=60, drop_last=True)
        val_loader = DataLoader(self.val_dataset, batch_size=config.batch_size, shuffle=False)
        best, history = math.inf, []
        for epoch in range(config.max_epochs):
            train_loss = self.run_epoch("train", train_loader)
            val_loss = self.run_epoch("val", val_loader)
            history.append((train_loss, val_loss))
            print(f"epoch {epoch + 1}: train loss {train_loss:.4f}, val loss {val_loss:.4f}")
            if val_loss < best and config.ckpt_path is not None:
                best = val_loss
                self.save_checkpoint()
        return history


def make_data(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (n, 3)).astype(np.float32)
    y = (np.sin(x[:, :1]) + 0.5 * x[:, 1:2] * x[:, 2:3] + 0.05 * rng.standard_normal((n, 1))).astype(np.float32)
    return TensorDataset(graphc.from_numpy(x), graphc.from_numpy(y))


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-epochs", type=int, default=4)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    graphc.manual_seed(42)
    out = args.out or tempfile.mkdtemp()
    train_set, val_set = random_split(make_data(), [0.8, 0.2])
    model = nn.Sequential(nn.Linear(3, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 1))
    config = TrainerConfig(max_epochs=args.max_epochs, ckpt_path=os.path.join(out, "model.pt"))
    history = Trainer(model, train_set, val_set, config).train()
    device = graphc.device("cuda" if graphc.cuda.is_available() else "cpu")
    model.load_state_dict(graphc.load(config.ckpt_path, map_location=device))
    return history


if __name__ == "__main__":
    main()
