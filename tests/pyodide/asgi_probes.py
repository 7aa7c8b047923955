"""What the Pyodide ASGI stage looks at inside Pyodide, beside its Worker (asgi_worker.py);
CPython never imports it. run.mjs calls `run(name, args)`, JSON in and out, as with probes.py.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from importlib import metadata
from inspect import isawaitable
from typing import Any

from bench_probes import prime_isolate

import pyodide
from authpi_worker import Isolate
from authpi_worker.starlette import fetch_jwks


class Clock:
    """Moves only when told: Retry-After is then exact."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _auth() -> Any:
    return sys.modules["asgi_app"].auth  # the app's AuthPI object, imported with the Worker


async def run(name: str, args: str) -> str:
    probe: Callable[..., Any] = PROBES[name]
    answer = probe(*json.loads(args))
    if isawaitable(answer):
        answer = await answer
    return json.dumps(answer)


def versions() -> dict[str, Any]:
    """What runs: the interpreter, the packages, and where each module came from."""
    names = ("asgi_worker", "asgi_app", "workers", "starlette", "anyio", "authpi_worker.starlette")
    return {
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "pyodide": pyodide.__version__,
        "packages": {
            name: metadata.version(name)
            for name in ("workers-runtime-sdk", "starlette", "anyio", "pyjwt")
        },
        "files": {name: sys.modules[name].__file__ for name in names},
        "fastapi": "fastapi" in sys.modules or _importable("fastapi"),
    }


def _importable(name: str) -> bool:
    from importlib.util import find_spec

    return find_spec(name) is not None


def reset_isolate(now: float) -> None:
    """The app's AuthPI gets a fresh Isolate, around the default fetcher, on a set clock."""
    _auth().isolate = Isolate(fetch_jwks, Clock(now))


def prime(env: dict[str, Any], token: str) -> None:
    """Make token a cache hit of the app's isolate (no cryptography here to verify it)."""
    prime_isolate(_auth().isolate, env, token)


def isolate_state(env: dict[str, Any]) -> dict[str, Any]:
    keys = _auth().isolate.verifier(env.get).keys
    return {"fetches": keys.fetches, "has_keys": bool(keys.cached)}


PROBES: dict[str, Callable[..., Any]] = {
    probe.__name__: probe for probe in (versions, reset_isolate, prime, isolate_state)
}
