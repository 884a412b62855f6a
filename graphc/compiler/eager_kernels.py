"""Eager ops through generated kernels: each op runs as a one-node graph through the same fusion and codegen as
compiled code.

graphc.dispatch hands every op with CUDA operands to STATE.cuda_runner (an EagerRunner, set when graphc.compiler is
imported) and records autograd itself, so backward rules (graphc ops) run the same way. A plan is built once per op,
attrs, scalar operands and each tensor operand's dtype and size-1 dims, and reused for every other size. Views
share storage as in torch; ops without a Triton lowering run as numpy fallback steps (a host round trip).

On CPU, where a C compiler works, STATE.cpu_runner runs large ops with a lowering and only tensor operands (gelu,
the steps of softmax) as one-node plans of the `cpu` backend (not under graphc.use_deterministic_algorithms): with
numpy until their native kernel is built in the background (requested on the plan's second run), natively after (a
scalar operand would bake one kernel per value, so those ops stay on numpy)."""
from __future__ import annotations

import numpy as np

from ..dispatch import Op
from ..state import STATE
from ..tensor import Tensor, to_torch
from . import native
from .ir import Graph
from .plan import Plan
from .runtime import Runtime
from .views import apply_view

NATIVE_MIN = 1 << 16  # elements from which an eager CPU op is worth a native kernel (below, numpy's call is cheaper)


class EagerRunner:
    """Runs one op with the generated kernels of `backend`: "triton" for CUDA tensors, "interpret" for CPU torch
    tensors under Triton's interpreter (how CI checks this path without a GPU), or "cpu" for numpy arrays."""

    def __init__(self, backend: str = "triton"):
        self.backend = backend
        self.plans: dict[tuple, Runtime] = {}

    def takes(self, op: Op, arrays: list) -> bool:
        """For the cpu runner: whether an eager op goes here (a pointwise or reduction lowering, tensor operands
        only, a large operand); the others run their numpy implementation directly. A cast or a clone (its value is
        its operand: numpy's astype or copy, which no kernel beats by enough to pay for a compiler run) stays on
        numpy: model set-up casts each weight nn.init fills, and the build that asked for ran beside the first
        training steps."""
        low = op.lowering
        return (not STATE.deterministic and low is not None
                and (low.expr not in (None, "{0}") or low.reduce is not None)
                and all(type(a) is np.ndarray for a in arrays) and any(a.size >= NATIVE_MIN for a in arrays))

    def __call__(self, op: Op, inputs: tuple, attrs: dict):
        """The result's storage (a torch tensor, or a numpy array for "cpu") of op applied to inputs (tensors on one
        device and scalars)."""
        storages = [x._data for x in inputs if type(x) is Tensor]
        if op.lowering is not None and op.lowering.view is not None:
            return apply_view(storages[0], op, attrs, op.infer(*inputs, **attrs)[0])
        key = plan_key(op, inputs, attrs)
        runtime = self.plans.get(key)
        if runtime is None:
            runtime = self.plans[key] = Runtime(Plan(*one_node_graph_and_steps(op, inputs, attrs, self.backend)))
        elif runtime.plan.steps.library is not None and not runtime.plan.steps.library.requested:
            runtime.plan.steps.library.request()  # its second run: an op used once never pays for a build
        (out,) = runtime(storages)
        if self.backend == "cpu":
            return out
        return to_torch(np.require(out, requirements="C")) if type(out) is np.ndarray else out


def plan_key(op: Op, inputs: tuple, attrs: dict) -> tuple:
    """What a one-node plan depends on: sizes are kernel arguments, but which dims are 1 decides broadcasting; the
    TF32 switch decides a float32 matmul's kernel."""
    operands = tuple((x.dtype, tuple(n == 1 for n in x._data.shape)) if type(x) is Tensor else (type(x), repr(x))
                     for x in inputs)
    return op.name, repr(attrs), operands, STATE.float32_matmul_precision


def one_node_graph_and_steps(op: Op, inputs: tuple, attrs: dict, backend: str) -> tuple[Graph, list]:
    """The graph `inputs -> op -> output` and its plan for backend."""
    from .codegen import plan_kernels

    graph = Graph()
    args = tuple(graph.add("input", None, (), {}, tuple(x._data.shape), x.dtype, x.device) if type(x) is Tensor
                 else x for x in inputs)
    shape, dtype = op.infer(*args, **attrs)
    graph.outputs = [graph.add("op", op, args, attrs, shape, dtype, graph.inputs[0].device)]
    return graph, plan_kernels(graph, backend)


STATE.cuda_runner = EagerRunner("triton")
STATE.cpu_runner = EagerRunner("cpu") if native.compiler() is not None else None
