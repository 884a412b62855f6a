"""The IR: a DAG of nodes in topological order. A node is one op application with its inferred shape,
dtype and device, and the user's file:line that created it."""
from __future__ import annotations

from ..dispatch import Op
from ..dtypes import dtype as DType
from ..tensor import device as Device
from ..topological import postorder


class Meta:
    """What shape inference needs of a value: shape, dtype, device (op.infer reads only these and ndim)."""

    __slots__ = ("shape", "dtype", "device")

    def __init__(self, shape: tuple, dtype: DType, device: Device):
        self.shape, self.dtype, self.device = tuple(shape), dtype, device

    @property
    def ndim(self) -> int:
        return len(self.shape)


class Node(Meta):
    """kind 'input' (read from a graph input at run time), 'const' (a value baked into the graph) or 'op'."""

    __slots__ = ("id", "kind", "op", "inputs", "attrs", "where", "value")

    def __init__(self, id: int, kind: str, op: Op | None, inputs: tuple, attrs: dict, shape: tuple, dtype: DType,
                 device: Device, where: str = "", value=None):
        super().__init__(shape, dtype, device)
        self.id, self.kind, self.op, self.inputs, self.attrs, self.where, self.value = \
            id, kind, op, tuple(inputs), dict(attrs), where, value

    @property
    def name(self) -> str:
        return f"%{self.id}"

    @property
    def label(self) -> str:
        return self.op.name if self.kind == "op" else self.kind

    def __repr__(self) -> str:
        return f"<Node {self.name} {self.label} {list(self.shape)} {self.dtype.name}>"


def ancestors(nodes: list[Node]) -> list[Node]:
    """nodes and every node they are computed from, in topological order."""
    return postorder(nodes, lambda node: [x for x in node.inputs if type(x) is Node])


def fmt_arg(x) -> str:
    return x.name if isinstance(x, Node) else repr(x)


class Graph:
    """Nodes in topological order, the input nodes in call order, and the output nodes. `mutated_inputs` maps the
    position of an input the function updated in place to the position of the output holding its new value, when
    that output is only written back into the input (the call hands it out nowhere else): the reinplacing pass may
    compute it straight into the input's memory (graphc/compiler/reinplace.py)."""

    def __init__(self):
        self.nodes: list[Node] = []
        self.inputs: list[Node] = []
        self.outputs: list[Node] = []
        self.mutated_inputs: dict[int, int] = {}

    def add(self, kind: str, op: Op | None, inputs: tuple, attrs: dict, shape: tuple, dtype: DType,
            device: Device, where: str = "", value=None) -> Node:
        node = Node(len(self.nodes), kind, op, inputs, attrs, shape, dtype, device, where, value)
        self.nodes.append(node)
        if kind == "input":
            self.inputs.append(node)
        return node

    def users(self) -> dict[Node, list[Node]]:
        """Each node's consumers, in order."""
        out: dict[Node, list[Node]] = {n: [] for n in self.nodes}
        for n in self.nodes:
            for x in n.inputs:
                if isinstance(x, Node):
                    out[x].append(n)
        return out

    def __str__(self) -> str:
        lines = []
        for n in self.nodes:
            attrs = ", ".join(f"{k}={v!r}" for k, v in n.attrs.items() if k != "generator")
            args = ", ".join(fmt_arg(x) for x in n.inputs)
            call = f"{n.label}({args}{', ' if args and attrs else ''}{attrs})" if n.kind == "op" else n.label
            lines.append(f"{n.name:>5} = {call:<48} # {list(n.shape)} {n.dtype.name}  {n.where}")
        lines.append(f"return {', '.join(o.name for o in self.outputs)}")
        return "\n".join(lines)
