"""GRAPHC_LOGS: which compiler events are logged to stderr (comma-separated: graph, fusion, code, breaks,
recompiles, or all)."""
from __future__ import annotations

import logging
import os
import sys

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
