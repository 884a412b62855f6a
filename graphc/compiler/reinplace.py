"""Reinplacing, as PyTorch's `reinplace` pass does it for functionalized graphs: capture turns every in-place update
into a value (graphc/compiler/functionalization.py), and the caller's tensor gets that new value copied in after the
plan ran. An optimizer step so copies every parameter and moment once more per call, and holds every new value
until the end of the plan. This pass lets the step that computes the new value of an input write it straight into
the input's memory instead, where nothing can tell the difference:

- the output is only written back (graph.mutated_inputs: the call hands it out nowhere else, not as a result, a
  .grad or an attribute, and no other output holds the same node);
- no value that may share the input's memory (the input, its views, results of steps that may return an operand's
  memory: `aliases`) is read by a later step or is an output, so the old value is dead once the step ran;
- the step itself reads those values only where writing cannot change what it reads (`Step.can_compute_into`: a
  numpy ufunc, which numpy makes correct for any overlap; a C kernel that reads the input at the element it writes,
  before writing it);
- the call's array can take the value (its shape, dtype and a layout without gaps, checked at each call: a step
  computes into new memory otherwise, and the write-back copies as before).

Inputs sharing memory with another input are never graph inputs of their own (capture makes them views of the one
covering them, or refuses to write them), so writing one input changes no other. A replay writes in place only when
the call's arrays share no memory with another input (Runtime.__call__); the first run of a plan, runs inside a
trace and mode='check' never do, so a failed run can still fall back to eager code on untouched inputs."""
from __future__ import annotations

from .ir import Graph, Node
from .plan import Step


def reinplace(graph: Graph, steps: list[Step]) -> None:
    """Let the steps computing the new values of inputs updated in place compute them into the inputs' memory, where
    that is safe (see the module docstring). Changes the steps (Step.compute_into); a plan built from them then keeps
    each such input alive until its step."""
    if not graph.mutated_inputs:
        return
    writer, last_read = {}, {}
    for i, step in enumerate(steps):
        for n in step.writes:
            writer[n] = i
        for n in step.reads:
            last_read[n] = i
    outputs = graph.outputs
    write_backs = set(graph.mutated_inputs.values())
    handed = {n for p, n in enumerate(outputs) if p not in write_backs}
    placed: set[Node] = set()
    for i, p in graph.mutated_inputs.items():
        source, node = graph.inputs[i], outputs[p]
        k = writer.get(node)
        if k is None or node in handed or node in placed:
            continue
        aliases = sharing_memory(source, steps)
        if aliases & set(outputs) or any(last_read.get(a, -1) > k for a in aliases):
            continue
        if steps[k].can_compute_into(node, source, aliases):
            steps[k].compute_into(node, source)
            placed.add(node)


def sharing_memory(source: Node, steps: list[Step]) -> set[Node]:
    """source and every value that may share its memory: what a step that may return an operand's memory (a view, a
    numpy fallback) computes from one of them."""
    out = {source}
    for step in steps:
        if not step.fresh and any(x in out for x in step.reads):
            out.update(step.writes)
    return out
