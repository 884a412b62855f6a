"""GAN on 2-D points, in the style of the DCGAN example: separate G/D optimizers, BCEWithLogits, detach."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim


class Generator(nn.Module):
    def __init__(self, nz=8):
        super().__init__()
        self.main = nn.Sequential(nn.Linear(nz, 32), nn.LeakyReLU(0.2, inplace=True), nn.Linear(32, 32),
                                  nn.BatchNorm1d(32), nn.LeakyReLU(0.2, inplace=True), nn.Linear(32, 2))

    def forward(self, z):
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.main = nn.Sequential(nn.Linear(2, 32), nn.LeakyReLU(0.2), nn.Linear(32, 16), nn.LeakyReLU(0.2),
                                  nn.Linear(16, 1))

    def forward(self, x):
        return self.main(x).view(-1)


class GAN(nn.Module):
    def __init__(self):
        super().__init__()
        self.netG, self.netD = Generator(), Discriminator()


def make_model():
    return GAN()


def run(model, compile=False, steps=40):
    rng = np.random.default_rng(0)
    netG, netD = model.netG, model.netD
    criterion = nn.BCEWithLogitsLoss()
    optimizerD = optim.Adam(netD.parameters(), lr=2e-3, betas=(0.5, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=2e-3, betas=(0.5, 0.999))
    real_label, fake_label = 1., 0.

    def train_step(real, noise):
        netD.zero_grad()
        b_size = real.size(0)
        label = torch.full((b_size,), real_label, dtype=torch.float)
        output = netD(real)
        errD_real = criterion(output, label)
        errD_real.backward()
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        errD = errD_real + errD_fake
        optimizerD.step()
        netG.zero_grad()
        label.fill_(real_label)
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        optimizerG.step()
        return errD, errG, output.mean()  # D(G(z)) after the update, still requiring grad

    step = torch.compile(train_step) if compile else train_step
    fixed_noise = torch.tensor(rng.standard_normal((256, 8)).astype(np.float32))
    gaps, total = [], 0.0
    for i in range(steps):
        theta = rng.uniform(0, 2 * np.pi, 64)
        real = torch.tensor(np.stack([np.cos(theta), np.sin(theta)], 1).astype(np.float32) * 2)
        noise = torch.tensor(rng.standard_normal((64, 8)).astype(np.float32))
        errD, errG, D_G_z2 = step(real, noise)
        total += errD.item() + errG.item() + D_G_z2.item()
        netG.eval()
        with torch.no_grad():  # how far the generated points are from the real circle's radius
            gaps.append(abs(netG(fixed_noise).norm(dim=1).mean().item() - 2.0))
        netG.train()
    return gaps + [total / steps]
