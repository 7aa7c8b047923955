"""The route table and dispatch: methods, HEAD, the 401/403/404/405 split, Allow, cache and
content-type headers, a bug's 500, and adding a route the way the README shows."""

from __future__ import annotations

import json

import pytest

from app import ROUTES, me, reports
from authpi_worker import Claims, Isolate, Reply, Request, Route, Routes, dispatch, json_reply
from tests.conftest import WORKER, Call, body
from tests.support.issuer import FakeIssuer

NOSNIFF = {"x-content-type-options": "nosniff"}


# --- Methods ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"])
async def test_any_other_method_on_the_public_route_is_405_with_allow(
    call: Call, method: str
) -> None:
    reply = await call("/", method=method)
    assert (reply.status, reply.body) == (405, '{"error":"method_not_allowed"}')
    assert reply.headers["allow"] == "GET, HEAD"
    assert "cache-control" not in reply.headers  # depends on no credentials


@pytest.mark.parametrize("path", ["/me", "/reports"])
@pytest.mark.parametrize("method", ["POST", "DELETE", "OPTIONS"])
async def test_a_protected_route_authenticates_before_it_says_405(
    call: Call, issuer: FakeIssuer, path: str, method: str
) -> None:
    anonymous = await call(path, method=method)
    assert anonymous.status == 401  # an anonymous caller learns nothing about routes
    assert "allow" not in anonymous.headers
    no_scope = await call(path, issuer.mint(scope="read:profile"), method=method)
    assert (no_scope.status, no_scope.headers["allow"]) == (405, "GET, HEAD")  # whatever scopes
    assert body(no_scope) == {"error": "method_not_allowed"}
    assert no_scope.headers["cache-control"] == "no-store"


async def test_an_options_request_without_origin_is_not_a_preflight(call: Call) -> None:
    """Only OPTIONS with Origin and Access-Control-Request-Method is answered before auth."""
    assert (await call("/me", method="OPTIONS", preflight="GET")).status == 401
    assert (await call("/me", method="OPTIONS", origin="https://app.example")).status == 401


@pytest.mark.parametrize("path", ["/", "/me", "/reports", "/no-such-route"])
async def test_head_gets_the_get_status_and_headers_without_a_body(
    call: Call, issuer: FakeIssuer, path: str
) -> None:
    token = issuer.mint()
    get, head = await call(path, token), await call(path, token, method="HEAD")
    assert (head.status, head.headers, head.body) == (get.status, get.headers, "")
    assert get.body  # GET itself has one


async def test_head_without_a_token_is_a_bodiless_401(call: Call) -> None:
    reply = await call("/me", method="HEAD")
    assert (reply.status, reply.body) == (401, "")
    assert reply.headers["www-authenticate"].startswith("Bearer ")


# --- Response headers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "scope", "status"),
    [
        ("/me", None, 401),
        ("/me", "read:reports", 200),
        ("/reports", "read:profile", 403),
        ("/reports", "read:reports", 200),
        ("/no-such-route", "read:reports", 404),
        ("/no-such-route", None, 401),
    ],
)
async def test_every_answer_that_depends_on_authorization_is_no_store(
    call: Call, issuer: FakeIssuer, path: str, scope: str | None, status: int
) -> None:
    reply = await call(path, issuer.mint(scope=scope) if scope else None)
    assert reply.status == status
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["x-content-type-options"] == "nosniff"


async def test_the_public_route_keeps_no_cache_header(call: Call) -> None:
    reply = await call("/")
    assert reply.headers == {"content-type": "application/json", **NOSNIFF}


async def test_a_503_and_a_500_on_protected_routes_are_no_store_too(
    call: Call, issuer: FakeIssuer, env: dict[str, object]
) -> None:
    issuer.faults.status = 500
    unavailable = await call("/me", issuer.mint())
    assert (unavailable.status, unavailable.headers["cache-control"]) == (503, "no-store")
    env["AUTHPI_DPOP"] = "sometimes"
    broken = await call("/me", issuer.mint())
    assert (broken.status, broken.headers["cache-control"]) == (500, "no-store")


# --- The table ---------------------------------------------------------------------------


def test_the_quickstarts_routes_and_what_each_needs() -> None:
    table = [(r.path, r.methods, r.public, r.scope) for r in ROUTES.routes]
    assert table == [
        ("/", ("GET", "HEAD"), True, None),
        ("/me", ("GET", "HEAD"), False, None),
        ("/reports", ("GET", "HEAD"), False, "read:reports"),
    ]
    assert ROUTES.scopes == ("read:reports",)
    assert ROUTES.methods == "GET, HEAD"


def test_a_method_declared_twice_for_a_path_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        Routes(Route("/me", me), Route("/me", reports, methods=("GET",)))


async def create_report(request: Request, claims: Claims) -> Reply:
    """The README's example: an async handler that reads the JSON body it is sent."""
    report = json.loads(await request.body() or b"{}")
    return json_reply({"created": report.get("title"), "by": claims["sub"]}, 201)


# The README's example, word for word: one entry and one handler.
WITH_WRITES = Routes(
    *ROUTES.routes,
    Route("/reports", create_report, methods=("POST",), scope="write:reports"),
)


@pytest.fixture
def write(isolate: Isolate, env: dict[str, object]) -> Call:
    async def call(method: str, token: str | None = None, payload: bytes = b"") -> Reply:
        async def body() -> bytes:
            return payload

        authorization = f"Bearer {token}" if token else None
        request = Request(method, f"{WORKER}/reports", authorization, body=body)
        return await dispatch(WITH_WRITES, request, isolate, env.get)

    return call


async def test_adding_a_protected_route_is_one_entry_and_one_handler(
    write: Call, issuer: FakeIssuer
) -> None:
    token = issuer.mint(sub="writer", scope="write:reports")
    created = await write("POST", token, b'{"title": "Q3"}')
    assert (created.status, body(created)) == (201, {"created": "Q3", "by": "writer"})
    assert created.headers["cache-control"] == "no-store"
    readonly = await write("POST", issuer.mint(scope="read:reports"))
    assert readonly.status == 403
    assert 'scope="write:reports"' in readonly.headers["www-authenticate"]
    assert (await write("POST")).status == 401
    # The existing GET is untouched, and Allow, the scopes and CORS methods follow the table.
    assert (await write("GET", issuer.mint(scope="read:reports"))).status == 200
    deleted = await write("DELETE", issuer.mint(scope="write:reports"))
    assert (deleted.status, deleted.headers["allow"]) == (405, "GET, HEAD, POST")
    assert WITH_WRITES.scopes == ("read:reports", "write:reports")
    assert WITH_WRITES.methods == "GET, HEAD, POST"


async def test_a_public_method_beside_a_protected_one_needs_no_token(
    isolate: Isolate, env: dict[str, object]
) -> None:
    """GET public, POST protected on one path: anonymous GET is 200, anonymous POST 401."""
    table = Routes(
        Route("/items", lambda request, claims: json_reply({"items": []}), public=True),
        Route("/items", create_report, methods=("POST",), scope="write:items"),
    )

    async def send(method: str) -> Reply:
        return await dispatch(table, Request(method, f"{WORKER}/items"), isolate, env.get)

    assert (await send("GET")).status == 200
    assert (await send("POST")).status == 401
    assert (await send("PUT")).status == 401  # a token first, as the path has a protected route


async def test_a_bug_in_a_handler_is_a_json_500_that_never_logs_the_token(
    isolate: Isolate, env: dict[str, object], issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(request: Request, claims: Claims) -> Reply:
        raise KeyError("boom")

    table = Routes(Route("/broken", broken))
    token = issuer.mint()
    reply = await dispatch(
        table, Request("GET", f"{WORKER}/broken", f"Bearer {token}"), isolate, env.get
    )
    assert (reply.status, reply.body) == (500, '{"error":"internal_error"}')
    assert reply.headers["cache-control"] == "no-store"
    err = capsys.readouterr().err
    events = [json.loads(line) for line in err.splitlines()]
    assert events == [{"event": "internal_error", "path": "/broken", "error": "KeyError"}]
    assert token not in err and token.split(".")[2] not in err


@pytest.mark.parametrize("path", ["/me/", "/ME", "//me", "/me/x", "/reports%2F", ""])
async def test_paths_match_exactly(call: Call, issuer: FakeIssuer, path: str) -> None:
    reply = await call(path, issuer.mint())
    assert reply.status == (200 if path == "" else 404)  # an empty path is /, as URLs have it
