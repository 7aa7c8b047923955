"""authpi-worker: a Cloudflare Python Worker that accepts AuthPI access tokens.

The Python port of AuthPI's Cloudflare Workers quickstart. This is the only module that
touches the Workers runtime; the routes and the token rules live in `authpi_worker`.
"""

from typing import Any
from urllib.parse import urlsplit

from workers import Request, Response, WorkerEntrypoint, fetch

from authpi_worker.app import handle
from authpi_worker.auth import Isolate
from authpi_worker.jwks import Fetched

# What the verifier enforces (authpi_worker.tokens): iss == AUTHPI_ISSUER_URL, aud contains
# AUTHPI_AUDIENCE, algorithms ES256 / EdDSA / RS256 only, typ at+jwt, exp required, nbf and
# iat not in the future (AUTHPI_CLOCK_TOLERANCE seconds of leeway, default 0), sub required.


async def fetch_jwks(url: str, edge_ttl: int | None) -> Fetched:
    """The JWKS through the Workers fetch API. With edge_ttl, Cloudflare's edge cache keeps
    one copy per colo for that long (successes only: an error must not be cached); without,
    the request bypasses it (after an unknown kid, so a rotation is seen at once)."""
    cache: dict[str, Any]  # FetchKwargs has no `cache` key yet; workerd supports it
    if edge_ttl:
        cache = {"cf": {"cacheTtlByStatus": {"200-299": edge_ttl, "300-599": -1}}}
    else:
        cache = {"cache": "no-store"}
    response = await fetch(url, headers={"accept": "application/json"}, redirect="manual", **cache)
    body = await response.bytes()
    headers = response.headers
    return Fetched(response.status, body, headers.get("cache-control"), headers.get("age"))


# Per isolate: the key set and verified tokens, kept across requests. Empty until the first
# protected request (top-level code runs under the deploy snapshot: no I/O here).
ISOLATE = Isolate(fetch_jwks)


class Default(WorkerEntrypoint):
    async def fetch(self, request: Request) -> Response:
        path = urlsplit(request.url).path

        def env_var(name: str) -> str | int | None:
            # vars are strings, or numbers where wrangler.jsonc writes a JSON number
            value = getattr(self.env, name, None)
            return value if isinstance(value, str | int) and not isinstance(value, bool) else None

        # / is public; /me needs a valid token (401); /reports also needs read:reports (403).
        reply = await handle(
            path,
            request.headers.get("authorization"),
            lambda: ISOLATE.verifier(env_var),
        )
        return Response(reply.body, status=reply.status, headers=reply.headers)
