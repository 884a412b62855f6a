"""A small speech recognizer in the manner of DeepSpeech-style CTC code: a Conv1d front end over mel-like
features, a bidirectional GRU over time, a Linear classifier, log_softmax over the characters, nn.CTCLoss with
padded targets and per-utterance lengths, Adam with gradient clipping, and greedy decoding of the best path."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

VOCAB = "_abcde"  # index 0 is the CTC blank
N_MELS = 12


class SpeechModel(nn.Module):
    def __init__(self, n_mels=N_MELS, hidden=16, n_classes=len(VOCAB)):
        super().__init__()
        self.frontend = nn.Sequential(
            nn.Conv1d(n_mels, hidden, kernel_size=3, padding=1),
            nn.BatchNorm1d(hidden),
            nn.GELU(),
        )
        self.rnn = nn.GRU(hidden, hidden, num_layers=1, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(2 * hidden, n_classes)

    def forward(self, features):  # (batch, n_mels, time)
        x = self.frontend(features).transpose(1, 2)  # (batch, time, hidden)
        x, _ = self.rnn(x)
        return self.classifier(x)  # (batch, time, classes)


def synth_utterance(rng, n_labels):
    """Each character is a few frames of its own spectral band, with noise between and around."""
    labels = rng.integers(1, len(VOCAB), n_labels)
    frames = []
    for label in labels:
        for _ in range(rng.integers(2, 4)):
            frame = rng.normal(0, 0.3, N_MELS)
            frame[2 * label:2 * label + 2] += 2.0
            frames.append(frame)
        frames.append(rng.normal(0, 0.3, N_MELS))
    return torch.tensor(np.array(frames, np.float32)), torch.tensor(labels)


def make_dataset(rng, size):
    """Utterances padded to the longest one (features) and to the longest transcript (targets)."""
    utterances = [synth_utterance(rng, int(rng.integers(2, 4))) for _ in range(size)]
    feats = pad_sequence([u[0] for u in utterances], batch_first=True)  # (size, time, n_mels)
    targets = pad_sequence([u[1] for u in utterances], batch_first=True)
    input_lengths = torch.tensor([len(u[0]) for u in utterances])
    target_lengths = torch.tensor([len(u[1]) for u in utterances])
    return feats.transpose(1, 2), targets, input_lengths, target_lengths


def greedy_decode(log_probs, lengths):
    best = log_probs.argmax(-1)
    texts = []
    for path, n in zip(best.tolist(), lengths.tolist()):
        chars, previous = [], 0
        for index in path[:n]:
            if index != previous and index != 0:
                chars.append(VOCAB[index])
            previous = index
        texts.append("".join(chars))
    return texts


def make_model():
    return SpeechModel()


def run(model, compile=False, steps=8, batch_size=4):
    data = make_dataset(np.random.default_rng(0), 2 * batch_size)
    batches = [[part[i:i + batch_size] for part in data] for i in range(0, 2 * batch_size, batch_size)]
    criterion = nn.CTCLoss(blank=0, zero_infinity=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    forward = torch.compile(model) if compile else model
    losses = []
    model.train()
    for step in range(steps):
        feats, targets, input_lengths, target_lengths = batches[step % len(batches)]
        log_probs = F.log_softmax(forward(feats), dim=-1).transpose(0, 1)  # (time, batch, classes) for CTC
        loss = criterion(log_probs, targets, input_lengths, target_lengths)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        feats, targets, input_lengths, target_lengths = batches[0]
        log_probs = F.log_softmax(forward(feats), dim=-1)
        print(greedy_decode(log_probs, input_lengths)[:3])
        losses.append(criterion(log_probs.transpose(0, 1), targets, input_lengths, target_lengths).item())
    return losses
