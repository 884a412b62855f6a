"""graphc.onnx: export captured graphs to ONNX; ONNX Runtime (CPU) must match graphc eager (rel 1e-5, fp32) at the
export batch size and, through dynamic_axes, at another one."""
import os
import sys

import numpy as np
import pytest

import graphc
import graphc.nn as nn
import graphc.nn.functional as F

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

from train_digits_cnn import make_model as make_cnn  # noqa: E402
from train_digits_mlp import make_model as make_mlp  # noqa: E402


def export_and_run(model, example, other, tmp_path, dynamic=(0,)):
    """Export on `example`, then ONNX Runtime vs graphc eager on it and on `other` (another batch size)."""
    path = tmp_path / "model.onnx"
    axes = {"x": {d: f"d{d}" for d in dynamic}, "y": {d: f"d{d}" for d in dynamic}}
    graphc.onnx.export(model, (example,), path, input_names=["x"], output_names=["y"], dynamic_axes=axes)
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    for x in (example, other):
        got = graphc.onnx.verify(model, (x,), path)
        with graphc.no_grad():
            want = model(x).numpy()
        assert got[0].shape == want.shape
        np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=1e-6)
    return proto


def test_digits_mlp(tmp_path):
    graphc.manual_seed(0)
    model = make_mlp()
    proto = export_and_run(model, graphc.randn(16, 64), graphc.randn(5, 64), tmp_path)
    names = {i.name for i in proto.graph.initializer}
    assert set(model.state_dict()) <= names
    assert model.training  # export restores training mode


def test_digits_cnn(tmp_path):
    graphc.manual_seed(0)
    export_and_run(make_cnn(), graphc.randn(4, 1, 8, 8), graphc.randn(9, 1, 8, 8), tmp_path)


class Block(nn.Module):
    """A pre-norm transformer block with causal self-attention, written as public GPT code is."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.c_attn, self.c_proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q = q.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        k = k.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        v = v.view(B, T, self.heads, C // self.heads).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.mlp(self.ln_2(x))


class TinyGPT(nn.Module):
    def __init__(self, vocab=50, block=16, dim=32, heads=4, layers=2):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, dim), nn.Embedding(block, dim)
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)

    def forward(self, idx):
        pos = graphc.arange(0, idx.size(1), dtype=graphc.long)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


def test_gpt_forward(tmp_path):
    graphc.manual_seed(0)
    export_and_run(TinyGPT(), graphc.randint(0, 50, (2, 8)), graphc.randint(0, 50, (5, 8)), tmp_path)


def test_batchnorm_eval(tmp_path):
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 4),
                          nn.BatchNorm1d(4))
    model.train()
    for _ in range(3):  # running statistics away from their initial values
        model(graphc.randn(8, 3, 6, 6))
    model.eval()
    export_and_run(model, graphc.randn(4, 3, 6, 6), graphc.randn(2, 3, 6, 6), tmp_path)


def test_layernorm_gelu_softmax(tmp_path):
    graphc.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 12), nn.LayerNorm(12), nn.GELU(), nn.Linear(12, 6), nn.GELU("tanh"),
                          nn.Softmax(dim=-1))
    export_and_run(model, graphc.randn(3, 5, 12), graphc.randn(6, 5, 12), tmp_path)


class Cumulative(nn.Module):
    def forward(self, x):
        return x.cumsum(1)


def test_op_without_mapping_names_op_and_line(tmp_path):
    with pytest.raises(NotImplementedError) as info:
        graphc.onnx.export(Cumulative(), (graphc.randn(2, 3),), tmp_path / "m.onnx")
    message = str(info.value)
    assert "'cumsum'" in message and "test_onnx.py:" in message and "rewrite" in message
