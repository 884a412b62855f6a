"""Reverse-mode autograd: backward nodes, the engine (iterative, so graph depth has no recursion limit),
grad modes and anomaly detection."""
from __future__ import annotations

import functools
import warnings

import numpy as np

from .errors import op_error
from .state import STATE
from .tensor import Tensor, VersionCounter
from .topological import postorder

LEAF = "leaf"
# how many post-accumulate-grad hooks were ever registered: while none were, backward skips counting leaf edges
POST_ACCUMULATE_HOOKS = [0]


class Node:
    """The backward of one op application (a tensor's grad_fn); it is also the ctx its backward rule reads.

    edges[i] says where input i's gradient goes, as it was when the op ran: its grad_fn, LEAF (accumulate into
    its .grad) or None (needs no gradient); so a later in-place update of the input does not reroute it.
    saved_inputs holds (index, version) of each tensor input the op saves (see Op's saves), saved_output
    (counter, version) of the output if it saves it: backward refuses them once an in-place write moved their
    version, as torch does, instead of reading overwritten values."""

    __slots__ = ("op", "inputs", "attrs", "_out", "where", "hooks", "edges", "saved_inputs", "saved_output")

    def __init__(self, op, inputs: tuple, attrs: dict, out: Tensor, where: str | None):
        self.op, self.inputs, self.attrs, self.where, self.hooks = op, inputs, attrs, where, None
        self._out = (out._data, out._node, out.dtype)
        self.edges = tuple([(x.grad_fn or LEAF) if type(x) is Tensor and x.requires_grad else None for x in inputs])
        indices = op.saved_inputs
        if type(indices) is slice:
            indices = range(len(inputs))[indices]
        if op.saves_cross:
            indices = _cross(indices, self.edges)
        self.saved_inputs = [(i, watch(inputs[i])) for i in indices if type(inputs[i]) is Tensor]
        if op.saves_output:  # out is new: its counter too
            counter = out._version = VersionCounter()
            self.saved_output = (counter, 0)
        else:
            self.saved_output = None

    def save_output(self, out: Tensor) -> None:
        """Save out as the op's output (an in-place op's output is the tensor it wrote): its values and version."""
        counter = out._counter()
        counter.watched = True
        self._out = (out._data, out._node, out.dtype)
        self.saved_output = (counter, counter.version)

    def keep_inputs(self, t: Tensor) -> None:
        """t is about to be overwritten by this node's own in-place op: the inputs it saved that are t become a
        private copy of t's current values (torch's original self), so the write does not reach them."""
        saved = {i for i, _ in self.saved_inputs}
        if any(self.inputs[i] is t for i in saved):
            self.inputs = tuple(t._snapshot() if i in saved and x is t else x for i, x in enumerate(self.inputs))

    def check_saved(self) -> None:
        """Refuse to run the backward rule on values an in-place write changed after the op saved them."""
        for i, version in self.saved_inputs:
            counter = self.inputs[i]._version
            if counter is not None and counter.version != version:
                x = self.inputs[i]
                raise modified(self.op.name, f"input {i}", x.shape, x.dtype, counter, version, self.where)
        if self.saved_output is not None:
            counter, version = self.saved_output
            if counter.version != version:
                data, node, dt = self._out
                raise modified(self.op.name, "output 0", data.shape if data is not None else node.shape, dt, counter,
                                version, self.where)

    @property
    def out(self) -> Tensor:
        """The op's output (backward rules such as exp's reuse it): detached, but while a backward records its own
        graph (create_graph) it hangs off this node, so second derivatives see how it depends on the inputs."""
        data, node, dt = self._out
        t = Tensor._make(data, dt)
        t._node = node
        if STATE.grad_enabled:
            t.requires_grad, t.grad_fn = True, self
        return t

    def name(self) -> str:
        return f"{self.op.name.title().replace('_', '')}Backward0"

    @property
    def next_functions(self) -> tuple:
        return tuple((fn if isinstance(fn, Node) else None, 0) for fn in self.edges)

    def register_hook(self, hook) -> None:
        self.hooks = (self.hooks or []) + [hook]

    def release(self) -> None:
        """Drop what backward needs (after a backward without retain_graph), as torch frees saved tensors."""
        self.inputs, self._out = None, None

    def held(self) -> list:
        """What this node keeps alive for its backward (tensors among them)."""
        return list(self.inputs or ())

    def __repr__(self) -> str:
        return f"<{self.name()}>"


def refresh_view(t: Tensor) -> None:
    """A view's history follows the tensor it views: after an in-place update of that tensor (or of another view of
    it) the view's grad_fn is its view op applied to the new history, as torch regenerates it."""
    view = t._view
    if view is None:
        return
    base, op, others, attrs = view
    refresh_view(base)
    if not base.requires_grad:
        return
    fn = t.grad_fn
    if fn is not None and (fn.inputs is None or (fn.op is op and fn.inputs[0] is base and
                                                 fn.edges[0] is (base.grad_fn or LEAF))):
        return
    t.grad_fn, t.requires_grad = Node(op, (base, *others), attrs, t, None), True


def _cross(indices, edges: tuple) -> tuple:
    """indices plus each input whose sibling inputs need a gradient (CROSS: mul, matmul)."""
    if len(edges) == 2:
        a, b = edges
        cross = (0,) * (b is not None) + (1,) * (a is not None)
    else:
        needed = len(edges) - edges.count(None)
        cross = tuple([i for i, fn in enumerate(edges) if needed - (fn is not None)])
    return tuple(sorted({*indices, *cross})) if indices else cross


def watch(t: Tensor) -> int:
    """t's version now, for a check at backward (its next write notes the user's line)."""
    counter = t._version
    if counter is None:
        return 0
    counter.watched = True
    return counter.version


def modified(op: str, what: str, shape, dt, counter: VersionCounter, version: int, where: str | None) -> RuntimeError:
    """torch's error for a saved tensor changed in place, with the op, the shape and the user's line of the write."""
    return RuntimeError(
        f"one of the variables needed for gradient computation has been modified by an inplace operation: "
        f"[{what} of {op}, a {dt.name} tensor of shape {list(shape)}] is at version {counter.version}; "
        f"expected version {version} instead. It was last written in place at {counter.where_written()}"
        + (f"; the op ran at {where}" if where else "")
        + ". Write into a clone, or move the in-place write after backward.")
class _AutocastOff:
    """Backward runs with autocast off: each op's backward computes in the dtypes its forward used (torch's rule)."""

    def __enter__(self):
        self.prev, STATE.autocast = STATE.autocast, None

    def __exit__(self, *exc):
        STATE.autocast = self.prev


class _GradMode:
    """Context manager and decorator that sets grad mode (no_grad, enable_grad, set_grad_enabled, inference_mode);
    enabled=None leaves it as it is."""

    def __init__(self, enabled: bool | None):
        self.enabled = enabled

    def __enter__(self):
        self.prev = STATE.grad_enabled
        if self.enabled is not None:
            STATE.grad_enabled = self.enabled

    def __exit__(self, *exc):
        STATE.grad_enabled = self.prev

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _GradMode(self.enabled):
                return fn(*args, **kwargs)
        return wrapper


def no_grad(fn=None):
    """Context manager or decorator (with or without parentheses) that turns gradient recording off."""
    return _GradMode(False) if fn is None else _GradMode(False)(fn)


def enable_grad(fn=None):
    """Context manager or decorator (with or without parentheses) that turns gradient recording on."""
    return _GradMode(True) if fn is None else _GradMode(True)(fn)


class set_grad_enabled(_GradMode):
    """Sets grad mode now (as a function) and restores it on exit (as a context manager); as a decorator it leaves
    the mode as it was and sets it for each call, as torch does."""

    def __init__(self, mode: bool):
        super().__init__(bool(mode))
        self.prev, STATE.grad_enabled = STATE.grad_enabled, bool(mode)

    def __enter__(self):
        pass

    def __call__(self, fn):
        STATE.grad_enabled = self.prev
        return super().__call__(fn)


def inference_mode(mode=True):
    """torch.inference_mode: context manager or decorator (with or without parentheses) that turns gradient
    recording off (mode=False leaves it as it is). graphc has no separate inference tensors: results are plain
    tensors that do not require grad, as under no_grad."""
    if callable(mode):
        return _GradMode(False)(mode)
    return _GradMode(False if mode else None)


def is_grad_enabled() -> bool:
    return STATE.grad_enabled


class set_detect_anomaly:
    """set_detect_anomaly(True): record each op's user line and raise at the first op (forward or backward)
    that produces NaN or Inf, naming it and that line."""

    def __init__(self, mode: bool):
        self.prev, STATE.anomaly = STATE.anomaly, mode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        STATE.anomaly = self.prev


class detect_anomaly(set_detect_anomaly):
    def __init__(self):
        super().__init__(True)


def is_anomaly_enabled() -> bool:
    return STATE.anomaly


def _topological(roots: list[Node]) -> list[Node]:
    """Nodes reachable from roots, each before every node it feeds gradients to."""
    return postorder(roots, lambda node: [fn for fn in node.edges if isinstance(fn, Node)])[::-1]


def _check_finite(node: Node, grad: Tensor, index: int) -> None:
    if grad._data is not None and not np.isfinite(grad._host().astype(np.float64, copy=False)).all():
        raise RuntimeError(f"anomaly: {node.name()} returned NaN/Inf in its gradient for input {index}; the "
                           f"forward op '{node.op.name}' was called at {node.where}")


def _run_hooks(hooks, grad: Tensor, owner: Tensor | None = None) -> Tensor:
    """Run tensor hooks on a gradient (owner: the leaf they were registered on); under capture the compiler records
    each call, so a replay calls the hook again."""
    capture = STATE.capture
    for hook in hooks or ():
        new = hook(grad) if capture is None else capture.run_hook(hook, grad, owner)
        if new is not None:
            grad = new
    return grad


def _leaf_contributions(order: list[Node], roots: list[Tensor]) -> dict[int, int]:
    """For each leaf with post-accumulate hooks, how many gradients this backward may deliver to it."""
    counts: dict[int, int] = {}
    for node in order:
        for x, fn in zip(node.inputs or (), node.edges):
            if fn is LEAF and x._post_accumulate_hooks:
                counts[id(x)] = counts.get(id(x), 0) + 1
    for root in roots:
        if root.grad_fn is None and root._post_accumulate_hooks:
            counts[id(root)] = counts.get(id(root), 0) + 1
    return counts


def run_backward(roots: list[Tensor], grads: list, retain_graph: bool | None = None, create_graph: bool = False,
                 inputs: list[Tensor] | None = None, inputs_as_leaves: bool = False) -> list | None:
    """Backpropagate from roots. With `inputs`, return their gradients instead of accumulating into .grad; with
    `inputs_as_leaves`, the gradient of a non-leaf input is the one reaching it, before its tensor hooks, and
    nothing runs beyond it (a compiled function's backward, recorded with respect to what it reads: the caller's
    graph runs the rest when the gradient reaches it)."""
    from .ops.creation import ones_like

    retain_graph = create_graph if retain_graph is None else retain_graph
    wanted = None if inputs is None else {id(t): i for i, t in enumerate(inputs)}
    results = None if inputs is None else [None] * len(inputs)
    pending: dict[Node, Tensor] = {}
    order = _topological([r.grad_fn for r in roots if r.grad_fn is not None])
    if inputs is not None:
        order = _needed(order, inputs, inputs_as_leaves)
    contributions = _leaf_contributions(order, roots) if POST_ACCUMULATE_HOOKS[0] and wanted is None else {}

    def settle(t: Tensor) -> None:
        """One possible contribution to leaf t is done (delivered or known to be None): fire its post-accumulate
        hooks after the last one, if it received a gradient."""
        left = contributions.get(id(t))
        if left is None:
            return
        contributions[id(t)] = left - 1
        if left == 1 and t.grad is not None:
            for hook in list(t._post_accumulate_hooks):
                hook(t)

    def deliver(t: Tensor, fn, g: Tensor | None) -> None:
        if g is None:
            if fn is LEAF:
                settle(t)
            return
        if wanted is not None and id(t) in wanted and fn is LEAF:
            i = wanted[id(t)]
            results[i] = g if results[i] is None else results[i] + g
        elif fn is not LEAF:
            pending[fn] = g if fn not in pending else pending[fn] + g
        elif wanted is None:
            g = _run_hooks(t._hooks, g, t)
            if t.grad is None:  # a copy: one gradient tensor may reach several leaves
                t.grad = (g if create_graph else g.detach()).clone()
            else:
                t.grad = t.grad + g
            settle(t)

    with _GradMode(create_graph), _AutocastOff():
        for root, g in zip(roots, grads):
            if not root.requires_grad:
                raise RuntimeError(f"backward: the tensor of shape {list(root.shape)} does not require grad and "
                                   "has no grad_fn")
            if g is None:
                if root.numel() != 1:
                    raise RuntimeError(f"backward: grad can be implicitly created only for scalar outputs; this "
                                       f"output has shape {list(root.shape)}")
                g = ones_like(root)
            deliver(root, root.grad_fn or LEAF, g)
        for node in order:
            g = pending.pop(node, None)
            if g is None:
                if contributions:
                    for x, fn in zip(node.inputs or (), node.edges):
                        deliver(x, fn, None)
                continue
            if node.inputs is None:
                raise RuntimeError(f"Trying to backward through the graph a second time ({node.name()}): its saved "
                                   "tensors were freed; pass retain_graph=True to the first backward")
            node.check_saved()
            g = _run_hooks(node.hooks, g)
            if wanted is not None:
                for i in wanted.values():
                    t = inputs[i]
                    if t.grad_fn is node:
                        results[i] = g
            if node.op.backward is None:  # as torch, only a backward through the op is refused
                raise op_error(node.op.name, f"derivative for {node.op.name} is not implemented",
                               [x for x in node.inputs if x is not None])
            in_grads = node.op.backward(node, g)
            for i, (x, fn, gx) in enumerate(zip(node.inputs, node.edges, in_grads)):
                if gx is None or fn is None:
                    if fn is LEAF and contributions:
                        settle(x)
                    continue
                if type(gx) is Tensor and gx.dtype is not x.dtype:  # as torch's engine: a gradient takes its
                    gx = gx.to(x.dtype)  # input's dtype (an add of float32 and autocast bfloat16 gives float32)
                if STATE.anomaly:
                    _check_finite(node, gx, i)
                deliver(x, fn, gx)
            if not retain_graph:
                node.release()
        for i, t in enumerate(inputs or ()):  # a non-leaf input whose own grad_fn did not run: its hooks, as torch
            if results[i] is None and t.grad_fn in pending:
                g = pending[t.grad_fn]
                results[i] = g if inputs_as_leaves else _run_hooks(t.grad_fn.hooks, g)
    return results


def _needed(order: list[Node], inputs: list[Tensor], inputs_as_leaves: bool) -> list[Node]:
    """The nodes of order whose backward leads to one of inputs (a leaf among them, or a non-leaf's grad_fn): with
    `inputs`, only they run, as torch's engine runs for autograd.grad. A non-leaf input's own grad_fn runs only if it
    leads on to another input (its gradient is what reached it), and never `inputs_as_leaves`."""
    leaves = {id(t) for t in inputs if t.grad_fn is None}
    targets = {id(t.grad_fn) for t in inputs if t.grad_fn is not None}
    kept: set[int] = set()
    for node in reversed(order):  # each node after the nodes it feeds gradients to
        xs = node.inputs if node.inputs is not None else (None,) * len(node.edges)
        if inputs_as_leaves and id(node) in targets:
            continue
        if any(fn is LEAF and (x is None or id(x) in leaves) or fn is not None and (id(fn) in kept or id(fn) in targets)
               for x, fn in zip(xs, node.edges)):
            kept.add(id(node))
    return [node for node in order if id(node) in kept]


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None, create_graph: bool = False,
         only_inputs: bool = True, allow_unused: bool | None = None, materialize_grads: bool = False) -> tuple:
    """torch.autograd.grad: gradients of outputs with respect to inputs, leaving .grad untouched. only_inputs is
    deprecated and ignored, with torch's FutureWarning when False (WGAN-GP code still passes it);
    materialize_grads gives zeros for inputs the outputs do not use (and implies allow_unused). Raises RuntimeError
    for an unused input otherwise, ValueError for materialize_grads with allow_unused=False, as torch."""
    if not only_inputs:
        warnings.warn("only_inputs argument is deprecated and is ignored now (defaults to True). To accumulate "
                      "gradient for other parts of the graph, please use torch.autograd.backward.", FutureWarning,
                      stacklevel=2)
    if materialize_grads and allow_unused is False:
        raise ValueError("Expected allow_unused to be True or not passed when materialize_grads=True, but got: "
                         "allow_unused=False.")
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    grad_outputs = [None] * len(outputs) if grad_outputs is None else (
        [grad_outputs] if isinstance(grad_outputs, Tensor) else list(grad_outputs))
    results = run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs)
    for t, r in zip(inputs, results):
        if r is None and not (allow_unused or materialize_grads):
            raise RuntimeError(f"autograd.grad: an input of shape {list(t.shape)} was not used in the graph; "
                               "pass allow_unused=True")
    if materialize_grads:
        from .ops.creation import zeros_like
        results = [zeros_like(t) if r is None else r for t, r in zip(inputs, results)]
    return tuple(results)


def backward(tensors, grad_tensors=None, retain_graph: bool | None = None, create_graph: bool = False) -> None:
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    grad_tensors = [None] * len(tensors) if grad_tensors is None else (
        [grad_tensors] if isinstance(grad_tensors, Tensor) else list(grad_tensors))
    run_backward(tensors, grad_tensors, retain_graph, create_graph)


class _VariableType(type):
    def __instancecheck__(cls, obj) -> bool:
        return isinstance(obj, Tensor)


class Variable(metaclass=_VariableType):
    """torch.autograd.Variable, which torch keeps for old scripts: Variable(t, requires_grad=False) is t detached
    (sharing its memory) with requires_grad set, and every tensor is an instance. volatile is ignored, as in torch."""

    def __new__(cls, data: Tensor, requires_grad: bool = False, volatile: bool = False) -> Tensor:
        return data.detach().requires_grad_(requires_grad)


class FunctionCtx:
    """The ctx of a custom autograd.Function: what forward saves for backward."""

    def __init__(self, needs_input_grad: tuple[bool, ...]):
        self.needs_input_grad = needs_input_grad
        self.to_save: tuple = ()
        self.versions: list = []
        self.non_differentiable: set[int] = set()
        self.dirty: set[int] = set()
        self.materialize_grads = True

    def save_for_backward(self, *tensors) -> None:
        """Keep tensors (or None) for backward, read back as ctx.saved_tensors (refused, as torch, once an in-place
        write changed one of them)."""
        self.to_save = tensors
        self.versions = [watch(t) if type(t) is Tensor else None for t in tensors]

    @property
    def saved_tensors(self) -> tuple:
        if self.to_save is None:
            raise RuntimeError("Trying to backward through the graph a second time (or directly access saved tensors "
                               "after they have already been freed); pass retain_graph=True to the first backward")
        for i, (t, version) in enumerate(zip(self.to_save, self.versions)):
            if version is not None and t._version is not None and t._version.version != version:
                raise modified("a custom Function", f"saved tensor {i}", t.shape, t.dtype, t._version, version, None)
        return self.to_save

    def mark_non_differentiable(self, *tensors) -> None:
        """These outputs get no gradient: they do not require grad, and backward receives zeros for them."""
        self.non_differentiable.update(id(t) for t in tensors)

    def set_materialize_grads(self, value: bool) -> None:
        """With False, backward receives None (not zeros) for outputs that got no gradient."""
        self.materialize_grads = value

    def mark_dirty(self, *tensors) -> None:
        """These inputs were written in place by forward and are returned: as in torch, the caller's tensor itself
        is the output, and its history is now this Function's backward."""
        self.dirty = {id(t) for t in tensors}


class OutputGrads:
    """Gradients of a multi-output node's outputs, by output index, summed as they arrive."""

    _data = None  # not a tensor: anomaly mode's finite check looks at each output's gradient, not at this

    def __init__(self, grads: dict):
        self.grads = grads

    def __add__(self, other: OutputGrads) -> OutputGrads:
        merged = dict(self.grads)
        for i, g in other.grads.items():
            merged[i] = g if i not in merged else merged[i] + g
        return OutputGrads(merged)


class _CustomBackward:
    """The 'op' of a custom Function's backward node: calls the user's backward once with every output's gradient."""

    def __init__(self, function: type):
        self.function, self.name = function, function.__name__

    def backward(self, node: FunctionNode, grads) -> tuple:
        if not isinstance(grads, OutputGrads):
            grads = OutputGrads({0: grads})
        outs = []
        for i, out in enumerate(node.outputs):
            g = grads.grads.get(i)
            if g is None and node.ctx.materialize_grads and type(out) is Tensor:
                from .ops.creation import zeros_like
                g = zeros_like(out)
            outs.append(g)
        result = self.function.backward(node.ctx, *outs)
        result = result if isinstance(result, tuple) else (result,)
        n = len(node.inputs)
        if len(result) > n and all(r is None for r in result[n:]):
            result = result[:n]
        if len(result) != n:
            raise RuntimeError(f"function {node.name()} returned an incorrect number of gradients (expected {n}, "
                               f"got {len(result)})")
        return tuple(_fit_grad(node, i, x, g) for i, (x, g) in enumerate(zip(node.inputs, result)))


def _fit_grad(node: Node, i: int, x, g):
    """A gradient the user's backward returned, checked against its input: summed over broadcast dims and cast to
    the input's dtype as torch does; any other shape is an error."""
    if g is not None and not isinstance(x, Tensor):
        raise RuntimeError(f"function {node.name()} returned a gradient different than None at position {i + 1}, but "
                           "the corresponding forward input was not a Tensor")
    if g is None or not x.requires_grad:
        return None
    if not isinstance(g, Tensor):
        raise TypeError(f"function {node.name()} returned a gradient of type {type(g).__name__} at index {i}, "
                        "expected a Tensor or None")
    if tuple(g.shape) != tuple(x.shape):
        from .ops import meta
        from .ops.reduction import sum_to
        try:
            fits = meta.broadcast(tuple(g.shape), tuple(x.shape)) == tuple(g.shape)
        except ValueError:
            fits = False
        if not fits:
            raise RuntimeError(f"function {node.name()} returned an invalid gradient at index {i} - got "
                               f"{list(g.shape)} but expected shape compatible with {list(x.shape)}")
        g = sum_to(g, x)
    return g if g.dtype is x.dtype else g.to(x.dtype)


class FunctionNode(Node):
    """The backward node of one custom Function application: its inputs are the forward's arguments."""

    __slots__ = ("ctx", "outputs")

    def __init__(self, function: type, ctx: FunctionCtx, args: tuple, outputs: list[Tensor], where: str | None):
        self.op, self.inputs, self.attrs, self.where, self.hooks = _CustomBackward(function), args, {}, where, None
        self._out, self.saved_inputs, self.saved_output = (None, None, None), (), None  # the ctx checks its saves
        self.ctx, self.outputs = ctx, outputs
        self.edges = tuple([(x.grad_fn or LEAF) if type(x) is Tensor and x.requires_grad else None for x in args])

    def name(self) -> str:
        return f"{self.op.name}Backward"

    def release(self) -> None:
        super().release()
        self.ctx.to_save, self.outputs = None, None

    def held(self) -> list:
        """The forward's arguments and outputs, what ctx saved, and what forward stored on ctx (`ctx.x = x`)."""
        return [*super().held(), *(self.outputs or ()), *(self.ctx.to_save or ()), *vars(self.ctx).values()]


class _SelectBackward:
    @staticmethod
    def backward(node: Node, g: Tensor) -> tuple:
        return (OutputGrads({node.attrs["index"]: g}),)


class OutputNode(Node):
    """The grad_fn of one output of a multi-output node (a custom Function's, a compiled function's): hands its
    gradient to that node, which runs its backward once with them all (OutputGrads)."""

    __slots__ = ()

    def __init__(self, joint: Node, index: int):
        self.op, self.inputs, self.attrs = _SelectBackward, (None,), {"index": index}
        self.where, self.hooks = None, None
        self._out, self.edges, self.saved_inputs, self.saved_output = (None, None, None), (joint,), (), None

    def name(self) -> str:
        return self.edges[0].name()


class Function:
    """torch.autograd.Function: subclass with static forward(ctx, *args) and backward(ctx, *grads), call apply.
    forward runs without recording (its ops are still captured inside graphc.compile); backward returns one gradient
    (or None) per forward argument, written with graphc ops so a captured backward records it too."""

    @staticmethod
    def forward(ctx: FunctionCtx, *args, **kwargs):
        raise NotImplementedError("a custom autograd.Function must define forward")

    @staticmethod
    def backward(ctx: FunctionCtx, *grads):
        raise NotImplementedError("a custom autograd.Function must define backward")

    @staticmethod
    def setup_context(ctx: FunctionCtx, inputs: tuple, output) -> None:
        """The newer style: forward(*args) without ctx, then setup_context(ctx, args, output) saves what it needs."""

    @classmethod
    def apply(cls, *args):
        grad = STATE.grad_enabled and any(type(x) is Tensor and x.requires_grad for x in args)
        ctx = FunctionCtx(tuple(grad and type(x) is Tensor and x.requires_grad for x in args))
        with _GradMode(False):
            if cls.setup_context is Function.setup_context:
                result = cls.forward(ctx, *args)
            else:
                result = cls.forward(*args)
                cls.setup_context(ctx, args, result)
        if not grad:
            return result
        single = not isinstance(result, tuple)
        outputs = [result] if single else list(result)
        for o in outputs:
            if id(o) in ctx.dirty and (o.is_leaf and o.requires_grad or o._view is not None and o.requires_grad):
                raise RuntimeError(f"{cls.__name__}: ctx.mark_dirty of a leaf that requires grad or of a view is "
                                   "not supported (torch refuses the leaf too); write into a copy instead")
        # a returned input is a new tensor, unless forward wrote it in place (mark_dirty): then it is the input
        outputs = [o.detach() if id(o) not in ctx.dirty and any(o is x for x in args) else o for o in outputs]
        from .errors import user_line
        node = FunctionNode(cls, ctx, args, [o.detach() if type(o) is Tensor else o for o in outputs],
                            user_line() if STATE.anomaly else None)
        for i, o in enumerate(outputs):
            if type(o) is Tensor and o.dtype.is_floating_point and id(o) not in ctx.non_differentiable:
                o.requires_grad, o.grad_fn = True, (node if single else OutputNode(node, i))
                # a view of an input (x.view_as(x): a gradient-reversal layer) keeps its memory, but its history
                # is this Function's backward, not the view op's (refresh_view would put that back)
                o._view = None
        return outputs[0] if single else tuple(outputs)
