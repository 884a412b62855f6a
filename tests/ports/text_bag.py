"""Text classification in the manner of the PyTorch "text classification with torchtext" tutorial, without
torchtext: a vocabulary built by hand, a collate_batch that concatenates token ids and builds offsets with
torch.tensor(offsets[:-1]).cumsum(dim=0), nn.EmbeddingBag(mode="mean") with sparse=False, init_weights with
uniform_/zero_, SGD with StepLR, clip_grad_norm_, random_split of a map-style dataset, DataLoader with collate_fn,
evaluation with (predicted_label.argmax(1) == label).sum().item()."""
import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, random_split


class TextClassificationModel(nn.Module):
    def __init__(self, vocab_size=30, embed_dim=16, num_class=3):
        super(TextClassificationModel, self).__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, embed_dim, sparse=False)
        self.fc = nn.Linear(embed_dim, num_class)
        self.init_weights()

    def init_weights(self):
        initrange = 0.5
        self.embedding.weight.data.uniform_(-initrange, initrange)
        self.fc.weight.data.uniform_(-initrange, initrange)
        self.fc.bias.data.zero_()

    def forward(self, text, offsets):
        embedded = self.embedding(text, offsets)
        return self.fc(embedded)


class NewsDataset(Dataset):
    def __init__(self, n=240, seed=0):
        rng = np.random.default_rng(seed)
        self.samples = []
        for _ in range(n):
            label = int(rng.integers(0, 3))
            length = int(rng.integers(3, 9))
            words = rng.integers(0, 30, length)
            words[: length // 2] = label * 10 + rng.integers(0, 10, length // 2)  # topic words
            self.samples.append((label, " ".join(f"w{w}" for w in words)))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, idx):
        return self.samples[idx]


vocab = {f"w{i}": i for i in range(30)}


def text_pipeline(x):
    return [vocab[token] for token in x.split()]


def collate_batch(batch):
    label_list, text_list, offsets = [], [], [0]
    for _label, _text in batch:
        label_list.append(_label)
        processed_text = torch.tensor(text_pipeline(_text), dtype=torch.int64)
        text_list.append(processed_text)
        offsets.append(processed_text.size(0))
    label_list = torch.tensor(label_list, dtype=torch.int64)
    offsets = torch.tensor(offsets[:-1]).cumsum(dim=0)
    text_list = torch.cat(text_list)
    return label_list, text_list, offsets


def make_model():
    return TextClassificationModel()


def run(model, compile=False, epochs=4):
    dataset = NewsDataset()
    num_train = int(len(dataset) * 0.95)
    split_train_, split_valid_ = random_split(dataset, [num_train, len(dataset) - num_train],
                                              generator=torch.Generator().manual_seed(42))
    train_dataloader = DataLoader(dataset, batch_size=16, shuffle=False, collate_fn=collate_batch,
                                  num_workers=0, pin_memory=False)
    valid_dataloader = DataLoader(split_valid_, batch_size=16, shuffle=False, collate_fn=collate_batch)
    criterion = torch.nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=5.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1.0, gamma=0.1)

    def train_step(label, text, offsets):
        optimizer.zero_grad()
        predicted_label = model(text, offsets)
        loss = criterion(predicted_label, label)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()
        return loss, predicted_label

    step = torch.compile(train_step) if compile else train_step
    losses = []
    for epoch in range(1, epochs + 1):
        model.train()
        total_acc, total_count, total_loss = 0, 0, 0.0
        for idx, (label, text, offsets) in enumerate(train_dataloader):
            loss, predicted_label = step(label, text, offsets)
            total_acc += (predicted_label.argmax(1) == label).sum().item()
            total_count += label.size(0)
            total_loss += loss.item()
        losses.append(total_loss / (idx + 1))
        scheduler.step()
        model.eval()
        with torch.no_grad():
            correct = sum((model(text, offsets).argmax(1) == label).sum().item()
                          for label, text, offsets in valid_dataloader)
        print(f"| epoch {epoch:3d} | train acc {total_acc / total_count:8.3f} | valid batches {len(valid_dataloader)}"
              f" | valid correct {correct}")
    return losses
