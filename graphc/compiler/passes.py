"""Graph passes, each rewriting a Graph in place: dead code elimination, common subexpression elimination,
constant folding and transposed products. Graph inputs are never removed or merged (their positions are how a plan
is fed); outputs keep their positions. Impure ops (random draws: Op.pure False) are never merged, folded or
dropped, so they draw as eagerly as they would eagerly."""
from __future__ import annotations

import numpy as np

from ..dispatch import MATMUL
from .ir import Graph, Node
from .lowering import copies_operand
from .runtime import reference_values
from .views import view_kind


def eliminate_dead_code(graph: Graph) -> Graph:
    """Drop nodes that no output depends on (inputs and impure ops stay)."""
    live = set(graph.outputs)
    for node in reversed(graph.nodes):
        if node in live or node.kind == "input" or (node.kind == "op" and not node.op.pure):
            live.add(node)
            live.update(x for x in node.inputs if type(x) is Node)
    graph.nodes = [n for n in graph.nodes if n in live]
    return _renumber(graph)


def eliminate_common_subexpressions(graph: Graph) -> Graph:
    """Merge pure op nodes that apply the same op to the same operands with the same attrs."""
    seen: dict[tuple, Node] = {}
    same: dict[Node, Node] = {}
    kept = []
    for node in graph.nodes:
        if same:
            node.inputs = tuple(same.get(x, x) if type(x) is Node else x for x in node.inputs)
        key = _key(node) if node.kind == "op" and node.op.pure else None
        if key is not None and key in seen:
            same[node] = seen[key]
            continue
        if key is not None:
            seen[key] = node
        kept.append(node)
    graph.nodes = kept
    graph.outputs = [same.get(n, n) for n in graph.outputs]
    return _renumber(graph)


def fold_constants(graph: Graph) -> Graph:
    """Compute pure op nodes whose operands are all constants now; they become constants (DCE drops the rest)."""
    for node in graph.nodes:
        if node.kind == "op" and node.op.pure and node.inputs and \
                all(x.kind == "const" for x in node.inputs if type(x) is Node):
            value = reference_values(_one_op(node), [])[node]
            node.kind, node.op, node.inputs, node.attrs, node.value = "const", None, (), {}, value
    return graph


def transpose_products(graph: Graph) -> Graph:
    """Compute a 2-d matrix product that is only read transposed as the product of the transposed operands:
    (a b)^T = b^T a^T. A linear layer's weight gradient is (x^T g)^T; BLAS reads transposed operands at no cost,
    and the result then comes out in the layout its readers use (the .grad buffer, the optimizer's C-ordered
    moments), where the transposed view made every elementwise step combining it with them read across layouts
    (the numpy backend's steps 10-20x slower, a kernel's loads strided)."""
    from ..ops.view import permute

    users = {n: list(dict.fromkeys(us)) for n, us in graph.users().items()}
    outputs = set(graph.outputs)
    replace: dict[Node, Node] = {}
    before: dict[Node, list[Node]] = {}

    def transposed(x: Node, where: str) -> Node:
        if _transposes(x):
            return x.inputs[0]
        t = Node(-1, "op", permute, (x,), {"dims": (1, 0)}, tuple(x.shape[::-1]), x.dtype, x.device, where)
        before[m].append(t)
        return t

    for m in graph.nodes:
        if m.kind != "op" or m.op.category != MATMUL or m in outputs or m.ndim != 2 or \
                not all(type(x) is Node and x.ndim == 2 for x in m.inputs):
            continue
        last = m  # the product may pass through copies (a sum_to over no dims) before its transposes
        while len(users[last]) == 1 and last not in outputs and copies_operand(users[last][0]):
            last = users[last][0]
        if last in outputs or not users[last] or not all(_transposes(u) for u in users[last]):
            continue
        before[m] = []
        a, b = m.inputs
        m.inputs, m.shape = (transposed(b, m.where), transposed(a, m.where)), tuple(m.shape[::-1])
        replace.update((u, m) for u in users[last])
    if not replace:
        return graph
    nodes = []
    for node in graph.nodes:
        nodes += before.get(node, [])
        node.inputs = tuple(replace.get(x, x) if type(x) is Node else x for x in node.inputs)
        nodes.append(node)
    graph.nodes = nodes
    graph.outputs = [replace.get(n, n) for n in graph.outputs]
    return eliminate_dead_code(graph)


def _transposes(node: Node) -> bool:
    """Whether node is the transpose of a 2-d value (a view)."""
    return view_kind(node) == "permute" and node.attrs["dims"] == (1, 0)


def elide_copies(graph: Graph) -> Graph:
    """Drop a copy (Lowering.copy: clone) of a matrix product or a kernel template's result that nothing else reads:
    the product or the template writes a buffer of its own, so the copy is that buffer. Autograd delivers a leaf's
    gradient into .grad as such a copy: a template cannot take it as an epilogue (it would cost a kernel), and a
    weight's gradient, a product, was copied once more per step (16 MB for a 2048x2048 layer)."""
    users = graph.users()
    outputs = set(graph.outputs)
    same: dict[Node, Node] = {}
    for node in graph.nodes:
        x = node.inputs[0] if node.kind == "op" and node.inputs else None
        if type(x) is Node and node.op.lowering is not None and node.op.lowering.copy and x.kind == "op" and \
                (x.op.category == MATMUL or x.op.lowering is not None and x.op.lowering.template is not None) and \
                users[x] == [node] and x not in outputs and x.dtype is node.dtype and x.shape == node.shape:
            same[node] = x
    if same:
        for node in graph.nodes:
            node.inputs = tuple(same.get(x, x) if type(x) is Node else x for x in node.inputs)
        graph.outputs = [same.get(n, n) for n in graph.outputs]
    return graph


def optimize(graph: Graph) -> Graph:
    """The pass pipeline run before planning."""
    return eliminate_dead_code(elide_copies(transpose_products(fold_constants(
        eliminate_common_subexpressions(graph)))))


def _one_op(node: Node) -> Graph:
    g = Graph()
    g.nodes = [x for x in node.inputs if type(x) is Node] + [node]
    return g


def _key(node: Node) -> tuple | None:
    """A hashable identity of an op application, or None when an operand or attr cannot be compared safely."""
    try:
        operands = tuple(("node", id(x)) if type(x) is Node else ("value", type(x), x) for x in node.inputs)
        key = (node.op.name, operands, tuple(sorted(node.attrs.items())), node.dtype)
        hash(key)
    except TypeError:
        return None
    if any(isinstance(v, np.ndarray) for v in node.attrs.values()):
        return None
    return key


def _renumber(graph: Graph) -> Graph:
    for i, node in enumerate(graph.nodes):
        node.id = i
    return graph
