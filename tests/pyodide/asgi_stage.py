"""The Pyodide ASGI stage (`make test-pyodide`): authpi_worker.starlette under the production
runtime's Python, through the Workers SDK's own ASGI adapter.

A Starlette app serving the main Worker's routes (tests/pyodide/asgi_app.py) is the Worker's
main module's app (asgi_worker.py: `asgi.fetch(app, request, self.env)`, as the FastAPI example
runs FastAPI). Node runs the npm `pyodide` offline with the exact workers-runtime-sdk, PyJWT,
starlette, anyio, idna and typing_extensions the lock pins, unpacked from the venv (pure-Python
wheels), and tests/pyodide/run.mjs calls `Default.fetch` the way workerd does: real JS Request,
Headers (with the Host header workerd passes on), Response, and JS fetch to the fake issuer.
Each answer (status, headers, body, log lines) must equal what the same app answers under
CPython, called as workers.asgi calls it (the env in scope["env"]), with the signatures
verified for real there.

Limit: no cryptography and no pydantic-core in Pyodide here, so no signature is verified (a
token is a cache hit, primed by asgi_probes.prime, as in the main stage) and no FastAPI runs
(FastAPI's part above Starlette is tests/test_fastapi.py's, under CPython).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from authpi_worker import Isolate
from authpi_worker.starlette import urllib_fetch
from authpi_worker.testing import caller, jkt, make_key, organization, proof
from tests.pyodide import asgi_app, host
from tests.pyodide.host import WORKER_DIR, Outcome, locked_version
from tests.pyodide.pyodide_stage import ORIGIN, Env, Headers, Stage
from tests.support.issuer import FakeIssuer
from tests.support.logs import logged

PROBES = Path(__file__).with_name("asgi_probes.py")
BENCH_PROBES = Path(__file__).with_name("bench_probes.py")  # prime_isolate
HOST = ORIGIN.removeprefix("https://")  # the Host header workerd hands the Worker
APP = "https://app.example.com"
REPORT = b'{"title":"Q3"}'


class AsgiStage(Stage):
    """run.mjs with the ASGI Worker: requests carry a Host header too."""

    def fields(self, authorization: str | None, headers: Headers) -> list[tuple[str, str]]:
        return fields(authorization, headers)


def fields(authorization: str | None, extra: Headers) -> list[tuple[str, str]]:
    sent = [("host", HOST), ("accept", "application/json")]
    if authorization is not None:
        sent.append(("authorization", authorization))
    return sent + list(extra)


def cpython(
    path: str,
    authorization: str | None,
    env: Env,
    *,
    method: str = "GET",
    headers: Headers = (),
    body: bytes | None = None,
) -> Outcome:
    """The same app under CPython, as workers.asgi calls it: the env (an object, as the JS env
    is) in scope["env"], a fresh isolate whose JWKS comes over HTTP and whose signatures are
    checked for real."""
    auth = asgi_app.auth
    saved = auth.env, auth.isolate
    auth.env, auth.isolate = None, Isolate(urllib_fetch)
    workers_env = SimpleNamespace(**{k: v for k, v in env.items() if v is not None})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await asgi_app.app({**scope, "env": workers_env}, receive, send)

    async def request() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as client:
            return await client.request(
                method, path, headers=fields(authorization, headers), content=body
            )

    try:
        with logged() as events:
            response = asyncio.run(request())
    finally:
        auth.env, auth.isolate = saved
    return Outcome(response.status_code, dict(response.headers), response.text, events)


def same_in_both(
    stage: AsgiStage, path: str, authorization: str | None, env: Env, **kw: Any
) -> Outcome:
    in_pyodide = stage.fetch(path, authorization, env, **kw)
    assert in_pyodide == cpython(path, authorization, env, **kw)
    return in_pyodide


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsgiStage]:
    manifest_file = tmp_path_factory.mktemp("pyodide-asgi") / "manifest.json"
    manifest_file.write_text(json.dumps(host.asgi_manifest([PROBES, BENCH_PROBES])))
    running = AsgiStage(manifest_file)
    yield running
    running.finish()


@pytest.fixture
def env(issuer: FakeIssuer) -> Env:
    return {"AUTHPI_ISSUER_URL": issuer.url, "AUTHPI_AUDIENCE": issuer.audience}


@pytest.fixture
def primed(stage: AsgiStage, env: Env) -> Iterator[Any]:
    """prime(token): the token becomes a cache hit of the Pyodide isolate, as if verified."""
    stage.probe("reset_isolate", time.time())

    def prime(token: str) -> str:
        stage.probe("prime", env, token)
        return token

    yield prime
    stage.probe("reset_isolate", time.time())


# --- The runtime ---------------------------------------------------------------------------


def test_runs_starlette_from_the_lock_through_workers_asgi_without_fastapi(
    stage: AsgiStage,
) -> None:
    found = stage.probe("versions")
    assert found["python"].startswith("3.14.") and found["platform"] == "emscripten"
    for name in ("workers-runtime-sdk", "starlette", "anyio", "pyjwt"):
        assert found["packages"][name] == locked_version(name)
    modules = f"{WORKER_DIR}/python_modules"
    assert found["files"] == {
        "asgi_worker": f"{WORKER_DIR}/asgi_worker.py",
        "asgi_app": f"{WORKER_DIR}/asgi_app.py",
        "workers": f"{modules}/workers/__init__.py",
        "starlette": f"{modules}/starlette/__init__.py",
        "anyio": f"{modules}/anyio/__init__.py",
        "authpi_worker.starlette": f"{WORKER_DIR}/authpi_worker/starlette.py",
    }
    assert found["fastapi"] is False  # nothing here needs it
    assert stage.boot["bootFetches"] == []


# --- Without keys: refusals, routing, metadata, CORS -----------------------------------------


@pytest.mark.parametrize(
    ("path", "authorization", "method", "status"),
    [
        ("/", None, "GET", 200),
        ("/", None, "HEAD", 200),
        ("/", None, "POST", 405),
        ("/me", None, "GET", 401),
        ("/me", "Basic ZGVtbzpzZWNyZXQ=", "GET", 401),
        ("/me", "Bearer", "GET", 401),
        ("/me", "Bearer not-a-jws", "GET", 401),
        ("/me", "Bearer a.b.c, Bearer d.e.f", "GET", 401),
        ("/reports", None, "GET", 401),
        ("/admin", None, "GET", 401),
        ("/me", None, "DELETE", 401),
        ("/orgs/org_1/reports", None, "PUT", 401),
        ("/me", None, "OPTIONS", 401),
        ("/.well-known/oauth-protected-resource", None, "GET", 200),
        ("/.well-known/oauth-protected-resource", None, "POST", 405),
    ],
)
def test_answers_that_need_no_key_equal_cpythons(
    stage: AsgiStage,
    env: Env,
    issuer: FakeIssuer,
    path: str,
    authorization: str | None,
    method: str,
    status: int,
) -> None:
    outcome = same_in_both(stage, path, authorization, env, method=method)
    assert outcome.status == status
    assert issuer.jwks_hits == 0


def test_an_unusable_env_is_500_on_protected_routes_read_from_the_js_env(
    stage: AsgiStage, issuer: FakeIssuer
) -> None:
    env: Env = {"AUTHPI_ISSUER_URL": None, "AUTHPI_AUDIENCE": "https://api.example.com"}
    outcome = same_in_both(stage, "/me", "Bearer a.b.c", env)
    assert (outcome.status, outcome.body) == (500, '{"error":"server_misconfigured"}')
    assert [event.get("detail") for event in outcome.events] == ["AUTHPI_ISSUER_URL"]
    assert same_in_both(stage, "/", None, env).status == 200


def test_cors_is_built_from_the_js_envs_value(stage: AsgiStage, env: Env) -> None:
    cors = {**env, "CORS_ALLOWED_ORIGINS": APP}
    preflight: Headers = (("origin", APP), ("access-control-request-method", "GET"))
    allowed = same_in_both(stage, "/me", None, cors, method="OPTIONS", headers=preflight)
    assert (allowed.status, allowed.headers["access-control-allow-origin"]) == (204, APP)
    other: Headers = (("origin", "https://evil.example"), preflight[1])
    refused = same_in_both(stage, "/me", None, cors, method="OPTIONS", headers=other)
    assert (refused.status, refused.body) == (403, '{"error":"cors_origin_not_allowed"}')
    challenged = same_in_both(stage, "/me", None, cors, headers=(("origin", APP),))
    assert challenged.headers["access-control-expose-headers"].startswith("WWW-Authenticate")


# --- With a token (a cache hit in Pyodide, verified under CPython) --------------------------


def test_a_valid_token_reaches_each_route(
    stage: AsgiStage, issuer: FakeIssuer, primed: Any, env: Env
) -> None:
    token = primed(issuer.mint(sub="client_a"))
    me = same_in_both(stage, "/me", f"Bearer {token}", env)
    assert (me.status, me.body) == (200, '{"sub":"client_a","scope":"read:reports"}')
    assert me.headers["cache-control"] == "no-store"
    head = same_in_both(stage, "/me", f"Bearer {token}", env, method="HEAD")
    assert (head.status, head.body) == (200, "")
    assert same_in_both(stage, "/reports", f"Bearer {token}", env).status == 200
    assert same_in_both(stage, "/admin", f"Bearer {token}", env).status == 404
    wrong = same_in_both(stage, "/me", f"Bearer {token}", env, method="DELETE")
    assert (wrong.status, wrong.headers["allow"]) == (405, "GET, HEAD")


def test_a_missing_scope_is_403(
    stage: AsgiStage, issuer: FakeIssuer, primed: Any, env: Env
) -> None:
    token = primed(issuer.mint(scope="read:profile"))
    outcome = same_in_both(stage, "/reports", f"Bearer {token}", env)
    assert (outcome.status, outcome.body) == (403, '{"error":"insufficient_scope"}')
    assert [event["reason"] for event in outcome.events] == ["insufficient_scope"]


@pytest.mark.parametrize(
    ("kind", "scopes", "method", "body", "status"),
    [
        ("person", ("reports:read",), "GET", None, 200),
        ("agent", ("reports:read",), "GET", None, 200),
        ("client", ("reports:read",), "GET", None, 403),
        ("person", ("reports:write",), "POST", REPORT, 201),
        ("person", ("reports:write",), "POST", b"not json", 400),
        ("person", ("reports:write",), "POST", b'{"title":"' + b"x" * 70_000 + b'"}', 413),
        ("agent", ("reports:write",), "POST", REPORT, 403),
    ],
)
def test_the_organization_routes_read_the_path_and_the_body_through_the_adapter(
    stage: AsgiStage,
    issuer: FakeIssuer,
    primed: Any,
    env: Env,
    kind: str,
    scopes: tuple[str, ...],
    method: str,
    body: bytes | None,
    status: int,
) -> None:
    token = primed(issuer.mint(**caller(kind), organizations=[organization("org_1", *scopes)]))
    outcome = same_in_both(
        stage, "/orgs/org_1/reports", f"Bearer {token}", env, method=method, body=body
    )
    assert outcome.status == status


def test_the_dpop_header_is_read_and_judged_through_the_adapter(
    stage: AsgiStage, issuer: FakeIssuer, primed: Any, env: Env
) -> None:
    key = make_key("ES256", "client")
    token = primed(issuer.mint(cnf={"jkt": jkt(key)}))
    missing = same_in_both(stage, "/me", f"DPoP {token}", env)
    assert [event["reason"] for event in missing.events] == ["dpop_proof_missing"]
    two = (("dpop", proof(key, "GET", f"{ORIGIN}/me", token)),) * 2
    repeated = same_in_both(stage, "/me", f"DPoP {token}", env, headers=two)
    assert [event["reason"] for event in repeated.events] == ["dpop_proof_repeated"]
    as_bearer = same_in_both(stage, "/me", f"Bearer {token}", env)
    assert [event["reason"] for event in as_bearer.events] == ["dpop_bound_token"]


def test_an_unknown_token_fetches_the_jwks_through_js_fetch_then_needs_cryptography(
    stage: AsgiStage, issuer: FakeIssuer, primed: Any, env: Env
) -> None:
    token = f"Bearer {issuer.mint(sub='client_a')}"
    command = stage.command(
        "fetch",
        url=f"{ORIGIN}/me",
        method="GET",
        headers=[list(h) for h in fields(token, ())],
        env=env,
    )
    (sent,) = command["fetches"]  # the default fetcher under Pyodide: authpi_worker.cloudflare
    assert (sent["url"], sent["redirect"]) == (f"{issuer.url}/jwks.json", "manual")
    assert sent["cf"] == {"cacheEverything": True, "cacheTtlByStatus": {"300-599": -1}}  # follow it
    in_pyodide = host.outcome(command["result"], command["output"])
    # PyJWT cannot build the keys here: each is skipped, and a key set with no usable key is the
    # issuer's answer (issue 14), so the token's kid is unknown...
    assert in_pyodide.status == 401
    assert [event["event"] for event in in_pyodide.events][-2:] == [
        "jwks_no_usable_keys",
        "request_rejected",
    ]
    assert in_pyodide.events[-1]["reason"] == "unknown_kid"
    assert cpython("/me", token, env).status == 200  # ...where CPython goes on
