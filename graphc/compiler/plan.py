"""A plan: the ordered steps that compute a graph's outputs from its inputs. The numpy backend runs one step
per op; the Triton backends run one kernel step per fused group plus numpy fallback steps."""
from __future__ import annotations

from .ir import Graph, Node


class Step:
    """One unit of work: reads the values of some nodes and writes the values of others.

    role: "kernel" (a generated kernel's launch), "fallback" (an op run with numpy because it has no lowering)
    or "op" (an op run with numpy by the numpy backend). A kernel step also has .kind
    ("elementwise" | "reduction" | "matmul") and .source (its source text); a Triton one has .ptx(arch=90)."""

    role: str = "op"
    fresh = False  # whether its values are always new memory (never the memory of a value it reads)

    def __init__(self, reads: list[Node], writes: list[Node], nodes: list[Node]):
        self.reads, self.writes, self.nodes = reads, writes, nodes  # nodes: every IR node the step computes
        self.into: dict[Node, Node] = {}  # values computed straight into a graph input's memory (reinplace.py)

    def can_compute_into(self, node: Node, source: Node, aliases: set[Node]) -> bool:
        """Whether this step can compute its value `node` straight into the memory of graph input `source` (the
        reinplacing pass), given `aliases`, the values that may share that memory: it reads none of them except
        where writing there cannot change what it reads."""
        return False

    def compute_into(self, node: Node, source: Node) -> None:
        """From now on, compute `node` into `source`'s array, when a call's array can take it (its shape, dtype and
        a layout without gaps); into new memory otherwise."""
        self.into[node] = source
        if source not in self.reads:
            self.reads.append(source)

    @property
    def ops(self) -> list[str]:
        return [n.op.name for n in self.nodes if n.kind == "op"]

    def __call__(self, values: dict[Node, object], shapes: dict[Node, tuple]) -> None:
        """Compute self.writes into values, given values of self.reads and every node's shape for this call."""
        raise NotImplementedError


class Steps(list):
    """A plan's steps in execution order, the fusion pass's reasons for what it kept apart, the numpy plan's
    shared buffers (runtime.Buffers; None for other plans) and the cpu plan's library of C kernels (native.Library;
    None for other plans)."""

    def __init__(self, steps=(), reasons=(), buffers=None, library=None):
        super().__init__(steps)
        self.reasons = list(reasons)
        self.buffers, self.library = buffers, library


class Plan:
    """Steps in execution order over one graph, plus each step's dead values (freed after it runs)."""

    def __init__(self, graph: Graph, steps: list[Step]):
        self.graph, self.steps = graph, steps
        last_use: dict[Node, int] = {}
        for i, step in enumerate(steps):
            for n in step.reads:
                last_use[n] = i
        keep = set(graph.outputs)
        self.frees = [[n for n in step.reads if last_use[n] == i and n not in keep] for i, step in enumerate(steps)]

    @property
    def kernels(self) -> list[Step]:
        return [s for s in self.steps if s.role == "kernel"]


def describe_steps(steps: list[Step]) -> list[str]:
    """One line per step: its index, kind, ops and the user lines they come from (explain and GRAPHC_LOGS=fusion)."""
    lines = []
    for i, step in enumerate(steps):
        wheres = sorted({n.where for n in step.nodes if n.where})
        lines.append(f"  [{i}] {getattr(step, 'kind', step.role):<11} {' '.join(step.ops)}   ({', '.join(wheres)})")
    return lines
