"""The fake issuer's token endpoint over real HTTP: the client_credentials grant as AuthPI's
quickstart uses it, every RFC 6749 §5.2 error the local loop relies on, and tokens for each
kind of caller (a client, an agent with its memberships, a person through the local grant)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from jwt.algorithms import ECAlgorithm

from authpi_worker.authorization import caller_kind, has_permission
from authpi_worker.testing.tokens import AUDIENCE, header_of, organization, payload_of, unb64url
from tests.support.issuer import (
    DEFAULT_APP,
    DEMO_ORG,
    OTHER_ORG,
    PERSON_GRANT,
    FakeIssuer,
    running,
)

SCOPED = ("c_demo_reports", "demo-reports-secret")  # allowed read:reports
BASIC = ("c_demo_basic", "demo-basic-secret")  # allowed read:profile only


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
    assert claims["sub"] == claims["client_id"] == "c_demo_reports"
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
        basic("c_demo_reports", "wrong-secret"),
        basic("nobody", "demo-reports-secret"),
        basic("c_demo_reports", ""),
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


# --- Callers as AuthPI mints them: clients, agents, and the local stand-in for a login -------

AGENT = ("agt_demo_reader", "demo-agent-secret")  # a member of org_acme


def test_a_clients_token_is_a_client_callers_no_dat_no_organizations(local: FakeIssuer) -> None:
    claims = payload_of(post(local).json()["access_token"])
    assert caller_kind(claims) == "client"
    assert "dat" not in claims and "organizations" not in claims and "sid" not in claims


def test_an_agents_token_carries_dat_agent_and_its_memberships(local: FakeIssuer) -> None:
    response = post(local, authorization=basic(*AGENT))
    assert response.status_code == 200
    claims = payload_of(response.json()["access_token"])
    assert claims["sub"] == claims["client_id"] == "agt_demo_reader"
    assert claims["dat"] == {"type": "agent"} and caller_kind(claims) == "agent"
    assert [(o["id"], o["scopes"]) for o in claims["organizations"]] == [
        (DEMO_ORG, ["member", "reports:read", "reports:write"])
    ]
    assert has_permission(claims, DEMO_ORG, "reports:read")
    assert not has_permission(claims, OTHER_ORG, "reports:read")
    assert claims["scope"] == "read:reports" and "sid" not in claims


def test_an_agent_may_ask_the_local_issuer_for_other_memberships(local: FakeIssuer) -> None:
    asked = json.dumps([{"id": OTHER_ORG, "scopes": ["reports:*"]}])
    form = {"grant_type": "client_credentials", "organizations": asked}
    claims = payload_of(post(local, form, basic(*AGENT)).json()["access_token"])
    assert [entry["id"] for entry in claims["organizations"]] == [OTHER_ORG]
    assert has_permission(claims, OTHER_ORG, "reports:read")


def test_an_m2m_client_holds_no_memberships(local: FakeIssuer) -> None:
    asked = json.dumps([{"id": DEMO_ORG, "scopes": ["reports:read"]}])
    response = post(local, {"grant_type": "client_credentials", "organizations": asked})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
    assert "M2M client" in response.json()["error_description"]


def test_the_local_person_grant_mints_a_person_with_the_memberships_asked_for(
    local: FakeIssuer,
) -> None:
    asked: list[dict[str, Any]] = [
        {"id": DEMO_ORG, "scopes": ["reports:read", "reports:write"]},
        {"id": OTHER_ORG, "scopes": ["member"]},
    ]
    form = {"grant_type": PERSON_GRANT, "organizations": json.dumps(asked), "sub": "usr_alice"}
    response = post(local, form, authorization=None)  # a login: no client secret involved
    assert response.status_code == 200
    claims = payload_of(response.json()["access_token"])
    assert (claims["sub"], claims["client_id"], claims["dat"]) == (
        "usr_alice",
        DEFAULT_APP,
        {"type": "identity"},
    )
    assert caller_kind(claims) == "person" and claims["sid"].startswith("s_")
    assert claims["scope"] == "openid"  # a login asks for openid
    assert claims["organizations"] == [organization(o["id"], *o["scopes"]) for o in asked]
    assert has_permission(claims, DEMO_ORG, "reports:write")
    assert not has_permission(claims, OTHER_ORG, "reports:read")
    # Defaults: usr_demo, no memberships; an app that authenticates names itself.
    plain = payload_of(post(local, {"grant_type": PERSON_GRANT}).json()["access_token"])
    assert (plain["sub"], plain["organizations"], plain["client_id"]) == (
        "usr_demo",
        [],
        "c_demo_reports",
    )


@pytest.mark.parametrize(
    ("form", "authorization"),
    [
        ({"grant_type": PERSON_GRANT, "sub": "agt_x"}, None),
        ({"grant_type": PERSON_GRANT, "sub": "usr_"}, None),
        ({"grant_type": PERSON_GRANT, "organizations": "not json"}, None),
        ({"grant_type": PERSON_GRANT, "organizations": '{"id": "org_a"}'}, None),
        ({"grant_type": PERSON_GRANT, "organizations": '[{"id": "org_a"}]'}, None),
        ({"grant_type": PERSON_GRANT, "organizations": '[{"id": "", "scopes": []}]'}, None),
        ({"grant_type": PERSON_GRANT, "organizations": '[{"id": "o", "scopes": [1]}]'}, None),
        (
            {
                "grant_type": PERSON_GRANT,
                "organizations": '[{"id": "o", "scopes": []}, {"id": "o", "scopes": []}]',
            },
            None,
        ),
    ],
)
def test_a_malformed_person_request_is_invalid_request(
    local: FakeIssuer, form: dict[str, str], authorization: str | None
) -> None:
    response = post(local, form, authorization=authorization)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


def test_a_person_grant_with_a_wrong_client_secret_is_invalid_client(local: FakeIssuer) -> None:
    response = post(local, {"grant_type": PERSON_GRANT}, basic("c_demo_reports", "wrong"))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
