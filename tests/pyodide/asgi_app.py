"""The main Worker's routes as a Starlette app on authpi_worker.starlette: what the Pyodide ASGI
stage (tests/pyodide/asgi_stage.py) runs through the SDK's workers.asgi, and what
tests/test_starlette.py holds to the core under CPython. Starlette only, no FastAPI: Pyodide
here has no pydantic-core.

Inside Pyodide it is the top-level module `asgi_app` (asgi_worker.py imports it so).
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authpi_worker import Claims
from authpi_worker.starlette import AuthPI

MAX_REPORT_BYTES = 64 * 1024  # a report's JSON body, as in the main Worker

auth = AuthPI()


async def root(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


@auth.protect()
async def me(request: Request, claims: Claims) -> Response:
    scope = claims.get("scope")
    if isinstance(scope, str):
        return JSONResponse({"sub": claims["sub"], "scope": scope})
    return JSONResponse({"sub": claims["sub"]})


@auth.protect("read:reports")
async def reports(request: Request, claims: Claims) -> Response:
    return JSONResponse({"reports": [], "requested_by": claims["sub"]})


@auth.protect(org=("org_id", "reports:read"), callers=("person", "agent"))
async def org_reports(request: Request, claims: Claims) -> Response:
    org = request.path_params["org_id"]
    return JSONResponse({"org": org, "reports": [], "requested_by": claims["sub"]})


@auth.protect(org=("org_id", "reports:write"), callers=("person",))
async def create_report(request: Request, claims: Claims) -> Response:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REPORT_BYTES:
            return JSONResponse({"error": "payload_too_large"}, 413)
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    title = data.get("title") if isinstance(data, dict) else None
    if not isinstance(title, str) or not title.strip():
        return JSONResponse({"error": "invalid_request"}, 400)
    org = request.path_params["org_id"]
    return JSONResponse({"org": org, "title": title, "created_by": claims["sub"]}, 201)


app = Starlette(
    routes=[
        Route("/", root, methods=["GET"]),
        Route("/me", me, methods=["GET"]),
        Route("/reports", reports, methods=["GET"]),
        Route("/orgs/{org_id}/reports", org_reports, methods=["GET"]),
        Route("/orgs/{org_id}/reports", create_report, methods=["POST"]),
    ]
)
auth.install(app)
