"""Magnitude pruning then fine-tuning, in the manner of the PyTorch pruning tutorial and lottery-ticket code: train a
small LeNet-style net, prune 60% of its conv and linear weights globally by L1 magnitude, report the sparsity of
each layer, fine-tune with the masks in place, prune the classifier's bias, then make the pruning permanent."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.nn.utils.prune as prune


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3)
        self.conv2 = nn.Conv2d(6, 8, 3)
        self.fc1 = nn.Linear(8 * 2 * 2, 24)
        self.fc2 = nn.Linear(24, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.relu(self.conv2(x))
        x = x.view(-1, int(x.nelement() / x.shape[0]))
        x = F.relu(self.fc1(x))
        return self.fc2(x)


def make_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.normal(0, 0.3, (n, 1, 10, 10)).astype(np.float32)
    for i, y in enumerate(labels):
        images[i, 0, y % 10, :] += 1.0
        images[i, 0, :, (3 * y) % 10] += 0.5
    return torch.from_numpy(images), torch.from_numpy(labels)


def sparsity(module, name="weight"):
    weight = getattr(module, name)
    return 100.0 * float(torch.sum(weight == 0)) / float(weight.nelement())


def make_model():
    return LeNet()


def run(model, compile=False, steps=6):
    x, y = make_data()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []

    def train_step(xb, yb):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        optimizer.step()
        return loss

    step = torch.compile(train_step) if compile else train_step
    for i in range(steps):
        losses.append(step(x[i % 2 * 32:(i % 2 + 1) * 32], y[i % 2 * 32:(i % 2 + 1) * 32]).item())

    parameters_to_prune = ((model.conv1, "weight"), (model.conv2, "weight"), (model.fc1, "weight"),
                           (model.fc2, "weight"))
    prune.global_unstructured(parameters_to_prune, pruning_method=prune.L1Unstructured, amount=0.6)
    for name, module in model.named_children():
        print(f"Sparsity in {name}.weight: {sparsity(module):.2f}%")
    assert prune.is_pruned(model)

    # the optimizer holds the weights, now named weight_orig: rebuild it for the pruned parameters
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    step = torch.compile(train_step) if compile else train_step
    for i in range(steps):
        losses.append(step(x[i % 2 * 32:(i % 2 + 1) * 32], y[i % 2 * 32:(i % 2 + 1) * 32]).item())
        if i == steps // 2:
            prune.l1_unstructured(model.fc2, name="bias", amount=3)

    for module, name in parameters_to_prune:
        prune.remove(module, name)
    prune.remove(model.fc2, "bias")
    print(sorted(model.state_dict().keys()))
    with torch.no_grad():
        losses.append(F.cross_entropy(model(x), y).item())
    losses.append(sum(sparsity(m) for m, _ in parameters_to_prune) / 4)
    return losses
