"""Presenting results: a terminal table that grows row by row under a progress bar, and results.json,
results.md and results.png (matplotlib, Agg backend)."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

TARGET_TITLES = {"cpu": 'CPU (graphc backend "auto": native C kernels)', "gpu": 'GPU (graphc backend "triton")'}


def _num(value, fmt: str = ".3g") -> str:
    return "-" if value is None else format(value, fmt)


def _ratio(num, den) -> float | None:
    return num / den if num is not None and den else None


def _mb(value) -> str:
    return _num(None if value is None else value / 1e6, ".3g")


def _kernels(row: dict) -> str:
    return f"{_num(row['kernels_unfused'], 'd')} -> {_num(row['kernels_fused'], 'd')}"


def _x(value) -> str:
    return _num(value, ".2f") + ("x" if value is not None else "")


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


Column = tuple[str, Callable[[dict], str]]
COMMON: list[Column] = [
    ("kernels unfused -> fused", _kernels),
    ("MB unfused", lambda r: _mb(r["bytes_unfused"])),
    ("MB fused", lambda r: _mb(r["bytes_fused"])),
    ("MB ideal", lambda r: _mb(r["bytes_ideal"])),
    ("compile s", lambda r: _num(r["compile_s"], ".2f")),
]
COLUMNS: dict[str, list[Column]] = {
    "cpu": COMMON + [
        ("graphc eager ms", lambda r: _num(r["cpu_eager_ms"])),
        ("graphc compiled ms", lambda r: _num(r["cpu_compiled_ms"])),
        ("torch eager ms", lambda r: _num(r["torch_eager_ms"])),
        ("torch.compile ms", lambda r: _num(r["torch_compile_ms"])),
        ("torch.compile cold s", lambda r: _num(r["torch_compile_cold_s"], ".1f")),
        ("torch eager / compiled", lambda r: _x(_ratio(r["torch_eager_ms"], r["cpu_compiled_ms"]))),
        ("roofline", lambda r: _pct(r["bound_frac"])),
        ("max rel err", lambda r: _num(r["err_compiled"], ".1e")),
    ],
    "gpu": COMMON + [
        ("graphc ms", lambda r: _num(r["gpu_ms"])),
        ("torch ms", lambda r: _num(r["gpu_torch_ms"])),
        ("torch.compile ms", lambda r: _num(r["gpu_torch_compile_ms"])),
        ("torch.compile cold s", lambda r: _num(r["torch_compile_cold_s"], ".1f")),
        ("torch.compile / graphc", lambda r: _x(_ratio(r["gpu_torch_compile_ms"], r["gpu_ms"]))),
        ("torch / graphc", lambda r: _x(_ratio(r["gpu_torch_ms"], r["gpu_ms"]))),
        ("bound ms", lambda r: _num(r["bound_ms"])),
        ("roofline", lambda r: _pct(r["bound_frac"])),
        ("max rel err", lambda r: _num(r["err_compiled"], ".1e")),
    ],
}
TERMINAL_HEADERS = {"kernels unfused -> fused": "kernels", "torch eager / compiled": "vs torch",
                    "torch.compile / graphc": "vs t.comp", "torch / graphc": "vs torch",
                    "graphc compiled ms": "compiled ms", "graphc eager ms": "eager ms", "torch.compile ms": "t.comp ms",
                    "torch.compile cold s": "t.comp s",
                    "max rel err": "err"}


class Terminal:
    """The live view: a table printed row by row on stdout, with a progress bar under it on stderr (when a tty)."""

    def __init__(self, total_steps: int, name_width: int):
        self.total, self.done, self.name_width = total_steps, 0, name_width
        self.bar = sys.stderr.isatty()
        self.label = ""

    def step(self, label: str) -> None:
        """A new stage starts: advance the bar and show what runs now."""
        self.done, self.label = self.done + 1, label
        self._draw()

    def header(self, target: str) -> None:
        cells = [f"{'case':<{self.name_width}}"] + [f"{TERMINAL_HEADERS.get(h, h):>11}" for h, _ in COLUMNS[target]]
        self.line(f"\n{TARGET_TITLES[target]}\n" + " ".join(cells))

    def row(self, row: dict) -> None:
        cells = [f"{row['name']:<{self.name_width}}"] + [f"{cell(row):>11}" for _, cell in COLUMNS[row["target"]]]
        self.line(" ".join(cells))

    def line(self, text: str) -> None:
        if self.bar:
            sys.stderr.write("\r\033[K")
        print(text, flush=True)
        self._draw()

    def close(self) -> None:
        if self.bar:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()

    def _draw(self) -> None:
        if self.bar:
            filled = 30 * min(self.done, self.total) // max(self.total, 1)
            sys.stderr.write(f"\r\033[K[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} {self.label}")
            sys.stderr.flush()


def write_json(path: Path, meta: dict, rows: list[dict]) -> None:
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")


def markdown(meta: dict, rows: list[dict]) -> str:
    """The results as Markdown: the machine, one table per target, and every stage that failed and why."""
    lines = [f"Machine: {meta['cpu']}" + (f", {meta['gpu']}" if meta["gpu"] else "") +
             f"; torch {meta['versions']['torch']}, numpy {meta['versions']['numpy']}, "
             f"python {meta['versions']['python']}. Measured peaks: "
             + "; ".join(f"{target} {p['bandwidth'] / 1e9:.1f} GB/s, {p['flops'] / 1e9:.0f} GFLOP/s"
                         for target, p in meta["peaks"].items()) + ".",
             "", f"Command: `{meta['command']}` ({meta['date']}, {meta['wall_s']:.0f} s, load average "
             f"{meta['load_avg'][0]:.1f}). CPU times are the fastest of repeated calls; torch.compile's cold compile "
             "(fresh caches) is reported apart from its timing" + (
                 f", and its one-off start-up in this process ({meta['torch_compile_startup_s']:.1f} s) is charged to "
                 "no case" if meta["torch_compile_startup_s"] is not None else "") + ".", ""]
    for target in ("cpu", "gpu"):
        target_rows = [r for r in rows if r["target"] == target]
        if not target_rows:
            continue
        headers = ["case", "size"] + [h for h, _ in COLUMNS[target]]
        lines += [f"**{TARGET_TITLES[target]}**", "", "| " + " | ".join(headers) + " |",
                  "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join([r["name"], r["size"]] + [cell(r) for _, cell in COLUMNS[target]]) + " |"
                  for r in target_rows]
        lines.append("")
    failures = [f"- {r['name']} ({r['target']}), {stage}: {reason}" for r in rows for stage, reason in
                (r["errors"] | r["skipped"]).items()]
    if failures:
        lines += ["Not measured (the field is null in results.json):", ""] + failures + [""]
    return "\n".join(lines)


def write_markdown(path: Path, meta: dict, rows: list[dict]) -> None:
    path.write_text("# graphc kernel-fusion suite\n\n" + markdown(meta, rows))


def write_chart(path: Path, rows: list[dict]) -> bool:
    """Three panels per case: kernels unfused vs fused, modelled MB unfused/fused/ideal, and speed ratios. Without
    matplotlib (a plain `pip install graphc`) prints a one-line notice instead and returns False."""
    try:
        import matplotlib
    except ImportError:
        print(f"no chart: matplotlib is not installed (pip install 'graphc[bench]'); {path.name} not written")
        return False

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [f"{r['name']} [{r['target']}]" for r in rows]
    y = np.arange(len(rows))

    def values(key: Callable[[dict], float | None]) -> np.ndarray:
        return np.array([np.nan if key(r) is None else key(r) for r in rows], dtype=float)

    panels = [
        ("kernels", True, [("unfused", lambda r: r["kernels_unfused"]), ("fused", lambda r: r["kernels_fused"])]),
        ("modelled global memory traffic (MB)", True,
         [(name, lambda r, k=key: None if r[k] is None else r[k] / 1e6)
          for name, key in (("unfused", "bytes_unfused"), ("fused", "bytes_fused"), ("ideal", "bytes_ideal"))]),
        ("speed-up of graphc compiled (x, >1 is faster)", True, [
            ("vs graphc eager (CPU)", lambda r: _ratio(r["cpu_eager_ms"], r["cpu_compiled_ms"])),
            ("vs torch eager (CPU)", lambda r: _ratio(r["torch_eager_ms"], r["cpu_compiled_ms"])),
            ("vs torch.compile (CPU)", lambda r: _ratio(r["torch_compile_ms"], r["cpu_compiled_ms"])),
            ("vs torch (GPU)", lambda r: _ratio(r["gpu_torch_ms"], r["gpu_ms"])),
            ("vs torch.compile (GPU)", lambda r: _ratio(r["gpu_torch_compile_ms"], r["gpu_ms"]))]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(18, 1.5 + 0.45 * len(rows)), sharey=True)
    for ax, (title, log, series) in zip(axes, panels):
        series = [(name, values(key)) for name, key in series]
        series = [(name, v) for name, v in series if not np.isnan(v).all()]
        height = 0.8 / max(len(series), 1)
        for i, (name, v) in enumerate(series):
            ax.barh(y + (i - (len(series) - 1) / 2) * height, np.nan_to_num(v), height, label=name)
        if log and series:
            ax.set_xscale("log")
        if title.startswith("speed"):
            ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_title(title, fontsize=10)
        if series:
            ax.legend(fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, labels)
    axes[0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
