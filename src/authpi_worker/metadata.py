"""RFC 9728 Protected Resource Metadata: how a client that got our 401 finds out which
authorization server to ask, for which scopes, and how to present the token."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from authpi_worker.config import Settings
from authpi_worker.dpop import DPOP_ALGORITHMS
from authpi_worker.responses import Reply, json_reply

WELL_KNOWN = "/.well-known/oauth-protected-resource"  # RFC 9728 §3
WELL_KNOWN_PREFIX = WELL_KNOWN + "/"  # RFC 9728 §3.1: a path-suffixed metadata URL
METADATA_MAX_AGE = 3600  # seconds clients and caches may keep the document: it changes on deploy
METADATA_CACHE = {"cache-control": f"public, max-age={METADATA_MAX_AGE}"}
METADATA_METHODS = ("GET", "HEAD")  # the document is read, never written
# A host and optional port as the runtime serializes a request URL's (and browsers and curl
# send Host): a name or an IPv6 literal in brackets.
_HOST = r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
_PLAIN_HOST = re.compile(_HOST)
_ORIGIN = re.compile(r"https?://" + _HOST)  # scheme, host and optional port


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


def plain_host(host: str) -> bool:
    """A Host header a server may build the request URL from (the origin the metadata and
    DPoP's htu name); anything else is replaced by the address the server listens on."""
    return _PLAIN_HOST.fullmatch(host) is not None


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


def is_well_known(path: str) -> bool:
    """A path the document may live at (which ones it does depends on the settings)."""
    return path == WELL_KNOWN or path.startswith(WELL_KNOWN_PREFIX)


def answer(
    settings: Settings, path: str, method: str, url: str, scopes: Iterable[str]
) -> Reply | None:
    """The answer to a request for the document at `path` (the request's method and full URL):
    the document, a 405 for a method that does not read it, a 404 for a URL that is no plain
    origin (never from the runtime); None when the document does not live at `path`. The
    route table's dispatch and the Starlette integration both answer with it."""
    if path not in metadata_paths(settings):
        return None
    if method not in METADATA_METHODS:
        allow = ", ".join(METADATA_METHODS)
        return json_reply({"error": "method_not_allowed"}, 405, {"allow": allow})
    resource = resource_of(settings, url)
    if resource is None:
        return json_reply({"error": "not_found"}, 404)
    return json_reply(document(settings, resource, scopes), 200, METADATA_CACHE)
