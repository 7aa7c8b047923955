"""The API of the main Worker (src/app.py) in FastAPI: the same routes, statuses, bodies and
headers, with the checks declared as dependencies. Runs on Python Workers (worker.py, through
workers.asgi) and on CPython (`uvicorn api:app`).

`/` is public; `/me` needs a valid token; `/reports` also read:reports; the organization
routes need a membership permission in the organization of the path, and a caller kind.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Security
from fastapi.responses import JSONResponse

from authpi_worker.fastapi import AuthPI, Claims

REPORTS_SCOPE = "read:reports"
MAX_REPORT_BYTES = 64 * 1024  # a report's JSON body: more is 413, as in the main Worker

# Per isolate (per process on CPython): the key set, verified tokens, seen DPoP proofs. Empty
# until the first request that needs them (the deploy snapshot takes no I/O).
auth = AuthPI()
app = FastAPI(title="authpi-worker (FastAPI)", version="0.2.0")
auth.install(app)

ReadsReports = Depends(auth.require(org=("org_id", "reports:read"), callers=("person", "agent")))
WritesReports = Depends(auth.require(org=("org_id", "reports:write"), callers=("person",)))


@app.get("/")
async def root() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/me")
async def me(claims: Annotated[Claims, Depends(auth.claims)]) -> dict[str, Any]:
    scope = claims.get("scope")  # a non-string scope means no scopes: not shown
    if isinstance(scope, str):
        return {"sub": claims["sub"], "scope": scope}
    return {"sub": claims["sub"]}


@app.get("/reports")
async def reports(
    claims: Annotated[Claims, Security(auth.claims, scopes=[REPORTS_SCOPE])],
) -> dict[str, Any]:
    return {"reports": [], "requested_by": claims["sub"]}


@app.get("/orgs/{org_id}/reports")
async def org_reports(org_id: str, claims: Annotated[Claims, ReadsReports]) -> dict[str, Any]:
    return {"org": org_id, "reports": [], "requested_by": claims["sub"]}


@app.post("/orgs/{org_id}/reports", status_code=201)
async def create_report(
    org_id: str, request: Request, claims: Annotated[Claims, WritesReports]
) -> JSONResponse:
    body = await _body(request)
    if body is None:
        return JSONResponse({"error": "payload_too_large"}, 413)
    title = _title(body)
    if title is None:
        return JSONResponse({"error": "invalid_request"}, 400)
    return JSONResponse({"org": org_id, "title": title, "created_by": claims["sub"]}, 201)


async def _body(request: Request) -> bytes | None:
    """The body, read only after the token and its permission passed; None past the limit
    (stopped reading there, whatever Content-Length said)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REPORT_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _title(body: bytes) -> str | None:
    """The report's title: a JSON object's non-empty string "title"; None for anything else."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    title = data.get("title") if isinstance(data, dict) else None
    return title if isinstance(title, str) and title.strip() else None
