"""The Workers runtime's side of the key set: the JWKS fetched through the Workers fetch API,
with Cloudflare's edge cache. An integration beside the core, for src/entry.py and for any
Worker of one's own (FastAPI's included); it imports the runtime only when called, so this
module imports anywhere, and the core never imports it."""

from __future__ import annotations

from typing import Any

from authpi_worker.jwks import Edge, Fetched

# Never keep an error at the edge: a cached 404 or 500 would fail every isolate of the colo
# (cacheTtlByStatus: a negative TTL means "do not cache"; matched statuses override the origin).
NO_ERRORS = {"300-599": -1}


def fetch_options(edge: Edge) -> dict[str, Any]:
    """The fetch init for this edge policy. cacheEverything makes a JSON answer cacheable at
    all (by default Cloudflare caches by file extension, and .json is not one; a TTL by status
    does not imply it); with no TTL for 2xx, the edge keeps a success only as the issuer's own
    Cache-Control allows (its s-maxage or max-age, none for no-store, no-cache or private).
    A bypass is `cache: no-store`: neither read from the edge nor stored there."""
    if edge.bypass:
        return {"cache": "no-store"}
    by_status = NO_ERRORS if edge.ttl is None else {"200-299": edge.ttl, **NO_ERRORS}
    return {"cf": {"cacheEverything": True, "cacheTtlByStatus": by_status}}


async def fetch_jwks(url: str, edge: Edge) -> Fetched:
    """The JWKS through the Workers fetch API, Cloudflare's edge cache used as `edge` says,
    redirects not followed."""
    from workers import fetch  # the Workers runtime: present only inside workerd / Pyodide

    # FetchKwargs has no `cache` key yet; workerd supports "no-store" and "no-cache".
    options: Any = fetch_options(edge)
    response = await fetch(
        url, headers={"accept": "application/json"}, redirect="manual", **options
    )
    body = await response.bytes()
    got = response.headers
    return Fetched(response.status, body, got.get("cache-control"), got.get("age"))
