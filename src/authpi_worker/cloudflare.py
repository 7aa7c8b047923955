"""The Workers runtime's side of the key set: the JWKS fetched through the Workers fetch API,
with Cloudflare's edge cache. An integration beside the core, for src/entry.py and for any
Worker of one's own (FastAPI's included); it imports the runtime only when called, so this
module imports anywhere, and the core never imports it."""

from __future__ import annotations

from typing import Any

from authpi_worker.jwks import Fetched


async def fetch_jwks(url: str, edge_ttl: int | None) -> Fetched:
    """The JWKS through the Workers fetch API. With edge_ttl, Cloudflare's edge cache keeps
    one copy per colo for that long (successes only: an error must not be cached); without,
    the request bypasses it (after an unknown kid, so a rotation is seen at once)."""
    from workers import fetch  # the Workers runtime: present only inside workerd / Pyodide

    cache: dict[str, Any]  # FetchKwargs has no `cache` key yet; workerd supports it
    if edge_ttl:
        cache = {"cf": {"cacheTtlByStatus": {"200-299": edge_ttl, "300-599": -1}}}
    else:
        cache = {"cache": "no-store"}
    response = await fetch(url, headers={"accept": "application/json"}, redirect="manual", **cache)
    body = await response.bytes()
    headers = response.headers
    return Fetched(response.status, body, headers.get("cache-control"), headers.get("age"))
