"""SimCLR-style contrastive pretraining in the manner of public SimCLR re-implementations: two augmented views
(random flips with torch.flip under torch.rand masks, gaussian noise), a conv encoder with a projection head, the
NT-Xent loss written with F.normalize, a similarity matrix with its diagonal masked by torch.eye(...).bool() and
masked_fill, positives found with torch.arange, cross_entropy over the rest, LARS-free SGD with momentum."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Encoder(nn.Module):
    def __init__(self, feat_dim=32, proj_dim=16):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(16, feat_dim))
        self.projector = nn.Sequential(nn.Linear(feat_dim, feat_dim), nn.ReLU(), nn.Linear(feat_dim, proj_dim))

    def forward(self, x):
        h = self.backbone(x)
        return h, self.projector(h)


def nt_xent(z1, z2, temperature=0.5):
    batch_size = z1.shape[0]
    z = torch.cat([z1, z2], dim=0)
    z = F.normalize(z, dim=1)
    sim = torch.matmul(z, z.T) / temperature
    mask = torch.eye(2 * batch_size, dtype=torch.bool)
    sim = sim.masked_fill(mask, float("-inf"))
    targets = torch.cat([torch.arange(batch_size, 2 * batch_size), torch.arange(0, batch_size)])
    return F.cross_entropy(sim, targets)


def augment(x, gen):
    """A view: a horizontal flip for about half the images (drawn by the data pipeline's numpy generator),
    plus noise."""
    flip = torch.from_numpy(gen.random(x.shape[0]) < 0.5).view(-1, 1, 1, 1)
    x = torch.where(flip, torch.flip(x, dims=[3]), x)
    return x + 0.1 * torch.from_numpy(gen.standard_normal(x.shape).astype(np.float32))


def make_model():
    return Encoder()


def run(model, compile=False, epochs=4):
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.random((64, 1, 12, 12)).astype(np.float32))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-6)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * 4, eta_min=0)

    def train_step(x_i, x_j):
        optimizer.zero_grad()
        _, z_i = model(x_i)
        _, z_j = model(x_j)
        loss = nt_xent(z_i, z_j)
        loss.backward()
        optimizer.step()
        return loss

    step = torch.compile(train_step) if compile else train_step
    losses = []
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for i in range(0, len(images), 16):
            x = images[i:i + 16]
            loss = step(augment(x, rng), augment(x, rng))
            scheduler.step()
            total += loss.item()
        losses.append(total / 4)
        print(f"Epoch [{epoch}/{epochs}]\t Loss: {losses[-1]:.4f}\t lr: {scheduler.get_last_lr()[0]:.5f}")
    model.eval()
    with torch.no_grad():  # a linear-probe style feature extraction
        feats, _ = model(images)
        assert feats.shape == (64, 32)
    return losses
