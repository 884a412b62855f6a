"""A small CIFAR-style ResNet: BasicBlocks with BatchNorm and a projection shortcut, adaptive average pooling,
SGD with momentum and weight decay under a cosine schedule; eval mode uses the running statistics."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super(BasicBlock, self).__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(self.expansion * planes),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        out = F.relu(out)
        return out


class ResNet(nn.Module):
    def __init__(self, num_classes=10):
        super(ResNet, self).__init__()
        self.conv1 = nn.Conv2d(3, 8, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = BasicBlock(8, 8)
        self.layer2 = BasicBlock(8, 16, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.linear = nn.Linear(16, num_classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer2(self.layer1(out))
        out = self.avgpool(out)
        out = out.view(out.size(0), -1)
        return self.linear(out)


def make_model():
    return ResNet()


def run(model, compile=False, epochs=3):
    rng = np.random.default_rng(0)
    inputs = torch.tensor(rng.standard_normal((64, 3, 8, 8)).astype(np.float32))
    targets = torch.tensor(rng.integers(0, 10, 64))
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    net = torch.compile(model) if compile else model
    losses = []
    for epoch in range(epochs):
        model.train()
        for i in range(0, 64, 16):
            optimizer.zero_grad()
            outputs = net(inputs[i:i + 16])
            loss = criterion(outputs, targets[i:i + 16])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
    model.eval()
    with torch.no_grad():
        _, predicted = model(inputs).max(1)
        losses.append(predicted.eq(targets).sum().item() / 64.0)
    return losses


if __name__ == "__main__":
    torch.manual_seed(0)
    print(run(make_model()))
