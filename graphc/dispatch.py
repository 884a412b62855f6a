"""The one dispatch every op goes through: infer and check, then run eagerly (recording autograd)
or append to the graph being captured."""
from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable

import numpy as np

from . import dtypes
from .autograd import Node, refresh_view
from .errors import PASS_THROUGH, RefusedValueError, ValuesRefused, argument_of, op_error, user_line, values_refused
from .state import STATE
from .tensor import Tensor

ELEMENTWISE, REDUCTION, MATMUL, VIEW, OTHER = "elementwise", "reduction", "matmul", "view", "other"
# in an op's saves: its result; every tensor input (slice(1, None): those from 1 on); each input when another input
# requires grad (mul, matmul: a's gradient reads b, b's reads a)
OUT, ALL_INPUTS, CROSS = "out", slice(None), "cross"
# numpy warns where torch silently gives inf/nan (log(0), 0/0, sqrt(-1)); ops run inside graphc's modules, so only
# their warnings are silenced (set_detect_anomaly is the way to find where NaN appears)
warnings.filterwarnings("ignore", r"(divide by zero|invalid value|overflow) encountered", RuntimeWarning, r"graphc\.")
OPS: dict[str, Op] = {}
# op -> [(an op, match)]: patterns ending in that op which the other op computes in one application, as Inductor's
# pattern passes rewrite them (declared with op(..., replaces=(last op, match)); see Capture.record)
PATTERNS: dict[Op, list[tuple[Op, Callable]]] = {}
NUMBERS = dtypes.NUMBERS
_NUMPY = {np.ndarray, *np.sctypeDict.values()}  # numpy's array and scalar types (a set: attrs are checked per call)


class Lowering:
    """How an op is computed inside a generated kernel, the same for every renderer (Triton, C).

    expr: a pointwise op's value, written in a small renderer-neutral expression language: Python syntax over the
      operands {0}, {1}, ... and the op's attrs {name}; infix arithmetic (`%` is C's remainder, with the sign of the
      dividend), comparisons, `&` `|` on booleans, the constants inf and nan, and calls of the primitives each
      renderer maps (exp exp2 expm1 log log2 log10 log1p sqrt rsqrt sin cos tan asin acos atan atan2 sinh cosh
      tanh asinh acosh atanh hypot erf erfc lgamma floor ceil abs sign maximum minimum pow where). Operands are
      converted to the result's compute type first unless cast_operands is False (a selection such as where,
      whose operands pass through). defaults: the values of attrs that are None (an absent bound).
    rounds: the result is rounded to its storage dtype even inside a kernel (an explicit cast, as torch rounds).
    copy: the result is operand 0's values unchanged, so a kernel may store it through a permutation.
    reduce: a reduction's combine ("sum", "max" or "min") over reduce_dims(input shapes, attrs), then its finish:
      an expression of the combined value {0} and the number of reduced elements {count} (a mean divides).
    when: when(dtype, attrs) -> bool, whether expr computes a node with this result dtype and these attrs exactly; other
      nodes run the op's numpy implementation between kernels (integer remainder: C traps on a division by zero).
    view: a view op's kind, index arithmetic inside kernels: "reshape" (same elements in row-major order),
      "expand" (stride 0 along broadcast dims), "permute" (dims reordered, attrs["dims"]), "contiguous" (a
      reshape to the same shape that copies outside kernels when the layout needs it) or "index" (basic indexing
      with ints, slices and None: the op's forward on either array type, run outside kernels).
    template: a hand-written kernel template computing the op, "module.kernel": each renderer that has it renders it
      from its own file (render_triton_<module>.py), a renderer without it runs the op's numpy forward. Nodes of one
      template with the same inputs (the gradients of one attention) form one group: one kernel writes them all."""

    __slots__ = ("expr", "cast_operands", "defaults", "rounds", "copy", "reduce", "reduce_dims", "finish", "view",
                 "when", "template")

    def __init__(self, expr: str | None = None, *, cast_operands: bool = True, defaults: dict | None = None,
                 rounds: bool = False, copy: bool = False, reduce: str | None = None, reduce_dims=None,
                 finish: str = "{0}", view: str | None = None, when=None, template: str | None = None):
        self.template = template
        self.expr, self.cast_operands, self.rounds, self.copy = expr, cast_operands, rounds, copy
        self.defaults = defaults or {}
        self.reduce, self.finish, self.view, self.when = reduce, finish, view, when
        self.reduce_dims = reduce_dims or (lambda shapes, dim, **_: tuple(dim))


class Op:
    """One op's whole definition.

    infer(*inputs, **attrs) -> (shape, dtype) reads only .shape/.dtype/.ndim of its inputs;
    forward(*arrays, **attrs) -> numpy array; backward(ctx, grad) -> one gradient (or None) per input,
    written with graphc ops; parse(*args, **kwargs) -> (inputs, attrs) turns a call into canonical form;
    lowering: how the compiler computes the op inside a kernel (a Lowering, None when it cannot); fallback: why an
    op without a lowering runs on numpy in a compiled plan (explain shows it);
    pure: False for ops whose result differs call to call (random ops); inverse (view ops):
    inverse(base, value, *other_inputs, **attrs) -> base with value written through the view, written with graphc
    ops (the view's functional inverse, as in PyTorch's functionalization);
    saves: what the backward rule reads by value, as torch saves it: input positions (or one slice of them, for
    variadic inputs), CROSS and OUT for the result (add saves nothing, mul CROSS, exp its result). Autograd refuses
    a saved tensor that an in-place write changed before backward. Undeclared: views save nothing, other ops
    everything (so never a silent wrong gradient); autocast: its policy inside graphc.autocast, per device type
    (graphc.amp.autocast_mode: LOWER, FP32, FP32_CUDA); onnx: how graphc.onnx.export writes the op, an ONNX op
    type taking the same operands or onnx(builder, node) -> the output's value name (graphc/onnx/export.py);
    ufunc: the numpy ufunc that computes the op when it has no attrs, so the numpy plan can compute it into a shared
    buffer (out=: runtime.Buffers): the forward itself when it is one, else declared (div's forward is a function
    for its rounding modes, and np.true_divide without one); shape_inputs: the positions of inputs the op reads only
    for their shape and dtype (sum_to's target, expand_as's): a compiled plan neither stores nor keeps those
    values for it (runtime.FallbackStep hands its forward a stand-in of that shape); operands: torch's names of
    the operands of an op without parse, in order, so that keyword calls (torch.mul(input=x, other=y),
    x.pow(exponent=2), torch.where(condition=c, input=x, other=y)) reach the same positions."""

    __slots__ = ("name", "category", "infer", "forward", "backward", "parse", "lowering", "fallback", "pure", "inverse",
                 "doc", "saved_inputs", "saves_output", "saves_cross", "autocast",
                 "onnx", "ufunc", "shape_inputs", "operands")

    def __init__(self, name, category, infer, forward, backward=None, parse=None, lowering=None, pure=True, doc=None,
                 inverse=None, fallback=None, saves=None, autocast=None, onnx=None, ufunc=None, shape_inputs=(),
                 operands=("input", "other")):
        self.name, self.category, self.infer, self.forward = name, category, infer, forward
        self.operands = operands
        self.shape_inputs = tuple(shape_inputs)
        self.backward, self.parse, self.lowering, self.pure, self.inverse = backward, parse, lowering, pure, inverse
        self.fallback, self.autocast, self.onnx = fallback, autocast, onnx
        self.ufunc = forward if isinstance(forward, np.ufunc) else ufunc
        self.doc = doc or forward.__doc__
        if saves is None:
            saves = () if category == VIEW else (ALL_INPUTS, OUT)
        slices = [i for i in saves if type(i) is slice]
        self.saved_inputs = slices[0] if slices else tuple(i for i in saves if type(i) is int)
        self.saves_output, self.saves_cross = OUT in saves, CROSS in saves

    def __call__(self, *args, **kwargs):
        if kwargs and "out" in kwargs:
            return write_out(self.name, self(*args, **{k: v for k, v in kwargs.items() if k != "out"}),
                             kwargs["out"])
        if self.parse is None:
            if kwargs:
                args, kwargs = named_operands(self, args, kwargs)
            return dispatch(self, args, kwargs)
        try:
            inputs, attrs = self.parse(*args, **kwargs)
        except (TypeError, ValueError, IndexError) as e:
            raise parse_error(self, e, args) from None
        return dispatch(self, inputs, attrs)

    def __repr__(self) -> str:
        return f"<op {self.name} ({self.category})>"


def named_operands(op: Op, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """The operands given by torch's names (op.operands) moved after the positional ones; the rest stay attrs."""
    for name in op.operands[len(args):]:
        if name not in kwargs:
            break
        args, kwargs = (*args, kwargs[name]), {k: v for k, v in kwargs.items() if k != name}
    return args, kwargs


def write_out(name: str, result, out):
    """torch's out= argument: result written into out, which is returned. A result of a higher dtype kind than
    out's (float into int) and a result that requires grad raise RuntimeError as torch's; out of another shape takes
    the result's shape, with torch's warning unless it was empty."""
    if not isinstance(out, Tensor):
        raise TypeError(f"{name}(): argument 'out' must be Tensor, not {type(out).__name__}")
    if STATE.grad_enabled and result.requires_grad:
        raise op_error(name, "functions with out=... arguments don't support automatic differentiation, "
                       "but one of the arguments requires grad.", (result,), RuntimeError)
    if result.dtype.category > out.dtype.category:
        raise op_error(name, f"result type {result.dtype.name} can't be cast to the desired output type "
                       f"{out.dtype.name}", (result, out), RuntimeError)
    if tuple(out.shape) != tuple(result.shape):
        if STATE.capture is not None:
            from .compiler.capture import CaptureError
            raise CaptureError(f"{name}(out=...) resizes its out tensor")
        if out.numel():
            from .errors import warn_at_user
            warn_at_user(f"An output with one or more elements was resized since it had shape {list(out.shape)}, "
                         f"which does not match the required output shape {list(result.shape)}.")
        out._data = np.empty(tuple(result.shape), out.dtype.np)
    return out.copy_(result)


def parse_error(fn: Op, e: Exception, operands: tuple) -> Exception:
    """A call the op's parse refused, as an op_error naming the op (not its internal parse function)."""
    message = str(e).removeprefix(f"{fn.name}: ")
    if isinstance(e, TypeError) and e.__traceback__.tb_next is None:  # the call did not fit parse's signature
        message = message.split("() ", 1)[-1]
    return op_error(fn.name, message, operands, type(e) if type(e) is not ValueError else RuntimeError)


def op(name: str, category: str, infer, backward=None, parse=None, lowering: Lowering | None = None,
       pure: bool = True, inverse=None, fallback: str | None = None, saves=None, autocast: dict | None = None,
       onnx=None, replaces: tuple[Op, Callable] | None = None, ufunc: np.ufunc | None = None,
       shape_inputs: tuple[int, ...] = (), operands: tuple[str, ...] = ("input", "other")):
    """Decorator over an op's numpy implementation: registers and returns the Op (callable as the public function).
    replaces=(last, match): a pattern of other ops, ending in `last`, that this op computes in one application;
    while a graph is captured, match(operand nodes of `last`, its attrs, graph) -> (operand nodes, attrs) of this op,
    or None where the recorded graph does not hold the pattern exactly (compiler/capture.py records this op instead
    of `last`, before autograd sees either)."""
    def register(forward) -> Op:
        if name in OPS:
            raise ValueError(f"op {name!r} is defined twice")
        OPS[name] = Op(name, category, infer, forward, backward, parse, lowering, pure, inverse=inverse,
                       fallback=fallback, saves=saves, autocast=autocast, onnx=onnx, ufunc=ufunc,
                       shape_inputs=shape_inputs, operands=operands)
        if replaces is not None:
            PATTERNS.setdefault(replaces[0], []).append((OPS[name], replaces[1]))
        return OPS[name]
    return register


def infer(op: Op, inputs: tuple, attrs: dict):
    """Run the op's shape/dtype inference; a refusal names the op, the operands and the user's line."""
    try:
        return op.infer(*inputs, **attrs)
    except (ValueError, TypeError, IndexError) as e:
        raise _refusal(op, e, inputs) from None


def _refusal(op: Op, e: Exception, inputs: tuple) -> Exception:
    # numpy's own subclasses (its casting errors) take other constructor arguments: the built-in class they extend
    kind = next(c for c in type(e).__mro__ if c.__module__ == "builtins")
    if isinstance(e, ValuesRefused):  # a check op's message is the user's error; the mark makes a compiled function
        return values_refused(RefusedValueError if kind is ValueError else kind)(f"{e}\n  at {user_line()}")
    return op_error(op.name, str(e), inputs, RuntimeError if kind is ValueError else kind)


def weak_scalars(arrays: list, want) -> list:
    """0-d float arrays beside a dimensioned one as Python numbers, which numpy treats as weak: torch's promotion,
    where a 0-d float64 tensor does not widen a float32 tensor's op (numpy would compute it in float64)."""
    if not any(type(a) is np.ndarray and a.ndim for a in arrays):
        return arrays
    return [a.item() if type(a) is np.ndarray and not a.ndim and a.dtype.kind == "f" and a.dtype != want else a
            for a in arrays]


def narrow_integers(arrays: list, out_dtype: dtypes.dtype) -> list:
    """arrays computed in out_dtype's compute type when they are all integers or bools of 1 or 2 bytes and the
    result is floating: numpy would compute a float function of them in float16 (np.exp of uint8 80 is inf,
    np.sqrt of 200 is 14.140625), torch computes it in the result's dtype."""
    if not out_dtype.is_floating_point or not all(
            a.dtype.kind in "biu" and a.dtype.itemsize <= 2 for a in arrays if type(a) is np.ndarray):
        return arrays
    ty = np.float32 if out_dtype.is_low_precision else out_dtype.np
    return [a.astype(ty) if type(a) is np.ndarray else a for a in arrays]


def wrapped_integers(arrays: list) -> list:
    """Python ints outside the range of the integer arrays' dtype wrapped into it (uint8 + 300 adds 44, uint8 < -1
    compares with 255), as torch casts a number operand to the op's dtype; numpy 2 raises OverflowError."""
    given = [a.dtype for a in arrays if type(a) is np.ndarray]
    dt = np.result_type(*given) if given else None
    if dt is None or dt.kind not in "iu" or dt.itemsize == 8:
        return arrays
    info = np.iinfo(dt)
    return [np.array(a).astype(dt)[()] if type(a) is int and not info.min <= a <= info.max else a for a in arrays]


def run_forward(op: Op, arrays: list, attrs: dict, out_dtype: dtypes.dtype, inputs: tuple,
                low_precision: bool = False) -> np.ndarray:
    """Run the numpy implementation; float16/bfloat16 compute in float32 and round once, as torch does on CPU."""
    if low_precision and op.category != VIEW:
        arrays = [a.astype(np.float32) if type(a) is np.ndarray and a.dtype.itemsize == 2 and a.dtype.kind in "fV"
                  else a for a in arrays]
    if op.category == ELEMENTWISE and int in map(type, arrays):
        arrays = wrapped_integers(arrays)
    if op.category == ELEMENTWISE and out_dtype.is_floating_point:
        arrays = narrow_integers(arrays, out_dtype)
        if len(arrays) > 1:
            arrays = weak_scalars(arrays, out_dtype.np)
    try:
        out = op.forward(*arrays, **attrs)
    except (ValueError, TypeError, IndexError) as e:
        raise _refusal(op, e, inputs) from None
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    elif not out.flags.c_contiguous and row_major(op):
        out = np.ascontiguousarray(out)
    want = out_dtype.np
    if out.dtype is not want and out.dtype != want:
        out = out.astype(want)
    return out


def row_major(op: Op) -> bool:
    """Whether the op's numpy result must be made row-major, eagerly and in a plan: torch allocates the results of
    ops other than elementwise ones and views row-major (a reduction over a permuted tensor, an index_select along
    dim 1, included), and the compiler models them so (functionalization.computed_layout); numpy would follow the
    input's order, and a later flatten or view would then copy where torch aliases, or refuse."""
    return op.category not in (ELEMENTWISE, VIEW)


def dispatch(op: Op, inputs: tuple, attrs: dict):
    """Run or record one op application."""
    if STATE.autocast is not None and op.autocast is not None:
        from .amp.autocast_mode import cast_inputs

        inputs = cast_inputs(op.autocast, inputs)
    for x in inputs:
        if type(x) is not Tensor and type(x) not in NUMBERS:
            inputs = operands(op, inputs)
            break
    if attrs:
        for v in attrs.values():
            if type(v) in _NUMPY:
                attrs = {k: dtypes.as_number(v) for k, v in attrs.items()}
                break
    capture = STATE.capture
    if capture is not None:
        out = capture.record(op, inputs, attrs)
        if op.category is VIEW:
            out._version = inputs[0]._counter()
        return out
    try:
        out_dtype = op.infer(*inputs, **attrs)[1]
    except (ValueError, TypeError, IndexError) as e:
        raise _refusal(op, e, inputs) from None
    arrays, needs_grad, low_precision, on_cuda = [], False, False, False
    for x in inputs:
        if type(x) is Tensor:
            data = x._data
            if type(data) is not np.ndarray:
                on_cuda = True
            arrays.append(data)
            if x._view is not None:
                refresh_view(x)
            if x.requires_grad:
                needs_grad = True
            if x.dtype.is_low_precision:
                low_precision = True
        else:
            arrays.append(x)
    if on_cuda:
        data = _run_cuda(op, inputs, attrs)
    elif STATE.cpu_runner is not None and STATE.cpu_runner.takes(op, arrays):
        data = STATE.cpu_runner(op, inputs, attrs)  # a native kernel once built (graphc.compiler.eager_kernels)
    else:
        data = run_forward(op, arrays, attrs, out_dtype, inputs, low_precision)
    out = Tensor._make(data, out_dtype)
    if op.category is VIEW and shares_memory(data, arrays[0]):  # a view shares its input's version counter too
        out._view = (inputs[0], op, inputs[1:], attrs)
        out._version = inputs[0]._counter()
    if STATE.anomaly:
        _check_forward(op, inputs, out)
    if needs_grad and STATE.grad_enabled and out_dtype.is_floating_point:  # no backward rule: backward raises
        out.requires_grad = True
        out.grad_fn = Node(op, inputs, attrs, out, user_line() if STATE.anomaly else None)
    return out


def operands(op: Op, inputs: tuple) -> tuple:
    """An op's inputs with numpy scalars and 0-d arrays as Python numbers, as torch reads them. Anything else that
    is not a Tensor or a number is a TypeError naming the function the user called, the argument and its type."""
    out = []
    for i, x in enumerate(inputs):
        if type(x) is not Tensor:
            x = dtypes.as_number(x)
            if type(x) not in NUMBERS:
                raise _not_a_tensor(op, i, x)
        out.append(x)
    return tuple(out)


def check_tensor_arguments(fn: Callable) -> Callable:
    """fn (a function composed of ops) refusing a non-Tensor for each parameter annotated `Tensor` before its code
    runs, with the TypeError an op gives (function, parameter, position, type), as torch does: composites read
    .shape before any op could refuse. Parameters annotated `Tensor | None` and the rest are not checked."""
    target = inspect.unwrap(fn)
    code = target.__code__
    required = [(i, name) for i, name in enumerate(code.co_varnames[:code.co_argcount])
                if target.__annotations__.get(name) in ("Tensor", Tensor)]
    if not required:
        return fn

    @functools.wraps(fn)
    def checked(*args, **kwargs):
        for i, name in required:
            value = args[i] if i < len(args) else kwargs.get(name, Tensor)
            if not isinstance(value, Tensor) and value is not Tensor:
                raise op_error(target.__name__, f"argument '{name}' (position {i + 1}) must be Tensor, not "
                               f"{type(value).__name__}", (value,), TypeError)
        return fn(*args, **kwargs)
    PASS_THROUGH.add(checked.__code__)
    return checked


def _not_a_tensor(op: Op, index: int, value) -> TypeError:
    called = argument_of(value)
    if called is None:
        params = getattr(op.forward, "__code__", None)
        name = f"'{params.co_varnames[index]}' " if params is not None and index < params.co_argcount else ""
        called = op.name, name, index + 1
    else:
        called = called[0], f"'{called[1]}' ", called[2]
    function, name, position = called
    return op_error(function, f"argument {name}(position {position}) must be Tensor, not {type(value).__name__}",
                    (value,), TypeError)


def shares_memory(data, source) -> bool:
    """Whether a view op's result is a view of its input (reshape copies a non-contiguous input, as in torch)."""
    if type(data) is np.ndarray:
        return type(source) is np.ndarray and memory_owner(data) is memory_owner(source)
    return data.untyped_storage().data_ptr() == source.untyped_storage().data_ptr()


def memory_owner(array):
    """The object at the end of a numpy array's base chain: views (as_strided ones too) and their owner share it."""
    while getattr(array, "base", None) is not None:
        array = array.base
    return array


def check_devices(op_name: str, inputs: tuple) -> None:
    """Refuse an op whose tensor inputs live on different devices, naming them."""
    devices = {str(x.device) for x in inputs if type(x) is Tensor}
    if len(devices) > 1:
        raise op_error(op_name, f"expected all tensors on one device, got {' and '.join(sorted(devices))}", inputs)


def _run_cuda(op: Op, inputs: tuple, attrs: dict):
    """The storage (a torch tensor) of an op on CUDA tensors: graphc.compiler runs it as a one-node graph through
    the Triton codegen (STATE.cuda_runner); autograd is recorded by dispatch as for numpy tensors."""
    check_devices(op.name, inputs)
    if STATE.cuda_runner is None:
        raise op_error(op.name, "ops on CUDA tensors run through the Triton backend; import graphc.compiler",
                       inputs, NotImplementedError)
    return STATE.cuda_runner(op, inputs, attrs)


def _check_forward(op: Op, inputs: tuple, out: Tensor) -> None:
    """Anomaly mode: the first op whose output has NaN while its inputs had none is an error."""
    if not out.dtype.is_floating_point:
        return
    had_nan = any(type(x) is Tensor and x.dtype.is_floating_point and np.isnan(x._host().astype(np.float32)).any()
                  for x in inputs)
    if not had_nan and np.isnan(out._host().astype(np.float32)).any():
        raise op_error(op.name, "produced NaN from inputs without NaN (anomaly detection)", inputs)
