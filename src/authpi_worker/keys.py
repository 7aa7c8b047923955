"""The key set: which JWKs from the issuer's document may verify which algorithm.

A key is usable only in the algorithm its kty/crv implies (RFC 8725 §3.1): EC P-256 → ES256,
RSA of 2048 bits or more → RS256, OKP Ed25519 → Ed25519, under either of its names (RFC 9864's
fully specified `Ed25519`, or the polymorphic `EdDSA` it deprecates). Anything else in the
document is skipped with a note, and never stops the good keys from working.
"""

from __future__ import annotations

import hashlib
import json
from base64 import urlsafe_b64encode
from dataclasses import dataclass, field
from typing import Any

from jwt import PyJWK

# 512 KiB and 100 keys: a real issuer publishes a handful; more is a broken or hostile document.
MAX_JWKS_BYTES = 512 * 1024
MAX_KEYS = 100
MIN_RSA_BITS = 2048  # RFC 8725 §3.5 / NIST: shorter RSA keys are not trusted
# RFC 9864: Ed25519 is the fully specified name; EdDSA, which it deprecates, still names it.
ED25519_NAMES = frozenset({"Ed25519", "EdDSA"})
# RFC 7517 §4, RFC 7518 §6: the members we read, each a string when present (key_ops, read
# too, is an array of strings). Checked before any use: a list or an object where a string
# belongs must refuse the key, never raise (an unhashable value in a set test is a TypeError).
STRING_MEMBERS = ("kty", "crv", "alg", "use", "kid", "x", "y", "n", "e")
# RFC 7517/7518 private members: a public key set (or a DPoP proof's jwk) must have none.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# RFC 7638 §3.2: the members a thumbprint hashes, by kty (RFC 8037 §2 for OKP).
THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
}


class InvalidKeySet(ValueError):
    """The document as a whole is unusable (not JSON, no `keys` list, too big)."""


@dataclass(frozen=True, slots=True)
class Key:
    kid: str | None
    alg: str  # the algorithm its kty/crv implies: ES256, RS256 or EdDSA
    key: Any  # a cryptography public key object
    algs: frozenset[str] = field(init=False)  # the header `alg` values it may verify

    def __post_init__(self) -> None:
        algs = ED25519_NAMES if self.alg == "EdDSA" else frozenset((self.alg,))
        object.__setattr__(self, "algs", algs)


@dataclass(frozen=True, slots=True)
class KeySet:
    by_kid: dict[str, Key]
    unnamed: tuple[Key, ...]
    skipped: tuple[str, ...] = field(default=())  # why each unusable JWK was left out

    def find(self, kid: str | None, alg: str) -> Key | None:
        """The key a token names, or for a token without kid the one key of its alg."""
        if kid is not None:
            return self.by_kid.get(kid)
        candidates = [k for k in self.all() if alg in k.algs]
        return candidates[0] if len(candidates) == 1 else None

    @property
    def fingerprint(self) -> frozenset[tuple[str | None, str, str]]:
        """What identifies the set's usable keys, to notice a rotation or a removal."""
        return frozenset((k.kid, k.alg, _public_numbers(k.key)) for k in self.all())

    def all(self) -> tuple[Key, ...]:
        return (*self.by_kid.values(), *self.unnamed)


def parse_jwks(body: bytes) -> KeySet:
    """Parse a JWKS document (RFC 7517 §5). Raises InvalidKeySet only for the whole document."""
    if len(body) > MAX_JWKS_BYTES:
        raise InvalidKeySet(f"document over {MAX_JWKS_BYTES} bytes")
    try:
        document = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        raise InvalidKeySet("not JSON") from None
    jwks = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(jwks, list):
        raise InvalidKeySet("no keys list")
    if len(jwks) > MAX_KEYS:
        raise InvalidKeySet(f"more than {MAX_KEYS} keys")
    by_kid: dict[str, Key] = {}
    unnamed: list[Key] = []
    skipped: list[str] = []
    duplicated: set[str] = set()
    for index, jwk in enumerate(jwks):
        try:
            key = parse_jwk(jwk)
        except ValueError as problem:
            skipped.append(f"key {index}: {problem}")
            continue
        if key.kid is None:
            unnamed.append(key)
        elif key.kid in by_kid or key.kid in duplicated:  # two keys under one kid: trust neither
            skipped.append(f"key {index}: duplicate kid")
            duplicated.add(key.kid)
            by_kid.pop(key.kid, None)
        else:
            by_kid[key.kid] = key
    if not by_kid and not unnamed:
        raise InvalidKeySet(f"no usable keys ({len(skipped)} skipped)")
    return KeySet(by_kid, tuple(unnamed), tuple(skipped))


def parse_jwk(jwk: object) -> Key:
    """One JWK → a Key, or ValueError saying why it may not verify anything."""
    if not isinstance(jwk, dict):
        raise ValueError("not an object")
    _check_types(jwk)
    alg = _implied_alg(jwk)
    declared = jwk.get("alg", alg)
    if declared != alg and not (alg == "EdDSA" and declared in ED25519_NAMES):
        raise ValueError(f"alg {declared!r} does not fit kty/crv")
    if jwk.get("use", "sig") != "sig":
        raise ValueError("use is not sig")
    if "key_ops" in jwk and "verify" not in jwk["key_ops"]:
        raise ValueError("key_ops lack verify")
    if not PRIVATE_MEMBERS.isdisjoint(jwk):
        raise ValueError("private key material in a public key")
    kid = jwk.get("kid")
    try:
        key = PyJWK(jwk, alg).key
    except Exception as error:  # PyJWT raises several types on hostile input; none may escape
        raise ValueError(f"unreadable {alg} key ({type(error).__name__})") from None
    _check_key(key, alg)
    return Key(kid, alg, key)


def thumbprint(key: Key) -> str:
    """The RFC 7638 SHA-256 thumbprint, base64url: the required members only, in their canonical
    form (re-encoded from the key itself, so two spellings of one key have one thumbprint)."""
    jwk = _to_jwk(key.key)
    members = {name: jwk[name] for name in THUMBPRINT_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode("ascii")


def _to_jwk(key: Any) -> dict[str, Any]:
    # Imported here for the reason _check_key gives: PyJWT defines these only with cryptography.
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    if isinstance(key, EllipticCurvePublicKey):
        return ECAlgorithm.to_jwk(key, as_dict=True)
    if isinstance(key, RSAPublicKey):
        return RSAAlgorithm.to_jwk(key, as_dict=True)
    return OKPAlgorithm.to_jwk(key, as_dict=True)


def _check_types(jwk: dict[str, Any]) -> None:
    """Every member we read has its JSON type, or ValueError naming it."""
    for name in STRING_MEMBERS:
        if name in jwk and not isinstance(jwk[name], str):
            raise ValueError(f"{name} is not a string")
    if "key_ops" in jwk:
        ops = jwk["key_ops"]
        if not isinstance(ops, list) or not all(isinstance(op, str) for op in ops):
            raise ValueError("key_ops is not an array of strings")


def _implied_alg(jwk: dict[str, Any]) -> str:
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if kty == "EC" and crv == "P-256":
        return "ES256"
    if kty == "OKP" and crv == "Ed25519":
        return "EdDSA"
    if kty == "RSA":
        return "RS256"
    raise ValueError(f"unsupported kty/crv {kty!r}/{crv!r}")


def _check_key(key: Any, alg: str) -> None:
    # cryptography is imported here, not at the top, so that the entry imports without it (the
    # Pyodide test stage has no build of it offline). Where it is installed, PyJWT has loaded it
    # at import anyway: the deploy snapshot still holds it.
    from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    ok = {
        "ES256": isinstance(key, EllipticCurvePublicKey) and isinstance(key.curve, SECP256R1),
        "EdDSA": isinstance(key, Ed25519PublicKey),
        "RS256": isinstance(key, RSAPublicKey) and key.key_size >= MIN_RSA_BITS,
    }[alg]
    if not ok:
        raise ValueError(f"not a usable {alg} public key")


def _public_numbers(key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if isinstance(key, Ed25519PublicKey):
        return key.public_bytes_raw().hex()
    return repr(key.public_numbers())
