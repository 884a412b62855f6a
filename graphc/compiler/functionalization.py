"""Functionalization, as PyTorch does it: while a function is captured, every alias of a piece of memory (a view, a
detached tensor, an argument sharing memory with another) knows its storage and the view steps that lead to it from
the storage's root. A write to any alias becomes a functional update of the root, through the inverses the view ops
declare (`Op.inverse`), and every alias read after that is regenerated from the updated root. The graph so holds
no in-place op and no stale view.

Arguments that share memory are found at call time (`argument_aliasing`); the pattern is part of the guards, and
inside the graph each such argument is an `as_strided` view of the one that covers them all."""
from __future__ import annotations

import weakref

import numpy as np
from numpy.lib.array_utils import byte_bounds

from ..dispatch import ELEMENTWISE, VIEW, memory_owner
from ..tensor import Tensor, empty_in_order


class Storage:
    """Memory shared by aliases during a capture. `root` is the tensor owning it (a weak reference while it is a
    proxy, so capture keeps nothing alive), `node` the IR node holding the root's current value in the segment
    `graph` (None: read the root as a graph input), `version` counts writes through any alias, `contiguous`
    whether eager lays the root out row-major (so its value after a write through a permuted alias is too)."""

    __slots__ = ("root", "node", "graph", "version", "members", "contiguous", "__weakref__")

    def __init__(self, root, node, graph, contiguous: bool):
        self.root, self.node, self.graph, self.version, self.contiguous = root, node, graph, 0, contiguous
        self.members: list[weakref.ref] = []

    def root_tensor(self) -> Tensor | None:
        return self.root() if type(self.root) is weakref.ref else self.root


class Alias:
    """How a tensor views its storage: `steps` from the root, each (op, other inputs, attrs) (op None: the same
    elements, as detach() gives); `layout` a numpy array with the alias's strides over the root's (a view of the
    root's array, or of a stand-in int8 array for a proxy), so aliasing and self-overlap are read off numpy;
    `node` its value in segment `graph`, made at storage `version` (a real alias is never a graph input of its own:
    it is read through its root)."""

    __slots__ = ("storage", "steps", "layout", "version", "graph", "node")

    def __init__(self, storage: Storage, steps: tuple, layout: np.ndarray):
        self.storage, self.steps, self.layout = storage, steps, layout
        self.version, self.graph, self.node = storage.version, storage.graph, None


def stand_in(shape: tuple) -> np.ndarray:
    """A contiguous layout array of this shape; np.empty does not touch the memory."""
    return np.empty(shape, np.int8)


def computed_layout(node, operands: list) -> np.ndarray:
    """The layout eager gives an op's result, over a stand-in, from its operands' layouts (None for a number): an
    elementwise op's result (a clone's too) follows its operands' memory order, as numpy's ufuncs allocate it (order
    'K', as torch's TensorIterator: a clone of a transposed tensor is transposed, so reshaping it copies); a view's
    is the view of its operand's (contiguous when the view op copies); anything else is contiguous."""
    category = node.op.category
    arrays = [a for a in operands if a is not None]
    if category == VIEW and operands[0] is not None:
        out = view_layout(node.op, operands[0], node.inputs[1:], node.attrs)
        return out if out is not None else stand_in(node.shape)
    if category != ELEMENTWISE or not arrays:
        return stand_in(node.shape)
    out = empty_in_order(arrays, np.int8)
    return out if out.shape == tuple(node.shape) else stand_in(node.shape)


def view_layout(op, layout: np.ndarray, others: tuple, attrs: dict) -> np.ndarray | None:
    """The layout of op's result over layout, or None when the op copies (reshape of a non-contiguous tensor):
    then, as eagerly, the result is not an alias. Decided by the memory's owner, not by overlap: an empty view
    overlaps nothing, yet at a replay for another size it views elements a write changes."""
    out = op.forward(layout, *others, **attrs) if op is not None else layout
    return out if type(out) is np.ndarray and memory_owner(out) is memory_owner(layout) else None


def apply_steps(array, steps: tuple, others_of) -> np.ndarray:
    """The root's array viewed through steps (numpy views: the aliases of a materialized root share its memory)."""
    for op, others, attrs in steps:
        if op is not None:
            array = op.forward(array, *[others_of(x) for x in others], **attrs)
    return array


def viewed_by(t: Tensor) -> list[Tensor]:
    """The tensors a view keeps alive through its `_view` chains: its base and the view ops' other operands (the
    inputs whose shapes place a part of a gradient split among them), and theirs in turn. They are not state the
    function left behind."""
    out, pending, seen = [], [t], {id(t)}
    while pending:
        view = pending.pop()._view
        if view is None:
            continue
        base, _, others, _ = view
        items = [base, *others]
        while items:
            x = items.pop()
            if type(x) in (tuple, list):
                items.extend(x)
            elif type(x) is Tensor and id(x) not in seen:
                seen.add(id(x))
                out.append(x)
                pending.append(x)
    return out


def argument_aliasing(flat: list) -> tuple:
    """Which tensor arguments share memory: () when none do (found without comparing memory unless two arguments
    have the same owner). Otherwise one entry per overlapping argument: (position, position of the contiguous
    argument covering its group, size, stride, storage offset within that one), or (position, None) when no argument
    covers the group; (position, "same", first position) for a tensor passed twice. The result is a guard: a plan
    traced for one pattern never replays for another."""
    owners: dict[int, list[int]] = {}
    first: dict[int, int] = {}
    pattern = []
    for i, x in enumerate(flat):
        if type(x) is Tensor and type(x._data) is np.ndarray:
            if first.setdefault(id(x), i) != i:  # the same tensor twice: capture knows it by identity
                pattern.append((i, "same", first[id(x)]))
                continue
            owners.setdefault(id(memory_owner(x._data)), []).append(i)
    for positions in owners.values():
        if len(positions) > 1:
            pattern.extend(_group_pattern(flat, positions))
    return tuple(pattern)


def _group_pattern(flat: list, positions: list[int]) -> list:
    arrays = {i: flat[i]._data for i in positions}
    overlapping = [i for i in positions
                   if any(j != i and may_share(arrays[i], arrays[j]) for j in positions)]
    if not overlapping:
        return []
    bounds = {i: byte_bounds(arrays[i]) for i in overlapping}
    low, high = min(b[0] for b in bounds.values()), max(b[1] for b in bounds.values())
    itemsize = arrays[overlapping[0]].itemsize
    start = {i: arrays[i].__array_interface__["data"][0] - low for i in overlapping}
    cover = next((i for i in overlapping if bounds[i] == (low, high) and arrays[i].flags.c_contiguous), None)
    if cover is None or any(arrays[i].itemsize != itemsize or start[i] % itemsize or
                            any(s % itemsize for s in arrays[i].strides) for i in overlapping):
        return [(i, None) for i in overlapping]
    return [(i, cover, arrays[i].shape, tuple(s // itemsize for s in arrays[i].strides), start[i] // itemsize)
            for i in overlapping if i != cover]


def may_share(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays share memory (exactly, unless that is too costly to find out: then assume they do)."""
    try:
        return np.shares_memory(a, b, max_work=10_000)
    except np.exceptions.TooHardError:
        return True
