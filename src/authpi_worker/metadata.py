"""RFC 9728 Protected Resource Metadata: how a client that got our 401 finds out which
authorization server to ask, for which scopes, and how to present the token."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from authpi_worker.config import Settings
from authpi_worker.dpop import DPOP_ALGORITHMS

WELL_KNOWN = "/.well-known/oauth-protected-resource"  # RFC 9728 §3
METADATA_MAX_AGE = 3600  # seconds clients and caches may keep the document: it changes on deploy
# An origin as the runtime serializes a request URL's: scheme, host and optional port.
_ORIGIN = re.compile(r"https?://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def resource_of(settings: Settings, url: str) -> str | None:
    """The resource identifier: AUTHPI_RESOURCE, else the first audience when it is an https
    URL, else the origin of this request (None only if that is not a plain origin)."""
    if settings.resource is not None:
        return settings.resource
    origin = _ORIGIN.match(url)
    return (
        origin.group()
        if origin and url[origin.end() : origin.end() + 1] in ("", "/", "?", "#")
        else None
    )


def metadata_url(resource: str) -> str:
    """Where the metadata of `resource` lives: the well-known path inserted between host and
    path (RFC 9728 §3.1), a lone terminating slash removed."""
    parts = urlsplit(resource)
    path = "" if parts.path == "/" else parts.path
    return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN}{path}"


def metadata_paths(settings: Settings) -> frozenset[str]:
    """The paths this Worker serves the document at: the plain well-known path, and the
    path-suffixed one when the resource has a path (RFC 9728 §3.1)."""
    if settings.resource is None:
        return frozenset({WELL_KNOWN})
    return frozenset({WELL_KNOWN, urlsplit(metadata_url(settings.resource)).path})


def document(settings: Settings, resource: str, scopes: Iterable[str]) -> dict[str, Any]:
    """The metadata (RFC 9728 §2), with RFC 9449 §5.2's DPoP members unless DPoP is off."""
    metadata: dict[str, Any] = {
        "resource": resource,
        "authorization_servers": list(settings.issuers),  # in the configured order
        "scopes_supported": sorted(set(scopes)),
        "bearer_methods_supported": ["header"],
    }
    if settings.dpop != "disabled":
        metadata["dpop_signing_alg_values_supported"] = list(DPOP_ALGORITHMS)
        metadata["dpop_bound_access_tokens_required"] = settings.dpop == "required"
    return metadata
