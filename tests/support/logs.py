"""The Worker's JSON log events, captured per block (one list per block; blocks may nest)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from authpi_worker import logs

_collectors: list[list[dict[str, Any]]] = []  # the open blocks, innermost last
_original: list[Callable[[str], None]] = []  # logs.emit as it was before the outermost block


def _collect(line: str) -> None:
    event = json.loads(line)
    for events in _collectors:
        events.append(event)


@contextmanager
def logged() -> Iterator[list[dict[str, Any]]]:
    """The log lines written inside the block, parsed (and not written to stderr)."""
    events: list[dict[str, Any]] = []
    if not _collectors:
        _original.append(logs.emit)
        logs.emit = _collect
    _collectors.append(events)
    try:
        yield events
    finally:
        assert _collectors.pop() is events  # blocks close innermost first
        if not _collectors:
            logs.emit = _original.pop()
