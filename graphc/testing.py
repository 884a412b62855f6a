"""torch.testing: comparing tensors in tests."""
from __future__ import annotations

import numpy as np

from . import dtypes
from .tensor import Tensor

# torch.testing.assert_close's default (rtol, atol) per dtype; integers and bool compare exactly
_TOLERANCES = {dtypes.float16: (1e-3, 1e-5), dtypes.bfloat16: (1.6e-2, 1e-5), dtypes.float32: (1.3e-6, 1e-5),
               dtypes.float64: (1e-7, 1e-7)}


def assert_close(actual, expected, *, rtol: float | None = None, atol: float | None = None, equal_nan: bool = False,
                 check_device: bool = True, check_dtype: bool = True, msg: str | None = None) -> None:
    """torch.testing.assert_close: |actual - expected| <= atol + rtol * |expected| elementwise, with equal shapes (and
    dtypes and devices, unless told not to check). Tolerances default by dtype as in torch (float32: 1.3e-6 and
    1e-5; integers exact); pass both or neither. Numbers and nested sequences compare as tensors of their values.
    Raises AssertionError naming the mismatched count and the greatest differences (or msg), ValueError when only
    one of rtol/atol is given."""
    if (rtol is None) != (atol is None):
        raise ValueError("assert_close: rtol and atol must both be given, or neither")
    a, e = (x if isinstance(x, Tensor) else Tensor._make(np.asarray(x), dtypes.from_numpy_dtype(np.asarray(x).dtype))
            for x in (actual, expected))
    if a.shape != e.shape:
        raise AssertionError(msg or f"The values for attribute 'shape' do not match: {a.shape} != {e.shape}.")
    if check_dtype and a.dtype is not e.dtype:
        raise AssertionError(msg or f"The values for attribute 'dtype' do not match: {a.dtype} != {e.dtype}.")
    if check_device and a.device != e.device:
        raise AssertionError(msg or f"The values for attribute 'device' do not match: {a.device} != {e.device}.")
    if rtol is None:
        rtol, atol = max((_TOLERANCES.get(x.dtype, (0.0, 0.0)) for x in (a, e)), key=lambda t: t[0])
    x, y = (t._host().astype(np.float64) for t in (a, e))
    close = np.isclose(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan)
    if not close.all():
        diff = np.abs(x - y)[~close]
        relative = (diff / np.abs(y[~close]))
        raise AssertionError(msg or f"Tensor-likes are not close!\n\nMismatched elements: {int((~close).sum())} / "
                             f"{close.size}\nGreatest absolute difference: {np.nanmax(diff)} (up to {atol} allowed)\n"
                             f"Greatest relative difference: {np.nanmax(relative)} (up to {rtol} allowed)")
