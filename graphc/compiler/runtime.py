"""Runtime: run a plan on numpy arrays. The numpy backend's plan is one step per op, each a precomputed call of the
op's numpy implementation (no dispatch, no autograd bookkeeping); values live in a dict keyed by node and are
dropped after their last use (Plan.frees). Sizes are not baked in: every call re-infers node shapes from the
input shapes (only when they change, and only for plans whose steps need them)."""
from __future__ import annotations

import collections
import contextlib
import ctypes
import functools
import math
import os
import sys
import weakref
from typing import TYPE_CHECKING

import numpy as np

from .. import dtypes
from ..dispatch import ELEMENTWISE, MATMUL, VIEW, memory_owner, narrow_integers, row_major, run_forward
from ..dtypes import LOW_PRECISION
from ..errors import RefusedValueError, ValuesRefused, values_refused
from ..ops.matmul import matmul
from ..tensor import from_torch, to_torch
from . import cache, standin
from .ir import Graph, Meta, Node
from .lowering import value_inputs
from .native import INT64
from .plan import Plan, Step, Steps
from .views import view_chain, view_through

try:
    from numpy._core.multiarray import _set_madvise_hugepage
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _set_madvise_hugepage

if TYPE_CHECKING:
    from collections.abc import Callable

    from .fusion import Group


class OpStep(Step):
    """One op run by its numpy implementation, the output cast to the node's dtype as the eager dispatch does; with
    buffers, into a buffer taken from them (see Buffers). An op that a kernel template computes (attention) runs with
    numpy's OpenBLAS on one thread: its forward multiplies a batch of small matrices, one BLAS call each, which
    OpenBLAS's threads hardly speed up, and whose spin-waits stalled each other whenever other processes held the
    cores (a GPT step's first call: 4.5-11 s instead of 1.9-2.1 s, at load 5 on 2 cores)."""

    kind = "op"

    def __init__(self, node: Node, buffers: Buffers | None = None):
        reads = list(dict.fromkeys(x for x in node.inputs if type(x) is Node))
        super().__init__(reads, [node], [node])
        self.fresh = new_memory(node)
        self.takes = buffers is not None and buffered_ufunc(node)  # computes into a buffer from Buffers.take
        self.run = _compile_buffered(node, buffers.take) if self.takes else _compile_call(node)
        if node.op.lowering is not None and node.op.lowering.template is not None:
            self.run = _on_one_blas_thread(self.run)

    def __call__(self, values: dict, shapes: dict | None) -> None:
        self.run(values)

    def can_compute_into(self, node: Node, source: Node, aliases: set[Node]) -> bool:
        """A ufunc that can write into a buffer (numpy computes it as if no operand overlapped its output)."""
        return buffered_ufunc(node) and node.shape == source.shape and node.dtype is source.dtype

    def compute_into(self, node: Node, source: Node) -> None:
        super().compute_into(node, source)
        self.run = _compile_into(node, source, self.run)


def _on_one_blas_thread(run):
    from .native import one_blas_thread

    def alone(values: dict) -> None:
        with one_blas_thread():
            run(values)
    return alone


def _compile_call(node: Node):
    """A closure computing node's value into values[node] from values of its inputs (arity-specialised: this is
    the numpy backend's inner loop)."""
    forward, attrs, want = node.op.forward, node.attrs, node.dtype.np
    fn = functools.partial(forward, **attrs) if attrs else forward
    inputs = node.inputs
    kinds = tuple(type(x) is Node for x in inputs)
    low = node.op.category != VIEW and any(type(x) is Node and x.dtype in LOW_PRECISION for x in inputs)
    narrow = node.op.category == ELEMENTWISE and node.dtype.is_floating_point and all(
        x.dtype.category < 2 and x.dtype.itemsize <= 2 for x in inputs if type(x) is Node)
    weak = weak_operands(node)

    ordered = row_major(node.op)

    def finish(out) -> np.ndarray:
        if type(out) is not np.ndarray:
            out = np.asarray(out)
        elif ordered and not out.flags.c_contiguous:
            out = np.ascontiguousarray(out)
        return out if out.dtype is want or out.dtype == want else out.astype(want)

    if low or weak or narrow:
        def run(values: dict) -> None:
            args = [values[x].item() if x in weak else values[x] if is_node else x for is_node, x in zip(kinds, inputs)]
            args = narrow_integers(args, node.dtype) if narrow else args
            values[node] = finish(fn(*[a.astype(np.float32) if type(a) is np.ndarray and a.dtype.itemsize == 2 and
                                       a.dtype.kind in "fV" else a for a in args]))
    elif kinds == (True,):
        (a,) = inputs

        def run(values: dict) -> None:
            values[node] = finish(fn(values[a]))
    elif kinds == (True, True):
        a, b = inputs

        def run(values: dict) -> None:
            values[node] = finish(fn(values[a], values[b]))
    elif kinds == (True, False):
        a, b = inputs

        def run(values: dict) -> None:
            values[node] = finish(fn(values[a], b))
    elif kinds == (False, True):
        a, b = inputs

        def run(values: dict) -> None:
            values[node] = finish(fn(a, values[b]))
    else:
        def run(values: dict) -> None:
            values[node] = finish(fn(*[values[x] if is_node else x for is_node, x in zip(kinds, inputs)]))
    return run


def weak_operands(node: Node) -> set[Node]:
    """The 0-d floating operands of an elementwise node that must not widen it (torch's promotion: a 0-d tensor
    does not change the dtype of a float tensor it meets, as float64 Adam bias corrections do not widen float32
    moments); they are passed as Python numbers, which numpy also treats as weak."""
    if node.op.category != ELEMENTWISE or not node.dtype.is_floating_point or \
            not any(type(x) is Node and x.shape != () for x in node.inputs):
        return set()
    return {x for x in node.inputs if type(x) is Node and x.shape == () and x.dtype.is_floating_point
            and x.dtype is not node.dtype}


def memory(node: Node) -> Node:
    """The node whose buffer node's value lives in (views lead to their base)."""
    while node.kind == "op" and node.op.category == VIEW:
        node = node.inputs[0]
    return node


def new_memory(node: Node) -> bool:
    """Whether node's numpy forward always returns new memory: elementwise ops and matrix products do (a view, a
    reduction over no dims, or another op may return an operand's memory)."""
    return node.kind == "op" and node.op.category in (ELEMENTWISE, MATMUL)


def _is_ufunc(node: Node) -> bool:
    return node.kind == "op" and node.op.ufunc is not None


class Buffers:
    """The numpy plan's buffers for intermediate values, shared by liveness: a ufunc's step takes a free buffer of its
    value's shape and dtype, and the runtime gives the array of a value in `recycled` back once its last reader is
    running (Runtime.run_all): before that reader's step when the step takes a buffer itself, so that a ufunc
    computes into an operand it reads for the last time (numpy computes a ufunc whose output is one of its operands
    as if they did not overlap), where eager code would allocate: a linear layer's bias is added into its product,
    and Adam's chains of ufuncs on one parameter compute into one array each. A buffer given back is kept only while
    later steps of the call will take one like it (known from the previous call's takes; a first call keeps them
    all), and none is kept between calls: the plan holds no more memory than eager code would (a later step finds
    pages already mapped instead of fresh ones, which is what makes reuse faster than allocating; a first call's
    fresh pages cost the most: an MLP step's first call faulted in 120 MB)."""

    def __init__(self, recycled: set[Node]):
        self.recycled = recycled
        self.free: dict[tuple, list[np.ndarray]] = {}
        self.takes: list[tuple] = []  # this call's, in order
        self.counts: dict[tuple, int] | None = None  # the last call's takes of each kind
        self.wanted: dict[tuple, int] = {}  # takes of each kind still to come in this call

    def take(self, shape: tuple, dtype: np.dtype) -> np.ndarray:
        key = (shape, dtype)
        self.takes.append(key)
        self.wanted[key] = self.wanted.get(key, 0) - 1
        found = self.free.get(key)
        return found.pop() if found else np.empty(shape, dtype)

    def give(self, a: np.ndarray) -> None:
        key = (a.shape, a.dtype)
        free = self.free.setdefault(key, [])
        if self.counts is None or len(free) < self.wanted.get(key, 0):
            free.append(a)

    def start_call(self) -> None:
        self.wanted = dict(self.counts or {})

    def end_call(self) -> None:
        self.counts = collections.Counter(self.takes)
        self.free, self.takes = {}, []


def _compile_buffered(node: Node, take):
    """A same-dtype ufunc writing into a buffer from take(shape, dtype) (out=), of its operands' broadcast shape."""
    forward, want, inputs = node.op.ufunc, np.dtype(node.dtype.np), node.inputs

    if len(inputs) == 1:
        (a,) = inputs

        def run(values: dict) -> None:
            x = values[a]
            values[node] = forward(x, out=take(x.shape, want))
        return run
    a, b = inputs
    weak = weak_operands(node)
    if weak:  # an array and a 0-d value of another dtype, read as a Python number (weak_operands)
        array, number = (a, b) if b in weak else (b, a)

        def run(values: dict) -> None:
            x, y = values[array], values[number].item()
            values[node] = forward(*((x, y) if array is a else (y, x)), out=take(x.shape, want))
    elif type(a) is Node and type(b) is Node:
        def run(values: dict) -> None:
            x, y = values[a], values[b]
            shape = x.shape if x.shape == y.shape else np.broadcast_shapes(x.shape, y.shape)
            values[node] = forward(x, y, out=take(shape, want))
    elif type(a) is Node:
        def run(values: dict) -> None:
            x = values[a]
            values[node] = forward(x, b, out=take(x.shape, want))
    else:
        def run(values: dict) -> None:
            y = values[b]
            values[node] = forward(a, y, out=take(y.shape, want))
    return run


def _compile_into(node: Node, source: Node, elsewhere):
    """A same-dtype ufunc writing into the array of graph input source (a reinplaced update, reinplace.py), or as
    `elsewhere` computes it (into a shared buffer or new memory) when this call's array cannot take it (read-only, as
    in a plan's first run; another dtype, gaps in its layout); its shape is the value's shape, which the entry's
    guards check (Entry.fits)."""
    forward, want, inputs = node.op.ufunc, np.dtype(node.dtype.np), node.inputs
    weak = weak_operands(node)
    kinds = tuple(0 if type(x) is not Node else 2 if x in weak else 1 for x in inputs)

    def run(values: dict) -> None:
        out = values[source]
        if not takes(out, want):
            return elsewhere(values)
        args = [values[x].item() if kind == 2 else values[x] if kind else x for kind, x in zip(kinds, inputs)]
        values[node] = forward(*args, out=out)
    return run


def takes(array: np.ndarray, dtype: np.dtype) -> bool:
    """Whether a graph input's array can take a value of dtype computed into it: writable, that dtype, and laid out
    without gaps or overlap (row- or column-major)."""
    flags = array.flags
    return array.dtype == dtype and flags.writeable and (flags.c_contiguous or flags.f_contiguous)


def buffered_ufunc(n: Node) -> bool:
    """Whether a ufunc node can be computed into a given buffer (out=): one or two operands of its dtype (or Python
    scalars, or 0-d values read as numbers: weak_operands), no attrs, not fp16/bf16 (computed in fp32)."""
    return (_is_ufunc(n) and not n.attrs and 1 <= len(n.inputs) <= 2 and any(type(x) is Node for x in n.inputs)
            and all(x.dtype is n.dtype or x in weak_operands(n) for x in n.inputs if type(x) is Node)
            and all(type(x) in (int, float, bool) for x in n.inputs if type(x) is not Node)
            and n.dtype not in LOW_PRECISION)


def recycled_values(graph: Graph) -> set[Node]:
    """Nodes whose arrays are given back to Buffers once their values are dead: buffered ufuncs and matrix products
    (new memory, their own) whose values only ufuncs and matrix products read (those never return an operand's
    memory, so nothing refers to the array once they have run), and never a graph output (outputs reach the caller).
    Readers of a node's shape alone (Op.shape_inputs: the sum_to in a broadcasting op's backward) do not keep its
    buffer: a buffer is taken again only for a value of the same shape and dtype."""
    users: dict[Node, list[Node]] = {n: [] for n in graph.nodes}
    for n in graph.nodes:
        for x in value_inputs(n):
            users[x].append(n)
    outputs = set(graph.outputs)
    return {n for n in graph.nodes if n not in outputs and users[n]
            and (buffered_ufunc(n) or n.kind == "op" and n.op.category == MATMUL)
            and all(_is_ufunc(u) or u.op.category == MATMUL for u in users[n])}


def numpy_steps(graph: Graph) -> Steps:
    """The numpy backend's plan: one step per op node; ufuncs compute into buffers shared by liveness."""
    buffers = Buffers(recycled_values(graph))
    return Steps((OpStep(n, buffers) for n in graph.nodes if n.kind == "op"), buffers=buffers)


def infer_shapes(graph: Graph, input_shapes: list[tuple]) -> dict[Node, tuple]:
    """Every node's shape for inputs of these shapes (sizes are never baked into a plan)."""
    return propagate_shapes(graph.nodes, dict(zip(graph.inputs, input_shapes)))


def propagate_shapes(nodes: list[Node], known: dict[Node, tuple]) -> dict[Node, tuple]:
    """The shapes of nodes (in topological order) given those of the input nodes among them."""
    metas = {node: Meta(shape, node.dtype, node.device) for node, shape in known.items()}
    for node in nodes:
        if node.kind == "const":
            metas[node] = Meta(np.shape(node.value), node.dtype, node.device)
        elif node.kind == "op":
            args = [metas[x] if type(x) is Node else x for x in node.inputs]
            metas[node] = Meta(node.op.infer(*args, **node.attrs)[0], node.dtype, node.device)
    return {n: m.shape for n, m in metas.items()}


class Runtime:
    """A compiled plan, callable on input arrays (in graph.inputs order); returns output arrays (graph.outputs).
    `observer`, when set, is called with the runtime and the input arrays of each call (graphc.explain and
    precompile record the plans a function runs, a compiled backward's included)."""

    observer: Callable[[Runtime, list], None] | None = None

    def __init__(self, plan: Plan):
        self.plan, self.graph = plan, plan.graph
        self.consts = {n: n.value for n in plan.graph.nodes if n.kind == "const"}
        self.const_outputs = [i for i, n in enumerate(plan.graph.outputs) if memory(n).kind == "const"]
        self.needs_shapes = any(type(s) is not OpStep for s in plan.steps)
        self.buffers = plan.steps.buffers if isinstance(plan.steps, Steps) else None
        recycled = self.buffers.recycled if self.buffers is not None else set()
        last_read = {n: i for i, s in enumerate(plan.steps) if type(s) is OpStep for n in value_inputs(s.nodes[0])
                     if n in recycled}
        self.schedule = []  # (step, its run when an OpStep, dead values, arrays given back before it, and after it)
        for i, (s, free) in enumerate(zip(plan.steps, plan.frees)):
            given = tuple(dict.fromkeys(n for n in value_inputs(s.nodes[0]) if last_read.get(n) == i)) \
                if type(s) is OpStep else ()
            early = type(s) is OpStep and s.takes
            self.schedule.append((s, s.run if type(s) is OpStep else None, tuple(free), given if early else (),
                                  () if early else given))
        position = {n: i for i, n in enumerate(plan.graph.inputs)}
        self.written = sorted({position[source] for s in plan.steps for source in s.into.values()})
        self.first_write = next((i for i, s in enumerate(plan.steps) if s.into), len(plan.steps))
        self._last_shapes: tuple | None = None
        self._shapes: dict | None = None
        # the library of the plan's kernels that compute products (numpy's OpenBLAS runs on one thread meanwhile)
        self.products = next((s.library for s in plan.steps if type(s) is CKernelStep and s.kernel.gemm or
                              type(s) is TemplateStep and s.library is not None), None)

    def shapes_for(self, arrays: list) -> dict | None:
        if not self.needs_shapes:
            return None
        key = tuple(a.shape for a in arrays)
        if key != self._last_shapes:
            self._last_shapes, self._shapes = key, infer_shapes(self.graph, list(key))
        return self._shapes

    def __call__(self, arrays: list, inplace: bool = False) -> list:
        """The outputs for these inputs. With `inplace` (a replay), the new values of inputs updated in place may be
        computed straight into the input arrays (reinplace.py)."""
        if self.observer is not None:
            self.observer(self, arrays)
        values = self.run_all(arrays, free=True, inplace=inplace)
        outs = [values[n] for n in self.graph.outputs]
        for i in self.const_outputs:  # constants stay the plan's own: callers get copies they may write to
            outs[i] = outs[i].copy()
        # a value computed into an input the call may not write (run_all's read-only views): the caller's copy
        return [o.copy() if type(o) is np.ndarray and not o.flags.writeable else o for o in outs]

    def run_all(self, arrays: list, free: bool = False, inplace: bool = False) -> dict[Node, object]:
        """Run the plan; every node's value is kept unless `free`, which drops each after its last use. Input arrays
        are written (`inplace`) only where no other input shares their memory; otherwise the steps see them
        read-only, and compute those values into new memory. While the plan's kernels compute products on OpenMP's
        threads, numpy's OpenBLAS runs on one (native.one_blas_thread)."""
        if self.written and not (inplace and self.unshared(arrays)):
            inplace, arrays = False, list(arrays)
            for i in self.written:
                arrays[i] = arrays[i].view()
                arrays[i].flags.writeable = False
        with small_pages():
            if self.products is not None and self.products.functions is not None:
                from .native import one_blas_thread

                with one_blas_thread():
                    return self._run_all(arrays, free, inplace)
            return self._run_all(arrays, free, inplace)

    def _run_all(self, arrays: list, free: bool, inplace: bool) -> dict[Node, object]:
        values = dict(self.consts)
        values.update(zip(self.graph.inputs, arrays))
        shapes = self.shapes_for(arrays)
        buffers = self.buffers if free else None  # kept values keep their buffers
        if buffers is not None:
            buffers.start_call()
        try:
            for step, run, dead, given_before, given_after in self.schedule:
                if buffers is not None:
                    for n in given_before:
                        buffers.give(values[n])
                if run is not None:
                    run(values)
                else:
                    step(values, shapes)
                if free:
                    for n in given_after:
                        buffers.give(values[n])
                    for n in dead:
                        del values[n]
        except Exception as e:
            where = next((n.where for n in step.nodes if n.where), "an unknown line")
            if inplace and self.plan.steps.index(step) > self.first_write:
                raise InputsWrittenError(f"graphc.compile: {' '.join(step.ops)} (at {where}) failed after the call "
                                         "had updated inputs in place, so it is not run again eagerly (that would "
                                         f"update them twice): {type(e).__name__}: {e}") from e
            if isinstance(e, (ValueError, TypeError, IndexError)):  # an op refusing a value (an index out of range)
                raise refusal(e, f"{e}\n  in the plan's step {' '.join(step.ops)}, traced at {where}") from e
            raise
        if buffers is not None:
            buffers.end_call()
        return values

    def unshared(self, arrays: list) -> bool:
        """Whether no input array shares its owner's memory with an array this plan writes into."""
        written = {id(memory_owner(arrays[i])) for i in self.written}
        return len(written) == len(self.written) and \
            sum(id(memory_owner(a)) in written for a in arrays) == len(self.written)


@contextlib.contextmanager
def small_pages():
    """numpy's arrays of 4 MB and more allocated without its advice to back them with transparent huge pages, inside
    the block (a plan's run), as torch allocates; NUMPY_MADVISE_HUGEPAGE, numpy's own switch, decides where it is
    set. A fresh huge page is zeroed 2 MB at a time, and on a virtual machine whose host reclaims free memory (the
    2-core machine of docs/benchmarks.md) it faults in slowly: an MLP step's first call spent 0.16-0.41 s of system
    time faulting in its new arrays (gradients, moments, temporaries), against 0.06-0.10 s with 4 KB pages."""
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        yield
        return
    before = _set_madvise_hugepage(False)
    try:
        yield
    finally:
        _set_madvise_hugepage(before)


class InputsWrittenError(RuntimeError):
    """A replay failed after it had computed new values into some of its inputs (reinplace.py)."""


def refusal(e: Exception, message: str) -> Exception:
    """e's kind (its built-in class; ValueError as RefusedValueError) with message; still ValuesRefused when e is
    (a check op's refusal)."""
    kind = RefusedValueError if isinstance(e, ValueError) else next(
        c for c in type(e).__mro__ if c.__module__ == "builtins")
    return (values_refused(kind) if isinstance(e, ValuesRefused) else kind)(message)


def reference_values(graph: Graph, arrays: list, given: dict | None = None) -> dict[Node, np.ndarray]:
    """Every node's value computed op by op (the eager semantics a plan must match; mode='check'). `given` supplies
    the values of random ops, which would draw anew."""
    values = {n: n.value for n in graph.nodes if n.kind == "const"}
    values.update(zip(graph.inputs, arrays))
    for node in graph.nodes:
        if node.kind == "op":
            if given and node in given:
                values[node] = given[node]
            else:
                _compile_call(node)(values)
    return values


# ---- kernel steps: fused groups launched through a renderer ------------------------------------------------
def torch_dtype(dt: dtypes.dtype):
    import torch

    return getattr(torch, {"bool": "bool"}.get(dt.name, dt.name))


def as_torch(value, backend: str):
    import torch

    if isinstance(value, torch.Tensor):
        return value
    a = np.asarray(value)
    if a.dtype == dtypes.bfloat16.np and backend == "interpret":
        raise NotImplementedError("bfloat16 tensors cannot run under the Triton interpreter; use backend='triton'")
    if any(s < 0 for s in a.strides):
        a = np.ascontiguousarray(a)
    elif backend == "interpret" and a.base is not None:
        # the interpreter copies a launch's tensors to host and back by storage, keyed by data pointer: two views
        # of one array that start at the same address but span different lengths (v and v[0]) make it fail
        # ("size does not match"). Kernels never write their inputs, so a copy is equivalent.
        a = a.copy()
    t = to_torch(a)
    return t if backend == "interpret" else standin.to_gpu(t)


def as_numpy(value) -> np.ndarray:
    torch = sys.modules.get("torch")  # a torch tensor exists only once torch is imported: never import it here
    if torch is not None and isinstance(value, torch.Tensor):
        return from_torch(value)
    return np.asarray(value)


class KernelStep(Step):
    """One launch of a generated kernel computing a fused group; .kind is the group's kind, .source its code.
    Subclasses launch through a renderer's runtime (TritonKernelStep, CKernelStep)."""

    role = "kernel"
    fresh = True

    def __init__(self, group: Group, source: str, name: str, backend: str):
        self.chains = [(key, *view_chain(key[0])) for key in group.loads]  # (load, its base, the views over it)
        reads = list(dict.fromkeys(base for _, base, _ in self.chains))
        super().__init__(reads, list(group.outputs) + list(group.copies), list(group.nodes))
        self.group, self.kind, self.source, self.name, self.backend = group, group.kind, source, name, backend
        self.relations = size_relations(group, ShapesAtPlanTime())
        self._fits: tuple = (None, True)  # (the shapes dict last checked, whether it kept the relations)
        self._by_op = [FallbackStep(node, "", backend) for node in group.nodes]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} {self.name}>"

    def fits(self, shapes: dict) -> bool:
        """Do this call's sizes keep what the fusion relied on, and give the kernel elements to compute (else the
        group runs op by op: a reduction over an empty dim still has results, 0 or NaN, that no kernel writes)?"""
        if self._fits[0] is not shapes:  # the runtime hands the same dict while input shapes stay the same
            self._fits = (shapes, size_relations(self.group, shapes) == self.relations
                          and all(shapes[self.group.anchor]))
        return self._fits[1]

    def run_numpy(self, values: dict, shapes: dict) -> None:
        """The group op by op with numpy: for a call whose sizes break what the fusion relied on (a dim that becomes
        1, or stops being 1, changes what broadcasting means; two sizes equal by coincidence at plan time differ),
        and for the cpu backend's first calls, while its native kernels build."""
        local = dict(values)
        for step in self._by_op:
            step(local, shapes)
        for n in self.writes:
            values[n] = local[n]

    def publish_copies(self, values: dict) -> None:
        """The outputs the kernel did not store, each the array of the member it copies (fusion's copy
        propagation; a call that runs the kernel fits its sizes, under which they hold the same values)."""
        for n, source in self.group.copies.items():
            values[n] = values[source]

    def operands(self, values: dict, shapes: dict, convert) -> dict:
        """Each load's array (converted by convert) seen through its views, keyed like group.loads."""
        return {key: view_through(convert(values[base]), chain, shapes) for key, base, chain in self.chains}

    def output_view(self, buf, n: Node, space: tuple, shapes: dict):
        """Output n's buffer as the kernel writes it: through a stored permutation, placed in the space."""
        for v in reversed(self.group.permuted.get(n, [])):
            buf = buf.transpose(tuple(np.argsort(v.attrs["dims"]).tolist())) if type(buf) is np.ndarray else \
                buf.permute(tuple(np.argsort(v.attrs["dims"]).tolist()))
        return self.place(buf, n if n in self.group.row_indexed else None, space, shapes)

    def place(self, t, consumer: Node | None, space: tuple, shapes: dict):
        """t as an array of the iteration space's shape (stride 0 where it does not vary); a per-row consumer's
        operand (or output) has the kept dims of the space. A kernel template reads and writes its own shapes."""
        if self.group.kind == "template":
            return t
        if consumer is None:
            return broadcast_to(t, space)
        dims = self.group.dims
        t = broadcast_to(t, tuple(shapes[consumer]))
        return broadcast_to(t.reshape([1 if d in dims else s for d, s in enumerate(space)]), space)


class TritonKernelStep(KernelStep):
    """One launch of a generated Triton kernel (on CUDA tensors, or under the interpreter)."""

    def __init__(self, group: Group, source: str, name: str, backend: str, mode: str, template, signature: dict,
                 constexprs: dict):
        super().__init__(group, source, name, backend)
        self.mode, self.template, self.signature, self.constexprs = mode, template, signature, constexprs
        self.tuned: dict[tuple, dict] = {}  # max-autotune: the fastest config per iteration space
        self.scratch: dict = {}  # per device: scratch buffers of a kernel combining partial results with atomics

    def ptx(self, arch: int = 90) -> str:
        """PTX for this kernel on sm_<arch>, compiled ahead of time (no GPU needed)."""
        return cache.aot(self.source, self.name, self.signature, self.constexprs, arch)["ptx"]

    def cubin(self, arch: int = 90) -> bytes:
        return cache.aot(self.source, self.name, self.signature, self.constexprs, arch)["cubin"]

    def kernel(self):
        """The kernel its renderer's launch runs as kernel[grid](*args, **config): Triton's JIT function (or the
        interpreter's); under precompile's stand-in GPU, launches that compile for its target and run nothing."""
        return standin.launchable(cache.load(self.source, self.name, self.backend))

    def __call__(self, values: dict, shapes: dict) -> None:
        import torch

        g = self.group
        if not self.fits(shapes):
            return self.run_numpy(values, shapes)
        space = tuple(shapes[g.anchor])
        raw = self.operands(values, shapes, lambda v: as_torch(v, self.backend))
        loads = [self.place(raw[key], key[1], space, shapes) for key in g.kernel_loads()]
        outs, out_views = [], []
        for n in g.outputs:
            shape = tuple(shapes[n])
            buf = (torch.from_numpy(np.empty(shape, n.dtype.np)) if self.backend == "interpret"
                   else torch.empty(shape, dtype=torch_dtype(n.dtype), device=standin.device()))
            outs.append(buf)
            out_views.append(self.output_view(buf, n, space, shapes))
        self.pick(space, lambda config: self.template.launch(self, loads, out_views, space, raw,
                                                             dict(config, enable_fp_fusion=cache.FP_FUSION)))
        if standin.active():  # the launches ran nothing: the group's values op by op, for the steps after it
            self.run_numpy(values, shapes)
            for n, buf in zip(g.outputs, outs):
                buf.copy_(to_torch(np.asarray(values[n], order="C")))
        for n, buf in zip(g.outputs, outs):
            values[n] = buf.numpy() if self.backend == "interpret" else buf
        self.publish_copies(values)

    def pick(self, space: tuple, run) -> None:
        """Launch with the heuristic config, or in mode='max-autotune' on a GPU with the fastest of the template's
        configs for this space (timed once per space)."""
        configs = self.template.configs(self.group, space)
        if self.mode != "max-autotune" or self.backend != "triton" or len(configs) == 1:
            return run(configs[0])
        if space not in self.tuned:
            self.tuned[space] = min(configs, key=lambda config: gpu_ms(lambda: run(config)))
        run(self.tuned[space])


class CKernelStep(KernelStep):
    """One call of a native C kernel (the cpu backend) on numpy arrays. A plan of these runs once its library is built
    (tiered.py); where the build failed, or a call's sizes do not fit the fusion, the group runs op by op with numpy
    (a failed build: with one warning). A matmul group's kernel computes its product with numpy's OpenBLAS on its own
    OpenMP threads (render_c.render_gemm, gemm_arguments), or reads it from numpy's matmul where it cannot."""

    def __init__(self, kernel, library):
        super().__init__(kernel.group, kernel.source, kernel.name, "cpu")
        self.kernel, self.library = kernel, library
        self._function = None
        # the sizes and strides of the last call, (its shapes, its operands' strides, the integer arguments, their
        # address): placing operands in the iteration space costs more than many small kernels, and only depends on
        # those
        self._arguments: tuple = (None, None, None, None)
        self._addresses: list[tuple] = []  # per argument, (a weak reference to the last call's array, its address)
        self._gemm: dict[tuple, tuple | None] = {}  # gemm_arguments by the operands' shapes and strides

    def can_compute_into(self, node: Node, source: Node, aliases: set[Node]) -> bool:
        """An elementwise kernel (or a matmul's epilogue, whose product reads nothing sharing source's memory) whose
        output node is stored at the element of the iteration space it is computed at, where every load of a value
        sharing source's memory is source itself at that same element, loaded before node is stored (node is
        computed from it: the emitter loads each operand once per element, where it is first used)."""
        g, k = self.group, self.kernel
        if not g.may_compute_in_place or node not in k.outputs or g.permuted.get(node) or \
                node in g.row_indexed or not node.shape == source.shape == g.space or node.dtype is not source.dtype:
            return False
        if k.product is not None and any(view_chain(x)[0] in aliases for x in k.product.inputs if type(x) is Node):
            return False
        loaded = [(x, consumer) for x, consumer in k.loads if view_chain(x)[0] in aliases]
        if any(x is not source or consumer is not None for x, consumer in loaded):
            return False
        if not loaded:
            return True
        members, stack, seen = set(g.nodes), [node], set()
        while stack:
            n = stack.pop()
            if n not in seen:
                seen.add(n)
                if source in n.inputs:
                    return True
                stack += [b for x in n.inputs if type(x) is Node for b in [view_chain(x)[0]] if b in members]
        return False

    def __call__(self, values: dict, shapes: dict) -> None:
        function = self._function
        if function is None:
            functions = self.library.functions
            if functions is None or not self.fits(shapes):
                if self.library.error is not None:
                    from .native import notice

                    notice(self.library.error)
                return self.run_numpy(values, shapes)
            function = self._function = functions[self.name]
        elif not self.fits(shapes):
            return self.run_numpy(values, shapes)
        g, k = self.group, self.kernel
        space = tuple(shapes[g.anchor])
        raw = self.operands(values, shapes, np.asarray)
        gemm = ()
        if k.product is not None:
            a, b = raw[k.product.inputs[0], None], raw[k.product.inputs[1], None]
            found = self.gemm_arguments(a, b) if k.gemm else None
            if found is None:
                product = blas_matmul(a, b, k.product.dtype)
                if k.gemm:  # no ?gemm function: the kernel runs the epilogue only, over (1, rows, N) with K = 0
                    gemm = (np.zeros(4, np.uint64), np.array([1, math.prod(space[:-1]), space[-1], 0, 0, 0, 0, 0, 0],
                                                             np.int64))
            else:
                a, b, ints, offsets, address = found
                product = np.empty(tuple(shapes[k.product]), k.product.dtype.np)
                gemm = (np.array([a.ctypes.data, b.ctypes.data, address, offsets.ctypes.data], np.uint64), ints)
            raw[k.product, None] = product
            if k.product in g.outputs:
                values[k.product] = product
        loads = [raw[key] for key in k.loads]
        into = self.into
        outs = [np.empty(tuple(shapes[n]), n.dtype.np) if n not in into else self.buffer(n, values[into[n]], shapes)
                for n in k.outputs]
        if outs or gemm:
            strides = tuple(a.strides for a in loads + outs) if into else tuple(a.strides for a in loads)
            if self._arguments[0] is shapes and self._arguments[1] == strides:
                arrays, ints, address = loads + outs, self._arguments[2], self._arguments[3]
            else:
                arrays = [self.place(a, key[1], space, shapes) for a, key in zip(loads, k.loads)]
                arrays += [self.output_view(buf, n, space, shapes) for n, buf in zip(k.outputs, outs)]
                ints = np.array([*space, *(s // a.itemsize for a in arrays for s in a.strides)], np.int64)
                address = ints.ctypes.data
                if all(a.ctypes.data == b.ctypes.data for a, b in zip(arrays, loads + outs)):  # no copy was made
                    self._arguments = (shapes, strides, ints, address)
            pointers = self.addresses(arrays)
            if gemm:
                pointers += gemm[0].tolist()
                ints = np.concatenate([ints, gemm[1]])
                address = ints.ctypes.data
            function((ctypes.c_uint64 * len(pointers))(*pointers), address)
        for n, buf in zip(k.outputs, outs):
            values[n] = buf
        self.publish_copies(values)

    def gemm_arguments(self, a: np.ndarray, b: np.ndarray) -> tuple | None:
        """(a, b, the GEMM's integers, its batch offsets, the ?gemm function's address) for the kernel's product of
        a and b (render_c's GC_GEMM); a or b copied when a matrix of it is not a BLAS layout (a unit stride along one
        of its dims). None where the kernel cannot: no BLAS (native.gemm), an empty inner dim, sizes that overflow
        32-bit BLAS integers."""
        from .native import gemm

        key = (a.shape, a.strides, b.shape, b.strides)
        if key not in self._gemm:
            self._gemm[key] = gemm_layout(a, b, gemm())
        found = self._gemm[key]
        if found is None:
            return None
        copy_a, copy_b, ints, offsets, address = found
        return (np.ascontiguousarray(a) if copy_a else a, np.ascontiguousarray(b) if copy_b else b, ints, offsets,
                address)

    def addresses(self, arrays: list[np.ndarray]) -> list[int]:
        """The data addresses of a launch's arrays. An argument that is the same array as at the last call (an input
        read again, a parameter) keeps its address: numpy's .ctypes.data costs more than a small kernel."""
        known = self._addresses
        if len(known) != len(arrays):
            known[:] = [(None, 0)] * len(arrays)
        out = []
        for i, a in enumerate(arrays):
            ref, address = known[i]
            if ref is None or ref() is not a:
                address = a.ctypes.data
                known[i] = (weakref.ref(a), address)
            out.append(address)
        return out

    @staticmethod
    def buffer(n: Node, array: np.ndarray, shapes: dict) -> np.ndarray:
        """Where output n goes: the array of the input it is computed into (reinplace.py), or new memory when this
        call's array cannot take it."""
        shape = tuple(shapes[n])
        return array if array.shape == shape and takes(array, np.dtype(n.dtype.np)) else np.empty(shape, n.dtype.np)


def gemm_layout(a: np.ndarray, b: np.ndarray, blas) -> tuple | None:
    """How the kernel's GEMM reads a (..., M, K) and b (..., K, N), batch dims broadcast as torch.matmul: (whether a,
    whether b must be made contiguous first, the GEMM's integers, the batch offsets, the ?gemm address), or None (see
    CKernelStep.gemm_arguments). Batches whose rows follow each other in a (a 3-d linear: b has no batch dims) are one
    GEMM over all their rows."""
    if blas is None or a.shape[-1] == 0 or a.dtype != b.dtype or a.dtype.name not in blas.gemm:
        return None
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    (m, k), n = a.shape[-2:], b.shape[-1]
    found = []
    for x, shape in ((a, (m, k)), (b, (k, n))):
        steps = element_steps(x.shape, [s // x.itemsize for s in x.strides])
        copy = blas_matrix(shape, steps[-2:]) is None
        if copy:  # a contiguous copy is a BLAS layout
            steps = element_steps(x.shape, [math.prod(x.shape[d + 1:]) for d in range(x.ndim)])
        found.append((copy, [0] * (len(batch) + 2 - x.ndim) + steps[:-2], blas_matrix(shape, steps[-2:])))
    (copy_a, batch_a, (ta, lda)), (copy_b, batch_b, (tb, ldb)) = found
    rows = [(size, step) for size, step in zip(batch + (m,), batch_a + [lda if not ta else 0]) if size != 1]
    if not any(batch_b) and not ta and all(s0 == n1 * s1 for (_, s0), (n1, s1) in zip(rows, rows[1:])):
        merged = blas_matrix((math.prod(batch) * m, k), [rows[-1][1] if rows else k, 1])
        if merged is not None and not merged[0]:  # one GEMM over every batch's rows
            batch, m, lda, batch_a = (), math.prod(batch) * m, merged[1], []
    if blas.interface != INT64 and max(math.prod(batch) * m, n, k, lda, ldb) >= 2 ** 31:
        return None
    offsets = np.zeros(2, np.int64)
    if batch:  # per batch: the offsets of its matrices in a and in b
        index = np.indices(batch).reshape(len(batch), -1)
        offsets = np.stack([np.dot(batch_a, index), np.dot(batch_b, index)], 1).astype(np.int64).reshape(-1)
    ints = np.array([math.prod(batch), m, n, k, ta, lda, tb, ldb, blas.interface], np.int64)
    return copy_a, copy_b, ints, offsets, blas.gemm[a.dtype.name]


def element_steps(shape: tuple, steps: list[int]) -> list[int]:
    """Strides in elements, 0 along dims of size 1 (where a stride means nothing)."""
    return [step if size != 1 else 0 for size, step in zip(shape, steps)]


def blas_matrix(shape: tuple, steps: list[int]) -> tuple[int, int] | None:
    """(transposed, leading dimension) of a (rows, cols) matrix with these element strides as row-major BLAS reads
    it, or None when it cannot (no unit stride, or overlapping rows)."""
    rows, cols = shape
    row_step, col_step = steps
    if cols == 1 or col_step == 1:
        ld = row_step if rows > 1 else max(cols, 1)
        if ld >= max(cols, 1):
            return 0, ld
    if rows == 1 or row_step == 1:
        ld = col_step if cols > 1 else max(rows, 1)
        if ld >= max(rows, 1):
            return 1, ld
    return None


def blas_matmul(a: np.ndarray, b: np.ndarray, dtype: dtypes.dtype) -> np.ndarray:
    """a @ b with BLAS (the matmul op's numpy implementation); fp16/bf16 operands are multiplied in fp32 and the
    product rounded once, as torch does."""
    if dtype.is_low_precision:
        return matmul.forward(a.astype(np.float32), b.astype(np.float32)).astype(dtype.np)
    return matmul.forward(a, b)


def gpu_ms(run, repeats: int = 5) -> float:
    """Milliseconds per call of run on the current CUDA stream (after one warm-up call)."""
    import torch

    run()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeats):
        run()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


class ShapesAtPlanTime(dict):
    def __missing__(self, node: Node) -> tuple:
        return tuple(node.shape)


def size_relations(group: Group, shapes: dict) -> tuple:
    """What the fusion of a group relied on about sizes, for these shapes: which dims of each node and operand are 1
    (broadcasting), which of their dims equal the iteration space's (placement), and whether each per-row value has
    one element per row. A call whose relations differ from those at plan time (two sizes that were equal by
    coincidence now differ) cannot use the kernel as fused. A kernel template takes any sizes its op does."""
    if group.kind == "template":
        return ()
    nodes = group.nodes
    values = nodes + [x for n in nodes for x in n.inputs if isinstance(x, Node)]
    space = tuple(shapes[group.anchor])
    rows = math.prod(s for d, s in enumerate(space) if d not in group.dims)
    relations = []
    for x in values:
        shape = tuple(shapes[x])
        relations.append(tuple(s == 1 for s in shape))
        if x in group.row_indexed:
            relations.append(math.prod(shape) == rows)
        else:
            relations.append(tuple(p == s for p, s in zip((1,) * (len(space) - len(shape)) + shape, space)))
    return tuple(relations)


def broadcast_to(t, space: tuple):
    """A numpy array or torch tensor t broadcast to the shape space (stride 0 where it does not vary)."""
    if type(t) is np.ndarray:
        return np.broadcast_to(t, space)
    return t[(None,) * (len(space) - t.ndim)].expand(space)


class FallbackStep(Step):
    """An op with no Triton lowering, run with numpy between kernels; reason says why."""

    role = "fallback"

    def __init__(self, node: Node, reason: str, backend: str):
        reads = []
        for x in value_inputs(node):
            if view_chain(x)[0] not in reads:
                reads.append(view_chain(x)[0])
        super().__init__(reads, [node], [node])
        self.node, self.reason, self.backend = node, reason, backend
        self.fresh = new_memory(node)

    def __call__(self, values: dict, shapes: dict) -> None:
        shape_only = self.node.op.shape_inputs  # stand-ins of their shape: the plan need not have computed them
        operands = [np.broadcast_to(np.zeros((), x.dtype.np), shapes[x]) if i in shape_only else
                    self.operand(x, values, shapes) for i, x in enumerate(self.node.inputs)]
        values[self.node] = self.to_backend(run_forward(self.node.op, operands, self.node.attrs, self.node.dtype,
                                                        self.node.inputs, self.node.dtype.is_low_precision))

    def operand(self, x, values: dict, shapes: dict):
        if not isinstance(x, Node):
            return x
        base, chain = view_chain(x)
        return view_through(as_numpy(values[base]), chain, shapes)

    def to_backend(self, a: np.ndarray):
        return a if self.backend != "triton" else as_torch(a, "triton")


class TemplateStep(FallbackStep):
    """Kernel-template groups on the cpu backend whose nodes share their operands (one group, or groups the module
    joins): their nodes computed together by the template's cpu module (render_c_<module>.py: C functions in the
    plan's library, with numpy where it did not build), which shares the work that op-by-op numpy forwards would
    repeat."""

    def __init__(self, groups: list[Group], module, reason: str, library=None):
        super().__init__(groups[0].nodes[0], reason, "cpu")
        self.writes = self.nodes = [n for g in groups for n in g.nodes]
        self.groups, self.module, self.library = groups, module, library

    def __call__(self, values: dict, shapes: dict) -> None:
        operands = [self.operand(x, values, shapes) for x in self.node.inputs]
        values.update(zip(self.nodes, self.module.launch(self.groups, operands, self.library)))


class ViewStep(FallbackStep):
    """A graph output that is a view of another value: made with numpy (no data moves, no kernel)."""

    role = "op"

    def __call__(self, values: dict, shapes: dict) -> None:
        values[self.node] = self.to_backend(self.operand(self.node, values, shapes))
