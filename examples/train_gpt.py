"""Train a character-level GPT from scratch on the Book of Genesis (King James Version, public domain; see
examples/data/README.md), then sample from it. The model is the usual decoder-only transformer: token and position
embeddings, pre-norm blocks of causal self-attention and a GELU MLP, AdamW with warmup and a cosine schedule,
gradient clipping. Attention is masked either by a registered tril buffer (--attention mask, written out:
softmax(q k^T / sqrt(d)) v) or by F.scaled_dot_product_attention(is_causal=True) (--attention causal).

    python examples/train_gpt.py [--steps 300] [--compile] [--attention mask|causal] [--out gpt-out]
    python examples/train_gpt.py --resume gpt-out/gpt.ckpt --steps 800     # continue from a checkpoint

Writes OUT/gpt.ckpt (model, optimizer, step, config) and OUT/loss.png, and prints the validation loss against the
unigram baseline (the entropy of the character frequencies: what a model that ignores context can reach)."""
from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
from tqdm import tqdm

import graphc
import graphc.nn as nn
import graphc.nn.functional as F

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "genesis_kjv.txt")


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int, attention: str):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head, self.attention = n_head, attention
        self.register_buffer("bias", graphc.tril(graphc.ones(block_size, block_size)).view(1, 1, block_size,
                                                                                          block_size))

    def forward(self, x: graphc.Tensor) -> graphc.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        if self.attention == "causal":
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            y = F.softmax(att, dim=-1) @ v
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, block_size: int, attention: str):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, block_size, attention)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))

    def forward(self, x: graphc.Tensor) -> graphc.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int, attention: str):
        super().__init__()
        self.block_size = block_size
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.wpe = nn.Embedding(block_size, n_embd)
        self.blocks = nn.ModuleList([Block(n_embd, n_head, block_size, attention) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)

    def forward(self, idx: graphc.Tensor, targets: graphc.Tensor | None = None):
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(graphc.arange(T))
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

    @graphc.no_grad()
    def generate(self, idx: graphc.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None) -> graphc.Tensor:
        """Append max_new_tokens sampled tokens to idx (B, T): temperature-scaled, top-k filtered, multinomial."""
        for _ in range(max_new_tokens):
            logits, _ = self(idx[:, -self.block_size:])
            logits = logits[:, -1, :] / temperature
            if top_k is not None:
                v, _ = graphc.topk(logits, min(top_k, logits.size(-1)))
                logits = logits.masked_fill(logits < v[:, [-1]], float("-inf"))
            idx = graphc.cat((idx, graphc.multinomial(F.softmax(logits, dim=-1), num_samples=1)), dim=1)
        return idx


def learning_rate(step: int, args) -> float:
    """Linear warmup, then cosine decay to a tenth of the peak (nanoGPT's schedule)."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
    return args.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--block-size", type=int, default=64)
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--attention", choices=["mask", "causal"], default="mask")
    parser.add_argument("--compile", action="store_true", help="run the training step through graphc.compile")
    parser.add_argument("--eval-interval", type=int, default=100)
    parser.add_argument("--sample-tokens", type=int, default=300)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--out", default="gpt-out", help="folder for the checkpoint and the loss curve")
    parser.add_argument("--resume", help="a checkpoint to continue from")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    graphc.manual_seed(args.seed)
    text = open(DATA).read()
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = np.array([stoi[c] for c in text], dtype=np.int64)
    split = int(0.9 * len(data))
    train, val = data[:split], data[split:]
    counts = np.bincount(train, minlength=len(chars)) / len(train)
    unigram = float(-(counts[counts > 0] * np.log(counts[counts > 0])).sum())
    rng = np.random.default_rng(args.seed)

    def batch(source: np.ndarray):
        ix = rng.integers(0, len(source) - args.block_size - 1, args.batch_size)
        x = np.stack([source[i:i + args.block_size] for i in ix])
        y = np.stack([source[i + 1:i + 1 + args.block_size] for i in ix])
        return graphc.tensor(x), graphc.tensor(y)

    model = GPT(len(chars), args.block_size, args.n_layer, args.n_head, args.n_embd, args.attention)
    optimizer = graphc.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    start_step, history = 0, {"step": [], "train": [], "val": []}
    if args.resume:
        state = graphc.load(args.resume)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_step, history = state["step"], state["history"]
        print(f"resumed from {args.resume} at step {start_step}")

    def train_step(x, y):
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return loss

    @graphc.no_grad()
    def val_loss(batches: int = 8) -> float:
        model.eval()
        losses = [model(*batch(val))[1].item() for _ in range(batches)]
        model.train()
        return float(np.mean(losses))

    step_fn = graphc.compile(train_step) if args.compile else train_step
    started = time.perf_counter()
    bar = tqdm(range(start_step, args.steps), desc="train", unit="step")
    for step in bar:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args)
        loss = step_fn(*batch(train)).item()
        bar.set_postfix(loss=f"{loss:.3f}")
        if (step + 1) % args.eval_interval == 0 or step + 1 == args.steps:
            history["step"].append(step + 1)
            history["train"].append(loss)
            history["val"].append(val_loss())
            bar.write(f"step {step + 1}: train {loss:.4f}, val {history['val'][-1]:.4f} (unigram {unigram:.4f})")
    seconds = time.perf_counter() - started

    os.makedirs(args.out, exist_ok=True)
    checkpoint = os.path.join(args.out, "gpt.ckpt")
    graphc.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": args.steps,
                 "history": history, "config": vars(args)}, checkpoint)
    model.eval()
    prompt = graphc.tensor([[stoi[c] for c in "And God said"]])
    sample = "".join(chars[i] for i in model.generate(prompt, args.sample_tokens, temperature=0.8,
                                                      top_k=args.top_k)[0].tolist())
    final = history["val"][-1] if history["val"] else float("nan")
    how = f"compiled (num_traces={step_fn.num_traces})" if args.compile else "eager"
    print(f"{args.steps - start_step} steps {how} in {seconds:.1f} s; validation loss {final:.4f} nats/char "
          f"against the unigram baseline {unigram:.4f}; checkpoint {checkpoint}")
    print("sample:\n" + sample)
    _plot(history, unigram, os.path.join(args.out, "loss.png"))
    return {"val": final, "unigram": unigram, "seconds": seconds, "sample": sample, "checkpoint": checkpoint}


def _plot(history: dict, unigram: float, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no loss curve (pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(history["step"], history["train"], label="train (last batch)")
    ax.plot(history["step"], history["val"], label="validation")
    ax.axhline(unigram, color="gray", linestyle="--", label="unigram baseline")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/char)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    print(f"loss curve {path}")


if __name__ == "__main__":
    main()
