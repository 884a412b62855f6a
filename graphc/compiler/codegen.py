"""Codegen: fuse a graph, render each fused group as a kernel of the backend's renderer (render_triton*.py for
`triton` and `interpret`) and make the plan's steps; ops without a lowering become numpy fallback steps."""
from __future__ import annotations

from .fusion import Fusion, Group
from .ir import Graph, Node
from .lowering import fallback_reason
from .plan import Steps
from .runtime import FallbackStep, TritonKernelStep, ViewStep
from .views import view_chain


def plan_kernels(graph: Graph, backend: str = "interpret", mode: str = "default") -> Steps:
    """Fuse the graph and return its steps: one kernel step per group, fallback steps between them."""
    from . import render_triton

    fusion = Fusion(graph)
    steps = []
    for item in fusion.order():
        if isinstance(item, Group):
            source, name, signature, constexprs, module = render_triton.generate(item)
            steps.append(TritonKernelStep(item, source, name, backend, mode, module, signature, constexprs))
        else:
            steps.append(FallbackStep(item, fallback_reason(item), backend))
    for out in graph.outputs:
        if isinstance(out, Node) and out.kind == "op" and view_chain(out)[0] is not out:
            steps.append(ViewStep(out, "view", backend))
    return Steps(steps, fusion.reasons)
