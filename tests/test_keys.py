"""Which JWKs may verify which algorithm, and documents that must not break the good keys."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from authpi_worker.keys import MAX_JWKS_BYTES, MAX_KEYS, InvalidKeySet, parse_jwk, parse_jwks
from authpi_worker.testing.keys import SigningKey, make_key
from authpi_worker.testing.tokens import b64url, encode_part
from authpi_worker.testing.tokens import claims as token_claims
from tests.conftest import Call
from tests.support.issuer import FakeIssuer
from tests.support.logs import logged

Keys = dict[str, SigningKey]


def document(*jwks: Any) -> bytes:
    return json.dumps({"keys": list(jwks)}).encode()


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_each_supported_key_is_usable_for_its_implied_alg(keys: Keys, alg: str) -> None:
    key = parse_jwk(keys[alg].jwk())
    assert (key.kid, key.alg) == (keys[alg].kid, alg)


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_a_jwk_without_alg_is_usable_for_the_alg_its_kty_implies(keys: Keys, alg: str) -> None:
    assert parse_jwk(keys[alg].jwk(alg=None)).alg == alg


@pytest.mark.parametrize(
    ("make", "extra", "problem"),
    [
        (lambda: make_key("ES256"), {"alg": "ES384"}, "does not fit"),
        (lambda: make_key("ES256"), {"alg": "RS256"}, "does not fit"),
        (lambda: make_key("RS256"), {"alg": "PS256"}, "does not fit"),
        (lambda: make_key("RS256"), {"alg": "HS256"}, "does not fit"),
        (lambda: make_key("EdDSA"), {"alg": "ES256"}, "does not fit"),
        (lambda: make_key("ES256"), {"use": "enc"}, "use"),
        (lambda: make_key("ES256"), {"key_ops": ["encrypt"]}, "key_ops"),
        (lambda: make_key("ES256"), {"key_ops": "verify"}, "key_ops"),
        (lambda: make_key("ES256"), {"kid": 7}, "kid"),
        (lambda: make_key("ES256", curve="P-384"), {"alg": None}, "kty/crv"),
        (lambda: make_key("EdDSA", curve="Ed448"), {"alg": None}, "kty/crv"),
        (lambda: make_key("RS256", bits=1024), {}, "not a usable RS256"),
        (lambda: make_key("ES256"), {"x": "AAAA"}, "unreadable"),
        (lambda: make_key("ES256"), {"kty": "oct", "k": "c2VjcmV0"}, "kty/crv"),
    ],
)
def test_unusable_jwks_are_refused_with_a_reason(
    make: Any, extra: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_jwk(make().jwk(**extra))


def test_private_members_are_refused(keys: Keys) -> None:
    with pytest.raises(ValueError, match="private"):
        parse_jwk({**keys["ES256"].jwk(), "d": "AAAA"})


def test_bad_keys_never_break_the_good_ones(keys: Keys) -> None:
    body = document(
        "not an object",
        {"kty": "EC", "crv": "P-256"},  # no coordinates
        make_key("RS256", bits=1024).jwk(),
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        keys["ES256"].jwk(),
        keys["EdDSA"].jwk(),
    )
    key_set = parse_jwks(body)
    assert sorted(key_set.by_kid) == sorted([keys["ES256"].kid, keys["EdDSA"].kid])
    assert len(key_set.skipped) == 4


def test_two_keys_under_one_kid_are_both_distrusted(keys: Keys) -> None:
    twin = make_key("ES256", keys["ES256"].kid)
    key_set = parse_jwks(document(keys["ES256"].jwk(), twin.jwk(), twin.jwk(), keys["RS256"].jwk()))
    assert list(key_set.by_kid) == [keys["RS256"].kid]


@pytest.mark.parametrize(
    "body",
    [
        b"<html>502 Bad Gateway</html>",
        b"",
        b"\xff\xfe",
        b"[]",
        b'{"keys": {}}',
        b"[" * 100_000,
        json.dumps({"keys": [{"kty": "EC"}] * (MAX_KEYS + 1)}).encode(),
        b" " * (MAX_JWKS_BYTES + 1),
    ],
)
def test_unusable_documents_raise_invalid_key_set(body: bytes) -> None:
    with pytest.raises(InvalidKeySet):
        parse_jwks(body)


@pytest.mark.parametrize("body", [b'{"keys": []}', b'{"keys": [{"kty": "oct"}]}'])
def test_a_document_without_usable_keys_is_an_empty_set_not_an_error(body: bytes) -> None:
    """The issuer withdrew its keys (issue 14, item 1): the set is empty, every token refused."""
    assert parse_jwks(body).all() == ()


def test_a_token_without_kid_needs_exactly_one_key_of_its_alg(keys: Keys) -> None:
    two = parse_jwks(document(keys["ES256"].jwk(), make_key("ES256").jwk(), keys["RS256"].jwk()))
    assert two.find(None, "ES256") is None
    assert two.find(None, "RS256") is not None
    assert two.find(None, "EdDSA") is None


# --- Malformed members: a refused key, never an exception (issue 14, item 3) ----------------

# One value of each JSON type but string (and one that is no list of strings, for key_ops).
NOT_STRINGS: dict[str, object] = {
    "number": 7,
    "float": 1.5,
    "bool": True,
    "null": None,
    "list": ["x"],
    "object": {},
}
STRING_MEMBERS = ("kty", "crv", "alg", "use", "kid", "x", "y", "n", "e")


@pytest.mark.parametrize("declared", [["EdDSA"], {}, ["Ed25519"], {"EdDSA": 1}])
def test_an_okp_jwk_whose_alg_is_not_a_string_is_refused_not_a_type_error(
    keys: Keys, declared: object
) -> None:
    """Regression: `declared in ED25519_NAMES` raised TypeError for a list or an object
    (unhashable), which failed the whole JWKS refresh, or made a DPoP proof a 500."""
    with pytest.raises(ValueError, match="alg"):
        parse_jwk(keys["EdDSA"].jwk(alg=declared))


@pytest.mark.parametrize("kind", list(NOT_STRINGS))
@pytest.mark.parametrize("member", STRING_MEMBERS)
@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_every_member_read_must_be_a_string(keys: Keys, alg: str, member: str, kind: str) -> None:
    """kty, crv, alg, use, kid, x, y, n, e: when present, strings, whatever the key type."""
    with pytest.raises(ValueError, match=member):
        parse_jwk({**keys[alg].jwk(), member: NOT_STRINGS[kind]})


@pytest.mark.parametrize(
    "ops",
    [None, "verify", {"verify": True}, ["verify", 7], ["verify", None], ["verify", ["sign"]], 1],
)
def test_key_ops_must_be_a_list_of_strings(keys: Keys, ops: object) -> None:
    with pytest.raises(ValueError, match="key_ops"):
        parse_jwk({**keys["ES256"].jwk(), "key_ops": ops})


def test_key_ops_naming_verify_among_other_strings_is_usable(keys: Keys) -> None:
    assert parse_jwk(keys["ES256"].jwk(key_ops=["verify", "sign"])).alg == "ES256"


@pytest.mark.parametrize("declared", [["EdDSA"], {}])
def test_a_malformed_jwk_is_skipped_and_the_good_key_beside_it_kept(
    keys: Keys, declared: object
) -> None:
    bad = make_key("EdDSA", "bad-alg").jwk(alg=declared)
    key_set = parse_jwks(document(bad, keys["EdDSA"].jwk()))
    assert list(key_set.by_kid) == [keys["EdDSA"].kid]
    assert len(key_set.skipped) == 1 and "alg" in key_set.skipped[0]


@pytest.mark.parametrize("declared", [["EdDSA"], {}])
async def test_a_malformed_jwk_in_the_issuers_set_leaves_the_good_keys_tokens_at_200(
    call: Call, issuer: FakeIssuer, keys: Keys, declared: object
) -> None:
    """Regression: the TypeError failed the whole refresh, and the good key's tokens got 503."""
    issuer.extra_jwks.append(make_key("EdDSA", "bad-alg").jwk(alg=declared))
    with logged() as events:
        reply = await call("/me", issuer.mint(keys["EdDSA"]))
    assert reply.status == 200
    skipped = [e for e in events if e["event"] == "jwks_key_skipped"]
    assert len(skipped) == 1 and "alg" in skipped[0]["detail"]
    assert not [e for e in events if e["event"] == "jwks_fetch_failed"]


# --- Ed25519 keys of small order (issue 14, item 7) ----------------------------------------

# Every encoding of a point of order 1, 2, 4 or 8 (libsodium's blocklist, either sign bit):
# with such a key, R = identity and S = 0 verify for many messages (every one, for the
# identity). Written out here from the curve's published values, not taken from keys.py.
_SMALL_ORDER_Y = {
    "identity": "01" + "00" * 31,
    "order 2": "ec" + "ff" * 30 + "7f",
    "order 4": "00" * 32,
    "order 8 (a)": "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "order 8 (b)": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "identity as y = p + 1": "ee" + "ff" * 30 + "7f",
    "order 4 as y = p": "ed" + "ff" * 30 + "7f",
}
SMALL_ORDER = {
    f"{name}{', x sign bit set' if sign else ''}": bytes.fromhex(y[:-2])
    + bytes([int(y[-2:], 16) | sign])
    for name, y in _SMALL_ORDER_Y.items()
    for sign in (0, 0x80)
}
IDENTITY = bytes.fromhex(_SMALL_ORDER_Y["identity"])
# R = the identity point, S = 0.
SMALL_ORDER_SIGNATURE = IDENTITY + bytes(32)


def small_order_jwk(point: bytes, kid: str | None = None) -> dict[str, Any]:
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(point)}
    return {**jwk, "kid": kid} if kid else jwk


def forged(point: bytes, make: Callable[[int], str]) -> str:
    """make(n) → a JWS signing input; the first one the small-order key `point` verifies
    R = identity, S = 0 over (cryptography's own check), with that signature appended."""
    public = Ed25519PublicKey.from_public_bytes(point)
    for attempt in range(500):  # an order-8 key verifies about one message in eight
        signing_input = make(attempt)
        try:
            public.verify(SMALL_ORDER_SIGNATURE, signing_input.encode())
        except InvalidSignature:
            continue
        return f"{signing_input}.{b64url(SMALL_ORDER_SIGNATURE)}"
    raise AssertionError(f"no message verified with {point.hex()}")


def test_small_order_keys_forge_signatures_in_cryptography_itself() -> None:
    """Why the keys are refused: cryptography (OpenSSL) accepts the identity as a public key,
    and with it R = identity, S = 0 verifies for any message."""
    public = Ed25519PublicKey.from_public_bytes(IDENTITY)
    for message in (b"", b"any message at all", b"eyJhbGciOiJFZERTQSJ9.e30"):
        public.verify(SMALL_ORDER_SIGNATURE, message)  # raises if the forgery failed
    for point in SMALL_ORDER.values():  # and every other encoding verifies some message
        assert forged(point, lambda n: f"message-{n}")


@pytest.mark.parametrize("name", list(SMALL_ORDER))
def test_small_order_ed25519_keys_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="small order"):
        parse_jwk(small_order_jwk(SMALL_ORDER[name]))


@pytest.mark.parametrize("name", list(SMALL_ORDER))
async def test_a_token_forged_with_a_published_small_order_key_is_unknown_kid(
    call: Call, issuer: FakeIssuer, keys: Keys, name: str
) -> None:
    """The issuer's set carries a small-order key beside its good ones: the key is skipped
    with its note, so a token that verifies under it (in cryptography) names an unknown kid."""
    point = SMALL_ORDER[name]
    issuer.extra_jwks.append(small_order_jwk(point, "small-order"))
    head = {"alg": "EdDSA", "typ": "at+jwt", "kid": "small-order"}
    token = forged(
        point, lambda n: f"{encode_part(head)}.{encode_part(token_claims(issuer.url, jti=n))}"
    )
    with logged() as events:
        reply = await call("/me", token)
        good = await call("/me", issuer.mint(keys["EdDSA"]))
    assert (reply.status, good.status) == (401, 200)
    assert [e["reason"] for e in events if e["event"] == "request_rejected"] == ["unknown_kid"]
    notes = [e["detail"] for e in events if e["event"] == "jwks_key_skipped"]
    assert len(notes) == 1 and "small order" in notes[0]


# --- RSA keys within what honest keys use (issue 14, item 5) -------------------------------


def rsa_jwk(n: int, e: int, kid: str = "rsa-bounds") -> dict[str, Any]:
    """An RSA public jwk of these numbers, each in the fewest bytes (RFC 7518 §6.3.1)."""
    return {"kty": "RSA", "n": b64_int(n), "e": b64_int(e), "kid": kid}


def b64_int(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def modulus(key: SigningKey) -> int:
    return int(key.private.public_key().public_numbers().n)  # type: ignore[union-attr]


@pytest.mark.parametrize("e", [3, 65537, 2**32 - 1])
def test_rsa_exponents_honest_keys_use_are_usable(keys: Keys, e: int) -> None:
    assert parse_jwk(rsa_jwk(modulus(keys["RS256"]), e)).alg == "RS256"


@pytest.mark.parametrize(
    "e",
    [1, 2, 65536, 2**32, 2**32 + 1, 2**64 + 1, (1 << 2047) | 1],
    ids=["1", "2", "65536", "2**32", "2**32+1", "2**64+1", "2048 bits"],
)
def test_rsa_exponents_outside_what_honest_keys_use_are_refused(keys: Keys, e: int) -> None:
    """Odd, at least 3, at most 2**32: a verification costs in the exponent's length."""
    with pytest.raises(ValueError, match="exponent"):
        parse_jwk(rsa_jwk(modulus(keys["RS256"]), e))


def test_an_rsa_modulus_over_4096_bits_is_refused_and_4096_bits_kept() -> None:
    assert parse_jwk(rsa_jwk((1 << 4095) | 1, 65537)).key.key_size == 4096
    with pytest.raises(ValueError, match="4096"):
        parse_jwk(rsa_jwk((1 << 4096) | 1, 65537))


def test_a_jwks_rsa_key_with_a_huge_exponent_is_skipped_before_it_is_read(keys: Keys) -> None:
    """The note is the bound's, not PyJWT's ("unreadable"): the numbers never reached it."""
    n = modulus(make_key("RS256", bits=3072))
    key_set = parse_jwks(document(rsa_jwk(n, (1 << 3071) | 1), keys["ES256"].jwk()))
    assert list(key_set.by_kid) == [keys["ES256"].kid]
    assert len(key_set.skipped) == 1 and "exponent" in key_set.skipped[0]
    assert "unreadable" not in key_set.skipped[0]
