"""Every token rule, each with the hostile input it exists to stop, through the full path."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Container

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from authpi_worker.errors import Denied, InvalidToken
from authpi_worker.testing.keys import SigningKey, make_key
from authpi_worker.testing.tokens import (
    b64url,
    caller,
    claims,
    edit_signature,
    encode_part,
    header,
    organization,
    sign,
    unb64url,
    with_payload,
)
from authpi_worker.tokens import MAX_JSON_DEPTH, MAX_TOKEN_BYTES, credentials, json_object, parse
from tests.conftest import Call, body
from tests.support.issuer import FakeIssuer
from tests.support.logs import logged

Keys = dict[str, SigningKey]
Forge = Callable[[FakeIssuer, Keys], str]

INVALID = 'Bearer error="invalid_token"'
METADATA = 'resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"'
NO_CREDENTIALS = f'Bearer {METADATA}, DPoP algs="ES256 Ed25519 EdDSA RS256", {METADATA}'


def _hs256_with_public_key(issuer: FakeIssuer, keys: Keys) -> str:
    """The classic RS256→HS256 confusion: HMAC keyed with the issuer's public key."""
    key = keys["RS256"]
    secret = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{encode_part(header(key, alg='HS256'))}.{encode_part(claims(issuer.url))}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def _unsigned(alg: str) -> Forge:
    def forge(issuer: FakeIssuer, keys: Keys) -> str:
        head = encode_part({"alg": alg, "typ": "at+jwt", "kid": keys["ES256"].kid})
        return f"{head}.{encode_part(claims(issuer.url))}.{b64url(b'x')}"

    return forge


def _other_alg(alg: str, curve: str = "") -> Forge:
    """A correctly signed token in an algorithm we don't accept, its key published."""

    def forge(issuer: FakeIssuer, keys: Keys) -> str:
        key = make_key(alg, f"{alg.lower()}-extra", curve=curve)
        jwk = key.jwk()
        issuer.extra_jwks.append(jwk)
        return sign(key, header(key), claims(issuer.url), alg=alg)

    return forge


def _es256_signature(issuer: FakeIssuer, keys: Keys, transform: Callable[[bytes], bytes]) -> str:
    token = issuer.mint(keys["ES256"])
    head, payload, signature = token.split(".")
    raw = transform(unb64url(signature))
    return f"{head}.{payload}.{b64url(raw)}"


def _der(raw: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def _raw_payload(payload: bytes) -> Forge:
    return lambda issuer, keys: sign(keys["ES256"], header(keys["ES256"]), payload)


def _exp(value: str) -> Forge:
    """A payload with exp spelled verbatim as JSON, signed correctly."""

    def forge(issuer: FakeIssuer, keys: Keys) -> str:
        base = claims(issuer.url, exp=None)
        text = json.dumps(base)[:-1] + f', "exp": {value}}}'
        return sign(keys["ES256"], header(keys["ES256"]), text.encode())

    return forge


def _non_canonical_signature(issuer: FakeIssuer, keys: Keys) -> str:
    """Same signature bytes, second spelling: set the unused low bits of the last char."""
    token = issuer.mint(keys["EdDSA"])  # 64 bytes → 86 chars, last char carries 4 unused bits
    head, payload, signature = token.split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(signature[-1]) | 1]
    return f"{head}.{payload}.{signature[:-1]}{last}"


HOSTILE: dict[str, Forge] = {
    # Algorithms (RFC 8725 §3.1)
    "alg none": _unsigned("none"),
    "alg None": _unsigned("None"),
    "alg NONE": _unsigned("NONE"),
    "alg nOnE": _unsigned("nOnE"),
    "alg none, empty signature": lambda i, k: _unsigned("none")(i, k).rsplit(".", 1)[0] + ".",
    "HS256 keyed with the public key": _hs256_with_public_key,
    "PS256": _other_alg("PS256"),
    "ES384": _other_alg("ES384", "P-384"),
    "alg es256 lower case": lambda i, k: sign(
        k["ES256"], header(k["ES256"], alg="es256"), claims(i.url), alg="ES256"
    ),
    "ES256 header on the RSA kid": lambda i, k: sign(
        k["ES256"], header(k["ES256"], kid=k["RS256"].kid), claims(i.url)
    ),
    "RS256 header on the ES256 kid": lambda i, k: sign(
        k["RS256"], header(k["RS256"], kid=k["ES256"].kid), claims(i.url)
    ),
    "EdDSA header on the ES256 kid": lambda i, k: sign(
        k["EdDSA"], header(k["EdDSA"], kid=k["ES256"].kid), claims(i.url)
    ),
    "attacker key under a real kid": lambda i, k: sign(
        make_key("ES256", k["ES256"].kid), header(k["ES256"]), claims(i.url)
    ),
    "attacker key embedded as jwk header": lambda i, k: _embedded_jwk(i, k),
    # typ (RFC 9068 §4)
    "typ JWT": lambda i, k: i.mint(head=header(k["ES256"], typ="JWT")),
    "typ missing": lambda i, k: i.mint(head=header(k["ES256"], typ=None)),
    "typ at+jwt with parameters": lambda i, k: i.mint(head=header(k["ES256"], typ="at+jwt; v=1")),
    "typ as a list": lambda i, k: i.mint(head=header(k["ES256"], typ=["at+jwt"])),
    "ID-token shape": lambda i, k: i.mint(
        head=header(k["ES256"], typ="JWT"), nonce="n", at_hash="x", aud="client_demo"
    ),
    "refresh-token shape (typ rt+jwt)": lambda i, k: i.mint(head=header(k["ES256"], typ="rt+jwt")),
    # crit and unencoded payloads (RFC 7515 §4.1.11, RFC 7797)
    "crit unknown": lambda i, k: i.mint(head=header(k["ES256"], crit=["urn:x"], **{"urn:x": 1})),
    "crit empty list": lambda i, k: i.mint(head=header(k["ES256"], crit=[])),
    "crit naming a registered claim": lambda i, k: i.mint(head=header(k["ES256"], crit=["exp"])),
    "crit b64 false": lambda i, k: i.mint(head=header(k["ES256"], crit=["b64"], b64=False)),
    # iss / aud
    "iss with trailing slash": lambda i, k: i.mint(iss=i.url + "/"),
    "iss in upper case": lambda i, k: i.mint(iss=i.url.upper()),
    "iss missing": lambda i, k: i.mint(iss=None),
    "aud other": lambda i, k: i.mint(aud="https://other.example.com"),
    "aud list without ours": lambda i, k: i.mint(aud=["https://a.example", "https://b.example"]),
    "aud missing": lambda i, k: i.mint(aud=None),
    "aud with trailing slash": lambda i, k: i.mint(aud=i.audience + "/"),
    # exp / nbf / iat (RFC 7519 §4.1.4, §2 NumericDate)
    "expired": lambda i, k: i.mint(exp=1),
    "exp missing": lambda i, k: i.mint(exp=None),
    "exp as a string": lambda i, k: i.mint(exp="9999999999"),
    "exp true": lambda i, k: i.mint(exp=True),
    "exp null": _exp("null"),
    "exp Infinity": _exp("Infinity"),
    "exp NaN": _exp("NaN"),
    "exp 1e400 (overflows to inf)": _exp("1e400"),
    "scope 1e400 (/me would echo Infinity)": lambda i, k: sign(
        k["ES256"],
        header(k["ES256"]),
        json.dumps(claims(i.url, scope=None))[:-1].encode() + b', "scope": 1e400}',
    ),
    "nbf in the future": lambda i, k: i.mint(nbf=10**10),
    "nbf as a string": lambda i, k: i.mint(nbf="0"),
    "iat in the future": lambda i, k: i.mint(iat=10**10),
    "iat as a bool": lambda i, k: i.mint(iat=False),
    # sub
    "sub missing": lambda i, k: i.mint(sub=None),
    "sub not a string": lambda i, k: i.mint(sub=12345),
    "sub empty": lambda i, k: i.mint(sub=""),
    # signatures
    "payload edited, old signature": lambda i, k: with_payload(i.mint(scope="x"), claims(i.url)),
    "one signature character edited": lambda i, k: edit_signature(i.mint()),
    "DER ECDSA signature": lambda i, k: _es256_signature(i, k, _der),
    "ECDSA r=s=0": lambda i, k: _es256_signature(i, k, lambda raw: bytes(64)),
    "ECDSA signature truncated": lambda i, k: _es256_signature(i, k, lambda raw: raw[:63]),
    "non-canonical base64url signature": _non_canonical_signature,
    "empty signature": lambda i, k: i.mint().rsplit(".", 1)[0] + ".",
    # structure
    "2 segments": lambda i, k: ".".join(i.mint().split(".")[:2]),
    "4 segments": lambda i, k: i.mint() + ".e30",
    "5 segments (JWE shape)": lambda i, k: i.mint() + ".e30.e30",
    "padded base64": lambda i, k: i.mint().replace(".", "=.", 1),
    "standard base64 alphabet": lambda i, k: "+" + i.mint()[1:],
    "non-JSON payload": _raw_payload(b"not json"),
    "payload a JSON array": _raw_payload(b'["sub"]'),
    "payload not UTF-8": _raw_payload(b'{"sub":"\xff"}'),
    "payload UTF-16 JSON": _raw_payload('{"sub":"x"}'.encode("utf-16")),
    "duplicate claim names": _exp('2000000000, "sub": "a", "sub": "b"'),
    "deeply nested header (before any key is involved)": lambda i, k: sign(
        k["ES256"],
        b'{"alg":"ES256","typ":"at+jwt","x":' + b"[" * 40 + b"]" * 40 + b"}",
        claims(i.url),
    ),
    "header not JSON": lambda i, k: "bm90IGpzb24." + i.mint().split(".", 1)[1],
    "deeply nested payload": _raw_payload(b"[" * 3000 + b"]" * 3000),
    "oversize token": lambda i, k: i.mint(pad="x" * MAX_TOKEN_BYTES),
    # kid (looked up, never interpreted)
    "kid path traversal": lambda i, k: sign(
        k["ES256"], header(k["ES256"], kid="../../../etc/passwd"), claims(i.url)
    ),
    "kid SQL injection": lambda i, k: sign(
        k["ES256"], header(k["ES256"], kid="x' OR '1'='1"), claims(i.url)
    ),
    "kid with CRLF and NUL": lambda i, k: sign(
        k["ES256"], header(k["ES256"], kid="a\r\nb\x00c"), claims(i.url)
    ),
    "kid as an object": lambda i, k: sign(
        k["ES256"], header(k["ES256"], kid={"$ne": None}), claims(i.url)
    ),
    "kid empty": lambda i, k: sign(k["ES256"], header(k["ES256"], kid=""), claims(i.url)),
}


def _embedded_jwk(issuer: FakeIssuer, keys: Keys) -> str:
    attacker = make_key("ES256", keys["ES256"].kid)
    head = header(
        attacker, jwk=attacker.jwk(), jku="http://127.0.0.1:9/jwks.json", x5u="http://127.0.0.1:9/x"
    )
    return sign(attacker, head, claims(issuer.url))


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
