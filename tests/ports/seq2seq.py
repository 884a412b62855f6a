"""GRU encoder-decoder with teacher forcing, padding_idx and ignore_index, as in the seq2seq tutorials."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PAD, SOS = 0, 1
V, H = 12, 32


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(V, H, padding_idx=PAD)
        self.gru = nn.GRU(H, H, batch_first=True)

    def forward(self, src):
        embedded = self.embedding(src)
        outputs, hidden = self.gru(embedded)
        return outputs, hidden


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(V, H, padding_idx=PAD)
        self.gru = nn.GRU(2 * H, H, batch_first=True)
        self.out = nn.Linear(H, V)

    def forward(self, inp, hidden, enc_out):
        emb = self.embedding(inp).unsqueeze(1)              # (B, 1, H)
        scores = torch.bmm(enc_out, hidden.permute(1, 2, 0))  # (B, T, 1)
        attn = F.softmax(scores, dim=1)
        context = (attn * enc_out).sum(dim=1, keepdim=True)
        output, hidden = self.gru(torch.cat((emb, context), dim=2), hidden)
        return self.out(output.squeeze(1)), hidden


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = Encoder(), Decoder()

    def forward(self, src, trg):
        enc_out, hidden = self.encoder(src)
        B, T = trg.shape
        outputs = []
        inp = torch.full((B,), SOS, dtype=torch.long)
        for t in range(T):
            logits, hidden = self.decoder(inp, hidden, enc_out)
            outputs.append(logits)
            inp = trg[:, t]  # teacher forcing
        return torch.stack(outputs, dim=1)


def make_model():
    return Seq2Seq()


def run(model, compile=False, epochs=12):
    rng = np.random.default_rng(0)
    src = rng.integers(2, V, (48, 7))
    lengths = rng.integers(3, 8, 48)
    for i, n in enumerate(lengths):
        src[i, n:] = PAD
    trg = np.array([np.concatenate([s[:n][::-1], [PAD] * (7 - n)]) for s, n in zip(src, lengths)], dtype=np.int64)
    src, trg = torch.tensor(src), torch.tensor(trg)
    criterion = nn.CrossEntropyLoss(ignore_index=PAD)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)

    def step(s, t):
        optimizer.zero_grad()
        out = model(s, t)
        loss = criterion(out.reshape(-1, V), t.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss

    step_fn = torch.compile(step) if compile else step
    losses = []
    for epoch in range(epochs):
        total = 0.0
        for i in range(0, 48, 16):
            total += step_fn(src[i:i + 16], trg[i:i + 16]).item()
        scheduler.step()
        losses.append(total / 3)
    return losses
