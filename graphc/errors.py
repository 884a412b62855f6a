"""Errors that name the op, the shapes and dtypes involved, and the user's source line."""
from __future__ import annotations

import os
import sys
import warnings

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_frame(skip_package: str = PACKAGE_DIR):
    """The innermost stack frame outside graphc: the user's code."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(skip_package):
        frame = frame.f_back
    return frame


def warn_at_user(message: str, category: type[Warning] = UserWarning) -> None:
    """warnings.warn attributed to the user's line (the innermost frame outside graphc), however deep in graphc the
    warning is raised."""
    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename.startswith(PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def user_line() -> str:
    """'file:line' of the innermost user frame, or '<unknown>'."""
    frame = user_frame()
    if frame is None:
        return "<unknown>"
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


PASS_THROUGH: set = set()  # code of decorator wrappers (autocast policies): the function they wrap is the one called


def argument_of(value) -> tuple[str, str, int] | None:
    """(function, parameter, position) of the graphc function the user called whose named parameter holds value
    (by identity): an op's check deep inside F.mse_loss can name mse_loss's 'target'. None if none holds it."""
    frame = sys._getframe(1)
    entry = None
    while frame is not None and frame.f_code.co_filename.startswith(PACKAGE_DIR):
        if frame.f_code not in PASS_THROUGH:
            entry = frame
        frame = frame.f_back
    if entry is None:
        return None
    code = entry.f_code
    names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
    for position, name in enumerate(names):
        if entry.f_locals.get(name) is value:
            return code.co_name, name, position + 1
    return None


def describe(x) -> str:
    """One operand as 'Tensor[2, 3] float32' (a numpy array as 'ndarray[2, 3] float64') or its Python repr."""
    if hasattr(x, "shape") and hasattr(x, "dtype"):
        kind = "Tensor" if hasattr(x, "grad_fn") else type(x).__name__
        return f"{kind}[{', '.join(map(str, x.shape))}] {x.dtype.name}"
    return repr(x)


class OpError(RuntimeError):
    """An op refused its inputs: the message names the op, the operands and the user's line."""


def op_error(op_name: str, message: str, operands=(), cls: type[Exception] = OpError) -> Exception:
    """Build an error of class `cls` naming the op, its operands and the user's line."""
    ops = ", ".join(describe(x) for x in operands)
    return cls(f"{op_name}: {message}\n  operands: ({ops})\n  at {user_line()}")


def overlap_error(shape) -> RuntimeError:
    """torch's refusal of an in-place write into a tensor whose elements share memory (an expanded tensor)."""
    return RuntimeError(f"in-place write into a tensor of shape {list(shape)}: unsupported operation: more than one "
                        "element of the written-to tensor refers to a single memory location. Please clone() the "
                        f"tensor before performing the operation.\n  at {user_line()}")


class RefusedValueError(RuntimeError, ValueError):
    """An op of a plan refused a value with ValueError: a RuntimeError to the user, as an eager op's refusal is
    (dispatch._refusal), and still a ValueError to graphc.compile, which traces again on one."""


class ValuesRefused(Exception):
    """The mixin of the errors a check op raises on the values it checks (ops.indexing.check_bounds, _assert_async):
    the caller's values are refused, not the program nor its plan, so a compiled function raises it as eager code
    would, without tracing again or running eagerly."""


_REFUSED: dict[type, type] = {}


def values_refused(kind: type[Exception]) -> type[Exception]:
    """The subclass of `kind` (IndexError, ValueError, ...) that is also ValuesRefused."""
    if issubclass(kind, ValuesRefused):
        return kind
    if kind not in _REFUSED:
        _REFUSED[kind] = type(kind.__name__, (kind, ValuesRefused), {"__module__": __name__})
    return _REFUSED[kind]
