"""Attention as one op: softmax(q @ k^T * scale, masked) @ v, with its logsumexp and gradients as ops of their own.

The compiler renders each as a hand-written flash-attention kernel (Dao et al. 2022, "FlashAttention",
arXiv:2205.14135: tiles of K/V, the online softmax of Milakov & Gimelshein 2018, "Online normalizer calculation for
softmax", arXiv:1805.02867, fp32 accumulation): the forward is one kernel; the backward recomputes the row
logsumexp (one kernel) and the probabilities from it, and the three gradients share one kernel (their nodes have the
same inputs, so fusion puts them in one group). On numpy they run as the numpy functions below.

Masks, as attrs: is_causal hides key j from query i when j > i (torch's top-left alignment); a bool mask hides
where it is False (`keep=True`, scaled_dot_product_attention's attn_mask) or where it is True (`keep=False`,
masked_fill's mask), the hidden scores becoming `fill` (masked_fill's value; -inf for attn_mask); a float mask is
added to the scores. A row whose every score is -inf gives 0 with `safe=True` (torch's scaled_dot_product_attention)
and NaN otherwise (softmax of the written-out form)."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..dispatch import OTHER, Lowering, op
from . import meta
from .matmul import matmul

QUERY, KEY, VALUE = 0, 1, 2


def _check(q, k, v, mask):
    if q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        raise ValueError(f"query, key and value must have one rank of at least 2, got shapes {list(q.shape)}, "
                         f"{list(k.shape)} and {list(v.shape)}")
    if not (q.dtype is k.dtype is v.dtype) or not q.dtype.is_floating_point:
        raise TypeError(f"query, key and value must have one floating dtype, got {q.dtype.name}, {k.dtype.name} and "
                        f"{v.dtype.name}")
    if tuple(q.shape[:-2]) != tuple(k.shape[:-2]) or tuple(k.shape[:-2]) != tuple(v.shape[:-2]) or \
            q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(f"shapes {list(q.shape)}, {list(k.shape)} and {list(v.shape)} do not fit query (..., L, E), "
                         "key (..., S, E) and value (..., S, Ev)")
    if mask is not None:
        scores = (*q.shape[:-1], k.shape[-2])
        if meta.broadcast(tuple(mask.shape), scores) != scores:
            raise ValueError(f"mask of shape {list(mask.shape)} does not broadcast to the scores' shape "
                             f"{list(scores)}")
        if mask.dtype is not dtypes.bool_ and mask.dtype is not q.dtype:
            raise TypeError(f"a float mask must have the query's dtype {q.dtype.name}, got {mask.dtype.name}")


def _attention_infer(q, k, v, mask=None, **_):
    _check(q, k, v, mask)
    return (*q.shape[:-1], v.shape[-1]), q.dtype


def _lse_infer(q, k, v, mask=None, **_):
    _check(q, k, v, mask)
    return tuple(q.shape[:-1]), dtypes.float32


def _backward_infer(q, k, v, *rest, wrt, **_):
    mask = rest[0] if len(rest) == 4 else None
    _check(q, k, v, mask)
    return tuple((q, k, v)[wrt].shape), q.dtype


def _scores(q, k, mask, scale, is_causal, keep, fill):
    """(scores in float32 with hidden positions at fill or -inf, the hidden positions or None). The scores are one
    new array, scaled and masked in place (each (L, S) pass over memory costs as much as the product)."""
    s = np.matmul(q.astype(np.float32, copy=False), np.swapaxes(k, -1, -2).astype(np.float32, copy=False))
    s *= np.float32(scale)
    hidden = None
    if mask is not None and mask.dtype == np.bool_:
        hidden = ~mask if keep else mask
        np.copyto(s, np.float32(fill), where=hidden)
    elif mask is not None:
        s += mask.astype(np.float32, copy=False)
    if is_causal:
        after = np.triu(np.ones(s.shape[-2:], dtype=bool), k=1)
        np.copyto(s, np.float32(-np.inf), where=after)
        hidden = after if hidden is None else hidden | after
    return s, hidden


def _row_max(s):
    m = s.max(-1, keepdims=True)
    return np.where(m == -np.inf, np.float32(0), m)  # a row of -inf: exp(-inf - 0) = 0, not nan


def _exp_shifted(s, shift):
    """exp(s - shift), overwriting s."""
    s -= shift
    return np.exp(s, out=s)


NUMBERS = (int, float)


def _written_out(operands: tuple, attrs: dict, graph) -> tuple | None:
    """The attention written out, `softmax(q @ k.transpose(-2, -1) * scale, dim=-1) @ v`, optionally with
    `.masked_fill(mask, value)` or `+ float_mask` on the scores, `/ c` for `* scale`, the scale applied to the query
    before the product (`(q * scale) @ k.transpose(-2, -1)`, timm's Attention), and the softmax taken in float32
    (`softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)`, as Hugging Face models write it; the attention op
    computes in float32 anyway) (Inductor's fuse_attention patterns): the operands and attrs of one attention op,
    when `operands` (those of the final matmul) end that pattern exactly: the softmax over the last dim as graphc
    writes it (amax, sub, exp, sum, div), no other reader of any intermediate (the scores, the weights), one batch
    shape and dtype, a Python number as scale and fill."""
    from .elementwise import add, cast, div, exp, masked_fill, mul, sub
    from .reduction import amax, sum
    from .view import permute

    weights, v = operands

    def produced(x, op, arity=None):
        return meta.is_node(x) and x.kind == "op" and x.op is op and (arity is None or len(x.inputs) == arity)

    def in_float32(x) -> bool:  # the cast of softmax's dtype=torch.float32
        return produced(x, cast) and x.dtype is dtypes.float32 and x.inputs[0].dtype.is_floating_point

    chain = []
    if produced(weights, cast) and weights.inputs[0].dtype is dtypes.float32:  # softmax in float32, cast back
        chain.append(weights)
        weights = weights.inputs[0]
    last = weights.ndim - 1
    if not produced(weights, div, 2):
        return None
    e, total = weights.inputs
    if not (produced(total, sum) and total.inputs[0] is e and total.attrs.get("dim") == (last,) and
            total.attrs.get("keepdim") and produced(e, exp) and produced(e.inputs[0], sub, 2)):
        return None
    x, row_max = e.inputs[0].inputs
    if not (produced(row_max, amax) and row_max.inputs[0] is x and row_max.attrs.get("dim") == (last,) and
            row_max.attrs.get("keepdim")):
        return None
    chain += [weights, total, e, e.inputs[0], row_max]
    if in_float32(x):
        chain.append(x)
        x = x.inputs[0]
    found: dict = {"scale": 1.0, "is_causal": False, "keep": False, "fill": float("-inf"), "safe": False}
    mask = ()
    scores = x
    if produced(x, masked_fill, 3) and type(x.inputs[2]) in NUMBERS:
        scores, mask, found["fill"] = x.inputs[0], (x.inputs[1],), float(x.inputs[2])
        chain.append(x)
    elif produced(x, add, 2) and all(meta.is_node(a) for a in x.inputs):
        scores, float_mask = x.inputs if produced(x.inputs[0], mul) or produced(x.inputs[0], div) or \
            produced(x.inputs[0], matmul) else x.inputs[::-1]
        mask = (float_mask,)
        chain.append(x)
    product = scores
    if (produced(scores, mul, 2) or produced(scores, div, 2)) and type(scores.inputs[1]) in NUMBERS:
        product, c = scores.inputs
        found["scale"] = float(c) if scores.op is mul else 1.0 / float(c)
        chain.append(scores)
    elif produced(scores, mul, 2) and type(scores.inputs[0]) in NUMBERS:
        c, product = scores.inputs
        found["scale"] = float(c)
        chain.append(scores)
    if not produced(product, matmul, 2) or not produced(product.inputs[1], permute):
        return None
    chain.append(product)
    q, kt = product.inputs
    if (produced(q, mul, 2) or produced(q, div, 2) and q.inputs[1] != 0) and type(q.inputs[1]) in NUMBERS:
        chain.append(q)  # (q * scale) @ k^T
        q, c = q.inputs
        found["scale"] *= float(c) if chain[-1].op is mul else 1.0 / float(c)
    elif produced(q, mul, 2) and type(q.inputs[0]) in NUMBERS:
        chain.append(q)
        c, q = q.inputs
        found["scale"] *= float(c)
    k = kt.inputs[0]
    dims = kt.attrs["dims"]
    if not (meta.is_node(q) and meta.is_node(k) and meta.is_node(v)) or \
            tuple(dims) != (*range(k.ndim - 2), k.ndim - 1, k.ndim - 2):
        return None
    try:
        _check(q, k, v, mask[0] if mask else None)
    except (TypeError, ValueError):
        return None
    users = graph.users()
    inside = set(chain)
    if any(u not in inside for n in chain for u in users[n]) or any(n in graph.outputs for n in chain):
        return None
    return (q, k, v, *mask), found


def _onnx(g, n) -> str:
    """The attention written out in ONNX ops (opset 18 has no Attention): MatMul, Mul, the mask (Where, Add; causal
    from Trilu), Softmax, MatMul; a safe row hidden everywhere gives 0 instead of Softmax's NaN."""
    q, k, v = (g.name(x) for x in n.inputs[:3])
    mask = n.inputs[3] if len(n.inputs) > 3 else None
    rank, dt, attrs = n.ndim, n.dtype.np, n.attrs
    s = g.op("Mul", g.op("MatMul", q, g.op("Transpose", k, perm=[*range(rank - 2), rank - 1, rank - 2])),
             g.const(np.array(attrs["scale"], dt)))
    if attrs["is_causal"]:
        after = g.cast(g.op("Trilu", g.op("Expand", g.const(np.int64(1)), g.op("Shape", s, start=-2)),
                            g.const(np.int64(1)), upper=1), dtypes.bool_)
        s = g.op("Where", after, g.const(np.array(-np.inf, dt)), s)
    if mask is not None and mask.dtype is dtypes.bool_:
        hide = g.op("Not", g.name(mask)) if attrs["keep"] else g.name(mask)
        s = g.op("Where", hide, g.const(np.array(attrs["fill"], dt)), s)
    elif mask is not None:
        s = g.op("Add", s, g.name(mask))
    weights = g.op("Softmax", s, axis=-1)
    if attrs["safe"]:
        hidden = g.op("Equal", g.op("ReduceMax", s, g.const([-1]), keepdims=1), g.const(np.array(-np.inf, dt)))
        weights = g.op("Where", hidden, g.const(np.array(0, dt)), weights)
    return g.op("MatMul", weights, v)


@op("scaled_dot_product_attention", OTHER, _attention_infer, replaces=(matmul, _written_out), onnx=_onnx,
    lowering=Lowering(template="attention.forward"),
    backward=lambda c, g: attention_gradients(c, g))
def attention(q, k, v, *mask, scale, is_causal, keep, fill, safe):
    """softmax(q @ k^T * scale, masked) @ v for query (..., L, E), key (..., S, E), value (..., S, Ev) of one
    floating dtype (one batch shape; computed in float32) and an optional mask broadcasting to (..., L, S)."""
    return outputs(q, k, v, *mask, scale=scale, is_causal=is_causal, keep=keep, fill=fill, safe=safe,
                   want=("out",))["out"]


@op("attention_logsumexp", OTHER, _lse_infer, lowering=Lowering(template="attention.logsumexp"))
def attention_logsumexp(q, k, v, *mask, scale, is_causal, keep, fill, safe):
    """Per query, float32 (..., L): log(sum(exp(scores))) of the attention's masked scores; for a row with every
    score -inf, +inf when safe (then every probability exp(s - lse) is 0, as the safe forward's 0) and -inf
    otherwise (the probabilities become NaN, as softmax's)."""
    return outputs(q, k, v, *mask, scale=scale, is_causal=is_causal, keep=keep, fill=fill, safe=safe,
                   want=("lse",))["lse"]


def outputs(q, k, v, *mask, scale, is_causal, keep, fill, safe, want) -> dict:
    """The attention's output ("out") and its logsumexp ("lse"), those named in want, computed together: they share
    the scores and their exponentials."""
    s, _ = _scores(q, k, mask[0] if mask else None, scale, is_causal, keep, fill)
    m = _row_max(s)
    p = _exp_shifted(s, m)
    total = p.sum(-1, keepdims=True)
    found = {}
    if "out" in want:
        out = np.matmul(p, v.astype(np.float32, copy=False))
        with np.errstate(invalid="ignore", divide="ignore"):
            out /= total
        if safe:
            np.copyto(out, np.float32(0), where=total == 0)
        found["out"] = out
    if "lse" in want:
        with np.errstate(divide="ignore"):
            lse = (np.log(total) + m)[..., 0]
        found["lse"] = np.where(total[..., 0] == 0, np.float32(np.inf), lse) if safe else lse
    return found


@op("attention_backward", OTHER, _backward_infer, lowering=Lowering(template="attention.backward"))
def attention_backward(q, k, v, *rest, scale, is_causal, keep, fill, safe, wrt):
    """The gradient of the attention with respect to query, key or value (wrt 0, 1, 2), from the inputs, an optional
    mask, the attention's output `out`, the incoming gradient `grad` and the logsumexp `lse` (rest = [mask,] out,
    grad, lse); see gradients."""
    return gradients(q, k, v, *rest, scale=scale, is_causal=is_causal, keep=keep, fill=fill, wrts=(wrt,))[wrt]


def gradients(q, k, v, *rest, scale, is_causal, keep, fill, wrts) -> dict:
    """The attention's gradients with respect to the inputs numbered in wrts (QUERY, KEY, VALUE), as a dict by number,
    computed together (they share the probabilities and dS): P = exp(s - lse), dV = P^T dO, dS = P * (dO V^T -
    rowsum(dO * O)) (0 where the mask hides the score: the fill there is a constant), dQ = dS K * scale,
    dK = dS^T Q * scale (FlashAttention's backward, Algorithm 4)."""
    mask = rest[0] if len(rest) == 4 else None
    out, grad, lse = (a.astype(np.float32, copy=False) for a in rest[-3:])
    s, hidden = _scores(q, k, mask, scale, is_causal, keep, fill)
    with np.errstate(invalid="ignore"):
        p = _exp_shifted(s, lse[..., None])
    found = {}
    if VALUE in wrts:
        found[VALUE] = np.matmul(np.swapaxes(p, -1, -2), grad)
    if QUERY in wrts or KEY in wrts:
        ds = np.matmul(grad, np.swapaxes(v, -1, -2).astype(np.float32, copy=False))
        ds -= (grad * out).sum(-1, keepdims=True)
        ds *= p
        if hidden is not None:
            np.copyto(ds, np.float32(0), where=hidden)
        for wrt, a, other in ((QUERY, ds, k), (KEY, np.swapaxes(ds, -1, -2), q)):
            if wrt in wrts:
                found[wrt] = np.matmul(a, other.astype(np.float32, copy=False))
                found[wrt] *= np.float32(scale)
    return found


def attention_gradients(c, g):
    """The backward rule: the logsumexp is recomputed (one kernel), the gradients of the inputs that require grad
    share one kernel. A float mask that requires grad (a learned bias) gets dS summed to its shape, computed with the
    scores written out (the kernels never write the (L, S) scores)."""
    q, k, v = c.inputs[:3]
    mask = c.inputs[3:]
    attrs = c.attrs
    lse = attention_logsumexp(q, k, v, *mask, **attrs)
    out = c.out
    grads = tuple(attention_backward(q, k, v, *mask, out, g, lse, **attrs, wrt=i) if x.requires_grad else None
                  for i, x in enumerate((q, k, v)))
    if not mask:
        return grads
    if not mask[0].requires_grad:
        return grads + (None,)
    from .elementwise import exp
    from .reduction import sum, sum_to
    from .view import transpose, unsqueeze

    f32 = [x.float() for x in (q, k, v, mask[0], out, g)]
    p = exp(matmul(f32[0], transpose(f32[1], -1, -2)) * attrs["scale"] + f32[3] - unsqueeze(lse, -1))
    ds = p * (matmul(f32[5], transpose(f32[2], -1, -2)) - sum(f32[5] * f32[4], -1, keepdim=True))
    return grads + (sum_to(ds, mask[0]).to(mask[0].dtype),)
