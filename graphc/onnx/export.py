"""graphc.onnx.export: the model runs once under capture (eval mode, no grad), graphc's passes (CSE, constant
folding, dead code) run on the graph, and each node is written by its op's `onnx` mapping (declared in the op's
definition, graphc/ops/). Parameters and buffers become initializers under their state-dict names."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np

from ..autograd import no_grad
from ..compiler.capture import Capture, CaptureError, GraphBreakError
from ..compiler.ir import Graph, Node
from ..compiler.passes import optimize
from ..compiler.runtime import reference_values
from ..dispatch import ELEMENTWISE
from ..state import STATE
from ..tensor import Tensor

DEFAULT_OPSET = 18  # ReduceMean/ReduceMax take axes as an input from 18; ONNX Runtime 1.16+ runs it


class Builder:
    """The ONNX graph being written. An op's `onnx` mapping calls `name`, `op` and `const` to emit its node(s)."""

    def __init__(self, opset: int, dynamic: bool):
        self.opset, self.dynamic = opset, dynamic
        self.nodes: list = []
        self.initializers: list = []
        self.names: dict[Node, str] = {}
        self._count = 0

    def fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def name(self, x, like: Node | None = None) -> str:
        """An operand's value name: an IR node's, or a Python number as a scalar constant of like's dtype."""
        if type(x) is Node:
            return self.names[x]
        return self.const(np.array(x, dtype=like.dtype.np if like is not None else None))

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs) -> str | list[str]:
        """Append an ONNX node; returns its output name (a list when outputs > 1)."""
        import onnx
        names = [self.fresh(op_type) for _ in range(outputs)]
        self.nodes.append(onnx.helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names

    def const(self, value, name: str | None = None) -> str:
        """An initializer holding value (a numpy array or a list of ints, as int64)."""
        from onnx import numpy_helper
        name = name or self.fresh("const")
        array = np.asarray(value, dtype=np.int64) if isinstance(value, (list, tuple)) else np.asarray(value)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def cast(self, name: str, dt) -> str:
        return self.op("Cast", name, to=tensor_type(dt.np))

    def promoted(self, node: Node, operands: tuple) -> list[str]:
        """An elementwise op's operands in one dtype (ONNX does not promote): the result's, or for a comparison the
        tensor operands' widest dtype."""
        target = node.dtype
        tensors = [x for x in operands if type(x) is Node]
        if target.np == np.bool_ and tensors:
            target = max(tensors, key=lambda x: (x.dtype.is_floating_point, x.dtype.itemsize)).dtype
        return [(self.name(x) if x.dtype is target else self.cast(self.name(x), target)) if type(x) is Node
                else self.const(np.array(x, dtype=target.np)) for x in operands]

    def reshape(self, node: Node) -> str:
        """A view to node's shape as Reshape. Leading dims equal to the input's are copied (0), and with symbolic
        dims the first other dim is inferred (-1), so a reshape keeps working when the batch size changes."""
        source = node.inputs[0]
        old, new = list(source.shape), list(node.shape)
        code, k = [], 0
        while k < min(len(old), len(new)) and old[k] == new[k] and new[k] != 0:
            code.append(0)
            k += 1
        rest = new[k:]
        if self.dynamic and rest:
            rest = [-1] + rest[1:]
        return self.op("Reshape", self.name(source), self.const(code + rest))

    def expand(self, node: Node) -> str:
        """A broadcast to node's shape as Expand; dims the input already has are 1 in the target (Expand
        broadcasts both ways), so they follow the input's size at run time."""
        source = node.inputs[0]
        old = (1,) * (len(node.shape) - len(source.shape)) + tuple(source.shape)
        return self.op("Expand", self.name(source), self.const([1 if o == s else s for o, s in zip(old, node.shape)]))

    def reduce(self, op_type: str, node: Node) -> str:
        """A reduction over node.attrs['dim'] with its keepdim, the input first cast to the result's dtype."""
        x = node.inputs[0]
        data = self.name(x) if x.dtype is node.dtype else self.cast(self.name(x), node.dtype)
        axes = list(node.attrs["dim"])
        inputs = (data, self.const(axes)) if axes else (data,)
        return self.op(op_type, *inputs, keepdims=int(node.attrs["keepdim"]))

    def getitem(self, node: Node) -> str:
        """Basic indexing: each (start, stop, step) item a Slice axis, each int a Gather that drops its dim."""
        out = self.name(node.inputs[0])
        starts, ends, axes, steps, picks = [], [], [], [], []
        for axis, item in enumerate(node.attrs["items"]):
            if type(item) is tuple:
                start, stop, step = item
                if step is not None and step < 0:
                    raise NotImplementedError(f"graphc.onnx.export: getitem (at {node.where}) with a negative "
                                              "step has no ONNX mapping")
                starts.append(start or 0)
                ends.append(np.iinfo(np.int64).max if stop is None else stop)
                axes.append(axis)
                steps.append(step or 1)
            elif type(item) is int:
                picks.append((axis, item))
            else:
                raise NotImplementedError(f"graphc.onnx.export: getitem (at {node.where}) with index {item!r} has "
                                          "no ONNX mapping; index with slices and integers")
        if axes:
            out = self.op("Slice", out, self.const(starts), self.const(ends), self.const(axes), self.const(steps))
        for axis, index in reversed(picks):
            out = self.op("Gather", out, self.const(np.array(index, dtype=np.int64)), axis=axis)
        return out


def tensor_type(np_dtype) -> int:
    import onnx
    return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(np_dtype))


def emit(g: Builder, node: Node) -> str:
    """Write one op node through its op's mapping; an op without one is an error naming it, the user's line and
    what to do."""
    spec = node.op.onnx
    if spec is None:
        raise NotImplementedError(
            f"graphc.onnx.export: op '{node.op.name}' (at {node.where or 'an unknown line'}) has no ONNX mapping; "
            "rewrite that line with ops that export (docs/deployment.md lists them), or run it outside the exported "
            "module")
    if callable(spec):
        return spec(g, node)
    if node.op.category == ELEMENTWISE:
        return g.op(spec, *g.promoted(node, node.inputs))
    return g.op(spec, *(g.name(x, node) for x in node.inputs))


def capture(model, args: tuple) -> tuple[Graph, list[Tensor], list[Node], list]:
    """Run model(*args) once under capture as one graph: (graph after graphc's passes, the real tensor behind each
    graph input, the output nodes, the eager outputs)."""
    seen = {}

    def run(graph: Graph, sources: list) -> list:
        seen["graph"], seen["sources"] = graph, list(sources)
        values = reference_values(graph, [t._data for t in sources])
        return [values[o] for o in graph.outputs]

    cap = Capture(list(args), True, run)
    STATE.capture = cap
    try:
        result = model(*args)
    except (CaptureError, GraphBreakError) as e:
        cap.abort()
        raise RuntimeError(f"graphc.onnx.export: the model cannot be captured as one graph: {e}") from None
    finally:
        STATE.capture = None
    outputs = list(result) if isinstance(result, (tuple, list)) else [result]
    if not outputs or any(type(t) is not Tensor or t._data is not None for t in outputs):
        cap.abort()
        raise TypeError("graphc.onnx.export: the model must return a tensor or a tuple of tensors computed from its "
                        "inputs")
    nodes = [t._node for t in outputs]
    if cap.writes:
        cap.abort()
        raise RuntimeError("graphc.onnx.export: the model updates a tensor in place while it runs (such as "
                           "BatchNorm's running statistics in training mode); call model.eval() first")
    cap.flush()
    graph = seen["graph"]
    graph.outputs = nodes
    optimize(graph)
    return graph, seen["sources"], list(graph.outputs), outputs


def export(model, args, f, input_names: Sequence[str] | None = None, output_names: Sequence[str] | None = None,
           dynamic_axes: Mapping[str, Mapping[int, str] | Sequence[int]] | None = None,
           opset_version: int | None = None) -> None:
    """Export model(*args) to the ONNX file f (a path or a binary file object), as torch.onnx.export.

    The model runs once under capture, in eval mode (restored afterwards) and under no_grad. Parameters and
    buffers are initializers named as in model.state_dict(); any other tensor it reads is a constant.
    dynamic_axes maps an input or output name to the dims that are symbolic ({name: {dim: "batch"}} or
    {name: [dim, ...]}). The file passes onnx.checker.check_model(full_check=True).

    Raises NotImplementedError naming the op and the user's line for an op with no ONNX mapping, RuntimeError for
    a model that does not capture as one graph (a graph break) or updates state in place, ImportError without the
    onnx package."""
    import onnx
    args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    opset = opset_version or DEFAULT_OPSET
    training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with no_grad():
            graph, sources, outputs, _ = capture(model, args)
    finally:
        if training:
            model.train(True)
    input_names = list(input_names or [f"input_{i}" for i in range(len(args))])
    output_names = list(output_names or [f"output_{i}" for i in range(len(outputs))])
    dynamic = {k: (dict(v) if isinstance(v, Mapping) else {d: f"{k}_dim_{d}" for d in v})
               for k, v in (dynamic_axes or {}).items()}
    g = Builder(opset, bool(dynamic))
    state = {}
    if hasattr(model, "state_dict"):
        state = {id(t): name for name, t in model.state_dict(keep_vars=True).items()}
    arg_names = {id(a): name for a, name in zip(args, input_names) if type(a) is Tensor}
    for node, t in zip(graph.inputs, sources):
        if id(t) in arg_names:
            g.names[node] = arg_names[id(t)]
        else:
            g.names[node] = g.const(t._data, state.get(id(t)))
    for node in graph.nodes:
        if node.kind == "const":
            g.names[node] = g.const(node.value)
        elif node.kind == "op":
            g.names[node] = emit(g, node)
    for node, name in zip(outputs, output_names):
        g.op("Identity", g.names[node])
        g.nodes[-1].output[0] = name
    inputs = [_value_info(name, a.dtype.np, a.shape, dynamic.get(name, {}))
              for a, name in zip(args, input_names) if type(a) is Tensor]
    outs = [_value_info(name, n.dtype.np, n.shape, dynamic.get(name, {}), None if dynamic else ...)
            for n, name in zip(outputs, output_names)]
    model_proto = onnx.helper.make_model(
        onnx.helper.make_graph(g.nodes, type(model).__name__, inputs, outs, g.initializers),
        opset_imports=[onnx.helper.make_opsetid("", opset)], producer_name="graphc")
    onnx.checker.check_model(model_proto, full_check=True)
    if isinstance(f, (str, os.PathLike)):
        onnx.save(model_proto, os.fspath(f))
    else:
        f.write(model_proto.SerializeToString())


def _value_info(name: str, np_dtype, shape: tuple, symbolic: dict, fixed=...):
    """A graph input/output type: symbolic dims by name; with fixed=None the other dims are left unknown (an
    output whose size follows a symbolic input)."""
    import onnx
    dims = [symbolic.get(d, d_size if fixed is ... else None) for d, d_size in enumerate(shape)]
    return onnx.helper.make_tensor_value_info(name, tensor_type(np_dtype), dims)
