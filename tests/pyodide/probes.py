"""What the Pyodide stage looks at inside Pyodide, beside the Worker; CPython never imports it.

run.mjs calls `run(name, args)` after importing the entry: arguments and answers cross the
FFI as JSON text, so no JsProxy or JsNull leaks into the probes themselves.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Callable
from importlib import metadata
from inspect import isawaitable
from typing import Any

from bench_probes import prime  # the bench's: fill the caches without cryptography

import authpi_worker.jwks
import pyodide
from authpi_worker.auth import Isolate
from authpi_worker.jwks import Edge
from authpi_worker.keys import InvalidKeySet, parse_jwk, parse_jwks


class Clock:
    """Moves only when told, like the CPython tests' Clock: Retry-After is then exact."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _entry() -> Any:
    return sys.modules["entry"]  # the main module, imported by run.mjs as workerd does


async def run(name: str, args: str) -> str:
    """Call the probe `name` with the JSON-encoded args; its answer, JSON-encoded."""
    probe: Callable[..., Any] = PROBES[name]
    answer = probe(*json.loads(args))
    if isawaitable(answer):
        answer = await answer
    return json.dumps(answer)


def versions() -> dict[str, Any]:
    """What actually runs: interpreter, packages, and where each module was loaded from."""
    entry, workers, jwt = (sys.modules[name] for name in ("entry", "workers", "jwt"))
    return {
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "pyodide": pyodide.__version__,
        "workers-runtime-sdk": metadata.version("workers-runtime-sdk"),
        "pyjwt": metadata.version("pyjwt"),
        "cryptography": importlib.util.find_spec("cryptography") is not None,
        "files": {m.__name__: m.__file__ for m in (entry, workers, jwt, authpi_worker.jwks)},
    }


def reset_isolate(now: float) -> None:
    """A fresh module-level ISOLATE around the entry's own fetch_jwks, on a settable clock."""
    entry = _entry()
    entry.ISOLATE = Isolate(entry.fetch_jwks, Clock(now))


def isolate_state(env: dict[str, str]) -> dict[str, Any]:
    """The module-level ISOLATE's Verifier for these vars (the one requests use) and its cache."""
    verifier = _entry().ISOLATE.verifier(env.get)
    keys = verifier.keys
    return {"verifier": id(verifier), "fetches": keys.fetches, "has_keys": bool(keys.cached)}


def set_fetch_timeout(seconds: float) -> float:
    """KeyCache reads FETCH_TIMEOUT at each fetch: a short one keeps the timeout case short."""
    previous = authpi_worker.jwks.FETCH_TIMEOUT
    authpi_worker.jwks.FETCH_TIMEOUT = seconds  # type: ignore[assignment]
    return previous


def advance_clock(seconds: float) -> None:
    """Move the clock of the ISOLATE that reset_isolate made."""
    _entry().ISOLATE._clock.now += seconds


async def fetch_jwks(url: str, ttl: int | None) -> dict[str, Any]:
    """The entry's Workers fetch adapter, through JS fetch, given Edge(ttl): what it hands to
    the key cache."""
    fetched = await _entry().fetch_jwks(url, Edge(ttl))
    return {
        "type": type(fetched).__name__,
        "status": fetched.status,
        "status_type": type(fetched.status).__name__,
        "body": fetched.body.decode("utf-8"),
        "body_type": type(fetched.body).__name__,
        "cache_control": fetched.cache_control,
        "cache_control_type": type(fetched.cache_control).__name__,
        "age": fetched.age,
        "age_type": type(fetched.age).__name__,
    }


def parse_keys(body: str) -> dict[str, Any]:
    """How far the key set gets here: each JWK's fate, then the document's (as the key cache
    takes it: a JWKS document is the issuer's answer, usable keys or not)."""
    fates = []
    for jwk in json.loads(body)["keys"]:
        try:
            fates.append(f"usable: {parse_jwk(jwk).kid}")
        except ValueError as refused:
            fates.append(str(refused))
    try:
        document = f"{len(parse_jwks(body.encode()).all())} usable keys"
    except InvalidKeySet as refused:
        document = str(refused)
    return {"keys": fates, "document": document}


PROBES: dict[str, Callable[..., Any]] = {
    probe.__name__: probe
    for probe in (
        versions,
        reset_isolate,
        advance_clock,
        isolate_state,
        set_fetch_timeout,
        fetch_jwks,
        parse_keys,
        prime,
    )
}
