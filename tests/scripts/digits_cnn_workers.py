"""A digits classifier written the way public MNIST examples are: argparse options, a device line, a Dataset class
with a random augmentation, DataLoaders with worker processes and a RandomSampler, train() and test() functions.

    python tests/scripts/digits_cnn_workers.py [--epochs N] [--batch-size B] [--num-workers W] [--no-cuda]
"""
from __future__ import annotations

import argparse

import numpy as np
from sklearn.datasets import load_digits

import graphc
import graphc.nn as nn
import graphc.nn.functional as F
import graphc.optim as optim
from graphc.utils.data import DataLoader, Dataset, RandomSampler, random_split


class Digits(Dataset):
    """8x8 digit images scaled to [0, 1]; with augment, a random one-pixel shift and a little noise per sample."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, augment: bool = False):
        self.images, self.labels, self.augment = images, labels, augment

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        image = self.images[index]
        if self.augment:
            image = np.roll(image, np.random.randint(-1, 2), axis=1) + np.random.normal(0, 0.05, image.shape)
        return graphc.tensor(image[None].astype(np.float32)), int(self.labels[index])


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.dropout = nn.Dropout(0.25)
        self.fc1 = nn.Linear(16 * 2 * 2, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.dropout(graphc.flatten(x, 1))
        return self.fc2(F.relu(self.fc1(x)))


def train(args, model, device, loader, optimizer, epoch):
    model.train()
    total = 0.0
    for batch_idx, (data, target) in enumerate(loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(data), target)
        loss.backward()
        optimizer.step()
        total += loss.item()
        if batch_idx % args.log_interval == 0:
            print(f"Train Epoch: {epoch} [{batch_idx * len(data)}/{len(loader.sampler)}]\tLoss: {loss.item():.6f}")
    return total / len(loader)


def test(model, device, loader):
    model.eval()
    correct = 0
    with graphc.no_grad():
        for data, target in loader:
            data, target = data.to(device), target.to(device)
            correct += (model(data).argmax(dim=1) == target).sum().item()
    accuracy = correct / len(loader.dataset)
    print(f"Test set: Accuracy: {correct}/{len(loader.dataset)} ({100 * accuracy:.0f}%)")
    return accuracy


def main(argv=None):
    parser = argparse.ArgumentParser(description="digits CNN")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--num-workers", type=int, default=2)
    parser.add_argument("--no-cuda", action="store_true", default=False)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-interval", type=int, default=10)
    args = parser.parse_args(argv)

    use_cuda = not args.no_cuda and graphc.cuda.is_available()
    graphc.manual_seed(args.seed)
    device = graphc.device("cuda" if use_cuda else "cpu")
    loader_kwargs = {"num_workers": args.num_workers, "timeout": 60}
    if use_cuda:
        loader_kwargs.update(pin_memory=True)

    digits = load_digits()
    images, labels = digits.images / 16.0, digits.target
    train_idx, test_idx = random_split(range(len(labels)), [0.8, 0.2], generator=graphc.Generator().manual_seed(0))
    train_set = Digits(images[list(train_idx)], labels[list(train_idx)], augment=True)
    test_set = Digits(images[list(test_idx)], labels[list(test_idx)])
    train_loader = DataLoader(train_set, batch_size=args.batch_size, sampler=RandomSampler(train_set), **loader_kwargs)
    test_loader = DataLoader(test_set, batch_size=256, **loader_kwargs)

    model = Net().to(device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    losses = [train(args, model, device, train_loader, optimizer, epoch) for epoch in range(1, args.epochs + 1)]
    return losses, test(model, device, test_loader)


if __name__ == "__main__":
    main()
