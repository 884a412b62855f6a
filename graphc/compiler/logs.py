"""GRAPHC_LOGS: which compiler events are logged to stderr (comma-separated: graph, fusion, code, breaks,
recompiles, or all)."""
from __future__ import annotations

import logging
import os
import sys

from .plan import Steps, describe_steps

log = logging.getLogger("graphc.compiler")


def logs_on(kind: str) -> bool:
    """Whether GRAPHC_LOGS selects this kind of event (read on each call, so it can be set at run time)."""
    wanted = os.environ.get("GRAPHC_LOGS", "")
    if not wanted or (kind not in wanted.split(",") and wanted != "all"):
        return False
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[graphc %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return True


def log_plan(name: str, steps: Steps) -> None:
    """GRAPHC_LOGS=fusion: the plan's steps and the fusion pass's reasons; GRAPHC_LOGS=code: each kernel's source."""
    if logs_on("fusion"):
        log.info(f"fusion] {name}: {len(steps)} steps\n" + "\n".join(describe_steps(steps) + steps.reasons))
    if logs_on("code"):
        for step in steps:
            if step.role == "kernel":
                log.info(f"code] {name}: {step.name}\n{step.source}")
