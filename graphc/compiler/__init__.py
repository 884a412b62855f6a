"""The compiler: capture (capture.py) into an IR graph (ir.py), passes (passes.py), a plan of steps (plan.py; fusion.py
forms fused groups, kernel.py emits their code through a renderer, render_triton*.py; codegen.py plans them), run by
the runtime (runtime.py); compile.py ties them together with guards and caches, explain.py reports what happened.
Ops declare their lowering (graphc.dispatch.Lowering); lowering.py and views.py read it."""
from __future__ import annotations

from . import eager_kernels  # noqa: F401  (sets STATE.cuda_runner: eager ops on CUDA tensors run through the codegen)
from .capture import CaptureError, GraphBreakError
from .compile import CheckError, CompiledFunction, compile, reset
from .explain import Report, explain
from .precompile import Precompiled, precompile

__all__ = ["compile", "reset", "explain", "precompile", "CompiledFunction", "Report", "Precompiled", "CaptureError",
           "GraphBreakError", "CheckError"]
