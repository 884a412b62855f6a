"""A character-level LSTM in the manner of the Udacity / "anna KaRNNa" char-RNN notebooks: one-hot encoding with
numpy, init_hidden through weight.new(...).zero_(), the hidden state re-wrapped each batch with
tuple([each.data for each in h]), dropout between layers, clip_grad_norm_, and sampling with topk and np.random."""
import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


def one_hot_encode(arr, n_labels):
    one_hot = np.zeros((arr.size, n_labels), dtype=np.float32)
    one_hot[np.arange(one_hot.shape[0]), arr.flatten()] = 1.
    return one_hot.reshape((*arr.shape, n_labels))


def get_batches(arr, batch_size, seq_length):
    batch_size_total = batch_size * seq_length
    n_batches = len(arr) // batch_size_total
    arr = arr[:n_batches * batch_size_total].reshape((batch_size, -1))
    for n in range(0, arr.shape[1], seq_length):
        x = arr[:, n:n + seq_length]
        y = np.zeros_like(x)
        try:
            y[:, :-1], y[:, -1] = x[:, 1:], arr[:, n + seq_length]
        except IndexError:
            y[:, :-1], y[:, -1] = x[:, 1:], arr[:, 0]
        yield x, y


class CharRNN(nn.Module):
    def __init__(self, n_chars=12, n_hidden=32, n_layers=2, drop_prob=0.0):
        super().__init__()
        self.n_layers, self.n_hidden, self.n_chars = n_layers, n_hidden, n_chars
        self.lstm = nn.LSTM(n_chars, n_hidden, n_layers, dropout=drop_prob, batch_first=True)
        self.dropout = nn.Dropout(drop_prob)
        self.fc = nn.Linear(n_hidden, n_chars)

    def forward(self, x, hidden):
        r_output, hidden = self.lstm(x, hidden)
        out = self.dropout(r_output)
        out = out.contiguous().view(-1, self.n_hidden)
        return self.fc(out), hidden

    def init_hidden(self, batch_size):
        weight = next(self.parameters()).data
        return (weight.new(self.n_layers, batch_size, self.n_hidden).zero_(),
                weight.new(self.n_layers, batch_size, self.n_hidden).zero_())


def make_model():
    return CharRNN()


def predict(net, char, h, top_k=3):
    x = one_hot_encode(np.array([[char]]), net.n_chars)
    inputs = torch.from_numpy(x)
    h = tuple([each.data for each in h])
    out, h = net(inputs, h)
    p = F.softmax(out, dim=1).data
    p, top_ch = p.topk(top_k)
    top_ch = top_ch.numpy().squeeze()
    p = p.numpy().squeeze()
    return int(np.random.choice(top_ch, p=p / p.sum())), h


def run(net, compile=False, epochs=3, batch_size=4, seq_length=10, clip=5):
    text = "hello world, the cat sat on the mat. " * 12
    chars = sorted(set(text))[:12]
    char2int = {ch: ii for ii, ch in enumerate(chars)}
    encoded = np.array([char2int.get(ch, 0) for ch in text])
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    criterion = nn.CrossEntropyLoss()

    def train_step(inputs, targets, h):
        net.zero_grad()
        output, h = net(inputs, h)
        loss = criterion(output, targets.view(batch_size * seq_length).long())
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), clip)
        opt.step()
        return loss, h

    step = torch.compile(train_step) if compile else train_step
    net.train()
    losses = []
    for e in range(epochs):
        h = net.init_hidden(batch_size)
        for x, y in get_batches(encoded, batch_size, seq_length):
            x = one_hot_encode(x, net.n_chars)
            inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
            h = tuple([each.data for each in h])
            loss, h = step(inputs, targets, h)
            losses.append(loss.item())
        print(f"Epoch: {e + 1}/{epochs}... Loss: {losses[-1]:.4f}")
    net.eval()
    np.random.seed(0)
    with torch.no_grad():
        h = net.init_hidden(1)
        c = char2int["h"]
        for _ in range(10):
            c, h = predict(net, c, h)
    return losses
