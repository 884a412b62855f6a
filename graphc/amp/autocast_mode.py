"""graphc.autocast: mixed precision regions with torch's op policy (torch.amp.autocast_mode).

Inside `with graphc.autocast("cpu", dtype=graphc.bfloat16):` the dispatch casts each op's floating inputs as the
op's definition declares for that device type (Op.autocast):
- LOWER: matmul, bmm, baddbmm, addmm, conv, linear, attention run in the low-precision type;
- FP32: losses and other precision-sensitive ops run in float32;
- FP32_CUDA: ops torch runs in float32 only on CUDA (softmax, log_softmax, layer_norm, norms, sum, exp, log...):
  torch's CPU policy leaves them in their input's type, and graphc follows each device's policy;
- ops without a policy run in their inputs' type, and binary ops promote mixed inputs as usual.
The casts are cast ops, so graphc.compile captures them and fuses them with their neighbours. Backward runs with
autocast off (each op's backward computes in the dtypes its forward used)."""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

from .. import dtypes
from ..errors import PASS_THROUGH
from ..state import STATE

LOWER = {"cpu": "lower", "cuda": "lower"}
FP32 = {"cpu": "fp32", "cuda": "fp32"}
FP32_CUDA = {"cuda": "fp32"}
_DEFAULT_DTYPE = {"cpu": dtypes.bfloat16, "cuda": dtypes.float16}


class autocast:  # noqa: N801  torch's name
    """torch.autocast(device_type, dtype=None, enabled=True, cache_enabled=None): a context manager and decorator.
    dtype defaults to bfloat16 on "cpu" and float16 on "cuda". Raises ValueError for another device type or a dtype
    that is not float16/bfloat16."""

    def __init__(self, device_type: str, dtype: Any = None, enabled: bool = True, cache_enabled: bool | None = None):
        if device_type not in _DEFAULT_DTYPE:
            raise ValueError(f"autocast: device_type must be 'cpu' or 'cuda', got {device_type!r}")
        self.device_type = device_type
        self.fast_dtype = _DEFAULT_DTYPE[device_type] if dtype is None else dtypes.to_dtype(dtype)
        if self.fast_dtype not in dtypes.LOW_PRECISION:
            raise ValueError(f"autocast: dtype must be float16 or bfloat16, got {self.fast_dtype.name}")
        if enabled and device_type == "cuda":
            from .. import cuda

            if not cuda.is_available():
                warnings.warn("User provided device_type of 'cuda', but CUDA is not available. Disabling",
                              UserWarning, stacklevel=2)
                enabled = False
        self.enabled = enabled
        self._previous: list = []  # a stack: one object may be entered again (a decorated recursive function)

    def __enter__(self) -> autocast:
        self._previous.append(STATE.autocast)
        STATE.autocast = (self.device_type, self.fast_dtype) if self.enabled else None
        return self

    def __exit__(self, *exc) -> None:
        STATE.autocast = self._previous.pop()

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self:
                return fn(*args, **kwargs)
        return wrapper


def is_autocast_enabled(device_type: str | None = None) -> bool:
    """Whether an autocast region is active (for device_type, when given)."""
    return STATE.autocast is not None and (device_type is None or STATE.autocast[0] == device_type)


def get_autocast_dtype(device_type: str):
    """The low-precision dtype autocast uses for device_type."""
    if STATE.autocast is not None and STATE.autocast[0] == device_type:
        return STATE.autocast[1]
    return _DEFAULT_DTYPE[device_type]


def cast_inputs(policy: dict, inputs: tuple) -> tuple:
    """inputs as an op with this autocast policy receives them in the active region: floating tensors on the
    region's device cast to its low-precision type (LOWER) or to float32 (FP32)."""
    from ..ops.elementwise import cast
    from ..tensor import Tensor

    device_type, low = STATE.autocast
    rule = policy.get(device_type)
    if rule is None:
        return inputs
    target = low if rule == "lower" else dtypes.float32
    return tuple(cast(x, target) if type(x) is Tensor and x.dtype.is_floating_point and x.dtype is not target
                 and x.device.type == device_type else x for x in inputs)


def custom_fwd(fwd: Callable | None = None, *, device_type: str = "cuda", cast_inputs: Any = None) -> Callable:
    """torch.amp.custom_fwd for autograd.Function.forward: with cast_inputs, the forward runs in that dtype with
    autocast off; without, it runs under the caller's autocast state."""
    if fwd is None:
        return functools.partial(custom_fwd, device_type=device_type, cast_inputs=cast_inputs)

    @functools.wraps(fwd)
    def wrapper(*args, **kwargs):
        if cast_inputs is None or not is_autocast_enabled(device_type):
            return fwd(*args, **kwargs)
        from ..ops.elementwise import cast
        from ..tensor import Tensor

        target = dtypes.to_dtype(cast_inputs)
        args = [cast(a, target) if type(a) is Tensor and a.dtype.is_floating_point else a for a in args]
        with autocast(device_type, enabled=False):
            return fwd(*args, **kwargs)
    return wrapper


def custom_bwd(bwd: Callable | None = None, *, device_type: str = "cuda") -> Callable:
    """torch.amp.custom_bwd: backward runs with autocast off, as every graphc backward does."""
    return bwd if bwd is not None else functools.partial(custom_bwd, device_type=device_type)


def autocast_policy(policy: dict) -> Callable:
    """Decorator for functions composed of several ops (a loss in nn.functional): in an autocast region whose
    device the policy names, their floating tensor arguments are cast first, as for an op with that policy."""
    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if STATE.autocast is None:
                return fn(*args, **kwargs)
            return fn(*cast_inputs(policy, args), **dict(zip(kwargs, cast_inputs(policy, tuple(kwargs.values())))))
        PASS_THROUGH.add(wrapper.__code__)
        return wrapper
    return decorate
