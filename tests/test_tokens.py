"""Every token rule, each with the hostile input it exists to stop, through the full path."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from authpi_worker.testing.keys import SigningKey, make_key
from authpi_worker.testing.tokens import (
    header,
)
from authpi_worker.tokens import MAX_TOKEN_BYTES, credentials, parse
from tests.conftest import Call, body
from tests.hostile import HOSTILE_TOKENS as HOSTILE
from tests.support.issuer import FakeIssuer

Keys = dict[str, SigningKey]
Forge = Callable[[FakeIssuer, Keys], str]

INVALID = 'Bearer error="invalid_token"'
METADATA = 'resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"'
NO_CREDENTIALS = f'Bearer {METADATA}, DPoP algs="ES256 Ed25519 EdDSA RS256", {METADATA}'


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_token_is_401_invalid_token(
    name: str, call: Call, issuer: FakeIssuer, keys: Keys
) -> None:
    token = HOSTILE[name](issuer, keys)
    reply = await call("/reports", token)
    assert reply.status == 401, reply.body
    assert body(reply) == {"error": "unauthorized"}
    assert reply.headers["www-authenticate"].startswith(INVALID)


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
async def test_each_allowed_algorithm_verifies(
    call: Call, issuer: FakeIssuer, keys: Keys, alg: str
) -> None:
    reply = await call("/reports", issuer.mint(keys[alg]))
    assert reply.status == 200


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt", "Application/AT+JWT"])
async def test_typ_is_compared_case_insensitively(
    call: Call, issuer: FakeIssuer, keys: Keys, typ: str
) -> None:
    assert (await call("/me", issuer.mint(head=header(keys["ES256"], typ=typ)))).status == 200


async def test_aud_list_containing_ours_is_accepted(call: Call, issuer: FakeIssuer) -> None:
    assert (
        await call("/me", issuer.mint(aud=["https://other.example", issuer.audience]))
    ).status == 200


async def test_jku_x5u_jwk_x5c_headers_are_ignored(
    call: Call, issuer: FakeIssuer, keys: Keys
) -> None:
    """A valid token that also names other key sources: they are never consulted."""
    key = keys["ES256"]
    head = header(
        key,
        jku="http://127.0.0.1:9/evil.json",
        x5u="http://127.0.0.1:9/x",
        x5c=["AAAA"],
        jwk=make_key("ES256").jwk(),
    )
    hits = issuer.jwks_hits
    assert (await call("/me", issuer.mint(head=head))).status == 200
    assert issuer.jwks_hits == hits + 1  # only our own JWKS was fetched


async def test_token_without_kid_uses_the_only_key_of_its_alg(
    call: Call, issuer: FakeIssuer, keys: Keys
) -> None:
    assert (
        await call("/me", issuer.mint(keys["EdDSA"], head=header(keys["EdDSA"], kid=None)))
    ).status == 200


async def test_error_description_reveals_nothing_of_the_token(
    call: Call, issuer: FakeIssuer
) -> None:
    reply = await call("/me", issuer.mint(iss="https://evil.example"))
    assert reply.headers["www-authenticate"] == (
        f'Bearer error="invalid_token", error_description="unexpected issuer", {METADATA}'
    )
    assert "evil" not in json.dumps(reply.headers) + reply.body


@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        ("", NO_CREDENTIALS),
        ("Basic dXNlcjpwYXNz", NO_CREDENTIALS),
        ("Bearertoken", NO_CREDENTIALS),
        ("DPoPtoken", NO_CREDENTIALS),
        ("Digest username=x", NO_CREDENTIALS),
        ("Bearer", INVALID),
        ("Bearer ", INVALID),
        ("Bearer a b", INVALID),
        ("Bearer\ta.b.c", INVALID),
        ("Bearer a.b.c, Bearer d.e.f", INVALID),
        ("Bearer ä.b.c", INVALID),
        ("Bearer " + "a" * (MAX_TOKEN_BYTES + 100), INVALID),
    ],
)
async def test_authorization_header_forms(call: Call, authorization: str, challenge: str) -> None:
    reply = await call("/me", authorization=authorization)
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith(challenge)
    if challenge == NO_CREDENTIALS:
        assert reply.headers["www-authenticate"] == NO_CREDENTIALS


@pytest.mark.parametrize("scheme", ["Bearer ", "bearer ", "BEARER ", "bEaReR ", "Bearer   "])
async def test_bearer_scheme_is_case_insensitive_with_one_or_more_spaces(
    call: Call, issuer: FakeIssuer, scheme: str
) -> None:
    assert (await call("/me", authorization=scheme + issuer.mint())).status == 200


def test_size_cap_applies_before_any_parsing() -> None:
    """An 8 KiB+ header is refused by length alone: the regex never sees it."""
    from authpi_worker.errors import InvalidToken

    with pytest.raises(InvalidToken) as caught:
        credentials("Bearer " + "a." * 10_000)
    assert caught.value.reason == "too_large"
    with pytest.raises(InvalidToken) as caught:
        parse("a" * (MAX_TOKEN_BYTES + 1))
    assert caught.value.reason == "too_large"
