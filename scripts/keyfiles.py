"""Private keys on disk, for the local tools: the local issuer's signing keys (kept across
restarts, shared with `scripts/issuer rotate`) and a client's DPoP key (get-token --dpop,
dpop-proof, curl-matrix --dpop). Never committed: .local/ is gitignored."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from authpi_worker.testing import SigningKey, make_key


def save_keys(keys: list[SigningKey], directory: Path) -> None:
    """Persist keys (PEM) and their metadata, e.g. for the local issuer across restarts."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    index = []
    for key in keys:
        (directory / f"{key.kid}.pem").write_bytes(key.pem())
        index.append({"kid": key.kid, "alg": key.alg})
    # The index last, and atomically: a reader (the running local issuer) never sees half of it.
    staging = directory / "keys.json.tmp"
    staging.write_text(json.dumps(index, indent=2))
    staging.replace(directory / "keys.json")


def load_keys(directory: Path) -> list[SigningKey]:
    index_file = directory / "keys.json"
    if not index_file.exists():
        return []
    keys = []
    for entry in json.loads(index_file.read_text()):
        pem = (directory / f"{entry['kid']}.pem").read_bytes()
        keys.append(SigningKey(entry["alg"], entry["kid"], _private(pem, entry["kid"])))
    return keys


def load_or_make_key(path: Path, alg: str = "ES256") -> SigningKey:
    """A client's DPoP key in a PEM file (PKCS #8), made (mode 0600) if it does not exist."""
    if path.exists():
        private = _private(path.read_bytes(), str(path))
        if isinstance(private, ec.EllipticCurvePrivateKey):
            found = "ES256"
        elif isinstance(private, ed25519.Ed25519PrivateKey):
            found = "EdDSA"
        else:
            found = "RS256"
        return SigningKey(found, f"dpop-{path.stem}", private)
    key = make_key(alg, f"dpop-{path.stem}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(key.pem())
    return key


def _private(
    pem: bytes, name: str
) -> ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey:
    private = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(
        private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    ):
        raise ValueError(f"{name}: not an ES256, Ed25519 or RS256 private key")
    return private
