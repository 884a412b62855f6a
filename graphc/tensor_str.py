"""A tensor's printed form, torch's: torch/_tensor_str.py's formatter and layout, over the host numpy array.

Floats print with `precision` digits after the point (4), in scientific notation when the nonzero finite values span
more than a factor 1000, exceed 1e8 or go below 1e-4, and as `1.` when every value is whole; elements are padded to
one width, wrapped at `linewidth` (80) characters, and a tensor of more than `threshold` (1000) elements prints only
`edgeitems` (3) rows or elements at each end of every dim."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class PrintOptions:
    precision: int = 4
    threshold: float = 1000
    edgeitems: int = 3
    linewidth: int = 80
    sci_mode: bool | None = None


PRINT_OPTS = PrintOptions()
_PROFILES = {"default": PrintOptions(), "short": PrintOptions(precision=2, edgeitems=2),
             "full": PrintOptions(threshold=math.inf)}


def set_printoptions(precision: int | None = None, threshold: float | None = None, edgeitems: int | None = None,
                     linewidth: int | None = None, profile: str | None = None, sci_mode: bool | None = None) -> None:
    """torch.set_printoptions: digits after the point (precision), the element count above which a tensor prints
    summarised (threshold) with edgeitems per end of each dim, the characters per line (linewidth), and scientific
    notation always (sci_mode=True), never (False) or when the values call for it (None). profile: "default",
    "short" (precision 2, edgeitems 2) or "full" (every element), applied before the other arguments. Raises
    ValueError for another profile."""
    if profile is not None:
        if profile not in _PROFILES:
            raise ValueError(f"set_printoptions: profile must be 'default', 'short' or 'full', got {profile!r}")
        base = _PROFILES[profile]
        PRINT_OPTS.precision, PRINT_OPTS.threshold = base.precision, base.threshold
        PRINT_OPTS.edgeitems, PRINT_OPTS.linewidth = base.edgeitems, base.linewidth
    for name, value in (("precision", precision), ("threshold", threshold), ("edgeitems", edgeitems),
                        ("linewidth", linewidth)):
        if value is not None:
            setattr(PRINT_OPTS, name, value)
    PRINT_OPTS.sci_mode = sci_mode


class _Formatter:
    """One width and one notation for every element of a tensor (torch's _Formatter)."""

    def __init__(self, values: np.ndarray):
        self.floating = values.dtype.kind == "f"
        self.int_mode, self.sci_mode, self.width = True, False, 1
        flat = values.reshape(-1)
        if not self.floating:
            self.width = max((len(str(v)) for v in flat.tolist()), default=1)
            return
        finite = flat[np.isfinite(flat) & (flat != 0)].astype(np.float64)
        if finite.size:
            magnitude = np.abs(finite)
            low, high = magnitude.min(), magnitude.max()
            self.int_mode = bool((finite == np.ceil(finite)).all())
            self.sci_mode = bool(high / low > 1000.0 or high > 1.0e8 or low < 1.0e-4) \
                if PRINT_OPTS.sci_mode is None else PRINT_OPTS.sci_mode
            if self.sci_mode:
                self.width = max(len(f"{v:.{PRINT_OPTS.precision}e}") for v in finite.tolist())
            elif self.int_mode:
                self.width = max(len(f"{v:.0f}") + 1 for v in finite.tolist())
            else:
                self.width = max(len(f"{v:.{PRINT_OPTS.precision}f}") for v in finite.tolist())

    def format(self, value) -> str:
        if not self.floating:
            text = str(value)
        elif self.sci_mode:
            text = f"{value:{self.width}.{PRINT_OPTS.precision}e}"
        elif self.int_mode:
            text = f"{value:.0f}" + ("" if math.isinf(value) or math.isnan(value) else ".")
        else:
            text = f"{value:.{PRINT_OPTS.precision}f}"
        return " " * (self.width - len(text)) + text


def _summarized(values: np.ndarray) -> np.ndarray:
    """The elements a summarised print shows (edgeitems at each end of every dim)."""
    e = PRINT_OPTS.edgeitems
    if values.ndim == 0:
        return values
    if values.ndim == 1:
        return np.concatenate([values[:e], values[-e:]]) if values.shape[0] > 2 * e and e else values
    if not e:
        return values[(slice(0, 0),) * values.ndim]
    rows = list(range(e)) + list(range(len(values) - e, len(values))) if len(values) > 2 * e else range(len(values))
    return np.stack([_summarized(values[i]) for i in rows])


def _vector(values: np.ndarray, indent: int, summarize: bool, fmt: _Formatter) -> str:
    per_line = max(1, (PRINT_OPTS.linewidth - indent) // (fmt.width + 2))
    e = PRINT_OPTS.edgeitems
    if summarize and not e:
        data = ["..."]
    elif summarize and values.shape[0] > 2 * e:
        data = [fmt.format(v) for v in values[:e].tolist()] + [" ..."] + \
               [fmt.format(v) for v in values[-e:].tolist()]
    else:
        data = [fmt.format(v) for v in values.tolist()]
    lines = [", ".join(data[i:i + per_line]) for i in range(0, len(data), per_line)]
    return "[" + ("," + "\n" + " " * (indent + 1)).join(lines) + "]"


def _nested(values: np.ndarray, indent: int, summarize: bool, fmt: _Formatter) -> str:
    if values.ndim == 0:
        return fmt.format(values.item())
    if values.ndim == 1:
        return _vector(values, indent, summarize, fmt)
    e = PRINT_OPTS.edgeitems
    if summarize and len(values) > 2 * e:
        slices = [_nested(values[i], indent + 1, summarize, fmt) for i in range(e)] + ["..."] + \
                 [_nested(values[i], indent + 1, summarize, fmt) for i in range(len(values) - e, len(values))]
    else:
        slices = [_nested(v, indent + 1, summarize, fmt) for v in values]
    return "[" + ("," + "\n" * (values.ndim - 1) + " " * (indent + 1)).join(slices) + "]"


def tensor_str(values: np.ndarray, device: list[str], dtype: str | None, empty_dtype: str | None,
               autograd: list[str]) -> str:
    """`tensor(...)` of a host array (float16/bfloat16 given as float32), then the suffixes: the device's, the
    size of an empty tensor that is not 1-d, `dtype` (`empty_dtype` for an empty tensor, whose dtype no element
    shows) and autograd's. A suffix starts a new line where it would pass linewidth, as torch's _add_suffixes."""
    prefix = "tensor("
    indent = len(prefix)
    suffixes = list(device)
    if values.size == 0:
        body = "[]"
        suffixes += [f"size={tuple(values.shape)}"] if values.ndim != 1 else []
        suffixes += [empty_dtype] if empty_dtype else []
    else:
        suffixes += [dtype] if dtype else []
        summarize = values.size > PRINT_OPTS.threshold
        fmt = _Formatter(_summarized(values) if summarize else values)
        body = _nested(values, indent, summarize, fmt)
    suffixes += autograd
    parts = [prefix + body]
    last = len(parts[0]) - parts[0].rfind("\n") + 1
    for suffix in suffixes:
        if last + len(suffix) + 2 > PRINT_OPTS.linewidth:
            parts.append(",\n" + " " * indent + suffix)
            last = indent + len(suffix)
        else:
            parts.append(", " + suffix)
            last += len(suffix) + 2
    return "".join(parts) + ")"
