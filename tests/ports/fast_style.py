"""Fast neural style in the manner of the PyTorch example: a transformer net with reflection padding, instance
norm, residual blocks and nearest upsampling, a frozen feature extractor for the perceptual loss, Gram matrices."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvLayer(nn.Module):
    def __init__(self, cin, cout, k, stride):
        super().__init__()
        self.pad = nn.ReflectionPad2d(k // 2)
        self.conv = nn.Conv2d(cin, cout, k, stride)

    def forward(self, x):
        return self.conv(self.pad(x))


class Residual(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1, self.n1 = ConvLayer(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)
        self.c2, self.n2 = ConvLayer(c, c, 3, 1), nn.InstanceNorm2d(c, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x):
        residual = x
        out = self.relu(self.n1(self.c1(x)))
        out = self.n2(self.c2(out))
        return out + residual


class Upsample(nn.Module):
    def __init__(self, cin, cout, k, upsample=None):
        super().__init__()
        self.upsample = upsample
        self.conv = ConvLayer(cin, cout, k, 1)

    def forward(self, x):
        if self.upsample:
            x = F.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv(x)


class TransformerNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.in1 = ConvLayer(3, 8, 5, 1), nn.InstanceNorm2d(8, affine=True)
        self.conv2, self.in2 = ConvLayer(8, 16, 3, 2), nn.InstanceNorm2d(16, affine=True)
        self.res1, self.res2 = Residual(16), Residual(16)
        self.up1, self.in3 = Upsample(16, 8, 3, upsample=2), nn.InstanceNorm2d(8, affine=True)
        self.out = ConvLayer(8, 3, 5, 1)
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.res2(self.res1(y))
        y = self.relu(self.in3(self.up1(y)))
        return self.out(y)


class Features(nn.Module):
    def __init__(self):
        super().__init__()
        self.slice1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True))
        self.slice2 = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True))
        for p in self.parameters():
            p.requires_grad = False

    def forward(self, x):
        h1 = self.slice1(x)
        return h1, self.slice2(h1)


def gram_matrix(y):
    b, ch, h, w = y.size()
    features = y.view(b, ch, w * h)
    return features.bmm(features.transpose(1, 2)) / (ch * h * w)


class Both(nn.Module):
    def __init__(self):
        super().__init__()
        self.net, self.features = TransformerNet(), Features()


def make_model():
    return Both()


def run(model, compile=False, steps=4):
    rng = np.random.default_rng(0)
    images = torch.tensor(rng.random((4, 3, 16, 16)).astype(np.float32))
    style = torch.tensor(rng.random((1, 3, 16, 16)).astype(np.float32))
    net, vgg = model.net, model.features
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    mse = nn.MSELoss()
    gram_style = [gram_matrix(y) for y in vgg(style)]

    def step(x):
        optimizer.zero_grad()
        y = net(x)
        fy, fx = vgg(y), vgg(x)
        content = mse(fy[1], fx[1])
        style_loss = 0.
        for ft_y, gm_s in zip(fy, gram_style):
            gm_y = gram_matrix(ft_y)
            style_loss += mse(gm_y, gm_s[:len(x), :, :].expand_as(gm_y))
        total = content + 10.0 * style_loss
        total.backward()
        optimizer.step()
        return total

    if compile:
        step = torch.compile(step)
    losses = []
    for _ in range(steps):
        for i in range(0, 4, 2):
            losses.append(step(images[i:i + 2]).item())
    return losses
