"""Starlette apps (FastAPI's too) behind AuthPI access tokens, on Python Workers and on CPython
servers: the core's verdicts, sent as Starlette responses.

- `auth = AuthPI()` at module level: the isolate-level object (key set, verified tokens, DPoP
  replays). Nothing happens at import: the deploy snapshot takes no I/O.
- `await auth.verify(request, requirement)`: the verified claims, else raises `Refused`
  carrying the core's ready refusal (401, 403, 500, 503), which `install`'s handler sends as is.
- `auth.protect(...)`: a decorator making `handler(request, claims)` a protected endpoint.
- `auth.install(app)`: CORS (Starlette's CORSMiddleware, built per value of
  CORS_ALLOWED_ORIGINS), the RFC 9728 metadata, HEAD for GET routes, `no-store` on every
  answer that read a token, and the core's JSON 404 / 405 / 500.

The variables come from `env=` if given, else the Worker's env (workers.asgi puts it in
`scope["env"]`), else the process environment (uvicorn, gunicorn). Imports Starlette only:
this part runs under Pyodide too, which has no pydantic-core for FastAPI.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The core's public API, its integration part included (authpi_worker's docstring): the
# core's own refusal writer and metadata, so that these answers are the main Worker's, byte
# for byte, and the CORS policy's constants.
from authpi_worker import (
    CallerKind,
    Claims,
    Edge,
    Fetched,
    Fetcher,
    InsufficientScope,
    Isolate,
    Lookup,
    OrgPermission,
    Reply,
    Requirement,
    ServerMisconfigured,
    Site,
    json_reply,
    log_event,
    rejected,
    requirement,
)
from authpi_worker.cors import CORS_MAX_AGE, CORS_REFUSED, EXPOSE_HEADERS
from authpi_worker.metadata import WELL_KNOWN, is_well_known, plain_host
from authpi_worker.metadata import answer as metadata_answer

ENV = "env"  # where workers.asgi puts the Worker's env in the ASGI scope
# The request's own entry in its ASGI scope: None once the token was read (the answer depends
# on it), then (claims, scheme) once verified, so that several dependencies verify it once.
# Not in scope["state"] (request.state): that dict starts as a copy of the lifespan state,
# and a server that failed to copy it would share one request's claims with the next.
STATE = "authpi_worker"
HEAD = "authpi_worker.head"  # a scope key: this GET is a HEAD, its body is dropped
FETCH_TIMEOUT = 5  # seconds urllib may take: the key cache gives up after as long (jose's)
MAX_JWKS_READ = 1 << 20  # bytes read of a JWKS answer: the key set refuses over 512 KiB anyway
# What a browser app may send cross-origin: its token, its DPoP proof, and a JSON body.
ALLOW_HEADERS = ("authorization", "dpop", "content-type")
CORS_PREFLIGHT_REFUSED = "cors_preflight_refused"  # a method or header the policy does not allow
MAX_CORS_POLICIES = 16  # CORS middlewares kept by value; one in production (a deploy is new)
# Allow's order (the main Worker's, which lists a route table's methods as declared).
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
PROTECTED = "__authpi__"  # the attribute marking an endpoint or a dependency as protected

Handler = Callable[[Request, Claims], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


class Refused(Exception):
    """A request the core refuses: `reply` is its answer, challenge and all."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply


def response_of(reply: Reply) -> Response:
    """The Starlette response for a core Reply: its status, body and headers unchanged."""
    return Response(reply.body, reply.status, reply.headers)


# --- The JWKS fetchers --------------------------------------------------------------------


async def fetch_jwks(url: str, edge: Edge) -> Fetched:
    """The default fetcher: the Workers fetch API and its edge cache under Pyodide, else the
    standard library (no redirects, a timeout)."""
    if sys.platform == "emscripten":
        return await _workers_fetch(url, edge)
    return await urllib_fetch(url, edge)


async def _workers_fetch(url: str, edge: Edge) -> Fetched:
    """The one call into authpi_worker.cloudflare (imported here: it needs the runtime)."""
    from authpi_worker.cloudflare import fetch_jwks as cloudflare_fetch

    return await cloudflare_fetch(url, edge)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as is (a 3xx the key cache refuses), never followed: the keys
    come from the issuer's own URL."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


async def urllib_fetch(url: str, edge: Edge) -> Fetched:
    """The JWKS with urllib in a thread (there is no edge cache on CPython)."""
    return await asyncio.to_thread(_get, url)


def _get(url: str) -> Fetched:
    if not url.startswith(("https://", "http://")):  # config allows nothing else; urllib would
        raise ValueError("not an http(s) URL")
    request = urllib.request.Request(url, headers={"accept": "application/json"})  # noqa: S310
    try:
        with _OPENER.open(request, timeout=FETCH_TIMEOUT) as response:
            body, status, headers = response.read(MAX_JWKS_READ), response.status, response.headers
    except urllib.error.HTTPError as error:  # 3xx, 4xx, 5xx: the status says it
        body, status, headers = error.read(MAX_JWKS_READ), error.code, error.headers
    return Fetched(status, body, headers.get("cache-control"), headers.get("age"))


# --- Reading the request ------------------------------------------------------------------


def workers_env(env: Any) -> Lookup:
    """A variable lookup on the Worker's env (a JS object): strings, or numbers where
    wrangler.jsonc writes a JSON number; a missing one is None, never JS null."""

    def var(name: str) -> object:
        value = getattr(env, name, None)
        return value if isinstance(value, str | int) and not isinstance(value, bool) else None

    return var


def credentials(scope: Scope) -> tuple[str | None, str | None, str | None]:
    """Authorization, DPoP and Host. A repeated field is joined with ", ", as the Fetch
    standard's Headers.get joins it on Workers: two proofs, or two tokens, are then refused."""
    authorization = dpop = host = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            text = value.decode("latin-1")
            authorization = text if authorization is None else f"{authorization}, {text}"
        elif name == b"dpop":
            text = value.decode("latin-1")
            dpop = text if dpop is None else f"{dpop}, {text}"
        elif name == b"host" and host is None:
            host = value.decode("latin-1")
    return authorization, dpop, host


def request_url(scope: Scope, host: str | None) -> str:
    """The request's full URL, as the client wrote it (DPoP's htu, the metadata's origin): the
    raw path, and the Host header, or the server's address when that is no plain host."""
    if host is None or not plain_host(host):
        server = scope.get("server")
        if server is None:
            host = "localhost"
        else:
            name, port = server[0], server[1]
            host = f"[{name}]:{port}" if ":" in name else f"{name}:{port}"
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(scope["path"])
    query = scope.get("query_string", b"")
    url = f"{scope.get('scheme', 'http')}://{host}{path}"
    return f"{url}?{query.decode('latin-1')}" if query else url


def _path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    return raw.decode("latin-1") if raw else quote(scope["path"])


def _method(scope: Scope) -> str:
    return "HEAD" if scope.get(HEAD) else str(scope["method"])


def _scheme(authorization: str | None) -> str:
    """The scheme a verified token came under: the challenge of a later 403 answers in it."""
    return "DPoP" if (authorization or "")[:4].lower() == "dpop" else "Bearer"


# --- The isolate-level object -------------------------------------------------------------


class AuthPI:
    """What a Starlette app keeps per isolate (one per process on CPython): the core's Isolate
    and where the variables come from. `isolate` and `env` may be swapped (tests do)."""

    def __init__(
        self,
        *,
        env: Mapping[str, object] | None = None,
        fetch: Fetcher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.env = env
        self.isolate = Isolate(fetch or fetch_jwks, clock)
        self.declared: set[str] = set()  # token scopes named by requirements: scopes_supported

    def variables(self, scope: Scope) -> Lookup:
        """Where this request's variables are read: env=, the Worker's env, os.environ."""
        if self.env is not None:
            return self.env.get
        env = scope.get(ENV)
        return os.environ.get if env is None else workers_env(env)

    async def verify(self, request: HTTPConnection, needed: Requirement | None = None) -> Claims:
        """The verified claims of this request's token that meet `needed`, else raises Refused.
        The token (and DPoP proof) is verified once per request; a second call with another
        requirement only checks that one against the same claims."""
        scope = request.scope
        found = scope.get(STATE)
        if found is not None:
            return self._authorize(scope, found, needed)
        scope[STATE] = None  # from here the answer depends on the token: no-store
        authorization, dpop, host = credentials(scope)
        url = request_url(scope, host)
        var = self.variables(scope)
        site = self.isolate.site(var)
        if site.cors_misconfigured is not None:  # as the core: a browser app must not half work
            raise Refused(rejected(site.cors_misconfigured, None, url, _path(scope)))
        result = await self.isolate.authenticate(
            var,
            authorization,
            method=_method(scope),
            url=url,
            dpop=dpop,
            requirement=needed,
            params=scope.get("path_params"),
        )
        if isinstance(result, Reply):
            raise Refused(result)
        scope[STATE] = (result, _scheme(authorization))
        return result

    def _authorize(
        self, scope: Scope, found: tuple[Claims, str], needed: Requirement | None
    ) -> Claims:
        claims, scheme = found
        if needed is not None:
            try:
                needed.check(claims, scope.get("path_params"))
            except InsufficientScope as denied:
                denied.scheme = "DPoP" if scheme == "DPoP" else "Bearer"
                verifier = self.isolate.verifier(self.variables(scope))
                url = request_url(scope, credentials(scope)[2])
                raise Refused(rejected(denied, verifier, url, _path(scope))) from None
        return claims

    def declare(self, needed: Requirement) -> Requirement:
        """Note the token scopes a route checks, for the metadata's scopes_supported."""
        self.declared.update(needed.scopes)
        return needed

    def protect(
        self,
        scope: str | None = None,
        *,
        any_scopes: Iterable[str] = (),
        all_scopes: Iterable[str] = (),
        org: tuple[str, str] | OrgPermission | None = None,
        callers: Iterable[CallerKind] | None = None,
    ) -> Callable[[Handler], Endpoint]:
        """A Starlette endpoint from `handler(request, claims)`, called once the token is valid
        and meets the requirement (authorization.requirement's arguments)."""
        needed = self.declare(
            requirement(
                scope, any_scopes=any_scopes, all_scopes=all_scopes, org=org, callers=callers
            )
        )
        checked = None if needed.empty else needed

        def decorate(handler: Handler) -> Endpoint:
            async def endpoint(request: Request) -> Response:
                return await handler(request, await self.verify(request, checked))

            setattr(endpoint, PROTECTED, needed)
            endpoint.__name__ = getattr(handler, "__name__", "endpoint")
            endpoint.__doc__ = handler.__doc__
            return endpoint

        return decorate

    def protects(self, route: BaseRoute) -> bool:
        """Whether a route needs a token (its endpoint came from `protect`)."""
        return hasattr(getattr(route, "endpoint", None), PROTECTED)

    def scopes(self, routes: Sequence[BaseRoute]) -> Iterable[str]:
        """The token scopes the routes check: RFC 9728's scopes_supported."""
        return self.declared

    # --- install ---------------------------------------------------------------------------

    def install(self, app: Any) -> None:
        """CORS, the metadata, HEAD, no-store and the JSON 404/405/500 on a Starlette (or
        FastAPI) app, in one middleware and four exception handlers. Call it once, before the
        app serves."""
        routes: list[BaseRoute] = app.router.routes
        app.add_exception_handler(Refused, self._refused)
        app.add_exception_handler(404, self._not_found)
        app.add_exception_handler(405, self._not_allowed)
        app.add_exception_handler(Exception, self._internal_error)
        app.add_middleware(_Edge, auth=self, routes=routes)

    async def _refused(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return response_of(exc.reply)

    async def _not_found(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if "endpoint" in request.scope:  # a route said 404 itself: the framework's answer
            return await self.framework_answer(request, exc)
        return await self._unknown(request)

    async def _unknown(self, request: Request) -> Response:
        """A path no route serves: 404 to a valid token only, so that an anonymous caller
        learns nothing of the routes (the main Worker's rule)."""
        try:
            await self.verify(request)
        except Refused as refused:
            return response_of(refused.reply)
        return response_of(json_reply({"error": "not_found"}, 404))

    async def _not_allowed(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        scope = request.scope
        found = [r for r in request.app.router.routes if r.matches(scope)[0] != Match.NONE]
        methods = allowed_methods(found)
        if not methods or scope["method"] in methods:  # a handler's own 405
            return await self.framework_answer(request, exc)
        if any(self.protects(route) for route in found):  # a token first, as for a 404
            try:
                await self.verify(request)
            except Refused as refused:
                return response_of(refused.reply)
        reply = json_reply({"error": "method_not_allowed"}, 405, {"allow": ", ".join(methods)})
        return response_of(reply)

    async def framework_answer(self, request: Request, exc: HTTPException) -> Response:
        """What Starlette answers to an HTTPException (the FastAPI subclass: FastAPI's)."""
        if exc.status_code in {204, 304}:
            return Response(status_code=exc.status_code, headers=exc.headers)
        return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)

    async def _internal_error(self, request: Request, exc: Exception) -> Response:
        """A bug: JSON, its type logged, never the token, never kept by a cache."""
        log_event("internal_error", path=_path(request.scope), error=type(exc).__name__)
        return response_of(
            json_reply({"error": "internal_error"}, 500, {"cache-control": "no-store"})
        )

    def metadata(self, scope: Scope, routes: Sequence[BaseRoute]) -> Response | None:
        """The RFC 9728 document at the well-known path (and the path-suffixed one when
        AUTHPI_RESOURCE has a path), as the main Worker serves it; None for any other path
        (then the app's routes, and for no route, a token before the 404)."""
        path = _path(scope)
        if not is_well_known(path):
            return None
        url = request_url(scope, credentials(scope)[2])
        try:
            settings = self.isolate.site(self.variables(scope)).checked().settings
        except ServerMisconfigured as problem:
            return response_of(rejected(problem, None, url, path))
        # HEAD arrives as GET (see _Edge), and is answered as one.
        reply = metadata_answer(settings, path, scope["method"], url, self.scopes(routes))
        return None if reply is None else response_of(reply)


def allowed_methods(routes: Iterable[BaseRoute]) -> list[str]:
    """Every method the routes take, HEAD with GET (install serves it), in METHOD_ORDER."""
    methods: set[str] = set()
    for route in routes:
        methods.update(getattr(route, "methods", None) or ())
    if "GET" in methods:
        methods.add("HEAD")
    ordered = [m for m in METHOD_ORDER if m in methods]
    return ordered + sorted(methods - set(METHOD_ORDER))


# --- Middleware -----------------------------------------------------------------------------


def _edited(headers: Iterable[tuple[bytes, bytes]], touched: bool) -> list[tuple[bytes, bytes]]:
    """no-store when the answer read a token; nosniff on JSON, as every core JSON answer."""
    json_body = False
    sniff = True
    edited = []
    for name, value in headers:
        if touched and name == b"cache-control":
            continue
        if name == b"content-type" and value.startswith(b"application/json"):
            json_body = True
        elif name == b"x-content-type-options":
            sniff = False
        edited.append((name, value))
    if touched:
        edited.append((b"cache-control", b"no-store"))
    if json_body and sniff:
        edited.append((b"x-content-type-options", b"nosniff"))
    return edited


class _Edge:
    """The one middleware install adds, outermost: CORS (Starlette's CORSMiddleware for the
    value CORS_ALLOWED_ORIGINS has in this request, built once per value: on Workers it is
    known only then; preflights answered as the main Worker answers them: 204, or 403 JSON for
    an origin not allowed, logged), then around the app: HEAD served as GET without a body,
    `no-store` on every answer that depends on the token (a shared cache must not keep it),
    nosniff on JSON. One layer, not two: each costs every request."""

    def __init__(self, app: ASGIApp, auth: AuthPI, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.auth = auth
        self.routes = routes
        self.policies: dict[frozenset[str], CORSMiddleware] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        site = self.auth.isolate.site(self.auth.variables(scope))
        if scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                answer = self._preflight(site, headers, scope)
                if answer is not None:
                    await answer(scope, receive, send)
                    return
        origins = site.cors.origins
        if not origins:
            await self.around(scope, receive, send)
            return
        policy = self.policies.get(origins) or self._policy(origins)
        await policy(scope, receive, _vary_origin(send))

    async def around(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The metadata, or the app, with HEAD, no-store and nosniff."""
        head = scope["method"] == "HEAD"
        if head:
            scope = {**scope, "method": "GET", HEAD: True}
        answer = None
        if scope["path"].startswith(WELL_KNOWN):  # cheap: most requests stop here
            answer = self.auth.metadata(scope, self.routes)

        async def edge_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                touched = STATE in scope
                message = {**message, "headers": _edited(message.get("headers", ()), touched)}
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        if answer is not None:
            await answer(scope, receive, edge_send)
            return
        await self.app(scope, receive, edge_send)

    def _policy(self, origins: frozenset[str]) -> CORSMiddleware:
        policy = CORSMiddleware(
            self.around,
            allow_origins=sorted(origins),
            allow_methods=allowed_methods(self.routes),
            allow_headers=ALLOW_HEADERS,
            expose_headers=[name.strip() for name in EXPOSE_HEADERS.split(",")],
            max_age=CORS_MAX_AGE,
        )
        if len(self.policies) < MAX_CORS_POLICIES:
            self.policies[origins] = policy
        return policy

    def _preflight(self, site: Site, headers: Headers, scope: Scope) -> Response | None:
        """A preflight's answer, before any authentication (500 while the CORS variable is
        unusable, as in the core); None without CORS: then an OPTIONS like any other."""
        if site.cors_misconfigured is not None:
            url = request_url(scope, headers.get("host"))
            return response_of(rejected(site.cors_misconfigured, None, url, _path(scope)))
        origins = site.cors.origins
        if not origins:
            return None
        policy = self.policies.get(origins) or self._policy(origins)
        answer = policy.preflight_response(request_headers=headers)
        if answer.status_code == 200:
            kept = {k: v for k, v in answer.headers.items() if k not in _BODY_HEADERS}
            return Response(status_code=204, headers={**kept, "vary": "Origin"})
        allowed = policy.is_allowed_origin(origin=headers["origin"])
        reason = CORS_PREFLIGHT_REFUSED if allowed else CORS_REFUSED
        log_event("request_rejected", status=403, reason=reason, path=_path(scope))
        return response_of(json_reply({"error": reason}, 403, {"vary": "Origin"}))


_BODY_HEADERS = frozenset({"content-length", "content-type"})


def _vary_origin(send: Send) -> Send:
    """While CORS is on every answer varies by Origin, those to no Origin too (the main
    Worker's rule): a shared cache must not hand one origin's answer to another."""

    async def vary_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))
            vary = [value for name, value in headers if name == b"vary"]
            if not any(b"origin" in value.lower() for value in vary):
                if vary:
                    headers = [(n, v) for n, v in headers if n != b"vary"]
                    headers.append((b"vary", b", ".join([*vary, b"Origin"])))
                else:
                    headers.append((b"vary", b"Origin"))
                message = {**message, "headers": headers}
        await send(message)

    return vary_send
