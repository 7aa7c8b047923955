"""The API: each route declared once, as in the quickstart, then per organization.

`/` is public, `/me` needs a valid token (401 without), `/reports` also needs read:reports
(403 without). `/orgs/{org_id}/reports` is AuthPI's multi-org model (docs/authorization.md):
a person or an agent whose membership in org_id grants reports:read may list its reports; only
a person whose membership grants reports:write may add one. Any other method is 405; any other
path 404, once the token is valid.
"""

from __future__ import annotations

from authpi_worker import Claims, InvalidRequest, Reply, Request, Route, Routes, json_reply

REPORTS_SCOPE = "read:reports"
ORG_PARAM = "org_id"  # the path parameter that names the organization
READ_PERMISSION = "reports:read"  # AuthPI's grammar, resource:action, granted per membership
WRITE_PERMISSION = "reports:write"
MAX_REPORT_BYTES = 64 * 1024  # a report's JSON is a title and little else: 64 KiB is ample


def root(request: Request, claims: Claims) -> Reply:
    return json_reply({"status": "ok"})


def me(request: Request, claims: Claims) -> Reply:
    scope = claims.get("scope")  # a non-string scope means no scopes: not shown
    if isinstance(scope, str):
        return json_reply({"sub": claims["sub"], "scope": scope})
    return json_reply({"sub": claims["sub"]})


def reports(request: Request, claims: Claims) -> Reply:
    return json_reply({"reports": [], "requested_by": claims["sub"]})


def org_reports(request: Request, claims: Claims) -> Reply:
    org = request.params[ORG_PARAM]
    return json_reply({"org": org, "reports": [], "requested_by": claims["sub"]})


async def create_org_report(request: Request, claims: Claims) -> Reply:
    report = await request.json(max_bytes=MAX_REPORT_BYTES)  # 400 / 413 raised, and answered
    title = report.get("title") if isinstance(report, dict) else None
    if not isinstance(title, str) or not title:
        raise InvalidRequest("title_missing")
    org = request.params[ORG_PARAM]
    return json_reply({"org": org, "title": title, "created_by": claims["sub"]}, 201)


ROUTES = Routes(
    Route("/", root, public=True),
    Route("/me", me),
    Route("/reports", reports, scope=REPORTS_SCOPE),
    Route(
        "/orgs/{org_id}/reports",
        org_reports,
        org=(ORG_PARAM, READ_PERMISSION),
        callers=("person", "agent"),
    ),
    Route(
        "/orgs/{org_id}/reports",
        create_org_report,
        methods=("POST",),
        org=(ORG_PARAM, WRITE_PERMISSION),
        callers=("person",),  # agents may read, not write
    ),
)
