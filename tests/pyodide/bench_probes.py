"""What `make bench` runs inside Pyodide beside the Worker (bench/pyodide-bench.mjs loads it
after importing the entry); CPython never imports it.

The one place where the Pyodide rows reach into the core's internals, kept small so it follows
the core when that changes:
- `prime` fills the isolate's key set and verified-token cache without cryptography (there is
  no Pyodide build of it offline), so `/me` with the cached token answers 200 from the cache;
- `core` runs the token rules of a fresh token, everything but the signature.
"""

from __future__ import annotations

import sys
import time
from itertools import cycle, islice
from typing import Any

from authpi_worker.authorization import Entitlements
from authpi_worker.jwks import MAX_MAX_AGE, Cached
from authpi_worker.keys import Key, KeySet
from authpi_worker.tokens import check_claims, check_times, credentials, parse

# What the key set holds in place of a cryptography key. Nothing reads it: a verified-token
# cache hit checks no signature, and the set stays fresh for the whole run (MAX_MAX_AGE), so
# it is never refreshed or fingerprinted (both need cryptography).
NO_KEY = object()


def prime(env: Any, token: str) -> None:
    """Make `token` a cache hit for the Verifier the entry uses with `env` (a dict of the
    Worker's vars), as if an earlier request had verified it: a key set holding the token's
    kid (with NO_KEY, fetched now), and the token's claims, decoded by the core as after a
    good signature, in the verified-token cache (as their Entitlements) under the key set's
    version.

    The token's signature is never checked, so any well-formed token would pass here: make
    bench passes a validly signed one, whose verdict it checks under CPython first."""
    prime_isolate(sys.modules["entry"].ISOLATE, env, token)


def prime_isolate(isolate: Any, env: Any, token: str) -> None:
    """`prime` for any Isolate (the ASGI stage's is its AuthPI object's)."""
    verifier = isolate.verifier(env.get)
    parsed = parse(token)
    if parsed.kid is None:
        raise ValueError("the cached token needs a kid")
    keys = KeySet(by_kid={parsed.kid: Key(parsed.kid, parsed.alg, NO_KEY)}, unnamed=())
    verifier.keys.cached = Cached(keys, fetched_at=time.time(), max_age=MAX_MAX_AGE)
    decoded = parsed.claims
    window = check_times(decoded, verifier.settings.clock_tolerance, time.time())
    verifier.tokens.put(token, Entitlements(decoded), *window, verifier.keys)


def core(env: Any, fresh: list[str], count: int) -> int:
    """count fresh tokens (Authorization headers, cycled) through the header, strict parsing,
    the claims and every claim rule: what a fresh token costs besides the key lookup and the
    signature, with the settings of the Verifier the entry uses with `env`."""
    settings = sys.modules["entry"].ISOLATE.verifier(env.get).settings
    for authorization in islice(cycle(fresh), count):
        check_claims(parse(credentials(authorization)[1]).claims, settings, time.time())
    return count
