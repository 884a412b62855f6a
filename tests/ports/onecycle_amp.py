"""A small transformer classifier trained the way many public repositories do it: AdamW with no weight decay on
biases and norms (two param groups), OneCycleLR stepped per batch, gradient clipping, label smoothing, bf16 autocast
on CPU, an EMA of the loss for logging, accuracy from argmax."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Classifier(nn.Module):
    def __init__(self, vocab=50, d=32, classes=4):
        super().__init__()
        self.embed = nn.Embedding(vocab, d, padding_idx=0)
        self.pos = nn.Parameter(torch.zeros(1, 16, d))
        layer = nn.TransformerEncoderLayer(d, 4, 64, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, tokens):
        mask = tokens == 0
        x = self.embed(tokens) + self.pos[:, :tokens.size(1)]
        x = self.encoder(x, src_key_padding_mask=mask)
        x = self.norm(x)
        keep = (~mask).unsqueeze(-1).float()
        pooled = (x * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return self.head(pooled)


def make_model():
    return Classifier()


def run(model, compile=False, epochs=3):
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 50, (32, 16))
    lengths = rng.integers(6, 17, 32)
    for i, n in enumerate(lengths):
        tokens[i, n:] = 0
    labels = torch.tensor(tokens[:, 0] % 4)
    tokens = torch.tensor(tokens)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "norm" in name or name.endswith(".bias") else decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=3e-3, betas=(0.9, 0.98))
    steps = epochs * 4
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps, pct_start=0.25)
    forward = torch.compile(model) if compile else model
    out, ema = [], None
    for epoch in range(epochs):
        for i in range(0, 32, 8):
            x, y = tokens[i:i + 8], labels[i:i + 8]
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = forward(x)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            ema = loss.item() if ema is None else 0.9 * ema + 0.1 * loss.item()
            out.append(ema)
        with torch.no_grad():
            acc = (forward(tokens).argmax(-1) == labels).float().mean().item()
        out.append(acc)
    return out
