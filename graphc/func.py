"""torch.func: function transforms over graphc's autograd. functional_call runs a module with other parameter
values; grad, grad_and_value, jacrev and hessian differentiate a function of tensors; vmap maps a function over a
dim by calling it once per slice and stacking the results (torch's semantics, as a loop: graphc has no batching
rules)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .autograd import enable_grad
from .autograd import grad as autograd_grad
from .nn.module import Module
from .ops.join import stack
from .ops.meta import specialized_numel, specialized_size
from .tensor import Tensor


def functional_call(module: Module, parameter_and_buffer_dicts: dict | Sequence[dict], args: Any = None,
                    kwargs: dict | None = None, *, tie_weights: bool = True, strict: bool = False) -> Any:
    """torch.func.functional_call: module(*args, **kwargs) with the named parameters and buffers replaced by the
    given tensors for the call (MAML's inner loop, ensembling). With tie_weights a tensor registered under several
    names (tied embeddings) is replaced under all of them. Raises ValueError for a name given twice or one the module
    does not have, RuntimeError with strict=True when the names differ from the module's."""
    dicts = [parameter_and_buffer_dicts] if isinstance(parameter_and_buffer_dicts, dict) else \
        list(parameter_and_buffer_dicts)
    values: dict[str, Tensor] = {}
    for d in dicts:
        for name, value in d.items():
            if name in values:
                raise ValueError(f"functional_call: {name!r} appeared in multiple dictionaries")
            values[name] = value
    owned = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
    if strict and set(values) != {name for name, _ in owned}:
        names = {name for name, _ in owned}
        raise RuntimeError(f"functional_call: missing keys {sorted(names - set(values))}, unexpected keys "
                           f"{sorted(set(values) - names)}")
    if tie_weights:
        by_tensor: dict[int, list[str]] = {}
        for name, t in owned:
            by_tensor.setdefault(id(t), []).append(name)
        current = dict(owned)
        for name in list(values):
            for tied in by_tensor.get(id(current.get(name)), ()):
                values.setdefault(tied, values[name])
    swapped = []
    try:
        for name, value in values.items():
            path, _, attr = name.rpartition(".")
            owner = module.get_submodule(path)
            table = owner._parameters if attr in owner._parameters else owner._buffers if attr in owner._buffers \
                else None
            if table is None:
                raise ValueError(f"functional_call: {type(module).__name__} has no parameter or buffer {name!r}")
            swapped.append((table, attr, table[attr]))
            table[attr] = value
        args = () if args is None else args if isinstance(args, tuple) else (args,)
        return module(*args, **(kwargs or {}))
    finally:
        for table, attr, old in reversed(swapped):
            table[attr] = old


def _map(tree: Any, fn: Callable) -> Any:
    """tree (a tensor, or dicts, lists and tuples of them and other values) with fn applied to each tensor."""
    if isinstance(tree, Tensor):
        return fn(tree)
    if isinstance(tree, dict):
        return {k: _map(v, fn) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_map(v, fn) for v in tree)
    return tree


def _leaves(tree: Any) -> list[Tensor]:
    found: list[Tensor] = []
    _map(tree, found.append)
    return found


def _traced_call(func: Callable, argnums: int | tuple[int, ...], has_aux: bool, args: tuple, kwargs: dict) -> tuple:
    """func called with grad enabled on the arguments, the tensors at argnums requiring grad (a detached copy of one
    that does not): (positions, the arguments, whether one of them required grad already, output, aux). That one
    did means a transform inside another (hessian's jacrev of grad) or a parameter an outer backward differentiates:
    the results then keep their history."""
    positions = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    args = list(args)
    outer = any(t.requires_grad for i in positions for t in _leaves(args[i]))
    for i in positions:
        args[i] = _map(args[i], lambda t: t if t.requires_grad else t.detach().requires_grad_(True))
    with enable_grad():
        out = func(*args, **kwargs)
    output, aux = out if has_aux else (out, None)
    return positions, args, outer, output, aux


def _kept(grads, outer: bool) -> list:
    return list(grads) if outer else [None if g is None else g.detach() for g in grads]


def grad_and_value(func: Callable, argnums: int | tuple[int, ...] = 0, has_aux: bool = False) -> Callable:
    """torch.func.grad_and_value: a function returning (the gradient of func's single-element output with respect
    to the arguments at argnums, each a tensor or a dict/list/tuple of them, shaped like them; func's output)
    (with has_aux, func returns (output, aux) and the value is (output, aux)). Raises RuntimeError for another
    output."""
    def wrapped(*args, **kwargs):
        positions, args, outer, output, aux = _traced_call(func, argnums, has_aux, args, kwargs)
        with enable_grad():
            if not isinstance(output, Tensor) or specialized_numel(output) != 1:
                raise RuntimeError("grad: the function must return a single-element tensor"
                                   + (" (and the aux value, with has_aux)" if has_aux else ""))
            wrt = [t for i in positions for t in _leaves(args[i])]
            found = iter(_kept(autograd_grad(output, wrt, allow_unused=True, create_graph=True), outer))

        def gradient(t: Tensor) -> Tensor:  # an argument func does not use gets zeros, as torch.func's
            g = next(found)
            return t.detach() * 0 if g is None else g
        grads = tuple(_map(args[i], gradient) for i in positions)
        result = grads[0] if isinstance(argnums, int) else grads
        return result, ((output.detach(), aux) if has_aux else output.detach())
    return wrapped


def grad(func: Callable, argnums: int | tuple[int, ...] = 0, has_aux: bool = False) -> Callable:
    """torch.func.grad: a function returning the gradient of func's single-element output with respect to the
    arguments at argnums (with has_aux: (gradient, aux))."""
    def wrapped(*args, **kwargs):
        gradients, value = grad_and_value(func, argnums, has_aux)(*args, **kwargs)
        return (gradients, value[1]) if has_aux else gradients
    return wrapped


def vmap(func: Callable, in_dims: int | tuple | None = 0, out_dims: int | tuple = 0, randomness: str = "error", *,
         chunk_size: int | None = None) -> Callable:
    """torch.func.vmap: func mapped over dim in_dims[i] of each argument's tensors (None: the argument passed whole;
    arguments may be dicts/lists/tuples of tensors), its outputs (a tensor, or a dict/list/tuple of them) stacked
    along out_dims. Calls func once per index. Raises ValueError when the mapped sizes differ or nothing is
    mapped."""
    def wrapped(*args, **kwargs):  # keyword arguments are passed whole, as torch's vmap does
        dims = in_dims if isinstance(in_dims, (tuple, list)) else (in_dims,) * len(args)
        sizes = {specialized_size(t, d) for a, d in zip(args, dims) if d is not None for t in _leaves(a)}
        if len(sizes) != 1:
            raise ValueError(f"vmap: expected one size along the mapped dims, got {sorted(sizes) or 'none'}")
        outs = [func(*(a if d is None else _map(a, lambda t, d=d, i=i: t.select(d, i)) for a, d in zip(args, dims)),
                     **kwargs) for i in range(sizes.pop())]
        leaves = [_leaves(o) for o in outs]
        o_dims = out_dims if isinstance(out_dims, (tuple, list)) else (out_dims,) * len(leaves[0])
        stacked = iter([stack([row[k] for row in leaves], d) for k, d in enumerate(o_dims)])
        return _map(outs[0], lambda t: next(stacked))
    return wrapped


def jacrev(func: Callable, argnums: int | tuple[int, ...] = 0, *, has_aux: bool = False,
           chunk_size: int | None = None) -> Callable:
    """torch.func.jacrev: the Jacobian of func's output (a tensor, or a dict/list/tuple of them: one Jacobian each)
    with respect to the arguments at argnums, shaped output.shape + argument.shape, one reverse pass per output
    element."""
    def wrapped(*args, **kwargs):
        positions, args, outer, output, aux = _traced_call(func, argnums, has_aux, args, kwargs)

        def jacobian(out: Tensor):
            with enable_grad():
                flat = out.reshape(-1)
                rows = [_kept(autograd_grad(flat[k], [args[i] for i in positions], retain_graph=True,
                                            allow_unused=True, create_graph=True), outer)
                        for k in range(specialized_numel(flat))]
            jacobians = tuple(stack([r[j] if r[j] is not None else args[i] * 0 for r in rows]).reshape(
                tuple(out.shape) + tuple(args[i].shape)) for j, i in enumerate(positions))
            return jacobians[0] if isinstance(argnums, int) else jacobians
        result = _map(output, jacobian)
        return (result, aux) if has_aux else result
    return wrapped


def hessian(func: Callable, argnums: int | tuple[int, ...] = 0) -> Callable:
    """torch.func.hessian: the Jacobian of the gradient of func's scalar output (jacrev of grad)."""
    return jacrev(grad(func, argnums), argnums)
