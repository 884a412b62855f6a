"""Module and Parameter: parameters, buffers and submodules registered by attribute assignment, torch-named state
dicts, train/eval modes, device/dtype moves, forward hooks and full backward hooks."""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator
from typing import Any

from ..autograd import no_grad
from ..dtypes import dtype as DType
from ..ops.creation import tensor, zeros_like
from ..ops.view import view_as
from ..state import STATE
from ..tensor import Tensor
from .parameter import Parameter


class RemovableHandle:
    """Returned by the register_*_hook methods; remove() unregisters the hook."""

    _next_id = 0

    def __init__(self, hooks: dict):
        self.hooks, self.id = hooks, RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        self.hooks.pop(self.id, None)


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """torch.nn.Module: subclasses set parameters (Parameter), buffers (register_buffer) and submodules (Module) as
    attributes in __init__ and define forward(); calling the module runs forward with its hooks."""

    training: bool

    def __init__(self) -> None:
        for name, value in (("_parameters", OrderedDict()), ("_buffers", OrderedDict()), ("_modules", OrderedDict()),
                            ("_non_persistent_buffers", set()), ("_forward_pre_hooks", OrderedDict()),
                            ("_forward_hooks", OrderedDict()), ("_backward_hooks", OrderedDict()), ("training", True)):
            object.__setattr__(self, name, value)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    # ---- registration by attribute ------------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() is called")
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            self._forget(name, keep=params)
            params[name] = value
        elif isinstance(value, Module):
            self._forget(name, keep=modules)
            modules[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign a {type(value).__name__} as parameter {name!r} (expected a "
                                "Parameter or None)")
            params[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign a {type(value).__name__} as buffer {name!r} (expected a Tensor or "
                                "None)")
            buffers[name] = value
        else:
            compiled = getattr(type(value), "compiled_module", None)
            module = None if compiled is None else compiled.__get__(value)
            self._forget(name, keep=None if module is None else modules)
            if module is not None:
                # `self.block = graphc.compile(block)`: calls go through the compiled one (an instance attribute is
                # found before __getattr__), and the module stays a submodule in its place (its parameters, buffers
                # and state dict keys are the model's), as torch.compile's OptimizedModule stays one
                modules[name] = module
            object.__setattr__(self, name, value)

    def _forget(self, name: str, keep: dict | None = None) -> None:
        """Drop name from every table but `keep`: re-assigning a parameter (say, tying weights) keeps its place in
        the state dict, as in torch."""
        for table in (self._parameters, self._buffers, self._modules):
            if table is not keep:
                table.pop(name, None)
        self.__dict__.pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        if not any(name in t for t in (self._parameters, self._buffers, self._modules)) and name not in self.__dict__:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")
        self._forget(name)

    def register_parameter(self, name: str, param: Tensor | None) -> None:
        """Register param (a Parameter, or None for an absent optional one) under name."""
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"register_parameter({name!r}): expected a Parameter or None, got {type(param).__name__}")
        self._forget(name)
        self._parameters[name] = param

    def register_buffer(self, name: str, value: Tensor | None, persistent: bool = True) -> None:
        """A tensor that is state but not a parameter (running statistics): moved by to(), saved if persistent."""
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(f"register_buffer({name!r}): expected a Tensor or None, got {type(value).__name__}")
        self._forget(name)
        self._buffers[name] = value
        if not persistent:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register a submodule under name (as assigning it as an attribute does)."""
        self._forget(name)
        self._modules[name] = module

    register_module = add_module

    # ---- traversal ----------------------------------------------------------------------------------------------
    def named_modules(self, memo: set | None = None, prefix: str = "", remove_duplicate: bool = True):
        """(qualified name, module) for this module and every descendant, depth first."""
        memo = set() if memo is None else memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self) -> Iterator[Module]:
        """This module and every descendant, each once."""
        return (m for _, m in self.named_modules())

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """(name, module) of the direct submodules."""
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self) -> Iterator[Module]:
        """The direct submodules."""
        return (m for _, m in self.named_children())

    def _named_members(self, table: str, prefix: str, recurse: bool, remove_duplicate: bool = True):
        seen = set()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, value in getattr(module, table).items():
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, parameter) of this module's and (recurse) its descendants' parameters, each once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Tensor]:
        """The parameters, in registration order (what optimizers take)."""
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix: str = "", recurse: bool = True,
                      remove_duplicate: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted name, buffer) of the registered buffers."""
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        """The registered buffers (running statistics, ...)."""
        return (b for _, b in self.named_buffers(recurse=recurse))

    def get_parameter(self, target: str) -> Tensor:
        """The parameter at a dotted path ('encoder.0.weight'). Raises AttributeError naming what is missing."""
        return self._get_member(target, "_parameters", "parameter")

    def get_buffer(self, target: str) -> Tensor:
        """The buffer at a dotted path ('bn.running_mean'). Raises AttributeError naming what is missing."""
        return self._get_member(target, "_buffers", "buffer")

    def _get_member(self, target: str, where: str, what: str) -> Tensor:
        path, _, name = target.rpartition(".")
        module = self.get_submodule(path)
        members = getattr(module, where)
        if members.get(name) is None:
            raise AttributeError(f"{type(module).__name__} has no {what} {name!r} (looking up {target!r})")
        return members[name]

    def get_submodule(self, target: str) -> Module:
        """The submodule at a dotted path ('encoder.0')."""
        module = self
        for name in target.split(".") if target else []:
            if name not in module._modules:
                raise AttributeError(f"{type(module).__name__} has no submodule {name!r} (looking up {target!r})")
            module = module._modules[name]
        return module

    def apply(self, fn: Callable[[Module], None]) -> Module:
        """Call fn on every submodule, then on this module (children first)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- state dicts --------------------------------------------------------------------------------------------
    def state_dict(self, destination: dict | None = None, prefix: str = "", keep_vars: bool = False) -> dict:
        """Parameters and persistent buffers under torch's dotted names ('0.weight', 'bn.running_mean', ...),
        detached but sharing storage with the module."""
        out = OrderedDict() if destination is None else destination
        for name, p in self._parameters.items():
            if p is not None:
                out[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                out[prefix + name] = b if keep_vars else b.detach()
        for name, child in self._modules.items():
            if child is not None:
                child.state_dict(out, prefix + name + ".", keep_vars)
        return out

    def load_state_dict(self, state_dict: dict, strict: bool = True, assign: bool = False) -> IncompatibleKeys:
        """Copy values (graphc tensors, numpy arrays or torch tensors) into the parameters and buffers with the same
        names; with assign, the values themselves become them (their dtype kept; a parameter stays a Parameter
        requiring grad as before), as torch's assign=True. strict: missing or unexpected keys are an error; shape
        mismatches always are."""
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict:
            errors += [f"Unexpected key(s) in state_dict: {', '.join(map(repr, unexpected))}."] if unexpected else []
            errors += [f"Missing key(s) in state_dict: {', '.join(map(repr, missing))}."] if missing else []
        values = {}
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            value = value if isinstance(value, Tensor) else tensor(value.detach().cpu().numpy()
                                                                   if hasattr(value, "detach") else value)
            if tuple(value.shape) != tuple(target.shape):
                errors.append(f"size mismatch for {key}: copying a param with shape {list(value.shape)} from "
                              f"checkpoint, the shape in current model is {list(target.shape)}.")
            values[key] = value
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        with no_grad():
            for key, value in values.items():
                if not assign:
                    own[key].copy_(value.to(own[key].device))
                    continue
                path, _, name = key.rpartition(".")
                module = self.get_submodule(path)
                if isinstance(own[key], Parameter):
                    setattr(module, name, Parameter(value.detach(), own[key].requires_grad))
                else:
                    module._buffers[name] = value
        return IncompatibleKeys(missing, unexpected)

    # ---- modes, moves, gradients --------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active, batch norm uses and updates batch statistics) for this and every child."""
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: train(False)."""
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Turn gradient tracking of every parameter on or off."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient: drop it (the default) or fill it with zeros."""
        for p in self.parameters():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """Move parameters and buffers (and gradients) to a device and/or floating dtype, in place: the tensors
        keep their identity, so optimizers built before the move still see them."""
        for t in list(self.parameters()) + list(self.buffers()):
            keep_dtype = not t.dtype.is_floating_point  # to(dtype) only casts floating tensors, as in torch
            moved = t.to(*[a for a in args if not (keep_dtype and _is_dtype(a))],
                         **{k: v for k, v in kwargs.items() if not (keep_dtype and k == "dtype")})
            if moved is not t:
                t.data = moved
                if t.grad is not None:
                    t.grad = t.grad.to(moved.device).to(moved.dtype)
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self) -> Module:
        return self.to("cuda")

    def float(self) -> Module:
        return self.to("float32")

    def double(self) -> Module:
        return self.to("float64")

    def half(self) -> Module:
        return self.to("float16")

    def bfloat16(self) -> Module:
        return self.to("bfloat16")

    # ---- calling and hooks --------------------------------------------------------------------------------------
    _compiled_call = None  # Module.compile()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._compiled_call is not None and STATE.capture is None:
            return self._compiled_call(*args, **kwargs)
        return self._call_impl(*args, **kwargs)

    def compile(self, *args: Any, **kwargs: Any) -> None:
        """torch.nn.Module.compile: calls of this module (forward and its hooks) run through
        graphc.compile(..., *args, **kwargs) from now on; the module itself stays as it is (state_dict keys, type)."""
        from ..compiler import compile as compile_function

        object.__setattr__(self, "_compiled_call", compile_function(self._call_impl, *args, **kwargs))

    def _call_impl(self, *args: Any, **kwargs: Any) -> Any:
        if not self._forward_hooks and not self._backward_hooks and not self._forward_pre_hooks:
            return self.forward(*args, **kwargs)
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        backward = _BackwardHookCall(self) if self._backward_hooks and STATE.grad_enabled else None
        if backward is not None:
            args = backward.wrap_inputs(args)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        if backward is not None:
            backward.watch_outputs(output)
        return output

    def register_forward_pre_hook(self, hook: Callable[[Module, tuple], Any]) -> RemovableHandle:
        """hook(module, args) runs before forward; a non-None return (a tuple, or one value) replaces the args."""
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    def register_forward_hook(self, hook: Callable[[Module, tuple, Any], Any]) -> RemovableHandle:
        """hook(module, args, output) runs after forward; a non-None return replaces the output."""
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_full_backward_hook(self, hook: Callable[[Module, tuple, tuple], Any]) -> RemovableHandle:
        """hook(module, grad_input, grad_output) runs once the gradients with respect to the module's tensor inputs
        are computed (grad_input holds None for inputs that need no gradient); a non-None return (a tuple) replaces
        grad_input."""
        handle = RemovableHandle(self._backward_hooks)
        self._backward_hooks[handle.id] = hook
        return handle

    # ---- printing -----------------------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [line for line in self.extra_repr().split("\n") if line]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"({name}): {body}")
        if not self._modules:
            return f"{type(self).__name__}({', '.join(lines)})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


def _is_dtype(arg: Any) -> bool:
    return isinstance(arg, DType) or (isinstance(arg, str) and arg not in ("cpu", "cuda") and
                                      not arg.startswith("cuda:"))


class _BackwardHookCall:
    """One call's full backward hooks: inputs go through an identity view whose grad_fn sees the gradient with
    respect to this module's use of them; outputs' grad_fn hooks catch grad_output."""

    def __init__(self, module: Module):
        self.module, self.grad_output, self.grad_input, self.waiting = module, None, None, 0

    def wrap_inputs(self, args: tuple) -> tuple:
        """Watch the tensor inputs that require grad; once one does, the others' grad_input is zeros, as in torch."""
        wrapped = []
        self.grad_input = [None] * len(args)
        for i, a in enumerate(args):
            if isinstance(a, Tensor) and a.requires_grad:
                a = view_as(a, a)
                a.register_hook(self._input_hook(i))
                self.waiting += 1
            wrapped.append(a)
        if self.waiting:
            for i, a in enumerate(args):
                if isinstance(a, Tensor) and not a.requires_grad:
                    self.grad_input[i] = zeros_like(a)
        return tuple(wrapped)

    def watch_outputs(self, output: Any) -> None:
        outputs = output if isinstance(output, tuple) else (output,)
        tensors = [o for o in outputs if isinstance(o, Tensor) and o.requires_grad]
        self.grad_output = [None] * len(tensors)
        for i, o in enumerate(tensors):
            o.register_hook(self._output_hook(i))

    def _output_hook(self, i: int):
        def hook(grad: Tensor) -> None:
            self.grad_output[i] = grad
            if self.waiting == 0 and all(g is not None for g in self.grad_output):
                self._call(None)
        return hook

    def _input_hook(self, i: int):
        def hook(grad: Tensor) -> Tensor | None:
            self.grad_input[i] = grad
            self.waiting -= 1
            return self._call(i) if self.waiting == 0 else None
        return hook

    def _call(self, last: int | None) -> Tensor | None:
        """Run the module's hooks; a replacement grad_input takes effect for the input whose gradient came last."""
        grad_input = tuple(self.grad_input)
        for hook in list(self.module._backward_hooks.values()):
            result = hook(self.module, grad_input, tuple(self.grad_output))
            if result is not None:
                grad_input = tuple(result)
        return None if last is None else grad_input[last]
