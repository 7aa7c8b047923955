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
"""

from authpi_worker.auth import Claims, Isolate
from authpi_worker.authorization import CallerKind, Requirement, requirement
from authpi_worker.errors import InvalidRequest, PayloadTooLarge
from authpi_worker.jwks import Edge, Fetched
from authpi_worker.responses import Reply, json_reply
from authpi_worker.routes import Request, Route, Routes, dispatch

__all__ = [
    "CallerKind",
    "Claims",
    "Edge",
    "Fetched",
    "InvalidRequest",
    "Isolate",
    "PayloadTooLarge",
    "Reply",
    "Request",
    "Requirement",
    "Route",
    "Routes",
    "dispatch",
    "json_reply",
    "requirement",
]
