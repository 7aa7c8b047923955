"""CORS (the Fetch standard's protocol), off unless CORS_ALLOWED_ORIGINS names origins.

A browser app on another origin first sends a preflight (OPTIONS with Origin and
Access-Control-Request-Method, never credentials): it is answered before any authentication.
Every other answer to an allowed Origin then says so, and exposes the headers a client needs
to act on a refusal. Tokens travel in a header, never in cookies: no Allow-Credentials.
"""

from __future__ import annotations

from dataclasses import dataclass

from authpi_worker.config import ANY_ORIGIN
from authpi_worker.responses import Reply, json_reply

CORS_MAX_AGE = 600  # seconds a browser may reuse a preflight: 10 min, so a config change lands soon
# What a client adds: its token, its DPoP proof, and the type of a JSON body it sends.
ALLOW_HEADERS = "authorization, content-type, dpop"
# A browser app must be able to read a challenge, a backoff and a DPoP nonce.
EXPOSE_HEADERS = "WWW-Authenticate, Retry-After, DPoP-Nonce"
CORS_REFUSED = "cors_origin_not_allowed"  # a refused preflight's error, and its log reason


@dataclass(frozen=True, slots=True)
class Cors:
    """The allowed origins: empty when CORS is off, {"*"} for any origin."""

    origins: frozenset[str]

    def allowed(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for this request's Origin, or None."""
        if origin is None or not self.origins:
            return None
        if ANY_ORIGIN in self.origins:
            return ANY_ORIGIN
        return origin if origin in self.origins else None

    def preflight(self, origin: str, methods: str) -> Reply:
        """The answer to a preflight: 204 with the policy (the methods the routes take), or
        403 for an origin not allowed."""
        allow = self.allowed(origin)
        if allow is None:
            return json_reply({"error": CORS_REFUSED}, 403, {"vary": "Origin"})
        headers = {
            "access-control-allow-origin": allow,
            "access-control-allow-methods": methods,
            "access-control-allow-headers": ALLOW_HEADERS,
            "access-control-max-age": str(CORS_MAX_AGE),
            "vary": "Origin",
        }
        return Reply(204, "", headers)

    def apply(self, reply: Reply, origin: str | None) -> Reply:
        """Any other answer: readable by an allowed origin. While CORS is on, every answer
        varies by Origin, so a shared cache never hands one origin's answer to another."""
        if not self.origins:
            return reply
        vary = reply.headers.get("vary")  # a handler's own Vary is kept
        headers = {**reply.headers, "vary": f"{vary}, Origin" if vary else "Origin"}
        allow = self.allowed(origin)
        if allow is not None:
            headers["access-control-allow-origin"] = allow
            headers["access-control-expose-headers"] = EXPOSE_HEADERS
        return Reply(reply.status, reply.body, headers)
