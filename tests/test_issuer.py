"""The fake issuer's token endpoint over real HTTP: the client_credentials grant as AuthPI's
quickstart uses it, and every RFC 6749 §5.2 error the local loop relies on."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from jwt.algorithms import ECAlgorithm

from authpi_worker.testing.tokens import AUDIENCE, header_of, payload_of, unb64url
from tests.support.issuer import FakeIssuer, running

SCOPED = ("demo-reports", "demo-reports-secret")  # allowed read:reports
BASIC = ("demo-basic", "demo-basic-secret")  # allowed read:profile only


@pytest.fixture
def local() -> Iterator[FakeIssuer]:
    with running() as server:
        yield server


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def post(
    issuer: FakeIssuer,
    form: dict[str, Any] | list[tuple[str, str]] | None = None,
    authorization: str | None = basic(*SCOPED),
    **kwargs: Any,
) -> httpx.Response:
    headers = {"authorization": authorization} if authorization else {}
    if form is None:
        form = {"grant_type": "client_credentials"}
    if isinstance(form, list):
        kwargs["content"] = urlencode(form)
        headers["content-type"] = "application/x-www-form-urlencoded"
    else:
        kwargs["data"] = form
    return httpx.post(f"{issuer.url}/token", headers=headers, timeout=5, **kwargs)


def test_grant_issues_an_es256_at_jwt_with_the_quickstart_claims(local: FakeIssuer) -> None:
    response = post(local, {"grant_type": "client_credentials", "scope": "read:reports"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert (body["token_type"], body["scope"], body["expires_in"]) == (
        "Bearer",
        "read:reports",
        300,
    )
    token = body["access_token"]
    assert header_of(token) == {"alg": "ES256", "typ": "at+jwt", "kid": local.signer.kid}
    claims = payload_of(token)
    assert set(claims) == {"iss", "aud", "sub", "client_id", "iat", "exp", "jti", "scope"}
    assert (claims["iss"], claims["aud"]) == (local.url, AUDIENCE)
    assert claims["sub"] == claims["client_id"] == "demo-reports"
    assert claims["exp"] - claims["iat"] == 300
    head, payload, signature = token.split(".")
    raw = unb64url(signature)
    public = ECAlgorithm.from_jwk(local.signer.jwk())
    assert ECAlgorithm(ECAlgorithm.SHA256).verify(f"{head}.{payload}".encode(), public, raw)


def test_each_token_has_its_own_jti(local: FakeIssuer) -> None:
    first, second = (payload_of(post(local).json()["access_token"]) for _ in range(2))
    assert first["jti"] != second["jti"]


def test_without_scope_parameter_the_client_gets_its_allowed_scopes(local: FakeIssuer) -> None:
    assert post(local, authorization=basic(*BASIC)).json()["scope"] == "read:profile"


def test_jwks_is_served_with_a_cache_control_max_age(local: FakeIssuer) -> None:
    response = httpx.get(f"{local.url}/jwks.json", timeout=5)
    assert response.status_code == 200
    assert "max-age=600" in response.headers["cache-control"]
    assert [k["kid"] for k in response.json()["keys"]] == [local.signer.kid]


@pytest.mark.parametrize(
    "authorization",
    [
        basic("demo-reports", "wrong-secret"),
        basic("nobody", "demo-reports-secret"),
        basic("demo-reports", ""),
        None,
        "Bearer demo-reports-secret",
        "Basic not-base64!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
    ],
    ids=["wrong-secret", "unknown-client", "empty-secret", "none", "bearer", "bad-b64", "no-colon"],
)
def test_bad_client_authentication_is_invalid_client_401(
    local: FakeIssuer, authorization: str | None
) -> None:
    response = post(local, authorization=authorization)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize("scope", ["read:reports", "read:profile read:reports", "admin"])
def test_a_scope_the_client_was_not_granted_is_invalid_scope(local: FakeIssuer, scope: str) -> None:
    response = post(local, {"grant_type": "client_credentials", "scope": scope}, basic(*BASIC))
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_scope"
    assert "access_token" not in body


@pytest.mark.parametrize(
    "grant", ["password", "authorization_code", "refresh_token", "CLIENT_CREDENTIALS"]
)
def test_other_grant_types_are_unsupported_grant_type(local: FakeIssuer, grant: str) -> None:
    response = post(local, {"grant_type": grant})
    assert (response.status_code, response.json()["error"]) == (400, "unsupported_grant_type")


@pytest.mark.parametrize(
    "form",
    [
        {},
        [("grant_type", "client_credentials"), ("grant_type", "client_credentials")],
        [("grant_type", "client_credentials"), ("scope", "a"), ("scope", "b")],
    ],
    ids=["no-grant-type", "repeated-grant-type", "repeated-scope"],
)
def test_malformed_requests_are_invalid_request(
    local: FakeIssuer, form: dict[str, str] | list[tuple[str, str]]
) -> None:
    response = post(local, form)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


def test_a_json_body_is_invalid_request(local: FakeIssuer) -> None:
    response = httpx.post(
        f"{local.url}/token",
        json={"grant_type": "client_credentials"},
        headers={"authorization": basic(*SCOPED)},
        timeout=5,
    )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


@pytest.mark.parametrize(
    ("asked", "granted"), [("openid read:reports", "read:reports"), ("openid", "")]
)
def test_openid_is_never_issued(local: FakeIssuer, asked: str, granted: str) -> None:
    response = post(local, {"grant_type": "client_credentials", "scope": asked})
    assert response.status_code == 200
    body = response.json()
    assert body["scope"] == granted
    assert "openid" not in payload_of(body["access_token"])["scope"]
    assert "id_token" not in body
