"""FastAPI behind AuthPI access tokens, on Python Workers (workers.asgi) and on CPython servers.

    auth = AuthPI()                        # module level: the isolate's caches
    app = FastAPI()
    auth.install(app)                      # CORS, RFC 9728 metadata, JSON 404/405/500, OpenAPI

    @app.get("/reports")
    async def reports(claims: Claims = Security(auth.claims, scopes=["read:reports"])): ...

    @app.get("/orgs/{org_id}/reports")
    async def org(org_id: str, claims: Claims = Depends(
        auth.require(org=("org_id", "reports:read"), callers=("person", "agent")))): ...

The verdicts are the core's (authpi_worker.starlette, which this builds on): 401 for a missing
or bad token, 403 for a missing scope only once the token is valid, DPoP with the request's
method and full URL. OpenAPI gets two security schemes: an HTTP bearer scheme (Swagger UI's
Authorize takes a pasted token), which the dependencies themselves are to FastAPI, and an
OAuth2 client-credentials flow added when /openapi.json is served, with its tokenUrl
`{issuer}/token` (on Workers the issuer is known only from the request's env).
"""

# No `from __future__ import annotations`: FastAPI before 0.120 cannot resolve the string
# annotations of a callable instance's __call__ (Verified's), and would take them for query
# parameters.
import copy
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from fastapi import Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.exception_handlers import http_exception_handler
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.routing import APIRoute
from fastapi.security import SecurityScopes
from fastapi.security.base import SecurityBase
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authpi_worker import (
    CallerKind,
    Claims,
    Fetcher,
    OrgPermission,
    Requirement,
    ServerMisconfigured,
    requirement,
)
from authpi_worker.starlette import PROTECTED, fetch_jwks
from authpi_worker.starlette import AuthPI as StarletteAuthPI

__all__ = ["AuthPI", "Claims"]

BEARER = "AuthPI"  # the OpenAPI name of the bearer scheme (Swagger UI's Authorize lists it)
CLIENT_CREDENTIALS = "AuthPIClientCredentials"  # and of the OAuth2 client-credentials flow
TOKEN_PATH = "/token"  # noqa: S105 - AuthPI's token endpoint, below the issuer URL (a path)
MAX_DOCUMENTS = 16  # served OpenAPI documents kept, by issuer and root path; one in production
BEARER_HELP = (
    "An AuthPI access token (RFC 9068), sent as `Authorization: Bearer <token>`. A DPoP-bound "
    "token goes as `Authorization: DPoP <token>` with a `DPoP` proof (RFC 9449), which Swagger "
    "UI cannot make."
)
CLIENT_CREDENTIALS_HELP = (
    "AuthPI's client_credentials grant (RFC 6749 §4.4), for an M2M client. Swagger UI runs it "
    "from the browser: the issuer's token endpoint must allow this page's origin (CORS)."
)

Dependency = Callable[..., Awaitable[Claims]]


class Verified(SecurityBase):
    """A dependency returning the verified claims that meet its requirement and every scope
    of its SecurityScopes; to FastAPI, also the bearer security scheme it writes into OpenAPI
    (Swagger UI's Authorize). It reads the headers itself: FastAPI's own HTTPBearer would
    refuse with 403, or with 401 but not our challenge. One dependency, not a tree: each level
    of FastAPI's resolution costs more than the cached verification."""

    model = HTTPBearerModel(bearerFormat="JWT", description=BEARER_HELP)
    scheme_name = BEARER

    def __init__(self, auth: StarletteAuthPI, fixed: Requirement) -> None:
        self._auth = auth
        self._fixed = fixed
        self._by_scopes: dict[tuple[str, ...], Requirement | None] = {}
        setattr(self, PROTECTED, fixed)

    async def __call__(self, request: Request, security_scopes: SecurityScopes) -> Claims:
        key = tuple(security_scopes.scopes)
        try:
            needed = self._by_scopes[key]
        except KeyError:
            needed = self._by_scopes[key] = _with_scopes(self._fixed, key)
        return await self._auth.verify(request, needed)


class AuthPI(StarletteAuthPI):
    """The isolate-level object of a FastAPI app: the Starlette part's, plus its dependencies
    and OpenAPI. `client_credentials=False` leaves the OAuth2 flow out of the document."""

    def __init__(
        self,
        *,
        env: Mapping[str, object] | None = None,
        fetch: Fetcher | None = None,
        clock: Callable[[], float] = time.time,
        client_credentials: bool = True,
    ) -> None:
        super().__init__(env=env, fetch=fetch or fetch_jwks, clock=clock)
        self.client_credentials = client_credentials
        self._documents: dict[tuple[str | None, str], bytes] = {}
        # The dependency for any valid token; Security(auth.claims, scopes=[...]) adds scopes.
        self.claims: Dependency = self.require()

    def require(
        self,
        scope: str | None = None,
        *,
        any_scopes: Iterable[str] = (),
        all_scopes: Iterable[str] = (),
        org: tuple[str, str] | OrgPermission | None = None,
        callers: Iterable[CallerKind] | None = None,
    ) -> Dependency:
        """A dependency returning the verified claims once they meet the requirement
        (authorization.requirement's arguments) and every scope of its SecurityScopes."""
        fixed = self.declare(
            requirement(
                scope, any_scopes=any_scopes, all_scopes=all_scopes, org=org, callers=callers
            )
        )
        verified = Verified(self, fixed)
        shown = [s for s in fixed.scopes if s not in fixed.any_scopes]  # each one needed
        if not shown:
            return verified

        # Token scopes the requirement names: shown in OpenAPI through Security's scopes.
        async def scoped(claims: Claims = Security(verified, scopes=shown)) -> Claims:  # noqa: B008
            return claims

        setattr(scoped, PROTECTED, fixed)
        return scoped

    def protects(self, route: BaseRoute) -> bool:
        if isinstance(route, APIRoute):
            return _uses_authpi(route.dependant)
        return super().protects(route)

    def scopes(self, routes: Sequence[BaseRoute]) -> Iterable[str]:
        """The declared requirements' scopes and every Security(..., scopes=) of the routes."""
        found = set(self.declared)
        for route in routes:
            if isinstance(route, APIRoute):
                found.update(_security_scopes(route.dependant, []))
        return found

    async def framework_answer(self, request: Request, exc: HTTPException) -> Response:
        return await http_exception_handler(request, exc)

    def install(self, app: Any) -> None:
        """The Starlette part's install, and /openapi.json served with the issuer's tokenUrl."""
        super().install(app)
        url = getattr(app, "openapi_url", None)
        if not url:
            return
        routes: list[BaseRoute] = app.router.routes
        routes[:] = [r for r in routes if not (isinstance(r, Route) and r.path == url)]

        async def openapi(request: Request) -> Response:
            root_path = request.scope.get("root_path", "").rstrip("/")
            body = self._openapi(app, self._issuer(request), root_path)
            return Response(body, media_type="application/json")

        routes.append(Route(url, openapi, include_in_schema=False))

    def _issuer(self, request: Request) -> str | None:
        try:
            return self.isolate.verifier(self.variables(request.scope)).settings.issuers[0]
        except ServerMisconfigured:
            return None

    def _openapi(self, app: Any, issuer: str | None, root_path: str) -> bytes:
        """app.openapi() (FastAPI keeps it), with FastAPI's root-path server, the flow's
        tokenUrl and scopes filled in; without an issuer (variables unusable), no flow."""
        key = (issuer, root_path)
        found = self._documents.get(key)
        if found is not None:
            return found
        schema: dict[str, Any] = copy.deepcopy(app.openapi())
        if root_path and app.root_path_in_servers:
            servers = schema.get("servers", [])
            if root_path not in {s.get("url") for s in servers}:
                schema["servers"] = [{"url": root_path}, *servers]
        _scope_operations(schema, app.routes)
        if self.client_credentials and issuer is not None:
            _add_flow(schema, issuer)
        body = json.dumps(schema, separators=(",", ":"), ensure_ascii=False).encode()
        if len(self._documents) < MAX_DOCUMENTS:
            self._documents[key] = body
        return body


def _with_scopes(fixed: Requirement, scopes: tuple[str, ...]) -> Requirement | None:
    """fixed, plus every scope SecurityScopes names; None when nothing is asked beyond a
    valid token."""
    if not scopes:
        return None if fixed.empty else fixed
    merged = tuple(dict.fromkeys((*fixed.all_scopes, *scopes)))
    return Requirement(fixed.scope, fixed.any_scopes, merged, fixed.org, fixed.callers)


def _uses_authpi(dependant: Dependant) -> bool:
    return any(hasattr(sub.call, PROTECTED) or _uses_authpi(sub) for sub in dependant.dependencies)


def _security_scopes(dependant: Dependant, parent: list[str]) -> list[str]:
    """The scopes Security(..., scopes=) asks of our dependencies, down the tree, in order."""
    # FastAPI 0.163 keeps a dependency's own scopes apart; 0.115 kept them accumulated.
    own = getattr(dependant, "own_oauth_scopes", None) or getattr(
        dependant, "security_scopes", None
    )
    scopes = list(dict.fromkeys([*parent, *(own or ())]))
    found = scopes if hasattr(dependant.call, PROTECTED) else []
    for sub in dependant.dependencies:
        found = [*found, *_security_scopes(sub, scopes)]
    return list(dict.fromkeys(found))


def _scope_operations(schema: dict[str, Any], routes: Sequence[BaseRoute]) -> None:
    """Each operation's bearer requirement lists the scopes its route asks. FastAPI 0.163
    writes them itself; before, it wrote scopes for OAuth2 schemes only."""
    paths = schema.get("paths", {})
    for route in routes:
        if not isinstance(route, APIRoute):
            continue
        scopes = _security_scopes(route.dependant, [])
        for method in route.methods or ():
            operation = paths.get(route.path_format, {}).get(method.lower(), {})
            for needed in operation.get("security", ()):
                if BEARER in needed:
                    needed[BEARER] = scopes


def _add_flow(schema: dict[str, Any], issuer: str) -> None:
    """The OAuth2 client-credentials flow (tokenUrl {issuer}/token, the scopes operations ask)
    beside the bearer scheme: an alternative wherever the bearer scheme is required."""
    schemes = schema.get("components", {}).get("securitySchemes", {})
    if BEARER not in schemes:
        return
    operations = [
        operation
        for path in schema.get("paths", {}).values()
        for operation in path.values()
        if isinstance(operation, dict) and "security" in operation
    ]
    scopes: set[str] = set()
    for operation in operations:
        alternatives = []
        for needed in operation["security"]:
            alternatives.append(needed)
            if BEARER in needed:
                alternatives.append({CLIENT_CREDENTIALS: needed[BEARER]})
                scopes.update(needed[BEARER])
        operation["security"] = alternatives
    schemes[CLIENT_CREDENTIALS] = {
        "type": "oauth2",
        "description": CLIENT_CREDENTIALS_HELP,
        "flows": {
            "clientCredentials": {
                "tokenUrl": issuer.rstrip("/") + TOKEN_PATH,
                "scopes": {scope: scope for scope in sorted(scopes)},
            }
        },
    }
