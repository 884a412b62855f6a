"""One-kernel attention: F.scaled_dot_product_attention and the written-out softmax(q @ k^T * s) @ v run as one
flash-attention kernel forward and two kernels backward (logsumexp, gradients); values and gradients match torch
under the Triton interpreter; the kernels compile ahead of time for sm_90; the rewrite of the written-out form stays
away from programs it would change."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from conftest import assert_compiles_for_sm90

import graphc
import graphc.nn.functional as F


def sdpa(mode):
    def attend(F, q, k, v, m):
        if mode == "causal":
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m)
    return attend


def written(mode):
    """The written-out form as models write it (nanoGPT's masked_fill, an additive bias, / sqrt(d); timm's query
    scaled before the product; Hugging Face's softmax in float32 cast back to the query's dtype)."""
    def attend(F, q, k, v, m):
        if mode == "qscaled":
            q = q * k.size(-1) ** -0.5
            return F.softmax(q @ k.transpose(-2, -1), dim=-1) @ v
        if mode == "f32":
            att = q @ k.transpose(-2, -1) / math.sqrt(k.size(-1)) + m
            return F.softmax(att, dim=-1, dtype=torch.float32 if F is TF else graphc.float32).to(q.dtype) @ v
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        if mode == "bool":
            att = att.masked_fill(m, float("-inf"))
        elif mode == "fill":
            att = att.masked_fill(m, -1e4)
        elif mode == "float":
            att = att + m
        return F.softmax(att, dim=-1) @ v
    return attend


FORMS = {"sdpa": sdpa("plain"), "sdpa_causal": sdpa("causal"), "sdpa_bool": sdpa("bool"), "sdpa_float": sdpa("float"),
         "written": written("plain"), "written_bool": written("bool"), "written_fill": written("fill"),
         "written_float": written("float"), "written_qscaled": written("qscaled"), "written_f32": written("f32")}


def make(form: str, dtype: str, b: int, h: int, lq: int, lk: int, e: int, ev: int | None = None, seed: int = 0):
    """numpy q, k, v, mask (None, bool or float, broadcast over batch and heads) and the output weight."""
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((b, h, lq, e)), rng.standard_normal((b, h, lk, e))
    v, w = rng.standard_normal((b, h, lk, ev or e)), rng.standard_normal((b, h, lq, ev or e))
    mask = None
    if form in ("sdpa_bool", "written_bool", "written_fill"):
        mask = rng.random((lq, lk)) > 0.4
        if form == "sdpa_bool":
            mask[1] = False  # a query that may attend nowhere: torch's SDPA gives 0 there
        else:
            mask[:, 0] = False  # masked_fill hides where True: key 0 stays visible to every query
    elif form in ("sdpa_float", "written_float", "written_f32"):
        mask = rng.standard_normal((lq, lk))
    arrays = [a.astype(dtype) for a in (q, k, v, w)]
    return arrays, (mask if mask is None or mask.dtype == bool else mask.astype(dtype))


def step_for(form: str):
    attend = FORMS[form]

    def step(q, k, v, m, w):
        loss = (attend(F, q, k, v, m).float() * w.float()).sum()
        loss.backward()
        return loss
    return step


def as_graphc(arrays, mask, grad: bool):
    q, k, v, w = (graphc.tensor(a, requires_grad=grad and i < 3) for i, a in enumerate(arrays))
    return q, k, v, (None if mask is None else graphc.tensor(mask)), w


def report_kernels(report, want: int, what: str) -> None:
    assert report.num_kernels == want, f"{what}: {report.num_kernels} kernels, want {want}\n{report}"


@pytest.mark.parametrize("form", list(FORMS))
def test_forward_is_one_kernel(form):
    arrays, mask = make(form, "float32", 1, 2, 19, 23 if "causal" not in form else 19, 16)
    q, k, v, m, _ = as_graphc(arrays, mask, grad=False)
    report = graphc.explain(lambda q, k, v, m: FORMS[form](F, q, k, v, m), q, k, v, m)
    report_kernels(report, 1, form)
    assert report.kernels[0].kind == "template" and "tl.dot" in report.kernels[0].source


@pytest.mark.parametrize("form", ["sdpa_causal", "sdpa_float", "written_bool", "written_qscaled", "written_f32"])
def test_backward_is_two_kernels(form):
    """A training step: the attention (1), the loss (1), then the backward: the logsumexp (1) and all three
    gradients (1)."""
    arrays, mask = make(form, "float32", 1, 2, 19, 19, 16)
    report = graphc.explain(step_for(form), *as_graphc(arrays, mask, grad=True))
    report_kernels(report, 4, form)
    templates = [k for k in report.kernels if k.kind == "template"]
    assert [k.ops for k in templates] == [["scaled_dot_product_attention"], ["attention_logsumexp"],
                                          ["attention_backward"] * 3], str(report)


CASES = [  # form, dtype, (b, h, lq, lk, e[, ev])
    ("sdpa", "float32", (1, 2, 19, 23, 16)),
    ("sdpa_causal", "float32", (1, 2, 21, 13, 32)),  # more queries than keys: torch's top-left causal mask
    ("sdpa_bool", "float32", (2, 1, 9, 70, 64, 32)),  # keys over two tiles, a query with no visible key
    ("sdpa_float", "float16", (1, 2, 19, 23, 16)),
    ("sdpa_causal", "float16", (1, 1, 67, 67, 64)),  # queries over two tiles
    ("written", "float32", (1, 2, 19, 23, 32)),
    ("written_bool", "float32", (1, 2, 17, 17, 16)),
    ("written_fill", "float32", (1, 2, 17, 20, 16)),
    ("written_float", "float16", (1, 2, 19, 23, 16)),
    ("written_qscaled", "float32", (1, 2, 19, 23, 16)),
    ("written_f32", "float16", (1, 2, 19, 23, 16)),
    ("written_f32", "float32", (2, 1, 9, 70, 32)),
]


@pytest.mark.parametrize("form,dtype,sizes", CASES, ids=[f"{f}-{d}-{'x'.join(map(str, s))}" for f, d, s in CASES])
def test_values_and_gradients_match_torch(form, dtype, sizes):
    arrays, mask = make(form, dtype, *sizes)
    ours = as_graphc(arrays, mask, grad=True)
    loss = graphc.compile(step_for(form), backend="interpret", fullgraph=True)(*ours)
    theirs = [torch.tensor(a, requires_grad=i < 3) for i, a in enumerate(arrays)]
    tm = None if mask is None else torch.tensor(mask)
    want = (FORMS[form](TF, *theirs[:3], tm).float() * theirs[3].float()).sum()
    want.backward()
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == "float32" else dict(rtol=2e-2, atol=2e-2)
    np.testing.assert_allclose(loss.detach().numpy(), want.detach().numpy(), **tol)
    for name, g, t in zip("qkv", ours, theirs):
        assert g.grad.dtype.name == dtype, name
        np.testing.assert_allclose(g.grad.numpy().astype(np.float32), t.grad.numpy().astype(np.float32),
                                   err_msg=f"d{name}", **tol)


@pytest.mark.parametrize("shape", [(9, 160), (3, 9, 24)], ids=["2d-head160", "3d"])
def test_other_ranks_and_a_wide_head(shape):
    """No batch dims, or one; a head dim past 128 (smaller query/key tiles)."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(shape).astype(np.float32) for _ in range(4)]
    ours = [graphc.tensor(a, requires_grad=i < 3) for i, a in enumerate(arrays)]
    loss = graphc.compile(step_for("sdpa"), backend="interpret", fullgraph=True)(*ours[:3], None, ours[3])
    theirs = [torch.tensor(a, requires_grad=i < 3) for i, a in enumerate(arrays)]
    want = (TF.scaled_dot_product_attention(*theirs[:3]) * theirs[3]).sum()
    want.backward()
    np.testing.assert_allclose(loss.detach().numpy(), want.detach().numpy(), rtol=1e-4, atol=1e-4)
    for g, t in zip(ours[:3], theirs):
        np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-4)


def test_a_compiled_module_with_the_backward_outside():
    """torch.compile's common use: the forward compiled, loss and backward outside (the joint graph's two plans)."""
    arrays, mask = make("sdpa_causal", "float32", 1, 2, 13, 13, 16)
    attend = graphc.compile(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                            backend="interpret")
    theirs = [torch.tensor(a, requires_grad=i < 3) for i, a in enumerate(arrays)]
    (TF.scaled_dot_product_attention(*theirs[:3], is_causal=True) * theirs[3]).sum().backward()
    for _ in range(2):  # the second call replays both plans
        ours = as_graphc(arrays, mask, grad=True)
        (attend(*ours[:3]) * ours[4]).sum().backward()
        for g, t in zip(ours[:3], theirs):
            np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_explain_renders_c_without_the_template():
    q, k, v = (graphc.randn(1, 2, 6, 8) for _ in range(3))
    report = graphc.explain(lambda q, k, v: F.scaled_dot_product_attention(q, k, v).relu(), q, k, v)
    assert [k.kind for k in report.kernels] == ["template", "elementwise"]
    assert "relu" in report.c_source and "scaled_dot_product_attention" not in report.c_source


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
@pytest.mark.parametrize("form", sorted(FORMS))
def test_other_backends_run_the_numpy_forward(backend, form):
    """numpy runs the ops one by one; cpu runs each template group together (the gradients share their work)."""
    arrays, mask = make(form, "float32", 2, 2, 9, 11, 8)
    ours = as_graphc(arrays, mask, grad=True)
    loss = graphc.compile(step_for(form), backend=backend, fullgraph=True)(*ours)
    theirs = [torch.tensor(a, requires_grad=i < 3) for i, a in enumerate(arrays)]
    want = (FORMS[form](TF, *theirs[:3], None if mask is None else torch.tensor(mask)) * theirs[3]).sum()
    want.backward()
    np.testing.assert_allclose(loss.detach().numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-5)
    for g, t in zip(ours[:3], theirs):
        np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("wrt", [(0,), (1, 2), (0, 2)])
def test_cpu_computes_the_gradients_asked_for(wrt):
    """A group holding some of the gradients (only some inputs require grad), in float64 (computed in float32)."""
    arrays, _ = make("sdpa_causal", "float64", 2, 3, 7, 7, 4, ev=5)
    ours = [graphc.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    theirs = [torch.tensor(a, requires_grad=i in wrt) for i, a in enumerate(arrays)]
    compiled = graphc.compile(step_for("sdpa_causal"), backend="cpu", fullgraph=True)
    runtimes = []
    compiled.observer = lambda runtime, arrays: runtimes.append(runtime)
    loss = compiled(*ours[:3], None, ours[3])
    (TF.scaled_dot_product_attention(*theirs[:3], is_causal=True) * theirs[3]).sum().backward()
    # the kernel plan (the first call ran the numpy tier): one step for the forward and the logsumexp its backward
    # reads, one for the gradients
    runtimes[0].tier_up()
    template_steps = [sorted(s.ops) for s in runtimes[0].kernels.plan.steps
                      if s.ops[0].startswith(("attention", "scaled"))]
    assert template_steps == [["attention_logsumexp", "scaled_dot_product_attention"],
                              ["attention_backward"] * len(wrt)]
    assert loss.dtype == graphc.float32
    for i in range(3):
        assert (ours[i].grad is None) == (i not in wrt)
        if i in wrt:
            assert ours[i].grad.dtype == graphc.float64
            np.testing.assert_allclose(ours[i].grad.numpy(), theirs[i].grad.numpy(), rtol=1e-4, atol=1e-5)


def test_eager_matches_torch_on_a_query_with_no_visible_key():
    arrays, mask = make("sdpa_bool", "float32", 1, 1, 5, 6, 4)
    ours = as_graphc(arrays, mask, grad=True)
    theirs = [torch.tensor(a, requires_grad=i < 3) for i, a in enumerate(arrays)]
    out = F.scaled_dot_product_attention(*ours[:3], attn_mask=ours[3])
    want = TF.scaled_dot_product_attention(*theirs[:3], attn_mask=torch.tensor(mask))
    np.testing.assert_allclose(out.detach().numpy(), want.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert not out.detach().numpy()[0, 0, 1].any()
    out.sum().backward()
    want.sum().backward()
    for g, t in zip(ours[:3], theirs):
        np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_a_learned_float_mask_gets_its_gradient():
    arrays, mask = make("sdpa_float", "float32", 1, 2, 5, 6, 4)
    ours = as_graphc(arrays, mask, grad=True)
    bias = graphc.tensor(mask, requires_grad=True)
    tbias = torch.tensor(mask, requires_grad=True)
    theirs = [torch.tensor(a, requires_grad=i < 3) for i, a in enumerate(arrays)]
    (F.scaled_dot_product_attention(*ours[:3], attn_mask=bias) * ours[4]).sum().backward()
    (TF.scaled_dot_product_attention(*theirs[:3], attn_mask=tbias) * theirs[3]).sum().backward()
    np.testing.assert_allclose(bias.grad.numpy(), tbias.grad.numpy(), rtol=1e-4, atol=1e-6)


def near_misses():
    """Programs that look like attention but are not exactly it: each keeps its written-out ops."""
    def other_dim(q, k, v):
        return F.softmax(q @ k.transpose(-2, -1), dim=-2) @ v

    def tensor_scale(q, k, v):
        return F.softmax(q @ k.transpose(-2, -1) * (q.sum() * 0 + 0.5), dim=-1) @ v

    def not_transposed(q, k, v):
        return F.softmax(q @ k, dim=-1) @ v

    def dropout(q, k, v):
        graphc.manual_seed(0)
        return F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)

    def softmax_in_float64(q, k, v):  # more precise than the op's float32
        return F.softmax(q @ k.transpose(-2, -1), dim=-1, dtype=graphc.float64).float() @ v

    def scaled_query_read_before(q, k, v):
        q = q * 0.5
        total = q.sum()
        return F.softmax(q @ k.transpose(-2, -1), dim=-1) @ v + total
    return [other_dim, tensor_scale, not_transposed, dropout, softmax_in_float64, scaled_query_read_before]


@pytest.mark.parametrize("fn", near_misses(), ids=lambda f: f.__name__)
def test_the_rewrite_fires_only_on_the_exact_pattern(fn):
    q, k, v = (graphc.randn(1, 2, 6, 6) for _ in range(3))
    report = graphc.explain(fn, q, k, v)
    assert not any(k.kind == "template" for k in report.kernels), str(report)
    np.testing.assert_allclose(graphc.compile(fn, backend="numpy")(q, k, v).numpy(), fn(q, k, v).numpy(), rtol=1e-5,
                               atol=1e-6)


def test_weights_read_later_are_computed_as_written_too():
    """A model returning its attention weights: when the final matmul is recorded the weights have no other reader
    yet, so the output comes from the attention op; the weights are then computed as written as well. Both are the
    same functions of q, k, v, so values and gradients (which add up over both paths) are torch's."""
    def attend(F, q, k, v):
        w = F.softmax(q @ k.transpose(-2, -1) * 0.5, dim=-1)
        return w @ v, w

    def step(q, k, v):
        out, w = attend(F, q, k, v)
        loss = out.sum() + (w * w).sum()
        loss.backward()
        return loss, w.detach()
    arrays, _ = make("sdpa", "float32", 1, 2, 7, 9, 8)
    ours = as_graphc(arrays, None, grad=True)
    loss, w = graphc.compile(step, backend="interpret", fullgraph=True)(*ours[:3])
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays[:3]]
    tout, tw = attend(TF, *theirs)
    want = tout.sum() + (tw * tw).sum()
    want.backward()
    np.testing.assert_allclose(loss.detach().numpy(), want.detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-5, atol=1e-7)
    for g, t in zip(ours[:3], theirs):
        np.testing.assert_allclose(g.grad.numpy(), t.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_the_kernels_compile_for_sm90():
    """The forward, logsumexp and gradient kernels for fp16 with a causal mask, and the fp32 forward with a bool
    mask (full-precision dots)."""
    arrays, mask = make("sdpa_causal", "float16", 1, 2, 19, 19, 64)
    kernels = [k for k in graphc.explain(step_for("sdpa_causal"), *as_graphc(arrays, mask, grad=True)).kernels
               if k.kind == "template"]
    arrays, mask = make("sdpa_bool", "float32", 1, 2, 19, 23, 32)
    q, k, v, m, _ = as_graphc(arrays, mask, grad=False)
    kernels += graphc.explain(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m),
                              q, k, v, m).kernels
    assert len(kernels) == 4
    assert_compiles_for_sm90(kernels)
