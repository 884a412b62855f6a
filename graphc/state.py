"""Process-wide switches the dispatch and the compiler read: grad mode, anomaly mode, TF32, autocast; and the
active capture, which is per thread."""
from __future__ import annotations

from threading import get_ident


class _State:
    __slots__ = ("grad_enabled", "anomaly", "_captures", "cuda_runner", "cpu_runner", "float32_matmul_precision",
                 "autocast", "deterministic")

    def __init__(self):
        self.grad_enabled = True
        self.anomaly = False
        self._captures: dict[int, object] = {}  # thread id -> the capture of the function it traces
        self.cuda_runner = None  # (op, inputs, attrs) -> torch storage: one op on CUDA tensors (set by graphc.compiler)
        self.cpu_runner = None  # the same for large CPU ops, with native kernels (set where a C compiler works)
        # "highest": float32 matmul kernels compute in full float32; "high" or "medium": their inputs are read as TF32
        self.float32_matmul_precision = "highest"
        self.autocast = None  # (device type, low-precision dtype) inside graphc.autocast
        self.deterministic = False  # graphc.use_deterministic_algorithms: every call of an op on the same tier

    @property
    def capture(self):
        """The compiler.capture.Capture of the function @graphc.compile traces in this thread, else None: another
        thread's eager ops (a data or metrics thread) are not recorded into a trace, and two threads can trace at
        once. (threading.local would cost 0.2 us per read, on every eager op; this costs a dict test.)"""
        return self._captures.get(get_ident()) if self._captures else None

    @capture.setter
    def capture(self, capture) -> None:
        if capture is None:
            self._captures.pop(get_ident(), None)
        else:
            self._captures[get_ident()] = capture


STATE = _State()
