"""Signing keys made at test time, with their public JWKs: never written to the repo."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

PrivateKey = (
    ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | rsa.RSAPrivateKey
)


@dataclass(frozen=True)
class SigningKey:
    alg: str
    kid: str
    private: PrivateKey

    def jwk(self, **extra: Any) -> dict[str, Any]:
        """The public JWK, with kid, alg and use=sig unless extra overrides or drops (None)."""
        public = self.private.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, rsa.RSAPublicKey):
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = OKPAlgorithm.to_jwk(public, as_dict=True)
        data = {**data, "kid": self.kid, "alg": self.alg, "use": "sig", **extra}
        return {k: v for k, v in data.items() if v is not None}

    def pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def make_key(alg: str, kid: str | None = None, *, bits: int = 2048, curve: str = "") -> SigningKey:
    """A fresh key for alg: ES256 (P-256 unless curve says), EdDSA (Ed25519, or Ed448), RS256."""
    private: PrivateKey
    if alg.startswith("ES"):
        curves = {"": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
        private = ec.generate_private_key(curves[curve])
    elif alg == "EdDSA":
        ed = ed448.Ed448PrivateKey if curve == "Ed448" else ed25519.Ed25519PrivateKey
        private = ed.generate()
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return SigningKey(alg, kid or f"{alg.lower()}-{secrets.token_hex(4)}", private)
