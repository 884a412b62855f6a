"""torch.nn.utils.parametrize: a parameter or buffer of a module replaced by a property computed, each time it is
read, by modules (parametrizations) from stored originals (`module.parametrizations.<name>.original`, or
`original0`, `original1`, ... when the first parametrization's right_inverse returns several tensors). As in torch,
the module's class is swapped for a `Parametrized<Class>` subclass that holds the property."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from ...autograd import no_grad
from ...tensor import Tensor
from ..container import ModuleDict, ModuleList
from ..module import Module, Parameter

_cache: dict[tuple[int, str], Tensor] = {}
_cache_depth = 0


@contextlib.contextmanager
def cached() -> Iterator[None]:
    """Inside this context each parametrized tensor is computed once, on first read, as in torch."""
    global _cache_depth
    _cache_depth += 1
    try:
        yield
    finally:
        _cache_depth -= 1
        if not _cache_depth:
            _cache.clear()


def _register(module: Module, name: str, value: Tensor) -> None:
    if isinstance(value, Parameter):
        module.register_parameter(name, value)
    else:
        module.register_buffer(name, value)


def _check_like(name: str, original: Tensor, value: Tensor) -> None:
    if tuple(value.shape) != tuple(original.shape) or value.dtype is not original.dtype:
        raise ValueError(f"Registering a parametrization may not change the shape or dtype of the tensor, unless "
                         f"`unsafe` flag is enabled.\nunparametrized: {list(original.shape)} {original.dtype.name}\n"
                         f"parametrized {name}: {list(value.shape)} {value.dtype.name}")


class ParametrizationList(ModuleList):
    """The parametrizations of one tensor, applied in order to its originals."""

    def __init__(self, modules: Sequence[Module], original: Tensor, unsafe: bool = False):
        super().__init__(modules)
        self.unsafe = unsafe
        with no_grad():
            new = original
            for module in reversed(list(self)):
                if hasattr(module, "right_inverse"):
                    new = module.right_inverse(new)
        self.is_tensor = isinstance(new, Tensor)
        self.ntensors = 1 if self.is_tensor else len(new)
        if self.is_tensor:
            if not unsafe:
                _check_like("right_inverse", original, new)
            with no_grad():
                original.copy_(new)
            _register(self, "original", original)
        else:
            for i, value in enumerate(new):
                value = value.detach()
                _register(self, f"original{i}", Parameter(value, original.requires_grad)
                          if isinstance(original, Parameter) else value)
        if not unsafe:
            with no_grad():
                _check_like("forward", original, self())

    def right_inverse(self, value: Tensor) -> None:
        """Store the originals that give value (each parametrization's right_inverse, last first)."""
        with no_grad():
            for module in reversed(list(self)):
                if hasattr(module, "right_inverse"):
                    value = module.right_inverse(value)
                elif not self.unsafe:
                    raise RuntimeError(f"parametrization {type(module).__name__} does not implement "
                                       "right_inverse.")
            if self.is_tensor:
                self.original.copy_(value)
            else:
                for i, part in enumerate(value):
                    getattr(self, f"original{i}").copy_(part)

    def forward(self) -> Tensor:
        first, *rest = list(self)
        x = first(self.original) if self.is_tensor else first(*(getattr(self, f"original{i}")
                                                                for i in range(self.ntensors)))
        for module in rest:
            x = module(x)
        return x


def _inject_property(module: Module, tensor_name: str) -> None:
    def get(self: Module) -> Tensor:
        parametrization = self.parametrizations[tensor_name]
        if not _cache_depth:
            return parametrization()
        key = (id(self), tensor_name)
        if key not in _cache:
            _cache[key] = parametrization()
        return _cache[key]

    def set(self: Module, value: Tensor) -> None:
        self.parametrizations[tensor_name].right_inverse(value)

    setattr(type(module), tensor_name, property(get, set))


def register_parametrization(module: Module, tensor_name: str, parametrization: Module, *,
                             unsafe: bool = False) -> Module:
    """Compute module.<tensor_name> as parametrization(original) from now on (after any parametrizations already
    registered on it). Raises ValueError if the module has no such parameter or buffer, or (unless unsafe) if the
    parametrization changes its shape or dtype."""
    parametrization.train(module.training)
    if is_parametrized(module, tensor_name):
        if not unsafe:
            with no_grad():
                _check_like("forward", getattr(module, tensor_name), parametrization(getattr(module, tensor_name)))
        module.parametrizations[tensor_name].append(parametrization)
        module.parametrizations[tensor_name].unsafe |= unsafe
        return module
    if tensor_name not in module._parameters and tensor_name not in module._buffers:
        raise ValueError(f"Module '{module}' does not have a parameter, a buffer, or a parametrized element with "
                         f"name '{tensor_name}'")
    parametrizations = ParametrizationList([parametrization], getattr(module, tensor_name), unsafe=unsafe)
    delattr(module, tensor_name)
    if not is_parametrized(module):
        cls = type(module)
        module.__class__ = type(f"Parametrized{cls.__name__}", (cls,), {})
        module.parametrizations = ModuleDict()
    module.parametrizations[tensor_name] = parametrizations
    _inject_property(module, tensor_name)
    return module


def is_parametrized(module: Module, tensor_name: str | None = None) -> bool:
    """Whether the module has a parametrization (on tensor_name, if given)."""
    parametrizations = getattr(module, "parametrizations", None)
    if not isinstance(parametrizations, ModuleDict):
        return False
    return len(parametrizations) > 0 if tensor_name is None else tensor_name in parametrizations


def remove_parametrizations(module: Module, tensor_name: str, leave_parametrized: bool = True) -> Module:
    """Make module.<tensor_name> a plain parameter (or buffer) again, holding its current parametrized value
    (leave_parametrized) or the stored original. Raises ValueError if it is not parametrized, or if asked to leave
    unparametrized a tensor stored as several originals."""
    if not is_parametrized(module, tensor_name):
        raise ValueError(f"Module {module} does not have a parametrization on {tensor_name}")
    parametrizations = module.parametrizations[tensor_name]
    if parametrizations.is_tensor:
        original = parametrizations.original
        if leave_parametrized:
            with no_grad():
                original.copy_(getattr(module, tensor_name))
    else:
        if not leave_parametrized:
            raise ValueError("Cannot leave unparametrized (`leave_parametrized=False`) a tensor that is parametrized "
                             "in terms of a sequence of tensors.")
        with no_grad():
            value = getattr(module, tensor_name).detach()
        first = parametrizations.original0
        original = Parameter(value, first.requires_grad) if isinstance(first, Parameter) else value
    delattr(type(module), tensor_name)
    del module.parametrizations[tensor_name]
    _register(module, tensor_name, original)
    if not is_parametrized(module):
        delattr(module, "parametrizations")
        module.__class__ = type(module).__bases__[0]
    return module
