"""Codegen: fuse a graph, render each fused group as a kernel of the backend's renderer (render_triton*.py for
`triton` and `interpret`, render_c.py for `cpu`) and make the plan's steps; ops without a lowering become numpy
fallback steps."""
from __future__ import annotations

from .fusion import Fusion, Group
from .ir import Graph, Node
from .lowering import fallback_reason
from .plan import Steps
from .runtime import CKernelStep, FallbackStep, TemplateStep, TritonKernelStep, ViewStep
from .views import view_chain


def plan_kernels(graph: Graph, backend: str = "interpret", mode: str = "default") -> Steps:
    """Fuse the graph and return its steps: one kernel step per group, fallback steps between them. For `cpu`, every
    kernel goes into one C translation unit, built in the background once requested (mode='max-autotune' waits for
    it: tiered.py)."""
    fusion = Fusion(graph)
    order = fusion.order()
    library = None
    if backend == "cpu":
        from . import native, render_c

        kernels = {g: render_c.generate(g) for g in order if isinstance(g, Group) and g.kind != "template"}
        modules = [render_c.template_module(g) for g in order if isinstance(g, Group) and g.kind == "template"]
        templates = tuple(dict.fromkeys(m.SOURCE for m in modules if m is not None))
        library = native.library(list(kernels.values()), mode == "max-autotune", templates) \
            if kernels or templates else None
    else:
        from . import render_triton
    steps, joined = [], set()
    for item in order:
        if not isinstance(item, Group):
            steps.append(FallbackStep(item, fallback_reason(item), backend))
        elif item in joined:
            continue
        elif backend == "cpu" and item.kind == "template":
            module = render_c.template_module(item)
            if module is not None:  # with the later groups its module computes in the same step
                partners = [g for g in order if isinstance(g, Group) and g.kind == "template" and g is not item
                            and g not in joined and module.joins(item, g)]
                joined.update(partners)
                steps.append(TemplateStep([item, *partners], module,
                                          f"kernel template {item.template} runs with C and BLAS", library))
            else:
                why = f"kernel template {item.template} has no cpu renderer"
                steps += [FallbackStep(n, why, backend) for n in item.nodes]
        elif backend == "cpu":
            steps.append(CKernelStep(kernels[item], library))
        else:
            source, name, signature, constexprs, module = render_triton.generate(item)
            steps.append(TritonKernelStep(item, source, name, backend, mode, module, signature, constexprs))
    for out in graph.outputs:
        if isinstance(out, Node) and out.kind == "op" and view_chain(out)[0] is not out:
            steps.append(ViewStep(out, "view", backend))
    return Steps(steps, fusion.reasons, library=library)
