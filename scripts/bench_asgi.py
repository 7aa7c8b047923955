"""The ASGI rows of `make bench` (issue 16): what the FastAPI and Starlette integrations add to
a request, each beside the same request without authentication, in alternating rounds.

- CPython, in-process ASGI (no HTTP client, no server): a FastAPI app with auth.install(app),
  `GET /me` through `Depends(auth.claims)` with a cached token, against the same route without
  the dependency (`GET /open`, same body); beside them, a route whose dependency returns the
  claims from a constant (what FastAPI's Depends costs by itself), and /open in an app without
  install() (what install's middleware costs every request).
- Pyodide (bench/pyodide-bench.mjs with the ASGI stage's manifest): tests/pyodide/asgi_app.py's
  Starlette app through the SDK's workers.asgi, `GET /me` with a cached token (primed: no
  cryptography there) against `GET /` of the same app through the same adapter. Each first
  answer must equal CPython's.

Targets: each /me at most MAX_OVER_OPEN times its unauthenticated twin.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI

from authpi_worker.config import AUDIENCE_VAR, ISSUER_VAR
from authpi_worker.fastapi import AuthPI, Claims
from authpi_worker.jwks import Edge, Fetched, Fetcher
from authpi_worker.testing import make_key, mint
from authpi_worker.testing.tokens import AUDIENCE
from scripts.bench_child import BenchError, NodeChild, Timing
from tests.pyodide import asgi_app, host
from tests.support.node import NoNode

SCRIPT = host.PROJECT / "bench" / "pyodide-bench.mjs"
PROBES = (host.HERE / "asgi_probes.py", host.HERE / "bench_probes.py")
ORIGIN = "https://authpi-worker.example"
ISSUER = "https://idp.authpi.com/iss_bench"  # never contacted: the key set is served from memory
HOST = ("host", "authpi-worker.example")
ACCEPT = ("accept", "application/json")

CPYTHON_BATCH = 2000  # in-process requests per measurement: ~0.1-0.2 s each
PYODIDE_BATCH = 100  # requests through workers.asgi per measurement
MAX_OVER_OPEN = 1.15  # a cached /me may cost at most 15% more than the same route without auth

# results.json "asgi" fields → (title, twin it is compared with, or None)
CPYTHON_FIELDS = {
    "fastapi_me_cached_us": "FastAPI GET /me, Depends(auth.claims), cached",
    "fastapi_open_us": "FastAPI GET /open, same app, no dependency",
    "fastapi_dependency_us": "FastAPI GET /dependency, a constant Depends()",
    "fastapi_bare_open_us": "FastAPI GET /open, app without install()",
}
PYODIDE_FIELDS = {
    "pyodide_asgi_me_cached_us": "Starlette GET /me via workers.asgi, cached",
    "pyodide_asgi_root_us": "Starlette GET / via workers.asgi",
}
TARGETS = {
    "fastapi_me_cached_us": "fastapi_open_us",
    "pyodide_asgi_me_cached_us": "pyodide_asgi_root_us",
}
# Not a target, what explains the first: FastAPI's own cost of any dependency is most of it.
EXPLAINED = ("fastapi_me_cached_us", "fastapi_dependency_us")


def fastapi_apps(env: dict[str, str], fetch: Fetcher) -> tuple[FastAPI, FastAPI]:
    """(installed, bare): /me behind the dependency, /open without, in an app with install();
    /open alone in an app without it."""
    auth = AuthPI(env=env, fetch=fetch)
    installed, bare = FastAPI(), FastAPI()
    auth.install(installed)

    @installed.get("/me")
    async def me(claims: Claims = Depends(auth.claims)) -> dict[str, Any]:  # noqa: B008
        return {"sub": claims["sub"], "scope": claims["scope"]}

    async def constant() -> dict[str, Any]:
        return {"sub": "c_bench", "scope": "read:reports"}

    @installed.get("/dependency")
    async def dependency(claims: dict[str, Any] = Depends(constant)) -> dict[str, Any]:  # noqa: B008
        return {"sub": claims["sub"], "scope": claims["scope"]}

    for app in (installed, bare):

        @app.get("/open")
        async def open_route() -> dict[str, Any]:
            return {"sub": "c_bench", "scope": "read:reports"}

    return installed, bare


def scope_for(path: str, headers: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """An ASGI HTTP scope as uvicorn makes one."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.encode(), v.encode()) for k, v in headers],
        "server": ("authpi-worker.example", 443),
        "client": ("127.0.0.1", 50000),
    }


async def call(app: Any, scope: dict[str, Any]) -> tuple[int, bytes]:
    """One request in-process: (status, body)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(dict(scope), receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def time_calls(app: Any, scope: dict[str, Any], count: int, status: int) -> Timing:
    gc.collect()
    gc.disable()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            got, _ = await call(app, scope)
            if got != status:
                raise BenchError(f"{scope['path']} answered {got}, not {status}")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        gc.enable()
    return Timing(wall / count * 1e6, cpu / count * 1e6)


class AsgiBench:
    """Both sides, set up and checked: the FastAPI apps in this process, and the Starlette
    Worker in a Node child."""

    def __init__(
        self, node: Sequence[str], env: dict[str, str], fetch: Fetcher, token: str, scratch: Path
    ) -> None:
        self.env, self.fetch, self.token = env, fetch, token
        self.installed, self.bare = fastapi_apps(env, fetch)
        bearer = ("authorization", f"Bearer {token}")
        self.scopes = {
            "fastapi_me_cached_us": (self.installed, scope_for("/me", [HOST, ACCEPT, bearer])),
            "fastapi_open_us": (self.installed, scope_for("/open", [HOST, ACCEPT])),
            "fastapi_dependency_us": (self.installed, scope_for("/dependency", [HOST, ACCEPT])),
            "fastapi_bare_open_us": (self.bare, scope_for("/open", [HOST, ACCEPT])),
        }
        self.requests = {
            "pyodide_asgi_me_cached_us": ("/me", [HOST, ACCEPT, bearer]),
            "pyodide_asgi_root_us": ("/", [HOST, ACCEPT]),
        }
        cases = {
            "origin": ORIGIN,
            "env": env,
            "cached_tokens": [token],
            "fresh": [],
            "requests": {
                field: {"path": path, "headers": pairs}
                for field, (path, pairs) in self.requests.items()
            },
        }
        (scratch / "asgi-cases.json").write_text(json.dumps(cases))
        manifest = host.asgi_manifest(PROBES)
        (scratch / "asgi-manifest.json").write_text(json.dumps(manifest))
        self._child = NodeChild(
            node, SCRIPT, scratch / "asgi-manifest.json", scratch / "asgi-cases.json"
        )
        self.ready = self._child.ready

    async def check(self) -> None:
        """The CPython answers are the expected ones, and each first Pyodide answer equals
        what the same Starlette app answers under CPython (signature verified there)."""
        for field, (app, scope) in self.scopes.items():
            status, body = await call(app, scope)
            if status != 200 or b'"sub"' not in body:
                raise BenchError(f"{field}: CPython answered {status} {body!r}")
        auth = asgi_app.auth
        saved = auth.env, auth.isolate
        auth.env = self.env
        auth.isolate = type(auth.isolate)(self.fetch)
        try:
            for field, (path, pairs) in self.requests.items():
                status, body = await call(asgi_app.app, scope_for(path, pairs))
                answer = self.ready["answers"][field]
                in_pyodide = host.outcome(answer["response"], answer["output"])
                if (in_pyodide.status, in_pyodide.body.encode()) != (status, body) or status != 200:
                    raise BenchError(
                        f"{field}: Pyodide answered {in_pyodide}, CPython {status} {body!r}"
                    )
        finally:
            auth.env, auth.isolate = saved

    async def measure(self, field: str) -> Timing:
        if field in self.scopes:
            app, scope = self.scopes[field]
            return await time_calls(app, scope, CPYTHON_BATCH, 200)
        return self._child.time("FETCH", field, PYODIDE_BATCH)

    def close(self) -> None:
        self._child.close()


async def run(
    node: Sequence[str], env: dict[str, str], fetch: Fetcher, token: str, rounds: int
) -> dict[str, dict[str, float]]:
    """Every ASGI measurement once per round, the order reversed every other round: the
    medians (µs per request) on the wall clock and in CPU time."""
    fields = (*CPYTHON_FIELDS, *PYODIDE_FIELDS)
    samples: dict[str, list[Timing]] = {field: [] for field in fields}
    with tempfile.TemporaryDirectory() as scratch:
        bench = AsgiBench(node, env, fetch, token, Path(scratch))
        try:
            await bench.check()
            print("asgi rows ready", file=sys.stderr)
            for number in range(rounds):
                for field in fields if number % 2 == 0 else fields[::-1]:
                    samples[field].append(await bench.measure(field))
                print(f"  asgi round {number + 1}/{rounds}", end="\r", file=sys.stderr, flush=True)
            print(file=sys.stderr)
        finally:
            bench.close()
    return {
        clock: {
            field: round(statistics.median(getattr(t, clock) for t in timings), 2)
            for field, timings in samples.items()
        }
        for clock in ("wall", "cpu")
    }


def report(medians: dict[str, dict[str, float]], rounds: int) -> list[str]:
    """The rows, wall / CPU, and the targets."""
    wall, cpu = medians["wall"], medians["cpu"]
    lines = [
        f"ASGI integrations (issue 16), medians of {rounds} alternating rounds "
        f"({CPYTHON_BATCH} in-process requests, or {PYODIDE_BATCH} through workers.asgi in "
        "Pyodide, each), wall / CPU:",
    ]
    for field, title in {**CPYTHON_FIELDS, **PYODIDE_FIELDS}.items():
        lines.append(f"  {title:52}{wall[field]:9.1f} /{cpu[field]:9.1f} µs")
    for field, twin in TARGETS.items():
        on_wall, on_cpu = wall[field] / wall[twin], cpu[field] / cpu[twin]
        ok = "met" if on_wall <= MAX_OVER_OPEN and on_cpu <= MAX_OVER_OPEN else "MISSED"
        lines.append(
            f"  target {field} / {twin} ≤ {MAX_OVER_OPEN:.2f}: "
            f"{on_wall:.3f} wall, {on_cpu:.3f} CPU ({ok})"
        )
    field, twin = EXPLAINED
    lines.append(
        f"  (not a target) {field} / {twin}, what the verification adds to a dependency: "
        f"{wall[field] / wall[twin]:.3f} wall, {cpu[field] / cpu[twin]:.3f} CPU"
    )
    return lines


def rows(node: str | None, rounds: int) -> dict[str, dict[str, float]]:
    """Everything the ASGI rows need, made here (an ES256 key whose JWKS is served from memory,
    a cached token), measured: the medians, wall and CPU."""
    key = make_key("ES256", "es256-asgi-bench")
    document = json.dumps({"keys": [key.jwk()]}).encode()

    async def fetch(url: str, edge: Edge) -> Fetched:
        return Fetched(200, document, "public, max-age=86400")  # fresh for the whole run

    token = mint(key, ISSUER, AUDIENCE, exp=int(time.time()) + 3600)
    env = {ISSUER_VAR: ISSUER, AUDIENCE_VAR: AUDIENCE}
    try:
        node_argv = host.node_command(node)
    except NoNode as missing:
        raise BenchError(str(missing)) from None
    return asyncio.run(run(node_argv, env, fetch, token, rounds))


def main() -> int:
    """The ASGI rows alone: `python -m scripts.bench_asgi [ROUNDS]` (make bench runs them
    after the others, with its rounds)."""
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 11
    try:
        medians = rows(os.environ.get("NODE"), rounds)
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    print("\n".join(report(medians, rounds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
