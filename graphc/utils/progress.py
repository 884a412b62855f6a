"""A one-line console progress bar showing the running loss (no tqdm needed)."""
from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any


class ProgressBar:
    """Iterate over `iterable`, drawing `desc [####----] 12/24 1.3s loss 0.4321`; call record(loss) each step.
    On a terminal the line redraws in place; elsewhere (logs, CI) only the final line is printed."""

    def __init__(self, iterable: Iterable, desc: str = "", total: int | None = None, file: IO[str] | None = None,
                 width: int = 24):
        self.iterable, self.desc, self.width = iterable, desc, width
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.file = file if file is not None else sys.stderr
        self.count, self._loss_sum, self._losses, self._prefix = 0, 0.0, 0, ""

    def record(self, loss: float) -> None:
        """Add one step's loss to the running mean."""
        self._loss_sum += float(loss)
        self._losses += 1

    @property
    def running_loss(self) -> float:
        """Mean of the losses recorded so far (nan before the first)."""
        return self._loss_sum / self._losses if self._losses else float("nan")

    def __iter__(self) -> Iterator[Any]:
        start = last_draw = time.perf_counter()
        live = self.file.isatty()
        self._prefix = "\r" if live else ""
        for item in self.iterable:
            yield item
            self.count += 1
            now = time.perf_counter()
            if live and now - last_draw > 0.1:
                self._draw(now - start, end="")
                last_draw = now
        self._draw(time.perf_counter() - start, end="\n")

    def _draw(self, elapsed: float, end: str) -> None:
        if self.total:
            filled = min(self.width, self.width * self.count // self.total)
            position = f"[{'#' * filled}{'-' * (self.width - filled)}] {self.count}/{self.total}"
        else:
            position = f"{self.count}"
        self.file.write(f"{self._prefix}{self.desc} {position} {elapsed:.1f}s loss {self.running_loss:.4f}{end}")
        self.file.flush()
