"""Process-wide switches the dispatch reads on every op: grad mode, anomaly mode, the active capture."""
from __future__ import annotations


class _State:
    __slots__ = ("grad_enabled", "anomaly", "capture", "cuda_runner")

    def __init__(self):
        self.grad_enabled = True
        self.anomaly = False
        self.capture = None  # a compiler.capture.Capture while @graphc.compile traces a function
        self.cuda_runner = None  # (op, inputs, attrs) -> torch storage: one op on CUDA tensors (set by graphc.compiler)


STATE = _State()
