"""graphc.compiler.precompile: compile, ahead of time and in parallel, every kernel that a function's first run on a
CUDA GPU launches, into Triton's cache under the keys that run's JIT looks up, on a machine with or without a GPU
(a container build, a CI job)."""
from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..tensor import to_torch
from . import cache, standin
from .codegen import plan_kernels
from .compile import CompiledFunction
from .logs import log, logs_on
from .plan import Plan
from .runtime import Runtime, as_torch


@dataclass
class Precompiled:
    """What precompile did: `kernels` launched by the function's plans, `distinct` compilations they need (Triton's
    specialisations of kernels that differ in more than names, numbering and comments), `compiled` now (the rest
    were in Triton's cache), in `seconds` (capture and planning included), for sm_`arch`, into `cache_dir` (Triton's
    cache folder, TRITON_CACHE_DIR: the folder to ship)."""

    kernels: int
    distinct: int
    compiled: int
    seconds: float
    arch: int
    cache_dir: str

    def __str__(self) -> str:
        return (f"precompiled {self.kernels} kernels ({self.distinct} distinct, {self.compiled} compiled, the rest "
                f"cached) for sm_{self.arch} in {self.seconds:.2f} s into {self.cache_dir}")


def precompile(fn: Callable, *args, arch: int = 90, workers: int | None = None, **kwargs) -> Precompiled:
    """Compile every kernel that fn's first calls on a GPU of capability `arch` (90: H100/H200) launch, into Triton's
    cache (TRITON_CACHE_DIR), so that those launches load them instead of compiling: each distinct compilation once,
    in `workers` processes (default: one per CPU). No GPU is needed.

    fn is captured on CPU with the example arguments, like graphc.explain, and so runs with its side effects: a
    training step takes an optimizer step, twice when its first call creates optimizer state (both calls' plans
    are compiled: the GPU's first call runs that plan too). Each launch is specialised as Triton's JIT specialises
    it (sizes equal to 1, multiples of 16, 32- or 64-bit integers): the example arguments must have the shapes,
    dtypes and layouts of the GPU run. The GPU run must use the same Triton installation and the same TRITON_*
    settings. Returns the counts and the seconds taken (logged with GRAPHC_LOGS=code)."""
    from triton import knobs

    start = time.perf_counter()
    runs = capture(fn, *args, **kwargs)
    try:
        found = launches(runs, arch)
        jobs = list({(text, data["key"]): (text, name, data["json"]) for text, name, data in found}.values())
        done = compile_all(jobs, arch, workers)
    finally:
        cache.unload("triton")  # their JIT functions keep the stand-in's target per device: a GPU run loads anew
    result = Precompiled(len(found), len(jobs), done, time.perf_counter() - start, arch, str(knobs.cache.dir))
    if logs_on("code"):
        log.info(f"code] {getattr(fn, '__name__', 'fn')}: {result}")
    return result


def launches(runs: list[tuple[Runtime, list]], arch: int) -> list[tuple[str, str, dict]]:
    """(kernel source, kernel name, {"key", "json"}: Triton's specialisation) of each kernel launch when the runs
    run on the stand-in GPU (run); nothing is compiled here (the JIT's cache hook defers each compilation)."""
    import json

    from triton import knobs

    found = []

    def defer(*, fn, compile, **_) -> bool:
        kernel = fn.jit_function.fn
        text = Path(kernel.__code__.co_filename).read_text()  # the normalised source its module was made from
        data = compile["specialization_data"]
        found.append((text, kernel.__name__, {"key": json.loads(data)["key"], "json": data}))
        return True  # skips compiling

    hook, knobs.runtime.jit_cache_hook = knobs.runtime.jit_cache_hook, defer
    try:
        run(runs, arch)
    finally:
        knobs.runtime.jit_cache_hook = hook
    return found


def capture(fn: Callable, *args, **kwargs) -> list[tuple[Runtime, list]]:
    """(plan, input arrays) of each graph fn's first calls run, captured on CPU: calls until a plan is cached (a
    first call that creates state is traced again, and on a GPU runs its own plan too)."""
    compiled = CompiledFunction(fn.fn if isinstance(fn, CompiledFunction) else fn, backend="numpy")
    runs: list[tuple[Runtime, list]] = []
    compiled.observer = lambda runtime, arrays: runs.append((runtime, list(arrays)))
    for _ in range(2):
        compiled(*args, **kwargs)
        if compiled.num_compiles:
            break
    return runs


def run(runs: list[tuple[Runtime, list]], arch: int) -> None:
    """Run the captured graphs planned for the triton backend on the stand-in GPU of capability arch, their inputs
    laid out as on the GPU: each kernel launch compiles for sm_<arch> (or loads from Triton's cache) and runs
    nothing."""
    with standin.gpu(arch), np.errstate(all="ignore"):  # the op-by-op values are only there to be read
        for runtime, arrays in runs:
            plan = Runtime(Plan(runtime.graph, plan_kernels(runtime.graph, "triton")))
            plan([device_input(a) for a in arrays])


def device_input(a) -> object:
    """A plan input as a GPU run passes it: the caller's tensor, with its strides and storage offset (so its 16-byte
    alignment), here a CPU tensor sharing the array's memory."""
    a = np.asarray(a)
    return to_torch(a) if all(s >= 0 for s in a.strides) else as_torch(a, "triton")


def compile_all(jobs: list[tuple[str, str, str]], arch: int, workers: int | None = None) -> int:
    """Compile (kernel source, kernel name, Triton's specialisation data) jobs for sm_<arch> into Triton's cache, in a
    pool of worker processes (as Inductor's compile workers do: Triton's compiler holds the GIL, so threads would
    not overlap). Returns how many compiled (the rest were cached)."""
    workers = min(len(jobs), workers or os.cpu_count() or 1)
    if workers <= 1:
        return sum(_compile(*job, arch) for job in jobs)
    # fork starts a worker in milliseconds with Triton already imported; a process that has initialised CUDA must
    # not fork, so it spawns (each worker then imports Triton). torch is not imported just to ask: without it
    # imported, CUDA is not initialised.
    from triton.runtime.cache import triton_key

    triton_key()  # a hash of Triton's own files, part of every cache key: computed once here, not in every worker
    torch = sys.modules.get("torch")
    method = "spawn" if torch is not None and torch.cuda.is_initialized() else "fork"
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        return sum(pool.map(_compile_in_worker, *zip(*jobs), [arch] * len(jobs), [str(cache.cache_dir())] * len(jobs)))


def _compile(text: str, name: str, data: str, arch: int) -> bool:
    """Compile one specialisation of a kernel as the JIT on a GPU of capability arch would (JITFunction.preload),
    into Triton's cache. Returns whether it compiled (False: it was in the cache)."""
    from triton import knobs

    hits: list[bool] = []
    listener, knobs.compilation.listener = knobs.compilation.listener, lambda **event: hits.append(event["cache_hit"])
    try:
        with standin.cuda_target(arch):
            cache.load(text, name, "triton").preload(data)
    finally:
        knobs.compilation.listener = listener
    return not hits[-1]


def _compile_in_worker(text: str, name: str, data: str, arch: int, root: str) -> bool:
    os.environ["GRAPHC_CACHE_DIR"] = root  # the parent's cache, even if it fell back to a temporary folder
    return _compile(text, name, data, arch)
