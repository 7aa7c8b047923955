"""DPoP proofs (RFC 9449) as a client makes them: for tests, scripts/dpop-proof and
scripts/get-token --dpop. Beside the token factory; hostile proofs are made by overrides."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any

from authpi_worker.testing.keys import SigningKey
from authpi_worker.testing.tokens import b64url, sign

PROOF_TYPE = "dpop+jwt"
# RFC 7638 §3.2 (RFC 8037 §2 for OKP): the members a thumbprint hashes, written out here
# rather than taken from the Worker's code, so a misreading there is not repeated here.
_REQUIRED = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}


def public_jwk(key: SigningKey) -> dict[str, Any]:
    """The proof key's public JWK, as a client puts it in the header: no kid, alg or use."""
    return {k: v for k, v in key.jwk().items() if k not in ("kid", "alg", "use")}


def jkt(key: SigningKey | dict[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a key's public JWK: what a token's cnf.jkt holds."""
    jwk = public_jwk(key) if isinstance(key, SigningKey) else key
    members = {name: jwk[name] for name in _REQUIRED[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())


def ath(token: str) -> str:
    """RFC 9449 §4.2: base64url(SHA-256(access token))."""
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


def proof_header(key: SigningKey, alg: str | None = None, **overrides: Any) -> dict[str, Any]:
    """typ dpop+jwt, the key's alg, its public jwk; an override of None drops the member."""
    base: dict[str, Any] = {"typ": PROOF_TYPE, "alg": alg or key.alg, "jwk": public_jwk(key)}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def proof_claims(
    method: str, url: str, token: str | None = None, **overrides: Any
) -> dict[str, Any]:
    """htm, htu, a fresh iat and jti, and ath when a token goes with it; None drops one."""
    base: dict[str, Any] = {
        "htm": method,
        "htu": url,
        "iat": int(time.time()),
        "jti": secrets.token_urlsafe(16),
    }
    if token is not None:
        base["ath"] = ath(token)
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def proof(
    key: SigningKey,
    method: str,
    url: str,
    token: str | None = None,
    *,
    head: dict[str, Any] | bytes | None = None,
    alg: str | None = None,
    **claim_overrides: Any,
) -> str:
    """A valid proof for one request unless the overrides make it otherwise. alg is the name
    in the header (Ed25519 keys sign as EdDSA or Ed25519 alike)."""
    header = head if head is not None else proof_header(key, alg)
    sign_alg = "EdDSA" if (alg or key.alg) == "Ed25519" else (alg or key.alg)
    return sign(key, header, proof_claims(method, url, token, **claim_overrides), alg=sign_alg)
