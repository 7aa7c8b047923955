"""Every token rule, each with the hostile input it exists to stop, through the full path."""

from __future__ import annotations

import json
from collections.abc import Callable, Container

import pytest

from authpi_worker.errors import Denied, InvalidToken
from authpi_worker.strict_json import MAX_DEPTH as MAX_JSON_DEPTH
from authpi_worker.testing.keys import SigningKey, make_key
from authpi_worker.testing.tokens import (
    caller,
    header,
    organization,
    sign,
)
from authpi_worker.tokens import MAX_TOKEN_BYTES, credentials, json_object, parse
from tests.conftest import Call, body
from tests.hostile import HOSTILE_TOKENS as HOSTILE
from tests.support.issuer import FakeIssuer
from tests.support.logs import logged

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
    """An oversize header is refused by length alone: the regex never sees it."""
    with pytest.raises(InvalidToken) as caught:
        credentials("Bearer " + "a." * MAX_TOKEN_BYTES)
    assert caught.value.reason == "too_large"
    with pytest.raises(InvalidToken) as caught:
        parse("a" * (MAX_TOKEN_BYTES + 1))
    assert caught.value.reason == "too_large"


def _nested(depth: int, inner: bytes = b"1") -> bytes:
    return b'{"a":' + b"[" * (depth - 1) + inner + b"]" * (depth - 1) + b"}"


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5_000, 20_000])
def test_json_nested_deeper_than_the_cap_is_malformed_before_the_parser_sees_it(
    depth: int,
) -> None:
    """Pyodide's wasm stack dies of ~10,000 nested brackets (a fatal error, no exception):
    the payload read before the signature, and a DPoP proof's, must never get there."""
    with pytest.raises(InvalidToken) as caught:
        json_object(_nested(depth), "payload")
    assert (caught.value.reason, caught.value.description) == (
        "malformed",
        "payload nests too deep",
    )


def test_json_at_the_depth_cap_and_brackets_inside_strings_are_fine() -> None:
    assert json_object(_nested(MAX_JSON_DEPTH), "payload")["a"]
    brackets = json.dumps({"title": "[{" * 5_000, "t": '\\"[' * 1_000, "x": [[1]]}).encode()
    assert json_object(brackets, "payload")["x"] == [[1]]


async def test_a_deep_payload_with_an_unknown_iss_is_refused_before_any_jwks_fetch(
    call: Call, issuer: FakeIssuer, keys: Keys
) -> None:
    """The payload is read before the signature (for its iss): read safely, and no fetch."""
    for payload in (_nested(3_000), b'{"iss":"https://evil.example","sub":"x","exp":1e10}'):
        reply = await call("/me", sign(keys["ES256"], header(keys["ES256"]), payload))
        assert reply.status == 401
    assert issuer.jwks_hits == 0


# AuthPI's tokens carry every membership of the person (issue 15 item 5): a busy person's
# token must verify; the cap is against abuse.
def memberships(count: int) -> list[dict[str, object]]:
    """count memberships as AuthPI writes them: org ids of 25 characters, titles, scopes."""
    return [
        organization(
            f"org_{index:025d}", "reports:read", "members:read", title=f"Organization {index}"
        )
        for index in range(count)
    ]


def sized(issuer: FakeIssuer, keys: Keys, length: int) -> str | None:
    """A valid person's token of exactly length characters (pad claim and header member
    tuned; base64url skips one length in four, so one of the two knobs reaches it), or None."""
    key = keys["ES256"]
    base = len(issuer.mint(key, **caller("person"), pad=""))
    for extra in range(4):
        head = header(key, x="y" * extra)
        for pad in range(max(0, (length - base) * 3 // 4 - 16), (length - base) * 3 // 4 + 4):
            token = issuer.mint(key, head=head, **caller("person"), pad="p" * pad)
            if len(token) == length:
                return token
    return None


async def test_a_person_in_100_organizations_is_verified_end_to_end(
    call: Call, issuer: FakeIssuer
) -> None:
    token = issuer.mint(**caller("person"), organizations=memberships(100))
    assert 8192 < len(token) <= MAX_TOKEN_BYTES  # refused as too_large under the old 8 KiB cap
    for path in ("/me", "/reports", "/me"):  # the last one from the verified-token cache
        reply = await call(path, token)
        assert reply.status == 200, reply.headers.get("www-authenticate")
    assert body(reply) == {"sub": "usr_demo", "scope": "read:reports"}


async def test_tokens_up_to_the_cap_verify_and_one_character_more_is_too_large(
    call: Call, issuer: FakeIssuer, keys: Keys
) -> None:
    at_cap, over = sized(issuer, keys, MAX_TOKEN_BYTES), sized(issuer, keys, MAX_TOKEN_BYTES + 1)
    assert at_cap is not None and over is not None
    assert (await call("/me", at_cap)).status == 200
    with logged() as events:
        reply = await call("/me", over)
    assert reply.status == 401
    assert 'error_description="token too large"' in reply.headers["www-authenticate"]
    assert [event["reason"] for event in events] == ["too_large"]


async def test_a_token_at_the_cap_nested_deep_is_malformed_before_any_fetch(
    call: Call, issuer: FakeIssuer, keys: Keys
) -> None:
    """The largest payload an attacker may send before the signature, nested all the way."""
    depth = MAX_TOKEN_BYTES * 3 // 8 - 100
    token = sign(keys["ES256"], header(keys["ES256"]), _nested(depth))
    assert len(token) <= MAX_TOKEN_BYTES
    with logged() as events:
        assert (await call("/me", token)).status == 401
    assert [event["reason"] for event in events] == ["malformed"]
    assert issuer.jwks_hits == 0


# --- A token verified before: `credentials` skips the scan only for its exact spelling -------

KNOWN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1c3JfMSJ9.c2lnbmF0dXJl"  # passed split: base64url, dots


class Lookups:
    """Known tokens (as the verified-token cache holds them) that record every lookup."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = set(tokens)
        self.asked: list[str] = []  # the very string objects looked up
        self.hits = 0

    def __contains__(self, token: object) -> bool:
        assert isinstance(token, str)
        self.asked.append(token)
        self.hits += token in self.tokens
        return token in self.tokens


def verdict(authorization: str | None, known: Container[str] = ()) -> object:
    """What credentials answers: (scheme, token), or the refusal's kind, reason and scheme."""
    try:
        return credentials(authorization, known)
    except Denied as denied:
        return type(denied).__name__, denied.reason, denied.scheme


@pytest.mark.parametrize("scheme", ["Bearer", "DPoP"])
def test_a_known_token_in_its_exact_spelling_skips_the_scan(scheme: str) -> None:
    known = Lookups(KNOWN)
    assert credentials(f"{scheme} {KNOWN}", known) == (scheme, KNOWN)
    assert known.hits == 1


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (f"bearer {KNOWN}", ("Bearer", KNOWN)),  # the scheme's case is free: the scan says so
        (f"BEARER {KNOWN}", ("Bearer", KNOWN)),
        (f"dpop {KNOWN}", ("DPoP", KNOWN)),
        (f"Bearer  {KNOWN}", ("Bearer", KNOWN)),
        (f"DPoP   {KNOWN}", ("DPoP", KNOWN)),
        (f"Bearer {KNOWN} ", ("Bearer", KNOWN)),
        (f" Bearer {KNOWN}", ("Bearer", KNOWN)),
        (f"Bearer {KNOWN}\t", ("Bearer", KNOWN)),
        (f"Bearer {KNOWN}==", ("Bearer", KNOWN + "==")),  # b64token's padding: split refuses it
        (f"Bearer {KNOWN} junk", ("InvalidToken", "malformed", "Bearer")),
        (f"Bearer {KNOWN}, Bearer {KNOWN}", ("InvalidToken", "malformed", "Bearer")),
        (f"DPoP {KNOWN}\n", ("InvalidToken", "malformed", "DPoP")),
        (f"Bearer\t{KNOWN}", ("InvalidToken", "malformed", "Bearer")),
        (f"Bearer {KNOWN}\x00", ("InvalidToken", "malformed", "Bearer")),
        (f"Bearer{KNOWN}", ("MissingToken", "unsupported_scheme", "Bearer")),
        (f"Basic {KNOWN}", ("MissingToken", "unsupported_scheme", "Bearer")),
        (f"Token {KNOWN}", ("MissingToken", "unsupported_scheme", "Bearer")),
        (KNOWN, ("MissingToken", "unsupported_scheme", "Bearer")),
    ],
)
def test_a_known_token_in_any_other_spelling_gets_every_rule(
    authorization: str, expected: object
) -> None:
    """No lookup answers yes, so the scan decides, as for a token never seen."""
    known = Lookups(KNOWN)
    assert verdict(authorization, known) == verdict(authorization) == expected
    assert known.hits == 0


def test_a_known_header_too_long_for_any_token_is_not_looked_up() -> None:
    huge = "a" * (MAX_TOKEN_BYTES + 100)
    known = Lookups(huge)  # never in the real cache (split refuses it), yet refused here too
    assert verdict(f"Bearer {huge}", known) == ("InvalidToken", "too_large", "Bearer")
    assert known.asked == []


def test_a_token_not_yet_known_is_hashed_once() -> None:
    """A miss returns the very string it looked up, whose hash Python keeps: the cache's own
    lookup then does not hash the token a second time."""
    known = Lookups()
    scheme, token = credentials(f"Bearer {KNOWN}", known)
    assert (scheme, token) == ("Bearer", KNOWN) and known.asked == [KNOWN]
    assert token is known.asked[0]
