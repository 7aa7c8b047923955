"""One JSON line per event, on stderr (Workers Logs keeps it). Never a token, only reason
codes, kids, paths and variable names.

Written straight to the stream, not through `logging`: under Pyodide a `logging` call costs
about 40 µs, ten times the write, and a refused request should cost little more than `/`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

MAX_FIELD = 200  # kids and paths come from the caller: keep a hostile one from flooding logs
_ENCODER = json.JSONEncoder(separators=(",", ":"))  # built once, like the response encoder


def log_event(event: str, **fields: object) -> None:
    record: dict[str, object] = {"event": event}
    for name, value in fields.items():
        if value is not None:
            record[name] = _clip(value)
    emit(_ENCODER.encode(record))


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")  # looked up per call: a test may have replaced the stream


# Where the lines go: the core's only output. Swap it to collect or silence them.
emit: Callable[[str], None] = _stderr


def _clip(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_FIELD:
        return value[:MAX_FIELD] + "…"
    return value
