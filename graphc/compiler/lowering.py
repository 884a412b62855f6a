"""How each IR node is computed by a plan: the one predicate fusion, codegen and explain share."""
from __future__ import annotations

from ..dispatch import MATMUL
from .ir import Node
from .views import view_kind


def reduce_dims(node: Node) -> tuple:
    """The dims of the node's (first) input that a reduction node reduces (its Lowering.reduce_dims)."""
    shapes = tuple(tuple(x.shape) if isinstance(x, Node) else None for x in node.inputs)
    return node.op.lowering.reduce_dims(shapes, **node.attrs)


def value_inputs(node: Node) -> list[Node]:
    """The inputs whose values node reads: its node inputs, less those its op reads only for their shape
    (Op.shape_inputs: sum_to's target is often a value nothing else reads, which a kernel would store only for it)."""
    skip = node.op.shape_inputs if node.kind == "op" else ()
    return [x for i, x in enumerate(node.inputs) if isinstance(x, Node) and i not in skip]


def copies_operand(node: Node) -> bool:
    """Whether node's value is its first operand's, unchanged (a reduction over no dims: the sum_to of a gradient that
    already has its target's shape)."""
    return lowering(node) == "pointwise" and node.op.lowering.reduce is not None and not reduce_dims(node) and \
        tuple(node.shape) == tuple(node.inputs[0].shape) and node.dtype is node.inputs[0].dtype


def lowering(node: Node) -> str:
    """How a node is computed: 'memory' (an input or constant), 'view' (index arithmetic), 'pointwise', 'reduction',
    'matmul', 'template' (a kernel) or 'fallback' (the op's numpy implementation, between kernels)."""
    if node.kind != "op":
        return "memory"
    if view_kind(node) is not None:
        return "view"
    low = node.op.lowering
    if low is not None and low.template is not None:
        return "template"
    if low is not None and low.reduce is not None and isinstance(node.inputs[0], Node):
        return "reduction" if reduce_dims(node) else "pointwise"  # a reduction over no dims is a copy
    if low is not None and low.expr is not None and (low.when is None or low.when(node.dtype, node.attrs)):
        return "pointwise"
    if node.op.category == MATMUL and all(isinstance(x, Node) and x.ndim >= 2 for x in node.inputs):
        return "matmul"
    return "fallback"


def fallback_reason(node: Node) -> str:
    """Why a node runs as a numpy step between kernels."""
    if node.op.category == MATMUL:
        return "matmul with a 1-d operand has no kernel template"
    if node.op.fallback:
        return node.op.fallback
    if node.op.lowering is not None and node.op.lowering.expr is not None:
        return f"{node.op.name} has no kernel lowering for {node.dtype.name} {node.attrs or ''}".rstrip()
    return f"no lowering for {node.op.category} op {node.op.name!r}"
