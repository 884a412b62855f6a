"""Fusion: partition a graph's op nodes into groups that each become one Triton kernel.

A group has one iteration space (a shape S). Its members compute values "in registers" at each index of S;
values it reads from memory (graph inputs, other groups' outputs) are loaded through their view chains as
index arithmetic. Kinds: "elementwise" (pointwise ops with broadcasting), "reduction" (pointwise ops around
reductions over the same dims of S: softmax, norms, cross-entropy), "matmul" (one matmul and its pointwise
epilogue) and "template" (the nodes of a hand-written kernel template that share their inputs:
Lowering.template). Ops with no lowering become fallback steps. Every decision that splits a pattern is kept as
a reason."""
from __future__ import annotations

import math

import networkx as nx

from ..dispatch import ELEMENTWISE, MATMUL
from .ir import Graph, Node
from .lowering import copies_operand, lowering, reduce_dims, value_inputs
from .views import view_chain, view_kind


class Group:
    """Nodes fused into one kernel: the one group-to-kernel description every renderer reads.

    space: the iteration space (a shape); anchor: a node of that shape. aligned[n]: n's shape aligned to the space,
    1 where n does not vary (its broadcast pattern in the space)."""

    def __init__(self, id: int, kind: str, space: tuple, anchor: Node):
        self.id, self.kind, self.space, self.anchor = id, kind, tuple(space), anchor
        self.nodes: list[Node] = []
        self.aligned: dict[Node, tuple] = {}
        self.dims: tuple = ()  # reduced dims of the space (reduction groups)
        # global reductions: reductions over all rows (a loss mean), combined across programs
        self.global_reductions: list[Node] = []
        self.after_global: set[Node] = set()  # members computed from those: known only after the last row
        self.outputs: list[Node] = []  # members read outside the group
        self.loads: list[tuple] = []  # (value read from memory, row consumer or None): see Fusion.load_key
        # row-indexed members: one value per row, shaped like the kept dims (a reduction without keepdim)
        self.row_indexed: set[Node] = set()
        self.permuted: dict[Node, list[Node]] = {}  # clone(permute(v)) outputs: v stored through the permutation
        self.copies: dict[Node, Node] = {}  # members read outside that are another output's values unchanged
        self.stage: dict[Node, int] = {}  # per member: how many reductions deep it is (set when fusion ends)
        # can a row be cut into chunks combined afterwards? (one stage of reductions, and no value stored per
        # element needs their results: softmax cannot, its write-back needs the whole row's max and sum)
        self.splittable = False

    @property
    def may_compute_in_place(self) -> bool:
        """An elementwise kernel or a matmul's epilogue stores each element where it computes it, so a replay may
        hand it an output that is one of its inputs (runtime.CKernelStep.can_compute_into decides per call; the C
        renderer then declares none of its pointers restrict)."""
        return self.kind in ("elementwise", "matmul")

    @property
    def template(self) -> str:
        """A template group's kernel template (Lowering.template)."""
        return self.nodes[0].op.lowering.template

    @property
    def matmul(self) -> Node:
        """A matmul group's matmul node (its other members are the epilogue)."""
        return next(n for n in self.nodes if n.op.category == MATMUL)

    def kernel_loads(self) -> list[tuple]:
        """The loads generated code reads through strides (a matmul's own operands are read by its template)."""
        if self.kind == "template":
            return []
        if self.kind != "matmul":
            return self.loads
        return [(x, c) for x, c in self.loads if any(x in n.inputs for n in self.nodes if n is not self.matmul)]

    def __repr__(self) -> str:
        return f"<Group {self.id} {self.kind} {list(self.space)} {[n.op.name for n in self.nodes]}>"


def row_aligned(g: Group) -> tuple:
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


def load_key(g: Group, x: Node, consumer: Node) -> tuple:
    """How consumer reads x from memory: aligned with the space (x, None), or with a per-row consumer's shape,
    whose dims are the space's kept dims (x, consumer)."""
    return (x, consumer if consumer in g.row_indexed and lowering(consumer) != "reduction" else None)


def stages(group: Group) -> dict[Node, int]:
    """Per member: how many reductions deep it is (0: needs none; a reduction: 1 + its input's stage)."""
    stage: dict[Node, int] = {}
    members = set(group.nodes)
    for n in group.nodes:
        deps = [stage[b] for x in n.inputs if isinstance(x, Node) for b in [view_chain(x)[0]] if b in members]
        stage[n] = max(deps, default=0) + (1 if lowering(n) == "reduction" else 0)
    return stage


def splittable(group: Group) -> bool:
    """See Group.splittable."""
    if group.kind != "reduction":
        return False
    per_element = [n for n in group.nodes if lowering(n) != "reduction" and n not in group.after_global and
                   any(group.aligned[n][d] != 1 for d in group.dims)]
    return all(group.stage[n] == 1 for n in group.nodes if lowering(n) == "reduction" and
               n not in group.global_reductions) and all(group.stage[n] == 0 for n in per_element)


class Fusion:
    """The result of fusing one graph: groups in execution order, fallback nodes, and the reasons."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.groups: list[Group] = []
        self.group_of: dict[Node, Group] = {}
        self.fallbacks: list[Node] = []
        self.reasons: list[str] = []
        self.dag = nx.DiGraph()  # group/fallback ids; an edge means "runs before"
        self.users = {n: [u for u in users if n in value_inputs(u)] for n, users in graph.users().items()}
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
            if how == "template":
                sibling = next((g for g in self.groups if g.kind == "template" and g.template == n.op.lowering.template
                                and g.nodes[0].inputs == n.inputs), None)
                if sibling is not None:
                    self._join(sibling, n, how)
                else:
                    self._new_group(n, how)
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
        for x in value_inputs(n):
            k = self._key(view_chain(x)[0])
            if k is not None:
                keys.add(k)
        return keys

    def _candidates(self, n: Node) -> list[Group]:
        """The groups computing n's inputs, reductions and matmuls first (the kernels worth growing)."""
        seen = []
        for x in value_inputs(n):
            g = self.group_of.get(view_chain(x)[0])
            if g is not None and g not in seen:
                seen.append(g)
        return sorted(seen, key=lambda g: g.kind == "elementwise")

    def _absorb(self, g: Group, n: Node) -> None:
        """n joined g: pull in the elementwise groups computing n's other inputs, so they are not materialised. A
        per-row n reads them one value per row: only a group shaped like the rows can then come in, as per-row
        values (aligned by broadcasting, a [6] beside rows of [6, 6] would vary along the reduced dim instead)."""
        for h in self._candidates(n):
            rows = n in g.row_indexed and any(s != 1 for m in h.nodes for s in m.shape)  # (a scalar is the same anyway)
            fits = all(tuple(m.shape) == row_shape(g) for m in h.nodes) if rows else broadcastable(h.space, g.space)
            if h is not g and h.kind == "elementwise" and fits and \
                    not (g.kind == "matmul" and any(self.group_of.get(view_chain(x)[0]) is h for x in g.matmul.inputs)):
                self._merge(g, h, rows=rows)  # (a matmul's operands are read from memory by its template)

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
        if any(isinstance(x, Node) and view_chain(x)[0] in g.after_global for m in h.nodes for x in m.inputs):
            self.reasons.append(f"kernel {h.id} not merged into kernel {g.id}: it reads values known only after "
                                "the last row (that needs a second pass)")
            return False
        if self._reads_through_view(g, h) or self._reads_through_view(h, g):
            self.reasons.append(f"kernel {h.id} not merged into kernel {g.id}: one reads the other's values through "
                                "a view, which places them differently")
            return False
        # a cycle: a path between the two through another kernel (found without copying the DAG, which made the
        # merges most of a GPT step's planning time)
        if any(nx.has_path(self.dag, s, b) for a, b in ((h.id, g.id), (g.id, h.id))
               for s in self.dag.successors(a) if s != b):
            self.reasons.append(f"kernel {h.id} not merged into kernel {g.id}: it would create a cycle")
            return False
        for m in h.nodes:
            g.aligned[m] = row_aligned(g) if rows else padded(h.aligned[m], len(g.space))
            if rows:
                g.row_indexed.add(m)
            self.group_of[m] = g
        g.nodes = sorted(g.nodes + h.nodes, key=lambda m: m.id)
        self.groups.remove(h)
        nx.contracted_nodes(self.dag, g.id, h.id, self_loops=False, copy=False)
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
        if how == "reduction" and g.kind == "reduction" and self._global_reduction(g, n):
            g.global_reductions.append(n)
            g.after_global.add(n)
            g.aligned[n] = (1,) * len(g.space)
        elif how == "reduction":
            if g.kind == "elementwise":
                g.kind, g.space, g.anchor = "reduction", tuple(n.inputs[0].shape), n.inputs[0]
                g.aligned = {m: padded(c, len(g.space)) for m, c in g.aligned.items()}
            g.dims = reduce_dims(n)
            g.aligned[n] = row_aligned(g)
            if padded(n.shape, len(g.space)) != g.aligned[n]:
                g.row_indexed.add(n)
        elif self._permuted_copy(g, n, *view_chain(n.inputs[0])):
            base, chain = view_chain(n.inputs[0])
            g.aligned[n], g.permuted[n] = g.aligned[base], chain
        elif any(x in g.row_indexed for x in n.inputs if isinstance(x, Node)):
            g.aligned[n] = row_aligned(g)
            g.row_indexed.add(n)
        else:
            if g.kind == "elementwise" and tuple(n.shape) != g.space and broadcastable(g.space, n.shape):
                g.space, g.anchor = tuple(n.shape), n
                g.aligned = {m: padded(c, len(g.space)) for m, c in g.aligned.items()}
            g.aligned[n] = padded(n.shape, len(g.space))
        if how != "reduction" and any(self.group_of.get(view_chain(x)[0]) is g and view_chain(x)[0] in g.after_global
                                      for x in n.inputs if isinstance(x, Node)):
            g.after_global.add(n)
        g.nodes.append(n)
        self.group_of[n] = g
        for k in self._producers(n):
            if k != g.id:
                self.dag.add_edge(k, g.id)

    def _refusal(self, g: Group, n: Node, how: str) -> str | None:
        """Why n cannot join group g (None when it can)."""
        if g.kind == "template":
            return f"kernel template {g.template} computes only its own op"
        why = self._space_refusal(g, n, how)
        if why:
            return why
        if any(view_chain(x)[0] in g.permuted for x in n.inputs if isinstance(x, Node)):
            return "reads a value the kernel stores transposed"
        global_reduction = how == "reduction" and self._global_reduction(g, n)
        space = tuple(n.inputs[0].shape) if how == "reduction" else (
            g.space if broadcastable(n.shape, g.space) else tuple(n.shape))
        for x in n.inputs[: 0 if global_reduction else 1 if how == "reduction" else None]:
            if isinstance(x, Node) and x not in g.row_indexed:
                base, chain = view_chain(x)
                if self.group_of.get(base) is g and not self._permuted_copy(g, n, base, chain):
                    why = self._view_refusal(g, base, chain, x, space)
                    if why:
                        return why
        bases = [view_chain(x)[0] for x in n.inputs if isinstance(x, Node)]
        if not global_reduction and any(b in g.after_global for b in bases) and (any(s != 1 for s in n.shape) or any(
                self.group_of.get(b) is g and b not in g.after_global for b in bases)):
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
            if g.kind == "reduction" and not self._global_reduction(g, n) and (space != g.space or dims != g.dims):
                return f"reduces dims {list(dims)} of {list(space)}, the kernel reduces {list(g.dims)} of " \
                       f"{list(g.space)}"
            if g.kind == "elementwise" and not broadcastable(g.space, space):
                return f"iteration space {list(g.space)} does not broadcast to {list(space)}"
            return None
        row_indexed = [x for x in n.inputs if isinstance(x, Node) and x in g.row_indexed]
        if row_indexed:
            if tuple(n.shape) != row_shape(g) or any(self.group_of.get(x) is g and x not in g.row_indexed and
                                                     any(s != 1 for s in x.shape) for x in n.inputs
                                                     if isinstance(x, Node)):
                return f"mixes a per-row value of shape {list(row_indexed[0].shape)} with other shapes"
            return None
        if not (broadcastable(n.shape, g.space) or (g.kind == "elementwise" and broadcastable(g.space, n.shape))):
            return f"shape {list(n.shape)} does not match the iteration space {list(g.space)}"
        return None

    def _permuted_copy(self, g: Group, n: Node, base: Node, chain: list[Node]) -> bool:
        """Is n a copy of a permuted in-kernel value (a transposed gradient)? It is stored through the permutation."""
        copy = n.op.lowering is not None and n.op.lowering.copy
        return (copy and bool(chain) and all(view_kind(v) == "permute" for v in chain)
                and self.group_of.get(base) is g and base not in g.row_indexed
                and padded(base.shape, len(g.space)) == g.aligned[base])

    def _global_reduction(self, g: Group, n: Node) -> bool:
        """Is n a reduction over all rows of a per-row value of g (the mean of a loss)? Such a reduction runs in
        the same kernel: programs combine their partial totals with atomics."""
        x = view_chain(n.inputs[0])[0]
        return (self.group_of.get(x) is g and g.aligned[x] == row_aligned(g) and x not in g.after_global
                and len(reduce_dims(n)) == n.inputs[0].ndim
                and math.prod(n.inputs[0].shape) == math.prod(x.shape))  # not through an expand: it repeats values

    def _view_refusal(self, g: Group, base: Node, chain: list[Node], x: Node, space: tuple) -> str | None:
        """A chain of views over an in-kernel value is legal if it keeps every element at its iteration index."""
        aligned = padded(g.aligned[base], len(space))
        shape = x.shape
        expand_at = next((i for i, v in enumerate(chain) if view_kind(v) == "expand"), len(chain))
        if any(view_kind(v) != "expand" for v in chain[expand_at:]) or any(view_kind(v) == "permute" for v in chain):
            return f"view {chain[-1].op.name} of an in-kernel value reorders elements"
        before = chain[expand_at - 1].shape if expand_at else base.shape
        if len(before) > len(space) or nonones(before) != nonones(base.shape) or \
                [b for b, c in zip(padded(before, len(space)), aligned) if c != 1] != nonones(aligned) or \
                any(b != 1 and c == 1 for b, c in zip(padded(before, len(space)), aligned)):
            return f"value of shape {list(base.shape)} seen as {list(before)} is not aligned with the iteration space"
        if not broadcastable(shape, space):
            return f"view to {list(shape)} leaves the iteration space {list(space)}"
        return None

    # ---- outputs, loads, order ---------------------------------------------------------------------
    def _finish(self) -> None:
        outputs = set(self.graph.outputs)
        for g in self.groups:
            g.stage = stages(g)
            g.splittable = splittable(g)
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
                for x in value_inputs(n):
                    if view_chain(x)[0] not in members and load_key(g, x, n) not in g.loads:
                        g.loads.append(load_key(g, x, n))
            self._propagate_copies(g, outputs)

    def _propagate_copies(self, g: Group, graph_outputs: set) -> None:
        """Copy propagation: an output that is a member's values unchanged (a sum over no dims: the sum_to of a
        gradient that already has its input's shape, which backward writes after every linear layer) is not stored;
        the kernel stores that member and the plan hands its array out for both (g.copies), as it does the array of
        a value the kernel loads. A call whose sizes break
        the fusion's relations runs the group op by op, and within them both keep the iteration space's shape.
        Graph outputs are stored each on their own: the caller gets arrays it may write to."""
        if g.kind == "template":
            return
        members = set(g.nodes)

        def copied(n: Node) -> Node | None:
            if not copies_operand(n):
                return None
            x = n.inputs[0]
            if x not in members:  # another step's value, which no step writes into afterwards (a graph input may be)
                return x if x.kind == "op" and view_chain(x)[0] is x and (x, None) in g.loads and \
                    tuple(x.shape) == g.space else None
            if tuple(x.shape) != g.space or n in g.permuted or x in g.permuted or n in g.row_indexed or \
                    x in g.row_indexed:
                return None
            return copied(x) or x

        for n in list(g.outputs):
            source = None if n in graph_outputs else copied(n)
            if source is not None:
                g.copies[n] = source
                g.outputs.remove(n)
                if source in members and source not in g.outputs:
                    g.outputs.append(source)
        if g.copies:
            g.outputs.sort(key=g.nodes.index)

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
