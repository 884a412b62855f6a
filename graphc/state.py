"""Process-wide switches the dispatch and the compiler read: grad mode, anomaly mode, the active capture, TF32,
autocast."""
from __future__ import annotations


class _State:
    __slots__ = ("grad_enabled", "anomaly", "capture", "cuda_runner", "cpu_runner", "float32_matmul_precision",
                 "autocast")

    def __init__(self):
        self.grad_enabled = True
        self.anomaly = False
        self.capture = None  # a compiler.capture.Capture while @graphc.compile traces a function
        self.cuda_runner = None  # (op, inputs, attrs) -> torch storage: one op on CUDA tensors (set by graphc.compiler)
        self.cpu_runner = None  # the same for large CPU ops, with native kernels (set where a C compiler works)
        # "highest": float32 matmul kernels compute in full float32; "high" or "medium": their inputs are read as TF32
        self.float32_matmul_precision = "highest"
        self.autocast = None  # (device type, low-precision dtype) inside graphc.autocast


STATE = _State()
