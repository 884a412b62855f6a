"""The word_language_model example's habits: tied LSTM language model, batchify, get_batch, repackage_hidden,
clip_grad_norm_, a manual SGD update through p.data.add_, lr annealing by hand, perplexity with math.exp."""
import math
import numpy as np
import torch
import torch.nn as nn

NTOKEN, NINP = 30, 24


class RNNModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.0)
        self.encoder = nn.Embedding(NTOKEN, NINP)
        self.rnn = nn.LSTM(NINP, NINP, 2, dropout=0.0)
        self.decoder = nn.Linear(NINP, NTOKEN)
        self.decoder.weight = self.encoder.weight
        self.init_weights()

    def init_weights(self):
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output).view(-1, NTOKEN)
        return nn.functional.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(2, bsz, NINP), weight.new_zeros(2, bsz, NINP))


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    data = data.narrow(0, 0, nbatch * bsz)
    return data.view(bsz, -1).t().contiguous()


def repackage_hidden(h):
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def get_batch(source, i, bptt=6):
    seq_len = min(bptt, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)


def make_model():
    return RNNModel()


def run(model, compile=False, epochs=3):
    rng = np.random.default_rng(0)
    corpus = torch.tensor((np.arange(400) * 7 + rng.integers(0, 2, 400)) % NTOKEN)
    train_data = batchify(corpus, 8)
    criterion = nn.NLLLoss()
    lr = 5.0
    fwd = torch.compile(model) if compile else model
    losses = []
    for epoch in range(epochs):
        model.train()
        hidden = model.init_hidden(8)
        total = 0.0
        n = 0
        for batch, i in enumerate(range(0, train_data.size(0) - 1, 6)):
            data, targets = get_batch(train_data, i)
            model.zero_grad()
            hidden = repackage_hidden(hidden)
            output, hidden = fwd(data, hidden)
            loss = criterion(output, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
            total += loss.item()
            n += 1
        lr /= 2.0
        losses.append(math.exp(total / n))
    return losses
