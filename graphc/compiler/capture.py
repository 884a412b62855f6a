"""Capture: the user's function runs with proxy tensors (no storage, an IR node each); every op the dispatch sees
is appended to a graph. Real tensors met along the way (arguments, parameters, globals) become graph inputs, read
by identity. In-place updates and .grad writes are recorded functionally and written back when the graph runs.
Where Python needs a value (a graph break) the graph so far runs, every live proxy gets its value, and capture
goes on in a new graph (a new segment). Views, detached tensors and arguments sharing memory are functionalized
(graphc/compiler/functionalization.py): a write through any alias updates its storage's root, and aliases read
after it are regenerated."""
from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Callable

import numpy as np

from .. import autograd, dtypes
from ..dispatch import ELEMENTWISE, PATTERNS, VIEW, Op, infer
from ..errors import PACKAGE_DIR, overlap_error, user_line
from ..ops.elementwise import cast
from ..ops.view import as_strided, contiguous, expand_as
from ..state import STATE
from ..tensor import CPU, Size, Tensor, copy_storage, has_internal_overlap
from ..topological import postorder
from .functionalization import (
    Alias,
    Storage,
    apply_steps,
    argument_aliasing,
    computed_layout,
    may_share,
    stand_in,
    view_layout,
)
from .ir import Graph, Node
from .logs import log, logs_on
from .scalars import number, number_dtype

_TENSOR_FILE = os.path.join(PACKAGE_DIR, "tensor.py")


MAX_GUARDED_VALUES = 1 << 16  # elements of a tensor whose values a plan guards (compared at every call)


class CaptureError(RuntimeError):
    """The function does something capture does not support: graphc warns and runs it eagerly instead."""


class GraphBreakError(RuntimeError):
    """A graph break inside a function compiled with fullgraph=True."""


class TracedShape(Size):
    """A traced tensor's shape as user code sees it: indexing it records the sizes read, anything that sees every
    size (iterating, comparing, printing, hashing, concatenating) records them all. Only recorded sizes join the
    guards, so `F.layer_norm(h, (h.shape[-1],))` does not tie a plan to the batch size."""

    def __new__(cls, shape: tuple, note: Callable):
        self = super().__new__(cls, shape)
        self._note = note
        return self

    def __getitem__(self, i):
        dims = range(len(self))[i]
        self._note(dims if type(dims) is range else (dims,))
        return Size.__getitem__(self, i)

    def __radd__(self, other: tuple) -> Size:
        return Size(other) + tuple(self)


def _reads_every_size(name: str):
    method = getattr(Size, name)

    def read(self, *args):
        self._note(range(len(self)))
        return method(self, *args)
    return read


for _name in ("__iter__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__repr__",
              "__contains__", "__add__", "__mul__", "__rmul__", "count", "index", "numel"):
    setattr(TracedShape, _name, _reads_every_size(_name))


class Capture:
    """The active capture of one call. `run_segment(graph, sources)` runs a finished segment graph (its outputs
    set) on the current values of its input tensors and returns the output arrays in graph.outputs order."""

    def __init__(self, arguments: list, fullgraph: bool, run_segment: Callable):
        self.arg_index = {id(x): i for i, x in enumerate(arguments) if type(x) is Tensor}  # position in arguments
        self.fullgraph, self.run_segment = fullgraph, run_segment
        self.breaks: list[tuple[str, str]] = []
        self.size_reads: dict[tuple, int] = {}  # (tensor or node, dim) -> a size the program depends on
        self.store_plans = True  # False for a trace whose plans are not worth caching (it created new state)
        self.last_key: tuple | None = None
        self.last_outputs: list[Node] = []
        self.last_inputs: list[Node] = []
        self.grad_writes: dict[int, tuple[Tensor, Tensor | None]] = {}  # id -> (tensor, its .grad before the call)
        self.materialized: dict[int, weakref.ref] = {}  # proxies given values at a graph break (id -> weakref)
        self.grad_owner: dict[int, tuple] = {}  # id(a real .grad read during capture) -> (its owner, it)
        self.aliases: dict[int, tuple[weakref.ref, Alias]] = {}  # id -> (tensor, how it views its storage)
        self.unaliased: dict[int, Tensor] = {}  # arguments sharing memory that no argument covers: never written
        self.functionalizing = False  # True while a write through a view is turned into an update of its root
        self.value_reads: list[str] = []  # user lines where Python read values of a tensor the trace did not compute
        self.value_guards: dict[int, tuple[Tensor, np.ndarray, str]] = {}  # id -> (it, its values, the line)
        self.weak: dict[Node, object] = {}  # scalar proxies' nodes -> the Python number each stands for
        self.numbers: dict[int, tuple[float, Tensor | None]] = {}  # id(float read at a break) -> (it, its holder)
        self.scalar_guards: list[tuple[Node, object]] = []  # (node, value) realised by Python
        self.sources_kept: list[Tensor] = []  # tensors `current` names that nothing else holds (so no id is reused)
        self.made_roots: dict[int, tuple[Tensor, Node]] = {}  # roots no one held, kept for their aliases: (it, node)
        self.made: dict[int, weakref.ref] = {}  # tensors a factory made during the trace (id -> weakref)
        self.derived: dict[int, weakref.ref] = {}  # made tensors whose values follow from guarded ones (note_derived)
        self.hooks: list[tuple[Callable, Tensor]] = []  # tensor hooks the backward ran: (hook, the gradient given)
        self.hook_owners: dict[int, Tensor] = {}  # leaves whose own hooks ran (their list is guarded)
        self.writing_hooks: list[Callable] = []  # hooks that wrote tensors in place (a replay cannot call them)
        self.num_writes = 0  # in-place writes and .grad writes recorded so far
        self._new_segment()
        self._alias_arguments(arguments)

    def _new_segment(self) -> None:
        self.graph = Graph()
        self.resumed_at = self.breaks[-1][1] if self.breaks else None  # the user line of the break it follows
        self.sources: list[Tensor] = []  # the real tensor behind each graph input, in graph.inputs order
        self.current: dict[int, Node] = {}  # id(real tensor) -> its input node in this segment
        self.writes: dict[int, tuple] = {}  # id -> (real tensor updated in place, its storage) in this segment
        self.suspended: dict[int, tuple] = {}  # id -> (real alias of a storage written in this segment, its storage)
        self.assigned: dict[int, weakref.ref] = {}  # proxies updated in place: each must own its storage at the end
        self.proxies: list[weakref.ref] = []
        self.layouts: dict[Node, np.ndarray] = {}  # the layout eager gives a node's value (_layout_of)

    # ---- the hooks the dispatch and Tensor call -------------------------------------------------------------
    def record(self, op: Op, inputs: tuple, attrs: dict) -> Tensor:
        """Append one op application; returns its proxy, with autograd metadata as eager would set it."""
        args = tuple(self.node_of(x) if type(x) is Tensor else
                     self._number(x) if type(x) is float and op.category == ELEMENTWISE else _plain(op, x)
                     for x in inputs)
        patterns = PATTERNS.get(op)
        if patterns is not None:
            for replacement, match in patterns:
                found = match(args, attrs, self.graph)
                operands = None if found is None else self._tensors_of(found[0], inputs)
                if operands is not None:
                    return self.record(replacement, operands, found[1])
        infer_args = args
        if self.weak:  # scalar proxies are operands of elementwise ops as the Python numbers they stand for
            attrs = {k: self.scalar_value(v) if type(v) is Tensor else v for k, v in attrs.items()}
            if op.category == ELEMENTWISE:  # (graphc/compiler/scalars.py); elsewhere they are 0-d float64 tensors
                infer_args = tuple(self.weak.get(a, a) if type(a) is Node else a for a in args)
            if infer_args is not args and all(type(a) is not Node or a in self.weak for a in args):
                value = number(op.forward(*[np.asarray(v) if type(a) is Node else v
                                            for a, v in zip(args, infer_args)], **attrs))
                node = self.graph.add("op", op, args, attrs, (), number_dtype(value), CPU, user_line())
                self.weak[node] = value
                return self._proxy(node)
            if infer_args is not args:
                args = self._cast_scalars(args)
        node = self._add(op, args, attrs, infer_args)
        dt = node.dtype
        out = self._proxy(node)
        if op.category == VIEW and not self.functionalizing:
            base = self._alias(inputs[0])
            layout = view_layout(op, base.layout, args[1:], attrs)
            if layout is not None:  # as eagerly, a view op that had to copy (reshape) makes no alias
                others = tuple(weakref.ref(x) if type(x) is Tensor else x for x in inputs[1:])
                self._register(out, Alias(base.storage, base.steps + ((op, others, attrs),), layout))
                out._view = (inputs[0], op, inputs[1:], attrs)
        for x in inputs:
            if type(x) is Tensor and x._view is not None:
                autograd.refresh_view(x)
        if STATE.grad_enabled and dt.is_floating_point and any(type(x) is Tensor and x.requires_grad for x in inputs):
            out.requires_grad = True  # an op without a backward rule: a backward through it raises, as eagerly
            out.grad_fn = autograd.Node(op, inputs, attrs, out, node.where)
        return out

    def _tensors_of(self, nodes: tuple, inputs: tuple) -> tuple | None:
        """The tensors holding `nodes` (the operands of a pattern's replacement), found from the pattern's last inputs
        through their autograd graph, so gradients flow as they would through the pattern. A node met on no such
        path gets a new proxy, only when no input requires grad (then no path matters); otherwise None."""
        want, found, seen = set(nodes), {}, set()
        stack = [(t, 0) for t in inputs if type(t) is Tensor]
        while stack:
            t, depth = stack.pop()
            if id(t) in seen:
                continue
            seen.add(id(t))
            node = t._node if t._data is None else self.current.get(id(t))
            if node in want:
                found.setdefault(node, t)
            if t.grad_fn is not None and depth < 16:  # the pattern is a few ops deep: never walk the whole model
                stack += [(x, depth + 1) for x in t.grad_fn.inputs if type(x) is Tensor]
        if len(found) < len(want) and any(type(t) is Tensor and t.requires_grad for t in inputs):
            return None
        return tuple(found[n] if n in found else self._proxy(n) for n in nodes)

    def shape_of(self, t: Tensor) -> tuple:
        """A tensor's shape. Handed to user code (not to graphc's library), it is a TracedShape: the sizes the code
        reads become guards of the compiled function."""
        data = t._data
        shape = t._node.shape if data is None else data.shape if type(data) is np.ndarray else tuple(data.shape)
        frame = sys._getframe(2)
        while frame is not None and frame.f_code.co_filename == _TENSOR_FILE:
            frame = frame.f_back
        if frame is None or frame.f_code.co_filename.startswith(PACKAGE_DIR):
            return shape
        owner = t if data is not None else t._node  # not the proxy: a shape returned or kept must not keep it alive
        return TracedShape(shape, lambda dims: self._note(owner, shape, dims))

    def note_sizes(self, t: Tensor, dims) -> None:
        """Sizes of t the traced program depends on (user code read them, or a library op built its structure
        from them: how many views split makes): they become guards of the compiled function."""
        data = t._data
        shape = t._node.shape if data is None else data.shape if type(data) is np.ndarray else tuple(data.shape)
        self._note(t if data is not None else t._node, shape, dims)

    def _note(self, owner: Tensor | Node, shape: tuple, dims) -> None:
        for d in dims:
            self.size_reads[(owner, d)] = shape[d]

    def is_specialized(self, node: Node, dim: int) -> bool:
        """Whether the traced program depends on this node's size along dim (note_sizes: a guard)."""
        return any(d == dim and (owner is node or self.current.get(id(owner)) is node) for owner, d in self.size_reads)

    def alias(self, t: Tensor) -> Tensor:
        """detach() under capture: the same elements (an alias of t's storage), no autograd history."""
        rec = self._alias(t)
        out = self._proxy(self.node_of(t))
        self._register(out, Alias(rec.storage, rec.steps, rec.layout))
        return out

    def copy(self, t: Tensor) -> Tensor:
        """A proxy holding t's current value (a snapshot, not an alias)."""
        return self._proxy(self.node_of(t))

    def layout(self, t: Tensor) -> np.ndarray:
        """t's memory layout, as eager would give it (over a stand-in for a storage the trace computes)."""
        rec = self._alias_of(t)
        return rec.layout if rec is not None else t._data if t._data is not None else self._layout_of(t._node)

    def overlaps(self, t: Tensor) -> bool:
        """Whether elements of t share memory (an expanded view): writes into t must not reach one element twice."""
        rec = self._alias_of(t)
        if rec is not None:
            return has_internal_overlap(rec.layout)
        return t._data is not None and has_internal_overlap(t._data)

    def assign(self, t: Tensor, value: Tensor, fill: bool = False) -> None:
        """t's storage takes value (broadcast and cast to t): recorded as t now naming value's node. A real tensor
        updated in place becomes a proxy until the segment ends (so reading it sees the update, and reading its
        value is a graph break); then its storage is restored and the final value copied in. A write to an alias
        (fill: of one number, by fill_ or zero_) updates its storage instead."""
        target = self.node_of(t)
        if type(value) is Tensor and value._data is None and value._node is target:
            return
        self.num_writes += 1
        if value.dtype is not t.dtype:
            value = cast(value, t.dtype)
        if self.node_of(value).shape != target.shape:
            value = expand_as(value, t)
        node = self.node_of(value)
        if id(t) in self.unaliased:
            raise CaptureError(f"in-place update of an argument of shape {list(target.shape)} that shares memory with "
                               "another argument, where no argument covers the others, is not captured")
        rec = self._alias_of(t)
        if rec is not None:
            self._write_through(t, rec, node, fill)
        elif t._data is None:
            self.assigned[id(t)] = weakref.ref(t)
        else:
            self._check_unshared(t._data, t, self._inputs())
            self.writes[id(t)] = (t, t._data)
            t._data = None
        t._node = node

    # ---- functionalization ----------------------------------------------------------------------------------
    def _alias_arguments(self, arguments: list) -> None:
        """Arguments sharing memory are views of the contiguous argument that covers them (an as_strided view)."""
        for entry in argument_aliasing(arguments):
            t = arguments[entry[0]]
            if entry[1] is None:
                self.unaliased[id(t)] = t
            elif type(entry[1]) is int:
                _, cover, size, stride, offset = entry
                base = self._alias(arguments[cover])
                step = (as_strided, (), {"size": size, "stride": stride, "storage_offset": offset})
                self._register(t, Alias(base.storage, (step,), t._data))

    def _alias_of(self, t: Tensor) -> Alias | None:
        entry = self.aliases.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else None

    def _alias(self, t: Tensor) -> Alias:
        """t's alias record; a tensor viewed first becomes the root of a new storage."""
        rec = self._alias_of(t)
        if rec is None:
            node = t._node if t._data is None else None
            array = t._data if t._data is not None else self.writes.get(id(t), (None, None))[1]
            layout = self._layout_of(node) if array is None else array
            row_major = type(layout) is np.ndarray and layout.flags.c_contiguous
            storage = Storage(weakref.ref(t), node, self.graph, row_major)
            rec = self._register(t, Alias(storage, (), layout))
        return rec

    def _layout_of(self, node: Node) -> np.ndarray:
        """The layout eager gives the value of a node (functionalization.computed_layout), found through the
        elementwise ops and views it comes from, down to the arrays of real tensors."""
        layouts = self.layouts
        if node in layouts:
            return layouts[node]
        sources = dict(zip(self.graph.inputs, self.sources))
        for n in postorder([node], lambda n: [x for x in n.inputs if type(x) is Node and x not in layouts]
                           if n.kind == "op" and n.op.category in (ELEMENTWISE, VIEW) else []):
            if n.kind == "input":
                t = sources.get(n)
                array = None if t is None else t._data if t._data is not None else self.writes.get(id(t), (0, None))[1]
                layouts[n] = array if type(array) is np.ndarray else stand_in(n.shape)
            elif n.kind == "const":
                layouts[n] = np.asarray(n.value)
            elif n.op.category in (ELEMENTWISE, VIEW):
                layouts[n] = computed_layout(n, [layouts[x] if type(x) is Node else None for x in n.inputs])
            else:
                layouts[n] = stand_in(n.shape)
        return layouts[node]

    def _register(self, t: Tensor, rec: Alias) -> Alias:
        self.aliases[id(t)] = (weakref.ref(t), rec)
        rec.storage.members.append(weakref.ref(t))
        return rec

    def _storage_node(self, storage: Storage) -> Node:
        """The root's current value in this segment (its input node until a write in this segment)."""
        if storage.node is None or storage.graph is not self.graph:
            storage.node, storage.graph = self.node_of(storage.root_tensor()), self.graph
        return storage.node

    def _regenerate(self, t: Tensor, rec: Alias) -> None:
        """t's value from its storage's current root value, through its view steps."""
        node = self._storage_node(rec.storage)
        for op, others, attrs in rec.steps:
            node = self._add(op, (node, *self._others(others)), attrs)
        rec.node, rec.version, rec.graph = node, rec.storage.version, self.graph
        if t._data is None:
            t._node = node

    def _others(self, others: tuple) -> list:
        """The other operands of a view step (a tensor whose shape reshape_as/expand_as take), as nodes."""
        out = []
        for x in others:
            if type(x) is weakref.ref:
                x = x()
                if x is None:
                    raise CaptureError("a view made to the shape of a tensor that no longer exists is not captured")
                x = self.node_of(x)
            out.append(x)
        return out

    def _write_through(self, t: Tensor, rec: Alias, node: Node, fill: bool) -> None:
        """The write of node into alias t as an update of its storage's root: each view step's inverse, from t down
        to the root. Then every other alias of the storage reads the update (real ones become proxies until the
        segment ends)."""
        if has_internal_overlap(rec.layout):
            if fill:
                raise CaptureError(f"filling an expanded tensor of shape {list(node.shape)} is not captured")
            raise overlap_error(node.shape)
        storage = rec.storage
        bases = [self._storage_node(storage)]
        for op, others, attrs in rec.steps[:-1]:
            bases.append(self._add(op, (bases[-1], *self._others(others)), attrs))
        value = node
        self.functionalizing = True
        try:
            for (op, others, attrs), base in zip(reversed(rec.steps), reversed(bases)):
                if op.inverse is None:
                    raise CaptureError(f"in-place update through a {op.name} view is not captured")
                others = [x() if type(x) is weakref.ref else x for x in others]
                value = self.node_of(op.inverse(self._proxy(base), self._proxy(value), *others, **attrs))
            if storage.contiguous and rec.steps:  # the inverse of a permute is a permuted value: the views read
                value = self.node_of(contiguous(self._proxy(value)))  # from the root were traced on eager's layout
        finally:
            self.functionalizing = False
        storage.node, storage.graph = value, self.graph
        storage.version += 1
        root = storage.root_tensor()
        for ref in storage.members:
            m = ref()
            if m is not None and m._data is not None:
                self._check_unshared(m._data, m, self._inputs())
                (self.writes if m is root else self.suspended)[id(m)] = (m, m._data)
                m._data = None
                self._regenerate(m, self._alias_of(m))
        rec.node, rec.version, rec.graph = node, storage.version, self.graph
        if id(t) not in self.suspended and id(t) not in self.writes:
            self.assigned[id(t)] = weakref.ref(t)

    def _check_unshared(self, data: np.ndarray, t: Tensor, others) -> None:
        """A real tensor written in this segment must share no memory with another one the graph reads that is not
        one of its recorded aliases (a view made outside the function): the graph could not tell it changed."""
        rec = self._alias_of(t)
        for s, array in others:
            other = self._alias_of(s)
            if s is t or (rec is not None and other is not None and other.storage is rec.storage):
                continue
            if type(data) is np.ndarray and type(array) is np.ndarray and may_share(data, array):
                raise CaptureError(f"in-place update of a tensor of shape {list(data.shape)} that shares memory "
                                   f"with another tensor the function reads (shape {list(array.shape)}), made "
                                   "outside it, is not captured")

    def _inputs(self) -> list[tuple[Tensor, np.ndarray]]:
        """The real tensors this segment reads, with their arrays (kept aside for those written)."""
        saved = {id(t): data for t, data in (*self.writes.values(), *self.suspended.values())}
        return [(s, s._data if s._data is not None else saved.get(id(s))) for s in self.sources]

    def _sync(self) -> None:
        """Regenerate every live alias that a write made stale."""
        for ref, rec in list(self.aliases.values()):
            t = ref()
            if t is not None and t._data is None and (rec.version != rec.storage.version or
                                                      rec.graph is not self.graph):
                self._regenerate(t, rec)

    def note_grad_read(self, t: Tensor) -> None:
        """t.grad is being read: if it is a real tensor, a replay reads t.grad anew (its identity may change)."""
        grad = t._grad
        if grad is not None and grad._data is not None:
            self.grad_owner[id(grad)] = (t, grad)  # holding grad keeps its id from being reused

    def note_grad_write(self, t: Tensor) -> None:
        """t.grad is being set: after the graph runs it gets its final value. A tensor the function computed (a
        proxy) is made anew by every call, so its .grad is not the call's effect to redo, nor to hold it alive."""
        self.num_writes += 1
        if t._data is not None:
            self.grad_writes.setdefault(id(t), (t, t._grad))

    def run_hook(self, hook: Callable, grad: Tensor, owner: Tensor | None):
        """Call a tensor hook during a traced backward and record the call, so that a replay calls it again with the
        gradient's value (its Python effects, a counter or a log line, happen at each call, as eagerly; a new
        gradient it returns is traced into the graph). A hook that writes tensors in place is noted: calling it at
        a replay would write twice. retain_grad's hook (.grad, recorded as a .grad write) is not recorded."""
        if getattr(hook, "retains_grad", False):
            return hook(grad)
        before = self.num_writes
        new = hook(grad)
        if self.num_writes != before:
            self.writing_hooks.append(hook)
        self.hooks.append((hook, grad))
        if owner is not None:
            self.hook_owners[id(owner)] = owner
        return new

    def note_made(self, t: Tensor) -> None:
        """A factory (zeros, tensor, arange...) made t while the function runs: a replay makes it anew, so the
        graph reads it as a constant (its value when first read), never as the trace's tensor, which a write would
        carry over to the next call."""
        self.made[id(t)] = weakref.ref(t)

    def note_derived(self, t: Tensor) -> None:
        """Library code made t from values the trace already guards (a packed sequence's batch sizes, from lengths
        passed as Python ints or read from a small tensor): Python may read t's values without making the trace
        unreplayable."""
        self.derived[id(t)] = weakref.ref(t)

    def is_made(self, t: Tensor) -> bool:
        ref = self.made.get(id(t))
        return ref is not None and ref() is t

    def note_value_read(self, t: Tensor) -> None:
        """Python reads the values of a real tensor (an argument, a free tensor, a constant), not of one this trace
        computed (that is a graph break): what the trace did may depend on them. A small host tensor's values are
        then guarded (a bool mask a GNN step indexes with, a lengths tensor): the plan replays while they stay the
        same. Any other tensor's read (a larger one, or one a factory made during the trace from values the library
        combined with sizes it read) means the trace must not be replayed."""
        ref = self.materialized.get(id(t)) or self.derived.get(id(t))
        if (ref is None or ref() is not t) and self.weak_node(t) is None:
            data = t._data
            if type(data) is np.ndarray and data.size <= MAX_GUARDED_VALUES and not self.is_made(t):
                self.value_guards.setdefault(id(t), (t, np.array(data), user_line()))
            else:
                self.value_reads.append(user_line())
    def note_number(self, value):
        """A Python float that Python read from a tensor (`.item()`, `float(t)`: after a graph break): where an
        elementwise op then takes it as an operand, it is a runtime input of the segment, as a float argument is
        (graphc/compiler/scalars.py), so the segment's plan serves every value instead of baking this one in (the
        pieces of a function with breaks are re-traced on every call and their plans found by structure)."""
        if type(value) is float:
            self.numbers[id(value)] = (value, None)
        return value

    def _number(self, x: float):
        """The graph operand for a Python float: its holder's input node if Python read it from a tensor (the same
        object, found by identity), else the number itself (a constant of the graph)."""
        found = self.numbers.get(id(x))
        if found is None or found[0] is not x:
            return x
        holder = found[1]
        if holder is None:
            holder = Tensor._make(np.array(x, np.float64), dtypes.float64)
            self.numbers[id(x)] = (x, holder)
        node = self.node_of(holder)
        self.weak[node] = x
        return node

    def weak_node(self, t: Tensor) -> Node | None:
        """The node of a scalar proxy (realised or not), else None."""
        node = t._node if t._data is None else self.current.get(id(t))
        return node if node in self.weak else None

    def _cast_scalars(self, args: tuple) -> tuple:
        """Float scalar proxies meeting tensors in an elementwise op, cast first to the dtype numpy computes in
        eagerly (a Python float meeting a float32 array is a float32; float32 for float16; float64 for integer
        arrays), so compiled values equal eager ones bit for bit."""
        tensors = [a for a in args if type(a) is Node and a not in self.weak]
        common = dtypes.result_type(*tensors)
        compute = dtypes.float32 if common.is_low_precision else common if common.is_floating_point else dtypes.float64
        if compute is dtypes.float64:
            return args
        return tuple(self.graph.add("op", cast, (a,), {"dtype": compute}, (), compute, a.device, a.where)
                     if type(a) is Node and a in self.weak and a.dtype is dtypes.float64 else a for a in args)

    def scalar_value(self, t: Tensor):
        """The Python number a scalar proxy stands for, now guarded (its expression must evaluate the same at the
        next call); any other tensor unchanged."""
        node = self.weak_node(t)
        if node is None:
            return t
        guard = (node, self.weak[node])
        if guard not in self.scalar_guards:
            self.scalar_guards.append(guard)
        return guard[1]

    def realize(self, t: Tensor) -> None:
        """Python needs t's value: a graph break. The graph so far runs and capture continues in a new one. A scalar
        proxy's value is known: it is handed over and guarded instead."""
        if t._node in self.weak:  # it keeps standing for its node in this graph (node_of finds it by identity)
            self.current[id(t)] = t._node
            self.sources_kept.append(t)
            t._data, t._node = np.array(self.scalar_value(t), t.dtype.np), None
            return
        node = t._node
        self.graph_break(f"{_break_reason()} ({node.label}, shape {list(node.shape)}, made at "
                         f"{node.where or 'an unknown line'})")

    def graph_break(self, reason: str) -> None:
        """The graph so far runs and capture continues in a new one: Python needs a value, or changes what the
        graph's ops read when they run (a generator's stream reseeded: the draws recorded so far come first)."""
        where = user_line()
        if self.fullgraph:
            raise GraphBreakError(f"graph break at {where}: {reason} (fullgraph=True)")
        if self.weak and not self.breaks:  # nothing ran yet: the caller traces again with floats as plain values
            raise CaptureError(f"graph break at {where} in a trace with scalar inputs")
        self.breaks.append((reason, where))
        if logs_on("breaks"):
            log.info(f"breaks] graph break at {where}: {reason}")
        self.flush()

    # ---- segments -------------------------------------------------------------------------------------------
    def node_of(self, t: Tensor) -> Node:
        """The node holding t's value in this segment (a new graph input for a real tensor met first)."""
        if self.aliases:
            entry = self.aliases.get(id(t))
            if entry is not None and entry[0]() is t and (t._data is None or entry[1].storage.root_tensor() is not t):
                rec = entry[1]
                if rec.version != rec.storage.version or rec.graph is not self.graph or rec.node is None:
                    self._regenerate(t, rec)
                return rec.node
        if t._data is None:
            return t._node
        node = self.current.get(id(t))
        if node is None:
            data = t._data
            if self.writes:
                self._check_unshared(data, t, (*self.writes.values(), *self.suspended.values()))
            if type(data) is np.ndarray and self.is_made(t):
                node = self.graph.add("const", None, (), {}, data.shape, t.dtype, t.device, "", np.array(data))
                self.sources_kept.append(t)
            else:
                node = self.graph.add("input", None, (), {}, tuple(data.shape), t.dtype, t.device, "")
                self.sources.append(t)
            self.current[id(t)] = node
        return node

    def _add(self, op: Op, args: tuple, attrs: dict, infer_args: tuple | None = None) -> Node:
        shape, dt = infer(op, args if infer_args is None else infer_args, attrs)
        device = next((a.device for a in args if type(a) is Node), None) or CPU
        return self.graph.add("op", op, args, attrs, shape, dt, device, user_line())

    def _proxy(self, node: Node) -> Tensor:
        t = Tensor._make(None, node.dtype)
        t._node = node
        self.proxies.append(weakref.ref(t))
        return t

    def live_proxies(self) -> list[Tensor]:
        """The proxies still referenced, each alias among them regenerated if a write made it stale."""
        self._sync()
        seen, out = set(), []
        for ref in self.proxies:
            t = ref()
            if t is not None and t._data is None and id(t) not in seen:
                seen.add(id(t))
                out.append(t)
        return out

    def flush(self, live: list[Tensor] | None = None) -> None:
        """Run this segment: every live proxy gets its value, in-place updates and .grad writes land in the real
        tensors, and a new segment starts."""
        live = self.live_proxies() if live is None else live
        shared = self._shared_storages(live)
        roots = [self._storage_node(st) for st in shared if st.root_tensor() is None]
        self._constants_from_temporaries()
        written = list(self.writes.values())
        # a tensor written in place (or through an alias of its storage) has a new grad_fn too
        saved = _stale_grad_fns(live + [t for t, _ in (*written, *self.suspended.values())])
        outputs = list(dict.fromkeys([t._node for t in live] + [t._node for t, _ in written] +
                                     [fn._out[1] for fn in saved] + roots))
        self.graph.outputs, self.last_outputs = outputs, outputs
        final = [t._node for t, _ in written]
        # values the call hands out: live tensors (an alias of a tensor's memory is viewed from it again, not
        # handed its value: _share_memory, viewed_root), stale autograd outputs, roots no one holds
        handed = {t._node for t in live if self.viewed_root(t) is None} | {fn._out[1] for fn in saved} | set(roots)
        position, inputs = {n: i for i, n in enumerate(outputs)}, {n: i for i, n in enumerate(self.graph.inputs)}
        self.graph.mutated_inputs = {inputs[self.current[id(t)]]: position[node] for (t, _), node in zip(written, final)
                                     if node not in handed and self.current.get(id(t)) in inputs}
        self._restore_storage()
        values = dict(zip(outputs, self.run_segment(self.graph, self.sources))) if outputs else {}
        given = set()
        for t in live:
            value = values[t._node]
            ref = self.assigned.get(id(t))
            if ref is not None and ref() is t and (id(value) in given or not _owned(value)):
                value = copy_storage(value)  # eagerly, a tensor updated in place keeps a storage of its own
            given.add(id(value))
            t._data, t._node = value, None
            self.materialized[id(t)] = weakref.ref(t)
        for fn in saved:
            fn._out = (values[fn._out[1]], None, fn._out[2])
        for (t, _), node in zip(written, final):  # the write's version moved when it was recorded (Tensor._assign)
            write_into(t, values[node], bump=False)
        given = {id(t) for t in live}  # aliases still share memory, as eagerly: after a graph break, and the
        for storage in shared:  # results of the call (a view of an argument returned is a view of it)
            self._share_memory(storage, values, given)
        self._new_segment()

    def _shared_storages(self, live: list[Tensor]) -> list[Storage]:
        """Storages that a live proxy views (not as their root)."""
        out = {}
        for t in live:
            rec = self._alias_of(t)
            if rec is not None and rec.storage.root_tensor() is not t:
                out[id(rec.storage)] = rec.storage
        return list(out.values())

    def _share_memory(self, storage: Storage, values: dict, given: set) -> None:
        """After a segment ran, the aliases it gave values to are numpy views of their root's array, as eagerly
        (a root no one holds any more is kept by the storage); the root is then a real tensor, held strongly."""
        root = storage.root_tensor()
        if root is None:
            root = Tensor._make(np.array(values[storage.node]), storage.node.dtype)
            self.made_roots[id(root)] = (root, storage.node)
            self._register(root, Alias(storage, (), root._data))  # so a later write sees its aliases as recorded
        elif id(root) in given:
            own_memory(root)
        storage.root, storage.node = root, None
        for ref in storage.members:
            m = ref()
            if m is not None and m is not root and id(m) in given:
                steps = self._alias_of(m).steps
                m._data = apply_steps(root._data, steps, lambda x: x() if type(x) is weakref.ref else x)
                if m._version is not None and m._version is not root._version:
                    # the aliases' writes counted: a backward checks what it saved against them (zeros_like(x).add_(1))
                    root._counter().version = max(root._counter().version, m._version.version)
                m._version = root._counter()

    def viewed_root(self, t: Tensor) -> tuple[Tensor, tuple] | None:
        """After the last segment ran: (the tensor owning t's memory, t's view steps from it) when t is an alias of
        another tensor's memory, else None (also for a view of a .grad, which a replay cannot find: it is read anew
        at each call). The steps' other operands are the tensors themselves (None: gone)."""
        rec = self._alias_of(t)
        root = None if rec is None else rec.storage.root_tensor()
        if root is None or root is t or id(root) in self.grad_owner:
            return None
        steps = tuple((op, tuple(x() if type(x) is weakref.ref else x for x in others), attrs)
                      for op, others, attrs in rec.steps)
        return root, steps

    def _restore_storage(self) -> None:
        """Tensors updated in place get their own storage back (not yet written)."""
        for t, data in (*self.writes.values(), *self.suspended.values()):
            t._data, t._node = data, None

    def _constants_from_temporaries(self) -> None:
        """Input tensors that nothing but this capture references, holding memory nothing else references (made
        inside the function, then dropped; not a detached view of a parameter), can never change: they become
        constant nodes, which constant folding can compute with."""
        kept = []
        for k in range(len(self.sources)):
            t = self.sources[k]
            if sys.getrefcount(t) == 3 and _owns_unshared_array(t) and \
                    (id(t) not in self.materialized or self.materialized[id(t)]() is not t):
                node = self.graph.inputs[k]
                node.kind, node.value = "const", t._data
            else:
                kept.append(k)
        self.graph.inputs[:] = [self.graph.inputs[k] for k in kept]
        self.sources[:] = [self.sources[k] for k in kept]
        self.last_inputs = list(self.graph.inputs)

    def abort(self) -> None:
        """Capture failed: put back every .grad it changed, and the storage of tensors updated in place."""
        self._restore_storage()
        for t, before in self.grad_writes.values():
            t._grad = before


def write_into(t: Tensor, value, bump: bool = True) -> None:
    """Copy value into t's storage (an in-place update's write-back; with `bump`, at a replay, it moves t's version,
    as eagerly: a trace moved it when it recorded the write, where autograd saw it). A value the plan computed
    straight into t's memory (graphc/compiler/reinplace.py) is there already."""
    if value is not t._data:
        if type(t._data) is np.ndarray:
            np.copyto(t._data, value, casting="unsafe")
        else:
            t._data.copy_(value)
    if bump:
        t._bump_version()


def own_memory(t: Tensor) -> None:
    """t (a value a plan gave) takes its own contiguous memory unless it has it: its aliases are viewed from it
    through view ops that capture found aliasing on such a layout."""
    data = t._data
    if type(data) is np.ndarray:
        if not (_owned(data) and data.flags.c_contiguous):
            t._data = np.array(data, order="C")
    elif not (_owned(data) and data.is_contiguous()):
        t._data = data.clone()


def _owned(value) -> bool:
    """Whether an array (or torch tensor) from a plan is its own writable memory, not a view of another."""
    if type(value) is np.ndarray:
        return value.base is None and value.flags.writeable
    return value._base is None


def _owns_unshared_array(t: Tensor) -> bool:
    data = t._data
    return type(data) is np.ndarray and data.base is None and sys.getrefcount(data) == 3  # t, `data`, the call


def _stale_grad_fns(live: list[Tensor]) -> list:
    """Autograd nodes reachable from live proxies (and tensors written in place) whose saved output is still a node
    of this segment."""
    out, seen = [], set()
    stack = [t.grad_fn for t in live if t.grad_fn is not None]
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        if fn._out is not None and fn._out[0] is None and fn._out[1] is not None:
            out.append(fn)
        stack.extend(e for e in fn.edges if isinstance(e, autograd.Node))
    return out


def _plain(op: Op, x):
    """A non-tensor operand kept in the graph as a constant; containers of tensors are not captured."""
    if isinstance(x, (list, tuple)) and any(type(v) is Tensor for v in x):
        raise CaptureError(f"{op.name}: a list of tensors as one operand is not captured")
    return x


def _break_reason() -> str:
    """Which Tensor method needed a value: the outermost graphc.tensor frame above realize()."""
    frame, name = sys._getframe(2), "value"
    while frame is not None and frame.f_code.co_filename.startswith(PACKAGE_DIR):
        if frame.f_code.co_filename == _TENSOR_FILE:
            name = frame.f_code.co_name
        frame = frame.f_back
    what = {"__bool__": "bool(tensor)", "__repr__": "printing a tensor", "__format__": "formatting a tensor",
            "__array__": "converting to a numpy array", "__float__": "float(tensor)", "__int__": "int(tensor)",
            "__index__": "using a tensor as an index"}.get(name, f"Tensor.{name.strip('_')}()")
    return f"{what} needs the tensor's value"
