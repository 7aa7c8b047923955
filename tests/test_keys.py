"""Which JWKs may verify which algorithm, and documents that must not break the good keys."""

from __future__ import annotations

import json
from typing import Any

import pytest

from authpi_worker.keys import MAX_JWKS_BYTES, MAX_KEYS, InvalidKeySet, parse_jwk, parse_jwks
from authpi_worker.testing.keys import SigningKey, make_key

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
        b'{"keys": []}',
        b'{"keys": [{"kty": "oct"}]}',
        b"[" * 100_000,
        json.dumps({"keys": [{"kty": "EC"}] * (MAX_KEYS + 1)}).encode(),
        b" " * (MAX_JWKS_BYTES + 1),
    ],
)
def test_unusable_documents_raise_invalid_key_set(body: bytes) -> None:
    with pytest.raises(InvalidKeySet):
        parse_jwks(body)


def test_a_token_without_kid_needs_exactly_one_key_of_its_alg(keys: Keys) -> None:
    two = parse_jwks(document(keys["ES256"].jwk(), make_key("ES256").jwk(), keys["RS256"].jwk()))
    assert two.find(None, "ES256") is None
    assert two.find(None, "RS256") is not None
    assert two.find(None, "EdDSA") is None
