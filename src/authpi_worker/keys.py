"""The key set: which JWKs from the issuer's document may verify which algorithm.

A key is usable only in the algorithm its kty/crv implies (RFC 8725 §3.1): EC P-256 → ES256,
RSA of 2048 to 4096 bits with an honest exponent → RS256, OKP Ed25519 not of small order →
Ed25519, under either of its names (RFC 9864's fully specified `Ed25519`, or the polymorphic
`EdDSA` it deprecates). Every member read must have its JSON type. Anything else in the
document is skipped with a note, and never stops the good keys from working. The same rules
judge a DPoP proof's jwk.
"""

from __future__ import annotations

import hashlib
import json
import re
from base64 import urlsafe_b64decode, urlsafe_b64encode
from dataclasses import dataclass, field
from typing import Any

from jwt import PyJWK

from authpi_worker import strict_json

# 512 KiB and 100 keys: a real issuer publishes a handful; more is a broken or hostile document.
MAX_JWKS_BYTES = 512 * 1024
MAX_KEYS = 100
MIN_RSA_BITS = 2048  # RFC 8725 §3.5 / NIST: shorter RSA keys are not trusted
# Honest RSA keys have a modulus of 2048 to 4096 bits and e = 65537 (3 in a few old ones). A
# verification costs in the modulus's and the exponent's length: a 3,072-bit exponent made one
# junk proof cost what 55 ES256 proofs do. So n and e are bounded, from their base64url lengths
# first (nothing larger is decoded), before PyJWT or cryptography see them.
MAX_RSA_BITS = 4096
MIN_RSA_EXPONENT = 3  # and odd: e = 1 is no key, an even e no RSA key
MAX_RSA_EXPONENT = 2**32  # NIST SP 800-56B caps e below 2**256; no honest key goes past 2**32
_MAX_N_CHARS = -(-(MAX_RSA_BITS // 8 + 1) * 4 // 3)  # 4096 bits, even with a leading zero byte
_MAX_E_CHARS = 8  # 6 bytes: 2**32 is 5, and a leading zero byte
# RFC 9864: Ed25519 is the fully specified name; EdDSA, which it deprecates, still names it.
ED25519_NAMES = frozenset({"Ed25519", "EdDSA"})
# RFC 7517 §4, RFC 7518 §6: the members we read, each a string when present (key_ops, read
# too, is an array of strings). Checked before any use: a list or an object where a string
# belongs must refuse the key, never raise (an unhashable value in a set test is a TypeError).
STRING_MEMBERS = ("kty", "crv", "alg", "use", "kid", "x", "y", "n", "e")
# Ed25519 points of order 1, 2, 4 and 8: their y coordinates, little-endian, as libsodium's
# blocklist has them (ge25519_has_small_order). Refused with either sign bit of x, which covers
# the 8 canonical encodings and 6 non-canonical ones (x = 0 with its sign bit set; y = p and
# y = p + 1, spellings of 0 and 1). A small-order key is no key: with the identity, R = identity
# and S = 0 verify every message (cryptography accepts both), with the others many messages.
SMALL_ORDER_ED25519 = frozenset(
    bytes.fromhex(y)
    for y in (
        "0000000000000000000000000000000000000000000000000000000000000000",  # 0: order 4
        "0100000000000000000000000000000000000000000000000000000000000000",  # 1: the identity
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p - 1: order 2
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p (= 0): order 4
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # p + 1 (= 1)
    )
)
# RFC 7517/7518 private members: a public key set (or a DPoP proof's jwk) must have none.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
# RFC 7638 §3.2: the members a thumbprint hashes, by kty (RFC 8037 §2 for OKP).
THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
}


_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")


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
    """Parse a JWKS document (RFC 7517 §5). Raises InvalidKeySet only for the whole document:
    one with no usable key is still the issuer's word (it withdrew them), an empty set."""
    if len(body) > MAX_JWKS_BYTES:
        raise InvalidKeySet(f"document over {MAX_JWKS_BYTES} bytes")
    try:
        document = strict_json.loads(body)
    except strict_json.InvalidJson as problem:
        raise InvalidKeySet(f"not JSON ({problem.reason})") from None
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
    if alg == "EdDSA":
        _check_ed25519(jwk.get("x", ""))
    elif alg == "RS256":
        _check_rsa(jwk.get("n", ""), jwk.get("e", ""))
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
    return _hash_members({name: jwk[name] for name in THUMBPRINT_MEMBERS[jwk["kty"]]})


def thumbprint_as_sent(jwk: dict[str, Any]) -> str:
    """The RFC 7638 thumbprint of a JWK's required members as they are spelled, each of which
    must be a string: no key is read, so it can be compared with a binding before any key
    work. ValueError for a kty it has no members for, or a member missing or not a string."""
    kty = jwk.get("kty")
    names = THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if names is None:
        raise ValueError(f"unsupported kty {kty!r}")
    members = {name: jwk.get(name) for name in names}
    for name, value in members.items():
        if not isinstance(value, str):
            raise ValueError(f"{name} is missing or not a string")
    return _hash_members(members)


def _hash_members(members: dict[str, Any]) -> str:
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


def _check_ed25519(x: str) -> None:
    """The public key's 32 bytes, and not a point of small order (checked on the bytes, before
    cryptography reads them: it would accept these)."""
    point = _b64decode(x, "x")
    if len(point) != 32:
        raise ValueError("x is not 32 bytes")
    if point[:31] + bytes((point[31] & 0x7F,)) in SMALL_ORDER_ED25519:
        raise ValueError("Ed25519 key of small order")


def _check_rsa(n: str, e: str) -> None:
    """The modulus and exponent within what honest keys use (MAX_RSA_BITS, the exponent's
    range), read from their lengths before any number is made of them."""
    if len(n) > _MAX_N_CHARS or int.from_bytes(_b64decode(n, "n"), "big").bit_length() > (
        MAX_RSA_BITS
    ):
        raise ValueError(f"RSA modulus over {MAX_RSA_BITS} bits")
    exponent = int.from_bytes(_b64decode(e, "e"), "big") if len(e) <= _MAX_E_CHARS else 0
    if not MIN_RSA_EXPONENT <= exponent <= MAX_RSA_EXPONENT or exponent % 2 == 0:
        raise ValueError("RSA exponent is not odd in [3, 2**32]")


def _b64decode(value: str, name: str) -> bytes:
    """A base64url member (RFC 7515 §2: no padding, no other characters)."""
    if _BASE64URL.fullmatch(value) is None or len(value) % 4 == 1:
        raise ValueError(f"{name} is not base64url")
    return urlsafe_b64decode(value + "=" * (-len(value) % 4))


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
