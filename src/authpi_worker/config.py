"""The Worker's configuration: its `vars`, each read and validated here.

Two are required, as in the quickstart (AUTHPI_ISSUER_URL, AUTHPI_AUDIENCE); the others are
optional. An unusable value raises ServerMisconfigured naming the variable: protected routes
and the metadata then answer 500, and `/` still answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import SplitResult, urlsplit

from authpi_worker.errors import ServerMisconfigured

ISSUER_VAR = "AUTHPI_ISSUER_URL"
AUDIENCE_VAR = "AUTHPI_AUDIENCE"
TOLERANCE_VAR = "AUTHPI_CLOCK_TOLERANCE"
DPOP_VAR = "AUTHPI_DPOP"
RESOURCE_VAR = "AUTHPI_RESOURCE"
CORS_VAR = "CORS_ALLOWED_ORIGINS"
# Every variable the Worker reads, in one place (scripts/serve passes exactly these through).
VARS = (ISSUER_VAR, AUDIENCE_VAR, TOLERANCE_VAR, DPOP_VAR, RESOURCE_VAR, CORS_VAR)

MAX_CLOCK_TOLERANCE = 300  # seconds; more than five minutes of skew hides a broken clock
# The keys come from the issuer URL: over plain http anyone on the path could swap them.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
DpopMode = Literal["allowed", "required", "disabled"]
DPOP_MODES: tuple[DpopMode, ...] = ("allowed", "required", "disabled")
ANY_ORIGIN = "*"
# Lists are separated by a comma (white space around it allowed) or by white space alone.
_SEPARATOR = re.compile(r"\s*,\s*|\s+")
_DEFAULT_PORTS = {"http": 80, "https": 443}

Lookup = Callable[[str], object]  # a variable by name: the Workers env, or a dict's get


@dataclass(frozen=True, slots=True)
class Settings:
    # A token's iss must be one of them, exactly, and only that issuer's keys may verify it
    # (several while an issuer moves to a custom domain: old tokens carry the old iss).
    issuers: tuple[str, ...]
    audiences: tuple[str, ...]  # a token passes when its aud names any of them
    clock_tolerance: int = 0  # seconds of leeway on exp/nbf/iat; 0 as in the quickstart
    dpop: DpopMode = "allowed"
    # RFC 9728's resource identifier: AUTHPI_RESOURCE, else the first audience when that is
    # an https URL; None means the origin of each request.
    resource: str | None = None


def jwks_url(issuer: str) -> str:
    """Where an issuer publishes its keys: a trailing slash is not doubled."""
    return f"{issuer.rstrip('/')}/jwks.json"


def load_settings(get: Lookup) -> Settings:
    """Build Settings from a variable lookup (the Workers env, or os.environ), or explain."""
    issuers = entries(_required(get, ISSUER_VAR), ISSUER_VAR)
    for issuer in issuers:
        _check_url(issuer, ISSUER_VAR)
    audiences = entries(_required(get, AUDIENCE_VAR), AUDIENCE_VAR)
    resource = _optional(get, RESOURCE_VAR)
    if resource is not None:
        if _has_query_or_fragment(resource, _check_url(resource, RESOURCE_VAR)):
            raise ServerMisconfigured(RESOURCE_VAR, "must have no query or fragment (RFC 9728)")
    else:
        resource = next((a for a in audiences[:1] if _is_resource_url(a)), None)
    return Settings(issuers, audiences, _tolerance(get(TOLERANCE_VAR)), _dpop(get), resource)


def load_cors_origins(get: Lookup) -> frozenset[str]:
    """The origins CORS_ALLOWED_ORIGINS allows: empty when CORS is off, {"*"} for any."""
    value = _optional(get, CORS_VAR)
    if value is None:
        return frozenset()
    origins = entries(value, CORS_VAR)
    if ANY_ORIGIN in origins:
        if len(origins) > 1:
            raise ServerMisconfigured(CORS_VAR, "mixes * with origins")
        return frozenset(origins)
    return frozenset(_origin(origin) for origin in origins)


def entries(value: str, name: str) -> tuple[str, ...]:
    """The entries of a list variable, in order, each once. "a, b" and "a b" are lists of two;
    an empty entry ("a,", ",a", "a,,b", "a, ,b") is a typo that must not become a value."""
    found = _SEPARATOR.split(value)
    if "" in found:
        raise ServerMisconfigured(name, "has an empty entry (a stray comma?)")
    return tuple(dict.fromkeys(found))


def normalized_origin(url: str) -> tuple[str, SplitResult] | None:
    """The origin of an absolute http(s) URL as browsers serialize it (RFC 3986 §6.2.2-6.2.3:
    scheme and host in lower case, the default port left out), with the URL's parts; None for
    anything else, user info included."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not host or "@" in parts.netloc:
        return None
    host = f"[{host}]" if ":" in host else host
    suffix = "" if port in (None, _DEFAULT_PORTS[scheme]) else f":{port}"
    return f"{scheme}://{host}{suffix}", parts


def _origin(entry: str) -> str:
    """An exact origin, serialized as browsers send it: lower-case, default port left out."""
    found = normalized_origin(entry)
    if found is None or found[1].path or _has_query_or_fragment(entry, found[1]):
        raise ServerMisconfigured(
            CORS_VAR, "must list origins like https://app.example.com (scheme, host, port; no path)"
        )
    return found[0]


def _has_query_or_fragment(url: str, parts: SplitResult) -> bool:
    """Even an empty one (`https://a.example/?`), which urlsplit does not report."""
    return bool(parts.query or parts.fragment) or "?" in url or "#" in url


def _check_url(value: str, name: str) -> SplitResult:
    """An absolute http(s) URL with a host, https unless the host is this machine."""
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed [ in the host
        raise ServerMisconfigured(name, "is not an http(s) URL") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ServerMisconfigured(name, "is not an http(s) URL")
    if parts.scheme == "http" and host not in LOOPBACK:
        raise ServerMisconfigured(name, "must be https (http only on this machine)")
    return parts


def _is_resource_url(audience: str) -> bool:
    """An audience that can serve as RFC 9728's resource: https (http on loopback), no fragment."""
    try:
        parts = _check_url(audience, AUDIENCE_VAR)
    except ServerMisconfigured:
        return False
    return not _has_query_or_fragment(audience, parts)


def _required(get: Lookup, name: str) -> str:
    value = _optional(get, name)
    if value is None:
        raise ServerMisconfigured(name, "is missing")
    return value


def _optional(get: Lookup, name: str) -> str | None:
    """A string var; None when unset or empty. Never one still holding a placeholder."""
    value = get(name)
    if value is not None and not isinstance(value, str):
        raise ServerMisconfigured(name, "must be a string")
    if not value or not value.strip():
        return None
    if value != value.strip():
        raise ServerMisconfigured(name, "has surrounding whitespace")
    if "{" in value or "}" in value:
        raise ServerMisconfigured(name, "still holds the placeholder from wrangler.jsonc")
    return value


def _dpop(get: Lookup) -> DpopMode:
    value = _optional(get, DPOP_VAR) or "allowed"
    if value not in DPOP_MODES:
        raise ServerMisconfigured(DPOP_VAR, f"must be one of {', '.join(DPOP_MODES)}")
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
