"""The op library. Each module's __all__ lists its public functions; they become graphc.X and Tensor.X."""
from __future__ import annotations

import sys

import numpy as np

from ..dispatch import OPS, Op, dispatch, parse_error
from ..dtypes import NUMBERS, as_number
from ..errors import PACKAGE_DIR, op_error
from ..tensor import Tensor
from . import creation, elementwise, indexing, join, layout, matmul, reduction, sorting, transcendental, view
from .creation import filled
from .elementwise import (
    add,
    cast,
    div,
    floor_divide,
    mul,
    neg,
    pow,
    remainder,
    sub,
)
from .meta import REVERSED_DIMS
from .view import expand_as, permute, transpose

METHOD_MODULES = (elementwise, transcendental, reduction, view, matmul, indexing, join, layout, sorting)
NOT_METHODS = {"where", "cat", "stack", "einsum", "meshgrid", "polygamma", "concat", "concatenate", "vstack", "hstack",
               "dstack", "column_stack", "broadcast_shapes", "broadcast_tensors", "atleast_1d", "atleast_2d",
               "atleast_3d", "block_diag", "bucketize", "cartesian_prod", "cdist", "combinations", "isin",
               "searchsorted", "std_mean", "tensordot", "trapezoid", "vander", "var_mean", "unravel_index", "trapz",
               "cumulative_trapezoid", "row_stack", "rsub"}


def public_names(module) -> list[str]:
    return list(module.__all__)


def _write(self, value, name: str):
    """Store an in-place op's result; like torch, refuse a result of a higher kind (float into int, int into bool)."""
    if value.dtype.category > self.dtype.category:
        raise op_error(name, f"result type {value.dtype.name} can't be cast to the desired output type "
                       f"{self.dtype.name}", (self, value))
    return self._assign(value)


def _inplace(fn):
    name = (fn.name if isinstance(fn, Op) else fn.__name__) + "_"

    def method(self, *args, **kwargs):
        self._check_no_partial_overlap(name, (*args, *kwargs.values()))
        return _write(self, fn(self, *args, **kwargs), name)
    method.__name__ = name
    return method


def _inplace_view(fn):
    """x.t_(), x.unsqueeze_(0)...: x itself takes the view's shape and strides, as torch's in-place view ops. Only
    for a tensor outside autograd that is not a view of another (a backward rule reads its input's shape, which
    the op would change under it); otherwise NotImplementedError naming the out-of-place form. Under
    graphc.compile, a capture error: the function runs eagerly, with one warning."""
    name = (fn.name if isinstance(fn, Op) else fn.__name__) + "_"

    def method(self, *args, **kwargs):
        from ..state import STATE

        if STATE.capture is not None:
            from ..compiler.capture import CaptureError
            from ..errors import user_line

            raise CaptureError(f"{name} at {user_line()} changes a tensor's shape in place")
        if self.requires_grad or self._view is not None:
            raise op_error(name, f"is supported only on a tensor that does not require grad and is not a view; use "
                           f"x = x.{name[:-1]}(...) instead", (self,), NotImplementedError)
        self._data = fn(self, *args, **kwargs)._data
        return self
    method.__name__ = name
    return method


def _copy_(self, src):
    self._check_no_partial_overlap("copy_", (src,))
    if not isinstance(src, Tensor) or src.dtype is not self.dtype:  # a cast of the same dtype would be a new node,
        src = cast(src, self.dtype)  # and the inputs src's own node saved would not be kept from the write
    # expanded only when it must be: expand_as reads self for its shape, so src would look as if it required grad
    return self._assign(src if tuple(src.shape) == tuple(self.shape) else expand_as(src, self.detach()))


def _install_methods() -> None:
    for module in METHOD_MODULES:
        for name in public_names(module):
            if name not in NOT_METHODS:
                fn = getattr(module, name)
                setattr(Tensor, name, _op_method(fn) if isinstance(fn, Op) else _method(fn))
                if module in (elementwise, transcendental):
                    setattr(Tensor, name + "_", _inplace(fn))
    operators = {
        "__neg__": neg, "__abs__": elementwise.abs, "__invert__": elementwise.bitwise_not,
        "__pos__": elementwise.positive}
    binary = {
        "add": add, "sub": sub, "mul": mul, "truediv": div, "pow": pow, "matmul": matmul.matmul,
        "and": elementwise.bitwise_and, "or": elementwise.bitwise_or, "xor": elementwise.bitwise_xor,
        "floordiv": floor_divide, "mod": remainder, "lshift": elementwise.bitwise_left_shift,
        "rshift": elementwise.bitwise_right_shift}
    for name, fn in binary.items():
        operators[f"__{name}__"], operators[f"__r{name}__"] = _operator(fn), _operator(fn, reflected=True)
        if name != "matmul":
            operators[f"__i{name}__"] = _operator(fn, inplace=True)
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        operators[f"__{name}__"] = _operator(getattr(elementwise, name))
    operators.update({
        "copy_": _copy_,
        "__getitem__": indexing.subscript, "__setitem__": indexing.setitem,
        "zero_": lambda self: self._assign(filled(self, 0), fill=True),  # in the graph: no gradient flows through
        "fill_": lambda self, value: self._assign(filled(self, value), fill=True),
        "where": lambda self, condition, other: elementwise.where(condition, self, other),
        "polygamma": lambda self, n: transcendental.polygamma(n, self),
        "clone": view.clone, "view": view.tensor_view,
        "scatter_": _inplace(indexing.scatter), "scatter_add_": _inplace(indexing.scatter_add),
        "index_add_": _inplace(indexing.index_add), "index_copy_": _inplace(indexing.index_copy),
        "index_fill_": _inplace(indexing.index_fill),
        "tril_": _inplace(layout.tril), "triu_": _inplace(layout.triu), "fill_diagonal_": layout.fill_diagonal_,
        "unfold": view.unfold, "sum_to_size": reduction.sum_to_size,
        "index_put": indexing.indexed_put, "index_put_": _inplace(indexing.indexed_put), "put": indexing.put,
        "put_": _inplace(indexing.put),
        "addmm_": _inplace(matmul.addmm), "addmv_": _inplace(matmul.addmv), "addr_": _inplace(matmul.addr),
        "baddbmm_": _inplace(matmul.baddbmm), "addbmm_": _inplace(matmul.addbmm),
        "cumsum_": _inplace(reduction.cumsum), "cumprod_": _inplace(reduction.cumprod),
        "renorm_": _inplace(reduction.renorm), "scatter_reduce_": _inplace(indexing.scatter_reduce),
        "masked_scatter_": _inplace(indexing.masked_scatter),
        "t_": _inplace_view(view.t), "transpose_": _inplace_view(transpose), "squeeze_": _inplace_view(view.squeeze),
        "unsqueeze_": _inplace_view(view.unsqueeze), "swapaxes_": _inplace_view(view.swapaxes),
        "swapdims_": _inplace_view(view.swapaxes),
    })
    for name, fn in operators.items():
        setattr(Tensor, name, _operator(fn) if isinstance(fn, Op) else fn)
    for name, fn in {**creation.INPLACE_SAMPLERS, "multinomial": creation.multinomial,
                     "bernoulli": creation.bernoulli}.items():
        setattr(Tensor, name, fn if name.endswith("_") else _method(fn))
    Tensor.T = property(lambda self: dispatch(permute, (self,), {"dims": REVERSED_DIMS[self.ndim]}))
    Tensor.mT = Tensor.mH = property(lambda self: transpose(self, -2, -1))  # real dtypes: the adjoint is mT
    Tensor.real = property(lambda self: self)
    Tensor.imag = property(_imag)
    for name in ("conj", "resolve_conj", "resolve_neg", "conj_physical"):  # real dtypes: the tensor itself
        setattr(Tensor, name, lambda self: self)
    Tensor.adjoint = lambda self: transpose(self, -2, -1)
    Tensor.is_conj = Tensor.is_neg = lambda self: False
    Tensor.data = property(_get_data, _set_data)


def _imag(self):
    raise op_error("imag", "imag is not implemented for tensors with non-complex dtypes (graphc has no complex "
                   "dtypes)", (self,))


def _get_data(self) -> Tensor:
    """torch's .data: this tensor's memory outside autograd, with a version counter of its own (unlike detach(),
    writes through it are not seen by autograd's in-place checks)."""
    out = self.detach()
    out._version = None
    return out


def _set_data(self, value: Tensor) -> None:
    """torch's `t.data = value`: t takes value's memory. While graphc.compile traces, a value of t's shape and
    dtype is written into t's memory instead (the same values after the call; the trace has no memory to hand
    over), and another shape or dtype refuses capture (the function then runs eagerly, with one warning)."""
    from ..state import STATE

    if STATE.capture is None:
        self._data, self.dtype = value._data, value.dtype
    elif tuple(value.shape) == tuple(self.shape) and value.dtype is self.dtype:
        _get_data(self).copy_(value.detach())
    else:
        from ..compiler.capture import CaptureError
        from ..errors import user_line

        raise CaptureError(f"`.data =` at {user_line()} gives a tensor of shape {list(self.shape)} "
                           f"({self.dtype.name}) a value of shape {list(value.shape)} ({value.dtype.name})")


def _operator(fn: Op, reflected: bool = False, inplace: bool = False):
    """x + y (reflected: y + x; inplace: x += y) as a direct dispatch (operators are the hottest path in eager
    code). As torch's, an operator returns NotImplemented for an operand that is neither a tensor nor a number
    (Python then tries the other operand's method, or raises its TypeError), and reads a numpy array as a tensor of
    its dtype."""
    def method(self, *other):
        if other and not isinstance(other[0], Tensor):
            x = _operand(other[0])
            if x is NotImplemented and not sys._getframe(1).f_code.co_filename.startswith(PACKAGE_DIR):
                return NotImplemented
            other = (other[0] if x is NotImplemented else x,)  # inside graphc: the op's error names the argument
        if inplace:
            self._check_no_partial_overlap(name, other)
            return _write(self, dispatch(fn, (self, *other), _NO_ATTRS), name)
        return dispatch(fn, (*other, self) if reflected else (self, *other), _NO_ATTRS)
    name = fn.name + "_" if inplace else fn.name
    method.__name__ = name
    return method


def _operand(x):
    """An operator's other operand as an op takes it (a tensor or a Python number), or NotImplemented."""
    if type(x) is np.ndarray and x.ndim:
        return creation.as_tensor(x)
    x = as_number(x)
    return x if type(x) in NUMBERS else NotImplemented


_NO_ATTRS: dict = {}


def _op_method(fn: Op):
    """An op as a Tensor method that dispatches directly (a plain function binds faster than Op.__get__)."""
    parse = fn.parse
    if parse is None:
        def method(self, *args, **kwargs):
            if kwargs:
                return fn(self, *args, **kwargs)
            return dispatch(fn, (self, *args), kwargs)
    else:
        def method(self, *args, **kwargs):
            try:
                inputs, attrs = parse(self, *args, **kwargs)
            except (TypeError, ValueError, IndexError) as e:
                raise parse_error(fn, e, (self, *args)) from None
            return dispatch(fn, inputs, attrs)
    method.__name__, method.__doc__ = fn.name, fn.doc
    return method


def _method(fn):
    """A plain function as a Tensor method (x.f(...) is f(x, ...))."""
    def method(self, *args, **kwargs):
        return fn(self, *args, **kwargs)
    method.__name__, method.__doc__ = getattr(fn, "__name__", "method"), fn.__doc__
    return method


_install_methods()
__all__ = ["OPS", "public_names"]
