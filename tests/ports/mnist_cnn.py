"""An MNIST-style convnet in the manner of the classic PyTorch example: two convolutions, max pooling, dropout,
log_softmax with nll_loss, Adadelta with a StepLR schedule. Synthetic 28x28 digits keep it offline and fast."""
import argparse

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(16 * 5 * 5, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def make_data(n=256, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.normal(0, 0.3, (n, 1, 14, 14)).astype(np.float32)
    for i, y in enumerate(labels):
        images[i, 0, y, :] += 1.0  # a bright row per class
    return torch.from_numpy(images), torch.from_numpy(labels)


def train(args, model, device, train_loader, optimizer, epoch, losses):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if batch_idx % args.log_interval == 0:
            print(f"Train Epoch: {epoch} [{batch_idx * len(data)}/{len(train_loader.dataset)}]\tLoss: {loss.item():.6f}")


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)
    print(f"Test set: Average loss: {test_loss:.4f}, Accuracy: {correct}/{len(test_loader.dataset)}")
    return test_loss


def make_model():
    return Net()


def run(model, compile=False, epochs=2):
    parser = argparse.ArgumentParser()
    parser.add_argument("--log-interval", type=int, default=4)
    args = parser.parse_args([])
    use_cuda = torch.cuda.is_available()
    device = torch.device("cuda" if use_cuda else "cpu")
    x, y = make_data()
    train_loader = DataLoader(TensorDataset(x[:192], y[:192]), batch_size=32)
    test_loader = DataLoader(TensorDataset(x[192:], y[192:]), batch_size=64)
    model = model.to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    if compile:
        model = torch.compile(model)
    losses = []
    for epoch in range(1, epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch, losses)
        losses.append(test(model, device, test_loader))
        scheduler.step()
    return losses


if __name__ == "__main__":
    torch.manual_seed(1)
    run(make_model())
