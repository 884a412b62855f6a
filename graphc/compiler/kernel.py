"""From a fused group to kernel code, shared by every renderer (render_triton*.py, render_c.py).

A renderer supplies a Dialect: its types, literals, casts, loads, stores and primitives. The Emitter walks the
group's members in that dialect: each value read from memory becomes a strided load, each member one line that
evaluates its op's Lowering.expr, each output a store. The renderer only lays out the loops around those lines
(blocks of indices in Triton, loops with `omp simd` in C)."""
from __future__ import annotations

import ast
import functools
import math

from .. import dtypes
from .fusion import Group, load_key
from .ir import Node
from .views import view_chain


class Dialect:
    """What a renderer's language needs for the shared emitter; see TritonDialect and CDialect."""

    comment = "#"
    terminator = ""
    calls: dict[str, str] = {}  # primitive -> format string over its arguments {0}, {1}, ...

    def compute_type(self, dt: dtypes.dtype) -> str:
        """The type values of dt are computed in: fp16/bf16 in fp32, as torch does."""
        raise NotImplementedError

    def storage_type(self, dt: dtypes.dtype) -> str:
        raise NotImplementedError

    def literal(self, value, ty: str | None = None) -> str:
        """value (a Python scalar) as a literal; ty: the compute type of the operation it is an operand of."""
        raise NotImplementedError

    def cast(self, value: str, ty: str) -> str:
        raise NotImplementedError

    def constant(self, value: str, ty: str) -> str:
        """A value computed from literals only, as a scalar of type ty."""
        raise NotImplementedError

    def round(self, value: str, dt: dtypes.dtype) -> str:
        """value (of dt's compute type) rounded to dt's storage precision and widened back."""
        raise NotImplementedError

    def binary(self, op: str, a: str, b: str, ty: str) -> str:
        return f"({a} {op} {b})"

    def call(self, name: str, args: list[str], constants: list[bool], ty: str) -> str:
        return self.calls[name].format(*args)

    def assign(self, var: str, value: str, ty: str) -> str:
        return f"{var} = {value}"

    def load(self, var: str, ptr: str, offset: str, mask: str | None, dt: dtypes.dtype) -> str:
        """A line reading ptr at offset (where mask holds) into var, widened to dt's compute type."""
        raise NotImplementedError

    def store(self, ptr: str, offset: str, value: str, mask: list[str], dt: dtypes.dtype) -> str:
        """A line writing value to ptr at offset where every mask holds."""
        raise NotImplementedError


OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Mod: "%", ast.BitAnd: "&", ast.BitOr: "|",
             ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


@functools.cache
def parse(expr: str) -> ast.expr:
    """A Lowering.expr as a Python expression tree: operand {i} becomes the name _i, attr {k} the name _k."""
    return ast.parse(expr.replace("{", "_").replace("}", ""), mode="eval").body


def render(expr: str, operands: list[str], constants: list[bool], attrs: dict, dialect: Dialect, ty: str) -> str:
    """A Lowering.expr in the dialect: operands are rendered values (constants[i]: operand i is a literal), attrs
    Python values; ty is the type the operation computes in."""
    def walk(e: ast.expr) -> tuple[str, bool]:  # (text, whether it is made of literals only)
        if isinstance(e, ast.Name):
            if e.id in ("inf", "nan"):
                return dialect.literal(math.inf if e.id == "inf" else math.nan, ty), True
            key = e.id[1:]
            if key.isdigit():
                return operands[int(key)], constants[int(key)]
            return f"({dialect.literal(attrs[key], ty)})", True
        if isinstance(e, ast.Constant):
            return dialect.literal(e.value, ty), True
        if isinstance(e, ast.UnaryOp):
            text, const = walk(e.operand)
            return f"(-{text})", const
        if isinstance(e, ast.BinOp):
            (a, ca), (b, cb) = walk(e.left), walk(e.right)
            return dialect.binary(OPERATORS[type(e.op)], a, b, ty), ca and cb
        if isinstance(e, ast.Compare):
            (a, ca), (b, cb) = walk(e.left), walk(e.comparators[0])
            return dialect.binary(OPERATORS[type(e.ops[0])], a, b, ty), ca and cb
        args = [walk(a) for a in e.args]
        return dialect.call(e.func.id, [a for a, _ in args], [c for _, c in args], ty), all(c for _, c in args)
    return walk(parse(expr))[0]


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
    """Turns a group's nodes into code of one dialect: memory reads through strides, members through their
    lowering expressions."""

    def __init__(self, group: Group, dialect: Dialect, loads: list[tuple] | None = None,
                 outputs: list[Node] | None = None):
        """loads/outputs: what the kernel reads through strides and stores (default: the group's)."""
        self.group, self.dialect = group, dialect
        self.loads = {x: f"in{i}" for i, x in enumerate(group.kernel_loads() if loads is None else loads)}
        self.outputs = {n: f"out{i}" for i, n in enumerate(group.outputs if outputs is None else outputs)}
        self.rank = len(group.space)
        self.reduced: dict[Node, str] = {}  # reduction nodes -> their per-row result variable

    def pointers(self) -> list[str]:
        return [*self.loads.values(), *self.outputs.values()]

    def strides(self) -> list[str]:
        return [f"{p}_s{d}" for p in self.pointers() for d in range(self.rank)]

    def params(self) -> str:
        return ", ".join(self.pointers() + [f"size{d}" for d in range(self.rank)] + self.strides())

    def offset(self, ptr: str, scope: Scope) -> str:
        terms = [f"{i} * {ptr}_s{d}" for d, i in enumerate(scope.index) if i is not None]
        return " + ".join(terms) or scope.zero

    def value(self, x, scope: Scope, consumer: Node | None = None) -> str:
        """The expression for operand x (a node or a Python scalar) of consumer in scope, emitting what it needs."""
        if not isinstance(x, Node):
            return self.dialect.literal(x, None if consumer is None else self.operation_type(consumer))
        key = load_key(self.group, x, consumer)
        if key in self.loads:
            var = scope.lookup(key)
            if var is None:
                ptr = self.loads[key]
                var = f"x{ptr[2:]}{scope.tag}"
                scope.emit(self.dialect.load(var, ptr, self.offset(ptr, scope), scope.mask, x.dtype))
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

    def operation_type(self, n: Node) -> str:
        """The type n's operation computes in: its result's compute type, or for a predicate (a comparison) the
        promoted type of its operands, as torch compares a float32 tensor with 0.1 in float32."""
        low = n.op.lowering
        dt = n.dtype if n.dtype.is_floating_point or low is None or low.reduce is not None else \
            dtypes.result_type(*n.inputs)
        return self.dialect.compute_type(dt)

    def member(self, n: Node, scope: Scope) -> str:
        """Emit one pointwise member (a reduction over no dims is a copy) and return its variable."""
        d, low = self.dialect, n.op.lowering
        ty = d.compute_type(n.dtype)
        expr = "{0}" if low.reduce is not None else low.expr
        cast_operands = n.dtype.is_floating_point and low.cast_operands
        # integers of several widths or signs meet in torch's promoted type; Triton would promote uint8 + int8 to a
        # type of its own
        common = dtypes.result_type(*n.inputs) if not n.dtype.is_floating_point and low.cast_operands else None
        widen = common is not None and common.category == 1
        operands = []
        for i, x in enumerate(n.inputs):
            if f"{{{i}}}" not in expr:
                operands.append("")
                continue
            v = self.value(x, scope, n)
            if low.rounds and isinstance(x, Node) and x.dtype.is_low_precision:
                v = d.round(v, x.dtype)  # a cast reads its operand as eager stored it: (x.half() * 1.5).float()
            if cast_operands and isinstance(x, Node) and x.dtype is not dtypes.bool_ and d.compute_type(x.dtype) != ty:
                v = d.cast(v, ty)
            elif widen and isinstance(x, Node) and x.dtype.category == 1 and x.dtype is not common:
                v = d.cast(v, d.compute_type(common))
            operands.append(v)
        attrs = {k: low.defaults.get(k) if v is None else v for k, v in n.attrs.items()}
        text = render(expr, operands, [not isinstance(x, Node) for x in n.inputs], attrs, d, self.operation_type(n))
        var = f"v{n.id}{scope.tag}"
        where = f"  {d.comment} {n.op.name} at {n.where}" if n.where else f"  {d.comment} {n.op.name}"
        used = [x for x, v in zip(n.inputs, operands) if isinstance(x, Node) and v]
        if not used:
            value = d.constant(text, ty)
        else:
            typed = ty == d.compute_type(dtypes.float32) and cast_operands and all(
                x.dtype is not dtypes.bool_ for x in used)
            value = text if typed else d.cast(text, ty)
        if n.dtype.is_low_precision and (low.rounds or not used):
            value = d.round(value, n.dtype)  # an explicit cast rounds, as in torch
        scope.emit(d.assign(var, value, ty) + d.terminator + where)
        return var

    def store(self, n: Node, var: str, scope: Scope) -> None:
        """Store output n; along dims where n does not vary only index 0 stores (a stride-0 output is written
        once)."""
        ptr = self.outputs[n]
        mask = [scope.mask] if scope.mask else []
        aligned = self.group.aligned[n]
        mask += [f"(({i} == 0) | ({ptr}_s{d} != 0))" for d, i in enumerate(scope.index)
                 if i is not None and aligned[d] == 1]
        scope.emit(self.dialect.store(ptr, self.offset(ptr, scope), var, mask, n.dtype))


def invariant(group: Group, n: Node) -> bool:
    """Whether member n has one value over the whole iteration space (Adam's bias corrections from the step count):
    computed once, before the loops (C) or as scalars before the tile's values (Triton), instead of at every
    element."""
    return all(a == 1 for a in group.aligned[n])


def invariant_scope(group: Group, rank: int, lines: list[str] | None = None, indent: str = "  ") -> Scope:
    """The scope before a kernel's loops, where invariant members are computed: no index and no mask (what does
    not vary is read at its offset 0)."""
    return Scope([] if lines is None else lines, [None] * rank, None, "_i", indent)


def split_index(names: list[str], flat: str, sizes: list[str], indent: str = "    ", declare: str = "",
                end: str = "") -> list[str]:
    """Lines that split a flat index into one index per dim (row-major); declare/end: the dialect's declaration
    prefix and statement end."""
    lines, rest = [], flat
    for k in range(len(names) - 1, -1, -1):
        if k == 0:
            lines.append(f"{indent}{declare}{names[k]} = {rest}{end}")
        else:
            lines.append(f"{indent}{declare}{names[k]} = {rest} % {sizes[k]}{end}")
            lines.append(f"{indent}{declare}{flat}_{k} = {rest} / {sizes[k]}{end}" if declare else
                         f"{indent}{flat}_{k} = {rest} // {sizes[k]}")
            rest = f"{flat}_{k}"
    return lines


def kernel_name(group: Group) -> str:
    """A readable kernel name from its ops, e.g. matmul_add_relu_3."""
    ops = []
    for n in group.nodes:
        if n.op.name not in ops:
            ops.append(n.op.name)
    return f"{'_'.join(ops[:4])}{'_etc' if len(ops) > 4 else ''}_{group.id}"


def reduction_identity(r: Node, ty: str) -> float | int | bool:
    """The identity of r's combine in type ty (a numpy type name, or "int1"): 0 for sums, +-inf for float
    max/min, the type's bounds for integers."""
    import numpy as np

    value = {"sum": 0.0, "max": -math.inf, "min": math.inf}[r.op.lowering.reduce]
    if ty.startswith("float") or value == 0:
        return value
    if ty in ("int1", "bool"):
        return value > 0
    return int(np.iinfo(ty).max if value > 0 else np.iinfo(ty).min)
