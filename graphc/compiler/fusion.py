"""Fusion: partition a graph's op nodes into groups that each become one Triton kernel.

A group has one iteration space (a shape S). Its members compute values "in registers" at each index of S;
values it reads from memory (graph inputs, other groups' outputs) are loaded through their view chains as
index arithmetic. Kinds: "elementwise" (pointwise ops with broadcasting), "reduction" (pointwise ops around
reductions over the same dims of S: softmax, norms, cross-entropy) and "matmul" (one matmul and its pointwise
epilogue). Ops with no lowering become fallback steps. Every decision that splits a pattern is kept as a reason."""
from __future__ import annotations

import networkx as nx

from ..dispatch import ELEMENTWISE, MATMUL, REDUCTION, VIEW
from .ir import Graph, Node

RESHAPES = {"reshape", "view", "reshape_as", "view_as", "unsqueeze", "squeeze", "flatten", "contiguous"}
EXPANDS = {"expand", "expand_as"}


class Group:
    """Nodes fused into one kernel. canon[n]: n's shape aligned to the iteration space (1 where n does not vary)."""

    def __init__(self, id: int, kind: str, space: tuple, anchor: Node):
        self.id, self.kind, self.space, self.anchor = id, kind, tuple(space), anchor
        self.nodes: list[Node] = []
        self.canon: dict[Node, tuple] = {}
        self.dims: tuple = ()  # reduced dims of the space (reduction groups)
        self.outer: list[Node] = []  # reductions over all rows (combined across programs with atomics)
        self.outer_deps: set[Node] = set()  # members computed from those: known only after the last row
        self.outputs: list[Node] = []  # members read outside the group
        self.loads: list[tuple] = []  # (value read from memory, row consumer or None): see Fusion.load_key
        self.rowplaced: set[Node] = set()  # members shaped like a row index (a reduction without keepdim)
        self.permuted: dict[Node, list[Node]] = {}  # clone(permute(v)) outputs: v stored through the permutation

    @property
    def matmul(self) -> Node:
        """A matmul group's matmul node (its other members are the epilogue)."""
        return next(n for n in self.nodes if n.op.category == MATMUL)

    def __repr__(self) -> str:
        return f"<Group {self.id} {self.kind} {list(self.space)} {[n.op.name for n in self.nodes]}>"


def row_canon(g: Group) -> tuple:
    """How a per-row value of a reduction group sits in its space: 1 along the reduced dims."""
    return tuple(1 if d in g.dims else s for d, s in enumerate(g.space))


def row_shape(g: Group) -> tuple:
    return tuple(s for d, s in enumerate(g.space) if d not in g.dims)


def padded(shape: tuple, rank: int) -> tuple:
    return (1,) * (rank - len(shape)) + tuple(shape)


def nonones(shape: tuple) -> list:
    return [n for n in shape if n != 1]


def broadcastable(shape: tuple, space: tuple) -> bool:
    return len(shape) <= len(space) and all(a in (1, b) for a, b in zip(padded(shape, len(space)), space))


def reduce_dims(node: Node) -> tuple:
    """The dims of the node's (first) input that a reduction node reduces."""
    x = node.inputs[0]
    if node.op.name == "sum_to":
        target = padded(node.inputs[1].shape, x.ndim)
        lead = x.ndim - node.inputs[1].ndim
        return tuple(d for d in range(x.ndim) if target[d] == 1 and (d < lead or x.shape[d] != 1))
    return tuple(node.attrs["dim"])


def lowering(node: Node) -> str:
    """How a node is computed: 'memory', 'view', 'pointwise', 'reduction', 'matmul' or 'fallback'."""
    if node.kind != "op":
        return "memory"
    op = node.op
    if op.category == VIEW and (op.name in RESHAPES or op.name in EXPANDS or op.name == "permute"):
        return "view"
    if op.triton is not None and op.category == REDUCTION and all(isinstance(x, Node) for x in node.inputs[:1]):
        return "reduction" if reduce_dims(node) else "pointwise"  # sum_to over no dims is a copy
    if op.triton is not None and op.category != REDUCTION:
        return "pointwise"
    if op.category == MATMUL and all(isinstance(x, Node) and x.ndim >= 2 for x in node.inputs):
        return "matmul"
    return "fallback"


def fallback_reason(node: Node) -> str:
    if node.op.category == MATMUL:
        return "matmul with a 1-d operand has no Triton template"
    if node.op.fallback:
        return node.op.fallback
    return f"no Triton lowering for {node.op.category} op {node.op.name!r}"


def load_key(g: Group, x: Node, consumer: Node) -> tuple:
    """How consumer reads x from memory: aligned with the space (x, None), or with a per-row consumer's shape,
    whose dims are the space's kept dims (x, consumer)."""
    return (x, consumer if consumer in g.rowplaced and lowering(consumer) != "reduction" else None)


def view_chain(x: Node) -> tuple[Node, list[Node]]:
    """The non-view node under a chain of views, and the views from it up to x."""
    chain = []
    while isinstance(x, Node) and lowering(x) == "view":
        chain.append(x)
        x = x.inputs[0]
    return x, chain[::-1]


class Fusion:
    """The result of fusing one graph: groups in execution order, fallback nodes, and the reasons."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.groups: list[Group] = []
        self.group_of: dict[Node, Group] = {}
        self.fallbacks: list[Node] = []
        self.reasons: list[str] = []
        self.dag = nx.DiGraph()  # group/fallback ids; an edge means "runs before"
        self.users = graph.users()
        self._form()
        self._finish()

    # ---- forming groups ------------------------------------------------------------------------------
    def _form(self) -> None:
        for n in self.graph.nodes:
            how = lowering(n)
            if how in ("memory", "view"):
                continue
            if how == "fallback":
                self.fallbacks.append(n)
                self.dag.add_node(("fallback", n.id))
                for b in self._producers(n):
                    self.dag.add_edge(b, ("fallback", n.id))
                continue
            if how == "reduction":
                self._rows_home(n)
            if how != "matmul":
                for g in self._candidates(n):
                    why = self._refusal(g, n, how)
                    if why is None:
                        self._join(g, n, how)
                        self._absorb(g, n)
                        break
                    self.reasons.append(f"{n.op.name} at {n.where or '?'} not fused into kernel {g.id}: {why}")
                else:
                    self._new_group(n, how)
                continue
            self._new_group(n, how)

    def _key(self, x: Node):
        g = self.group_of.get(x)
        if g is not None:
            return g.id
        return ("fallback", x.id) if x in self.fallbacks else None

    def _producers(self, n: Node) -> set:
        keys = set()
        for x in n.inputs:
            if isinstance(x, Node):
                k = self._key(view_chain(x)[0])
                if k is not None:
                    keys.add(k)
        return keys

    def _candidates(self, n: Node) -> list[Group]:
        """The groups computing n's inputs, reductions and matmuls first (the kernels worth growing)."""
        seen = []
        for x in n.inputs:
            if isinstance(x, Node):
                g = self.group_of.get(view_chain(x)[0])
                if g is not None and g not in seen:
                    seen.append(g)
        return sorted(seen, key=lambda g: g.kind == "elementwise")

    def _absorb(self, g: Group, n: Node) -> None:
        """n joined g: pull in the elementwise groups computing n's other inputs, so they are not materialised."""
        for h in self._candidates(n):
            if h is not g and h.kind == "elementwise" and broadcastable(h.space, g.space) and \
                    not (g.kind == "matmul" and any(self.group_of.get(view_chain(x)[0]) is h for x in g.matmul.inputs)):
                self._merge(g, h, rows=False)  # (a matmul's operands are read from memory by its template)

    def _rows_home(self, n: Node) -> None:
        """n reduces a whole elementwise group h shaped like the rows of a reduction kernel g (the count of kept
        targets beside a loss): compute h in g, one value per row, so n becomes g's reduction over all rows."""
        h = self.group_of.get(view_chain(n.inputs[0])[0])
        if h is None or h.kind != "elementwise" or len(reduce_dims(n)) != n.inputs[0].ndim or \
                any(tuple(m.shape) != h.space for m in h.nodes):
            return
        for g in self.groups:
            if g.kind == "reduction" and row_shape(g) == h.space and self._merge(g, h, rows=True):
                return

    def _merge(self, g: Group, h: Group, rows: bool) -> bool:
        """Move h's members into g (as per-row values when rows) unless that creates a cycle between kernels."""
        if any(isinstance(x, Node) and view_chain(x)[0] in g.outer_deps for m in h.nodes for x in m.inputs):
            self.reasons.append(f"kernel {h.id} not merged into kernel {g.id}: it reads values known only after "
                                "the last row (that needs a second pass)")
            return False
        if self._reads_through_view(g, h) or self._reads_through_view(h, g):
            self.reasons.append(f"kernel {h.id} not merged into kernel {g.id}: one reads the other's values through "
                                "a view, which places them differently")
            return False
        dag = self.dag.copy()
        dag.remove_edges_from([(h.id, g.id), (g.id, h.id)])
        if nx.has_path(dag, h.id, g.id) or nx.has_path(dag, g.id, h.id):
            self.reasons.append(f"kernel {h.id} not merged into kernel {g.id}: it would create a cycle")
            return False
        for m in h.nodes:
            g.canon[m] = row_canon(g) if rows else padded(h.canon[m], len(g.space))
            if rows:
                g.rowplaced.add(m)
            self.group_of[m] = g
        g.nodes = sorted(g.nodes + h.nodes, key=lambda m: m.id)
        self.groups.remove(h)
        self.dag = nx.contracted_nodes(self.dag, g.id, h.id, self_loops=False)
        return True

    def _reads_through_view(self, g: Group, h: Group) -> bool:
        """Does a member of g read a value computed in h through a view (a view of another kernel's output is just
        index math on memory; inside one kernel it is legal only where it keeps every element in place)?"""
        return any(isinstance(x, Node) and view_chain(x)[0] is not x and self.group_of.get(view_chain(x)[0]) is h
                   for m in g.nodes for x in m.inputs)

    def _new_group(self, n: Node, how: str) -> None:
        anchor = n.inputs[0] if how == "reduction" else n
        kind = {"pointwise": "elementwise"}.get(how, how)
        g = Group(max((h.id for h in self.groups), default=-1) + 1, kind, anchor.shape, anchor)
        self.groups.append(g)
        self.dag.add_node(g.id)
        self._join(g, n, how)

    def _join(self, g: Group, n: Node, how: str) -> None:
        if how == "reduction" and g.kind == "reduction" and self._outer(g, n):
            g.outer.append(n)
            g.outer_deps.add(n)
            g.canon[n] = (1,) * len(g.space)
        elif how == "reduction":
            if g.kind == "elementwise":
                g.kind, g.space, g.anchor = "reduction", tuple(n.inputs[0].shape), n.inputs[0]
                g.canon = {m: padded(c, len(g.space)) for m, c in g.canon.items()}
            g.dims = reduce_dims(n)
            g.canon[n] = row_canon(g)
            if padded(n.shape, len(g.space)) != g.canon[n]:
                g.rowplaced.add(n)
        elif n.op.name == "clone" and self._permuted_copy(g, n, *view_chain(n.inputs[0])):
            base, chain = view_chain(n.inputs[0])
            g.canon[n], g.permuted[n] = g.canon[base], chain
        elif any(x in g.rowplaced for x in n.inputs if isinstance(x, Node)):
            g.canon[n] = row_canon(g)
            g.rowplaced.add(n)
        else:
            if g.kind == "elementwise" and tuple(n.shape) != g.space and broadcastable(g.space, n.shape):
                g.space, g.anchor = tuple(n.shape), n
                g.canon = {m: padded(c, len(g.space)) for m, c in g.canon.items()}
            g.canon[n] = padded(n.shape, len(g.space))
        if how != "reduction" and any(self.group_of.get(view_chain(x)[0]) is g and view_chain(x)[0] in g.outer_deps
                                      for x in n.inputs if isinstance(x, Node)):
            g.outer_deps.add(n)
        g.nodes.append(n)
        self.group_of[n] = g
        for k in self._producers(n):
            if k != g.id:
                self.dag.add_edge(k, g.id)

    def _refusal(self, g: Group, n: Node, how: str) -> str | None:
        """Why n cannot join group g (None when it can)."""
        why = self._space_refusal(g, n, how)
        if why:
            return why
        if any(view_chain(x)[0] in g.permuted for x in n.inputs if isinstance(x, Node)):
            return "reads a value the kernel stores transposed"
        outer = how == "reduction" and self._outer(g, n)
        space = tuple(n.inputs[0].shape) if how == "reduction" else (
            g.space if broadcastable(n.shape, g.space) else tuple(n.shape))
        for x in n.inputs[: 0 if outer else 1 if how == "reduction" else None]:
            if isinstance(x, Node) and x not in g.rowplaced:
                base, chain = view_chain(x)
                if self.group_of.get(base) is g and not self._permuted_copy(g, n, base, chain):
                    why = self._view_refusal(g, base, chain, x, space)
                    if why:
                        return why
        bases = [view_chain(x)[0] for x in n.inputs if isinstance(x, Node)]
        if not outer and any(b in g.outer_deps for b in bases) and (any(s != 1 for s in n.shape) or any(
                self.group_of.get(b) is g and b not in g.outer_deps for b in bases)):
            return "uses a reduction over all rows with per-row values (that needs a second pass)"
        for k in self._producers(n):
            if k != g.id and nx.has_path(self.dag, g.id, k):
                return "fusing would create a cycle between kernels"
        return None

    def _space_refusal(self, g: Group, n: Node, how: str) -> str | None:
        """Why n's iteration space does not fit g's."""
        if how == "reduction":
            space, dims = tuple(n.inputs[0].shape), reduce_dims(n)
            if g.kind == "matmul":
                return "a reduction does not fuse into a matmul epilogue"
            if not dims:
                return "reduction over no dims"
            if g.kind == "reduction" and not self._outer(g, n) and (space != g.space or dims != g.dims):
                return f"reduces dims {list(dims)} of {list(space)}, the kernel reduces {list(g.dims)} of " \
                       f"{list(g.space)}"
            if g.kind == "elementwise" and not broadcastable(g.space, space):
                return f"iteration space {list(g.space)} does not broadcast to {list(space)}"
            return None
        rowplaced = [x for x in n.inputs if isinstance(x, Node) and x in g.rowplaced]
        if rowplaced:
            if tuple(n.shape) != row_shape(g) or any(self.group_of.get(x) is g and x not in g.rowplaced and
                                                     any(s != 1 for s in x.shape) for x in n.inputs
                                                     if isinstance(x, Node)):
                return f"mixes a per-row value of shape {list(rowplaced[0].shape)} with other shapes"
            return None
        if not (broadcastable(n.shape, g.space) or (g.kind == "elementwise" and broadcastable(g.space, n.shape))):
            return f"shape {list(n.shape)} does not match the iteration space {list(g.space)}"
        return None

    def _permuted_copy(self, g: Group, n: Node, base: Node, chain: list[Node]) -> bool:
        """Is n a copy of a permuted in-kernel value (a transposed gradient)? It is stored through the permutation."""
        return (n.op.name == "clone" and bool(chain) and all(v.op.name == "permute" for v in chain)
                and self.group_of.get(base) is g and base not in g.rowplaced
                and padded(base.shape, len(g.space)) == g.canon[base])

    def _outer(self, g: Group, n: Node) -> bool:
        """Is n a reduction over all rows of a per-row value of g (the mean of a loss)? Such a reduction runs in
        the same kernel: programs combine their partial totals with atomics."""
        x = view_chain(n.inputs[0])[0]
        return (self.group_of.get(x) is g and g.canon[x] == row_canon(g) and x not in g.outer_deps
                and len(reduce_dims(n)) == n.inputs[0].ndim)

    def _view_refusal(self, g: Group, base: Node, chain: list[Node], x: Node, space: tuple) -> str | None:
        """A chain of views over an in-kernel value is legal if it keeps every element at its iteration index."""
        canon = padded(g.canon[base], len(space))
        shape = x.shape
        expand_at = next((i for i, v in enumerate(chain) if v.op.name in EXPANDS), len(chain))
        if any(v.op.name not in EXPANDS for v in chain[expand_at:]) or any(v.op.name == "permute" for v in chain):
            return f"view {chain[-1].op.name} of an in-kernel value reorders elements"
        before = chain[expand_at - 1].shape if expand_at else base.shape
        if len(before) > len(space) or nonones(before) != nonones(base.shape) or \
                [b for b, c in zip(padded(before, len(space)), canon) if c != 1] != nonones(canon) or \
                any(b != 1 and c == 1 for b, c in zip(padded(before, len(space)), canon)):
            return f"value of shape {list(base.shape)} seen as {list(before)} is not aligned with the iteration space"
        if not broadcastable(shape, space):
            return f"view to {list(shape)} leaves the iteration space {list(space)}"
        return None

    # ---- outputs, loads, order ---------------------------------------------------------------------
    def _finish(self) -> None:
        outputs = set(self.graph.outputs)
        for g in self.groups:
            members = set(g.nodes)
            for n in g.nodes:
                outside = [u for u in self.users[n] if not self._inside(u, g)]
                if n in outputs or outside:
                    g.outputs.append(n)
                    if outside and any(self.group_of.get(u) is not None for u in outside) and n.op.category == \
                            ELEMENTWISE:
                        self.reasons.append(f"{n.op.name} at {n.where or '?'} materialised by kernel {g.id}: "
                                            f"read by {len(outside)} op(s) outside it")
            for n in g.nodes:
                for x in n.inputs:
                    if isinstance(x, Node) and view_chain(x)[0] not in members and load_key(g, x, n) not in g.loads:
                        g.loads.append(load_key(g, x, n))

    def _inside(self, user: Node, g: Group) -> bool:
        """Does user consume its input inside g (directly or through views that end inside g)?"""
        if self.group_of.get(user) is g:
            return True
        if lowering(user) == "view":
            return all(self._inside(u, g) for u in self.users[user]) and user not in self.graph.outputs
        return False

    def order(self) -> list:
        """Groups and fallback nodes in an order that respects every dependency."""
        items = {g.id: g for g in self.groups}
        items.update({("fallback", n.id): n for n in self.fallbacks})
        first = {g.id: g.nodes[0].id for g in self.groups}
        first.update({("fallback", n.id): n.id for n in self.fallbacks})
        return [items[k] for k in nx.lexicographical_topological_sort(self.dag, key=lambda k: first[k])]

    def draw(self, path: str) -> None:
        """Save a picture of the graph with each kernel's nodes in one colour (inputs grey, views dashed)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        g = nx.DiGraph()
        for n in self.graph.nodes:
            g.add_node(n.id, layer=0, label=f"%{n.id} {n.label}")
            for x in n.inputs:
                if isinstance(x, Node):
                    g.add_edge(x.id, n.id)
        for n in self.graph.nodes:
            g.nodes[n.id]["layer"] = max((g.nodes[p]["layer"] + 1 for p in g.predecessors(n.id)), default=0)
        colours = plt.get_cmap("tab10")
        kernel = {n.id: i for i, grp in enumerate(self.groups) for n in grp.nodes}
        fill = [colours(kernel[i] % 10) if i in kernel else (0.85, 0.85, 0.85) for i in g.nodes]
        pos = nx.multipartite_layout(g, subset_key="layer", align="vertical")
        fig, ax = plt.subplots(figsize=(1.0 * (max(nx.get_node_attributes(g, "layer").values()) + 2), 3.2))
        nx.draw_networkx_edges(g, pos, ax=ax, arrows=True, edge_color="#888888", node_size=1300,
                               connectionstyle="arc3,rad=0.35")
        nx.draw_networkx_nodes(g, pos, ax=ax, node_color=fill, node_size=1300, edgecolors="black")
        nx.draw_networkx_labels(g, pos, {i: label.replace(" ", "\n") for i, label in
                                         nx.get_node_attributes(g, "label").items()}, ax=ax, font_size=7)
        for i, grp in enumerate(self.groups):
            ax.scatter([], [], color=colours(i % 10), label=f"kernel {i}: {grp.kind}")
        ax.scatter([], [], color=(0.85, 0.85, 0.85), label="memory / view (index math)")
        ax.legend(loc="lower left", fontsize=7, frameon=False)
        ax.axis("off")
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)
