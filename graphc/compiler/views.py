"""Views in the compiler: which nodes are index arithmetic, the chain of views over a value, and applying a view
to a numpy array or a torch tensor (fusion, the runtime, explain and eager CUDA all use these)."""
from __future__ import annotations

import numpy as np

from .ir import Node

# view kinds (Lowering.view) that kernels compute as index arithmetic on their operand's memory
INDEX_MATH = {"reshape", "expand", "permute", "contiguous"}


def view_kind(node: Node) -> str | None:
    """The node's view kind when it is index arithmetic inside kernels, else None."""
    lowering = node.op.lowering if node.kind == "op" else None
    kind = lowering.view if lowering is not None else None
    return kind if kind in INDEX_MATH else None


def view_chain(x: Node) -> tuple[Node, list[Node]]:
    """The non-view node under a chain of views, and the views from it up to x."""
    chain = []
    while isinstance(x, Node) and view_kind(x) is not None:
        chain.append(x)
        x = x.inputs[0]
    return x, chain[::-1]


def apply_view(a, op, attrs: dict, shape: tuple):
    """The view op `op` (with attrs) giving `shape`, applied to a numpy array or a torch tensor a: shares a's
    memory as the op does, copying only where a reshape or contiguous needs it."""
    kind = op.lowering.view
    torch_tensor = type(a) is not np.ndarray
    if kind == "index":
        return op.forward(a, **attrs)  # ints, slices and None index numpy arrays and torch tensors alike
    if kind == "permute":
        return a.permute(attrs["dims"]) if torch_tensor else np.transpose(a, attrs["dims"])
    if kind == "expand":
        return a.expand(shape) if torch_tensor else np.broadcast_to(a, shape)
    if kind == "contiguous":
        return a.contiguous() if torch_tensor else np.asarray(a, order="C")  # (0-d stays 0-d)
    return a.reshape(shape)


def view_through(a, chain: list[Node], shapes: dict):
    """a (the value of the base of a view chain) seen through every view of chain, for this call's shapes."""
    for v in chain:
        a = apply_view(a, v.op, v.attrs, shapes[v])
    return a
