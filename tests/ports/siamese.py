"""A siamese network in the manner of the PyTorch example: a shared conv tower applied to both images of a pair,
the absolute difference of the embeddings through a small head, BCELoss on a sigmoid, a Dataset of pairs, StepLR."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, Dataset


class SiameseNetwork(nn.Module):
    def __init__(self):
        super(SiameseNetwork, self).__init__()
        self.cnn = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                                 nn.Conv2d(8, 16, 3), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1)))
        self.fc = nn.Sequential(nn.Linear(16, 16), nn.ReLU(inplace=True), nn.Linear(16, 1))
        self.sigmoid = nn.Sigmoid()
        self.cnn.apply(self.init_weights)

    def init_weights(self, m):
        if isinstance(m, nn.Linear):
            torch.nn.init.xavier_uniform_(m.weight)
            m.bias.data.fill_(0.01)

    def forward_once(self, x):
        output = self.cnn(x)
        return output.view(output.size()[0], -1)

    def forward(self, input1, input2):
        output1 = self.forward_once(input1)
        output2 = self.forward_once(input2)
        output = torch.abs(output1 - output2)
        return self.sigmoid(self.fc(output))


class Pairs(Dataset):
    def __init__(self):
        rng = np.random.default_rng(0)
        self.images = rng.random((24, 1, 12, 12)).astype(np.float32)
        self.labels = rng.integers(0, 3, 24)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        j = (index * 7 + 3) % len(self.images)
        target = torch.tensor(float(self.labels[index] == self.labels[j]), dtype=torch.float)
        return torch.from_numpy(self.images[index]), torch.from_numpy(self.images[j]), target


def make_model():
    return SiameseNetwork()


def run(model, compile=False, epochs=3):
    loader = DataLoader(Pairs(), batch_size=8, shuffle=False)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = StepLR(optimizer, step_size=1, gamma=0.7)
    criterion = nn.BCELoss()
    forward = torch.compile(model) if compile else model
    out = []
    for epoch in range(epochs):
        model.train()
        for images_1, images_2, targets in loader:
            optimizer.zero_grad()
            outputs = forward(images_1, images_2).squeeze()
            loss = criterion(outputs, targets)
            loss.backward()
            optimizer.step()
            out.append(loss.item())
        scheduler.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for images_1, images_2, targets in loader:
                outputs = forward(images_1, images_2).squeeze()
                pred = torch.where(outputs > 0.5, 1, 0)
                correct += pred.eq(targets.view_as(pred)).sum().item()
        out.append(correct)
    return out
