"""graphc.autograd.functional (torch.autograd.functional): jacobian, hessian, vjp, jvp, hvp and vhp of a function
of tensors, built on graphc.autograd.grad. Each input is detached and made to require grad (with create_graph,
an input that requires grad is used through a view, so the results stay differentiable with respect to it).
Results are detached unless create_graph. vectorize and strategy are accepted for torch's signatures: the results
are the same, computed with one reverse pass per output element. jvp uses the double-backward trick (the gradient
of a vector-Jacobian product with respect to the vector), as torch does; hvp equals vhp (the Hessian of a twice
continuously differentiable function is symmetric, Schwarz's theorem), which torch's documentation notes too."""
from __future__ import annotations

import sys
from collections.abc import Callable

from . import autograd
from .autograd import enable_grad
from .ops.creation import zeros, zeros_like
from .ops.join import stack
from .ops.meta import specialized_numel
from .tensor import Tensor


def _as_tuple(value, what: str, fn_name: str) -> tuple[bool, tuple]:
    """(whether value was a tuple, value as a tuple of tensors); TypeError for anything else, as torch."""
    is_tuple = isinstance(value, tuple)
    values = value if is_tuple else (value,)
    for i, v in enumerate(values):
        if not isinstance(v, Tensor):
            where = f"The {what} given to {fn_name} must be either a Tensor or a tuple of Tensors but"
            raise TypeError(f"{where} the value at index {i} has type {type(v)}." if is_tuple else
                            f"{where} the given {what} has type {type(v)}.")
    return is_tuple, values


def _preprocess(inputs: tuple, create_graph: bool, need_graph: bool) -> tuple:
    return tuple(t.view_as(t) if create_graph and t.requires_grad else t.detach().requires_grad_(need_graph)
                 for t in inputs)


def _postprocess(values, create_graph: bool):
    if isinstance(values, tuple):
        return tuple(_postprocess(v, create_graph) for v in values)
    return values if create_graph else values.detach()


def _untuple(values: tuple, is_tuple: bool):
    return values if is_tuple else values[0]


def _validate_v(v: tuple, other: tuple, is_other_tuple: bool) -> None:
    if len(v) != len(other):
        if is_other_tuple:
            raise RuntimeError(f"v is a tuple of invalid length: should be {len(other)} but got {len(v)}.")
        raise RuntimeError("The given v should contain a single Tensor.")
    for i, (a, b) in enumerate(zip(v, other)):
        if tuple(a.shape) != tuple(b.shape):
            prefix = f"Entry {i} in " if is_other_tuple else ""
            raise RuntimeError(f"{prefix}v has invalid size: should be {b.shape} but got {a.shape}.")


def _vector(v, against: tuple, is_against_tuple: bool, fn_name: str, create_graph: bool) -> tuple | None:
    """v as a tuple shaped like `against`; None only where against is one single-element tensor."""
    if v is None:
        if len(against) != 1 or specialized_numel(against[0]) != 1:
            raise RuntimeError("The vector v can only be None if the input to the user-provided function is a "
                               "single Tensor with a single element." if fn_name in ("jvp", "hvp", "vhp") else
                               "The vector v can only be None if the user-provided function returns a single "
                               "Tensor with a single element.")
        return None
    _, v = _as_tuple(v, "v", fn_name)
    v = _preprocess(v, create_graph, need_graph=False)
    _validate_v(v, against, is_against_tuple)
    return v


def _grad(outputs: tuple, inputs: tuple, grad_outputs: tuple | None, create_graph: bool) -> tuple:
    """autograd.grad of the outputs that require grad (None for every input when none does; None for an input that
    none of them uses)."""
    grad_outputs = (None,) * len(outputs) if grad_outputs is None else grad_outputs
    pairs = [(o, g) for o, g in zip(outputs, grad_outputs) if o is not None and o.requires_grad]
    if not pairs:
        return (None,) * len(inputs)
    return autograd.grad([o for o, _ in pairs], inputs, [g for _, g in pairs], retain_graph=True,
                         create_graph=create_graph, allow_unused=True)


def _fill_in_zeros(grads: tuple, refs: tuple, strict: bool, fn_name: str) -> tuple:
    """Zeros for the gradients that autograd found no path to; in strict mode a missing path is an error."""
    out = []
    for i, (g, ref) in enumerate(zip(grads, refs)):
        if g is None:
            if strict:
                raise RuntimeError(f"{fn_name}: the output of the user-provided function is independent of input "
                                   f"{i}. This is not allowed in strict mode.")
            g = zeros_like(ref)
        out.append(g)
    return tuple(out)


def vjp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(*inputs), v^T J): the vector-Jacobian product of func at inputs (a tensor or a tuple of them) with v
    (shaped like func's outputs; None for one single-element output)."""
    with enable_grad():
        is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "vjp")
        inputs = _preprocess(inputs, create_graph, need_graph=True)
        is_outputs_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function", "vjp")
        v = _vector(v, outputs, is_outputs_tuple, "vjp", create_graph)
        grads = _fill_in_zeros(_grad(outputs, inputs, v, create_graph), inputs, strict, "vjp")
    return (_untuple(_postprocess(outputs, create_graph), is_outputs_tuple),
            _untuple(_postprocess(grads, create_graph), is_inputs_tuple))


def jvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(*inputs), J v): the Jacobian-vector product of func at inputs with v (shaped like inputs; None for one
    single-element input), as the gradient of the vector-Jacobian product u^T J with respect to u."""
    with enable_grad():
        is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "jvp")
        inputs = _preprocess(inputs, create_graph, need_graph=True)
        v = _vector(v, inputs, is_inputs_tuple, "jvp", create_graph)
        is_outputs_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function", "jvp")
        u = tuple(zeros_like(o).requires_grad_(True) for o in outputs)
        back = _grad(outputs, inputs, u, create_graph=True)
        grads = _fill_in_zeros(_grad(back, u, v, create_graph), outputs, strict, "jvp")
    return (_untuple(_postprocess(outputs, create_graph), is_outputs_tuple),
            _untuple(_postprocess(grads, create_graph), is_outputs_tuple))


def _jacobian_of(out: Tensor, inputs: tuple, create_graph: bool, strict: bool) -> tuple:
    """d out / d input for each input, shaped out.shape + input.shape: one reverse pass per element of out."""
    flat = out.reshape(-1)
    rows = [_fill_in_zeros(_grad((flat[k],), inputs, None, create_graph), inputs, strict, "jacobian")
            for k in range(specialized_numel(flat))]
    return tuple((stack([r[j] for r in rows]) if rows else zeros(0, *x.shape, dtype=x.dtype, device=x.device))
                 .reshape(tuple(out.shape) + tuple(x.shape)) for j, x in enumerate(inputs))


def jacobian(func: Callable, inputs, create_graph: bool = False, strict: bool = False, vectorize: bool = False,
             strategy: str = "reverse-mode"):
    """The Jacobian of func at inputs: for one output and one input a tensor of shape output.shape + input.shape,
    else a tuple (over outputs) of tuples (over inputs) of them, as torch. Raises ValueError for an unknown
    strategy, NotImplementedError for strategy="forward-mode" without vectorize=True or with create_graph."""
    if strategy not in ("forward-mode", "reverse-mode"):
        raise ValueError('Expected strategy to be either "forward-mode" or "reverse-mode". Hint: If your function '
                         'has more outputs than inputs, "forward-mode" tends to be more performant. Otherwise, '
                         'prefer to use "reverse-mode".')
    if strategy == "forward-mode" and (create_graph or not vectorize):
        raise NotImplementedError('jacobian: `strategy="forward-mode"` needs vectorize=True and create_graph=False')
    with enable_grad():
        is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "jacobian")
        inputs = _preprocess(inputs, create_graph, need_graph=True)
        is_outputs_tuple, outputs = _as_tuple(func(*inputs), "outputs of the user-provided function", "jacobian")
        jac = tuple(_postprocess(_jacobian_of(out, inputs, create_graph, strict), create_graph) for out in outputs)
    if is_outputs_tuple:
        return jac if is_inputs_tuple else tuple(j[0] for j in jac)
    return jac[0] if is_inputs_tuple else jac[0][0]


def _single_element(out, fn_name: str) -> Tensor:
    """func's output where it is one single-element tensor (what hessian, hvp and vhp differentiate twice)."""
    _as_tuple(out, "outputs of the user-provided function", fn_name)
    if isinstance(out, tuple):
        raise RuntimeError(f"The function given to {fn_name} should return a single Tensor")
    if specialized_numel(out) != 1:
        raise RuntimeError(f"The Tensor returned by the function given to {fn_name} should contain a single element")
    return out


def hessian(func: Callable, inputs, create_graph: bool = False, strict: bool = False, vectorize: bool = False,
            outer_jacobian_strategy: str = "reverse-mode"):
    """The Hessian of func's single-element output at inputs: the Jacobian of its gradient (shape input.shape +
    input.shape; a tuple of tuples for several inputs). Raises RuntimeError when func returns more than one
    element."""
    is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", "hessian")

    def single(*x):
        return _single_element(func(*x), "hessian").squeeze()

    def gradient(*x):
        return jacobian(single, _untuple(x, is_inputs_tuple), create_graph=True, strict=strict)

    return jacobian(gradient, _untuple(inputs, is_inputs_tuple), create_graph=create_graph, strict=strict,
                    vectorize=vectorize, strategy=outer_jacobian_strategy)


def _hessian_vector(fn_name: str, func: Callable, inputs, v, create_graph: bool, strict: bool):
    with enable_grad():
        is_inputs_tuple, inputs = _as_tuple(inputs, "inputs", fn_name)
        inputs = _preprocess(inputs, create_graph, need_graph=True)
        v = _vector(v, inputs, is_inputs_tuple, fn_name, create_graph)
        out = _single_element(func(*inputs), fn_name)
        first = _grad((out,), inputs, None, create_graph=True)
        grads = _fill_in_zeros(_grad(first, inputs, v, create_graph), inputs, strict, fn_name)
    return _postprocess(out, create_graph), _untuple(_postprocess(grads, create_graph), is_inputs_tuple)


def vhp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(*inputs), v^T H): the vector-Hessian product of func's single-element output at inputs."""
    return _hessian_vector("vhp", func, inputs, v, create_graph, strict)


def hvp(func: Callable, inputs, v=None, create_graph: bool = False, strict: bool = False):
    """(func(*inputs), H v): the Hessian-vector product of func's single-element output at inputs (equal to vhp:
    the Hessian is symmetric)."""
    return _hessian_vector("hvp", func, inputs, v, create_graph, strict)


# graphc.autograd is a module, not a package: `import graphc.autograd.functional` finds this module by its name
autograd.functional = sys.modules[__name__]
sys.modules["graphc.autograd.functional"] = autograd.functional
