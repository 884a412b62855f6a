"""A variational autoencoder in the manner of the PyTorch VAE example: fc encoder to mu/logvar, the
reparameterization trick, a sigmoid decoder, binary cross-entropy plus KL divergence, Adam."""
import numpy as np
import torch
from torch import nn, optim
from torch.nn import functional as F


class VAE(nn.Module):
    def __init__(self):
        super(VAE, self).__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc21 = nn.Linear(32, 4)
        self.fc22 = nn.Linear(32, 4)
        self.fc3 = nn.Linear(4, 32)
        self.fc4 = nn.Linear(32, 64)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 64))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def loss_function(recon_x, x, mu, logvar):
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, 64), reduction="sum")
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return BCE + KLD


def make_model():
    return VAE()


def run(model, compile=False, epochs=3):
    rng = np.random.default_rng(0)
    data = torch.tensor((rng.random((128, 8, 8)) > 0.7).astype(np.float32))
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    step_model = torch.compile(model) if compile else model
    losses = []
    for epoch in range(1, epochs + 1):
        model.train()
        train_loss = 0
        for i in range(0, len(data), 32):
            batch = data[i:i + 32]
            optimizer.zero_grad()
            recon_batch, mu, logvar = step_model(batch)
            loss = loss_function(recon_batch, batch, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
        print(f"====> Epoch: {epoch} Average loss: {train_loss / len(data):.4f}")
        losses.append(train_loss / len(data))
    with torch.no_grad():
        sample = model.decode(torch.randn(8, 4))
        assert sample.shape == (8, 64)
    return losses


if __name__ == "__main__":
    torch.manual_seed(1)
    run(make_model())
