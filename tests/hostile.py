"""The hostile inputs, in one table each, that every verifier of ours must refuse: access
tokens (401 invalid_token) and DPoP proofs (401 invalid_dpop_proof, with the reason logged).

The core's tests (tests/test_tokens.py, tests/test_dpop.py) and the FastAPI integration's
(tests/test_fastapi.py) parametrize over these same tables, so a case added here is checked
against both.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from authpi_worker.dpop import MAX_JTI_LENGTH, MAX_PROOF_BYTES, PROOF_MAX_AGE, PROOF_MAX_FUTURE
from authpi_worker.testing.dpop import proof, proof_claims, proof_header, public_jwk
from authpi_worker.testing.keys import SigningKey, make_key
from authpi_worker.testing.tokens import (
    b64url,
    claims,
    edit_signature,
    encode_part,
    header,
    sign,
    unb64url,
    with_payload,
)
from authpi_worker.tokens import MAX_TOKEN_BYTES
from tests.conftest import WORKER
from tests.support.issuer import FakeIssuer

ME = f"{WORKER}/me"  # what the hostile proofs are made for: GET of this URL

Keys = dict[str, SigningKey]
Forge = Callable[[FakeIssuer, Keys], str]


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


HOSTILE_TOKENS: dict[str, Forge] = {
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


Make = Callable[[SigningKey, str], str | None]


def signed_proof(
    head: dict[str, Any] | bytes, claims: dict[str, Any] | bytes, key: SigningKey
) -> str:
    return sign(key, head, claims)


def _with_jwk(jwk: dict[str, Any], alg: str = "ES256") -> Make:
    """A proof whose header carries jwk, signed by the client's key."""
    return lambda k, t: signed_proof(
        {"typ": "dpop+jwt", "alg": alg, "jwk": jwk}, proof_claims("GET", ME, t), k
    )


HOSTILE_PROOFS: dict[str, tuple[Make, str]] = {
    # One proof (§4.3 step 1)
    "no DPoP header": (lambda k, t: None, "dpop_proof_missing"),
    "empty DPoP header": (lambda k, t: "", "dpop_proof_missing"),
    "two proofs (Headers.get joins them)": (
        lambda k, t: f"{proof(k, 'GET', ME, t)}, {proof(k, 'GET', ME, t)}",
        "dpop_proof_repeated",
    ),
    # A well-formed JWS, as strict as an access token (step 2)
    "not a JWS": (lambda k, t: "not-a-jws", "dpop_malformed"),
    "oversize": (
        lambda k, t: proof(k, "GET", ME, t, pad="x" * MAX_PROOF_BYTES),  # its own cap: 8 KiB
        "dpop_too_large",
    ),
    "padded base64": (lambda k, t: proof(k, "GET", ME, t).replace(".", "=.", 1), "dpop_malformed"),
    "header not JSON": (
        lambda k, t: "bm90IGpzb24." + proof(k, "GET", ME, t).split(".", 1)[1],
        "dpop_malformed",
    ),
    "duplicate claim names": (
        lambda k, t: signed_proof(
            proof_header(k),
            json.dumps(proof_claims("GET", ME, t))[:-1].encode() + b', "htm": "GET"}',
            k,
        ),
        "dpop_malformed",
    ),
    "payload not UTF-8": (
        lambda k, t: signed_proof(proof_header(k), b'{"htm":"\xff"}', k),
        "dpop_malformed",
    ),
    "crit": (
        lambda k, t: proof(k, "GET", ME, t, head=proof_header(k, crit=["exp"])),
        "dpop_unsupported_crit",
    ),
    # typ (step 4)
    "typ JWT": (
        lambda k, t: proof(k, "GET", ME, t, head=proof_header(k, typ="JWT")),
        "dpop_wrong_typ",
    ),
    "typ at+jwt (an access token as proof)": (
        lambda k, t: proof(k, "GET", ME, t, head=proof_header(k, typ="at+jwt")),
        "dpop_wrong_typ",
    ),
    "typ missing": (
        lambda k, t: proof(k, "GET", ME, t, head=proof_header(k, typ=None)),
        "dpop_wrong_typ",
    ),
    # alg (step 5): asymmetric, allowed, fitting the key
    "alg none": (
        lambda k, t: (
            f"{encode_part(proof_header(k, alg='none'))}.{encode_part(proof_claims('GET', ME, t))}."
        ),
        "dpop_malformed",  # an empty signature segment is no compact JWS
    ),
    "alg none, a signature": (
        lambda k, t: (
            f"{encode_part(proof_header(k, alg='none'))}."
            f"{encode_part(proof_claims('GET', ME, t))}.{b64url(b'x')}"
        ),
        "dpop_unsupported_alg",
    ),
    "alg HS256": (
        lambda k, t: proof(k, "GET", ME, t, head=proof_header(k, alg="HS256")),
        "dpop_unsupported_alg",
    ),
    "alg ES384": (
        lambda k, t: proof(k, "GET", ME, t, head=proof_header(k, alg="ES384")),
        "dpop_unsupported_alg",
    ),
    "alg RS256 with an EC jwk": (
        lambda k, t: proof(k, "GET", ME, t, head=proof_header(k, alg="RS256")),
        "dpop_alg_key_mismatch",
    ),
    "alg EdDSA with an EC jwk": (
        lambda k, t: proof(k, "GET", ME, t, head=proof_header(k, alg="EdDSA")),
        "dpop_alg_key_mismatch",
    ),
    # jwk (steps 5 and 7): a public key, no private members
    "no jwk": (lambda k, t: proof(k, "GET", ME, t, head=proof_header(k, jwk=None)), "dpop_bad_jwk"),
    "jwk a string": (
        lambda k, t: proof(k, "GET", ME, t, head=proof_header(k, jwk="key")),
        "dpop_bad_jwk",
    ),
    "jwk with the private d": (
        lambda k, t: proof(
            k, "GET", ME, t, head=proof_header(k, jwk={**public_jwk(k), "d": "AAAA"})
        ),
        "dpop_bad_jwk",
    ),
    "jwk an HMAC secret": (
        _with_jwk({"kty": "oct", "k": "c2VjcmV0"}, "HS256"),
        "dpop_unsupported_alg",
    ),
    "jwk an oct key under ES256": (_with_jwk({"kty": "oct", "k": "c2VjcmV0"}), "dpop_bad_jwk"),
    # The signature, with the header's jwk (step 6)
    "signed by another key than its jwk": (
        lambda k, t: signed_proof(proof_header(k), proof_claims("GET", ME, t), make_key("ES256")),
        "dpop_bad_signature",
    ),
    "signature edited": (lambda k, t: edit_signature(proof(k, "GET", ME, t)), "dpop_bad_signature"),
    # htm and htu (steps 8 and 9)
    "htm POST for a GET": (lambda k, t: proof(k, "POST", ME, t), "dpop_wrong_htm"),
    "htm in lower case": (lambda k, t: proof(k, "get", ME, t), "dpop_wrong_htm"),
    "htm missing": (lambda k, t: proof(k, "GET", ME, t, htm=None), "dpop_wrong_htm"),
    "htu another path": (lambda k, t: proof(k, "GET", f"{WORKER}/reports", t), "dpop_wrong_htu"),
    "htu another host": (
        lambda k, t: proof(k, "GET", "https://evil.example/me", t),
        "dpop_wrong_htu",
    ),
    "htu http for https": (
        lambda k, t: proof(k, "GET", ME.replace("https", "http"), t),
        "dpop_wrong_htu",
    ),
    "htu another port": (
        lambda k, t: proof(k, "GET", "https://authpi-worker.example:8443/me", t),
        "dpop_wrong_htu",
    ),
    "htu with user info": (
        lambda k, t: proof(k, "GET", "https://u@authpi-worker.example/me", t),
        "dpop_wrong_htu",
    ),
    "htu relative": (lambda k, t: proof(k, "GET", "/me", t), "dpop_wrong_htu"),
    "htu missing": (lambda k, t: proof(k, "GET", ME, t, htu=None), "dpop_wrong_htu"),
    "htu a list": (lambda k, t: proof(k, "GET", ME, t, htu=[ME]), "dpop_wrong_htu"),
    # iat (step 11)
    "iat missing": (lambda k, t: proof(k, "GET", ME, t, iat=None), "dpop_bad_iat"),
    "iat a string": (
        lambda k, t: proof(k, "GET", ME, t, iat=str(int(time.time()))),
        "dpop_bad_iat",
    ),
    "iat true": (lambda k, t: proof(k, "GET", ME, t, iat=True), "dpop_bad_iat"),
    "iat too old": (
        lambda k, t: proof(k, "GET", ME, t, iat=int(time.time()) - PROOF_MAX_AGE - 5),
        "dpop_iat_out_of_window",
    ),
    "iat too far ahead": (
        lambda k, t: proof(k, "GET", ME, t, iat=int(time.time()) + PROOF_MAX_FUTURE + 5),
        "dpop_iat_out_of_window",
    ),
    # jti (§11.1)
    "jti missing": (lambda k, t: proof(k, "GET", ME, t, jti=None), "dpop_bad_jti"),
    "jti empty": (lambda k, t: proof(k, "GET", ME, t, jti=""), "dpop_bad_jti"),
    "jti a number": (lambda k, t: proof(k, "GET", ME, t, jti=7), "dpop_bad_jti"),
    "jti too long": (
        lambda k, t: proof(k, "GET", ME, t, jti="x" * (MAX_JTI_LENGTH + 1)),
        "dpop_bad_jti",
    ),
    # ath (step 12)
    "ath missing": (lambda k, t: proof(k, "GET", ME, None), "dpop_wrong_ath"),
    "ath of another token": (lambda k, t: proof(k, "GET", ME, t + "x"), "dpop_wrong_ath"),
    "ath of the token, padded": (
        lambda k, t: proof(k, "GET", ME, t, ath=proof_claims("GET", ME, t)["ath"] + "="),
        "dpop_wrong_ath",
    ),
}
