"""The tiered start of the cpu backend, as a JIT's tiers (an interpreter first, compiled code once it is hot and
built): a plan's first calls run the numpy backend's plan of the same graph (one precomputed numpy call per op,
shared out= buffers, updates computed straight into the inputs: runtime.numpy_steps, reinplace.py), which needs no
fusion and no C. Its second run makes the kernel plan (fusion and the C kernels' steps: codegen.plan_kernels) and
requests the build of its library; the build thread renders the C, finds an earlier build on disk or runs the
compiler (native.py), while calls go on with numpy. The first call after the library is loaded runs the kernel plan,
and so does every later one. A build that fails leaves the plan on numpy, with one notice. mode='max-autotune' has
no first tier: its kernel plan waits for the build (compile.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .ir import Graph
from .logs import log_plan
from .plan import Plan
from .runtime import Runtime

if TYPE_CHECKING:
    from collections.abc import Callable


class TieredRuntime:
    """A cpu plan called as a runtime.Runtime is: .first runs the numpy plan, .kernels (None until the second run)
    the kernel plan; `plan` and `run_all` are those of the tier that runs now."""

    observer: Callable | None = None

    def __init__(self, graph: Graph, mode: str, name: str):
        from .compile import plan_steps

        self.graph, self.mode, self.name = graph, mode, name
        self.first = Runtime(Plan(graph, plan_steps(graph, "numpy", mode)))
        self.kernels: Runtime | None = None
        self.runs = 0

    @property
    def active(self) -> Runtime:
        """The kernel plan once its library is loaded (or when it has no C kernels), else the numpy plan."""
        kernels = self.kernels
        if kernels is not None and (kernels.plan.steps.library is None or
                                    kernels.plan.steps.library.functions is not None):
            return kernels
        return self.first

    @property
    def plan(self) -> Plan:
        return self.active.plan

    def tier_up(self) -> None:
        """Make the kernel plan and request its library's build (what the plan's second run does). A planning
        failure (a compiler bug) leaves the plan on numpy, with one notice naming it."""
        from . import native
        from .compile import plan_steps

        if self.kernels is not None:
            return
        try:
            self.kernels = Runtime(Plan(self.graph, plan_steps(self.graph, "cpu", self.mode)))
        except Exception as e:  # noqa: BLE001 (the numpy plan computes the same values)
            native.notice(f"planning the kernels of {self.name} failed: {type(e).__name__}: {e}")
            return
        log_plan(self.name, self.kernels.plan.steps)
        if self.kernels.plan.steps.library is not None:
            self.kernels.plan.steps.library.request()

    def _tier(self) -> Runtime:
        """The runtime for this call; counts the numpy plan's runs, and tiers up on the second."""
        active = self.active
        if active is self.first:
            self.runs += 1
            if self.runs == 2:
                self.tier_up()
            elif self.kernels is not None and self.kernels.plan.steps.library.error is not None:
                from .native import notice

                notice(self.kernels.plan.steps.library.error)
        return active

    def __call__(self, arrays: list, inplace: bool = False) -> list:
        """As Runtime.__call__, on the tier that runs now."""
        if self.observer is not None:
            self.observer(self, arrays)
        return self._tier()(arrays, inplace)

    def run_all(self, arrays: list, free: bool = False, inplace: bool = False) -> dict:
        """As Runtime.run_all, on the tier that runs now (mode='check' compares its steps)."""
        return self._tier().run_all(arrays, free, inplace)
