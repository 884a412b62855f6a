"""graphc: PyTorch-style tensors with autograd on numpy, and a compiler that fuses them into Triton kernels."""
from __future__ import annotations

from . import accelerator, amp, autograd, backends, cuda, distributed, dtypes, nn, onnx, ops, optim, utils
from .amp import autocast
from .autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .backends import get_float32_matmul_precision, set_float32_matmul_precision
from .dtypes import (
    bfloat16,
    dtype,
    float16,
    float32,
    float64,
    get_default_dtype,
    int32,
    int64,
    promote_types,
    result_type,
    set_default_dtype,
)
from .dtypes import bool_ as bool  # noqa: A001  torch's name
from .errors import OpError
from .ops.creation import (
    Generator,
    arange,
    as_tensor,
    bernoulli,
    default_generator,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    get_rng_state,
    initial_seed,
    linspace,
    logspace,
    manual_seed,
    multinomial,
    normal,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    randperm,
    seed,
    set_rng_state,
    tensor,
    tril_indices,
    triu_indices,
    zeros,
    zeros_like,
)
from .serialization import load, save
from .tensor import Size, Tensor, device, get_default_device, set_default_device


def is_tensor(obj: object) -> bool:
    """torch.is_tensor: whether obj is a graphc Tensor."""
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> int:  # noqa: A002  torch's argument name
    """torch.numel: the number of elements of a tensor."""
    return input.numel()


half, double, long, float, int = float16, float64, int64, float32, int32  # noqa: A001  torch's aliases


def _export_ops() -> None:
    from .ops import METHOD_MODULES, public_names
    for module in METHOD_MODULES:
        for name in public_names(module):
            globals()[name] = getattr(module, name)


_export_ops()
from . import distributions, linalg, special  # noqa: E402  (built on the ops above)

globals().update(linalg.ALIASES)
for _name, _fn in linalg.ALIASES.items():
    setattr(Tensor, _name, _fn)
from . import compiler  # noqa: E402  (the compiler captures the ops defined above)
from .compiler import compile, explain  # noqa: E402, A004

__version__ = "0.1.0"
