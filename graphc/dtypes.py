"""Dtypes and torch's promotion rules: bool < integer < floating; dimensioned > 0-d tensors > Python scalars."""
from __future__ import annotations

import ml_dtypes
import numpy as np


class dtype:
    """A graphc dtype: a name, the numpy dtype that stores it, and its promotion category."""

    __slots__ = ("name", "np", "itemsize", "is_floating_point", "category", "triton", "is_low_precision")

    def __init__(self, name: str, np_dtype, category: int, triton: str):
        self.name, self.np = name, np.dtype(np_dtype)
        self.itemsize, self.category, self.triton = self.np.itemsize, category, triton
        self.is_floating_point = category == 2
        self.is_low_precision = self.is_floating_point and self.itemsize == 2  # computed in float32 on CPU

    def __repr__(self) -> str:
        return f"graphc.{self.name}"

    def __reduce__(self):
        return self.name


bool_ = dtype("bool", np.bool_, 0, "i1")
uint8 = dtype("uint8", np.uint8, 1, "u8")
int8 = dtype("int8", np.int8, 1, "i8")
int16 = dtype("int16", np.int16, 1, "i16")
int32 = dtype("int32", np.int32, 1, "i32")
int64 = dtype("int64", np.int64, 1, "i64")
float16 = dtype("float16", np.float16, 2, "fp16")
bfloat16 = dtype("bfloat16", ml_dtypes.bfloat16, 2, "bf16")
float32 = dtype("float32", np.float32, 2, "fp32")
float64 = dtype("float64", np.float64, 2, "fp64")
ALL = (bool_, uint8, int8, int16, int32, int64, float16, bfloat16, float32, float64)
BY_NAME = {d.name: d for d in ALL}
BY_NAME.update(bool=bool_, float=float32, half=float16, double=float64, long=int64, int=int32, short=int16)
_BY_NP = {d.np: d for d in ALL}
LOW_PRECISION = (float16, bfloat16)
_RANK = {bool_: 0, uint8: 1, int8: 1, int16: 2, int32: 3, int64: 4, float16: 5, bfloat16: 5, float32: 6, float64: 7}
_PAIRS = {frozenset((float16, bfloat16)): float32, frozenset((uint8, int8)): int16}  # no order: a wider common type
_default = float32  # the dtype of Python floats and of floating factories (set_default_dtype)


def get_default_dtype() -> dtype:
    """torch.get_default_dtype: the dtype Python floats and floating factory results get (float32 unless set)."""
    return _default


def set_default_dtype(d) -> None:
    """torch.set_default_dtype: make d (a floating dtype) the dtype of Python floats in type promotion and of
    factories called without dtype= (tensor([1.5]), zeros, rand, arange(0.5, ...), new Parameters).
    Raises TypeError for a non-floating dtype, as torch does."""
    global _default
    d = to_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"set_default_dtype: only floating-point types are supported as the default type, got "
                        f"{d.name}")
    _default = d


def from_numpy_dtype(np_dtype) -> dtype:
    """The graphc dtype storing this numpy dtype; numpy's other widths (uint16 and wider unsigned, float128) map to
    the nearest wider torch dtype."""
    np_dtype = np.dtype(np_dtype)
    if np_dtype in _BY_NP:
        return _BY_NP[np_dtype]
    if np_dtype.kind in "iu":
        return int64
    if np_dtype.kind == "f":
        return float32 if np_dtype.itemsize <= 4 else float64
    raise TypeError(f"graphc has no dtype for numpy dtype {np_dtype}")


def to_dtype(d) -> dtype:
    """Accept a graphc dtype, its name, a numpy dtype, or a Python type (float, int, bool)."""
    if isinstance(d, dtype):
        return d
    if d is float:
        return float32
    if d is int:
        return int64
    if d is bool:
        return bool_
    if isinstance(d, str):
        if d in BY_NAME:
            return BY_NAME[d]
        raise TypeError(f"unknown dtype {d!r}")
    return from_numpy_dtype(d)


def promote_types(a: dtype, b: dtype) -> dtype:
    """torch.promote_types: the smallest dtype both a and b convert to without leaving their category."""
    if a is b:
        return a
    return _PAIRS.get(frozenset((a, b))) or (a if _RANK[a] >= _RANK[b] else b)


def can_cast(from_: dtype, to: dtype) -> bool:
    """torch.can_cast: whether torch's casting rules allow from_ into to: not into a lower category (float into an
    integer, a number into bool); any size within one."""
    return from_.category <= to.category


class finfo:
    """torch.finfo: the limits of a floating dtype (the default dtype when None), as Python floats: bits, eps (the
    gap between 1 and the next value), max, min (-max), tiny and smallest_normal (the smallest positive normal
    value), resolution (10**-digits); dtype, its name. From numpy.finfo (ml_dtypes.finfo for bfloat16).
    Raises TypeError for a dtype that is not floating."""

    def __init__(self, type: dtype | None = None):  # noqa: A002  torch's argument name
        d = _default if type is None else to_dtype(type)
        if not d.is_floating_point:
            raise TypeError(f"finfo: expected a floating dtype, got {d.name} (torch.iinfo takes integer dtypes)")
        info = ml_dtypes.finfo(d.np) if d is bfloat16 else np.finfo(d.np)
        self.bits, self.dtype = info.bits, d.name
        self.eps, self.max, self.min = float(info.eps), float(info.max), float(info.min)
        self.tiny = self.smallest_normal = float(info.smallest_normal)
        self.resolution = 10.0 ** -info.precision

    def __repr__(self) -> str:
        return (f"finfo(resolution={self.resolution}, min={self.min}, max={self.max}, eps={self.eps}, "
                f"smallest_normal={self.smallest_normal}, tiny={self.tiny}, dtype={self.dtype})")


class iinfo:
    """torch.iinfo: the limits of an integer dtype as Python ints: bits, min, max; dtype, its name (numpy.iinfo).
    Raises TypeError for a floating or bool dtype."""

    def __init__(self, type: dtype):  # noqa: A002  torch's argument name
        d = to_dtype(type)
        if d.category != 1:
            raise TypeError(f"iinfo: expected an integer dtype, got {d.name} (torch.finfo takes floating dtypes)")
        info = np.iinfo(d.np)
        self.bits, self.min, self.max, self.dtype = info.bits, int(info.min), int(info.max), d.name

    def __repr__(self) -> str:
        return f"iinfo(min={self.min}, max={self.max}, dtype={self.dtype})"


NUMBERS = (bool, int, float)


def as_number(x):
    """A numpy scalar or 0-d numpy array as the Python number torch reads it as (np.float32(2) is 2.0); anything
    else unchanged. Every op's operands and attrs pass through this (see dispatch), so numpy values promote like
    Python numbers: a float32 tensor times np.float64(2) stays float32."""
    if isinstance(x, (np.generic, np.ndarray)) and x.ndim == 0 and x.dtype.kind in "biuf":
        return x.item()
    return x


def scalar_dtype(x) -> dtype:
    """The default dtype of a Python (or numpy) scalar's category."""
    if type(x) not in NUMBERS:
        x = as_number(x)
    if isinstance(x, bool):
        return bool_
    if isinstance(x, int):
        return int64
    if isinstance(x, float):
        return _default
    raise TypeError(f"expected a Tensor or a Python number, got {type(x).__name__}")


def result_type(*operands) -> dtype:
    """torch.result_type over Tensors and Python scalars (0-d tensors and scalars promote only across categories)."""
    tiers: list[dtype | None] = [None, None, None]
    for x in operands:
        if isinstance(getattr(x, "dtype", None), dtype):
            tier, d = (0 if x.ndim else 1), x.dtype
        else:
            tier, d = 2, scalar_dtype(x)
        tiers[tier] = d if tiers[tier] is None else promote_types(tiers[tier], d)
    result = None
    for tier, d in enumerate(tiers):
        if d is None:
            continue
        if result is None:
            result = d
        elif d.category > result.category:
            result = d if tier < 2 else {1: int64, 2: _default}[d.category]
    return result
