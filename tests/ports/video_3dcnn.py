"""A C3D-style video classifier in the manner of action-recognition code: Conv3d blocks with BatchNorm3d (converted
to SyncBatchNorm as DDP scripts do), MaxPool3d that keeps the first frames apart, AdaptiveAvgPool3d, a LazyLinear
head sized by a dry run, SGD with momentum and a cosine schedule over random clips whose class sets the motion."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


def conv_block(cin, cout, pool):
    return nn.Sequential(
        nn.Conv3d(cin, cout, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm3d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool3d(kernel_size=pool, stride=pool),
    )


class C3D(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.features = nn.Sequential(conv_block(3, 8, (1, 2, 2)), conv_block(8, 16, (2, 2, 2)))
        self.pool = nn.AdaptiveAvgPool3d((1, 2, 2))
        self.fc = nn.LazyLinear(num_classes)

    def forward(self, clips):
        x = self.features(clips)
        x = self.pool(x)
        return self.fc(torch.flatten(x, 1))


def make_clips(n=48, frames=4, size=12, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    clips = rng.normal(0, 0.2, (n, 3, frames, size, size)).astype(np.float32)
    for i, y in enumerate(labels):
        for t in range(frames):  # a bar that moves one way per class
            pos = (t * (1 if y % 2 else -1) + 2 * y) % size
            if y < 2:
                clips[i, :, t, pos, :] += 1.0
            else:
                clips[i, :, t, :, pos] += 1.0
    return torch.from_numpy(clips), torch.from_numpy(labels)


def make_model():
    model = C3D()
    model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    with torch.no_grad():
        model(torch.zeros(2, 3, 4, 12, 12))  # materialize the lazy head before building the optimizer
    return model


def run(model, compile=False, epochs=3):
    clips, labels = make_clips()
    loader = DataLoader(TensorDataset(clips[:40], labels[:40]), batch_size=16)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    criterion = nn.CrossEntropyLoss()
    forward = torch.compile(model) if compile else model
    losses = []
    for epoch in range(epochs):
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            loss = criterion(forward(x), y)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            logits = forward(clips[40:])
            val = F.cross_entropy(logits, labels[40:]).item()
            acc = (logits.argmax(1) == labels[40:]).float().mean().item()
        print(f"epoch {epoch}: val loss {val:.4f} acc {acc:.2f}")
        losses.append(val)
    return losses
