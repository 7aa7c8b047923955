"""CORS: off unless configured; preflights answered before authentication; every answer to an
allowed origin readable, challenges included; a malformed setting is a 500 that names it."""

from __future__ import annotations

import pytest

from authpi_worker import Isolate, Request, Route, Routes, dispatch, json_reply
from tests.conftest import WORKER, Call, body
from tests.support.issuer import FakeIssuer
from tests.support.logs import logged

APP = "https://app.example.com"
OTHER = "https://evil.example"
EXPOSED = "WWW-Authenticate, Retry-After, DPoP-Nonce"


@pytest.fixture
def cors(env: dict[str, object]) -> None:
    env["CORS_ALLOWED_ORIGINS"] = f"{APP}, http://localhost:5173"


def cors_headers(headers: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.startswith("access-control-") or k == "vary"}


async def test_off_by_default_no_cors_headers_at_all(call: Call, issuer: FakeIssuer) -> None:
    for reply in (
        await call("/", origin=APP),
        await call("/me", issuer.mint(), origin=APP),
        await call("/me", method="OPTIONS", origin=APP, preflight="GET"),
    ):
        assert cors_headers(reply.headers) == {}
    # Without CORS, a preflight is just an OPTIONS on a protected route: 401.
    assert (await call("/me", method="OPTIONS", origin=APP, preflight="GET")).status == 401


@pytest.mark.usefixtures("cors")
@pytest.mark.parametrize("path", ["/me", "/reports", "/", "/no-such-route"])
async def test_a_preflight_from_an_allowed_origin_is_204_before_any_authentication(
    call: Call, issuer: FakeIssuer, path: str
) -> None:
    reply = await call(path, method="OPTIONS", origin=APP, preflight="GET")
    assert (reply.status, reply.body) == (204, "")
    assert reply.headers == {
        "access-control-allow-origin": APP,
        "access-control-allow-methods": "GET, HEAD, POST",
        "access-control-allow-headers": "authorization, content-type, dpop",
        "access-control-max-age": "600",
        "vary": "Origin",
    }
    assert issuer.jwks_hits == 0  # no key was needed to answer it


@pytest.mark.usefixtures("cors")
@pytest.mark.parametrize(
    "origin",
    [
        OTHER,
        "null",
        "https://app.example.com.evil.example",
        "https://app.example.co",
        "http://app.example.com",  # another scheme is another origin
        "https://app.example.com:8443",
        "https://APP.example.com",  # browsers send origins in lower case: this one is forged
    ],
)
async def test_a_preflight_from_any_other_origin_is_403_without_cors_headers(
    call: Call, origin: str
) -> None:
    with logged() as events:
        reply = await call("/me", method="OPTIONS", origin=origin, preflight="GET")
    assert (reply.status, body(reply)) == (403, {"error": "cors_origin_not_allowed"})
    assert not [name for name in reply.headers if name.startswith("access-control-")]
    assert events == [
        {
            "event": "request_rejected",
            "status": 403,
            "reason": "cors_origin_not_allowed",
            "path": "/me",
        }
    ]


@pytest.mark.usefixtures("cors")
@pytest.mark.parametrize(
    ("path", "scope", "status"),
    [
        ("/", None, 200),
        ("/me", "read:reports", 200),
        ("/me", None, 401),
        ("/reports", "read:profile", 403),
        ("/no-such-route", "read:reports", 404),
    ],
)
async def test_every_answer_to_an_allowed_origin_is_readable(
    call: Call, issuer: FakeIssuer, path: str, scope: str | None, status: int
) -> None:
    reply = await call(path, issuer.mint(scope=scope) if scope else None, origin=APP)
    assert reply.status == status
    assert cors_headers(reply.headers) == {
        "access-control-allow-origin": APP,
        "access-control-expose-headers": EXPOSED,
        "vary": "Origin",
    }
    assert "access-control-allow-credentials" not in reply.headers


@pytest.mark.usefixtures("cors")
async def test_405_and_503_to_an_allowed_origin_are_readable(
    call: Call, issuer: FakeIssuer
) -> None:
    not_allowed = await call("/", method="POST", origin=APP)
    assert (not_allowed.status, not_allowed.headers["access-control-allow-origin"]) == (405, APP)
    issuer.faults.status = 500
    unavailable = await call("/me", issuer.mint(), origin=APP)
    assert unavailable.status == 503
    assert unavailable.headers["access-control-expose-headers"] == EXPOSED  # Retry-After too


@pytest.mark.usefixtures("cors")
async def test_an_answer_to_another_origin_varies_but_allows_nothing(
    call: Call, issuer: FakeIssuer
) -> None:
    for origin in (OTHER, None):
        reply = await call("/me", issuer.mint(), origin=origin)
        assert reply.status == 200  # not for CORS to refuse: the browser withholds it
        assert cors_headers(reply.headers) == {"vary": "Origin"}


async def test_star_allows_any_origin_without_credentials(
    call: Call, env: dict[str, object], issuer: FakeIssuer
) -> None:
    env["CORS_ALLOWED_ORIGINS"] = "*"
    preflight = await call("/me", method="OPTIONS", origin=OTHER, preflight="GET")
    assert (preflight.status, preflight.headers["access-control-allow-origin"]) == (204, "*")
    reply = await call("/me", issuer.mint(), origin=OTHER)
    assert reply.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in preflight.headers | reply.headers


async def test_the_preflight_allows_the_methods_the_routes_take(
    call: Call, env: dict[str, object]
) -> None:
    env["CORS_ALLOWED_ORIGINS"] = APP
    reply = await call("/me", method="OPTIONS", origin=APP, preflight="DELETE")
    assert (
        reply.headers["access-control-allow-methods"] == "GET, HEAD, POST"
    )  # the union of the table's methods, not DELETE: the browser stops


@pytest.mark.parametrize("value", ["app.example.com", "https://app.example.com/", "* " + APP])
async def test_a_malformed_setting_is_500_on_protected_routes_and_the_metadata_only(
    call: Call, env: dict[str, object], issuer: FakeIssuer, value: str
) -> None:
    env["CORS_ALLOWED_ORIGINS"] = value
    root = await call("/", origin=APP)
    assert (root.status, cors_headers(root.headers)) == (200, {})  # / answers, without CORS
    with logged() as events:
        for path in ("/me", "/.well-known/oauth-protected-resource"):
            reply = await call(path, issuer.mint(), origin=APP)
            assert (reply.status, body(reply)) == (500, {"error": "server_misconfigured"})
        preflight = await call("/me", method="OPTIONS", origin=APP, preflight="GET")
        assert preflight.status == 500
    assert [event["detail"] for event in events] == ["CORS_ALLOWED_ORIGINS"] * 3


async def test_a_handlers_own_vary_is_kept_beside_origin(
    isolate: Isolate, env: dict[str, object]
) -> None:
    env["CORS_ALLOWED_ORIGINS"] = APP
    table = Routes(
        Route("/", lambda request, claims: json_reply({}, headers={"vary": "Accept"}), public=True)
    )
    reply = await dispatch(table, Request("GET", f"{WORKER}/", origin=APP), isolate, env.get)
    assert reply.headers["vary"] == "Accept, Origin"
