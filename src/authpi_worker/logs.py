"""One JSON line per event, on the `authpi_worker` logger. Never a token, only reason codes."""

from __future__ import annotations

import json
import logging

logger = logging.getLogger("authpi_worker")
MAX_FIELD = 200  # kids and paths come from the caller: keep a hostile one from flooding logs


def log_event(event: str, **fields: object) -> None:
    record: dict[str, object] = {"event": event}
    record.update({k: _clip(v) for k, v in fields.items() if v is not None})
    logger.warning(json.dumps(record, separators=(",", ":")))


def _clip(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_FIELD:
        return value[:MAX_FIELD] + "…"
    return value
