"""authpi_worker: verify AuthPI access tokens (and DPoP proofs) in a Cloudflare Python Worker.

Runtime-free: nothing here imports `workers`, `js` or `pyodide`. The API an existing Worker
needs:

- `Isolate(fetch)`: what one isolate keeps between requests (key set, verified tokens, DPoP
  replay cache). Make one at module level; `fetch(url, edge)` returns a `Fetched` (`edge`: what
  a shared cache in front of the issuer may do; authpi_worker.cloudflare.fetch_jwks on Workers).
- `await isolate.authenticate(var, authorization, method=, url=, dpop=, scope=, requirement=,
  params=)`: the token's claims, or a ready refusal `Reply` (status, JSON body, challenge).
- `requirement(scope, any_scopes=, all_scopes=, org=(param, permission), callers=)`: what a
  route needs of a valid token, in AuthPI's model (authpi_worker.authorization).
- `Routes(Route(...), ...)` and `await dispatch(routes, Request(...), isolate, var)`: the
  whole request, with CORS, RFC 9728 metadata, 401/403/404/405 and cache headers. A route's
  path may hold `{name}` parameters (`request.params`) and declare `scope=`, `any_scopes=`,
  `all_scopes=`, `org=(param, permission)` and `callers=`; a handler reads a JSON body with
  `await request.json(max_bytes=...)`, and raises InvalidRequest (400) for one it cannot take.

For integrations beside the core (authpi_worker.starlette, .fastapi, yours), so that their
answers are the core's byte for byte: `Site` (what the variables make of the Worker, from
`isolate.site(var)`), `rejected` (a refusal's Reply and its log line), the refusal types
(`Denied`, `InsufficientScope`, `ServerMisconfigured`), `Fetcher`, `Lookup`, `OrgPermission`,
`log_event`; and the public modules `authpi_worker.metadata` (RFC 9728) and
`authpi_worker.cors` (the CORS policy's constants).
"""

from authpi_worker.auth import Claims, Isolate, Site, rejected
from authpi_worker.authorization import CallerKind, OrgPermission, Requirement, requirement
from authpi_worker.config import Lookup
from authpi_worker.errors import (
    Denied,
    InsufficientScope,
    InvalidRequest,
    PayloadTooLarge,
    ServerMisconfigured,
)
from authpi_worker.jwks import Edge, Fetched, Fetcher
from authpi_worker.logs import log_event
from authpi_worker.responses import Reply, json_reply
from authpi_worker.routes import Request, Route, Routes, dispatch

__all__ = [
    "CallerKind",
    "Claims",
    "Denied",
    "Edge",
    "Fetched",
    "Fetcher",
    "InsufficientScope",
    "InvalidRequest",
    "Isolate",
    "Lookup",
    "OrgPermission",
    "PayloadTooLarge",
    "Reply",
    "Request",
    "Requirement",
    "Route",
    "Routes",
    "ServerMisconfigured",
    "Site",
    "dispatch",
    "json_reply",
    "log_event",
    "rejected",
    "requirement",
]
