"""Tensor creation: from data, constant factories, random ops (recorded by the compiler, so each call draws
anew) and device moves."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..dispatch import OTHER, op
from ..tensor import Tensor, device, from_torch, get_default_device
from .view import _sizes


class Generator:
    """torch.Generator: a seeded random stream (numpy's PCG64 underneath)."""

    def __init__(self, device: str = "cpu"):
        self._rng = np.random.default_rng()

    def manual_seed(self, seed: int) -> Generator:
        self._rng = np.random.default_rng(int(seed))
        return self

    def seed(self) -> int:
        seed = int(np.random.SeedSequence().entropy % 2**63)
        self.manual_seed(seed)
        return seed


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed graphc's default random stream (rand, randn, dropout, shuffling, init)."""
    return default_generator.manual_seed(seed)


def _place(t: Tensor, dev, requires_grad: bool) -> Tensor:
    """t on dev (the default device when None), requiring grad if asked."""
    dev = get_default_device() if dev is None else device(dev)
    if dev.type != "cpu":
        t = to_device(t, dev)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of data (nested lists, numbers, numpy arrays or tensors). Python floats make
    the default dtype (float32 unless set_default_dtype), numpy values keep their dtype, as in torch.

    Raises ValueError naming the dim and the lengths where nested sequences are not rectangular."""
    if isinstance(data, Tensor):
        data = data._host()
    try:
        arr = np.asarray(data)
    except ValueError:
        raise _ragged(data) or ValueError(f"tensor: cannot make a tensor of {type(data).__name__}") from None
    if arr.dtype == object:
        raise _ragged(data) or TypeError(f"tensor: cannot make a tensor of {type(data).__name__}")
    if dtype is None:
        python_floats = arr.dtype.kind == "f" and not isinstance(data, (np.ndarray, np.generic))
        dt = dtypes.get_default_dtype() if python_floats else dtypes.from_numpy_dtype(arr.dtype)
    else:
        dt = dtypes.to_dtype(dtype)
    return _place(Tensor._make(np.array(arr, dtype=dt.np), dt), device, requires_grad)


def _ragged(data) -> Exception | None:
    """torch's error for nested sequences that are not rectangular: the shape is read along the first elements,
    and the first sequence (or number) that does not fit it is named with its dim, as torch does."""
    sequences = (list, tuple)
    shape, first = [], data
    while isinstance(first, sequences):
        shape.append(len(first))
        first = first[0] if len(first) else None

    def check(x, dim: int) -> Exception | None:
        if dim == len(shape):
            return TypeError(f"tensor: expected a number at dim {dim}, got a sequence of length {len(x)}") \
                if isinstance(x, sequences) else None
        if not isinstance(x, sequences):
            return TypeError(f"tensor: expected a sequence of length {shape[dim]} at dim {dim}, got "
                             f"{type(x).__name__} {x!r} (not a sequence)")
        if len(x) != shape[dim]:
            return ValueError(f"tensor: expected sequence of length {shape[dim]} at dim {dim} (got {len(x)})")
        return next((e for e in (check(v, dim + 1) for v in x) if e is not None), None)

    return check(data, 0)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with a numpy array."""
    return Tensor._make(array, dtypes.from_numpy_dtype(array.dtype))


def _factory(fill):
    def make(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()
        return _place(Tensor._make(fill(_sizes(size), dt.np), dt), device, requires_grad)
    return make


zeros = _factory(np.zeros)
ones = _factory(np.ones)
empty = _factory(np.empty)


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.scalar_dtype(fill_value)
    return _place(Tensor._make(np.full(_sizes((size,)), fill_value, dt.np), dt), device, requires_grad)


def arange(start=0, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = dtypes.get_default_dtype() if dtypes.result_type(start, end, step).is_floating_point else dtypes.int64
    dt = dtypes.to_dtype(dtype)
    return _place(Tensor._make(np.arange(start, end, step).astype(dt.np), dt), device, requires_grad)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()
    return _place(Tensor._make(np.linspace(start, end, steps).astype(dt.np), dt), device, requires_grad)


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()
    return _place(Tensor._make(np.eye(n, m, dtype=dt.np), dt), device, requires_grad)


def _random_parse(*size, dtype=None, generator=None, low=None, high=None):
    if dtype is None:
        dtype = dtypes.int64 if high is not None else dtypes.get_default_dtype()
    dt = dtypes.to_dtype(dtype)
    return (), {"size": _sizes(size), "dtype": dt, "generator": generator or default_generator, "low": low,
                "high": high}


def _random_infer(size, dtype, generator, low, high):
    if high is not None and low >= high:
        raise ValueError(f"expected 'low' to be less than 'high', but got low={low} >= high={high}")
    return size, dtype


@op("rand", OTHER, _random_infer, parse=_random_parse, pure=False)
def _rand(size, dtype, generator, low, high):
    return generator._rng.random(size, dtype=np.float64)


@op("randn", OTHER, _random_infer, parse=_random_parse, pure=False)
def _randn(size, dtype, generator, low, high):
    return generator._rng.standard_normal(size)


def _randint_parse(low, high=None, size=None, dtype=None, generator=None):
    if size is None:  # randint(high, size)
        low, high, size = 0, low, high
    return _random_parse(*size, dtype=dtype, generator=generator, low=low, high=high)


@op("randint", OTHER, _random_infer, parse=_randint_parse, pure=False)
def _randint(size, dtype, generator, low, high):
    return generator._rng.integers(low, high, size)


def _with_grad(fn):
    """A creation op with torch's device= and requires_grad=; its result is a new leaf (x_like(w) of a w that
    requires grad does not, as in torch)."""
    def make(*args, requires_grad: bool = False, device=None, **kwargs) -> Tensor:
        out = fn(*args, **kwargs)
        return _place(out.detach() if out.grad_fn is not None else out, device, requires_grad)
    make.__doc__ = fn.__doc__
    return make


rand, randn, randint = _with_grad(_rand), _with_grad(_randn), _with_grad(_randint)


def _like_parse(x, fill_value=None, dtype=None):
    return (x,), {"fill_value": fill_value, "dtype": dtypes.to_dtype(dtype) if dtype is not None else x.dtype}


def _no_grad(c, g):
    """Values that do not depend on the input's values: no gradient flows back."""
    return (None,)


def _like_infer(x, fill_value, dtype):
    return tuple(x.shape), dtype


filled = op("full_like", OTHER, _like_infer, parse=_like_parse, triton="{fill_value}", backward=_no_grad)(
    lambda x, fill_value, dtype: np.full(x.shape, fill_value, dtype.np))
full_like = _with_grad(filled)


def zeros_like(x: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return full_like(x, 0, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(x: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return full_like(x, 1, dtype=dtype, device=device, requires_grad=requires_grad)


empty_like = zeros_like


@op("rand_like", OTHER, _like_infer, parse=_like_parse, pure=False, backward=_no_grad)
def _rand_like(x, fill_value, dtype):
    return default_generator._rng.random(x.shape)


@op("randn_like", OTHER, _like_infer, parse=_like_parse, pure=False, backward=_no_grad)
def _randn_like(x, fill_value, dtype):
    return default_generator._rng.standard_normal(x.shape)


rand_like, randn_like = _with_grad(_rand_like), _with_grad(_randn_like)


def to_device(x: Tensor, dev: device) -> Tensor:
    """x copied to another device; a leaf copy keeps requires_grad (as Module.to does for parameters).
    Raises RuntimeError for a device graphc cannot hold tensors on (not cpu or cuda:0) or CUDA without a GPU."""
    if dev.type not in ("cpu", "cuda") or dev.type == "cuda" and dev.index not in (None, 0):
        raise RuntimeError(f"to({str(dev)!r}): graphc holds tensors on 'cpu' and 'cuda:0' only")
    if dev.type == "cuda":
        import torch

        from ..tensor import to_torch
        if not torch.cuda.is_available():
            raise RuntimeError("to('cuda'): no CUDA device is available (torch.cuda.is_available() is False)")
        data = to_torch(np.ascontiguousarray(x._host())).to("cuda")
    else:
        data = from_torch(x._storage()) if type(x._storage()) is not np.ndarray else x._data
    return Tensor._make(data, x.dtype, x.requires_grad and x.is_leaf)

