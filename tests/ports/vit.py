"""A tiny ViT: conv patch embedding, cls token, learned positions, nn.TransformerEncoder (norm_first), AdamW with
no weight decay on biases and norms, cosine schedule with warmup via LambdaLR, label smoothing."""
import math
import numpy as np
import torch
import torch.nn as nn


class ViT(nn.Module):
    def __init__(self, img=8, patch=4, dim=32, depth=2, heads=4, classes=5):
        super().__init__()
        self.patch_embed = nn.Conv2d(1, dim, kernel_size=patch, stride=patch)
        n = (img // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=64, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat((cls, x), dim=1) + self.pos_embed
        x = self.encoder(x)
        return self.head(self.norm(x[:, 0]))


def make_model():
    return ViT()


def run(model, compile=False, steps=30):
    rng = np.random.default_rng(0)
    xs = torch.tensor(rng.standard_normal((64, 1, 8, 8)).astype(np.float32))
    ys = torch.tensor(rng.integers(0, 5, 64))
    xs[torch.arange(64), 0, ys, ys] += 3.0
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in name or name.endswith(".bias") else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=3e-3)
    warmup = 5
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / steps)))
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    net = torch.compile(model) if compile else model
    losses = []
    for s in range(steps):
        i = (s * 16) % 64
        xb, yb = xs[i:i + 16], ys[i:i + 16]
        logits = net(xb)
        loss = criterion(logits, yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        acc = (model(xs).argmax(dim=-1) == ys).float().mean().item()
    losses.append(acc)
    return losses
