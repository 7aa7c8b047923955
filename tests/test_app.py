"""The quickstart's matrix through the full request path (routes → auth → tokens → jwks)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app import ROUTES
from authpi_worker import Isolate, Request, dispatch
from authpi_worker.auth import Verifier
from authpi_worker.testing.tokens import (
    caller,
    edit_signature,
    organization,
    payload_of,
    with_payload,
)
from tests.conftest import WORKER, Call, Clock, body
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


# --- /orgs/{org_id}/reports: AuthPI's organizations, through the whole request path ----------

ORG, OTHER = "org_0gw3hcq8r2kfn7xj9tzm4be5a", "org_0hk2tqvw8m3rfe9pjx5zcn4ba"
ORG_REPORTS = f"/orgs/{ORG}/reports"
METADATA = 'resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"'
MEMBERSHIP_REFUSED = (
    'Bearer error="insufficient_scope", '
    'error_description="requires {} in the organization", ' + METADATA
)
KIND_REFUSED = (
    'Bearer error="insufficient_scope", '
    'error_description="not allowed for this kind of caller", ' + METADATA
)
# AuthPI's grammar (docs/authorization.md): what grants reports:read, and what never does.
GRANTING = ["reports:read", "reports:*", "reports:**", "*:read", "*:*", "*:**"]
NOT_GRANTING = ["report:read", "reportsx:read", "reports.archive:read", "read:reports", "owner"]


def member(issuer: FakeIssuer, kind: str, *organizations: dict[str, Any], **extra: Any) -> str:
    """A token of a person, an agent or a client (authpi_worker.testing.caller) with these
    memberships."""
    return issuer.mint(**caller(kind), organizations=list(organizations), **extra)


@pytest.mark.parametrize("kind", ["person", "agent"])
@pytest.mark.parametrize("granted", GRANTING)
async def test_a_person_or_agent_whose_membership_grants_reports_read_lists_them(
    call: Call, issuer: FakeIssuer, kind: str, granted: str
) -> None:
    token = member(issuer, kind, organization(OTHER, "member"), organization(ORG, granted))
    reply = await call(ORG_REPORTS, token)
    assert reply.status == 200
    sub = "usr_demo" if kind == "person" else "agt_demo"
    assert reply.body == f'{{"org":"{ORG}","reports":[],"requested_by":"{sub}"}}'
    assert reply.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("granted", NOT_GRANTING)
async def test_a_membership_scope_that_does_not_grant_reports_read_is_403(
    call: Call, issuer: FakeIssuer, granted: str
) -> None:
    reply = await call(ORG_REPORTS, member(issuer, "person", organization(ORG, granted)))
    assert (reply.status, reply.body) == (403, '{"error":"insufficient_scope"}')
    assert reply.headers["www-authenticate"] == MEMBERSHIP_REFUSED.format("reports:read")


async def test_another_organizations_membership_grants_nothing_and_is_never_named(
    call: Call, issuer: FakeIssuer
) -> None:
    token = member(issuer, "person", organization(OTHER, "*:**", title="Other Inc"))
    with logged() as events:
        reply = await call(ORG_REPORTS, token)
    assert reply.status == 403
    challenge = reply.headers["www-authenticate"]
    assert challenge == MEMBERSHIP_REFUSED.format("reports:read")
    assert OTHER not in challenge + reply.body and "Other" not in challenge
    assert events == [
        {
            "event": "request_rejected",
            "status": 403,
            "reason": "insufficient_scope",
            "path": ORG_REPORTS,
        }
    ]
    assert (await call(f"/orgs/{OTHER}/reports", token)).status == 200  # its own org: yes


async def test_a_cached_token_is_decided_for_each_organization_from_its_one_reading(
    call: Call, issuer: FakeIssuer, clock: Clock, verifier: Verifier
) -> None:
    """The org route reads a cached token's memberships once (its Entitlements, kept with it
    in the verified-token cache) and decides each organization asked from them; they go
    with the token, and a token verified again is read again."""
    token = member(
        issuer,
        "person",
        organization(OTHER, "reports:write"),
        organization(ORG, "reports:read"),
        exp=int(clock.now) + 60,
    )
    expected = {ORG: 200, OTHER: 403, "org_none": 403, ORG.upper(): 403}
    for org_id, status in [*expected.items(), *expected.items()]:
        assert (await call(f"/orgs/{org_id}/reports", token)).status == status
    entitled = verifier.tokens.get(token, clock.now)
    assert entitled is not None and entitled.claims["sub"] == "usr_demo"
    clock.advance(60)  # expired: the token and what was read of it leave the cache
    assert (await call(ORG_REPORTS, token)).status == 401
    assert len(verifier.tokens) == 0
    clock.now -= 60
    assert (await call(ORG_REPORTS, token)).status == 200
    assert verifier.tokens.get(token, clock.now) is not entitled  # verified and read anew


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param(caller("client"), id="client"),
        pytest.param({**caller("person"), "dat": {"type": "agent"}}, id="usr-with-agent-dat"),
        pytest.param({**caller("agent"), "dat": None}, id="agt-without-dat"),
        pytest.param({**caller("client"), "dat": {"type": "identity"}}, id="c-with-dat"),
        pytest.param({**caller("person"), "sub": "user_demo"}, id="unknown-prefix"),
    ],
)
async def test_a_client_or_a_caller_of_no_kind_is_403_whatever_its_memberships(
    call: Call, issuer: FakeIssuer, claims: dict[str, Any]
) -> None:
    token = issuer.mint(**claims, organizations=[organization(ORG, "*:**")])
    reply = await call(ORG_REPORTS, token)
    assert (reply.status, reply.headers["www-authenticate"]) == (403, KIND_REFUSED)


@pytest.mark.parametrize(
    "organizations",
    [
        None,
        "org",
        {"id": ORG, "scopes": ["*:**"]},
        [None],
        [{"id": ORG, "scopes": "*:**"}],
        [{"id": ORG, "scopes": ["*:**", 1]}],
        [{"id": ORG}],
        [{"id": [ORG], "scopes": ["*:**"]}],
        [organization(ORG, "*:**"), organization(ORG, "reports:read")],  # twice: neither
        [{"id": ORG, "scopes": [{"*:**": True}]}],
    ],
)
async def test_a_malformed_organizations_claim_grants_nothing_and_is_never_a_500(
    call: Call, issuer: FakeIssuer, organizations: object
) -> None:
    token = issuer.mint(**caller("person"), organizations=organizations)
    for method, payload in (("GET", None), ("POST", b'{"title":"Q3"}')):
        reply = await call(ORG_REPORTS, token, method=method, payload=payload)
        assert (reply.status, reply.body) == (403, '{"error":"insufficient_scope"}')


# POST: a person whose membership grants reports:write; the body after authorization.

WRITER = ("person", "reports:read", "reports:write")


def writer(issuer: FakeIssuer, kind: str = "person", *scopes: str) -> str:
    return member(issuer, kind, organization(ORG, *(scopes or WRITER[1:])))


@pytest.mark.parametrize("granted", ["reports:write", "reports:*", "reports:**", "*:write", "*:**"])
async def test_a_person_whose_membership_grants_reports_write_creates_one(
    call: Call, issuer: FakeIssuer, granted: str
) -> None:
    reply = await call(
        ORG_REPORTS, writer(issuer, "person", granted), method="POST", payload=b'{"title":"Q3"}'
    )
    assert reply.status == 201
    assert reply.body == f'{{"org":"{ORG}","title":"Q3","created_by":"usr_demo"}}'
    assert reply.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("kind", "scopes", "challenge"),
    [
        ("agent", ("reports:write",), KIND_REFUSED),  # agents may read, not write
        ("agent", ("*:**",), KIND_REFUSED),
        ("client", ("*:**",), KIND_REFUSED),
        ("person", ("reports:read",), MEMBERSHIP_REFUSED.format("reports:write")),
        ("person", ("reports.archive:**",), MEMBERSHIP_REFUSED.format("reports:write")),
        ("person", ("*:read",), MEMBERSHIP_REFUSED.format("reports:write")),
    ],
)
async def test_an_agent_a_client_or_a_missing_write_permission_is_403_before_the_body(
    call: Call, issuer: FakeIssuer, kind: str, scopes: tuple[str, ...], challenge: str
) -> None:
    token = writer(issuer, kind, *scopes)
    for payload in (b'{"title":"Q3"}', b"not json", b"x" * (65 * 1024)):
        reply = await call(ORG_REPORTS, token, method="POST", payload=payload)
        assert (reply.status, reply.headers["www-authenticate"]) == (403, challenge)


async def test_a_person_writing_to_another_organization_is_403(
    call: Call, issuer: FakeIssuer
) -> None:
    token = member(issuer, "person", organization(OTHER, "*:**"))
    reply = await call(ORG_REPORTS, token, method="POST", payload=b'{"title":"Q3"}')
    assert reply.status == 403


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"[]",
        b'"Q3"',
        b"null",
        b"{}",
        b'{"title": ""}',
        b'{"title": 3}',
        b'{"title": null}',
        b'{"title": ["Q3"]}',
        b'{"Title": "Q3"}',
        b'{"title": "Q3", "title": "Q4"}',  # a duplicated key
        b'{"title": "\xff"}',  # not UTF-8
        b'\xef\xbb\xbf{"title": "Q3"}',  # a BOM
        b'{"title": "Q3", "n": NaN}',
        b'{"title": "Q3", "n": Infinity}',
        b'{"title": "Q3", "n": 1e999}',
        b'{"title": "Q3", "n": ' + b"1" * 5000 + b"}",
        b'{"title": "Q3", "n": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
        b"[" * 60_000,
    ],
)
async def test_a_body_that_is_not_an_object_with_a_title_is_400_never_a_500(
    call: Call, issuer: FakeIssuer, payload: bytes
) -> None:
    with logged() as events:
        reply = await call(ORG_REPORTS, writer(issuer), method="POST", payload=payload)
    assert (reply.status, reply.body) == (400, '{"error":"invalid_request"}')
    assert reply.headers["cache-control"] == "no-store"
    assert "www-authenticate" not in reply.headers
    assert [(e["status"], e["path"]) for e in events] == [(400, ORG_REPORTS)]


async def test_a_body_over_64_kib_is_413_declared_or_not(call: Call, issuer: FakeIssuer) -> None:
    token = writer(issuer)
    fits = b'{"title":"' + b"x" * (64 * 1024 - 12) + b'"}'
    assert len(fits) == 64 * 1024
    assert (await call(ORG_REPORTS, token, method="POST", payload=fits)).status == 201
    over = b'{"title":"' + b"x" * (64 * 1024 - 11) + b'"}'
    for declared in (str(len(over)), None, "20"):  # true, absent (chunked), or a lie
        reply = await call(ORG_REPORTS, token, method="POST", payload=over, content_length=declared)
        assert (reply.status, reply.body) == (413, '{"error":"payload_too_large"}')
        assert reply.headers["cache-control"] == "no-store"


async def test_a_declared_length_over_64_kib_is_refused_without_reading_the_body(
    isolate: Isolate, env: dict[str, object], issuer: FakeIssuer
) -> None:
    reads = []

    async def body() -> bytes:
        reads.append(1)
        return b'{"title":"Q3"}'

    request = Request(
        "POST",
        WORKER + ORG_REPORTS,
        f"Bearer {writer(issuer)}",
        body=body,
        content_length="104857600",
    )
    reply = await dispatch(ROUTES, request, isolate, env.get)
    assert (reply.status, reply.body, reads) == (413, '{"error":"payload_too_large"}', [])


async def test_a_content_length_that_is_not_a_number_is_400(call: Call, issuer: FakeIssuer) -> None:
    reply = await call(
        ORG_REPORTS, writer(issuer), method="POST", payload=b'{"title":"Q3"}', content_length="1e3"
    )
    assert (reply.status, reply.body) == (400, '{"error":"invalid_request"}')


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_any_other_method_with_a_valid_token_is_405_with_allow(
    call: Call, issuer: FakeIssuer, method: str
) -> None:
    for token in (writer(issuer), issuer.mint(scope="read:profile")):  # whatever it may do
        reply = await call(ORG_REPORTS, token, method=method)
        assert (reply.status, reply.headers["allow"]) == (405, "GET, HEAD, POST")


async def test_anonymous_callers_get_401_before_any_body_rule(call: Call) -> None:
    for payload in (b'{"title":"Q3"}', b"not json", b"x" * (65 * 1024)):
        reply = await call(ORG_REPORTS, method="POST", payload=payload)
        assert (reply.status, reply.body) == (401, '{"error":"unauthorized"}')
