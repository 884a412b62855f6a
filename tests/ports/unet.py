"""A small U-Net for denoising, in the style of diffusion-model code: GroupNorm, SiLU, ConvTranspose2d, skip
connections through torch.cat, F.interpolate, MSE on predicted noise, gradient clipping, EMA of the weights."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm1 = nn.GroupNorm(4, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(4, cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x):
        h = F.silu(self.norm1(self.conv1(x)))
        h = F.silu(self.norm2(self.conv2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.down1 = Block(1, 8)
        self.down2 = Block(8, 16)
        self.mid = Block(16, 16)
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.dec = Block(16, 8)
        self.out = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        d1 = self.down1(x)
        d2 = self.down2(F.max_pool2d(d1, 2))
        m = self.mid(d2) + F.interpolate(F.avg_pool2d(d2, 2), scale_factor=2, mode="nearest")
        u = self.up(m)
        return self.out(self.dec(torch.cat([u, d1], dim=1)))


def make_model():
    return UNet()


def run(model, compile=False, steps=15):
    rng = np.random.default_rng(0)
    clean = torch.tensor(np.sign(rng.standard_normal((16, 1, 8, 8))).astype(np.float32))
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)

    def train_step(x0, noise):
        noisy = x0 + 0.5 * noise
        pred = model(noisy)
        loss = F.mse_loss(pred, noise)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        with torch.no_grad():
            for k, v in model.state_dict().items():
                if v.dtype.is_floating_point:
                    ema[k].mul_(0.9).add_(v, alpha=0.1)
        return loss

    step = torch.compile(train_step) if compile else train_step
    losses = []
    for s in range(steps):
        noise = torch.tensor(rng.standard_normal((16, 1, 8, 8)).astype(np.float32))
        losses.append(step(clean, noise).item())
    losses.append(float(sum(v.float().abs().sum().item() for v in ema.values())))
    return losses
