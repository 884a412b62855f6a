"""MultiheadAttention and the Transformer modules against torch: state-dict names, outputs, attention weights and
gradients of inputs and weights (copied from torch through the state dict), every layout and mask kind, pre- and
post-norm, activations; errors; a compiled TransformerEncoderLayer forward+backward equals eager."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import assert_close, assert_trains_like_torch, clipped_step

import graphc

TOL = dict(rtol=1e-4, atol=1e-5)


def pair(make):
    g, t = make(graphc.nn), make(torch.nn)
    assert list(g.state_dict()) == list(t.state_dict())
    g.load_state_dict({k: v.detach().numpy().copy() for k, v in t.state_dict().items()})
    g.eval()
    t.eval()  # dropout off in both (values differ between generators); torch then also skips its fast path checks
    return g, t


def randn(*shape) -> np.ndarray:
    return np.random.standard_normal(shape).astype(np.float32)


def run_both(g, t, arrays, kwargs_of=lambda lib: {}, pick=lambda out: out):
    """Outputs and gradients of every input and weight, graphc against torch."""
    g_in = [graphc.tensor(a, requires_grad=True) for a in arrays]
    t_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    g_all, t_all = g(*g_in, **kwargs_of(graphc)), t(*t_in, **kwargs_of(torch))
    g_out, t_out = pick(g_all), pick(t_all)
    assert_close(g_out.detach(), t_out, **TOL)
    w = randn(*t_out.shape)
    (g_out * graphc.tensor(w)).sum().backward()
    (t_out * torch.tensor(w)).sum().backward()
    for gi, ti in zip(g_in, t_in):
        assert_close(gi.grad, ti.grad, **TOL)
    for gp, tp in zip(g.parameters(), t.parameters()):
        assert_close(gp.grad, tp.grad, **TOL)
    return g_all, t_all


def bool_mask(*shape, p=0.3) -> np.ndarray:
    mask = np.random.random(shape) < p
    mask[..., 0] = False  # every query keeps a key: no all-masked row (NaN in both)
    return mask


MHA = [
    ("default", lambda m: m.MultiheadAttention(8, 2), (3, 2, 8), (4, 2, 8), {}),
    ("batch_first-nobias", lambda m: m.MultiheadAttention(8, 4, bias=False, batch_first=True), (2, 3, 8), (2, 4, 8),
     {}),
    ("kdim-vdim", lambda m: m.MultiheadAttention(8, 2, kdim=5, vdim=6), (3, 2, 8), (4, 2, 5), {"vdim": 6}),
    ("unbatched", lambda m: m.MultiheadAttention(8, 2), (3, 8), (4, 8), {}),
    ("bias_kv-zero_attn", lambda m: m.MultiheadAttention(8, 2, add_bias_kv=True, add_zero_attn=True), (3, 2, 8),
     (4, 2, 8), {}),
]


@pytest.mark.parametrize("average", [True, False])
@pytest.mark.parametrize("name,make,q_shape,k_shape,extra", MHA, ids=[m[0] for m in MHA])
def test_multihead_attention_matches_torch(name, make, q_shape, k_shape, extra, average):
    g, t = pair(make)
    v_shape = k_shape[:-1] + (extra.get("vdim", k_shape[-1]),)
    arrays = [randn(*q_shape), randn(*k_shape), randn(*v_shape)]
    g_out, t_out = run_both(g, t, arrays, lambda lib: {"average_attn_weights": average}, pick=lambda o: o[0])
    assert_close(g_out[1].detach(), t_out[1], **TOL)
    assert g(*[graphc.tensor(a) for a in arrays], need_weights=False)[1] is None


@pytest.mark.parametrize("extra", [{}, {"add_bias_kv": True, "add_zero_attn": True}], ids=["plain", "extra-keys"])
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_multihead_attention_masks_match_torch(kind, extra):
    g, t = pair(lambda m: m.MultiheadAttention(8, 2, **extra))
    batch, tgt, src = 2, 3, 5
    arrays = [randn(tgt, batch, 8), randn(src, batch, 8), randn(src, batch, 8)]
    attn2d, attn3d, padding = bool_mask(tgt, src), bool_mask(batch * 2, tgt, src), bool_mask(batch, src)
    if kind == "float":
        attn2d, attn3d, padding = (np.where(m, -1e9, randn(*m.shape)).astype(np.float32)
                                   for m in (attn2d, attn3d, padding))
    for masks in ({"attn_mask": attn2d}, {"attn_mask": attn3d}, {"key_padding_mask": padding},
                  {"attn_mask": attn2d, "key_padding_mask": padding}):
        g.zero_grad()
        t.zero_grad()
        g_out, t_out = run_both(g, t, arrays, lambda lib: {k: lib.tensor(v) for k, v in masks.items()},
                                pick=lambda o: o[0])
        assert_close(g_out[1].detach(), t_out[1], **TOL)


def test_multihead_attention_initialisation_follows_torch():
    mha = graphc.nn.MultiheadAttention(16, 4)
    bound = np.sqrt(6 / (16 + 48))  # xavier_uniform_ of the (48, 16) packed projection
    w = mha.in_proj_weight.detach().numpy()
    assert w.min() >= -bound and w.max() <= bound and w.std() > bound / 3
    assert not mha.in_proj_bias.detach().numpy().any() and not mha.out_proj.bias.detach().numpy().any()


LAYERS = [
    ("encoder-post-norm", lambda m: m.TransformerEncoderLayer(8, 2, 16), 1),
    ("encoder-pre-norm-gelu-batch_first", lambda m: m.TransformerEncoderLayer(
        8, 2, 16, activation="gelu", norm_first=True, batch_first=True), 1),
    ("encoder-callable-activation-nobias", lambda m: m.TransformerEncoderLayer(
        8, 4, 12, activation=m.functional.silu, bias=False), 1),
    ("decoder-post-norm", lambda m: m.TransformerDecoderLayer(8, 2, 16), 2),
    ("decoder-pre-norm-batch_first", lambda m: m.TransformerDecoderLayer(8, 2, 16, norm_first=True,
                                                                          batch_first=True), 2),
]


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("make,inputs", [(m, n) for _, m, n in LAYERS], ids=[n for n, _, _ in LAYERS])
def test_transformer_layers_match_torch(make, inputs, masked):
    g, t = pair(make)
    first = g.self_attn.batch_first
    shape = (lambda length: (2, length, 8)) if first else (lambda length: (length, 2, 8))
    arrays = [randn(*shape(4)), randn(*shape(5))][:inputs]
    causal = torch.nn.Transformer.generate_square_subsequent_mask(4).numpy()
    padding, memory_padding = bool_mask(2, 4), bool_mask(2, 5)

    def kwargs(lib):
        if not masked:
            return {}
        if inputs == 1:
            return {"src_mask": lib.tensor(causal), "src_key_padding_mask": lib.tensor(padding), "is_causal": True}
        return {"tgt_mask": lib.tensor(causal), "tgt_key_padding_mask": lib.tensor(padding),
                "memory_key_padding_mask": lib.tensor(memory_padding), "tgt_is_causal": True}
    run_both(g, t, arrays, kwargs)


def test_encoder_decoder_stacks_and_transformer_match_torch():
    g, t = pair(lambda m: m.Transformer(8, 2, num_encoder_layers=2, num_decoder_layers=2, dim_feedforward=16))
    assert len(list(g.parameters())) == len(list(t.parameters()))
    mask = graphc.nn.Transformer.generate_square_subsequent_mask(4)
    assert_close(mask, torch.nn.Transformer.generate_square_subsequent_mask(4))
    padding = bool_mask(2, 5)
    run_both(g, t, [randn(5, 2, 8), randn(4, 2, 8)],
             lambda lib: {"tgt_mask": lib.nn.Transformer.generate_square_subsequent_mask(4),
                          "src_key_padding_mask": lib.tensor(padding)})
    layer = lambda m: m.TransformerEncoderLayer(8, 2, 16, batch_first=True)  # noqa: E731
    g, t = pair(lambda m: m.TransformerEncoder(layer(m), num_layers=3, norm=m.LayerNorm(8),
                                               enable_nested_tensor=False))
    assert [n for n, _ in g.named_parameters()] == [n for n, _ in t.named_parameters()]
    run_both(g, t, [randn(2, 4, 8)])
    g, t = pair(lambda m: m.TransformerDecoder(m.TransformerDecoderLayer(8, 2, 16), num_layers=2))
    run_both(g, t, [randn(4, 2, 8), randn(3, 2, 8)])


def test_encoder_layers_are_independent_copies():
    enc = graphc.nn.TransformerEncoder(graphc.nn.TransformerEncoderLayer(8, 2, 16), num_layers=2)
    a, b = enc.layers[0].linear1.weight, enc.layers[1].linear1.weight
    assert a is not b and isinstance(b, graphc.nn.Parameter)
    with graphc.no_grad():
        a.fill_(0.0)
    assert b.detach().numpy().any()


def test_dropout_in_training_mode_is_active():
    layer = graphc.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.5)
    x = graphc.randn(3, 2, 8)
    layer.eval()
    eval_out = layer(x).detach().numpy()
    layer.train()
    assert not np.allclose(layer(x).detach().numpy(), eval_out)


def test_errors_like_torch():
    cases = [
        (lambda m, lib: m.MultiheadAttention(8, 3), (AssertionError, ValueError)),
        (lambda m, lib: m.MultiheadAttention(8, 2)(lib.zeros(3, 2, 6), lib.zeros(3, 2, 6), lib.zeros(3, 2, 6)),
         (AssertionError, RuntimeError)),
        (lambda m, lib: m.MultiheadAttention(8, 2)(lib.zeros(3, 2, 8), lib.zeros(4, 2, 8), lib.zeros(4, 2, 8),
                                                   attn_mask=lib.zeros(3, 3)), RuntimeError),
        (lambda m, lib: m.MultiheadAttention(8, 2)(lib.zeros(3, 2, 8), lib.zeros(4, 2, 8), lib.zeros(4, 2, 8),
                                                   key_padding_mask=lib.zeros(2, 3, dtype=lib.bool)),
         (AssertionError, RuntimeError)),
        (lambda m, lib: m.MultiheadAttention(8, 2)(lib.zeros(3, 2, 8), lib.zeros(3, 2, 8), lib.zeros(3, 2, 8),
                                                   is_causal=True), RuntimeError),
        (lambda m, lib: m.TransformerEncoderLayer(8, 2, activation="tanh"), RuntimeError),
        (lambda m, lib: m.Transformer(8, 2, 1, 1, 16)(lib.zeros(3, 2, 8), lib.zeros(3, 4, 8)), RuntimeError),
    ]
    for make, error in cases:
        with pytest.raises(error):
            make(torch.nn, torch)
        with pytest.raises(error):
            make(graphc.nn, graphc)


def test_compiled_encoder_layer_forward_backward_equals_eager():
    graphc.manual_seed(0)
    layer = graphc.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True, norm_first=True)
    mask = graphc.nn.Transformer.generate_square_subsequent_mask(4)

    def step(x):
        layer.zero_grad()
        loss = (layer(x, src_mask=mask, is_causal=True) ** 2).mean()
        loss.backward()
        return loss.detach(), [p.grad for p in layer.parameters()]

    compiled = graphc.compile(step, backend="numpy")
    for batch in (2, 2, 3):
        x = graphc.randn(batch, 4, 8)
        eager_loss, eager_grads = step(x)
        loss, grads = compiled(x)
        np.testing.assert_allclose(loss.numpy(), eager_loss.numpy(), rtol=1e-5)
        for g, e in zip(grads, eager_grads):
            np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-4, atol=1e-6)
    assert compiled.num_compiles >= 1


def test_small_transformer_language_model_trains_like_torch():
    """A char-level model written the way public scripts write it (token and position embeddings, a causal
    TransformerEncoder with norm_first and GELU, AdamW with OneCycleLR, clip_grad_norm_) run under torch and graphc
    from the same weights: the losses agree step by step."""
    def build(lib):
        nn = lib.nn

        class TinyGPT(nn.Module):
            def __init__(self, vocab=11, width=8, block=6):
                super().__init__()
                self.tok, self.pos = nn.Embedding(vocab, width), nn.Embedding(block, width)
                layer = nn.TransformerEncoderLayer(width, 2, 4 * width, dropout=0.0, activation="gelu",
                                                   batch_first=True, norm_first=True)
                self.blocks = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
                self.ln_f, self.head = nn.LayerNorm(width), nn.Linear(width, vocab, bias=False)
                self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(block))

            def forward(self, idx, targets):
                t = idx.shape[1]
                x = self.tok(idx) + self.pos(lib.arange(t))
                x = self.blocks(x, mask=self.mask[:t, :t], is_causal=True)
                logits = self.head(self.ln_f(x))
                return nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

        return TinyGPT()

    data = np.random.default_rng(0).integers(0, 11, (4, 4, 7))

    def train(lib, model):
        opt = lib.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
        sched = lib.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-2, total_steps=len(data))
        return [clipped_step(lib, model, model(lib.tensor(batch[:, :-1]), lib.tensor(batch[:, 1:])), opt, sched, 1.0)
                for batch in data]

    assert_trains_like_torch(build, train)
