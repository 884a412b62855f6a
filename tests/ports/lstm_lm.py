"""A word-level LSTM language model in the manner of the PyTorch word_language_model example: embedding,
multi-layer LSTM with dropout between layers, tied-size decoder, truncated BPTT with repackaged hidden state,
gradient clipping and plain SGD with a learning rate that is annealed by hand."""
import math

import numpy as np
import torch
import torch.nn as nn


class RNNModel(nn.Module):
    def __init__(self, ntoken, ninp, nhid, nlayers, dropout=0.0):
        super(RNNModel, self).__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.init_weights()
        self.nhid = nhid
        self.nlayers = nlayers

    def init_weights(self):
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output)
        decoded = decoded.view(-1, self.ntoken)
        return nn.functional.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))


def repackage_hidden(h):
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    data = data.narrow(0, 0, nbatch * bsz)
    return data.view(bsz, -1).t().contiguous()


def get_batch(source, i, bptt=8):
    seq_len = min(bptt, len(source) - 1 - i)
    data = source[i:i + seq_len]
    target = source[i + 1:i + 1 + seq_len].view(-1)
    return data, target


NTOKENS = 20


def make_model():
    return RNNModel(NTOKENS, 16, 24, 2, dropout=0.0)


def run(model, compile=False, epochs=2):
    rng = np.random.default_rng(0)
    corpus = torch.tensor(rng.integers(0, NTOKENS, 400), dtype=torch.long)
    train_data = batchify(corpus, 4)
    criterion = nn.NLLLoss()
    lr, clip = 5.0, 0.25
    step = torch.compile(model) if compile else model
    losses = []
    for epoch in range(epochs):
        model.train()
        hidden = model.init_hidden(4)
        total_loss = 0.0
        for batch, i in enumerate(range(0, train_data.size(0) - 1, 8)):
            data, targets = get_batch(train_data, i)
            model.zero_grad()
            hidden = repackage_hidden(hidden)
            output, hidden = step(data, hidden)
            loss = criterion(output, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
            total_loss += loss.item()
            losses.append(loss.item())
        print(f"| epoch {epoch} | loss {total_loss / (batch + 1):5.2f} | ppl {math.exp(total_loss / (batch + 1)):8.2f}")
        lr /= 4.0
    return losses


if __name__ == "__main__":
    torch.manual_seed(1111)
    run(make_model())
