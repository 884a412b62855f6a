"""The benchmark cases. Each case is written once against the torch API and built with lib=graphc and lib=torch
(graphc mirrors torch's names) on identical seeded data, at a CPU size and, when CUDA is present, a GPU size."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np


class Inputs:
    """Seeded random tensors of one library on one device: the same seed gives graphc and torch identical values."""

    def __init__(self, lib, device: str, seed: int = 0):
        self.lib, self.device, self.rng = lib, device, np.random.default_rng(seed)

    def randn(self, *shape: int, scale: float = 1.0, dtype: str = "float32", requires_grad: bool = False):
        values = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        return self.lib.tensor(values, dtype=getattr(self.lib, dtype), device=self.device, requires_grad=requires_grad)

    def randint(self, high: int, *shape: int):
        return self.lib.tensor(self.rng.integers(0, high, shape), device=self.device)


class Setup(NamedTuple):
    """What a case builds: the function to time, its arguments, and the tensors a call updates in place
    (compared with torch after the first call, like the outputs)."""

    fn: Callable
    args: tuple
    state: tuple = ()


@dataclass(frozen=True)
class Case:
    """One benchmark: build(lib, inputs, **size) -> Setup, its sizes per target ("cpu", "gpu"), and its FLOPs."""

    name: str
    what: str
    build: Callable[..., Setup]
    sizes: dict[str, dict[str, Any]]
    flops: Callable[..., float] = field(default=lambda **_: 0.0)


CASES: dict[str, Case] = {}


def case(cpu: dict | None, gpu: dict | None, flops: Callable[..., float] = lambda **_: 0.0, name: str | None = None):
    """Register a case builder (under its function name unless named); its docstring says what it measures."""
    def register(build):
        sizes = {target: size for target, size in (("cpu", cpu), ("gpu", gpu)) if size is not None}
        CASES[name or build.__name__] = Case(name or build.__name__, build.__doc__, build, sizes, flops)
        return build
    return register


@case(cpu=dict(n=1024, d=1024), gpu=dict(n=8192, d=4096))
def bias_gelu(lib, inputs: Inputs, n: int, d: int) -> Setup:
    """gelu(x + b), b broadcast over rows (erf GELU)."""
    F = lib.nn.functional
    return Setup(lambda x, b: F.gelu(x + b), (inputs.randn(n, d), inputs.randn(d)))


@case(cpu=dict(n=1024, d=1024), gpu=dict(n=8192, d=4096))
def elementwise_chain(lib, inputs: Inputs, n: int, d: int) -> Setup:
    """16 elementwise ops over two inputs, one output."""
    def chain(x, y):
        a = (x * 1.5 + y).sigmoid() * x
        a = (a - 0.25).tanh() + y * 0.5
        a = a.exp().clamp(max=3.0).sqrt()
        return a * x.abs() - y.neg().relu()
    return Setup(chain, (inputs.randn(n, d), inputs.randn(n, d)))


@case(cpu=dict(n=1024, d=1024), gpu=dict(n=8192, d=4096))
def softmax(lib, inputs: Inputs, n: int, d: int) -> Setup:
    """softmax over the last dim."""
    F = lib.nn.functional
    return Setup(lambda x: F.softmax(x, dim=-1), (inputs.randn(n, d),))


@case(cpu=dict(n=1024, d=1024), gpu=dict(n=8192, d=4096))
def layer_norm(lib, inputs: Inputs, n: int, d: int) -> Setup:
    """layer_norm over the last dim with weight and bias."""
    F = lib.nn.functional
    return Setup(lambda x, w, b: F.layer_norm(x, (d,), w, b), (inputs.randn(n, d), inputs.randn(d), inputs.randn(d)))


@case(cpu=dict(n=1024, d=1024), gpu=dict(n=8192, d=4096))
def rms_norm(lib, inputs: Inputs, n: int, d: int) -> Setup:
    """x * rsqrt(mean(x^2) + eps) * w, written out of primitive ops."""
    return Setup(lambda x, w: x * ((x * x).mean(-1, keepdim=True) + 1e-6).rsqrt() * w,
                 (inputs.randn(n, d), inputs.randn(d)))


@case(cpu=dict(n=1024, c=1000), gpu=dict(n=4096, c=32768))
def cross_entropy(lib, inputs: Inputs, n: int, c: int) -> Setup:
    """Mean cross-entropy of logits against integer targets (forward)."""
    F = lib.nn.functional
    return Setup(lambda logits, target: F.cross_entropy(logits, target), (inputs.randn(n, c), inputs.randint(c, n)))


@case(cpu=dict(n=512, k=512, m=512), gpu=dict(n=4096, k=4096, m=4096), flops=lambda n, k, m: 2.0 * n * k * m)
def linear_bias_relu(lib, inputs: Inputs, n: int, k: int, m: int) -> Setup:
    """relu(x @ W^T + b): a matmul with a bias and activation epilogue."""
    F = lib.nn.functional
    return Setup(lambda x, w, b: F.relu(F.linear(x, w, b)),
                 (inputs.randn(n, k), inputs.randn(m, k, scale=k**-0.5), inputs.randn(m)))


@case(cpu=dict(n=256, d=256, h=1024), gpu=dict(n=4096, d=2048, h=8192), flops=lambda n, d, h: 4.0 * n * d * h)
def mlp_block(lib, inputs: Inputs, n: int, d: int, h: int) -> Setup:
    """x + linear(gelu(linear(x))): two matmuls, GELU and a residual."""
    F = lib.nn.functional
    return Setup(lambda x, w1, b1, w2, b2: x + F.linear(F.gelu(F.linear(x, w1, b1)), w2, b2),
                 (inputs.randn(n, d), inputs.randn(h, d, scale=d**-0.5), inputs.randn(h),
                  inputs.randn(d, h, scale=h**-0.5), inputs.randn(d)))


@case(cpu=dict(b=2, h=4, t=256, e=64), gpu=dict(b=4, h=16, t=1024, e=64),
      flops=lambda b, h, t, e: 4.0 * b * h * t * t * e)
def attention(lib, inputs: Inputs, b: int, h: int, t: int, e: int) -> Setup:
    """softmax(q @ k^T * s) @ v, written out (the scores are materialised unless fused)."""
    F = lib.nn.functional
    scale = e**-0.5
    return Setup(lambda q, k, v: F.softmax(q @ k.transpose(-2, -1) * scale, dim=-1) @ v,
                 tuple(inputs.randn(b, h, t, e) for _ in range(3)))


@case(cpu=dict(n=1024), gpu=dict(n=4096))
def adam_update(lib, inputs: Inputs, n: int) -> Setup:
    """One optim.Adam step of one n x n parameter with a given gradient."""
    param = inputs.randn(n, n, requires_grad=True)
    param.grad = inputs.randn(n, n)
    opt = lib.optim.Adam([param], lr=1e-3)
    return Setup(lambda: opt.step(), (), (param,))


def _linear_params(inputs: Inputs, sizes: list[int]) -> list:
    return [p for fan_in, fan_out in zip(sizes, sizes[1:])
            for p in (inputs.randn(fan_out, fan_in, scale=fan_in**-0.5, requires_grad=True),
                      inputs.randn(fan_out, scale=fan_in**-0.5, requires_grad=True))]


DIGITS_MLP = [64, 100, 100, 10]


@case(cpu=dict(batch=64), gpu=dict(batch=64),
      flops=lambda batch: 6.0 * batch * sum(a * b for a, b in zip(DIGITS_MLP, DIGITS_MLP[1:])))
def digits_mlp_train_step(lib, inputs: Inputs, batch: int) -> Setup:
    """The digits MLP (64-100-100-10, ReLU) training step: forward, cross-entropy, backward, Adam."""
    F = lib.nn.functional
    params = _linear_params(inputs, DIGITS_MLP)
    opt = lib.optim.Adam(params, lr=1e-3)

    def step(x, y):
        opt.zero_grad()
        h = x
        for i in range(0, len(params), 2):
            h = F.linear(h, params[i], params[i + 1])
            h = F.relu(h) if i + 2 < len(params) else h
        loss = F.cross_entropy(h, y)
        loss.backward()
        opt.step()
        return loss
    return Setup(step, (inputs.randn(batch, DIGITS_MLP[0]), inputs.randint(DIGITS_MLP[-1], batch)), tuple(params))


def gpt_params(inputs: Inputs, d: int, layers: int, vocab: int, t: int) -> dict:
    """GPT-2-style parameters (0.02 std init; projections into the residual stream scaled by 1/sqrt(2 layers))."""
    def w(*shape, scale=0.02):
        return inputs.randn(*shape, scale=scale, requires_grad=True)

    def ones(n):
        return inputs.lib.ones(n, device=inputs.device, requires_grad=True)

    def zeros(n):
        return inputs.lib.zeros(n, device=inputs.device, requires_grad=True)

    blocks = [dict(ln1_w=ones(d), ln1_b=zeros(d), attn_w=w(3 * d, d), attn_b=zeros(3 * d),
                   proj_w=w(d, d, scale=0.02 / (2 * layers) ** 0.5), proj_b=zeros(d), ln2_w=ones(d), ln2_b=zeros(d),
                   fc_w=w(4 * d, d), fc_b=zeros(4 * d), fc2_w=w(d, 4 * d, scale=0.02 / (2 * layers) ** 0.5),
                   fc2_b=zeros(d)) for _ in range(layers)]
    return dict(wte=w(vocab, d), wpe=w(t, d), blocks=blocks, lnf_w=ones(d), lnf_b=zeros(d))


@case(cpu=None, gpu=dict(b=8, t=256, d=256, heads=4, layers=2, vocab=1024),
      flops=lambda b, t, d, heads, layers, vocab: 6.0 * b * t * (12 * layers * d * d + d * vocab)
      + 12.0 * layers * b * t * t * d)
def gpt_train_step(lib, inputs: Inputs, b: int, t: int, d: int, heads: int, layers: int, vocab: int) -> Setup:
    """A GPT training step (pre-norm blocks: causal scaled_dot_product_attention, GELU MLP; weight-tied head):
    forward, cross-entropy over the next tokens, backward, AdamW."""
    F = lib.nn.functional
    p = gpt_params(inputs, d, layers, vocab, t)
    leaves = [p["wte"], p["wpe"], *(x for blk in p["blocks"] for x in blk.values()), p["lnf_w"], p["lnf_b"]]
    opt = lib.optim.AdamW(leaves, lr=3e-4, weight_decay=0.1)

    def attention(x, blk):
        q, k, v = F.linear(x, blk["attn_w"], blk["attn_b"]).split(d, dim=2)
        q, k, v = (z.view(b, t, heads, d // heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return F.linear(y.transpose(1, 2).contiguous().view(b, t, d), blk["proj_w"], blk["proj_b"])

    def step(idx, targets):
        opt.zero_grad()
        x = F.embedding(idx, p["wte"]) + p["wpe"]
        for blk in p["blocks"]:
            x = x + attention(F.layer_norm(x, (d,), blk["ln1_w"], blk["ln1_b"]), blk)
            h = F.gelu(F.linear(F.layer_norm(x, (d,), blk["ln2_w"], blk["ln2_b"]), blk["fc_w"], blk["fc_b"]))
            x = x + F.linear(h, blk["fc2_w"], blk["fc2_b"])
        logits = F.linear(F.layer_norm(x, (d,), p["lnf_w"], p["lnf_b"]), p["wte"])
        loss = F.cross_entropy(logits.view(-1, vocab), targets.view(-1))
        loss.backward()
        opt.step()
        return loss
    return Setup(step, (inputs.randint(vocab, b, t), inputs.randint(vocab, b, t)), tuple(leaves))


@case(cpu=dict(b=2, t=128, d=256, h=4, hidden=1024), gpu=dict(b=8, t=512, d=1024, h=16, hidden=4096),
      flops=lambda b, t, d, h, hidden: 2.0 * b * t * d * (4 * d + 2 * hidden) + 4.0 * b * t * t * d)
def transformer_block(lib, inputs: Inputs, b: int, t: int, d: int, h: int, hidden: int) -> Setup:
    """A pre-norm transformer block forward: LayerNorm, multi-head attention (sdpa), residual, LayerNorm, GELU MLP,
    residual."""
    F = lib.nn.functional
    ln1_w, ln1_b, ln2_w, ln2_b = inputs.randn(d), inputs.randn(d), inputs.randn(d), inputs.randn(d)
    wq, wk, wv, wo = (inputs.randn(d, d, scale=d**-0.5) for _ in range(4))
    bq, bk, bv, bo = (inputs.randn(d) for _ in range(4))
    w1, b1, w2, b2 = inputs.randn(hidden, d, scale=d**-0.5), inputs.randn(hidden), \
        inputs.randn(d, hidden, scale=hidden**-0.5), inputs.randn(d)

    def heads(a, w, bias):
        return F.linear(a, w, bias).view(b, t, h, d // h).transpose(1, 2)

    def block(x):
        a = F.layer_norm(x, (d,), ln1_w, ln1_b)
        o = F.scaled_dot_product_attention(heads(a, wq, bq), heads(a, wk, bk), heads(a, wv, bv))
        x = x + F.linear(o.transpose(1, 2).reshape(b, t, d), wo, bo)
        m = F.layer_norm(x, (d,), ln2_w, ln2_b)
        return x + F.linear(F.gelu(F.linear(m, w1, b1)), w2, b2)
    return Setup(block, (inputs.randn(b, t, d),))


def matmul(lib, inputs: Inputs, n: int, dtype: str) -> Setup:
    """a @ b, square, in the size's dtype (compare with torch.matmul: target >= 0.9x)."""
    return Setup(lambda a, b: a @ b, (inputs.randn(n, n, dtype=dtype), inputs.randn(n, n, dtype=dtype)))


for _dtype in ("float32", "float16", "bfloat16"):
    case(cpu=None, gpu=dict(n=4096, dtype=_dtype), flops=lambda n, dtype: 2.0 * n**3,
         name=f"matmul_{_dtype.replace('float', 'fp')}")(matmul)
