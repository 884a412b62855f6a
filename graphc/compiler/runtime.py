"""Runtime: run a plan on numpy arrays. The numpy backend's plan is one step per op, each a precomputed call of the
op's numpy implementation (no dispatch, no autograd bookkeeping); values live in a dict keyed by node and are
dropped after their last use (Plan.frees). Sizes are not baked in: every call re-infers node shapes from the
input shapes (only when they change, and only for plans whose steps need them)."""
from __future__ import annotations

import numpy as np

from ..dispatch import VIEW
from ..dtypes import LOW_PRECISION
from .ir import Graph, Meta, Node
from .plan import Plan, Step


class OpStep(Step):
    """One op run by its numpy implementation, the output cast to the node's dtype as the eager dispatch does."""

    kind = "op"

    def __init__(self, node: Node):
        reads = list(dict.fromkeys(x for x in node.inputs if type(x) is Node))
        super().__init__(reads, [node], [node])
        self.run = _compile_call(node)

    def __call__(self, values: dict, shapes: dict | None) -> None:
        self.run(values)


def _compile_call(node: Node):
    """A closure computing node's value into values[node] from values of its inputs."""
    forward, attrs, want = node.op.forward, node.attrs, node.dtype.np
    getters = [(type(x) is Node, x) for x in node.inputs]
    low = node.op.category != VIEW and any(type(x) is Node and x.dtype in LOW_PRECISION for x in node.inputs)

    def run(values: dict) -> None:
        args = [values[x] if is_node else x for is_node, x in getters]
        if low:
            args = [a.astype(np.float32) if type(a) is np.ndarray and a.dtype.itemsize == 2 and a.dtype.kind in "fV"
                    else a for a in args]
        out = forward(*args, **attrs)
        if type(out) is not np.ndarray:
            out = np.asarray(out)
        if out.dtype != want:
            out = out.astype(want)
        values[node] = out
    return run


def numpy_steps(graph: Graph) -> list[Step]:
    """The numpy backend's plan: one step per op node."""
    return [OpStep(n) for n in graph.nodes if n.kind == "op"]


def infer_shapes(graph: Graph, input_shapes: list[tuple]) -> dict[Node, tuple]:
    """Every node's shape for inputs of these shapes (sizes are never baked into a plan)."""
    metas: dict[Node, Meta] = {}
    for node, shape in zip(graph.inputs, input_shapes):
        metas[node] = Meta(shape, node.dtype, node.device)
    for node in graph.nodes:
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
        self.needs_shapes = any(type(s) is not OpStep for s in plan.steps)
        self.schedule = [(s, s.run if type(s) is OpStep else None, tuple(free)) for s, free in zip(plan.steps, plan.frees)]
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
        return [values[n] for n in self.graph.outputs]

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
