"""What the Worker answers: the quickstart's JSON bodies, with RFC 6750 / RFC 9449 challenges
that point to the RFC 9728 metadata."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from authpi_worker.dpop import DPOP_ALGORITHMS
from authpi_worker.errors import (
    Denied,
    InsufficientScope,
    InvalidDpopProof,
    InvalidToken,
    JwksUnavailable,
    MissingToken,
    Scheme,
    ServerMisconfigured,
)

JSON = "application/json"
# Every JSON answer: a browser must never sniff it into something it would render or run.
JSON_HEADERS = {"content-type": JSON, "x-content-type-options": "nosniff"}
DPOP_ALGS = " ".join(DPOP_ALGORITHMS)  # RFC 9449 §7.1 `algs`: the proof algorithms we accept
# Compact: the bytes of the quickstart's Response.json(). Built once (json.dumps with separators
# builds one per call); no cycle check, as bodies come from literals and parsed JSON.
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False, allow_nan=False)


@dataclass(frozen=True, slots=True)
class Reply:
    """A runtime-free response: the entry turns it into a Workers Response."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Challenge:
    """What this deployment's challenges say besides the error: the schemes it accepts (RFC 6750,
    RFC 9449) and where its RFC 9728 metadata is (§5.1 `resource_metadata`)."""

    schemes: tuple[Scheme, ...] = ("Bearer",)
    resource_metadata: str | None = None
    # The challenge of a request without credentials, the same for every such request.
    offered: str = field(init=False, default="")

    def __post_init__(self) -> None:
        offered = ", ".join(self.header(scheme) for scheme in self.schemes)
        object.__setattr__(self, "offered", offered)

    def header(self, scheme: Scheme, *, algs: bool = True, **params: str) -> str:
        """One challenge: `scheme param="value", …`. Values are our own fixed strings or URLs
        we built; none comes from the request."""
        pairs = list(params.items())
        if scheme == "DPoP" and algs:
            pairs.append(("algs", DPOP_ALGS))
        if self.resource_metadata is not None:
            pairs.append(("resource_metadata", self.resource_metadata))
        return scheme + "".join(
            f'{" " if i == 0 else ", "}{name}="{value}"' for i, (name, value) in enumerate(pairs)
        )


def json_reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    body = _ENCODER.encode(data)
    return Reply(status, body, {**JSON_HEADERS, **headers} if headers else JSON_HEADERS.copy())


def refusal(denied: Denied, challenge: Challenge = Challenge()) -> Reply:
    """The status, body and headers for each kind of refusal."""
    if isinstance(denied, MissingToken):
        return json_reply({"error": "unauthorized"}, 401, {"www-authenticate": challenge.offered})
    if isinstance(denied, InvalidToken | InvalidDpopProof):
        error = "invalid_token" if isinstance(denied, InvalidToken) else "invalid_dpop_proof"
        scheme: Scheme = "DPoP" if isinstance(denied, InvalidDpopProof) else denied.scheme
        header = challenge.header(scheme, error=error, error_description=denied.description)
        return json_reply({"error": "unauthorized"}, 401, {"www-authenticate": header})
    if isinstance(denied, InsufficientScope):
        # A missing token scope is named by scope= (RFC 6750 §3); anything else, described.
        why = {"scope": denied.scope} if denied.scope else {"error_description": denied.description}
        header = challenge.header(denied.scheme, algs=False, error="insufficient_scope", **why)
        return json_reply({"error": "insufficient_scope"}, 403, {"www-authenticate": header})
    if isinstance(denied, JwksUnavailable):
        headers = {"retry-after": str(denied.retry_after)}
        return json_reply({"error": "temporarily_unavailable"}, 503, headers)
    if isinstance(denied, ServerMisconfigured):
        return json_reply({"error": "server_misconfigured"}, 500)
    return json_reply({"error": "internal_error"}, 500)
