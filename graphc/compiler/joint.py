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
from ..topological import postorder
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
        grads = autograd.run_backward(outs, grad_outs, retain_graph=True, inputs=leaves, inputs_as_leaves=True)
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


def has_hooks(out: Tensor, sources: list[Tensor]) -> bool:
    """Whether a tensor hook is registered inside out's autograd graph (not on a leaf, nor in the graph that made a
    non-leaf among the sources, which the caller's backward runs): the backward plan could not call it, so such a
    function gets no compiled backward."""
    seen, stack = {id(t.grad_fn) for t in sources if t.grad_fn is not None}, [out.grad_fn]
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
        self.saved_nodes = saved  # the joint graph's node of each
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


def reaches(outs: list[Tensor], leaves: list[Tensor]) -> tuple[list[frozenset[int]], list[frozenset[int]]]:
    """For each of outs (the traced results requiring grad, their autograd graph intact): the positions in leaves
    (the tensors the backward plan gives gradients to) that its backward reaches, and the positions of the outs
    whose backward shares an autograd node with its own (eagerly, a backward without retain_graph from one frees
    what the other needs; apart, each can be backpropagated on its own, as eagerly)."""
    leaf_of = {id(t): k for k, t in enumerate(leaves) if t.grad_fn is None}
    made_by = {id(t.grad_fn): k for k, t in enumerate(leaves) if t.grad_fn is not None}
    nodes, reached = [], []
    for out in outs:
        seen, found, stack = set(), set(), [out.grad_fn]
        while stack:
            fn = stack.pop()
            if id(fn) in made_by:  # a non-leaf input: the caller's graph, beyond the compiled function
                found.add(made_by[id(fn)])
            elif isinstance(fn, autograd.Node) and id(fn) not in seen:
                seen.add(id(fn))
                for x, edge in zip(fn.inputs or (None,) * len(fn.edges), fn.edges):
                    if edge is autograd.LEAF and id(x) in leaf_of:
                        found.add(leaf_of[id(x)])
                    elif edge is not None and edge is not autograd.LEAF:
                        stack.append(edge)
        nodes.append(seen)
        reached.append(frozenset(found))
    return reached, [frozenset(j for j, other in enumerate(nodes) if mine & other) for mine in nodes]


class CompiledBackward:
    """The `op` of the grad_fn a replayed result carries: its backward runs the backward plan. With several outputs
    requiring grad, each output's grad_fn hands its gradient on (autograd's multi-output routing, as for a custom
    Function), and an output no gradient reached contributes zeros; a leaf that no output reached by this backward
    reaches gets no gradient (None, as eagerly), and an output whose backward shares nothing with the outputs already
    backpropagated can be backpropagated later on its own (two heads, two `backward()` calls), as eagerly.
    With create_graph=True (double backward: a gradient penalty) the joint graph runs op by op through the eager
    dispatch instead, from the forward's inputs, so the gradients have a history."""

    name = "compiled"
    # the node's own check covers nothing: `watched` holds exactly what the backward plan reads and a caller could
    # change (a leaf the backward does not read may be written before it, as torch allows)
    saved_inputs, saves_output, saves_cross = (), False, False

    def __init__(self, entry, saved: list, leaves: list[Tensor], outputs: list, watched: list[tuple[Tensor, int]],
                 inputs: list[tuple[Tensor, np.ndarray, int]]):
        self.entry, self.saved, self.leaves = entry, saved, leaves
        self.outputs = outputs  # the arrays of the outputs that require grad
        self.watched = watched  # (tensor, version) of the saved values the caller could write before backward
        self.inputs = inputs  # the forward's inputs (tensor, array, version), for a backward with create_graph
        self.freed: set[int] = set()  # outputs whose backward ran without retain_graph
        self.ran: set[int] = set()  # the outputs the last backward started from

    def backward(self, node, grad) -> tuple:
        grads = grad.grads if isinstance(grad, autograd.OutputGrads) else {0: grad}
        ran = {i for i, g in grads.items() if g is not None}
        if any(self.entry.shares[i] & self.freed for i in ran):
            raise RuntimeError("Trying to backward through the graph a second time (CompiledBackward): its saved "
                               "tensors were freed; pass retain_graph=True to the first backward")
        for t, version in self.watched:
            if t._version is not None and t._version.version != version:
                raise autograd.modified("compiled", "a saved value", t.shape, t.dtype, t._version, version, None)
        self.ran = ran
        reached = set().union(*(self.entry.reached[i] for i in ran))
        if STATE.grad_enabled:  # create_graph=True
            found = self._differentiable_backward(grads)
        else:
            incoming = [grads[i]._data if grads.get(i) is not None else np.zeros_like(out)
                        for i, out in enumerate(self.outputs)]
            outs = iter(self.entry.backward(self.saved + incoming))
            found = [Tensor._make(next(outs), leaf.dtype) if has else None
                     for leaf, has in zip(self.leaves, self.entry.split.has_grad)]
        return tuple(g if k in reached else None for k, g in enumerate(found))

    def _differentiable_backward(self, grads: dict) -> list:
        """The leaves' gradients with a history: the joint graph's gradients computed op by op through the eager
        dispatch from the forward's inputs (a tensor requiring grad as itself, so the history leads to it). An input
        the gradients depend on that was written in place since the forward, or a random op among what they depend
        on, would give other values than the forward's: a RuntimeError naming it."""
        from ..dispatch import dispatch

        graph, split = self.entry.runtime.graph, self.entry.split
        given = iter(self.inputs)
        forward_inputs = {node: next(given) for i, node in enumerate(graph.inputs) if i not in split.grad_positions}
        values = {graph.inputs[p]: grads[k] if grads.get(k) is not None else
                  Tensor._make(np.zeros_like(self.outputs[k]), graph.inputs[p].dtype)
                  for k, p in enumerate(split.grad_positions)}
        for n, array in zip(split.saved_nodes, self.saved):
            if n.kind == "op" and not n.op.pure:  # a draw the forward made (a dropout mask): its value; no gradient
                values[n] = Tensor._make(array, n.dtype)
        wanted = [g for g in self.entry.grad_nodes if g is not None]
        for n in postorder(wanted, lambda n: () if n in values else [x for x in n.inputs if type(x) is Node]):
            if n in values:
                continue
            if n.kind == "input":
                t, array, version = forward_inputs[n]
                if t._version_number != version:
                    raise autograd.modified("compiled", "an input", t.shape, t.dtype, t._version, version, None)
                values[n] = t if t.requires_grad else Tensor._make(array, t.dtype)
            elif n.kind == "const":
                values[n] = Tensor._make(n.value, n.dtype)
            elif not n.op.pure:
                raise RuntimeError(f"backward with create_graph=True through {self.entry.name}, a compiled forward "
                                   f"that draws random numbers ({n.op.name} at {n.where}) its backward does not "
                                   "keep: its gradients would be computed with new draws; compile it with "
                                   "mode='eager' for double backward")
            else:
                values[n] = dispatch(n.op, tuple(values[x] if type(x) is Node else x for x in n.inputs), n.attrs)
        return [None if g is None else values[g] for g in self.entry.grad_nodes]

    def release(self) -> bool:
        """After a backward without retain_graph: the outputs it started from are spent; once no output can be
        backpropagated again, the saved values are dropped (True: release the node)."""
        self.freed |= self.ran
        if all(self.entry.shares[i] & self.freed for i in range(len(self.outputs))):
            self.saved = self.inputs = None
            return True
        return False


class CompiledNode(autograd.Node):
    """The grad_fn of a replayed result (its op a CompiledBackward): freed once every output was backpropagated."""

    __slots__ = ()

    def release(self) -> None:
        if self.op.release():
            super().release()
