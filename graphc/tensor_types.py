"""torch's legacy typed tensor constructors (`torch.FloatTensor([1, 2])`, `torch.LongTensor(batch)`), which old
scripts still call: each builds a tensor of its dtype as `Tensor.new` does (sizes, a Size, a sequence or numpy array,
a tensor of that dtype, or nothing), and `isinstance(t, graphc.FloatTensor)` says whether t has that dtype."""
from __future__ import annotations

import numpy as np

from . import dtypes
from .tensor import Tensor


class _TypedTensor(type):
    def __call__(cls, *args, device=None) -> Tensor:
        return Tensor._make(np.empty(0, cls.dtype.np), cls.dtype).new(*args, device=device)

    def __instancecheck__(cls, obj) -> bool:
        return isinstance(obj, Tensor) and obj.dtype is cls.dtype


def _typed(name: str, dtype: dtypes.dtype) -> type:
    return _TypedTensor(name, (), {"dtype": dtype, "__doc__": f"torch.{name}: a tensor of dtype {dtype.name}."})


FloatTensor = _typed("FloatTensor", dtypes.float32)
DoubleTensor = _typed("DoubleTensor", dtypes.float64)
HalfTensor = _typed("HalfTensor", dtypes.float16)
BFloat16Tensor = _typed("BFloat16Tensor", dtypes.bfloat16)
LongTensor = _typed("LongTensor", dtypes.int64)
IntTensor = _typed("IntTensor", dtypes.int32)
ShortTensor = _typed("ShortTensor", dtypes.int16)
CharTensor = _typed("CharTensor", dtypes.int8)
ByteTensor = _typed("ByteTensor", dtypes.uint8)
BoolTensor = _typed("BoolTensor", dtypes.bool_)
