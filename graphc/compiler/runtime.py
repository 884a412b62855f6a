"""Runtime: run a plan on numpy arrays. The numpy backend's plan is one step per op, each a precomputed call of the
op's numpy implementation (no dispatch, no autograd bookkeeping); values live in a dict keyed by node and are
dropped after their last use (Plan.frees). Sizes are not baked in: every call re-infers node shapes from the
input shapes (only when they change, and only for plans whose steps need them)."""
from __future__ import annotations

import functools

import numpy as np

from ..dispatch import VIEW
from ..dtypes import LOW_PRECISION
from .ir import Graph, Meta, Node
from .plan import Plan, Step


class OpStep(Step):
    """One op run by its numpy implementation, the output cast to the node's dtype as the eager dispatch does."""

    kind = "op"

    def __init__(self, node: Node, reuse_buffer: bool = False):
        reads = list(dict.fromkeys(x for x in node.inputs if type(x) is Node))
        super().__init__(reads, [node], [node])
        self.run = _compile_buffered(node) if reuse_buffer else _compile_call(node)

    def __call__(self, values: dict, shapes: dict | None) -> None:
        self.run(values)


def _compile_call(node: Node):
    """A closure computing node's value into values[node] from values of its inputs (arity-specialised: this is
    the numpy backend's inner loop)."""
    forward, attrs, want = node.op.forward, node.attrs, node.dtype.np
    fn = functools.partial(forward, **attrs) if attrs else forward
    inputs = node.inputs
    kinds = tuple(type(x) is Node for x in inputs)
    low = node.op.category != VIEW and any(type(x) is Node and x.dtype in LOW_PRECISION for x in inputs)

    def finish(out) -> np.ndarray:
        if type(out) is not np.ndarray:
            out = np.asarray(out)
        return out if out.dtype is want or out.dtype == want else out.astype(want)

    if low:
        def run(values: dict) -> None:
            args = [values[x] if is_node else x for is_node, x in zip(kinds, inputs)]
            values[node] = finish(fn(*[a.astype(np.float32) if type(a) is np.ndarray and a.dtype.itemsize == 2 and
                                       a.dtype.kind in "fV" else a for a in args]))
    elif kinds == (True,):
        (a,) = inputs

        def run(values: dict) -> None:
            values[node] = finish(fn(values[a]))
    elif kinds == (True, True):
        a, b = inputs

        def run(values: dict) -> None:
            values[node] = finish(fn(values[a], values[b]))
    elif kinds == (True, False):
        a, b = inputs

        def run(values: dict) -> None:
            values[node] = finish(fn(values[a], b))
    elif kinds == (False, True):
        a, b = inputs

        def run(values: dict) -> None:
            values[node] = finish(fn(a, values[b]))
    else:
        def run(values: dict) -> None:
            values[node] = finish(fn(*[values[x] if is_node else x for is_node, x in zip(kinds, inputs)]))
    return run


def memory(node: Node) -> Node:
    """The node whose buffer node's value lives in (views lead to their base)."""
    while node.kind == "op" and node.op.category == VIEW:
        node = node.inputs[0]
    return node


def _is_ufunc(node: Node) -> bool:
    return node.kind == "op" and isinstance(node.op.forward, np.ufunc)


def _compile_buffered(node: Node):
    """A same-dtype ufunc writing into a buffer the step keeps from call to call (out=), reallocated only when the
    shape changes. The output shape is an operand's shape (same-shape operands, or one operand and a scalar)."""
    forward, want, inputs = node.op.forward, node.dtype.np, node.inputs
    cell = [None]

    def buffer(shape: tuple) -> np.ndarray:
        buf = cell[0]
        if buf is None or buf.shape != shape:
            buf = cell[0] = np.empty(shape, want)
        return buf

    if len(inputs) == 1:
        (a,) = inputs

        def run(values: dict) -> None:
            x = values[a]
            values[node] = forward(x, out=buffer(x.shape))
        return run
    a, b = inputs
    fallback = _compile_call(node)
    if type(a) is Node and type(b) is Node:
        def run(values: dict) -> None:
            x, y = values[a], values[b]
            if x.shape != y.shape:
                return fallback(values)
            values[node] = forward(x, y, out=buffer(x.shape))
    elif type(a) is Node:
        def run(values: dict) -> None:
            x = values[a]
            values[node] = forward(x, b, out=buffer(x.shape))
    else:
        def run(values: dict) -> None:
            y = values[b]
            values[node] = forward(a, y, out=buffer(y.shape))
    return run


def reusable_buffers(graph: Graph) -> set[Node]:
    """Nodes whose value can live in a buffer reused across calls: computed by a ufunc from operands of the same
    dtype (or Python scalars), read only by ufuncs and matmuls (which never alias their operands), and never a graph
    output (outputs reach the caller)."""
    users: dict[Node, list[Node]] = {n: [] for n in graph.nodes}
    for n in graph.nodes:
        for x in n.inputs:
            if type(x) is Node:
                users[x].append(n)
    outputs = set(graph.outputs)
    return {n for n in graph.nodes if _is_ufunc(n) and n not in outputs and not n.attrs and users[n]
            and 1 <= len(n.inputs) <= 2 and any(type(x) is Node for x in n.inputs)
            and all(x.dtype is n.dtype for x in n.inputs if type(x) is Node)
            and all(type(x) in (int, float, bool) for x in n.inputs if type(x) is not Node)
            and n.dtype not in LOW_PRECISION
            and all(_is_ufunc(u) or u.op.category == "matmul" for u in users[n])}


def numpy_steps(graph: Graph) -> list[Step]:
    """The numpy backend's plan: one step per op node; intermediates of ufuncs reuse their buffers across calls."""
    reuse = reusable_buffers(graph)
    return [OpStep(n, n in reuse) for n in graph.nodes if n.kind == "op"]


def infer_shapes(graph: Graph, input_shapes: list[tuple]) -> dict[Node, tuple]:
    """Every node's shape for inputs of these shapes (sizes are never baked into a plan)."""
    return propagate_shapes(graph.nodes, dict(zip(graph.inputs, input_shapes)))


def propagate_shapes(nodes: list[Node], known: dict[Node, tuple]) -> dict[Node, tuple]:
    """The shapes of nodes (in topological order) given those of the input nodes among them."""
    metas = {node: Meta(shape, node.dtype, node.device) for node, shape in known.items()}
    for node in nodes:
        if node.kind == "const":
            metas[node] = Meta(np.shape(node.value), node.dtype, node.device)
        elif node.kind == "op":
            args = [metas[x] if type(x) is Node else x for x in node.inputs]
            metas[node] = Meta(node.op.infer(*args, **node.attrs)[0], node.dtype, node.device)
    return {n: m.shape for n, m in metas.items()}


class Runtime:
    """A compiled plan, callable on input arrays (in graph.inputs order); returns output arrays (graph.outputs)."""

    def __init__(self, plan: Plan):
        self.plan, self.graph = plan, plan.graph
        self.consts = {n: n.value for n in plan.graph.nodes if n.kind == "const"}
        self.const_outputs = [i for i, n in enumerate(plan.graph.outputs) if memory(n).kind == "const"]
        self.needs_shapes = any(type(s) is not OpStep for s in plan.steps)
        self.schedule = [(s, s.run if type(s) is OpStep else None, tuple(free))
                         for s, free in zip(plan.steps, plan.frees)]
        self._last_shapes: tuple | None = None
        self._shapes: dict | None = None

    def shapes_for(self, arrays: list) -> dict | None:
        if not self.needs_shapes:
            return None
        key = tuple(a.shape for a in arrays)
        if key != self._last_shapes:
            self._last_shapes, self._shapes = key, infer_shapes(self.graph, list(key))
        return self._shapes

    def __call__(self, arrays: list) -> list:
        values = self.run_all(arrays, free=True)
        outs = [values[n] for n in self.graph.outputs]
        for i in self.const_outputs:  # constants stay the plan's own: callers get copies they may write to
            outs[i] = outs[i].copy()
        return outs

    def run_all(self, arrays: list, free: bool = False) -> dict[Node, object]:
        """Run the plan; every node's value is kept unless `free`, which drops each after its last use."""
        values = dict(self.consts)
        values.update(zip(self.graph.inputs, arrays))
        shapes = self.shapes_for(arrays)
        for step, run, dead in self.schedule:
            if run is not None:
                run(values)
            else:
                step(values, shapes)
            if free:
                for n in dead:
                    del values[n]
        return values


def reference_values(graph: Graph, arrays: list, given: dict | None = None) -> dict[Node, np.ndarray]:
    """Every node's value computed op by op (the eager semantics a plan must match; mode='check'). `given` supplies
    the values of random ops, which would draw anew."""
    values = {n: n.value for n in graph.nodes if n.kind == "const"}
    values.update(zip(graph.inputs, arrays))
    for node in graph.nodes:
        if node.kind == "op":
            if given and node in given:
                values[node] = given[node]
            else:
                _compile_call(node)(values)
    return values
