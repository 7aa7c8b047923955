"""One route table, and the dispatch that follows it.

Each route is declared once: its path, methods, whether it needs a token, the scope it
requires, and its handler. Dispatch, the 401/403/404/405 split, `Allow`, the CORS preflight's
methods and the RFC 9728 metadata's `scopes_supported` all come from the table.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from authpi_worker.auth import Claims, Isolate, Site, rejected
from authpi_worker.authorization import Requirement
from authpi_worker.config import Lookup
from authpi_worker.cors import CORS_REFUSED
from authpi_worker.errors import Denied, ServerMisconfigured
from authpi_worker.logs import log_event
from authpi_worker.metadata import (
    METADATA_MAX_AGE,
    WELL_KNOWN,
    document,
    metadata_paths,
    resource_of,
)
from authpi_worker.responses import Reply, json_reply

# An answer that depends on the Authorization header must not be stored by a shared cache.
NO_STORE = {"cache-control": "no-store"}
METADATA_CACHE = {"cache-control": f"public, max-age={METADATA_MAX_AGE}"}
WELL_KNOWN_PREFIX = WELL_KNOWN + "/"  # RFC 9728 §3.1: a path-suffixed metadata URL
READ_METHODS = ("GET", "HEAD")  # what the public routes and the metadata answer
_PATH = re.compile(r"[^:/?#]+://[^/?#]*([^?#]*)")  # RFC 3986 §3: scheme://authority path


async def no_body() -> bytes:
    return b""


@dataclass(frozen=True, slots=True)
class Request:
    """What dispatch reads of a request: the entry copies exactly these from the runtime's.
    A handler that wants the body awaits `request.body()` (read only then)."""

    method: str
    url: str  # the full URL, as the runtime has it (DPoP's htu, the metadata's origin)
    authorization: str | None = None
    dpop: str | None = None
    origin: str | None = None
    access_control_request_method: str | None = None
    body: Callable[[], Awaitable[bytes]] = no_body

    @property
    def path(self) -> str:
        """The URL's path (the runtime's URL is parsed and serialized already)."""
        match = _PATH.match(self.url)
        return (match.group(1) if match else "") or "/"

    @property
    def preflight(self) -> bool:
        """A CORS preflight (Fetch standard): OPTIONS with Origin and the method it asks for."""
        return (
            self.method == "OPTIONS"
            and self.origin is not None
            and self.access_control_request_method is not None
        )


Handler = Callable[[Request, Claims], Reply | Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Route:
    """A path and its methods, the scope a token needs for them (if any), and the handler.
    Public routes take no token; their handler gets empty claims."""

    path: str
    handler: Handler
    methods: tuple[str, ...] = READ_METHODS
    scope: str | None = None
    public: bool = False


class Routes:
    """The table: routes by path, and what the rest of the Worker derives from it."""

    def __init__(self, *routes: Route) -> None:
        self.routes = routes
        self._by_path: dict[str, tuple[Route, ...]] = {}
        for route in routes:
            taken = {m for other in self._by_path.get(route.path, ()) for m in other.methods}
            if taken & set(route.methods):
                raise ValueError(f"{route.path}: a method is declared twice")
            self._by_path[route.path] = (*self._by_path.get(route.path, ()), route)
        # Paths that take no token whatever the method: a wrong method there is a plain 405.
        self.public = frozenset(
            path for path, found in self._by_path.items() if all(r.public for r in found)
        )
        # The scopes our routes check: RFC 9728's scopes_supported.
        self.scopes = tuple(sorted({r.scope for r in routes if r.scope is not None}))
        # What a CORS preflight may ask for, over all routes (per path would reveal routes).
        self.methods = ", ".join(dict.fromkeys(m for r in routes for m in r.methods))

    def at(self, path: str) -> tuple[Route, ...]:
        return self._by_path.get(path, ())

    def allow(self, path: str) -> str:
        """The 405's Allow header: every method the path's routes take."""
        return ", ".join(method for route in self.at(path) for method in route.methods)


async def dispatch(routes: Routes, request: Request, isolate: Isolate, var: Lookup) -> Reply:
    """One request, to a Reply. Never raises."""
    path = request.path
    try:
        site = isolate.site(var)
    except Exception as error:  # a bug: answer JSON, log its type, never the token
        return _internal_error(path, error)
    cors = site.cors
    try:
        if request.preflight:
            if site.cors_misconfigured is not None:
                return rejected(site.cors_misconfigured, None, request.url, path)
            if request.origin is not None and cors.origins:
                reply = cors.preflight(request.origin, routes.methods)  # before authentication
                if reply.status == 403:  # an origin not allowed: refused, so logged like the rest
                    log_event("request_rejected", status=403, reason=CORS_REFUSED, path=path)
                return reply
        reply = await _answer(routes, request, path, site)
    except Exception as error:
        reply = _internal_error(path, error)
    if request.method == "HEAD":
        reply = Reply(reply.status, "", reply.headers)  # the GET status and headers, no body
    return cors.apply(reply, request.origin) if cors.origins else reply


async def _answer(routes: Routes, request: Request, path: str, site: Site) -> Reply:
    found = routes.at(path)
    route = _method(found, request.method)
    if route is not None and route.public:
        return await _call(route, request, {})
    if path in routes.public:
        return _not_allowed(routes.allow(path))
    if path == WELL_KNOWN or path.startswith(WELL_KNOWN_PREFIX):
        metadata = _metadata(routes, request, path, site)
        if metadata is not None:
            return metadata
    # Everything else needs a valid token first: an anonymous caller learns nothing of routes.
    verifier = None
    try:
        verifier = site.checked()
        caller = await verifier.authenticate(
            request.authorization, method=request.method, url=request.url, dpop=request.dpop
        )
        if not found:
            reply = json_reply({"error": "not_found"}, 404)
        elif route is None:
            reply = _not_allowed(routes.allow(path))
        else:
            if route.scope is not None:
                caller.require(Requirement(route.scope))
            reply = await _call(route, request, caller.claims)
    except Denied as denied:
        reply = rejected(denied, verifier, request.url, path)
    return Reply(reply.status, reply.body, {**reply.headers, **NO_STORE})


def _metadata(routes: Routes, request: Request, path: str, site: Site) -> Reply | None:
    """The RFC 9728 document, if this is one of its paths; None for any other path."""
    try:
        settings = site.checked().settings
    except ServerMisconfigured as problem:
        return rejected(problem, None, request.url, path)
    if path not in metadata_paths(settings):
        return None
    if request.method not in READ_METHODS:
        return _not_allowed(", ".join(READ_METHODS))
    resource = resource_of(settings, request.url)
    if resource is None:  # a request URL that is no plain origin: never from the runtime
        return json_reply({"error": "not_found"}, 404)
    return json_reply(document(settings, resource, routes.scopes), 200, METADATA_CACHE)


def _internal_error(path: str, error: Exception) -> Reply:
    """A bug: answer JSON, log its type, never the token; never kept by a cache."""
    log_event("internal_error", path=path, error=type(error).__name__)
    return json_reply({"error": "internal_error"}, 500, NO_STORE)


def _method(found: tuple[Route, ...], method: str) -> Route | None:
    for route in found:
        if method in route.methods:
            return route
    return None


def _not_allowed(allow: str) -> Reply:
    return json_reply({"error": "method_not_allowed"}, 405, {"allow": allow})


async def _call(route: Route, request: Request, claims: Claims) -> Reply:
    result = route.handler(request, claims)
    return result if isinstance(result, Reply) else await result  # a sync or async handler
