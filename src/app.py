"""The API: each route declared once, as in the quickstart.

`/` is public, `/me` needs a valid token (401 without), `/reports` also needs read:reports
(403 without). Any other method is 405; any other path 404, once the token is valid.
"""

from __future__ import annotations

from authpi_worker import Claims, Reply, Request, Route, Routes, json_reply

REPORTS_SCOPE = "read:reports"


def root(request: Request, claims: Claims) -> Reply:
    return json_reply({"status": "ok"})


def me(request: Request, claims: Claims) -> Reply:
    scope = claims.get("scope")  # a non-string scope means no scopes: not shown
    if isinstance(scope, str):
        return json_reply({"sub": claims["sub"], "scope": scope})
    return json_reply({"sub": claims["sub"]})


def reports(request: Request, claims: Claims) -> Reply:
    return json_reply({"reports": [], "requested_by": claims["sub"]})


ROUTES = Routes(
    Route("/", root, public=True),
    Route("/me", me),
    Route("/reports", reports, scope=REPORTS_SCOPE),
)
