"""graphc.compile: guards, caches and the call path of a compiled function.

A call whose guards match a cached whole-function entry replays its plan: no Python of the user's function runs.
Otherwise the function is traced (graphc.compiler.capture) and each finished segment runs through a plan cached by
the segment's graph structure. A trace becomes a whole-function entry when it had no graph break, left no proxy
behind outside its results (no new state such as lazily created optimizer moments) and returns nothing that
requires grad; other traces simply trace again on the next call, reusing the cached segment plans."""
from __future__ import annotations

import copy
import dataclasses
import functools
import gc
import inspect
import os
import types
import warnings
import weakref
from collections.abc import Callable, Iterator

import numpy as np

from .. import autograd, dtypes
from ..dispatch import dispatch, memory_owner
from ..errors import ValuesRefused, warn_at_user
from ..state import STATE
from ..tensor import Size, Tensor, copy_storage
from .capture import Capture, CaptureError, GraphBreakError, TracedShape, own_memory, write_into
from .functionalization import argument_aliasing, viewed_by
from .ir import Graph, Node, ancestors
from .joint import (
    CompiledBackward,
    CompiledNode,
    Split,
    autograd_proxies,
    backward_reaches_leaves,
    has_hooks,
    reaches,
    record_backward,
)
from .logs import log, log_plan, logs_on
from .passes import optimize
from .plan import Plan, Steps
from .reinplace import reinplace
from .runtime import Runtime, infer_shapes, memory, numpy_steps, propagate_shapes, reference_values
from .scalars import FLOATS, ScalarInputs
from .state_guard import ArgumentGuard, StateGuard, plain_object
from .tiered import TieredRuntime

BACKENDS = ("auto", "triton", "interpret", "cpu", "numpy")
MODES = ("default", "max-autotune", "eager", "check")
MAX_ENTRIES = 8  # cached traces per function (torch.compile's cache_size_limit); then a miss runs eagerly
SCALARS = (int, float, bool, str, type(None), complex)
_ALL: weakref.WeakSet = weakref.WeakSet()


class CheckError(AssertionError):
    """mode='check': a compiled value differs from the op-by-op eager value."""


@functools.cache
def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def default_cpu_backend() -> str:
    """What backend='auto' runs CPU tensors with: 'cpu' (native kernels) where a C compiler is found, else 'numpy'
    (with one notice per process)."""
    from .native import compiler, notice

    if compiler() is None:
        notice(f"no C compiler found: {os.environ.get('CC') or 'cc'} (set CC or install gcc or clang)", stacklevel=5)
        return "numpy"
    return "cpu"


def plan_steps(graph: Graph, backend: str, mode: str) -> Steps:
    """The steps for a graph: one numpy step per op for the numpy backend; fused kernels (and numpy fallbacks) from
    the codegen module for 'triton', 'interpret' and 'cpu'. On the CPU backends, the new values of inputs updated in
    place are computed into the inputs' memory where that is safe (reinplace.py)."""
    if backend == "numpy":
        steps = numpy_steps(graph)
    else:
        from .codegen import plan_kernels
        steps = plan_kernels(graph, backend, mode)
    if backend in ("numpy", "cpu"):  # Triton plans keep the write-back copy
        reinplace(graph, steps)
    return steps


def children(obj) -> tuple[list, Callable] | None:
    """The items of obj and how to rebuild it from new ones when it is a list, a tuple, a named tuple (the return
    types of max(dim), sort, topk: (values, indices)) or a dataclass instance (a model's output record, as Hugging
    Face's: its fields set by __init__), else None (a leaf; a Size too)."""
    kind = type(obj)
    if kind is tuple or kind is list:
        return list(obj), kind
    if isinstance(obj, tuple) and hasattr(kind, "_fields"):
        return list(obj), lambda items: kind(*items)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        names = [f.name for f in dataclasses.fields(obj) if f.init]
        return [getattr(obj, name) for name in names], lambda items: dataclasses.replace(obj, **dict(zip(names, items)))
    return None


def leaves(obj, out: list) -> list:
    """The leaves of nested tuples (named ones too), lists, dataclass instances and dicts, in order; a dict's keys
    are leaves too, so two dicts with the same keys in another order have different signatures (a float key as its
    repr: guarded by value, never a runtime input)."""
    kind, inner = type(obj), children(obj)
    if inner is not None:
        for v in inner[0]:
            leaves(v, out)
    elif kind is dict:
        for k, v in obj.items():
            out.append(repr(k) if type(k) in FLOATS else k)
            leaves(v, out)
    else:
        out.append(obj)
    return out


def signature(flat: list, lift: bool = True) -> tuple:
    """The guard key of a call's arguments: tensor dtype/device/rank/requires_grad, scalar values, a function's
    code object, a bound method's function and object identity, object identity for anything else (an entry's
    ArgumentGuard holds those objects, so an id is never reused while it is a key), the type of a user object;
    plus the switches a trace bakes in: grad mode, TF32 matmuls, the default dtype, the autocast region. With
    `lift`, a float is a runtime input (graphc/compiler/scalars.py): only its type is in the key, and the entry
    guards what the trace did with its value."""
    sig = [STATE.grad_enabled, STATE.float32_matmul_precision, dtypes.get_default_dtype(), STATE.autocast]
    for x in flat:
        kind = type(x)
        if kind is Tensor:
            data = x._data
            sig.append((x.dtype, type(data), data.ndim if type(data) is np.ndarray else len(data.shape),
                        x.requires_grad, layout_key(data)))
        elif kind in SCALARS or kind in FLOATS:
            sig.append((float, None) if lift and kind in FLOATS else (kind, x))
        elif kind is types.FunctionType:
            sig.append(x.__code__)
        elif kind is types.MethodType:
            sig.append((x.__func__, id(x.__self__)))
        elif plain_object(x):
            sig.append(kind)
        else:  # a numpy scalar is guarded by value like a Python number (ops read it as one)
            number = dtypes.as_number(x)
            sig.append((kind, number) if number is not x else id(x))
    return tuple(sig)


def layout_key(data) -> tuple | None:
    """A tensor argument's layout as the guard sees it: None when contiguous (any size replays), else its shape and
    strides. Whether a reshape or view of it aliases it (or copies, eagerly) is decided on them at trace time."""
    if type(data) is np.ndarray:
        return None if data.flags.c_contiguous else (data.shape, data.strides)
    return None if data.is_contiguous() else (tuple(data.shape), data.stride())


def argument_names(fn: Callable, args: tuple, kwargs: dict) -> list[str]:
    """The names of a call's leaves (as `leaves` orders them, a dict's keys included) for messages: parameter
    names, with [i] or [key] for the items of containers."""
    try:
        params = list(inspect.signature(getattr(fn, "forward", fn)).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    star = next((p.name for p in params if p.kind is p.VAR_POSITIONAL), None)
    names: list[str] = []
    for i, arg in enumerate(args):
        name = positional[i] if i < len(positional) else f"{star}[{i - len(positional)}]" if star else f"argument {i}"
        _leaf_names(arg, name, names)
    for key, value in sorted(kwargs.items()):
        names.append(f"the keyword {key}")
        _leaf_names(value, key, names)
    return names


def _leaf_names(obj, name: str, out: list) -> None:
    kind, inner = type(obj), children(obj)
    if inner is not None:
        for i, v in enumerate(inner[0]):
            _leaf_names(v, f"{name}[{i}]", out)
    elif kind is dict:
        for k, v in obj.items():
            out.append(f"the key {k!r} of {name}")
            _leaf_names(v, f"{name}[{k!r}]", out)
    else:
        out.append(name)


def _describe_key(part) -> str:
    """One signature part, as a recompile message shows it."""
    if type(part) is tuple and len(part) == 5 and isinstance(part[0], dtypes.dtype):
        dt, storage, ndim, requires_grad, layout = part
        device = "cpu" if storage is np.ndarray else "cuda"
        strided = "" if layout is None else f", strides {list(layout[1])} for shape {list(layout[0])}"
        return f"{dt.name} rank {ndim} on {device}{', requires grad' if requires_grad else ''}{strided}"
    if type(part) is tuple and len(part) == 2 and type(part[0]) is type:
        return repr(part[1]) if part[1] is not None or part[0] is type(None) else f"a {part[0].__name__}"
    if type(part) is types.CodeType:
        return f"a function with the code of {part.co_name} ({part.co_filename}:{part.co_firstlineno})"
    if type(part) is type:
        return f"a {part.__name__}"
    return "an object guarded by identity"


def _signature_change(old: tuple, new: tuple, names: list[str]) -> str:
    """The first difference between an entry's signature and a call's, for messages."""
    if old[0] != new[0]:
        return f"grad mode: {'enabled' if old[0] else 'disabled'} -> {'enabled' if new[0] else 'disabled'}"
    if old[1] != new[1]:
        return f"float32 matmul precision (TF32 switch): {old[1]} -> {new[1]}"
    if old[2] != new[2]:
        return f"the default dtype: {old[2].name} -> {new[2].name}"
    if old[3] != new[3]:
        return f"autocast region: {_autocast_name(old[3])} -> {_autocast_name(new[3])}"
    if len(old) != len(new):
        return "the structure of the arguments"
    for name, a, b in zip(names, old[4:], new[4:]):
        if a != b:
            return f"argument {name}: {_describe_key(a)} -> {_describe_key(b)}"
    return "the keyword arguments passed"


def _an_int_changed(old: tuple, new: tuple) -> bool:
    """Whether the first difference between two signatures is a Python int argument's value."""
    first = next(((a, b) for a, b in zip(old, new) if a != b), None)
    return first is not None and all(type(k) is tuple and len(k) == 2 and k[0] is int for k in first)


def _autocast_name(region) -> str:
    return "none" if region is None else f"{region[0]} {region[1].name}"


def definition_line(fn) -> str:
    """file:line where the compiled function (or module's forward) is defined."""
    fn = getattr(fn, "forward", fn)
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    return f"{code.co_filename}:{code.co_firstlineno}" if code is not None else type(fn).__name__


def structure_key(graph: Graph) -> tuple:
    """What makes two segment graphs the same program: ops, operands, attrs, dtypes, input ranks, outputs and the
    inputs they update in place (a size the function read is baked into attrs or constants, so it is part of the
    structure too), and the TF32 switch the matmul kernels are generated under."""
    index: dict[Node, int] = {}
    parts = []
    for n in graph.nodes:
        index[n] = len(index)
        if n.kind == "input":
            parts.append(("input", n.dtype, n.device.type, len(n.shape)))
        elif n.kind == "const":
            parts.append(("const", n.dtype, n.shape, hash(np.ascontiguousarray(n.value).tobytes())))
        else:
            args = tuple(index[x] if type(x) is Node else (type(x), repr(x)) for x in n.inputs)
            parts.append((n.op.name, args, repr(n.attrs), n.dtype))
    return (tuple(parts), tuple(index[o] for o in graph.outputs), tuple(sorted(graph.mutated_inputs.items())),
            STATE.float32_matmul_precision)


def _aliases_input(node: Node) -> bool:
    """Whether a node's value may share memory with a graph input (an input, or views of one)."""
    return memory(node).kind == "input"


VALUES_CHANGED = "the values of"  # how a value guard's miss starts
CHANGING_TRACES = 3  # traces in a row that change Python state after which a function runs eagerly


class Entry:
    """A whole-function trace that can replay: its guards, its plan, where inputs come from and where outputs go.
    A tensor is named by a ref (argument position or None, the tensor itself or None, whether it is that one's
    .grad): arguments and gradients are looked up anew at each call, other tensors by identity."""

    def __init__(self, capture: Capture, runtime: Runtime, sources: list[Tensor], template, writes, grads,
                 targets: list[tuple[dict, object]], state: StateGuard, arguments: ArgumentGuard,
                 scalars: ScalarInputs, sig: tuple, names: list[str]):
        self.state, self.arguments, self.scalars, self.sig, self.names = state, arguments, scalars, sig, names
        self.arg_of, self.grad_owner = capture.arg_index, capture.grad_owner
        self.runtime = runtime
        self.inputs = [self.ref(t) for t in sources]
        self.free = [(ref, t.dtype, t._data.ndim, state.requires_grad_before(t)) for ref, t in zip(self.inputs, sources)
                     if ref[0] is None or ref[2]]
        reads = capture.size_reads
        self.tensor_sizes = [(self.ref(t), d, size) for (t, d), size in reads.items() if type(t) is Tensor]
        self.node_sizes = [(n, d, size) for (n, d), size in reads.items() if type(n) is Node]
        self.shape_program = ancestors([n for n, _, _ in self.node_sizes])
        position = {node: i for i, node in enumerate(capture.last_inputs)}
        self.program_inputs = [(n, self.inputs[position[n]]) for n in self.shape_program if n.kind == "input"]
        self._checked_shapes: tuple | None = None
        self._fitting: set[tuple] = set()  # input sizes the program's shape inference accepted
        self.template, effects, self.hook_grads = template
        self.hooks = [hook for hook, _ in capture.hooks]
        self.hook_guards = [(self.ref(t), tuple(t._hooks or ())) for t in capture.hook_owners.values()]
        self.value_guards = [(self.ref(t), values, where) for t, values, where in capture.value_guards.values()]
        self.effects = [(d, key, out if type(out) in TEMPLATES else self.ref(out))
                        for (d, key), out in zip(targets, effects)]
        self.writes = [(self.ref(t), pos, copy) for t, pos, copy in writes]
        self.grads = [(self.ref(t), had_grad, out) for t, had_grad, out in grads]
        del self.arg_of, self.grad_owner

    def redo_effects(self, flat: list, outs: list, made: dict) -> None:
        """Redo the function's side effects on Python state (self.loss = loss, self.attn = weights, model.train())."""
        self.state.redo_constants()
        for d, key, spec in self.effects:
            d[key] = (_fill(spec, outs, made, flat, self.scalars) if type(spec) in TEMPLATES else
                      self.resolve(flat, spec))

    def write_back(self, flat: list, outs: list) -> None:
        """Write the plan's new values into the tensors the function updated in place (all read before any is
        written: a value may alias another target's old memory)."""
        values = [outs[pos].copy() if copy else outs[pos] for _, pos, copy in self.writes]
        for (ref, _, _), value in zip(self.writes, values):
            write_into(self.resolve(flat, ref), value)

    def ref(self, t: Tensor) -> tuple:
        owner = self.grad_owner.get(id(t))
        if owner is not None:
            return self.ref(owner[0])[:2] + (True,)
        return (self.arg_of[id(t)], None, False) if id(t) in self.arg_of else (None, t, False)

    @staticmethod
    def resolve(flat: list, ref: tuple) -> Tensor | None:
        i, t, is_grad = ref
        t = flat[i] if t is None else t
        return t._grad if is_grad else t

    def miss(self, flat: list) -> str | None:
        """None when this entry replays for the call, else which guard failed, its old and new value (for
        GRAPHC_LOGS=recompiles and the plan-cap warning)."""
        arguments = self.arguments.miss(flat)
        if arguments is not None:
            return f"argument {self.names[arguments[0]]}: {arguments[1]}"
        for ref, dt, ndim, rg in self.free:
            t = self.resolve(flat, ref)
            if t is None or t.dtype is not dt or type(t._data) is not np.ndarray or t._data.ndim != ndim or \
                    t.requires_grad != rg:
                now = "gone" if t is None else _describe_key((t.dtype, type(t._data), t.ndim, t.requires_grad, None))
                return f"{self.describe(ref)}: {_describe_key((dt, np.ndarray, ndim, rg, None))} -> {now}"
        for ref, hooks in self.hook_guards:
            if tuple(self.resolve(flat, ref)._hooks or ()) != hooks:
                return f"the hooks registered on {self.describe(ref)}"
        for ref, had_grad, _ in self.grads:
            if (self.resolve(flat, ref)._grad is not None) != had_grad:
                return f"whether the .grad of {self.describe(ref)} is set: {had_grad} -> {not had_grad}"
        for ref, d, size in self.tensor_sizes:
            now = self.resolve(flat, ref)._data.shape[d]
            if now != size:
                return f"size {d} of {self.describe(ref)}, which the function reads: {size} -> {now}"
        for ref, values, where in self.value_guards:
            now = self.resolve(flat, ref)._data
            if now.shape != values.shape or now.tobytes() != values.tobytes():  # bitwise: NaN and -0.0 included
                return f"{VALUES_CHANGED} {self.describe(ref)}, which the function reads at {where}"
        if not self.fits(flat):
            return "sizes that an op of the traced program refuses (as eagerly: expand(2, 3) of another shape)"
        if self.node_sizes and not self.sizes_read_match(flat):
            return "a size of an intermediate tensor the function reads"
        return self.state.changed() or (self.scalars.miss(flat, self.names) if self.scalars.holders else None)

    def describe(self, ref: tuple) -> str:
        i, t, is_grad = ref
        what = f"argument {self.names[i]}" if t is None else f"a tensor of shape {list(t._data.shape)} it reads"
        return f"the .grad of {what}" if is_grad else what

    def fits(self, flat: list) -> bool:
        """Whether the program's shape inference accepts this call's input sizes. A size the trace built into an op
        (expand(2, 3), a view's shape) refuses other sizes, as eagerly; the plan's steps would not all notice (a
        strided view reads out of bounds, a slice clamps), so such a call is traced again, which raises where
        eager raises. Remembered per set of input sizes."""
        shapes = [self.resolve(flat, ref)._data.shape for ref in self.inputs]
        key = tuple(shapes)
        if key not in self._fitting:
            try:
                inferred = self.infer(shapes)
            except Exception:  # the error is the op's: tracing again reports it with the user's line
                return False
            graph = self.runtime.graph  # an input updated in place keeps its shape (eagerly, x.add_(y) raises)
            if any(inferred[graph.outputs[o]] != shapes[i] for i, o in graph.mutated_inputs.items()):
                return False
            self._fitting.add(key)
        return True

    def infer(self, shapes: list[tuple]) -> dict[Node, tuple]:
        return infer_shapes(self.runtime.graph, shapes)

    def sizes_read_match(self, flat: list) -> bool:
        """Whether the sizes the function read of intermediate tensors are the same for this call's input sizes
        (found by shape inference over the nodes they depend on; remembered for the last input sizes)."""
        known = {n: tuple(self.resolve(flat, ref)._data.shape) for n, ref in self.program_inputs}
        key = tuple(known.values())
        if key != self._checked_shapes:
            try:
                shapes = propagate_shapes(self.shape_program, known)
            except Exception:  # sizes the program refuses: tracing again reports it with the user's line
                return False
            if any(shapes[n][d] != size for n, d, size in self.node_sizes):
                return False
            self._checked_shapes = key
        return True

    def run(self, flat: list):
        resolve = self.resolve
        outs = self.runtime([resolve(flat, ref)._data for ref in self.inputs], inplace=True)
        self.write_back(flat, outs)
        for ref, _, (pos, dt) in self.grads:
            resolve(flat, ref)._grad = None if pos is None else Tensor._make(outs[pos], dt)
        made: dict[int, Tensor] = {}
        result = _fill(self.template, outs, made, flat, self.scalars)
        self.redo_effects(flat, outs, made)
        for hook, spec in zip(self.hooks, self.hook_grads):  # the hooks the backward ran, on the same gradients
            hook(_fill(spec, outs, made, flat, self.scalars))
        return result


class JointEntry(Entry):
    """An entry whose results require grad: the forward plan runs now; the grad_fn of each result requiring grad
    runs the backward plan on the saved activations and the incoming gradients (graphc/compiler/joint.py)."""

    split: Split
    forward: Runtime
    backward: Runtime
    leaves: list[tuple]
    grad_outs: list[_Out]  # the templates of the results requiring grad, in the order of the backward's gradients
    grad_nodes: list[Node | None]  # the joint graph's gradient of each leaf (None: it gets none)
    reached: list[frozenset[int]]  # per result requiring grad: the leaves its backward reaches (joint.reaches)
    shares: list[frozenset[int]]  # per result requiring grad: the results whose backward shares a node with its
    name: str  # the compiled function's, for messages

    def infer(self, shapes: list[tuple]) -> dict[Node, tuple]:
        """The joint graph's shapes, each incoming gradient shaped as its result."""
        positions = self.split.grad_positions
        forward = self.forward.graph
        found = infer_shapes(forward, [s for i, s in enumerate(shapes) if i not in positions])
        for i, p in enumerate(positions):
            shapes[p] = found[forward.outputs[i]]
        return infer_shapes(self.runtime.graph, shapes)

    def run(self, flat: list):
        positions = set(self.split.grad_positions)
        tensors = [self.resolve(flat, ref) for i, ref in enumerate(self.inputs) if i not in positions]
        arrays = [t._data for t in tensors]
        versions = [t._version_number for t in tensors]  # for a backward with create_graph (CompiledBackward)
        outs = self.forward(arrays)
        saved = [arrays[i] if kind == "input" else outs[i] for kind, i in self.split.saved]
        self.write_back(flat, outs)
        made: dict[int, Tensor] = {}
        result = _fill(self.template, outs, made, flat, self.scalars)
        self.redo_effects(flat, outs, made)
        results = [made[id(o)] for o in self.grad_outs]
        leaves = [self.resolve(flat, ref) for ref in self.leaves]
        # the saved values a caller can write in place before backward (an input, a returned result, or a view of
        # one: the memory they own): their versions now, checked by the backward as eager autograd checks what an op
        # saved
        owners = {id(memory_owner(t._data)): t for t in [*tensors, *made.values()] if type(t) is Tensor}
        watched = {id(t): t for array in saved for t in [owners.get(id(memory_owner(array)))] if t is not None}
        backward = CompiledBackward(self, saved, leaves, [t._data for t in results],
                                    [(t, autograd.watch(t)) for t in watched.values()],
                                    list(zip(tensors, arrays, versions)))
        node = CompiledNode(backward, tuple(leaves), {}, results[0], None)
        for i, t in enumerate(results):
            t.requires_grad, t.grad_fn = True, node if len(results) == 1 else autograd.OutputNode(node, i)
        return result


class _Out:
    """A returned tensor: output position, dtype, and the (spent) grad_fn of a result whose backward already ran
    inside the function: backward through it again fails as it does eagerly."""

    __slots__ = ("pos", "dtype", "grad_fn")

    def __init__(self, pos: int, dtype, grad_fn=None):
        self.pos, self.dtype, self.grad_fn = pos, dtype, grad_fn


class _Arg:
    """An argument returned or stored (a function that updates x in place and returns it): the caller's tensor."""

    __slots__ = ("pos",)

    def __init__(self, pos: int):
        self.pos = pos


def _map_leaves(obj, fn: Callable):
    """obj with each leaf (as `leaves` orders them) replaced by fn(leaf); a dict's keys are passed to fn, in their
    place among the leaves, and kept."""
    kind, inner = type(obj), children(obj)
    if inner is not None:
        return inner[1]([_map_leaves(v, fn) for v in inner[0]])
    if kind is dict:
        return {k: (fn(k), _map_leaves(v, fn))[1] for k, v in obj.items()}
    return fn(obj)


def _put_back(lifted: list) -> None:
    """State items handed to a trace as scalar proxies get their values back (unless the function set them)."""
    for d, key, value, proxy in lifted:
        if d.get(key) is proxy:
            d[key] = value


class _View:
    """A returned alias of another tensor's memory (an argument, another result, a base no one returned): at each
    call it is viewed from that tensor through the same view ops, so writes through it reach the tensor, as eagerly
    (AOTAutograd's outputs aliasing inputs, regenerated from their base)."""

    __slots__ = ("base", "steps")

    def __init__(self, base, steps: tuple):
        self.base, self.steps = base, steps


class _Made:
    """A tensor a factory made inside the function (graphc.zeros(...)) returned or stored unwritten: a new tensor
    with its value at each call, as eagerly (never the trace's tensor, which a caller's write would carry over)."""

    __slots__ = ("value", "dtype")

    def __init__(self, t: Tensor):
        self.value, self.dtype = copy_storage(t._data), t.dtype


TEMPLATES = (_Out, _Arg, _View, _Made)  # what stands for a tensor in a template


class _Scalar:
    """A returned number computed from scalar inputs (`return loss, lr * 2`): evaluated for each call."""

    __slots__ = ("node",)

    def __init__(self, node: Node):
        self.node = node


def _fill(template, outs: list, made: dict[int, Tensor], flat: list, scalars: ScalarInputs):
    """The call's values from a template; one tensor per _Out (`made`), so a tensor returned and stored in state
    is one object, as eagerly; a number computed from scalar inputs, evaluated for this call."""
    kind = type(template)
    if kind is _Scalar:
        return scalars.value(template.node)
    if kind is _Out:
        t = made.get(id(template))
        if t is None:
            t = made[id(template)] = Tensor._make(outs[template.pos], template.dtype, template.grad_fn is not None)
            t.grad_fn = template.grad_fn
        return t
    if kind is _Arg:
        return flat[template.pos]
    if kind is _Made:
        t = made.get(id(template))
        if t is None:
            t = made[id(template)] = Tensor._make(copy_storage(template.value), template.dtype)
        return t
    if kind is _View:
        t = made.get(id(template))
        if t is None:
            base = _fill(template.base, outs, made, flat, scalars)
            if type(template.base) is _Out:
                own_memory(base)  # as the trace gave it (Capture._share_memory)
            t = made[id(template)] = _view_of(base, template.steps, lambda x: _fill(x, outs, made, flat, scalars))
        return t
    inner = children(template)
    if inner is not None:
        return inner[1]([_fill(v, outs, made, flat, scalars) for v in inner[0]])
    if kind is dict:
        return {k: _fill(v, outs, made, flat, scalars) for k, v in template.items()}
    return template


class CompiledFunction:
    """What graphc.compile returns: call it like the function. `num_compiles` counts plans built and cached,
    `num_traces` every capture (a step that never replays grows it on every call)."""

    def __init__(self, fn: Callable, backend: str = "auto", mode: str = "default", fullgraph: bool = False):
        if backend not in BACKENDS:
            raise ValueError(f"graphc.compile: unknown backend {backend!r} (expected one of {', '.join(BACKENDS)})")
        if mode not in MODES:
            raise ValueError(f"graphc.compile: unknown mode {mode!r} (expected one of {', '.join(MODES)})")
        functools.update_wrapper(self, fn, updated=())
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)
        self.fn, self.backend, self.mode, self.fullgraph = fn, backend, mode, fullgraph
        self.num_compiles = 0  # plans built and cached
        self.num_traces = 0  # captures run, cached or not: a step traced again on every call shows here
        # called with each plan's Runtime and its input arrays as it runs (explain, precompile): Runtime.observer
        self.observer: Callable | None = None
        self.compiled_backward = True  # a result that requires grad gets a backward plan (explain turns it off)
        self.last_breaks: list[tuple[str, str]] = []
        self.reset()
        _ALL.add(self)

    def reset(self) -> None:
        """Drop cached entries and plans (and a previous decision to run eagerly)."""
        self._entries: dict[tuple, list[Entry]] = {}
        self._num_entries = 0
        self._lift = True  # floats become runtime inputs; off once a trace with lifted floats failed
        self._dynamic: list[tuple[dict, object]] = []  # state items seen changing between traces: lifted
        self._seen_state: StateGuard | None = None
        self._plans: dict[tuple, Runtime] = {}
        self._segment_plans: dict[str | None, int] = {}  # plans cached per piece of a function with graph breaks
        self._eager_reason: str | None = None
        self._warned_entries = self._warned_breaks = self._warned_numbers = self._warned_segments = False
        self._unreplayable_traces = self._value_misses = self._capture_failures = 0
        self._counted_trace = 0  # the last trace _unreplayable counted (a trace counts once, whatever its reasons)

    def __deepcopy__(self, memo: dict) -> CompiledFunction:
        """copy.deepcopy of a compiled function or module (an EMA or teacher model, AveragedModel): the function's
        objects are copied and compiled again; the plans, which read the original's tensors, are not copied."""
        return CompiledFunction(copy.deepcopy(self.fn, memo), self.backend, self.mode, self.fullgraph)

    @property
    def compiled_module(self):
        """The module compiled (`graphc.compile(module)`), else None: assigned as a module's attribute, it stays a
        submodule (graphc.nn.Module.__setattr__)."""
        from ..nn.module import Module

        return self.fn if isinstance(self.fn, Module) else None

    @property
    def _orig_mod(self):
        """The function or module compiled, under torch's name (torch.compile(model)._orig_mod)."""
        return self.fn

    def __getattr__(self, name: str):
        """Attributes of the compiled object (a compiled module's parameters(), train(), ...)."""
        if name == "fn":
            raise AttributeError(name)
        return getattr(self.fn, name)

    def __get__(self, obj, cls=None):
        return self if obj is None else functools.partial(self, obj)

    def __call__(self, *args, **kwargs):
        if self.backend == "triton" and self._eager_reason is None and not cuda_available():
            self._no_cuda()
        if (self.mode == "eager" or self._eager_reason is not None or STATE.capture is not None
                or os.environ.get("GRAPHC_EAGER", "0") not in ("", "0")):
            return self.fn(*args, **kwargs)
        flat = leaves(dict(sorted(kwargs.items())), leaves(args, []))
        sig = signature(flat, self._lift) + tuple(sorted(kwargs)) + argument_aliasing(flat)
        entries = self._entries.get(sig)
        reason = None
        if entries and self.mode != "check":
            for entry in entries:
                miss = entry.miss(flat)
                if miss is None:
                    self._value_misses = 0
                    try:
                        return entry.run(flat)
                    except ValuesRefused:  # a check op refused this call's values: as eagerly, no trace
                        raise
                    except (ValueError, TypeError, IndexError):
                        reason = "the sizes of this call do not fit the plan"
                        break  # tracing names the op and line that refuses them
                reason = reason or miss
        if self._entries:
            if reason is not None and reason.startswith(VALUES_CHANGED):
                self._value_misses += 1
                if self._value_misses == CHANGING_TRACES - 1:  # a third set of values in a row: they change per call
                    self._eager_reason = reason
                    warnings.warn(f"graphc.compile: {self.__name__} runs eagerly from now on: {reason}, and those "
                                  f"values were new on {CHANGING_TRACES} calls in a row (a plan replays only for "
                                  "the values it was traced with); compute from them inside the function without "
                                  "reading them in Python", RuntimeWarning, stacklevel=2)
                    return self.fn(*args, **kwargs)
            if reason is None:  # no entry for this signature: the difference from the nearest one
                nearest = min(reversed([e for group in self._entries.values() for e in group]),
                              key=lambda e: len(e.sig) != len(sig) or sum(a != b for a, b in zip(e.sig, sig)))
                reason = _signature_change(nearest.sig, sig, nearest.names)
                if self._num_entries >= 2 and not self._warned_numbers and _an_int_changed(nearest.sig, sig):
                    self._warned_numbers = True
                    warnings.warn(f"graphc.compile: {self.__name__} is traced again for a new value of a Python int "
                                  f"({reason}): its value is guarded, so a number that changes on every call (a step "
                                  f"counter) is traced on every call, and after {MAX_ENTRIES} plans its calls run "
                                  "eagerly; pass it as a tensor, or use it outside the compiled function",
                                  RuntimeWarning, stacklevel=2)
            reason = f"{reason} (guards of {self.__name__} at {definition_line(self.fn)})"
            full = self._num_entries >= MAX_ENTRIES
            if logs_on("recompiles"):
                log.info(f"recompiles] {self.__name__}: no cached plan matches: {reason}; "
                         f"{'running eagerly' if full else 'tracing again'}")
            if full:
                if not self._warned_entries:
                    self._warned_entries = True
                    warnings.warn(f"graphc.compile: {self.__name__} has {MAX_ENTRIES} plans, the most kept per "
                                  "function (like torch.compile's cache_size_limit), and no plan matches this call: "
                                  f"{reason} keeps changing. Calls that match no plan run eagerly; pass values that "
                                  "change on every call as tensors", RuntimeWarning, stacklevel=2)
                return self.fn(*args, **kwargs)
        return self._trace(args, kwargs, flat, sig)

    def _unreplayable(self, reason: str, advice: str, at_once: bool = False) -> None:
        """A trace that cannot be kept as a plan: the function traces again at the next call (so its effects happen,
        as eagerly) until CHANGING_TRACES such traces in a row (or at once), then runs eagerly, saying so once with
        the reason. Not on the first in a row: a first call may create state (optimizer moments, again after
        state.clear()); a third means every call does, and tracing each call would only add the trace's cost to
        eager's (torch.compile reaches the same place through its recompile limit)."""
        if self._counted_trace == self.num_traces and not at_once:
            return
        self._counted_trace = self.num_traces
        self._unreplayable_traces += 1
        if at_once or self._unreplayable_traces == CHANGING_TRACES:
            self._eager_reason = reason
            in_a_row = "" if at_once else f", on {CHANGING_TRACES} calls in a row"
            warn_at_user(f"graphc.compile: {self.__name__} runs eagerly from now on: {reason}{in_a_row}; {advice}",
                         RuntimeWarning)

    def _no_cuda(self) -> None:
        """backend='triton' on a machine without CUDA: an error with fullgraph=True, else a warning and eager runs."""
        reason = ("backend='triton' needs a CUDA device (torch.cuda.is_available() is False); backend='interpret' "
                  "runs the same Triton kernels on CPU")
        if self.fullgraph:
            raise RuntimeError(f"graphc.compile: {self.__name__}: {reason}")
        self._eager_reason = reason
        warnings.warn(f"graphc.compile: {self.__name__} runs eagerly: {reason}", RuntimeWarning, stacklevel=3)

    # ---- tracing --------------------------------------------------------------------------------------------
    def _trace(self, args: tuple, kwargs: dict, flat: list, sig: tuple):
        self.num_traces += 1
        arguments = ArgumentGuard(flat)
        state = StateGuard([self.fn, *(x for x in flat if type(x) is not Tensor)])
        capture = Capture(flat, self.fullgraph,
                          lambda graph, sources: self._run_segment(capture, graph, sources))
        capture.store_plans = True
        scalars, lifted, call = ScalarInputs(), [], (args, kwargs)
        if self._lift:
            call, lifted = self._lift_scalars(capture, scalars, state, args, kwargs, flat)
        STATE.capture = capture
        try:
            result = self.fn(*call[0], **call[1])
        except BaseException as e:
            _put_back(lifted)
            if scalars.holders and not capture.breaks and isinstance(e, Exception):
                return self._trace_unlifted(capture, state, args, kwargs, flat)
            if isinstance(e, CaptureError):
                return self._abandon(capture, state, e, args, kwargs)
            if not (isinstance(e, Exception) and not isinstance(e, GraphBreakError) and self._land_effects(capture)):
                self._abandon(capture, state)
            raise
        STATE.capture = None
        _put_back(lifted)
        self.last_breaks = capture.breaks
        if capture.breaks and not self._warned_breaks:
            self._warned_breaks = True
            reason, where = capture.breaks[0]
            warnings.warn(f"graphc.compile: {self.__name__} runs its Python again on every call (the plans of the "
                          f"pieces between its graph breaks are reused): graph break at {where}: {reason}; to replay "
                          "it whole, return the tensor and read its value after the call", RuntimeWarning, stacklevel=3)
        traced = result
        if capture.weak:  # a scalar proxy returned is its number, as eagerly (the entry evaluates it per call)
            result = _map_leaves(result, lambda x: capture.weak[capture.weak_node(x)]
                                 if type(x) is Tensor and capture.weak_node(x) is not None else x)
        returned = [x for x in leaves(result, []) if type(x) is Tensor and x._data is None]
        for x in leaves(result, []):
            if type(x) is TracedShape:  # a shape returned is handed back as it is now: its sizes are guards
                x.numel()
        live = [t for t in capture.live_proxies() if t._node not in capture.weak]
        # a tensor replacing a tensor the function did not read is a side effect redone after each replay; the
        # first time an item gets a tensor the call changed what the next one sees (None -> a tensor), and a tensor
        # read as a graph input would be read stale at replay (inputs are found by identity)
        read = {id(t) for t in capture.sources}
        assigned = state.assignments()
        for i, (d, key, old, new) in enumerate(assigned):
            if type(new) is Tensor and new._data is None and new._node in capture.weak:
                d[key] = capture.scalar_value(new)  # a scalar proxy stored in state is its number, as eagerly
            elif type(new) is TracedShape:  # `self.input_shape = x.shape`: its sizes are guards, and the replay
                new.numel()  # sets the same shape again (StateGuard.set_constants)
                d[key] = Size(new)
                assigned[i] = (d, key, old, d[key])
        effects = [(d, key, old, new) for d, key, old, new in assigned
                   if type(old) is Tensor and type(new) is Tensor and d[key] is new and id(old) not in read]
        # what the call hands back (results, .grad, state effects) and the tensors those view stay alive legitimately
        handed = [*returned, *(t._grad for t, _ in capture.grad_writes.values() if t._grad is not None),
                  *(a[3] for a in effects), *(g for _, g in capture.hooks if type(g) is Tensor)]
        kept = {id(v) for t in handed for v in (t, *viewed_by(t))}
        # a tensor stored in Python state (an attention module's self.attn) is handed back like a result
        handed_back = [*returned, *(a[3] for a in effects if a[3]._data is None)]
        kept.update(i for t in handed_back if t.grad_fn is not None for i in autograd_proxies(t))  # held by grad_fn
        escaped = [t for t in live if id(t) not in kept]
        # perhaps held only by a reference cycle the function left (an object pointing to itself), which the cyclic
        # collector frees: its young generations first (the cycle was made during this call), then all of them (the
        # collections the call itself set off may have moved the cycle to the oldest generation); a tensor stored in
        # state (an optimizer's moments, made by its first step) stays, and a full collection costs 30-70 ms
        stored = {id(x) for *_, new in assigned for x in leaves(new, []) if type(x) is Tensor}
        for generation in (1, 2):
            if all(id(t) in stored for t in escaped):
                break
            del escaped, live
            gc.collect(generation)
            live = [t for t in capture.live_proxies() if t._node not in capture.weak]
            escaped = [t for t in live if id(t) not in kept]
        differentiable = list({id(t): t for t in handed_back if t.grad_fn is not None and backward_reaches_leaves(t)}
                              .values())
        needs_grad = bool(differentiable)
        if capture.value_reads:
            self._unreplayable(f"at {capture.value_reads[0]} it reads the values of a tensor it did not compute (a "
                               "large argument's .tolist(), a tensor the library built from values and sizes...)",
                               "a replay could not follow a new value; pass such values as Python numbers, or "
                               "compute them inside")
        elif escaped and not needs_grad and not capture.breaks:
            node = escaped[0]._node
            self._unreplayable(f"a tensor it computes ({node.label}, shape {list(node.shape)}, made at "
                               f"{node.where or 'an unknown line'}) is still referenced after it returns (kept in an "
                               "object or a global, as a list of losses for logging)",
                               "a replay could not give it its value; return it instead, or drop the reference")
        elif any(isinstance(x, Iterator) for x in leaves(result, [])):
            self._unreplayable("it returns an iterator or a generator, whose items are computed as they are read, "
                               "after the call", "return a list or a tuple instead", at_once=True)
        joint, no_backward = None, ("a compiled backward is built for a function whose graph reads leaf tensors, "
                                    "with no graph break, tensor hook or .grad write")
        if (needs_grad and self.compiled_backward and not capture.breaks and not capture.grad_writes
                and all(t._data is None and t._node.kind == "op" and not has_hooks(t, capture.sources)
                        for t in differentiable)
                and {id(t) for t in escaped} <= {i for t in differentiable for i in autograd_proxies(t)}):
            try:  # the backward joins the graph: a forward and a backward plan
                joint = record_backward(capture, differentiable)
            except GraphBreakError as e:  # the backward needs a value (a custom Function's backward reading .numpy())
                no_backward = "its backward needs a tensor's value: " + str(e).removesuffix(" (fullgraph=True)")
            except RuntimeError:  # it refuses (a tensor it saves was then written in place): as the caller's will
                pass
            if joint is not None:
                live = [t for t in capture.live_proxies() if t._node not in capture.weak]
                joint_nodes = [[t._node for t in differentiable], [None if g is None else g._node for g in joint[2]]]
        # a first call that gives a state item its first tensor (self.attn = None before) is traced again anyway
        first_store = self.num_traces == 1 and any(type(old) is not Tensor and type(new) is Tensor
                                                   for _, _, old, new in assigned)
        if needs_grad and joint is None and not first_store:
            self._without_backward_plan(result, no_backward)
        capture.store_plans = needs_grad or not (escaped or capture.value_reads)
        sources = capture.sources
        writes = [(t, t._node) for t, _ in capture.writes.values()]
        grad_nodes = {id(t): t._grad._node for t, _ in capture.grad_writes.values()
                      if t._grad is not None and t._grad._data is None}
        position_source = [t._node for t in live]
        try:
            capture.flush(live)
        except CaptureError as e:
            if scalars.holders and not capture.breaks:
                return self._trace_unlifted(capture, state, args, kwargs, flat)
            return self._abandon(capture, state, e, args, kwargs)
        except BaseException:
            self._abandon(capture, state)
            raise
        for t in scalars.proxies:  # a scalar proxy an autograd node kept (w * s) is the number it stood for
            if t._data is None:
                t._data = np.asarray(capture.weak[t._node], t.dtype.np)
        if capture.writing_hooks:
            hook = capture.writing_hooks[0]
            code = getattr(hook, "__code__", None)
            where = f"{code.co_filename}:{code.co_firstlineno}" if code is not None else "an unknown line"
            self._unreplayable(f"the tensor hook {getattr(hook, '__qualname__', repr(hook))} (defined at {where}) "
                               "writes tensors in place while the backward runs", "a replay could neither skip it (its "
                               "Python effects) nor call it again (it would write twice)")
        if capture.breaks or capture.value_reads or capture.writing_hooks or (escaped or needs_grad) and joint is None:
            return result
        state.forget(effects)
        arguments.forget(flat, effects)
        state.set_constants(assigned)
        changed = state.changed_by_run()
        if changed:
            reason = f"it changes {changed} while it runs (at {definition_line(self.fn)})"
            if logs_on("recompiles"):
                log.info(f"recompiles] {self.__name__} is traced again: {reason}")
            self._unreplayable(reason, "a replay could not redo that, so its effect happens at each call this way; "
                               "to replay, change it outside the compiled function (call scheduler.step() or count "
                               "steps after the call)")
            return result
        if capture.last_key is None:  # no tensor op ran (it returns an argument, or Python values): an empty plan
            self._run_segment(capture, Graph(), [])
        position = {n: i for i, n in enumerate(capture.last_outputs)}
        runtime = self._plans.get(capture.last_key)
        if runtime is None:
            return result
        if joint is not None:
            return self._joint_entry(capture, runtime, sources, joint, joint_nodes, differentiable, traced, effects,
                                     live, position_source, writes, position, state, arguments, scalars, sig, args,
                                     kwargs, result)
        out_nodes = runtime.graph.outputs
        try:
            template = _template_from((traced, [a[3] for a in effects], [g for _, g in capture.hooks]), live,
                                      position_source, writes, position, capture)
        except CaptureError as e:
            self._unreplayable(str(e), "a replay could not hand back what it returns")
            return result
        entry_writes = [(t, position[node], _aliases_input(out_nodes[position[node]])) for t, node in writes
                        if not capture.is_made(t)]  # a tensor made in the function is made anew by each call
        entry_grads = []
        for t, before in capture.grad_writes.values():
            node = grad_nodes.get(id(t))
            entry_grads.append((t, before is not None,
                                (position[node], t._grad.dtype) if node is not None else (None, None)))
            if node is None and t._grad is not None:
                return result  # a .grad set to a tensor made outside the graph: not replayable
        scalars.guards = capture.scalar_guards
        entry = Entry(capture, runtime, sources, template, entry_writes, entry_grads, [a[:2] for a in effects],
                      state, arguments, scalars, sig, argument_names(self.fn, args, kwargs))
        self._entries.setdefault(sig, []).append(entry)
        self._num_entries += 1
        self._unreplayable_traces = self._capture_failures = 0
        return result

    def _joint_entry(self, capture: Capture, runtime: Runtime, sources: list[Tensor], joint: tuple,
                     joint_nodes: list, differentiable: list[Tensor], traced, effects: list, live: list[Tensor],
                     position_source: list[Node], writes: list,
                     position: dict, state: StateGuard, arguments: ArgumentGuard, scalars: ScalarInputs, sig: tuple,
                     args: tuple, kwargs: dict, result):
        """Cache a function whose results require grad as a forward plan and a backward plan split from its joint
        graph (graphc/compiler/joint.py). The forward plan returns what the call hands back (each result that
        requires grad gets a grad_fn running the backward plan) and the values the function writes into tensors it
        did not make (a BatchNorm's running statistics)."""
        leaves, holders, _ = joint
        outs, grads = joint_nodes
        graph = runtime.graph
        writes = [(t, node) for t, node in writes if not capture.is_made(t)]
        if any(t.grad_fn is not None for t, _ in writes):  # its history changed: the replay's node could not say how
            return self._without_backward_plan(result, "it writes in place into a tensor with a history of its own "
                                               "(a non-leaf it was given)")
        try:
            template = _template_from((traced, [a[3] for a in effects]), live, position_source, writes, position,
                                      capture, frozenset(id(t) for t in differentiable))
        except CaptureError as e:
            return self._without_backward_plan(result, str(e))
        found = _outs_of(template)
        grad_positions = [position[n] for n in outs]
        if len(set(grad_positions)) != len(grad_positions):
            return self._without_backward_plan(result, "two of its results that require grad are one value")
        if not set(grad_positions) <= {o.pos for o, viewed in found if not viewed} or any(
                viewed and o.pos in grad_positions for o, viewed in found):
            return self._without_backward_plan(result, "it returns a view of a result that requires grad")
        returned = list({id(o): o for o, _ in found}.values())
        results = list(dict.fromkeys([*grad_positions, *(o.pos for o in returned)]))
        try:
            split = Split(graph, [graph.outputs[p] for p in results] + [graph.outputs[position[n]] for _, n in writes],
                          [None if g is None else graph.outputs[position[g]] for g in grads],
                          [graph.inputs[next(i for i, t in enumerate(sources) if t is h)] for h in holders])
            forward = self._plan(split.forward, sources)
            backward = self._plan(split.backward, sources)
        except CaptureError as e:
            return self._without_backward_plan(result, str(e))
        grad_outs = {}
        for o in returned:
            if o.pos in grad_positions:
                o.grad_fn = None  # the replay gives it a fresh grad_fn
                grad_outs.setdefault(grad_positions.index(o.pos), o)
            o.pos = results.index(o.pos)
        scalars.guards = capture.scalar_guards
        entry_writes = [(t, len(results) + i, _aliases_input(split.forward.outputs[len(results) + i]))
                        for i, (t, _) in enumerate(writes)]
        entry = JointEntry(capture, runtime, sources, (*template, []), entry_writes, [], [a[:2] for a in effects],
                           state, arguments, scalars, sig, argument_names(self.fn, args, kwargs))
        entry.split, entry.forward, entry.backward = split, forward, backward
        entry.grad_outs = [grad_outs[i] for i in range(len(grad_positions))]
        entry.leaves = [entry.inputs[next(i for i, t in enumerate(sources) if t is leaf)] for leaf in leaves]
        entry.grad_nodes = [None if g is None else graph.outputs[position[g]] for g in grads]
        entry.reached, entry.shares = reaches(differentiable, leaves)
        entry.name = self.__name__
        self._entries.setdefault(sig, []).append(entry)
        self._num_entries += 1
        self._unreplayable_traces = self._capture_failures = 0
        return result

    def _without_backward_plan(self, result, reason: str):
        """A function whose results require grad that gets no forward and backward plan cannot replay (autograd
        must work outside it)."""
        self._unreplayable(f"it returns a tensor that requires grad, and no backward plan could be built for it: "
                           f"{reason}", "compile the whole training step, backward included, or call it under "
                           "graphc.no_grad() where no gradient is needed")
        return result

    def _lift_scalars(self, capture: Capture, scalars: ScalarInputs, state: StateGuard, args: tuple, kwargs: dict,
                      flat: list) -> tuple[tuple, list]:
        """Hand the function scalar proxies for its float arguments, and for the float state items that changed
        between traces (each is put back after the trace: `_put_back`); those items are no longer guarded by
        value. Returns the call's (args, kwargs) and the lifted items (dict, key, value, proxy)."""
        previous, self._seen_state = self._seen_state, state
        if previous is not None:
            self._dynamic += [item for item in previous.changed_floats() if item not in self._dynamic]
        proxies = {i: scalars.lift(capture, x, ("argument", i)) for i, x in enumerate(flat) if type(x) in FLOATS}
        lifted = []
        for d, key in self._dynamic:
            value = d.get(key)
            if type(value) in FLOATS:
                proxy = scalars.lift(capture, value, ("item", d, key))
                lifted.append((d, key, value, proxy))
            elif type(value) is tuple and any(type(x) in FLOATS for x in value):  # each float of it, as one item
                proxy = tuple(scalars.lift(capture, x, ("item", d, key, i)) if type(x) in FLOATS else x
                              for i, x in enumerate(value))
                lifted.append((d, key, value, proxy))
        state.forget(lifted)
        for d, key, _, proxy in lifted:
            d[key] = proxy
        if not proxies:
            return (args, kwargs), lifted
        position = iter(range(len(flat)))
        replace = lambda x: proxies.get(next(position), x)
        call_args = _map_leaves(args, replace)
        return (call_args, _map_leaves(dict(sorted(kwargs.items())), replace)), lifted

    def _trace_unlifted(self, capture: Capture, state: StateGuard, args: tuple, kwargs: dict, flat: list):
        """A trace with scalar proxies failed (library code that needs a real float, say): put back what it touched
        and trace again with floats guarded by value, from now on."""
        STATE.capture = None
        capture.abort()
        state.restore()
        self._lift = False
        return self._trace(args, kwargs, flat, signature(flat, False) + tuple(sorted(kwargs)) + argument_aliasing(flat))

    def _land_effects(self, capture: Capture) -> bool:
        """The function raised while traced: the ops recorded before the raise run, so their effects (tensors
        updated in place, .grad) land as they would eagerly; the Python state it changed stays changed, as eagerly.
        False when they could not run (the trace is then abandoned and its effects put back)."""
        try:
            capture.flush()
        except Exception:
            return False
        finally:
            STATE.capture = None
        return True

    def _abandon(self, capture: Capture, state: StateGuard, error: CaptureError | None = None, args: tuple = (),
                 kwargs: dict | None = None):
        """A trace failed: every piece of state it touched is put back (.grad, tensors updated in place, and the
        Python state it changed, such as optimizer state created lazily). A CaptureError (capture refused, or a
        plan that could not be built or failed its first run) then runs this call eagerly, with one warning; the
        next call tries capture again, as the cause may have been once (a lazy module materializing its parameters),
        and after CHANGING_TRACES failures in a row every later call runs eagerly. With fullgraph=True, or after a
        graph break already ran part of the function, it is raised."""
        STATE.capture = None
        capture.abort()
        if not capture.breaks:  # after a break, part of the function ran for real: its effects stay, as eagerly
            state.restore()
        if error is None:
            return None
        if self.fullgraph or capture.breaks:
            raise error
        self._capture_failures += 1
        if self._capture_failures == 1:
            warnings.warn(f"graphc.compile: {self.__name__} runs eagerly: {error}", RuntimeWarning, stacklevel=4)
        if self._capture_failures == CHANGING_TRACES:
            self._eager_reason = str(error)
        return self.fn(*args, **kwargs)

    def _backend_for(self, sources: list[Tensor]) -> str:
        if self.backend != "auto":
            return self.backend
        return "triton" if any(type(t._data) is not np.ndarray for t in sources) else default_cpu_backend()

    def _plan(self, graph: Graph, sources: list[Tensor]) -> Runtime:
        """Optimize a graph and build its plan; a failure is a CaptureError naming the backend."""
        backend = self._backend_for(sources)
        if logs_on("graph"):
            log.info(f"graph] {self.__name__}, captured:\n{graph}")
        try:
            optimize(graph)
            if backend == "cpu" and self.mode != "max-autotune" and not STATE.deterministic:  # numpy first, the
                # kernels once built
                runtime = TieredRuntime(graph, self.mode, self.__name__)
            else:
                runtime = Runtime(Plan(graph, plan_steps(graph, backend, self.mode)))
            runtime.observer = self.observer
        except Exception as e:
            raise CaptureError(f"no {backend} plan for its graph ({type(e).__name__}: {e})") from e
        log_plan(self.__name__, runtime.plan.steps)
        return runtime

    def _run_segment(self, capture: Capture, graph: Graph, sources: list[Tensor]) -> list:
        """Run one finished segment through the plan cached for its structure (built, and cached and counted once
        its first run succeeds). A plan that cannot be built or fails its first run is a CaptureError: the caller
        runs the function eagerly instead."""
        key = structure_key(graph)
        capture.last_key = key
        runtime = self._plans.get(key)
        fresh = runtime is None
        backend = self._backend_for(sources)
        if fresh:
            runtime = self._plan(graph, sources)
            if capture.breaks and capture.store_plans:
                capture.store_plans = self._segment_plan_allowed(capture.resumed_at)
        arrays = [t._data for t in sources]
        if self.mode == "check":
            outs = _checked(runtime, arrays)
        else:
            try:
                outs = runtime(arrays)
            except Exception as e:
                if not fresh or isinstance(e, ValuesRefused):
                    raise
                raise CaptureError(f"its {backend} plan failed on the first run ({type(e).__name__}: {e})") from e
        if fresh and capture.store_plans:
            self._plans[key] = runtime
            self.num_compiles += 1
            if capture.breaks:
                self._segment_plans[capture.resumed_at] = self._segment_plans.get(capture.resumed_at, 0) + 1
        return outs

    def _segment_plan_allowed(self, resumed_at: str | None) -> bool:
        """Whether a new plan for the piece of a function with graph breaks that follows the break at resumed_at
        (None: the first piece) is cached: at most MAX_ENTRIES per piece (torch.compile's cache_size_limit, which
        each resumed frame has). Past it, a new piece is planned for its call only, with one warning."""
        if self._segment_plans.get(resumed_at, 0) < MAX_ENTRIES:
            return True
        if not self._warned_segments:
            self._warned_segments = True
            where = "before its first graph break" if resumed_at is None else f"after the graph break at {resumed_at}"
            self._eager_reason = f"the piece of its graph {where} changes on every call"
            warn_at_user(f"graphc.compile: {self.__name__} has {MAX_ENTRIES} plans for the piece of its graph "
                          f"{where}, the most kept per piece (like torch.compile's cache_size_limit), and a new one "
                          "for this call: that piece's graph changes on every call (a number computed in Python "
                          "from a tensor's value, used as an op's attribute or a size; a branch on a random draw), "
                          "so it runs eagerly from the next call on (planning a piece for every call costs more). "
                          "Pass such values as tensors, or use them as they are read (`x * loss.item()` is a runtime "
                          "input of the piece)", RuntimeWarning)
        return False


def _view_of(base: Tensor, steps: tuple, filled: Callable) -> Tensor:
    """base viewed through steps, each view op run eagerly (outside autograd: a replayed result needs no grad), so
    the result shares base's memory and version counter and knows its view chain (`_view`), as eagerly."""
    with autograd.no_grad():
        if not steps:  # an alias of the same elements: detach()
            return base.detach()
        for op, others, attrs in steps:
            base = base.detach() if op is None else dispatch(op, (base, *map(filled, others)), attrs)
    return base


def _template_from(result, live: list[Tensor], nodes: list[Node], written: list[tuple[Tensor, Node]],
                   position: dict[Node, int], capture: Capture, own: frozenset[int] = frozenset()):
    """The result's template: proxies were filled by the flush, so they are found by identity among the live ones;
    an alias of another tensor's memory is that tensor's template viewed again (but for the ids in `own`: results
    requiring grad, which get their own grad_fn); an argument returned is the caller's argument at each call; a
    scalar proxy, its number evaluated per call. A CaptureError when a view step's operand is gone (such a call is
    not replayed)."""
    node_of = {id(t): n for t, n in zip(live, nodes)}
    node_of.update((key, node) for key, (_, node) in capture.made_roots.items())
    node_of.update((id(t), node) for t, node in written if capture.is_made(t))
    made: dict[int, _Out | _View | _Made] = {}

    def walk(obj):
        kind, inner = type(obj), children(obj)
        if inner is not None:
            return inner[1]([walk(v) for v in inner[0]])
        if kind is dict:
            return {k: walk(v) for k, v in obj.items()}
        if kind is Tensor and capture.weak_node(obj) is not None:
            return _Scalar(capture.weak_node(obj))
        if kind is Tensor and id(obj) in node_of:
            if id(obj) not in made:
                viewed = None if id(obj) in own else capture.viewed_root(obj)
                if viewed is not None and all(x is not None for _, others, _ in viewed[1] for x in others):
                    root, steps = viewed
                    made[id(obj)] = _View(walk(root), tuple((op, tuple(walk(x) for x in others), attrs)
                                                            for op, others, attrs in steps))
                elif viewed is not None:
                    raise CaptureError("it returns a view made to the shape of a tensor that no longer exists")
                else:
                    made[id(obj)] = _Out(position[node_of[id(obj)]], obj.dtype, obj.grad_fn)
            return made[id(obj)]
        if kind is Tensor and id(obj) in capture.arg_index:
            return _Arg(capture.arg_index[id(obj)])
        if kind is Tensor and capture.is_made(obj):
            return made.setdefault(id(obj), _Made(obj))
        return obj
    return walk(result)


def _outs_of(template, viewed: bool = False) -> list[tuple[_Out, bool]]:
    """The _Out entries of a template, each with whether it was reached as (or through) the base of a view that
    eagerly shares its autograd history (a detached alias, `self.last = out.detach()`, does not: it is regenerated
    from the result at each call, outside autograd, as eagerly)."""
    kind = type(template)
    if kind is _Out:
        return [(template, viewed)]
    if kind is _View:
        detached = not template.steps or any(op is None for op, _, _ in template.steps)  # () is detach()
        return _outs_of(template.base, viewed or not detached) + [o for _, others, _ in template.steps
                                                                  for x in others for o in _outs_of(x, True)]
    inner = children(template)
    if inner is not None:
        return [o for x in inner[0] for o in _outs_of(x, viewed)]
    if kind is dict:
        return [o for x in template.values() for o in _outs_of(x, viewed)]
    return []


def _checked(runtime: Runtime, arrays: list) -> list:
    """Run the plan keeping every value, and compare each step's results with the op-by-op values."""
    values = runtime.run_all(arrays)
    impure = {n: values[n] for n in runtime.graph.nodes if n.kind == "op" and not n.op.pure and n in values}
    expected = reference_values(runtime.graph, arrays, impure)
    for step in runtime.plan.steps:
        for node in step.writes:
            got, want = np.asarray(values[node]), np.asarray(expected[node])
            same = got.shape == want.shape and (np.allclose(got, want, rtol=1e-4, atol=1e-5, equal_nan=True)
                                                if want.dtype.kind in "fc" else np.array_equal(got, want))
            if not same:
                source = getattr(step, "source", "")
                raise CheckError(f"mode='check': {node.name} = {node.label} (from {node.where}) differs from eager "
                                 f"in the step computing {', '.join(step.ops)}" + (f"\n{source}" if source else ""))
    return [values[n] for n in runtime.graph.outputs]


# torch.compile's names for its backends and modes, as graphc's: Inductor is graphc's own compiler; "eager" and
# "aot_eager" run the function's ops one by one; CUDA graphs ("reduce-overhead") have no counterpart, and a replayed
# plan already skips the Python the function would run
TORCH_BACKENDS = {"inductor": ("auto", None), "eager": ("auto", "eager"), "aot_eager": ("auto", "eager")}
TORCH_MODES = {"reduce-overhead": "default", "max-autotune-no-cudagraphs": "max-autotune"}


def compile(fn: Callable | None = None, *, backend: str = "auto", mode: str | None = "default",  # noqa: A001
            fullgraph: bool = False, dynamic: bool | None = None, options: dict | None = None,
            disable: bool = False):
    """@graphc.compile or graphc.compile(fn, backend=..., mode=..., fullgraph=...): capture fn into a graph and
    replay its plan on later calls whose guards match. As torch.compile's, `disable=True` returns fn itself (it runs
    eagerly); `dynamic` is accepted and changes nothing: a plan serves every size its guards allow (sizes the
    function reads in Python are guarded, as torch.compile's dynamic=False would; the others never are). torch's
    backend and mode names are read as graphc's (TORCH_BACKENDS, TORCH_MODES); `options` (Inductor's settings) are
    ignored, with one warning."""
    if options:
        warnings.warn(f"graphc.compile: options= are torch Inductor's settings ({', '.join(map(str, options))}); "
                      "graphc ignores them (its own choices are backend= and mode=)", UserWarning, stacklevel=2)
    backend, torch_mode = TORCH_BACKENDS.get(backend, (backend, None))
    mode = torch_mode or TORCH_MODES.get(mode or "default", mode or "default")
    if disable:
        return fn if fn is not None else (lambda f: f)
    if fn is None:
        return lambda f: CompiledFunction(f, backend, mode, fullgraph)
    return CompiledFunction(fn, backend, mode, fullgraph)


def reset() -> None:
    """Drop every compiled function's in-memory caches."""
    for compiled in list(_ALL):
        compiled.reset()
