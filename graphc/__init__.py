"""graphc: PyTorch-style tensors with autograd on numpy, and a compiler that fuses them into Triton kernels."""
from __future__ import annotations

import numpy as np

from . import accelerator, amp, autograd, backends, cuda, distributed, dtypes, jit, nn, onnx, ops, optim, testing, utils
from .amp import autocast
from .autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from .backends import get_float32_matmul_precision, set_float32_matmul_precision
from .dtypes import (
    bfloat16,
    can_cast,
    dtype,
    finfo,
    float16,
    float32,
    float64,
    get_default_dtype,
    iinfo,
    int8,
    int16,
    int32,
    int64,
    promote_types,
    result_type,
    set_default_dtype,
    uint8,
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
from .parallel import get_num_threads, set_num_threads
from .serialization import load, save
from .tensor import (
    Size,
    Tensor,
    channels_last,
    channels_last_3d,
    contiguous_format,
    device,
    get_default_device,
    memory_format,
    preserve_format,
    set_default_device,
)
from .tensor_str import set_printoptions
from .tensor_types import (
    BFloat16Tensor,
    BoolTensor,
    ByteTensor,
    CharTensor,
    DoubleTensor,
    FloatTensor,
    HalfTensor,
    IntTensor,
    LongTensor,
    ShortTensor,
)


def is_tensor(obj: object) -> bool:
    """torch.is_tensor: whether obj is a graphc Tensor."""
    return isinstance(obj, Tensor)


def is_floating_point(input: Tensor) -> bool:  # noqa: A002  torch's argument name
    """torch.is_floating_point: whether the tensor's dtype is a floating dtype."""
    return input.dtype.is_floating_point


def asarray(obj, *, dtype: dtype | None = None, device=None, copy: bool | None = None,  # noqa: F811
            requires_grad: bool = False) -> Tensor:
    """torch.asarray: obj (a Tensor, numpy array, number or nested sequence) as a tensor. A Tensor, or a numpy array
    of a graphc dtype, shares its memory unless copy=True or dtype/device differ; copy=False raises ValueError where
    a copy is needed."""
    if isinstance(obj, Tensor):
        out = obj.to(device=device, dtype=dtype, copy=copy is True)
    elif type(obj) is np.ndarray and not copy and dtype is None and device is None and \
            obj.dtype == dtypes.from_numpy_dtype(obj.dtype).np:
        out = from_numpy(obj)
    else:
        out = tensor(obj, dtype=dtype, device=device)
        copy = copy if copy is not None else True
    if copy is False and (out is not obj and out._data is not getattr(obj, "_data", obj)):
        raise ValueError("asarray: copy=False, but obj's memory cannot be shared with the requested dtype and device")
    return out.requires_grad_() if requires_grad else out


def use_deterministic_algorithms(mode: bool, *, warn_only: bool = False) -> None:
    """torch.use_deterministic_algorithms. Each of graphc's CPU tiers is deterministic (numpy, and native kernels
    whose reductions split work the same way for a given thread count), but a large op's first runs use numpy while
    its native kernel builds, and later runs the kernel, whose float sums can differ in the last bits. With the mode
    on, eager ops stay on numpy and a compiled function's plan waits for its kernels, so every call computes the
    same bits."""
    from .state import STATE

    STATE.deterministic = True if mode else False  # (bool is graphc.bool here)


def are_deterministic_algorithms_enabled() -> bool:
    """torch.are_deterministic_algorithms_enabled: the mode use_deterministic_algorithms last set."""
    from .state import STATE

    return STATE.deterministic


def numel(input: Tensor) -> int:  # noqa: A002  torch's argument name
    """torch.numel: the number of elements of a tensor."""
    return input.numel()


half, double, long, float, int, short = float16, float64, int64, float32, int32, int16  # noqa: A001  torch's aliases


def _export_ops() -> None:
    from .ops import METHOD_MODULES, public_names
    for module in METHOD_MODULES:
        for name in public_names(module):
            globals()[name] = getattr(module, name)


_export_ops()
index_put = ops.indexing.indexed_put


def where(condition: Tensor, *args, **kwargs):
    """torch.where: where(condition, input, other) picks elementwise (graphc.ops.elementwise.where); where(condition)
    alone is condition.nonzero(as_tuple=True), one index tensor per dim."""
    if not args and not kwargs:
        return condition.nonzero(as_tuple=True)
    return ops.elementwise.where(condition, *args, **kwargs)
from . import autograd_functional, distributions, func, linalg, special  # noqa: E402  (built on the ops above)
from .func import vmap  # noqa: E402  (torch.vmap)

globals().update(linalg.ALIASES)
for _name, _fn in linalg.ALIASES.items():
    setattr(Tensor, _name, _fn)
from . import compiler  # noqa: E402  (the compiler captures the ops defined above)
from .compiler import compile, explain  # noqa: E402, A004

__version__ = "0.1.0"
