"""`python -m graphc.bench [--quick] [--out DIR] [--cases a,b]`: run the kernel-fusion suite and write
DIR/results.json, DIR/results.md and DIR/results.png (the chart needs matplotlib: `pip install graphc[bench]`;
without it the chart is skipped with a notice). Every stage that cannot run (a missing graphc piece, an
error) leaves its fields null and is listed with its reason; the suite always finishes."""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

import graphc

from . import measure, report
from .cases import CASES, Case, Inputs, Setup

FIELDS = ["name", "kernels_unfused", "kernels_fused", "bytes_unfused", "bytes_fused", "bytes_ideal", "compile_s",
          "cpu_eager_ms", "cpu_compiled_ms", "torch_eager_ms", "torch_compile_ms", "gpu_ms", "gpu_torch_ms",
          "gpu_torch_compile_ms", "device"]
EXTRA_FIELDS = ["target", "size", "flops", "num_compiles", "torch_compile_cold_s", "bound_ms", "bound_frac",
                "err_eager", "err_compiled"]
# Where each measurement goes, per target: graphc eager runs on CPU only; graphc compiled uses these backends (on CPU,
# 'auto': native C kernels where a C compiler works, built before the first call returns, else numpy).
TARGET_FIELDS = {
    "cpu": dict(backend="auto", mode="max-autotune", graphc_eager="cpu_eager_ms", graphc="cpu_compiled_ms",
                torch="torch_eager_ms", torch_compile="torch_compile_ms"),
    "gpu": dict(backend="triton", mode="default", graphc_eager=None, graphc="gpu_ms", torch="gpu_torch_ms",
                torch_compile="gpu_torch_compile_ms"),
}
ERR_TOLERANCE = {"float32": 1e-3, "float16": 1e-2}


class Row:
    """One case at one target: its result fields, and the stages run for it (each may fail on its own)."""

    def __init__(self, case: Case, target: str, quick: bool, terminal: report.Terminal):
        self.case, self.target, self.quick, self.terminal = case, target, quick, terminal
        self.size = case.sizes[target]
        self.device = "cuda" if target == "gpu" else "cpu"
        self.fields: dict = dict.fromkeys(FIELDS + EXTRA_FIELDS) | {
            "name": case.name, "target": target, "size": " ".join(f"{k}={v}" for k, v in self.size.items()),
            "flops": case.flops(**self.size), "device": measure.gpu_name() if target == "gpu" else measure.cpu_name(),
            "errors": {}, "skipped": skipped(case, quick)}

    def build(self, lib) -> Setup:
        return self.case.build(lib, Inputs(lib, self.device), **self.size)

    def attempt(self, stage: str, work: Callable[[], object]):
        """Run one stage; on failure record why (its fields stay null) and go on."""
        self.terminal.step(f"{self.case.name} [{self.target}]: {stage}")
        try:
            return work()
        except Exception as e:  # a benchmark records every failure and keeps going
            message = str(e).strip().splitlines()[0] if str(e).strip() else ""
            self.fields["errors"][stage] = f"{type(e).__name__}: {message}"[:300]
            return None


STAGES = {"cpu": ["torch eager", "graphc eager", "graphc compiled", "explain", "torch.compile", "timing"],
          "gpu": ["torch eager", "graphc compiled", "explain", "torch.compile", "timing"]}
# torch.compile costs seconds per case cold on a 2-core CPU, so --quick runs it on these cases only (the GPT step runs
# on a GPU only).
QUICK_TORCH_COMPILE = ("bias_gelu", "digits_mlp_train_step", "gpt_train_step")


def skipped(case: Case, quick: bool) -> dict[str, str]:
    """The stages left out of this run on purpose, with the reason (recorded in the row's "skipped")."""
    return {"torch.compile": "skipped in --quick"} if quick and case.name not in QUICK_TORCH_COMPILE else {}


def stages(case: Case, target: str, quick: bool) -> list[str]:
    return [s for s in STAGES[target] if s not in skipped(case, quick)]


def run_row(row: Row) -> dict:
    """Measure one case at one target. Each stage checks its first call against torch's (on identical data) and
    leaves a callable to time; the timing stage then times them all together, interleaved."""
    import torch

    f, fields, gpu = TARGET_FIELDS[row.target], row.fields, row.target == "gpu"
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    to_time: dict[str, Callable[[], object]] = {}
    graphc_compiled_fns = []  # num_compiles is read after timing, so a recompile while timing shows

    def first_call(setup: Setup, call: Callable[[], object]) -> tuple[float, list[np.ndarray]]:
        """Seconds of the first call (for a compiled function: capture, codegen and one run), its outputs, and how
        much it changed each state tensor (an update is small next to its tensor, so it is compared on its own)."""
        before = measure.to_numpy(setup.state)
        start = time.perf_counter()
        out = call()
        sync()
        seconds = time.perf_counter() - start
        return seconds, measure.to_numpy(out) + [a - b for a, b in zip(measure.to_numpy(setup.state), before)]

    def torch_eager():
        setup = row.build(torch)
        _, reference = first_call(setup, lambda: setup.fn(*setup.args))
        to_time[f["torch"]] = lambda: setup.fn(*setup.args)
        return reference

    reference = row.attempt("torch eager", torch_eager)

    def graphc_eager():
        setup = row.build(graphc)
        _, values = first_call(setup, lambda: setup.fn(*setup.args))
        to_time[f["graphc_eager"]] = lambda: setup.fn(*setup.args)
        fields["err_eager"] = measure.max_rel_err(values, reference) if reference is not None else None

    def graphc_compiled():
        setup = row.build(graphc)
        compiled = graphc.compile(setup.fn, backend=f["backend"], mode=f["mode"])
        fields["compile_s"], values = first_call(setup, lambda: compiled(*setup.args))
        to_time[f["graphc"]] = lambda: compiled(*setup.args)
        graphc_compiled_fns.append(compiled)
        fields["err_compiled"] = measure.max_rel_err(values, reference) if reference is not None else None

    def explain():
        setup = row.build(graphc)
        r = graphc.explain(setup.fn, *setup.args)
        fields.update(kernels_unfused=r.num_unfused_kernels, kernels_fused=r.num_kernels,
                      bytes_unfused=r.bytes_moved_unfused, bytes_fused=r.bytes_moved, bytes_ideal=r.bytes_ideal)

    def torch_compiled():
        torch._dynamo.reset()
        setup = row.build(torch)
        compiled = torch.compile(setup.fn)
        fields["torch_compile_cold_s"], _ = first_call(setup, lambda: compiled(*setup.args))
        to_time[f["torch_compile"]] = lambda: compiled(*setup.args)

    def timing():
        budget = (0.25 if row.quick else 1.5) * len(to_time)
        fields.update(measure.gpu_times_ms(to_time, budget) if gpu else measure.cpu_times_ms(to_time, budget))

    work = {"graphc eager": graphc_eager, "graphc compiled": graphc_compiled, "explain": explain,
            "torch.compile": torch_compiled, "timing": timing}
    for stage in stages(row.case, row.target, row.quick)[1:]:
        row.attempt(stage, work[stage])
    fields["num_compiles"] = graphc_compiled_fns[0].num_compiles if graphc_compiled_fns else None
    graphc.compiler.reset()
    if gpu:
        torch.cuda.empty_cache()
    _add_roofline(fields, row.size.get("dtype", "float32"))
    return fields


def _add_roofline(fields: dict, dtype: str) -> None:
    """The roofline bound of this case on its target, and the fraction of it graphc's compiled time reaches."""
    gpu = fields["target"] == "gpu"
    peaks = measure.gpu_peaks(dtype) if gpu else measure.cpu_peaks()
    fields["bound_ms"] = measure.bound_ms(fields["bytes_ideal"], fields["flops"], peaks)
    measured = fields["gpu_ms"] if gpu else fields["cpu_compiled_ms"]
    fields["bound_frac"] = fields["bound_ms"] / measured if fields["bound_ms"] is not None and measured else None
    for key in ("err_eager", "err_compiled"):
        if fields[key] is not None and fields[key] > ERR_TOLERANCE.get(dtype, 1e-3) * (10 if gpu else 1):
            fields["errors"].setdefault("check", f"{key} = {fields[key]:.2e}: graphc's result differs from torch's")


def main(argv: list[str] | None = None) -> int:
    start = time.perf_counter()
    parser = argparse.ArgumentParser(prog="python -m graphc.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"short timings; torch.compile only on {', '.join(QUICK_TORCH_COMPILE)} (minutes)")
    parser.add_argument("--out", type=Path, default=Path("bench-results"), help="output folder (default %(default)s)")
    parser.add_argument("--cases", help=f"comma-separated subset of: {', '.join(CASES)}")
    parser.add_argument("--target", choices=["cpu", "gpu"], help="measure on this target only (default: the CPU, and "
                        "the GPU when CUDA is available)")
    args = parser.parse_args(argv)
    names = args.cases.split(",") if args.cases else list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; choose from {', '.join(CASES)}")

    caches = tempfile.TemporaryDirectory(prefix="graphc-bench-")  # compile times are cold: fresh kernel caches
    for var in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "GRAPHC_CACHE_DIR"):
        os.environ.setdefault(var, os.path.join(caches.name, var.lower()))
    import torch

    targets = [args.target] if args.target else ["cpu"] + (["gpu"] if torch.cuda.is_available() else [])
    if "gpu" in targets and not torch.cuda.is_available():
        parser.error("--target gpu: no CUDA device is available (torch.cuda.is_available() is False)")
    plan = [(CASES[n], t) for t in targets for n in names if t in CASES[n].sizes]
    startup_s = None
    if any("torch.compile" in stages(c, t, args.quick) for c, t in plan):
        try:
            startup_s = measure.torch_compile_startup_s()
        except Exception:  # torch.compile cannot run here: every torch.compile stage records why
            pass
    terminal = report.Terminal(sum(len(stages(c, t, args.quick)) for c, t in plan), max(len(n) for n in names))
    rows = []
    for target in targets:
        target_cases = [c for c, t in plan if t == target]
        if target_cases:
            terminal.header(target)
        for case in target_cases:
            rows.append(run_row(Row(case, target, args.quick, terminal)))
            terminal.row(rows[-1])
    terminal.close()
    caches.cleanup()

    meta = {
        "command": " ".join(["python -m graphc.bench"] + (argv if argv is not None else sys.argv[1:])),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "quick": args.quick,
        "wall_s": time.perf_counter() - start, "cpu": measure.cpu_name(),
        "gpu": measure.gpu_name() if "gpu" in targets else None,
        "peaks": {t: (measure.gpu_peaks() if t == "gpu" else measure.cpu_peaks()) for t in targets},
        "load_avg": os.getloadavg(), "torch_threads": torch.get_num_threads(), "torch_compile_startup_s": startup_s,
        "versions": {"graphc": graphc.__version__, "torch": torch.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / "results.json", meta, rows)
    report.write_markdown(args.out / "results.md", meta, rows)
    chart = report.write_chart(args.out / "results.png", rows)
    print(f"\nwrote {args.out / 'results.json'}, results.md" + (", results.png" if chart else "") +
          f" ({meta['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
