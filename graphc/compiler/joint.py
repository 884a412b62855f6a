"""A compiled function whose result requires grad (`model = graphc.compile(model)`, with the loss and `backward()`
outside): its backward is captured too, into the same (joint) graph, which is then split into a forward graph and a
backward graph, the way AOTAutograd does it. The forward graph also returns what the backward reads of it (the
saved activations); the result of a replay carries a grad_fn that runs the backward plan on them and on the
incoming gradient, and hands the gradients to the leaves (parameters) like any autograd node."""
from __future__ import annotations

import numpy as np

from .. import autograd
from ..state import STATE
from ..tensor import Tensor
from .functionalization import viewed_by
from .ir import Graph, Node, ancestors


def record_backward(capture, outs: list[Tensor]) -> tuple | None:
    """Record the backward of outs (the returned tensors that require grad) into the capture's graph, with respect to
    the tensors the function read that require grad: leaves (parameters), and tensors made outside with a history
    of their own (a compiled block fed an embedding's output), whose gradient the replay's node hands on to their
    grad_fn, as AOTAutograd's does. Returns (those tensors, the holders of the incoming gradients, the gradient
    proxies), or None where none requires grad. GraphBreakError where the backward needs a tensor's value."""
    leaves = [t for t in capture.sources if t.requires_grad]
    if not leaves:
        return None
    holders = [Tensor._make(np.zeros(out._node.shape, out.dtype.np), out.dtype) for out in outs]
    grad_outs = [capture._proxy(capture.node_of(holder)) for holder in holders]
    STATE.capture, fullgraph = capture, capture.fullgraph
    capture.fullgraph = True  # a value the backward reads raises GraphBreakError rather than splitting the graph
    try:
        grads = autograd.run_backward(outs, grad_outs, retain_graph=True, inputs=leaves)
    finally:
        STATE.capture, capture.fullgraph = None, fullgraph
    return leaves, holders, grads


def backward_reaches_leaves(out: Tensor) -> bool:
    """Whether out's backward could still give a leaf a gradient: a path of unfreed nodes (a backward without
    retain_graph frees what it ran) from out.grad_fn to a leaf. A loss returned after the function's own backward(),
    or a value computed from such spent results (`output.mean()` after `errG.backward()`), reaches none: its
    backward can only raise, as torch's would, so a replay hands back the traced grad_fn."""
    seen, stack = set(), [out.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is autograd.LEAF:
            return True
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        if not isinstance(fn, autograd.Node):  # another kind of node: assume it can
            return True
        if fn.inputs is not None:
            stack.extend(fn.edges)
    return False


def has_hooks(out: Tensor) -> bool:
    """Whether a tensor hook is registered inside out's autograd graph (not on a leaf): the backward plan could not
    call it, so such a function gets no compiled backward."""
    seen, stack = set(), [out.grad_fn]
    while stack:
        fn = stack.pop()
        if not isinstance(fn, autograd.Node) or id(fn) in seen:
            continue
        seen.add(id(fn))
        if fn.hooks:
            return True
        stack.extend(fn.edges)
    return False


def autograd_proxies(out: Tensor) -> set[int]:
    """ids of the tensors out's autograd graph holds (saved for backward) and of the bases they view: kept alive by
    it, not by user state."""
    seen, ids, stack = set(), set(), [out.grad_fn]
    while stack:
        fn = stack.pop()
        if not isinstance(fn, autograd.Node) or id(fn) in seen:
            continue
        seen.add(id(fn))
        ids.update(id(v) for x in fn.held() if type(x) is Tensor for v in (x, *viewed_by(x)))
        stack.extend(fn.edges)
    return ids


class Split:
    """The joint graph cut in two. forward: the joint graph's inputs but the incoming gradients, returning `results`
    (the outputs that require grad first, then the other values the call hands back or writes), then the saved
    activations. backward: the saved values (activations, and inputs the backward reads), then the incoming
    gradients (one per output that requires grad), returning the leaves' gradients."""

    def __init__(self, joint: Graph, results: list[Node], grads: list[Node | None], grad_inputs: list[Node]):
        forward_nodes = set(ancestors(results))
        wanted = [g for g in grads if g is not None]
        incoming = set(grad_inputs)
        backward_nodes = [n for n in ancestors(wanted) if n not in forward_nodes and n not in incoming]
        saved = list(dict.fromkeys(
            [x for n in backward_nodes for x in n.inputs if type(x) is Node and x in forward_nodes] +
            [n for n in backward_nodes if n.kind == "input"] + [g for g in wanted if g in forward_nodes]))
        backward_nodes = [n for n in backward_nodes if n.kind != "input"]
        forward_inputs = [n for n in joint.inputs if n not in incoming]
        self.forward = Graph()
        copies = {n: self.forward.add("input", None, (), {}, n.shape, n.dtype, n.device) for n in forward_inputs}
        _copy([n for n in joint.nodes if n in forward_nodes], copies, self.forward)
        activations = [n for n in saved if n.kind != "input"]
        self.forward.outputs = [copies[n] for n in results] + [copies[n] for n in activations]
        # each saved value: ("input", position among the forward's inputs) or ("output", forward output position)
        self.saved = [("input", forward_inputs.index(n)) if n.kind == "input" else
                      ("output", len(results) + activations.index(n)) for n in saved]
        self.grad_positions = [joint.inputs.index(g) for g in grad_inputs]
        self.backward = Graph()
        copies = {n: self.backward.add("input", None, (), {}, n.shape, n.dtype, n.device)
                  for n in [*saved, *grad_inputs]}
        _copy(backward_nodes, copies, self.backward)
        self.backward.outputs = [copies[g] for g in wanted]
        self.has_grad = [g is not None for g in grads]


def _copy(nodes: list[Node], copies: dict[Node, Node], graph: Graph) -> None:
    for n in nodes:
        if n not in copies:
            copies[n] = graph.add(n.kind, n.op, tuple(copies[x] if type(x) is Node else x for x in n.inputs),
                                  n.attrs, n.shape, n.dtype, n.device, n.where, n.value)


class CompiledBackward:
    """The `op` of the grad_fn a replayed result carries: its backward runs the backward plan. With several outputs
    requiring grad, each output's grad_fn hands its gradient on (autograd's multi-output routing, as for a custom
    Function), and an output no gradient reached contributes zeros."""

    name = "compiled"
    # the node's own check covers nothing: `watched` holds exactly what the backward plan reads and a caller could
    # change (a leaf the backward does not read may be written before it, as torch allows)
    saved_inputs, saves_output, saves_cross = (), False, False

    def __init__(self, runtime, saved: list, has_grad: list[bool], leaves: list[Tensor], outputs: list,
                 watched: list[tuple[Tensor, int]]):
        self.runtime, self.saved, self.has_grad, self.leaves = runtime, saved, has_grad, leaves
        self.outputs = outputs  # the arrays of the outputs that require grad
        self.watched = watched  # (tensor, version) of the saved values the caller could write before backward

    def backward(self, node, grad) -> tuple:
        for t, version in self.watched:
            if t._version is not None and t._version.version != version:
                raise autograd.modified("compiled", "a saved value", t.shape, t.dtype, t._version, version, None)
        grads = grad.grads if isinstance(grad, autograd.OutputGrads) else {0: grad}
        incoming = [grads[i]._data if grads.get(i) is not None else np.zeros_like(out)
                    for i, out in enumerate(self.outputs)]
        outs = iter(self.runtime(self.saved + incoming))
        return tuple(Tensor._make(next(outs), leaf.dtype) if has else None
                     for leaf, has in zip(self.leaves, self.has_grad))
