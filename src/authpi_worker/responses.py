"""What the Worker answers: the quickstart's JSON bodies, with RFC 6750 challenges."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from authpi_worker.errors import (
    Denied,
    InsufficientScope,
    InvalidToken,
    JwksUnavailable,
    MissingToken,
    ServerMisconfigured,
)

JSON = "application/json"
# Compact: the bytes of the quickstart's Response.json(). Built once (json.dumps with separators
# builds one per call); no cycle check, as bodies come from literals and parsed JSON.
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False, allow_nan=False)


@dataclass(frozen=True, slots=True)
class Reply:
    """A runtime-free response: entry.py turns it into a Workers Response."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, _ENCODER.encode(data), {"content-type": JSON, **(headers or {})})


def refusal(denied: Denied) -> Reply:
    """The status, body and headers for each kind of refusal."""
    if isinstance(denied, MissingToken):
        return json_reply({"error": "unauthorized"}, 401, {"www-authenticate": "Bearer"})
    if isinstance(denied, InvalidToken):
        challenge = f'Bearer error="invalid_token", error_description="{denied.description}"'
        return json_reply({"error": "unauthorized"}, 401, {"www-authenticate": challenge})
    if isinstance(denied, InsufficientScope):
        challenge = f'Bearer error="insufficient_scope", scope="{denied.scope}"'
        return json_reply({"error": "insufficient_scope"}, 403, {"www-authenticate": challenge})
    if isinstance(denied, JwksUnavailable):
        headers = {"retry-after": str(denied.retry_after)}
        return json_reply({"error": "temporarily_unavailable"}, 503, headers)
    if isinstance(denied, ServerMisconfigured):
        return json_reply({"error": "server_misconfigured"}, 500)
    return json_reply({"error": "internal_error"}, 500)
