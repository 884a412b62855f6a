"""graphc.compiler.precompile: compile every kernel of a function's plan ahead of time for a CUDA target, in
parallel, into the disk cache, on a machine with or without a GPU (a container build, a CI job)."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from . import cache
from .codegen import plan_kernels
from .compile import CompiledFunction
from .logs import log, logs_on
from .runtime import Runtime


@dataclass
class Precompiled:
    """What precompile did: `kernels` in the plan, `distinct` compilations they need (kernels that differ only in
    names, numbering and comments, with the same launch constants, are one), `compiled` now (the rest were in the
    disk cache), in `seconds` (capture and planning included)."""

    kernels: int
    distinct: int
    compiled: int
    seconds: float
    arch: int

    def __str__(self) -> str:
        return (f"precompiled {self.kernels} kernels ({self.distinct} distinct, {self.compiled} compiled, the rest "
                f"cached) for sm_{self.arch} in {self.seconds:.2f} s")


def precompile(fn: Callable, *args, arch: int = 90, workers: int | None = None, **kwargs) -> Precompiled:
    """Compile every kernel of fn's plan for sm_<arch> into the disk cache (GRAPHC_CACHE_DIR), each distinct kernel
    once, in `workers` processes (default: one per CPU). fn is captured on CPU with the example arguments, like
    graphc.explain, and so runs with its side effects: a training step takes an optimizer step, twice when its
    first call creates optimizer state (that call is not the plan a compiled step replays). No GPU is needed.
    Returns the counts and the seconds taken (logged with GRAPHC_LOGS=code)."""
    start = time.perf_counter()
    compiled = CompiledFunction(fn.fn if isinstance(fn, CompiledFunction) else fn, backend="numpy")
    runtimes: list[Runtime] = []
    compiled.observer = runtimes.append
    for _ in range(2):  # until a plan is cached: a first call that creates state is traced again
        runtimes.clear()
        compiled(*args, **kwargs)
        if compiled.num_compiles:
            break
    kernels = [s for r in runtimes for s in plan_kernels(r.graph, "triton") if s.role == "kernel"]
    distinct, done = cache.compile_all([(k.source, k.name, k.signature, k.constexprs) for k in kernels], arch, workers)
    result = Precompiled(len(kernels), distinct, done, time.perf_counter() - start, arch)
    if logs_on("code"):
        log.info(f"code] {getattr(compiled.fn, '__name__', 'fn')}: {result}")
    return result
