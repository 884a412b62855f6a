"""Graph passes, each rewriting a Graph in place: dead code elimination, common subexpression elimination and
constant folding. Graph inputs are never removed or merged (their positions are how a plan is fed); outputs keep
their positions. Impure ops (random draws: Op.pure False) are never merged, folded or dropped, so they draw as
eagerly as they would eagerly."""
from __future__ import annotations

import numpy as np

from .ir import Graph, Node
from .runtime import reference_values


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


def optimize(graph: Graph) -> Graph:
    """The pass pipeline run before planning."""
    return eliminate_dead_code(fold_constants(eliminate_common_subexpressions(graph)))


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
