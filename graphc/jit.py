"""graphc.jit: torch.jit's decorators and entry points, for programs written for TorchScript. graphc has no
TorchScript: `script` and `trace` return the module or function they are given, which runs as Python (eagerly, or
compiled where the user calls graphc.compile on it), so code that scripts a model for speed or export runs
unchanged. Saving a scripted program (`jit.save`) raises: save a state_dict with graphc.save, or export ONNX with
graphc.onnx.export."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final  # noqa: F401  torch.jit.Final, used in annotations (timm's `fused_attn: Final[bool]`)

_MESSAGE = ("graphc has no TorchScript: save the model's state_dict with graphc.save (and load it into the model "
            "class), or export it with graphc.onnx.export")


def script(obj: Any, optimize: Any = None, _frames_up: int = 0, _rcb: Any = None, example_inputs: Any = None) -> Any:
    """torch.jit.script: returns obj (a module, function or class) unchanged; it runs as Python."""
    return obj


def trace(func: Any, example_inputs: Any = None, *args: Any, **kwargs: Any) -> Any:
    """torch.jit.trace: returns func (a module or function) unchanged; it runs as Python, so unlike TorchScript's
    trace, control flow keeps following its inputs."""
    return func


def _identity_decorator(fn: Callable | None = None, **kwargs: Any) -> Any:
    return fn if fn is not None else (lambda f: f)


ignore = unused = export = interface = _identity_decorator


def is_scripting() -> bool:
    """torch.jit.is_scripting: False (graphc runs Python)."""
    return False


def is_tracing() -> bool:
    """torch.jit.is_tracing: False."""
    return False


def annotate(the_type: Any, the_value: Any) -> Any:
    """torch.jit.annotate: the value."""
    return the_value


def save(m: Any, f: Any, _extra_files: Any = None) -> None:
    """torch.jit.save: raises NotImplementedError (graphc has no TorchScript)."""
    raise NotImplementedError(f"graphc.jit.save: {_MESSAGE}")


def load(f: Any, map_location: Any = None, _extra_files: Any = None) -> Any:
    """torch.jit.load: raises NotImplementedError (graphc has no TorchScript)."""
    raise NotImplementedError(f"graphc.jit.load: {_MESSAGE}")
