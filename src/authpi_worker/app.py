"""The routes, as in the quickstart: `/` is public, `/me` needs a valid token, `/reports`
also needs the read:reports scope. Verification failures are 401, a missing scope is 403."""

from __future__ import annotations

from collections.abc import Callable

from authpi_worker.auth import Verifier
from authpi_worker.errors import Denied, InsufficientScope
from authpi_worker.logs import log_event
from authpi_worker.responses import Reply, json_reply, refusal
from authpi_worker.tokens import has_scope

REPORTS_SCOPE = "read:reports"


async def handle(path: str, authorization: str | None, verifier: Callable[[], Verifier]) -> Reply:
    """One request, from path and Authorization header to a Reply. Never raises."""
    # Public route: no token required
    if path == "/":
        return json_reply({"status": "ok"})
    try:
        # Everything below requires a valid AuthPI access token (401, or 503 without keys)
        claims = await verifier().authenticate(authorization)
        if path == "/me":
            scope = claims.get("scope")  # a non-string scope means no scopes: not shown
            return json_reply(
                {"sub": claims["sub"], "scope": scope}
                if isinstance(scope, str)
                else {"sub": claims["sub"]}
            )
        if path == "/reports":
            # Authenticated is not authorized: check the scope for this route (403)
            if not has_scope(claims, REPORTS_SCOPE):
                raise InsufficientScope(REPORTS_SCOPE)
            return json_reply({"reports": [], "requested_by": claims["sub"]})
        return json_reply({"error": "not_found"}, 404)
    except Denied as denied:
        reply = refusal(denied)
        log_event(
            "request_rejected",
            status=reply.status,
            reason=denied.reason,
            path=path,
            kid=denied.kid,
            detail=getattr(denied, "variable", None),
        )
        return reply
    except Exception as error:  # a bug: answer JSON, log its type, never the token
        log_event("internal_error", path=path, error=type(error).__name__)
        return json_reply({"error": "internal_error"}, 500)
