"""One route table, and the dispatch that follows it.

Each route is declared once: its path (literal segments and `{name}` parameters), methods,
whether it needs a token, what it requires of one (authpi_worker.authorization), and its
handler. Dispatch, the 401/403/404/405 split, `Allow`, the CORS preflight's methods and the
RFC 9728 metadata's `scopes_supported` all come from the table.

Matching: a path without parameters is one dict lookup; the others walk a trie of segments,
a literal segment before a parameter, so the cost follows the path's depth, not the number of
routes. `{name}` takes exactly one non-empty segment, percent-decoded once (strict UTF-8; a
`%2F` in it never splits segments, and a value that does not decode does not match).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import unquote_to_bytes

from authpi_worker.auth import Claims, Isolate, Site, rejected
from authpi_worker.authorization import CallerKind, OrgPermission, Requirement, requirement
from authpi_worker.body import read_json
from authpi_worker.config import Lookup
from authpi_worker.cors import CORS_REFUSED
from authpi_worker.errors import BadBody, Denied, ServerMisconfigured
from authpi_worker.logs import log_event
from authpi_worker.metadata import answer as metadata_answer
from authpi_worker.metadata import is_well_known
from authpi_worker.responses import Reply, json_reply

# An answer that depends on the Authorization header must not be stored by a shared cache.
NO_STORE = {"cache-control": "no-store"}
READ_METHODS = ("GET", "HEAD")  # what a route answers unless it says otherwise
_PATH = re.compile(r"[^:/?#]+://[^/?#]*([^?#]*)")  # RFC 3986 §3: scheme://authority path
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")  # a whole segment: `{org_id}`
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")  # a `%` not followed by two hex digits
NO_PARAMS: Mapping[str, str] = MappingProxyType({})
# Paths with parameters already matched, kept with their endpoint and (immutable) parameters:
# walking the trie again costs more than a dict lookup under Pyodide. Paths vary at will (one
# per organization id), so past this many the set starts again: a few dozen KB at most.
MATCHED_PATHS = 256


async def no_body() -> bytes:
    return b""


def _no_params() -> Mapping[str, str]:
    return NO_PARAMS


@dataclass(frozen=True, slots=True)
class Request:
    """What dispatch reads of a request: the entry copies exactly these from the runtime's.
    A handler that wants the body awaits `request.json(max_bytes=...)` or `request.body()`
    (read only then, and once). `params` holds the route's path parameters, decoded:
    dispatch hands the handler a copy with them (`request.params["org_id"]`)."""

    method: str
    url: str  # the full URL, as the runtime has it (DPoP's htu, the metadata's origin)
    authorization: str | None = None
    dpop: str | None = None
    origin: str | None = None
    access_control_request_method: str | None = None
    body: Callable[[], Awaitable[bytes]] = no_body
    content_length: str | None = None  # the Content-Length header, checked before any read
    params: Mapping[str, str] = field(default_factory=_no_params)

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

    async def json(self, *, max_bytes: int) -> Any:
        """The body as JSON, strictly: PayloadTooLarge (413) beyond max_bytes, declared or
        read; InvalidRequest (400) for anything but one UTF-8 JSON text (authpi_worker.body).
        Dispatch answers both; a handler never sees them."""
        return await read_json(self.body, self.content_length, max_bytes)


Handler = Callable[[Request, Claims], Reply | Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Route:
    """A path and its methods, what a token needs for them, and the handler. Public routes
    take no token; their handler gets empty claims.

    `scope` is one token scope, exactly (the quickstart's `read:reports`); `any_scopes` at least
    one of several, `all_scopes` each of several; `org=("org_id", "reports:read")` a permission
    in the organization the path parameter names, in AuthPI's grammar; `callers` the caller
    kinds admitted ("person", "agent", "client"). Together they make `requirement`."""

    path: str
    handler: Handler
    methods: tuple[str, ...] = READ_METHODS
    scope: str | None = None
    public: bool = False
    any_scopes: tuple[str, ...] = ()
    all_scopes: tuple[str, ...] = ()
    org: tuple[str, str] | OrgPermission | None = None
    callers: tuple[CallerKind, ...] | None = None
    requirement: Requirement = field(init=False, repr=False, compare=False)
    params: tuple[str, ...] = field(init=False, repr=False, compare=False)  # in path order

    def __post_init__(self) -> None:
        params = tuple(name for _, name in _template(self.path) if name is not None)
        need = requirement(
            self.scope,
            any_scopes=self.any_scopes,
            all_scopes=self.all_scopes,
            org=self.org,
            callers=self.callers,
        )
        if self.public and not need.empty:
            raise ValueError(f"{self.path}: a public route takes no token, so requires nothing")
        if need.org is not None and need.org.param not in params:
            raise ValueError(f"{self.path}: no path parameter {{{need.org.param}}} names the org")
        object.__setattr__(self, "requirement", need)
        object.__setattr__(self, "params", params)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Every route of one path: the methods it takes, and what a wrong method is told."""

    path: str
    routes: tuple[Route, ...]
    by_method: Mapping[str, Route]
    allow: str  # the 405's Allow header: every method the path's routes take
    public: bool  # no method takes a token: a wrong one is a plain 405, before any token
    params: tuple[str, ...]  # the parameters' names, in path order


class _Node:
    """One segment of the trie: literal children, at most one parameter child, and the
    endpoint of the paths that end here."""

    __slots__ = ("endpoint", "literals", "param", "param_node")

    def __init__(self) -> None:
        self.literals: dict[str, _Node] = {}
        self.param: str | None = None
        self.param_node: _Node | None = None
        self.endpoint: Endpoint | None = None


class Routes:
    """The table: routes by path, and what the rest of the Worker derives from it."""

    def __init__(self, *routes: Route) -> None:
        self.routes = routes
        grouped: dict[str, tuple[Route, ...]] = {}
        for route in routes:
            taken = {m for other in grouped.get(route.path, ()) for m in other.methods}
            if taken & set(route.methods):
                raise ValueError(f"{route.path}: a method is declared twice")
            grouped[route.path] = (*grouped.get(route.path, ()), route)
        self._static: dict[str, tuple[Endpoint, Mapping[str, str]]] = {}
        self._matched: dict[str, tuple[Endpoint, Mapping[str, str]]] = {}  # paths with params
        self._root: _Node | None = None
        for path, found in grouped.items():
            endpoint = Endpoint(
                path,
                found,
                {method: route for route in found for method in route.methods},
                ", ".join(method for route in found for method in route.methods),
                all(route.public for route in found),
                found[0].params,
            )
            if endpoint.params:
                self._insert(endpoint)
            else:
                self._static[path] = (endpoint, NO_PARAMS)
        # The scopes our routes check: RFC 9728's scopes_supported.
        self.scopes = tuple(sorted({s for r in routes for s in r.requirement.scopes}))
        # What a CORS preflight may ask for, over all routes (per path would reveal routes).
        self.methods = ", ".join(dict.fromkeys(m for r in routes for m in r.methods))

    def _insert(self, endpoint: Endpoint) -> None:
        node = self._root = self._root or _Node()
        for literal, name in _template(endpoint.path):
            if name is None:
                node = node.literals.setdefault(literal, _Node())
                continue
            if node.param is not None and node.param != name:
                raise ValueError(
                    f"{endpoint.path}: {{{name}}} where another route has {{{node.param}}}"
                )
            node.param = name
            node.param_node = node.param_node or _Node()
            node = node.param_node
        if node.endpoint is not None:  # the same shape under other names was refused above
            raise ValueError(f"{endpoint.path}: the same path as {node.endpoint.path}")
        node.endpoint = endpoint

    def match(self, path: str) -> tuple[Endpoint, Mapping[str, str]] | None:
        """The endpoint a request path reaches and its parameters, decoded; None if none.
        A path with parameters is walked once, then found among the last ones matched."""
        found = self._static.get(path) or self._matched.get(path)
        if found is not None or self._root is None or path[:1] != "/":
            return found
        found = _search(self._root, path)
        if found is not None:
            if len(self._matched) >= MATCHED_PATHS:
                self._matched.clear()
            self._matched[path] = found
        return found


def _search(root: _Node, path: str) -> tuple[Endpoint, Mapping[str, str]] | None:
    """The endpoint a path with parameters reaches in the trie, and its parameters."""
    values: list[str] = []
    endpoint = _walk(root, path[1:].split("/"), 0, values)
    if endpoint is None:
        return None
    names = endpoint.params
    if len(names) == 1:  # the common case, without zip's cost
        return endpoint, MappingProxyType({names[0]: values[0]})
    return endpoint, MappingProxyType(dict(zip(names, values, strict=True)))


def _template(path: str) -> list[tuple[str, str | None]]:
    """A declared path's segments: (literal, None), or ("", name) for `{name}`."""
    if not path.startswith("/"):
        raise ValueError(f"{path!r}: a route's path starts with /")
    segments: list[tuple[str, str | None]] = []
    for segment in path[1:].split("/"):
        param = _PARAM.fullmatch(segment)
        if param is not None:
            segments.append(("", param.group(1)))
        elif "{" in segment or "}" in segment:
            raise ValueError(f"{path}: a parameter is a whole segment, `{{name}}`: {segment!r}")
        else:
            segments.append((segment, None))
    names = [name for _, name in segments if name is not None]
    if len(names) != len(set(names)):
        raise ValueError(f"{path}: a parameter is named twice")
    return segments


def _walk(node: _Node, segments: list[str], index: int, values: list[str]) -> Endpoint | None:
    """Depth first, a literal child before the parameter child: a literal segment wins, and
    the parameter is tried where the literal leads nowhere."""
    if index == len(segments):
        return node.endpoint
    segment = segments[index]
    child = node.literals.get(segment)
    if child is not None:
        found = _walk(child, segments, index + 1, values)
        if found is not None:
            return found
    if node.param_node is not None and segment:
        value = decoded(segment)
        if value is not None:
            values.append(value)
            found = _walk(node.param_node, segments, index + 1, values)
            if found is not None:
                return found
            values.pop()
    return None


def decoded(segment: str) -> str | None:
    """A path segment percent-decoded once, as strict UTF-8; None if it does not decode."""
    if "%" not in segment:
        return segment
    if _BAD_ESCAPE.search(segment):
        return None
    try:
        return unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        return None


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
    matched = routes.match(path)
    endpoint, params = matched if matched is not None else (None, NO_PARAMS)
    route = endpoint.by_method.get(request.method) if endpoint is not None else None
    if route is not None and route.public:
        return await _call(route, request, {}, params, path)
    if endpoint is not None and endpoint.public:
        return _not_allowed(endpoint.allow)
    if is_well_known(path):
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
        if endpoint is None:
            reply = json_reply({"error": "not_found"}, 404)
        elif route is None:
            reply = _not_allowed(endpoint.allow)
        else:
            if not route.requirement.empty:
                caller.require(route.requirement, params)
            reply = await _call(route, request, caller.claims, params, path)
    except Denied as denied:
        reply = rejected(denied, verifier, request.url, path)
    return Reply(reply.status, reply.body, {**reply.headers, **NO_STORE})


def _metadata(routes: Routes, request: Request, path: str, site: Site) -> Reply | None:
    """The RFC 9728 document, if this is one of its paths; None for any other path."""
    try:
        settings = site.checked().settings
    except ServerMisconfigured as problem:
        return rejected(problem, None, request.url, path)
    return metadata_answer(settings, path, request.method, request.url, routes.scopes)


def _internal_error(path: str, error: Exception) -> Reply:
    """A bug: answer JSON, log its type, never the token; never kept by a cache."""
    log_event("internal_error", path=path, error=type(error).__name__)
    return json_reply({"error": "internal_error"}, 500, NO_STORE)


def _not_allowed(allow: str) -> Reply:
    return json_reply({"error": "method_not_allowed"}, 405, {"allow": allow})


async def _call(
    route: Route, request: Request, claims: Claims, params: Mapping[str, str], path: str
) -> Reply:
    """The handler's Reply (it may be sync or async); a body it cannot take is a 400 or 413."""
    if params:  # a copy with the params, built directly: dataclasses.replace costs 5x more
        request = Request(
            request.method,
            request.url,
            request.authorization,
            request.dpop,
            request.origin,
            request.access_control_request_method,
            request.body,
            request.content_length,
            params,
        )
    try:
        result = route.handler(request, claims)
        return result if isinstance(result, Reply) else await result
    except BadBody as bad:
        log_event("request_rejected", status=bad.status, reason=bad.reason, path=path)
        return json_reply({"error": bad.error}, bad.status)
