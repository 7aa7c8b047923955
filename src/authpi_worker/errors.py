"""Why a request is refused, named for the RFC 6750 / RFC 9449 condition it maps to.

Each error carries a `reason`: a short, stable code for logs and tests. Descriptions are
fixed strings chosen here, never text taken from the request.
"""

from __future__ import annotations

from typing import Literal

Scheme = Literal["Bearer", "DPoP"]


class Denied(Exception):
    """Base class: a request that the Worker refuses, with a reason code for the log."""

    def __init__(self, reason: str, description: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.description = description
        self.kid: str | None = None  # the token's kid, when it got that far, for the log
        self.scheme: Scheme = "Bearer"  # the scheme the request used: its challenge answers in it


class MissingToken(Denied):
    """No credentials in a scheme we accept: a challenge without an error code (RFC 6750 §3.1)."""

    def __init__(self, reason: str = "missing_token") -> None:
        super().__init__(reason, "")


class InvalidToken(Denied):
    """`error="invalid_token"`: malformed, unverifiable, expired, not meant for us, or bound
    to a key the request does not prove (RFC 9449 §7.1)."""


class InvalidDpopProof(Denied):
    """`error="invalid_dpop_proof"`: the DPoP proof is missing, repeated or fails a check of
    RFC 9449 §4.3."""


class InsufficientScope(Denied):
    """`error="insufficient_scope"`: a valid token that may not do this. `scope` is the token
    scope(s) missing, for the challenge's `scope=`; None when what is missing is no token scope
    (an organization permission, a caller kind)."""

    def __init__(self, scope: str | None, description: str | None = None) -> None:
        super().__init__("insufficient_scope", description or f"requires {scope}")
        self.scope = scope


class JwksUnavailable(Denied):
    """No cached key can decide and the JWKS cannot be fetched: 503, not 401."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("jwks_unavailable", "")
        self.retry_after = retry_after


class ServerMisconfigured(Denied):
    """A variable is missing or unusable: 500 on protected routes and the metadata."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__("server_misconfigured", f"{variable} {problem}")
        self.variable = variable


class BadBody(Exception):
    """A request body a handler cannot take: answered with `status` and {"error": `error`},
    never a 500. `reason` is the log's code; nothing from the body is kept."""

    status = 400
    error = "invalid_request"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidRequest(BadBody):
    """400 `invalid_request` (RFC 6750 §3.1): not the JSON, or not the shape, the route takes."""


class PayloadTooLarge(BadBody):
    """413 (RFC 9110 §15.5.14): declared or found longer than the route accepts."""

    status = 413
    error = "payload_too_large"
