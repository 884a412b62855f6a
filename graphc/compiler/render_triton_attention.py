"""The attention kernel templates (graphc/ops/attention.py): flash attention (Dao et al. 2022, arXiv:2205.14135)
in Triton. Each program holds a block of queries (or, for the key/value gradients, of keys) and walks the other
side in tiles, so the (L, S) scores never reach memory:

- "attention.forward": the online softmax (Milakov & Gimelshein 2018): a running row max m and sum l, the output
  accumulator rescaled by exp(m_old - m_new) whenever the max grows, one division at the end; fp32 throughout.
- "attention.logsumexp": the same walk without V, storing m + log(l) per query (the backward's P = exp(s - lse)).
- "attention.backward": the gradients of the nodes in the group (query, key and/or value: FlashAttention-2's
  backward, with dQ in programs of its own instead of atomics): programs [0, key blocks) own a block of keys and
  walk the queries, accumulating dK and dV; the programs after them own a block of queries and accumulate dQ.

Batch dims are grid axis 1 (split into one index per dim; every tensor is read through its strides, a mask
broadcast with stride 0); sizes are kernel arguments, the scale and the mask's fill are literals."""
from __future__ import annotations

import math

from ..state import STATE
from .fusion import Group
from .kernel import Emitter, kernel_name, split_index
from .render_triton import TRITON

HEADER = "import triton\nimport triton.language as tl\n\n\n@triton.jit\n"
BLOCKS = {"attention.forward": (64, 64), "attention.logsumexp": (64, 64), "attention.backward": (32, 32)}
NEG_INF = 'float("-inf")'


def _roles(node) -> dict:
    """The node's tensor operands by role (the op's input order: q, k, v, [mask,] then for the backward out,
    grad, lse)."""
    x = list(node.inputs)
    roles = dict(zip(("q", "k", "v"), x[:3]))
    rest = x[3:]
    if node.op.lowering.template == "attention.backward":
        roles.update(zip(("o", "do", "lse"), rest[-3:]))
        rest = rest[:-3]
    if rest:
        roles["mask"] = rest[0]
    return roles


def _wrt(node) -> str:
    return "qkv"[node.attrs["wrt"]]


class Layout:
    """A group's kernel interface: its pointers (operands by role, then outputs), sizes and strides."""

    def __init__(self, group: Group):
        self.group, self.node = group, group.nodes[0]
        self.template = self.node.op.lowering.template
        self.roles = _roles(self.node)
        self.batch = len(self.node.inputs[0].shape) - 2
        if self.template == "attention.backward":
            self.outputs = {f"d{_wrt(n)}": n for n in group.outputs}
        else:
            self.outputs = {"out": group.outputs[0]}
        self.pointers = list(self.roles) + list(self.outputs)

    def rank(self, p: str) -> int:
        return self.batch + (1 if p == "lse" or (p == "out" and self.template == "attention.logsumexp") else 2)

    def strides(self) -> list[str]:
        return [f"{p}_s{d}" for p in self.pointers for d in range(self.rank(p))]

    def params(self) -> list[str]:
        return [*self.pointers, *(f"size{d}" for d in range(self.batch)), "L", "S", "E", "EV", *self.strides()]

    def signature(self) -> dict:
        sig = {p: f"*{x.dtype.triton}" for p, x in self.roles.items()}
        sig.update({p: f"*{n.dtype.triton}" for p, n in self.outputs.items()})
        for p in self.params():
            sig.setdefault(p, "i64")
        return sig


def _batch_offsets(lay: Layout) -> list[str]:
    names = [f"b{d}" for d in range(lay.batch)]
    lines = split_index(names, "batch", [f"size{d}" for d in range(lay.batch)]) if names else []
    for p in lay.pointers:
        lines.append(f"    {p}_ptr = {p}" + "".join(f" + {b} * {p}_s{d}" for d, b in enumerate(names)))
    return lines


def _tile(lay: Layout, p: str, rows: str, cols: str, n_rows: str, n_cols: str, var: str) -> str:
    """A load of a [rows, cols] tile of 2-d operand p (out-of-range elements 0)."""
    b = lay.batch
    return (f"{var} = tl.load({p}_ptr + {rows}[:, None] * {p}_s{b} + {cols}[None, :] * {p}_s{b + 1}, "
            f"mask=({rows}[:, None] < {n_rows}) & ({cols}[None, :] < {n_cols}), other=0)")


def _dot(a: str, b: str, precision: str) -> str:
    return f"tl.dot({a}, {b}{precision})"


def _scores(lay: Layout, kt: str, precision: str, indent: str) -> list[str]:
    """Lines computing the [BLOCK_M, BLOCK_N] scores s of queries rm and keys rn (q tile qt, key tile kt), masked
    as the node's attrs say; `hidden` is where the mask hides a score (its gradient is 0)."""
    attrs = lay.node.attrs
    b = lay.batch
    lines = [f"s = {_dot('qt', f'tl.trans({kt})', precision)} * {TRITON.literal(float(attrs['scale']))}"]
    hides = []
    if "mask" in lay.roles:
        load = (f"tl.load(mask_ptr + rm[:, None] * mask_s{b} + rn[None, :] * mask_s{b + 1}, "
                "mask=(rm[:, None] < L) & (rn[None, :] < S), other=0)")
        if lay.roles["mask"].dtype.name == "bool":
            lines.append(f"hide = {load} {'==' if attrs['keep'] else '!='} 0")
            lines.append(f"s = tl.where(hide, {TRITON.literal(float(attrs['fill']))}, s)")
            hides.append("hide")
        else:
            lines.append(f"s = s + {load}.to(tl.float32)")
    if attrs["is_causal"]:
        lines.append("after = rn[None, :] > rm[:, None]")
        lines.append(f"s = tl.where(after, {NEG_INF}, s)")
        hides.append("after")
    lines.append(f"s = tl.where(rn[None, :] < S, s, {NEG_INF})")
    if hides:
        lines.append(f"hidden = {' | '.join(hides)}")
    return [indent + line for line in lines], bool(hides)


def _precision(node) -> str:
    if node.inputs[0].dtype.name != "float32":
        return ""
    return ', input_precision="ieee"' if STATE.float32_matmul_precision == "highest" else ', input_precision="tf32"'


def _query_block(lay: Layout, pid: str) -> list[str]:
    return [f"    rm = {pid} * BLOCK_M + tl.arange(0, BLOCK_M)",
            "    " + _tile(lay, "q", "rm", "re", "L", "E", "qt")]


def _key_end(lay: Layout, first_row: str) -> str:
    """The end of the keys a query block [first_row, first_row + BLOCK_M) sees."""
    return f"tl.minimum(S, {first_row} + BLOCK_M)" if lay.node.attrs["is_causal"] else "S"


def _forward(lay: Layout, precision: str) -> list[str]:
    values = lay.template == "attention.forward"
    lines = _query_block(lay, "tl.program_id(0)")
    lines += ["    m_i = tl.full([BLOCK_M], float(\"-inf\"), tl.float32)",
              "    l_i = tl.full([BLOCK_M], 0.0, tl.float32)"]
    if values:
        lines.append("    acc = tl.full([BLOCK_M, BLOCK_EV], 0.0, tl.float32)")
    lines.append(f"    for start in range(0, {_key_end(lay, 'tl.program_id(0) * BLOCK_M')}, BLOCK_N):")
    lines.append("        rn = start + tl.arange(0, BLOCK_N)")
    lines.append("        " + _tile(lay, "k", "rn", "re", "S", "E", "kt"))
    lines += _scores(lay, "kt", precision, "        ")[0]
    lines += ["        m_new = tl.maximum(m_i, tl.reduce(s, 1, tl.standard._elementwise_max))",
              "        m_safe = tl.where(m_new == float(\"-inf\"), 0.0, m_new)  # a row hidden so far: p = 0, not nan",
              "        alpha = tl.exp(m_i - m_safe)",
              "        p = tl.exp(s - m_safe[:, None])",
              "        l_i = l_i * alpha + tl.reduce(p, 1, tl.standard._sum_combine)",
              "        m_i = m_new"]
    b = lay.batch
    if values:
        lines += ["        " + _tile(lay, "v", "rn", "rv", "S", "EV", "vt"),
                  f"        acc = acc * alpha[:, None] + {_dot('p.to(vt.dtype)', 'vt', precision)}",
                  "    o = acc / l_i[:, None]" if not lay.node.attrs["safe"] else
                  "    o = tl.where(l_i[:, None] == 0, 0.0, acc / tl.where(l_i == 0, 1.0, l_i)[:, None])"]
        lines.append(f"    tl.store(out_ptr + rm[:, None] * out_s{b} + rv[None, :] * out_s{b + 1}, "
                     "o.to(out.dtype.element_ty), mask=(rm[:, None] < L) & (rv[None, :] < EV))")
    else:
        empty = 'float("inf")' if lay.node.attrs["safe"] else NEG_INF  # see attention_logsumexp
        lines.append(f"    lse = tl.where(l_i == 0, {empty}, tl.log(tl.where(l_i == 0, 1.0, l_i)) + m_i)")
        lines.append(f"    tl.store(out_ptr + rm * out_s{b}, lse, mask=rm < L)")
    return lines


def _probabilities(lay: Layout, precision: str, indent: str) -> list[str]:
    """From scores s: p = exp(s - lse) (0 in padding rows), dp = dO V^T, ds = p * (dp - delta) (0 where hidden)."""
    lines, masked = _scores(lay, "kt", precision, indent)
    lines += [indent + "p = tl.where(rm[:, None] < L, tl.exp(s - row_lse[:, None]), 0.0)",
              indent + f"dp = {_dot('dot', 'tl.trans(vt)', precision)}",
              indent + "ds = p * (dp - delta[:, None])"]
    if masked:
        lines.append(indent + "ds = tl.where(hidden, 0.0, ds)")
    return lines


def _row_stats(lay: Layout, indent: str) -> list[str]:
    """The query block's lse, dO and delta = rowsum(dO * O)."""
    b = lay.batch
    return [indent + f"row_lse = tl.load(lse_ptr + rm * lse_s{b}, mask=rm < L, other=0)",
            indent + _tile(lay, "do", "rm", "rv", "L", "EV", "dot"),
            indent + _tile(lay, "o", "rm", "rv", "L", "EV", "ot"),
            indent + "delta = tl.reduce(dot.to(tl.float32) * ot.to(tl.float32), 1, tl.standard._sum_combine)"]


def _backward(lay: Layout, precision: str) -> list[str]:
    wrt = {_wrt(n) for n in lay.group.outputs}
    b = lay.batch
    scale = TRITON.literal(float(lay.node.attrs["scale"]))
    lines = ["    pid = tl.program_id(0)"]
    key_programs = "0"
    if wrt & {"k", "v"}:
        key_programs = "(S + BLOCK_N - 1) // BLOCK_N"
        first = "(pid * BLOCK_N) // BLOCK_M * BLOCK_M" if lay.node.attrs["is_causal"] else "0"
        lines += [f"    if pid < {key_programs}:",
                  "        rn = pid * BLOCK_N + tl.arange(0, BLOCK_N)",
                  "        " + _tile(lay, "k", "rn", "re", "S", "E", "kt"),
                  "        " + _tile(lay, "v", "rn", "rv", "S", "EV", "vt"),
                  "        dk_acc = tl.full([BLOCK_N, BLOCK_E], 0.0, tl.float32)",
                  "        dv_acc = tl.full([BLOCK_N, BLOCK_EV], 0.0, tl.float32)",
                  f"        for start in range({first}, L, BLOCK_M):",
                  "            rm = start + tl.arange(0, BLOCK_M)",
                  "            " + _tile(lay, "q", "rm", "re", "L", "E", "qt")]
        lines += _row_stats(lay, "            ")
        lines += _probabilities(lay, precision, "            ")
        lines += [f"            dv_acc += {_dot('tl.trans(p).to(dot.dtype)', 'dot', precision)}",
                  f"            dk_acc += {_dot('tl.trans(ds).to(qt.dtype)', 'qt', precision)}"]
        for d, cols, n in (("dk", "re", "E"), ("dv", "rv", "EV")):
            if d[1] in wrt:
                value = f"{d}_acc * {scale}" if d == "dk" else f"{d}_acc"
                lines.append(f"        tl.store({d}_ptr + rn[:, None] * {d}_s{b} + {cols}[None, :] * {d}_s{b + 1}, "
                             f"({value}).to({d}.dtype.element_ty), mask=(rn[:, None] < S) & ({cols}[None, :] < {n}))")
    if "q" in wrt:
        indent = "        " if key_programs != "0" else "    "
        if key_programs != "0":
            lines.append("    else:")
        lines += [indent + f"rm = (pid - {key_programs}) * BLOCK_M + tl.arange(0, BLOCK_M)",
                  indent + _tile(lay, "q", "rm", "re", "L", "E", "qt")]
        lines += _row_stats(lay, indent)
        lines += [indent + "dq_acc = tl.full([BLOCK_M, BLOCK_E], 0.0, tl.float32)",
                  indent + f"for start in range(0, {_key_end(lay, f'(pid - {key_programs}) * BLOCK_M')}, BLOCK_N):",
                  indent + "    rn = start + tl.arange(0, BLOCK_N)",
                  indent + "    " + _tile(lay, "k", "rn", "re", "S", "E", "kt"),
                  indent + "    " + _tile(lay, "v", "rn", "rv", "S", "EV", "vt")]
        lines += _probabilities(lay, precision, indent + "    ")
        lines += [indent + f"    dq_acc += {_dot('ds.to(kt.dtype)', 'kt', precision)}",
                  indent + f"tl.store(dq_ptr + rm[:, None] * dq_s{b} + re[None, :] * dq_s{b + 1}, "
                  f"(dq_acc * {scale}).to(dq.dtype.element_ty), mask=(rm[:, None] < L) & (re[None, :] < E))"]
    return lines


def generate(group: Group, em: Emitter):
    """(source, name, AOT signature, constexprs) of the group's kernel."""
    lay = Layout(group)
    name = kernel_name(group)
    precision = _precision(lay.node)
    body = _backward(lay, precision) if lay.template == "attention.backward" else _forward(lay, precision)
    head = [f"def {name}({', '.join(lay.params())}, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, "
            "BLOCK_E: tl.constexpr, BLOCK_EV: tl.constexpr):",
            *(f"    # {n.op.name} at {n.where}" for n in group.nodes if n.where),
            "    batch = tl.program_id(1).to(tl.int64)", *_batch_offsets(lay),
            "    re = tl.arange(0, BLOCK_E)", "    rv = tl.arange(0, BLOCK_EV)"]
    source = HEADER + "\n".join(head + body) + "\n"
    q, v = lay.roles["q"], lay.roles["v"]
    return source, name, lay.signature(), _blocks(lay.template, q.shape[-1], v.shape[-1])


def _blocks(template: str, e: int, ev: int) -> dict:
    """Tiles for head dims e and ev: past 128, half the rows, so the tiles stay within sm_90's shared memory (fp32,
    head dim 128: 180 KB for the forward)."""
    m, n = BLOCKS[template]
    heads = {"BLOCK_E": _head_block(e), "BLOCK_EV": _head_block(ev)}
    shrink = 2 if max(heads.values()) > 128 else 1
    return {"BLOCK_M": m // shrink, "BLOCK_N": n // shrink, **heads}


def _head_block(n: int) -> int:
    return max(16, 1 << (n - 1).bit_length())  # tl.dot wants power-of-2 tiles of at least 16


def configs(group: Group, space: tuple) -> list[dict]:
    """The launch config: the tiles follow the call's head dims (set in launch)."""
    return [{}]


def launch(step, loads: list, outs: list, space: tuple, raw: dict, config: dict) -> None:
    lay = Layout(step.group)
    operands = {p: raw[x, None] for p, x in lay.roles.items()}
    q, v = operands["q"], operands["v"]
    batch, (L, E), (S, EV) = tuple(q.shape[:-2]), tuple(q.shape[-2:]), tuple(v.shape[-2:])
    if "mask" in operands:
        operands["mask"] = operands["mask"].expand(*batch, L, S)
    tensors = [*operands.values(), *outs]
    config = dict(config, **_blocks(lay.template, E, EV))
    programs = -(-L // config["BLOCK_M"])
    if lay.template == "attention.backward":
        wrt = {_wrt(n) for n in step.group.outputs}
        programs = (-(-S // config["BLOCK_N"]) if wrt & {"k", "v"} else 0) + (programs if "q" in wrt else 0)
    kernel = step.kernel()
    kernel[(programs, math.prod(batch))](*tensors, *batch, L, S, E, EV, *(s for t in tensors for s in t.stride()),
                                         **config)
