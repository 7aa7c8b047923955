"""The quickstart's matrix through the full request path (routes → auth → tokens → jwks)."""

from __future__ import annotations

import json

import pytest

from authpi_worker.testing.tokens import edit_signature, payload_of, with_payload
from tests.conftest import Call, body
from tests.support.issuer import FakeIssuer
from tests.support.logs import logged


async def test_root_is_public(call: Call) -> None:
    reply = await call("/")
    assert (reply.status, reply.body) == (200, '{"status":"ok"}')
    assert "www-authenticate" not in reply.headers


async def test_me_without_token_is_401_with_a_challenge_for_each_scheme(call: Call) -> None:
    reply = await call("/me")
    assert (reply.status, reply.body) == (401, '{"error":"unauthorized"}')
    metadata = 'resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"'
    assert reply.headers["www-authenticate"] == (
        f'Bearer {metadata}, DPoP algs="ES256 Ed25519 EdDSA RS256", {metadata}'
    )


async def test_me_with_valid_token_shows_sub_and_scope(call: Call, issuer: FakeIssuer) -> None:
    reply = await call("/me", issuer.mint(sub="client_a", scope="read:reports openid"))
    assert reply.status == 200
    assert reply.body == '{"sub":"client_a","scope":"read:reports openid"}'


async def test_me_without_scope_claim_omits_it_like_json_stringify(
    call: Call, issuer: FakeIssuer
) -> None:
    reply = await call("/me", issuer.mint(sub="client_a", scope=None))
    assert (reply.status, body(reply)) == (200, {"sub": "client_a"})


@pytest.mark.parametrize("scope", [["read:reports"], {"a": 1}, 7])
async def test_me_shows_no_scope_when_the_claim_is_not_a_string(
    call: Call, issuer: FakeIssuer, scope: object
) -> None:
    reply = await call("/me", issuer.mint(sub="client_a", scope=scope))
    assert (reply.status, body(reply)) == (200, {"sub": "client_a"})


async def test_reports_with_scope(call: Call, issuer: FakeIssuer) -> None:
    reply = await call("/reports", issuer.mint(sub="client_a", scope="read:profile read:reports"))
    assert (reply.status, reply.body) == (200, '{"reports":[],"requested_by":"client_a"}')


async def test_reports_without_scope_is_403_with_scope_challenge(
    call: Call, issuer: FakeIssuer
) -> None:
    reply = await call("/reports", issuer.mint(scope="read:profile"))
    assert (reply.status, reply.body) == (403, '{"error":"insufficient_scope"}')
    assert reply.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="read:reports", '
        'resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"'
    )


@pytest.mark.parametrize(
    "scope",
    [
        "read:reports2",
        "READ:REPORTS",
        "read:report",
        "xread:reports",
        "read:reports,other",
        " read:reports",
        ["read:reports"],
        {"read:reports": True},
        1,
        True,
        "",
    ],
)
async def test_scope_tricks_are_403(call: Call, issuer: FakeIssuer, scope: object) -> None:
    reply = await call("/reports", issuer.mint(scope=scope))
    assert reply.status == (200 if scope == " read:reports" else 403)


async def test_unknown_path_with_valid_token_is_404(call: Call, issuer: FakeIssuer) -> None:
    reply = await call("/admin", issuer.mint())
    assert (reply.status, reply.body) == (404, '{"error":"not_found"}')


async def test_unknown_path_without_token_is_401(call: Call) -> None:
    assert (await call("/admin")).status == 401


async def test_tampered_payload_with_old_signature_is_401(call: Call, issuer: FakeIssuer) -> None:
    token = issuer.mint(scope="read:profile")
    forged = with_payload(token, {**payload_of(token), "scope": "read:reports"})
    reply = await call("/reports", forged)
    assert reply.status == 401
    assert 'error="invalid_token"' in reply.headers["www-authenticate"]


@pytest.mark.parametrize("position", [0, 10, 40, 80])
async def test_one_signature_character_edited_is_401(
    call: Call, issuer: FakeIssuer, position: int
) -> None:
    assert (await call("/me", edit_signature(issuer.mint(), position))).status == 401


@pytest.mark.parametrize("path", ["/me", "/reports", "/admin"])
async def test_misconfigured_env_is_500_on_protected_routes_only(
    call: Call,
    env: dict[str, object],
    issuer: FakeIssuer,
    path: str,
) -> None:
    del env["AUTHPI_ISSUER_URL"]
    assert (await call("/")).status == 200
    with logged() as events:
        reply = await call(path, issuer.mint())
    assert (reply.status, reply.body) == (500, '{"error":"server_misconfigured"}')
    assert [event["detail"] for event in events] == ["AUTHPI_ISSUER_URL"]


async def test_rejections_log_one_json_line_on_stderr_with_reason_kid_and_path_never_the_token(
    call: Call, issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    token = issuer.mint(exp=1)
    await call("/me", token)
    err = capsys.readouterr().err
    assert [json.loads(line) for line in err.splitlines()] == [
        {
            "event": "request_rejected",
            "status": 401,
            "reason": "expired",
            "path": "/me",
            "kid": issuer.signer.kid,
        }
    ]
    assert token not in err
    assert token.split(".")[2] not in err
