"""authpi_worker.starlette on a plain Starlette app (tests/pyodide/asgi_app.py, which the
Pyodide ASGI stage also runs): each answer equals the core's, as for FastAPI, and what the
Starlette part adds of its own (protect, verify, allowed methods)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from authpi_worker import Isolate, requirement
from authpi_worker.starlette import AuthPI, Refused, allowed_methods, response_of, urllib_fetch
from authpi_worker.testing import Issuer, caller, organization
from tests.conftest import Call, Clock
from tests.pyodide import asgi_app
from tests.support.asgi import MATRIX, Both, asgi_client, matrix
from tests.support.issuer import FakeIssuer


@pytest.fixture
def auth(env: dict[str, object], clock: Clock) -> Iterator[AuthPI]:
    saved = asgi_app.auth.env, asgi_app.auth.isolate
    asgi_app.auth.env = env
    asgi_app.auth.isolate = Isolate(urllib_fetch, clock)
    yield asgi_app.auth
    asgi_app.auth.env, asgi_app.auth.isolate = saved


@pytest.fixture
async def client(auth: AuthPI) -> AsyncIterator[httpx.AsyncClient]:
    async for client in asgi_client(asgi_app.app):
        yield client


@pytest.mark.parametrize("name", MATRIX)
async def test_each_answer_equals_the_cores(
    call: Call, client: httpx.AsyncClient, issuer: FakeIssuer, name: str
) -> None:
    path, options = matrix(issuer)[name]
    ours, core = await Both(call, client)(path, **options)
    assert ours == core


@pytest.mark.parametrize(
    ("kind", "scopes", "method", "status"),
    [
        ("person", ("reports:read",), "GET", 200),
        ("agent", ("reports:read",), "GET", 200),
        ("client", ("reports:read",), "GET", 403),
        ("person", ("reports:write",), "POST", 201),
        ("agent", ("reports:write",), "POST", 403),
    ],
)
async def test_the_organization_routes(
    client: httpx.AsyncClient,
    issuer: FakeIssuer,
    kind: str,
    scopes: tuple[str, ...],
    method: str,
    status: int,
) -> None:
    token = issuer.mint(**caller(kind), organizations=[organization("org_1", *scopes)])
    response = await client.request(
        method,
        "/orgs/org_1/reports",
        headers={"authorization": f"Bearer {token}"},
        content=b'{"title":"Q3"}' if method == "POST" else None,
    )
    assert response.status_code == status


async def test_a_wrong_method_on_a_protected_path_needs_a_token_first(
    client: httpx.AsyncClient, issuer: FakeIssuer
) -> None:
    assert (await client.delete("/orgs/org_1/reports")).status_code == 401
    answered = await client.delete(
        "/orgs/org_1/reports", headers={"authorization": f"Bearer {issuer.mint()}"}
    )
    assert (answered.status_code, answered.headers["allow"]) == (405, "GET, HEAD, POST")
    assert answered.headers["cache-control"] == "no-store"


def test_allowed_methods_follow_the_main_workers_order() -> None:
    routes = [
        Route("/x", asgi_app.root, methods=["POST"]),
        Route("/x", asgi_app.root, methods=["GET"]),
        Route("/x", asgi_app.root, methods=["PROPFIND"]),
    ]
    assert allowed_methods(routes) == ["GET", "HEAD", "POST", "PROPFIND"]


async def test_verify_in_a_handler_of_ones_own_and_refused_as_a_response() -> None:
    issuer = Issuer()
    auth = AuthPI(env=issuer.env(), fetch=issuer.fetch)
    needed = requirement("read:reports")

    async def handler(request: Request) -> Response:
        try:
            claims = await auth.verify(request, needed)
        except Refused as refused:  # without install(): the refusal is a Reply to send
            return response_of(refused.reply)
        return JSONResponse({"sub": claims["sub"]})

    app = Starlette(routes=[Route("/reports", handler)])
    async for client in asgi_client(app):
        ok = await client.get("/reports", headers=issuer.bearer())
        assert (ok.status_code, ok.json()) == (200, {"sub": "c_demo"})
        refused = await client.get("/reports", headers=issuer.bearer(scope="openid"))
        assert (refused.status_code, refused.json()) == (403, {"error": "insufficient_scope"})
        assert "cache-control" not in refused.headers  # install() adds no-store; this app has none
    assert issuer.fetches == 1


def test_the_metadata_names_the_scopes_protect_declared() -> None:
    assert asgi_app.auth.declared == {"read:reports"}
