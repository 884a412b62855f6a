"""Capture: the user's function runs with proxy tensors (no storage, an IR node each); every op the dispatch sees
is appended to a graph. Real tensors met along the way (arguments, parameters, globals) become graph inputs, read
by identity. In-place updates and .grad writes are recorded functionally and written back when the graph runs.
Where Python needs a value (a graph break) the graph so far runs, every live proxy gets its value, and capture
goes on in a new graph (a new segment)."""
from __future__ import annotations

import os
import sys
import weakref
from collections.abc import Callable

import numpy as np

from .. import autograd
from ..dispatch import VIEW, Op, infer
from ..errors import op_error, user_line
from ..ops.elementwise import cast
from ..ops.view import expand_as
from ..state import STATE
from ..tensor import CPU, Tensor, copy_storage
from .ir import Graph, Node
from .logs import log, logs_on

_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_TENSOR_FILE = os.path.join(_PACKAGE_DIR, "tensor.py")


class CaptureError(RuntimeError):
    """The function does something capture does not support: graphc warns and runs it eagerly instead."""


class GraphBreakError(RuntimeError):
    """A graph break inside a function compiled with fullgraph=True."""


class TracedShape(tuple):
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
        return tuple.__getitem__(self, i)

    def __radd__(self, other: tuple) -> tuple:
        return other + tuple(self)


def _reads_every_size(name: str):
    method = getattr(tuple, name)

    def read(self, *args):
        self._note(range(len(self)))
        return method(self, *args)
    return read


for _name in ("__iter__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__repr__",
              "__contains__", "__add__", "__mul__", "__rmul__", "count", "index"):
    setattr(TracedShape, _name, _reads_every_size(_name))


class Capture:
    """The active capture of one call. `run_segment(graph, sources)` runs a finished segment graph (its outputs
    set) on the current values of its input tensors and returns the output arrays in graph.outputs order."""

    def __init__(self, arguments: list, fullgraph: bool, run_segment: Callable):
        self.arg_index = {id(x): i for i, x in enumerate(arguments) if type(x) is Tensor}  # position in arguments
        self.fullgraph, self.run_segment = fullgraph, run_segment
        self.breaks: list[tuple[str, str]] = []
        self.size_reads: dict[tuple, int] = {}  # (tensor or node, dim) -> the size user code read
        self.store_plans = True  # False for a trace whose plans are not worth caching (it created new state)
        self.last_key: tuple | None = None
        self.last_outputs: list[Node] = []
        self.last_inputs: list[Node] = []
        self.grad_writes: dict[int, tuple[Tensor, Tensor | None]] = {}  # id -> (tensor, its .grad before the call)
        self.materialized: dict[int, weakref.ref] = {}  # proxies given values at a graph break (id -> weakref)
        self.grad_owner: dict[int, tuple] = {}  # id(a real .grad read during capture) -> (its owner, it)
        self._new_segment()

    def _new_segment(self) -> None:
        self.graph = Graph()
        self.sources: list[Tensor] = []  # the real tensor behind each graph input, in graph.inputs order
        self.current: dict[int, Node] = {}  # id(real tensor) -> its input node in this segment
        self.writes: dict[int, tuple] = {}  # id -> (real tensor updated in place, its storage) in this segment
        self.views: dict[int, weakref.ref] = {}  # proxies made by view ops (id -> weakref)
        self.assigned: dict[int, weakref.ref] = {}  # proxies updated in place: each must own its storage at the end
        self.proxies: list[weakref.ref] = []

    # ---- the hooks the dispatch and Tensor call -------------------------------------------------------------
    def record(self, op: Op, inputs: tuple, attrs: dict) -> Tensor:
        """Append one op application; returns its proxy, with autograd metadata as eager would set it."""
        args = tuple(self.node_of(x) if type(x) is Tensor else _plain(op, x) for x in inputs)
        shape, dt = infer(op, args, attrs)
        device = next((a.device for a in args if type(a) is Node), None) or CPU
        node = self.graph.add("op", op, args, attrs, shape, dt, device, user_line())
        out = self._proxy(node)
        if op.category == VIEW:
            self.views[id(out)] = weakref.ref(out)
        if STATE.grad_enabled and dt.is_floating_point and any(type(x) is Tensor and x.requires_grad for x in inputs):
            if op.backward is None:
                raise op_error(op.name, "has no backward rule, but an input requires grad", inputs, NotImplementedError)
            out.requires_grad = True
            out.grad_fn = autograd.Node(op, inputs, attrs, out, node.where)
        return out

    def shape_of(self, t: Tensor) -> tuple:
        """A tensor's shape. Handed to user code (not to graphc's library), it is a TracedShape: the sizes the code
        reads become guards of the compiled function."""
        data = t._data
        shape = t._node.shape if data is None else data.shape if type(data) is np.ndarray else tuple(data.shape)
        frame = sys._getframe(2)
        while frame is not None and frame.f_code.co_filename == _TENSOR_FILE:
            frame = frame.f_back
        if frame is None or frame.f_code.co_filename.startswith(_PACKAGE_DIR):
            return shape
        owner = t if data is not None else t._node

        def note(dims) -> None:
            for d in dims:
                self.size_reads[(owner, d)] = shape[d]
        return TracedShape(shape, note)

    def alias(self, t: Tensor) -> Tensor:
        """detach() of a proxy: the same value, no autograd history."""
        return self._proxy(t._node)

    def assign(self, t: Tensor, value: Tensor) -> None:
        """t's storage takes value (broadcast and cast to t): recorded as t now naming value's node. A real tensor
        updated in place becomes a proxy until the segment ends (so reading it sees the update, and reading its
        value is a graph break); then its storage is restored and the final value copied in."""
        target = self.node_of(t)
        if type(value) is Tensor and value._data is None and value._node is target:
            return
        if value.dtype is not t.dtype:
            value = cast(value, t.dtype)
        if self.node_of(value).shape != target.shape:
            value = expand_as(value, t)
        node = self.node_of(value)
        if t._data is None:
            view = self.views.get(id(t))
            if view is not None and view() is t:
                raise CaptureError(f"in-place update of a view ({target.op.name} at {target.where}) is not captured")
            self.assigned[id(t)] = weakref.ref(t)
        else:
            self.writes[id(t)] = (t, t._data)
            t._data = None
        t._node = node

    def note_grad_read(self, t: Tensor) -> None:
        """t.grad is being read: if it is a real tensor, a replay reads t.grad anew (its identity may change)."""
        grad = t._grad
        if grad is not None and grad._data is not None:
            self.grad_owner[id(grad)] = (t, grad)  # holding grad keeps its id from being reused

    def note_grad_write(self, t: Tensor) -> None:
        """t.grad is being set: after the graph runs it gets its final value."""
        self.grad_writes.setdefault(id(t), (t, t._grad))

    def realize(self, t: Tensor) -> None:
        """Python needs t's value: a graph break. The graph so far runs and capture continues in a new one."""
        reason, where = _break_reason(), user_line()
        if self.fullgraph:
            raise GraphBreakError(f"graph break at {where}: {reason} (fullgraph=True)")
        self.breaks.append((reason, where))
        if logs_on("breaks"):
            log.info(f"breaks] graph break at {where}: {reason}")
        self.flush()

    # ---- segments -------------------------------------------------------------------------------------------
    def node_of(self, t: Tensor) -> Node:
        """The node holding t's value in this segment (a new graph input for a real tensor met first)."""
        if t._data is None:
            return t._node
        node = self.current.get(id(t))
        if node is None:
            data = t._data
            node = self.graph.add("input", None, (), {}, tuple(data.shape), t.dtype, t.device, "")
            self.current[id(t)] = node
            self.sources.append(t)
        return node

    def _proxy(self, node: Node) -> Tensor:
        t = Tensor._make(None, node.dtype)
        t._node = node
        self.proxies.append(weakref.ref(t))
        return t

    def live_proxies(self) -> list[Tensor]:
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
        self._constants_from_temporaries()
        saved = _stale_grad_fns(live)
        written = list(self.writes.values())
        outputs = list(dict.fromkeys([t._node for t in live] + [t._node for t, _ in written] +
                                     [fn._out[1] for fn in saved]))
        self.graph.outputs, self.last_outputs = outputs, outputs
        final = [t._node for t, _ in written]
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
        for (t, _), node in zip(written, final):
            write_into(t, values[node])
        self._new_segment()

    def _restore_storage(self) -> None:
        """Tensors updated in place get their own storage back (not yet written)."""
        for t, data in self.writes.values():
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


def write_into(t: Tensor, value) -> None:
    """Copy value into t's storage (an in-place update's write-back)."""
    if type(t._data) is np.ndarray:
        np.copyto(t._data, value, casting="unsafe")
    else:
        t._data.copy_(value)


def _owned(value) -> bool:
    """Whether an array (or torch tensor) from a plan is its own writable memory, not a view of another."""
    if type(value) is np.ndarray:
        return value.base is None and value.flags.writeable
    return value._base is None


def _owns_unshared_array(t: Tensor) -> bool:
    data = t._data
    return type(data) is np.ndarray and data.base is None and sys.getrefcount(data) == 3  # t, `data`, the call


def _stale_grad_fns(live: list[Tensor]) -> list:
    """Autograd nodes reachable from live proxies whose saved output is still a node of this segment."""
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
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        if frame.f_code.co_filename == _TENSOR_FILE:
            name = frame.f_code.co_name
        frame = frame.f_back
    what = {"__bool__": "bool(tensor)", "__repr__": "printing a tensor", "__format__": "formatting a tensor",
            "__array__": "converting to a numpy array", "__float__": "float(tensor)", "__int__": "int(tensor)",
            "__index__": "using a tensor as an index"}.get(name, f"Tensor.{name.strip('_')}()")
    return f"{what} needs the tensor's value"
