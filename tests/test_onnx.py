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


def _t(*shape, positive=False):
    x = graphc.randn(*shape)
    return x.abs() + 0.5 if positive else x


# op name -> (function exporting it, its inputs); every op that declares an ONNX mapping has a row
OPS = {
    "add": (lambda x, y: x + y + 2, lambda: (_t(3, 4), _t(4))),
    "sub": (lambda x, y: x - y - 1.5, lambda: (_t(3, 4), _t(3, 1))),
    "mul": (lambda x, y: x * y * 3, lambda: (_t(3, 4), _t(4))),
    "div": (lambda x, y: x / y / 2, lambda: (_t(3, 4), _t(3, 4, positive=True))),
    "pow": (lambda x, y: x ** y, lambda: (_t(3, 4, positive=True), _t(3, 4))),
    "maximum": (graphc.maximum, lambda: (_t(3, 4), _t(3, 4))),
    "minimum": (graphc.minimum, lambda: (_t(3, 4), _t(3, 4))),
    "neg": (lambda x: -x, lambda: (_t(5),)),
    "abs": (graphc.abs, lambda: (_t(5),)),
    "exp": (graphc.exp, lambda: (_t(5),)),
    "log": (graphc.log, lambda: (_t(5, positive=True),)),
    "sqrt": (graphc.sqrt, lambda: (_t(5, positive=True),)),
    "rsqrt": (graphc.rsqrt, lambda: (_t(5, positive=True),)),
    "reciprocal": (graphc.reciprocal, lambda: (_t(5, positive=True),)),
    "sin": (graphc.sin, lambda: (_t(5),)),
    "cos": (graphc.cos, lambda: (_t(5),)),
    "tanh": (graphc.tanh, lambda: (_t(5),)),
    "sigmoid": (graphc.sigmoid, lambda: (_t(5),)),
    "relu": (F.relu, lambda: (_t(5),)),
    "erf": (graphc.erf, lambda: (_t(5),)),
    "gelu": (graphc.nn.functional.gelu, lambda: (_t(5),)),
    "floor": (graphc.floor, lambda: (_t(5) * 3,)),
    "ceil": (graphc.ceil, lambda: (_t(5) * 3,)),
    "eq": (lambda x, y: (x == y).float(), lambda: (graphc.tensor([1.0, 2.0, 3.0]), graphc.tensor([1.0, 0.0, 3.0]))),
    "lt": (lambda x, y: (x < y).float(), lambda: (_t(6), _t(6))),
    "le": (lambda x, y: (x <= y).float(), lambda: (_t(6), _t(6))),
    "gt": (lambda x, y: (x > y).float(), lambda: (_t(6), _t(6))),
    "ge": (lambda x, y: (x >= y).float(), lambda: (_t(6), _t(6))),
    "cast": (lambda x: x.int().float() + x.double().float(), lambda: (_t(6) * 4,)),
    "where": (lambda x, y: graphc.where(x > 0, x, y), lambda: (_t(3, 4), _t(4))),
    "masked_fill": (lambda x: x.masked_fill(x > 0, -2.5), lambda: (_t(3, 4),)),
    "sum": (lambda x: x.sum(1) + x.sum((0, 2), keepdim=True).sum(), lambda: (_t(2, 3, 4),)),
    "mean": (lambda x: x.mean(-1, keepdim=True) + x.mean(), lambda: (_t(2, 3, 4),)),
    "amax": (lambda x: x.amax(1), lambda: (_t(2, 3, 4),)),
    "amin": (lambda x: x.amin((0, 2), keepdim=True), lambda: (_t(2, 3, 4),)),
    "view": (lambda x: x.view(3, -1), lambda: (_t(3, 2, 4),)),
    "reshape": (lambda x: x.permute(2, 0, 1).reshape(4, 6), lambda: (_t(3, 2, 4),)),
    "flatten": (lambda x: x.flatten(1), lambda: (_t(3, 2, 4),)),
    "unflatten": (lambda x: x.unflatten(1, (2, -1)), lambda: (_t(3, 8),)),
    "squeeze": (lambda x: x.squeeze(1), lambda: (_t(3, 1, 4),)),
    "unsqueeze": (lambda x: x.unsqueeze(1) + x.unsqueeze(-1), lambda: (_t(3, 4),)),
    "expand": (lambda x: x.expand(2, 3, 4), lambda: (_t(3, 1),)),
    "expand_as": (lambda x, y: x.expand_as(y), lambda: (_t(1, 4), _t(3, 4))),
    "permute": (lambda x: x.permute(2, 0, 1), lambda: (_t(3, 2, 4),)),
    "getitem": (lambda x: x[1:, ::2] + x[0, 1:3], lambda: (_t(4, 4),)),
    "contiguous": (lambda x: x.t().contiguous(), lambda: (_t(3, 4),)),
    "matmul": (lambda x, w: x @ w, lambda: (_t(2, 3, 4), _t(4, 5))),
    "conv2d": (lambda x, w: F.conv2d(x, w, stride=2, padding=1), lambda: (_t(2, 3, 7, 7), _t(4, 3, 3, 3))),
    "max_pool2d": (lambda x: F.max_pool2d(x, 3, 2, 1), lambda: (_t(2, 3, 7, 7),)),
    "conv3d": (lambda x, w: F.conv3d(x, w, stride=(1, 2, 2), padding=1),
               lambda: (_t(2, 3, 4, 5, 5), _t(4, 3, 3, 3, 3))),
    "max_pool3d": (lambda x: F.max_pool3d(x, 3, 2, 1), lambda: (_t(1, 2, 5, 6, 6),)),
    "embedding": (lambda i, w: F.embedding(i, w), lambda: (graphc.tensor([[0, 3], [2, 2]]), _t(5, 3))),
    "causal_mask": (lambda s: graphc.ops.nn.causal_mask(s).float() + s, lambda: (_t(2, 3, 4),)),
    "scaled_dot_product_attention": (
        lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, is_causal=True) +
        F.scaled_dot_product_attention(q, k, v, attn_mask=m > 0) + F.scaled_dot_product_attention(q, k, v, attn_mask=m),
        lambda: (_t(2, 3, 4), _t(2, 5, 4), _t(2, 5, 4), _t(3, 5))),
}


def test_every_mapped_op_has_an_export_test():
    from graphc.dispatch import OPS as DEFINED
    assert {name for name, op in DEFINED.items() if op.onnx is not None} == set(OPS)


@pytest.mark.parametrize("name", sorted(OPS))
def test_op_exports(name, tmp_path):
    from graphc.onnx.export import capture
    graphc.manual_seed(0)
    fn, make = OPS[name]
    args = make()
    with graphc.no_grad():
        graph = capture(fn, args)[0]
    assert name in {n.op.name for n in graph.nodes if n.kind == "op"}
    path = tmp_path / "op.onnx"
    graphc.onnx.export(fn, args, path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    want = fn(*args).numpy()
    # sums of many products (conv3d: 81 per output) differ by float32 rounding in proportion to the outputs' scale,
    # as ONNX Runtime's kernels add them in another order (its AVX-512 ones: 2.9e-6 on outputs up to 25)
    atol = 1e-6 * max(1.0, float(np.abs(want).max(initial=0.0)))
    got = graphc.onnx.verify(fn, args, path, atol=atol)
    np.testing.assert_allclose(got[0], want, rtol=1e-5, atol=atol)
