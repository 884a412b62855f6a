"""graphc.explain: capture a function (running it once on CPU), plan it for the Triton backend and report kernels,
fallbacks, graph breaks, the fusion pass's reasons and modelled memory traffic (against one kernel per op)."""
from __future__ import annotations

import math
from collections.abc import Callable

from .codegen import plan_kernels
from .compile import CompiledFunction
from .ir import Graph, Node
from .lowering import fallback_reason, lowering
from .plan import Step, Steps, describe_steps
from .runtime import Runtime, memory


class OpKernel(Step):
    """One op as its own kernel: what a plan looks like before fusion (counted, never generated)."""

    role = "kernel"

    def __init__(self, node: Node):
        super().__init__([x for x in dict.fromkeys(node.inputs) if type(x) is Node], [node], [node])
        self.kind = {"pointwise": "elementwise"}.get(lowering(node), lowering(node))


class Fallback(Step):
    role = "fallback"


def unfused_steps(graph: Graph) -> list[Step]:
    """One kernel per lowered op; views are index arithmetic (no step); the rest are numpy fallbacks."""
    steps: list[Step] = []
    for node in graph.nodes:
        how = lowering(node)
        if how in ("memory", "view"):
            continue
        if how != "fallback":
            steps.append(OpKernel(node))
        else:
            steps.append(Fallback([x for x in node.inputs if type(x) is Node], [node], [node]))
    return steps


def nbytes(node: Node) -> int:
    return math.prod(node.shape) * node.dtype.itemsize


def step_bytes(steps: list[Step]) -> int:
    """Each step reads each input buffer once and writes each output once."""
    total = 0
    for step in steps:
        total += sum(nbytes(n) for n in dict.fromkeys(memory(x) for x in step.reads))
        total += sum(nbytes(n) for n in step.writes)
    return total


def ideal_bytes(graph: Graph) -> int:
    """Graph inputs read once plus outputs written once."""
    used = {memory(x) for n in graph.nodes if n.kind == "op" for x in n.inputs if type(x) is Node}
    used |= {memory(o) for o in graph.outputs}
    read = sum(nbytes(n) for n in graph.nodes if n.kind in ("input", "const") and n in used)
    return read + sum(nbytes(o) for o in dict.fromkeys(graph.outputs) if memory(o).kind == "op")


class Report:
    """What graphc.explain found: see API.md ('Compiler') for the fields."""

    def __init__(self, name: str, graphs: list[Graph], plans: list[Steps], breaks: list[tuple[str, str]]):
        self.name, self.graphs, self.graph_breaks = name, graphs, list(breaks)
        steps = [s for plan in plans for s in plan]
        self.kernels = [s for s in steps if s.role == "kernel"]
        self.fallbacks = [(n.op.name, fallback_reason(n)) for s in steps if s.role == "fallback" for n in s.nodes
                          if n.kind == "op"]
        unfused = [s for g in graphs for s in unfused_steps(g)]
        self.fusion_notes = list(dict.fromkeys(r for plan in plans for r in plan.reasons))
        self.num_kernels = len(self.kernels)
        self._c_source: str | None = None
        self.num_unfused_kernels = sum(1 for s in unfused if s.role == "kernel")
        self.bytes_moved = step_bytes(steps)
        self.bytes_moved_unfused = step_bytes(unfused)
        self.bytes_ideal = sum(ideal_bytes(g) for g in graphs)

    @property
    def c_source(self) -> str:
        """The same kernels rendered as C for the cpu backend: one translation unit (rendered, not compiled). Kernel
        templates are not C: the cpu backend runs them with numpy and BLAS (render_c_attention.py)."""
        if self._c_source is None:
            from . import render_c

            kernels = [render_c.generate(k.group) for k in self.kernels if k.kind != "template"]
            self._c_source = render_c.render_unit(kernels, [k.name for k in kernels])
        return self._c_source

    def __str__(self) -> str:
        lines = [f"graphc.explain({self.name}): {len(self.graphs)} graph(s), {len(self.graph_breaks)} graph break(s)"]
        for reason, where in self.graph_breaks:
            lines.append(f"  break at {where}: {reason}")
        for i, graph in enumerate(self.graphs):
            lines.append(f"graph {i}:")
            lines += ["  " + line for line in str(graph).splitlines()]
        lines.append(f"kernels: {self.num_kernels} (unfused: {self.num_unfused_kernels})")
        lines += describe_steps(self.kernels)
        lines.append(f"fallbacks: {len(self.fallbacks)}")
        lines += [f"  {name}: {reason}" for name, reason in self.fallbacks]
        if self.fusion_notes:
            lines.append("fusion notes:")
            lines += [f"  {note}" for note in self.fusion_notes]
        lines.append(f"bytes moved: {self.bytes_moved:,} (unfused {self.bytes_moved_unfused:,}, ideal "
                     f"{self.bytes_ideal:,})")
        return "\n".join(lines)

    __repr__ = __str__


def explain(fn: Callable, *args, **kwargs) -> Report:
    """Capture fn on these arguments (it runs once, on CPU, with numpy), plan each graph for the Triton backend
    and report. Nothing runs on a GPU."""
    target = fn.fn if isinstance(fn, CompiledFunction) else fn
    compiled = CompiledFunction(target, backend="numpy")
    runtimes: list[Runtime] = []
    compiled.observer = lambda runtime, arrays: runtimes.append(runtime)
    compiled.compiled_backward = False  # the graph as traced, not split into a forward and a backward plan
    compiled(*args, **kwargs)
    graphs = [r.graph for r in runtimes]
    plans = [plan_kernels(g, "triton") for g in graphs]
    return Report(getattr(target, "__name__", "fn"), graphs, plans, compiled.last_breaks)
