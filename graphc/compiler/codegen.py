"""Codegen: fused groups become Triton kernel steps, ops without a lowering become numpy fallback steps.

`plan_kernels(graph, backend, mode)` is the entry point. The per-kind source generators live in
triton_elementwise.py, triton_reduction.py and triton_matmul.py; they share the `Emitter` below, which turns
group members into Triton expressions and operand reads into strided loads."""
from __future__ import annotations

import math
from pathlib import Path
from string import Template

import numpy as np

from .. import dtypes
from ..dispatch import REDUCTION, run_forward
from ..tensor import from_torch, to_torch
from . import cache
from .fusion import EXPANDS, Fusion, Group, load_key, padded, view_chain
from .ir import Graph, Node
from .plan import Step

TEMPLATES = Path(__file__).resolve().parents[2] / "kernels"
# per reduction slot: accumulator init, element-wise combine, the combine fn of the final tl.reduce (the same
# functions tl.sum/tl.max/tl.min use; called through tl.reduce so the Triton interpreter runs them too), and the NaN
# a max/min of floats gives when any input is NaN (torch propagates NaN; Triton's fold drops it, so the fold is
# followed by a NaN check). Its sign makes the scratch atomics keep it: atomic_max/min on floats compare bit
# patterns as integers, where +NaN is above every number and -NaN below.
ACCUMULATE = {"tl.sum": ("0", "{acc} + {v}", "tl.standard._sum_combine", None),
              "tl.max": ('float("-inf")', "tl.maximum({acc}, {v}, propagate_nan=tl.PropagateNan.ALL)",
                         "tl.standard._elementwise_max", 'float("nan")'),
              "tl.min": ('float("inf")', "tl.minimum({acc}, {v}, propagate_nan=tl.PropagateNan.ALL)",
                         "tl.standard._elementwise_min", '-float("nan")')}


def template(name: str) -> Template:
    return Template((TEMPLATES / f"{name}.py.tmpl").read_text())


def compute_type(dt: dtypes.dtype) -> str:
    """The Triton type values of dtype dt are computed in: fp16/bf16 in fp32, as torch does."""
    return "tl.float32" if dt.is_low_precision else f"tl.{ {'bool': 'int1'}.get(dt.name, dt.name)}"


def storage_type(dt: dtypes.dtype) -> str:
    """The Triton type of dtype dt in memory (compute_type widens fp16/bf16)."""
    return f"tl.{dt.name}" if dt.is_low_precision else compute_type(dt)


def literal(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(int(bool(value)))
    if isinstance(value, float) and not math.isfinite(value):
        return 'float("nan")' if math.isnan(value) else ('float("inf")' if value > 0 else 'float("-inf")')
    return repr(value.item() if isinstance(value, np.generic) else value)


class Scope:
    """Where emitted code goes: index expression per iteration dim (None = index 0), the mask, memoised values."""

    def __init__(self, lines: list[str], index: list, mask: str | None, tag: str, indent: str = "    ",
                 parent: Scope | None = None, hoist=None):
        self.lines, self.index, self.mask, self.tag, self.indent, self.parent = lines, index, mask, tag, indent, parent
        self.hoist = hoist  # hoist(node): compute node in the parent scope (a per-row value inside a row loop)
        self.zero = "0"  # the offset of a value that does not vary (a block of zeros where loads are blocks)
        self.memo: dict[Node, str] = {}

    def lookup(self, node: Node) -> str | None:
        scope = self
        while scope is not None:
            if node in scope.memo:
                return scope.memo[node]
            scope = scope.parent
        return None

    def emit(self, line: str) -> None:
        self.lines.append(self.indent + line)


class Emitter:
    """Turns a group's nodes into Triton code: memory reads through strides, members through their templates."""

    def __init__(self, group: Group):
        self.group = group
        self.loads = {x: f"in{i}" for i, x in enumerate(kernel_loads(group))}
        self.outputs = {n: f"out{i}" for i, n in enumerate(group.outputs)}
        self.rank = len(group.space)
        self.reduced: dict[Node, str] = {}  # reduction nodes -> their per-row result variable

    def params(self) -> str:
        ptrs = [*self.loads.values(), *self.outputs.values()]
        strides = [f"{p}_s{d}" for p in ptrs for d in range(self.rank)]
        return ", ".join(ptrs + [f"size{d}" for d in range(self.rank)] + strides)

    def offset(self, ptr: str, scope: Scope) -> str:
        terms = [f"{i} * {ptr}_s{d}" for d, i in enumerate(scope.index) if i is not None]
        return " + ".join(terms) or scope.zero

    def value(self, x, scope: Scope, consumer: Node | None = None) -> str:
        """The expression for operand x (a node or a Python scalar) of consumer in scope, emitting what it needs."""
        if not isinstance(x, Node):
            return literal(x)
        key = load_key(self.group, x, consumer)
        if key in self.loads:
            var = scope.lookup(key)
            if var is None:
                ptr = self.loads[key]
                var = f"x{ptr[2:]}{scope.tag}"
                mask = f", mask={scope.mask}, other=0" if scope.mask else ""
                ty = compute_type(x.dtype)
                widen = "" if storage_type(x.dtype) == ty != "tl.int1" else f".to({ty})"
                scope.emit(f"{var} = tl.load({ptr} + {self.offset(ptr, scope)}{mask}){widen}")
                scope.memo[key] = var
            return var
        base, _ = view_chain(x)
        if base is not x:
            return self.value(base, scope)
        if x in self.reduced:
            return self.reduced[x]
        var = scope.lookup(x)
        if var is None:
            if scope.hoist is not None and scope.hoist(x):
                return self.value(x, scope.parent)
            var = self.member(x, scope)
            scope.memo[x] = var
        return var

    def member(self, n: Node, scope: Scope) -> str:
        """Emit one pointwise member (or the matmul accumulator's cast) and return its variable."""
        ty = compute_type(n.dtype)
        cast_operands = n.dtype.is_floating_point and n.op.name not in ("where", "masked_fill")
        operands = []
        for i, x in enumerate(n.inputs):
            if f"{{{i}}}" not in n.op.triton and n.op.category != REDUCTION:
                operands.append("")
                continue
            v = self.value(x, scope, n)
            if cast_operands and isinstance(x, Node) and x.dtype is not dtypes.bool_ and compute_type(x.dtype) != ty:
                v = f"{v}.to({ty})"
            elif cast_operands and not isinstance(x, Node) and "libdevice" in n.op.triton:
                v = f"tl.full([], {v}, {ty})"  # libdevice functions want operands of one type
            operands.append(v)
        attrs = {k: literal(v) if v is not None else ('float("-inf")' if k == "min" else 'float("inf")')
                 for k, v in n.attrs.items()}
        expr = ("{0}" if n.op.category == REDUCTION else n.op.triton).format(*operands, **attrs)
        var = f"v{n.id}{scope.tag}"
        where = f"  # {n.op.name} at {n.where}" if n.where else f"  # {n.op.name}"
        used = [x for x, v in zip(n.inputs, operands) if isinstance(x, Node) and v]
        if not used:
            value = f"tl.full([], {expr}, {ty})"
        else:
            typed = ty == "tl.float32" and cast_operands and all(x.dtype is not dtypes.bool_ for x in used)
            value = expr if typed else f"({expr}).to({ty})"
        if n.dtype.is_low_precision and (n.op.name == "cast" or not used):
            value = f"({value}).to({storage_type(n.dtype)}).to({ty})"  # an explicit cast rounds, as in torch
        scope.emit(f"{var} = {value}{where}")
        return var

    def store(self, n: Node, var: str, scope: Scope) -> None:
        ptr = self.outputs[n]
        mask = [scope.mask] if scope.mask else []
        canon = self.group.canon[n]
        mask += [f"(({i} == 0) | ({ptr}_s{d} != 0))" for d, i in enumerate(scope.index)
                  if i is not None and canon[d] == 1]
        mask_arg = f", mask={' & '.join(mask)}" if mask else ""
        scope.emit(f"tl.store({ptr} + {self.offset(ptr, scope)}, {var}.to({ptr}.dtype.element_ty){mask_arg})")


def kernel_loads(group: Group) -> list[tuple]:
    """The loads the generated code reads through strides (a matmul's own operands are read by the template)."""
    if group.kind != "matmul":
        return group.loads
    return [(x, c) for x, c in group.loads if any(x in n.inputs for n in group.nodes if n is not group.matmul)]


def split_index(names: list[str], flat: str, sizes: list[str], indent: str = "    ") -> list[str]:
    """Lines that split a flat index into one index per dim (row-major)."""
    lines, rest = [], flat
    for k in range(len(names) - 1, -1, -1):
        if k == 0:
            lines.append(f"{indent}{names[k]} = {rest}")
        else:
            lines.append(f"{indent}{names[k]} = {rest} % {sizes[k]}")
            lines.append(f"{indent}{flat}_{k} = {rest} // {sizes[k]}")
            rest = f"{flat}_{k}"
    return lines


# ---- runtime ---------------------------------------------------------------------------------------------
def torch_dtype(dt: dtypes.dtype):
    import torch

    return getattr(torch, {"bool": "bool"}.get(dt.name, dt.name))


def as_torch(value, backend: str):
    import torch

    if isinstance(value, torch.Tensor):
        return value
    a = np.asarray(value)
    if a.dtype == dtypes.bfloat16.np and backend == "interpret":
        raise NotImplementedError("bfloat16 tensors cannot run under the Triton interpreter; use backend='triton'")
    if any(s < 0 for s in a.strides):
        a = np.ascontiguousarray(a)
    elif backend == "interpret" and a.base is not None:
        # the interpreter copies a launch's tensors to host and back by storage, keyed by data pointer: two views
        # of one array that start at the same address but span different lengths (v and v[0]) make it fail
        # ("size does not match"). Kernels never write their inputs, so a copy is equivalent.
        a = a.copy()
    t = to_torch(a)
    return t if backend == "interpret" else t.cuda()


def as_numpy(value) -> np.ndarray:
    import torch

    if isinstance(value, torch.Tensor):
        return from_torch(value)
    return np.asarray(value)


def apply_view(t, name: str, attrs: dict, shape: tuple):
    """Apply the view op `name` (a reshape, expand or permute) giving `shape` to a torch tensor t (a copy only if
    reshape needs one)."""
    if name == "permute":
        return t.permute(attrs["dims"])
    if name in EXPANDS:
        return t.expand(shape)
    return t.reshape(shape)


def view_numpy(a: np.ndarray, v: Node, shapes: dict) -> np.ndarray:
    if v.op.name == "permute":
        return np.transpose(a, v.attrs["dims"])
    if v.op.name in EXPANDS:
        return np.broadcast_to(a, shapes[v])
    return np.reshape(a, shapes[v])


class KernelStep(Step):
    """One launch of a generated Triton kernel computing a fused group; .kind is the group's kind."""

    role = "kernel"

    def __init__(self, group: Group, source: str, name: str, backend: str, mode: str, template, signature: dict,
                 constexprs: dict):
        reads = []
        for x, _ in group.loads:
            base = view_chain(x)[0]
            if base not in reads:
                reads.append(base)
        super().__init__(reads, list(group.outputs), list(group.nodes))
        self.group, self.kind, self.source, self.name, self.backend = group, group.kind, source, name, backend
        self.mode, self.template, self.signature, self.constexprs = mode, template, signature, constexprs
        self.tuned: dict[tuple, dict] = {}  # max-autotune: the fastest config per iteration space
        self.relations = size_relations(group, ShapesAtPlanTime())
        self._fits: tuple = (None, True)  # (the shapes dict last checked, whether it kept the relations)

    def __repr__(self) -> str:
        return f"<KernelStep {self.kind} {self.name}>"

    def ptx(self, arch: int = 90) -> str:
        """PTX for this kernel on sm_<arch>, compiled ahead of time (no GPU needed)."""
        return cache.aot(self.source, self.name, self.signature, self.constexprs, arch)["ptx"]

    def cubin(self, arch: int = 90) -> bytes:
        return cache.aot(self.source, self.name, self.signature, self.constexprs, arch)["cubin"]

    def __call__(self, values: dict, shapes: dict) -> None:
        import torch

        g = self.group
        if self._fits[0] is not shapes:  # the runtime hands the same dict while input shapes stay the same
            self._fits = (shapes, size_relations(g, shapes) == self.relations)
        if not self._fits[1]:
            return self.run_numpy(values, shapes)
        space = tuple(shapes[g.anchor])
        raw = {}
        for x, consumer in g.loads:
            base, chain = view_chain(x)
            t = as_torch(values[base], self.backend)
            for v in chain:
                t = apply_view(t, v.op.name, v.attrs, shapes[v])
            raw[x, consumer] = t
        loads = [self.place(raw[key], key[1], space, shapes) for key in kernel_loads(g)]
        outs, out_views = [], []
        for n in g.outputs:
            shape = tuple(shapes[n])
            buf = (torch.from_numpy(np.empty(shape, n.dtype.np)) if self.backend == "interpret"
                   else torch.empty(shape, dtype=torch_dtype(n.dtype), device="cuda"))
            outs.append(buf)
            for v in reversed(g.permuted.get(n, [])):
                buf = buf.permute(tuple(np.argsort(v.attrs["dims"]).tolist()))
            out_views.append(self.place(buf, n if n in g.rowplaced else None, space, shapes))
        if all(s > 0 for s in space):
            self.pick(space, lambda config: self.template.launch(self, loads, out_views, space, raw,
                                                                 dict(config, enable_fp_fusion=cache.FP_FUSION)))
        for n, buf in zip(g.outputs, outs):
            values[n] = buf.numpy() if self.backend == "interpret" else buf

    def pick(self, space: tuple, run) -> None:
        """Launch with the heuristic config, or in mode='max-autotune' on a GPU with the fastest of the template's
        configs for this space (timed once per space)."""
        configs = self.template.configs(self.group, space)
        if self.mode != "max-autotune" or self.backend != "triton" or len(configs) == 1:
            return run(configs[0])
        if space not in self.tuned:
            self.tuned[space] = min(configs, key=lambda config: gpu_ms(lambda: run(config)))
        run(self.tuned[space])

    def run_numpy(self, values: dict, shapes: dict) -> None:
        """The group op by op with numpy: for a call whose sizes break what the fusion relied on (a dim that becomes
        1, or stops being 1, changes what broadcasting means; two sizes equal by coincidence at plan time differ)."""
        local = dict(values)
        for node in self.nodes:
            FallbackStep(node, "", self.backend)(local, shapes)
        for n in self.writes:
            values[n] = local[n]

    def place(self, t, consumer: Node | None, space: tuple, shapes: dict):
        """t as a tensor of the iteration space's shape (stride 0 where it does not vary); a per-row consumer's
        operand (or output) has the kept dims of the space."""
        if consumer is None:
            return broadcast_to(t, space)
        dims = self.group.dims
        t = broadcast_to(t, tuple(shapes[consumer]))
        return t.reshape([1 if d in dims else s for d, s in enumerate(space)]).expand(space)


def gpu_ms(run, repeats: int = 5) -> float:
    """Milliseconds per call of run on the current CUDA stream (after one warm-up call)."""
    import torch

    run()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        run()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


class ShapesAtPlanTime(dict):
    def __missing__(self, node: Node) -> tuple:
        return tuple(node.shape)


def size_relations(group: Group, shapes: dict) -> tuple:
    """What the fusion of a group relied on about sizes, for these shapes: which dims of each node and operand are 1
    (broadcasting), which of their dims equal the iteration space's (placement), and whether each per-row value has
    one element per row. A call whose relations differ from those at plan time (two sizes that were equal by
    coincidence now differ) cannot use the kernel as fused."""
    nodes = group.nodes
    values = nodes + [x for n in nodes for x in n.inputs if isinstance(x, Node)]
    space = tuple(shapes[group.anchor])
    rows = math.prod(s for d, s in enumerate(space) if d not in group.dims)
    relations = []
    for x in values:
        shape = tuple(shapes[x])
        relations.append(tuple(s == 1 for s in shape))
        if x in group.rowplaced:
            relations.append(math.prod(shape) == rows)
        else:
            relations.append(tuple(p == s for p, s in zip(padded(shape, len(space)), space)))
    return tuple(relations)


def broadcast_to(t, space: tuple):
    return t[(None,) * (len(space) - t.ndim)].expand(space)


class FallbackStep(Step):
    """An op with no Triton lowering, run with numpy between kernels; reason says why."""

    role = "fallback"

    def __init__(self, node: Node, reason: str, backend: str):
        reads = []
        for x in node.inputs:
            if isinstance(x, Node) and view_chain(x)[0] not in reads:
                reads.append(view_chain(x)[0])
        super().__init__(reads, [node], [node])
        self.node, self.reason, self.backend = node, reason, backend

    def __call__(self, values: dict, shapes: dict) -> None:
        values[self.node] = self.to_backend(run_forward(self.node.op, [self.operand(x, values, shapes) for x in
                                                                       self.node.inputs], self.node.attrs,
                                                        self.node.dtype, self.node.inputs,
                                                        self.node.dtype.is_low_precision))

    def operand(self, x, values: dict, shapes: dict):
        if not isinstance(x, Node):
            return x
        base, chain = view_chain(x)
        a = as_numpy(values[base])
        for v in chain:
            a = view_numpy(a, v, shapes)
        return a

    def to_backend(self, a: np.ndarray):
        return a if self.backend != "triton" else as_torch(a, "triton")


class ViewStep(FallbackStep):
    """A graph output that is a view of another value: made with numpy (no data moves, no kernel)."""

    role = "op"

    def __call__(self, values: dict, shapes: dict) -> None:
        values[self.node] = self.to_backend(self.operand(self.node, values, shapes))


def plan_kernels(graph: Graph, backend: str = "interpret", mode: str = "default") -> list[Step]:
    """Fuse the graph and return its steps: one kernel step per group, fallback steps between them."""
    import importlib

    fusion = Fusion(graph)
    steps: list[Step] = []
    for item in fusion.order():
        if isinstance(item, Group):
            template = importlib.import_module(f"{__package__}.triton_{item.kind}")
            source, name, signature, constexprs = template.generate(item, Emitter(item))
            steps.append(KernelStep(item, source, name, backend, mode, template, signature, constexprs))
        else:
            from .fusion import fallback_reason

            steps.append(FallbackStep(item, fallback_reason(item), backend))
    for out in graph.outputs:
        if isinstance(out, Node) and out.kind == "op" and view_chain(out)[0] is not out:
            steps.append(ViewStep(out, "view", backend))
    for step in steps:
        step.fusion = fusion
    return steps


def kernel_name(group: Group) -> str:
    """A readable kernel name from its ops, e.g. matmul_add_relu_3."""
    ops = []
    for n in group.nodes:
        if n.op.name not in ops:
            ops.append(n.op.name)
    return f"{'_'.join(ops[:4])}{'_etc' if len(ops) > 4 else ''}_{group.id}"


def signature(group: Group, em: Emitter, extra: list[str], pointers_first: dict | None = None) -> dict:
    """The AOT signature: a pointer type per tensor, i64 per size/stride, then the extra ints."""
    sig = dict(pointers_first or {})
    for (x, _), p in em.loads.items():
        sig[p] = f"*{x.dtype.triton}"
    for n, p in em.outputs.items():
        sig[p] = f"*{n.dtype.triton}"
    params = [p.strip() for p in em.params().split(",")]
    for p in params:
        sig.setdefault(p, "i64")
    for p in extra:
        sig[p] = "i64"
    return sig
