"""authpi-worker: a Cloudflare Python Worker that accepts AuthPI access tokens.

The Python port of AuthPI's Cloudflare Workers quickstart. The routes are declared in app.py;
the token rules, the caches, CORS and the RFC 9728 metadata live in `authpi_worker`. This is
the only module here that touches the Workers runtime (with authpi_worker.cloudflare, the
JWKS fetch that any Python Worker can use).
"""

from typing import Any

import js
from pyodide.ffi import to_js
from workers import WorkerEntrypoint

from app import ROUTES
from authpi_worker import Isolate, Reply, Request, dispatch
from authpi_worker.cloudflare import fetch_jwks  # the JWKS through Workers fetch and the edge cache

# What the verifier enforces (authpi_worker.tokens, .dpop): iss one of AUTHPI_ISSUER_URL (and only
# that issuer's keys verify it), aud one of AUTHPI_AUDIENCE, algorithms ES256 / EdDSA (Ed25519) /
# RS256 only, typ at+jwt, exp required, nbf and iat not in the future (AUTHPI_CLOCK_TOLERANCE
# seconds of leeway, default 0), sub required; a token bound to a DPoP key (cnf.jkt) only with a
# valid proof of that key. What each route needs beyond that is declared in app.py.


# Per isolate: the key set, verified tokens and seen DPoP proofs, kept across requests. Empty
# until the first protected request (top-level code runs under the deploy snapshot: no I/O).
ISOLATE = Isolate(fetch_jwks)


class Default(WorkerEntrypoint):
    async def fetch(self, request: Any) -> Any:
        # The JS Request itself: reading the few headers we use costs less than the SDK's
        # wrapper, which rebuilds a message from every header on each access.
        raw = request.js_object
        headers, method = raw.headers, raw.method
        reply = await dispatch(
            ROUTES,
            Request(
                method,
                raw.url,
                authorization=_text(headers.get("authorization")),
                dpop=_text(headers.get("dpop")),
                origin=_text(headers.get("origin")),
                access_control_request_method=_text(headers.get("access-control-request-method")),
                body=request.bytes,  # read only by a handler that wants it
                # Checked before the body is read. A GET's body is not expected (if read, its
                # real length is checked): the hot path is spared one header lookup.
                content_length=None if method in BODILESS else _text(headers.get("content-length")),
            ),
            ISOLATE,
            self.var,
        )
        return _response(reply)

    def var(self, name: str) -> str | int | None:
        # vars are strings, or numbers where wrangler.jsonc writes a JSON number
        value = getattr(self.env, name, None)
        return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    """A header's value; a missing one arrives as JS null, which is not None."""
    return value if isinstance(value, str) else None


def _response(reply: Reply) -> Any:
    """The JS Response, built directly: the SDK's Response converts more than a Reply needs.
    Its init (status and headers) is converted once and kept: most answers repeat one."""
    key = (reply.status, *reply.headers.items())
    init = _INITS.get(key)
    if init is None:
        init = to_js(
            {"status": reply.status, "headers": reply.headers}, dict_converter=js.Object.fromEntries
        )
        if len(_INITS) < MAX_INITS:
            _INITS[key] = init
    return js.Response.new(reply.body or None, init)


BODILESS = ("GET", "HEAD")  # methods whose Content-Length is not looked up

# JS ResponseInit objects by status and headers, made inside requests (never at import: the
# deploy snapshot) and shared by later ones; plain objects, no I/O. A few dozen shapes exist.
MAX_INITS = 64
_INITS: dict[tuple[object, ...], Any] = {}
