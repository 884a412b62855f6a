"""The Triton renderer: its dialect for the shared emitter (kernel.py), the kernel templates in kernels/, and the
AOT signature. The per-kind layouts are render_triton_elementwise.py, render_triton_reduction.py and
render_triton_matmul.py; each has generate(group, emitter) -> (source, name, signature, constexprs), configs and
launch."""
from __future__ import annotations

import importlib
import math
from pathlib import Path
from string import Template

import numpy as np

from .. import dtypes
from .fusion import Group
from .kernel import Dialect, Emitter

TEMPLATES = Path(__file__).resolve().parents[2] / "kernels"
# per combine: accumulator update, the combine fn of the final tl.reduce (the same functions tl.sum/tl.max/tl.min use;
# called through tl.reduce so the Triton interpreter runs them too), and the NaN a max/min of floats gives when any
# input is NaN (torch propagates NaN; Triton's fold drops it, so the fold is followed by a NaN check). Its sign makes
# the scratch atomics keep it: atomic_max/min on floats compare bit patterns as integers, where +NaN is above every
# number and -NaN below.
ACCUMULATE = {"sum": ("{acc} + {v}", "tl.standard._sum_combine", None),
              "max": ("tl.maximum({acc}, {v}, propagate_nan=tl.PropagateNan.ALL)", "tl.standard._elementwise_max",
                      'float("nan")'),
              "min": ("tl.minimum({acc}, {v}, propagate_nan=tl.PropagateNan.ALL)", "tl.standard._elementwise_min",
                      '-float("nan")')}
# libdevice functions want operands of one type: their literal operands are made tensors of the compute type
LIBDEVICE = {"expm1", "log1p", "tanh", "erf", "floor", "ceil", "pow", "tan", "asin", "acos", "atan", "atan2", "sinh",
             "cosh", "asinh", "acosh", "atanh", "log2", "log10", "exp2", "erfc", "lgamma", "hypot"}


class TritonDialect(Dialect):
    calls = {"exp": "tl.exp({0})", "expm1": "libdevice.expm1({0})", "log": "tl.log({0})",
             "log1p": "libdevice.log1p({0})", "sqrt": "tl.sqrt({0})",
             "rsqrt": "tl.rsqrt({0})", "sin": "tl.sin({0})", "cos": "tl.cos({0})", "tanh": "libdevice.tanh({0})",
             "erf": "libdevice.erf({0})", "floor": "libdevice.floor({0})", "ceil": "libdevice.ceil({0})",
             "abs": "tl.abs({0})", "maximum": "tl.maximum({0}, {1}, propagate_nan=tl.PropagateNan.ALL)",
             "minimum": "tl.minimum({0}, {1}, propagate_nan=tl.PropagateNan.ALL)",
             "pow": "libdevice.pow({0}, {1})", "where": "tl.where({0}, {1}, {2})",
             "sign": "(({0} > 0).to(tl.float32) - ({0} < 0).to(tl.float32))",
             **{name: f"libdevice.{name}({{0}})" for name in ("tan", "asin", "acos", "atan", "sinh", "cosh", "asinh",
                                                              "acosh", "atanh", "log2", "log10", "exp2", "erfc",
                                                              "lgamma")},
             "atan2": "libdevice.atan2({0}, {1})", "hypot": "libdevice.hypot({0}, {1})"}

    def compute_type(self, dt: dtypes.dtype) -> str:
        return "tl.float32" if dt.is_low_precision else f"tl.{ {'bool': 'int1'}.get(dt.name, dt.name)}"

    def storage_type(self, dt: dtypes.dtype) -> str:
        return f"tl.{dt.name}" if dt.is_low_precision else self.compute_type(dt)

    def literal(self, value, ty: str | None = None) -> str:
        if isinstance(value, bool) or value is None:
            return str(int(bool(value)))
        if isinstance(value, float) and not math.isfinite(value):
            return 'float("nan")' if math.isnan(value) else ('float("inf")' if value > 0 else 'float("-inf")')
        return repr(value.item() if isinstance(value, np.generic) else value)

    def cast(self, value: str, ty: str) -> str:
        return f"({value}).to({ty})"

    def constant(self, value: str, ty: str) -> str:
        return f"tl.full([], {value}, {ty})"

    def round(self, value: str, dt: dtypes.dtype) -> str:
        return f"({value}).to({self.storage_type(dt)}).to({self.compute_type(dt)})"

    def call(self, name: str, args: list[str], constants: list[bool], ty: str) -> str:
        if name in LIBDEVICE:
            args = [f"tl.full([], {a}, {ty})" if c else a for a, c in zip(args, constants)]
        return self.calls[name].format(*args)

    def load(self, var: str, ptr: str, offset: str, mask: str | None, dt: dtypes.dtype) -> str:
        ty = self.compute_type(dt)
        widen = "" if self.storage_type(dt) == ty != "tl.int1" else f".to({ty})"
        mask_arg = f", mask={mask}, other=0" if mask else ""
        return f"{var} = tl.load({ptr} + {offset}{mask_arg}){widen}"

    def store(self, ptr: str, offset: str, value: str, mask: list[str], dt: dtypes.dtype) -> str:
        mask_arg = f", mask={' & '.join(mask)}" if mask else ""
        return f"tl.store({ptr} + {offset}, {value}.to({ptr}.dtype.element_ty){mask_arg})"


TRITON = TritonDialect()


def template(name: str) -> Template:
    return Template((TEMPLATES / f"{name}.py.tmpl").read_text())


def renderer(group: Group):
    """The module rendering the group: one per kind ("elementwise", "reduction", "matmul"), for a template group
    the template's own (render_triton_attention.py for "attention.forward")."""
    name = group.template.split(".")[0] if group.kind == "template" else group.kind
    return importlib.import_module(f"{__package__}.render_triton_{name}")


def generate(group: Group):
    """(source, name, AOT signature, constexprs, the renderer module) of the group's Triton kernel."""
    module = renderer(group)
    return (*module.generate(group, Emitter(group, TRITON)), module)


def signature(group: Group, em: Emitter, extra: list[str], pointers_first: dict | None = None) -> dict:
    """The AOT signature: a pointer type per tensor, i64 per size/stride, then the extra ints."""
    sig = dict(pointers_first or {})
    for (x, _), p in em.loads.items():
        sig[p] = f"*{x.dtype.triton}"
    for n, p in em.outputs.items():
        sig[p] = f"*{n.dtype.triton}"
    params = [p.strip() for p in em.params().split(",")]
    for p in params:
        sig.setdefault(p, "i64")
    for p in extra:
        sig[p] = "i64"
    return sig
