"""Testing helpers for APIs protected by authpi_worker: signing keys, AuthPI-shaped access
tokens (valid, or made hostile by overrides), DPoP proofs, and an in-process fake issuer
(`Issuer`: its keys, tokens and a JWKS fetcher without network), all made in-process; pytest
fixtures in authpi_worker.testing.fixtures.

Never imported by the verifier itself; it needs cryptography and PyJWT, which the verifier
requires anyway.
"""

from authpi_worker.testing.dpop import ath, jkt, proof, proof_claims, proof_header, public_jwk
from authpi_worker.testing.issuer import Issuer
from authpi_worker.testing.keys import SigningKey, make_key
from authpi_worker.testing.tokens import (
    AUDIENCE,
    caller,
    claims,
    edit_signature,
    header,
    header_of,
    mint,
    organization,
    payload_of,
    sign,
    with_payload,
)

__all__ = [
    "AUDIENCE",
    "Issuer",
    "SigningKey",
    "ath",
    "caller",
    "claims",
    "edit_signature",
    "header",
    "header_of",
    "jkt",
    "make_key",
    "mint",
    "organization",
    "payload_of",
    "proof",
    "proof_claims",
    "proof_header",
    "public_jwk",
    "sign",
    "with_payload",
]
