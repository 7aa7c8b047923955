"""The Worker's configuration: the two `vars` of wrangler.jsonc, plus an optional tolerance."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from authpi_worker.errors import ServerMisconfigured

ISSUER_VAR = "AUTHPI_ISSUER_URL"
AUDIENCE_VAR = "AUTHPI_AUDIENCE"
TOLERANCE_VAR = "AUTHPI_CLOCK_TOLERANCE"
MAX_CLOCK_TOLERANCE = 300  # seconds; more than five minutes of skew hides a broken clock
# The keys come from the issuer URL: over plain http anyone on the path could swap them.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True, slots=True)
class Settings:
    issuer: str
    audience: str
    clock_tolerance: int = 0  # seconds of leeway on exp/nbf/iat; 0 as in the quickstart

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer.rstrip('/')}/jwks.json"


def load_settings(get: Callable[[str], object]) -> Settings:
    """Build Settings from a variable lookup (the Workers env, or os.environ), or explain."""
    issuer = _required(get, ISSUER_VAR)
    try:
        parts = urlsplit(issuer)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed [ in the host
        raise ServerMisconfigured(ISSUER_VAR, "is not an http(s) URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ServerMisconfigured(ISSUER_VAR, "is not an http(s) URL")
    if parts.scheme == "http" and host not in LOOPBACK:
        raise ServerMisconfigured(ISSUER_VAR, "must be https (http only on this machine)")
    audience = _required(get, AUDIENCE_VAR)
    return Settings(issuer, audience, _tolerance(get(TOLERANCE_VAR)))


def _required(get: Callable[[str], object], name: str) -> str:
    value = get(name)
    if value is not None and not isinstance(value, str):
        raise ServerMisconfigured(name, "must be a string")
    if not value or not value.strip():
        raise ServerMisconfigured(name, "is missing")
    if value != value.strip():
        raise ServerMisconfigured(name, "has surrounding whitespace")
    if "{" in value or "}" in value:
        raise ServerMisconfigured(name, "still holds the placeholder from wrangler.jsonc")
    return value


def _tolerance(value: object) -> int:
    if value is None or value == "":
        return 0
    text = str(value).strip()
    if (
        not (text.isascii() and text.isdigit() and len(text) <= 3)
        or int(text) > MAX_CLOCK_TOLERANCE
    ):
        raise ServerMisconfigured(
            TOLERANCE_VAR, f"must be whole seconds from 0 to {MAX_CLOCK_TOLERANCE}"
        )
    return int(text)
