"""A stand-in GPU, for precompile on a machine with or without one: a triton plan runs on CPU tensors laid out as
their GPU copies would be, and each kernel launch goes through Triton's JIT with warmup=True under a stand-in Triton
driver that reports a CUDA target, so the JIT computes the same specialisation (argument types, 16-byte alignment,
integers equal to 1) and the same cache key as the launch on that GPU, and compiles, or loads from its cache, without
running anything. Nothing is computed by the kernels: the runtime gives each kernel step its group's values op by op
(runtime.TritonKernelStep), so the steps after it see real values."""
from __future__ import annotations

import contextlib
import functools


class Driver:
    """The part of Triton's driver interface (triton.runtime.driver) that compiling uses: the current target, device
    and stream. There is no device: kernels compile, they never load or launch."""

    def __init__(self, arch: int):
        from triton.backends.compiler import GPUTarget

        self.target = GPUTarget("cuda", arch, 32)  # a CUDA GPU's warp size; its capability, e.g. 90 for sm_90

    def get_current_target(self):
        return self.target

    def get_current_device(self) -> int:
        return 0

    def get_current_stream(self, device: int | None = None) -> int:
        return 0


@contextlib.contextmanager
def cuda_target(arch: int):
    """Triton's active driver is a stand-in for a CUDA GPU of capability arch (sm_<arch>) inside the block: what
    the JIT compiles or preloads is for that target, and lands in Triton's cache (TRITON_CACHE_DIR)."""
    from triton.runtime import driver

    previous = driver._active  # None until Triton made its default (a GPU's); then made again when next asked
    driver.set_active(Driver(arch))
    try:
        yield
    finally:
        driver.set_active(previous)


_active: list[int] = []  # the arch while a stand-in GPU is active


@contextlib.contextmanager
def gpu(arch: int = 90):
    """Inside the block, the triton backend runs on the stand-in GPU of capability arch (module docstring). Not
    thread-safe: Triton's driver is one per process."""
    with cuda_target(arch):
        _active.append(arch)
        try:
            yield
        finally:
            _active.pop()


def active() -> bool:
    return bool(_active)


def to_gpu(t):
    """t copied to the GPU, or under the stand-in a CPU copy laid out as the GPU copy would be (a device copy
    keeps the strides of a dense tensor and packs others: Tensor.to with copy=True follows the same rules)."""
    return t.to("cpu", copy=True) if _active else t.cuda()


def device() -> str:
    """Where the triton backend allocates its buffers."""
    return "cpu" if _active else "cuda"


class Warmup:
    """A JIT function whose launches `kernel[grid](*args, **config)` compile for the stand-in's target without
    running (JITFunction.warmup)."""

    def __init__(self, kernel):
        self.kernel = kernel

    def __getitem__(self, grid):
        return functools.partial(self.kernel.warmup, grid=grid)


def launchable(kernel):
    """kernel, or under the stand-in GPU its Warmup."""
    return Warmup(kernel) if _active else kernel
