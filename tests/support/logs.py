"""The Worker's JSON log events, captured per block (one list per call, unlike caplog)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def logged() -> Iterator[list[dict[str, Any]]]:
    """The authpi_worker log lines written inside the block, parsed."""
    events: list[dict[str, Any]] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            events.append(json.loads(record.getMessage()))

    collector = Collect()
    logger = logging.getLogger("authpi_worker")
    logger.addHandler(collector)
    try:
        yield events
    finally:
        logger.removeHandler(collector)
