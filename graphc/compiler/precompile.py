"""graphc.compiler.precompile: compile, ahead of time and in parallel, every kernel that a function's first run on a
CUDA GPU launches, into Triton's cache under the keys that run's JIT looks up, on a machine with or without a GPU
(a container build, a CI job)."""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..tensor import Tensor, to_torch
from . import cache, standin
from .codegen import plan_kernels
from .compile import CompiledFunction
from .ir import Node
from .joint import backward_reaches_leaves
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
    are compiled: the GPU's first call runs that plan too); a function returning a loss that requires grad is
    called twice and each loss's backward() run, so its forward and backward plans are compiled (and the leaves'
    .grad accumulate). Each launch is specialised as Triton's JIT specialises it (sizes equal to 1, multiples of
    16, 32- or 64-bit integers): the example arguments must have the shapes, dtypes and layouts of the GPU run. The
    GPU run must use the same Triton installation and the same TRITON_* settings.

    A precompile records what it compiled in a manifest (in graphc's cache), keyed by everything that decides
    Triton's cache keys: the captured graphs, the inputs' shapes, dtypes, strides and alignment, arch, the graphc
    and Triton installations, the TRITON_* and GRAPHC_* settings. A later precompile with the same key whose
    files are all still in Triton's cache returns after the capture (warm); anything else compiles again. Returns
    the counts and the seconds taken (logged with GRAPHC_LOGS=code)."""
    from triton import knobs

    start = time.perf_counter()
    runs = capture(fn, *args, **kwargs)
    manifest = Manifest(runs, arch)
    known = manifest.read()
    if known is not None:
        kernels, distinct, done = known["kernels"], known["distinct"], 0
    else:
        # the workers start while the stand-in run imports torch, and compile each kernel as soon as it is launched
        with Workers(workers, arch) as pool:
            try:
                kernels = len(launches(runs, arch, pool.submit))
                results = pool.results()
            finally:
                cache.unload("triton")  # the JIT functions keep the stand-in's target: a GPU run loads them anew
        distinct, done = len(results), sum(compiled for compiled, _ in results)
        manifest.write(kernels, distinct, {path: size for _, files in results for path, size in files.items()})
    result = Precompiled(kernels, distinct, done, time.perf_counter() - start, arch, str(knobs.cache.dir))
    if logs_on("code"):
        log.info(f"code] {getattr(fn, '__name__', 'fn')}: {result}")
    return result


class Manifest:
    """What a precompile compiled into Triton's cache (its files and sizes, and the counts), stored in graphc's cache
    under a key of everything that decides Triton's cache keys for these runs (precompile's docstring). A manifest
    that is missing, unreadable, or lists a file no longer in Triton's cache with its size, reads as None: the
    caller compiles again."""

    def __init__(self, runs: list[tuple[Runtime, list]], arch: int):
        import triton
        from triton import knobs
        from triton._C.libtriton import get_cache_invalidating_env_vars

        import graphc

        from ..state import STATE

        parts = [f"sm_{arch}", f"fp_fusion={cache.FP_FUSION}", STATE.float32_matmul_precision, sys.version,
                 installation(Path(graphc.__file__).parent), installation(Path(triton.__file__).parent),
                 str(knobs.cache.dir), repr(sorted(get_cache_invalidating_env_vars().items())),
                 repr(sorted((k, v) for k, v in os.environ.items() if k.startswith(("TRITON_", "GRAPHC_"))))]
        for runtime, arrays in runs:
            parts.append(describe(runtime.graph))
            parts += [f"{a.shape} {a.dtype.str} {a.strides} {a.ctypes.data % 16}" for a in map(np.asarray, arrays)]
        self.relative = f"precompiled/{cache.digest(*parts)}.json"

    def read(self) -> dict | None:
        try:
            entry = json.loads((cache.cache_dir() / self.relative).read_text())
            intact = all(os.stat(path).st_size == size for path, size in entry["files"].items())
            return entry if intact and entry["files"] and int(entry["kernels"]) >= int(entry["distinct"]) else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def write(self, kernels: int, distinct: int, files: dict[str, int]) -> None:
        cache.store(self.relative, json.dumps({"kernels": kernels, "distinct": distinct, "files": files}).encode())


def installation(root: Path) -> str:
    """A digest of the files of an installed package (their paths, sizes and modification times): it changes when
    the package is upgraded, reinstalled or edited."""
    stats = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        for name in sorted(names):
            stat = os.stat(os.path.join(folder, name))
            stats.append(f"{os.path.relpath(os.path.join(folder, name), root)} {stat.st_size} {stat.st_mtime_ns}")
    return cache.digest(str(root), *stats)


def describe(graph) -> str:
    """The graph as text that is the same in every process for the same program: ops, operands, attrs, shapes,
    dtypes, and a digest of each constant's value (generated kernels may bake constants in)."""
    index = {node: i for i, node in enumerate(graph.nodes)}
    lines = []
    for n in graph.nodes:
        if n.kind == "const":
            value = np.ascontiguousarray(n.value)
            what = f"const {hashlib.sha256(value.tobytes()).hexdigest()}"
        elif n.kind == "op":
            operands = ", ".join(str(index[x]) if type(x) is Node else repr(x) for x in n.inputs)
            attrs = ", ".join(f"{k}={v!r}" for k, v in n.attrs.items() if k != "generator")
            what = f"{n.op.name}({operands}; {attrs})"
        else:
            what = n.kind
        lines.append(f"{what} {n.shape} {n.dtype.name}")
    return "\n".join(lines + [f"return {[index[o] for o in graph.outputs]}"])


def launches(runs: list[tuple[Runtime, list]], arch: int, found: Callable[[str, str, str, str], None]) -> list:
    """Run the runs on the stand-in GPU (run) and call found(kernel source, kernel name, Triton's key, Triton's
    specialisation data) at each kernel launch; returns the launches, in order. Nothing is compiled here (the
    JIT's cache hook defers each compilation to found)."""
    from triton import knobs

    seen = []

    def defer(*, fn, compile, **_) -> bool:
        kernel = fn.jit_function.fn
        text = Path(kernel.__code__.co_filename).read_text()  # the normalised source its module was made from
        data = compile["specialization_data"]
        seen.append((text, kernel.__name__, json.loads(data)["key"], data))
        found(*seen[-1])
        return True  # skips compiling

    hook, knobs.runtime.jit_cache_hook = knobs.runtime.jit_cache_hook, defer
    try:
        run(runs, arch)
    finally:
        knobs.runtime.jit_cache_hook = hook
    return seen


def capture(fn: Callable, *args, **kwargs) -> list[tuple[Runtime, list]]:
    """(plan, input arrays) of each plan fn's first calls run, captured on CPU: calls until a plan is cached (a first
    call that creates state is traced again, and on a GPU runs its own plan too). A result that requires grad (and
    has one element: a loss) has its backward() run, as the caller's program would; the call that caches it ran its
    joint graph, so one more call runs the forward plan that replays, and its backward() the backward plan. Each
    plan once, with the input arrays of its first run."""
    compiled = CompiledFunction(fn.fn if isinstance(fn, CompiledFunction) else fn, backend="numpy")
    runs: dict[int, tuple[Runtime, list]] = {}
    compiled.observer = lambda runtime, arrays: runs.setdefault(id(runtime), (runtime, list(arrays)))
    for i in range(3):
        result = compiled(*args, **kwargs)
        # a training step that ran backward itself returns a loss whose graph is spent
        needs_grad = isinstance(result, Tensor) and result.grad_fn is not None and backward_reaches_leaves(result)
        if needs_grad and result.numel() == 1:  # a loss; another result's gradient is the caller's to choose
            result.backward()
        if compiled.num_compiles and (i or not needs_grad):
            break
    return list(runs.values())


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


class Workers:
    """A pool of worker processes that compile (as Inductor's compile workers do: Triton's compiler holds the GIL,
    so threads would not overlap), `workers` of them (default: one per CPU), or this process alone for one. Started
    before the stand-in run, each worker meanwhile imports Triton's compiler and computes Triton's hash of its own
    files (triton_key, part of every cache key), while this process imports torch. A kernel is handed to a worker
    as soon as the stand-in launches it; while all are busy, the waiting matrix products go first (they compile
    longest), so the last to finish is a short one."""

    def __init__(self, workers: int | None, arch: int):
        self.size, self.arch = workers or os.cpu_count() or 1, arch
        self.pool = None
        self.jobs: dict[tuple[str, str], tuple[str, str, str]] = {}  # (source, Triton's key) -> job, in launch order
        self.waiting: list[tuple[str, str]] = []
        self.running: dict[Future, tuple[str, str]] = {}
        self.done: dict[tuple[str, str], tuple[bool, dict[str, int]]] = {}
        if self.size > 1:
            # fork starts a worker in milliseconds with Triton already imported; a process that has initialised CUDA
            # must not fork, so it spawns. torch is not imported just to ask: without it imported, CUDA is not
            # initialised.
            torch = sys.modules.get("torch")
            method = "spawn" if torch is not None and torch.cuda.is_initialized() else "fork"
            self.pool = ProcessPoolExecutor(self.size, mp_context=multiprocessing.get_context(method),
                                            initializer=_start_worker, initargs=(str(cache.cache_dir()),))
            for _ in range(self.size):  # the pool starts its processes at a first submission, not when made
                self.pool.submit(os.getpid)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)

    def submit(self, text: str, name: str, key: str, data: str) -> None:
        """Compile this specialisation (kernel source, kernel name, Triton's key and specialisation data) for
        sm_<arch> into Triton's cache, unless it was submitted before."""
        if (text, key) not in self.jobs:
            self.jobs[text, key] = (text, name, data)
            self.waiting.append((text, key))
            self._start()

    def _start(self) -> None:
        """Collect finished compilations; hand waiting ones to idle workers, matrix products first."""
        for future in [f for f in self.running if f.done()]:
            self.done[self.running.pop(future)] = future.result()
        if self.pool is None:
            return
        self.waiting.sort(key=lambda job: ("tl.dot" in job[0], len(job[0])))
        while self.waiting and len(self.running) < self.size:
            job = self.waiting.pop()
            self.running[self.pool.submit(_compile, *self.jobs[job], self.arch)] = job

    def results(self) -> list[tuple[bool, dict[str, int]]]:
        """For each distinct specialisation submitted, in order: whether it compiled (False: it was in Triton's
        cache) and its files in the cache with their sizes."""
        if self.pool is None:
            self.done.update({job: _compile(*self.jobs[job], self.arch) for job in self.waiting})
            self.waiting.clear()
        while self.running:
            wait(self.running, return_when=FIRST_COMPLETED)
            self._start()
        return [self.done[job] for job in self.jobs]


def _start_worker(root: str) -> None:
    from triton.runtime.cache import triton_key

    os.environ["GRAPHC_CACHE_DIR"] = root  # the parent's cache, even if it fell back to a temporary folder
    triton_key()


def _compile(text: str, name: str, data: str, arch: int) -> tuple[bool, dict[str, int]]:
    """Compile one specialisation of a kernel as the JIT on a GPU of capability arch would (JITFunction.preload),
    into Triton's cache. Returns whether it compiled (False: it was in the cache) and the cache's files for it (the
    compiled kernel's and its group file) with their sizes."""
    from triton import knobs

    events: list[dict] = []
    listener, knobs.compilation.listener = knobs.compilation.listener, lambda **event: events.append(event)
    try:
        with standin.cuda_target(arch):
            cache.load(text, name, "triton").preload(data)
    finally:
        knobs.compilation.listener = listener
    group = events[-1]["metadata_group"]
    first = next(iter(group.values()))
    files = [*group.values(), os.path.join(os.path.dirname(first), f"__grp__{name}.json")]
    return not events[-1]["cache_hit"], {path: os.stat(path).st_size for path in files}
