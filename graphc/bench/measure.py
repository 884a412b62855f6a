"""Timing and machine measurements: median wall time of a call on CPU or GPU, the machine's measured peak memory
bandwidth and matmul throughput (the roofline each case is held to), and device names."""
from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from functools import cache

import numpy as np


def cpu_times_ms(fns: dict[str, Callable[[], object]], budget_s: float, min_reps: int = 3,
                 max_reps: int = 200, calls_in_a_row: int = 5) -> dict[str, float]:
    """Fastest milliseconds of each fn() over as many rounds as fit in budget_s (at least min_reps), after one warm
    call each. A round calls every fn calls_in_a_row times, so all of them see the same machine load, while a call
    rarely follows another framework's (switching between numpy's BLAS threads and torch's thread pool on a small
    CPU can double both times); the minimum, not the median, because other load only ever adds time."""
    best = {}
    for name, fn in fns.items():
        start = time.perf_counter()
        fn()
        best[name] = time.perf_counter() - start
    reps = int(min(max_reps, max(min_reps, budget_s / max(sum(best.values()), 1e-6))))
    for _ in range(max(1, reps // calls_in_a_row)):
        for name, fn in fns.items():
            for _ in range(calls_in_a_row):
                start = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - start)
    return {name: seconds * 1e3 for name, seconds in best.items()}


def gpu_times_ms(fns: dict[str, Callable[[], object]], budget_s: float) -> dict[str, float]:
    """Median milliseconds of each fn() on the GPU (triton.testing.do_bench: CUDA events, L2 flushed between
    calls), one after the other."""
    from triton.testing import do_bench

    per_fn = budget_s / max(len(fns), 1)
    return {name: float(do_bench(fn, warmup=max(5, int(per_fn * 100)), rep=max(20, int(per_fn * 1000)),
                                 return_mode="median")) for name, fn in fns.items()}


def cpu_name() -> str:
    """The CPU model and core count, e.g. 'AMD EPYC (2 cores)'."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model} ({os.cpu_count()} cores)"


def gpu_name() -> str:
    import torch

    return torch.cuda.get_device_name()


@cache
def cpu_peaks() -> dict[str, float]:
    """Measured CPU peaks: copy bandwidth of a 256 MiB array (bytes/s) and float32 matmul FLOP/s at 1024, the
    better of numpy and torch (their BLAS libraries differ)."""
    import torch

    src, a = np.ones(1 << 26, np.float32), np.ones((1024, 1024), np.float32)
    dst, tsrc, ta = np.empty_like(src), torch.from_numpy(src), torch.from_numpy(a)
    tdst = torch.empty_like(tsrc)
    ms = cpu_times_ms({"copy": lambda: np.copyto(dst, src), "matmul": lambda: a @ a,
                       "torch copy": lambda: tdst.copy_(tsrc), "torch matmul": lambda: ta @ ta}, budget_s=2.0)
    copy_ms, matmul_ms = min(ms["copy"], ms["torch copy"]), min(ms["matmul"], ms["torch matmul"])
    return {"bandwidth": 2 * src.nbytes / copy_ms * 1e3, "flops": 2 * 1024**3 / matmul_ms * 1e3}


@cache
def gpu_peaks(dtype_name: str = "float32") -> dict[str, float]:
    """Measured GPU peaks: device-to-device copy bandwidth of a 1 GiB tensor (bytes/s) and torch.matmul
    FLOP/s at 8192 in the given dtype."""
    import torch

    src = torch.ones(1 << 28, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    a = torch.ones((8192, 8192), dtype=getattr(torch, dtype_name), device="cuda")
    ms = gpu_times_ms({"copy": lambda: dst.copy_(src), "matmul": lambda: a @ a}, budget_s=1.0)
    copy_ms, matmul_ms = ms["copy"], ms["matmul"]
    return {"bandwidth": 2 * (1 << 28) * 4 / copy_ms * 1e3, "flops": 2 * 8192**3 / matmul_ms * 1e3}


def torch_compile_startup_s() -> float:
    """Seconds of torch.compile's one-off start in this process (imports, compiler warm-up) on a trivial function,
    so that it is not charged to the first case's cold compile time."""
    import torch

    start = time.perf_counter()
    torch.compile(lambda x: x + 1)(torch.ones(4))
    seconds = time.perf_counter() - start
    torch._dynamo.reset()
    return seconds


def bound_ms(bytes_ideal: float | None, flops: float, peaks: dict[str, float]) -> float | None:
    """The roofline time: the larger of moving bytes_ideal at peak bandwidth and doing flops at peak FLOP/s."""
    if bytes_ideal is None:
        return None
    return max(bytes_ideal / peaks["bandwidth"], flops / peaks["flops"]) * 1e3


def to_numpy(value) -> list[np.ndarray]:
    """Every tensor in a (nested) result as float64 numpy arrays, for graphc and torch tensors alike."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [a for v in value for a in to_numpy(v)]
    host = value.detach().cpu()
    if getattr(host, "dtype", None) is not None and "bfloat16" in str(host.dtype):
        host = host.float()
    return [np.asarray(host.numpy(), dtype=np.float64)]


def max_rel_err(actual: list[np.ndarray], expected: list[np.ndarray]) -> float:
    """Largest |actual - expected| over all outputs, relative to the largest |expected| of that output."""
    if len(actual) != len(expected):
        raise ValueError(f"{len(actual)} outputs, expected {len(expected)}")
    errs = [0.0]
    for a, e in zip(actual, expected):
        if a.shape != e.shape:
            raise ValueError(f"output shape {a.shape}, expected {e.shape}")
        errs.append(float(np.max(np.abs(a - e), initial=0.0) / max(float(np.max(np.abs(e), initial=0.0)), 1e-12)))
    return max(errs)
