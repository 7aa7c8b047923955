"""The token rules: what makes a string a valid AuthPI access token for this API.

RFC 9068 (JWT access tokens) and RFC 8725 (JWT best practices), as a resource server must
apply them. Signatures are checked by PyJWT's algorithm objects on cryptography keys; every
structural and claim rule around them is explicit here, because jwt.decode is looser than
we need (it coerces numeric strings, accepts non-canonical base64url and Infinity).
"""

from __future__ import annotations

import math
import re
from base64 import urlsafe_b64decode
from collections.abc import Container, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from jwt.algorithms import Algorithm, get_default_algorithms

from authpi_worker import strict_json
from authpi_worker.config import Settings
from authpi_worker.errors import InvalidToken, MissingToken, Scheme

# Asymmetric only, and only those AuthPI signs with (Ed25519 under its RFC 9864 name too).
# Never HS* or none (RFC 8725 §3.1).
ALGORITHMS = ("ES256", "EdDSA", "Ed25519", "RS256")
# RFC 9068 §4: the header typ must say access token; this keeps ID and refresh tokens out.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})
# Checked before any parsing: against abuse, not against AuthPI's own tokens, which carry every
# membership (130-185 bytes each): 100 organizations make 13-19 KiB, 32 KiB holds 170-240 of
# them, and Cloudflare takes 128 KB of request headers.
MAX_TOKEN_BYTES = 32 * 1024
# The header is parsed before the signature is checked, so its JSON is attacker-made: a flat
# object, nothing like the thousands of nested brackets that exhaust Pyodide's wasm stack.
MAX_HEADER_BRACKETS = 32

_ALLOWED = frozenset(ALGORITHMS)  # parse() checks alg here: it needs no cryptography
# RFC 6750 §2.1 and RFC 9449 §7.1: `Bearer` or `DPoP` (any case), one or more spaces, one
# b64token.
_CREDENTIALS = re.compile(r"([Bb][Ee][Aa][Rr][Ee][Rr]|[Dd][Pp][Oo][Pp]) +([A-Za-z0-9\-._~+/]+=*)")
# Each scheme as clients write it (RFC 6750 §2.1, RFC 9449 §7.1): a header that is one of these
# and a token verified before skips the scan (see `credentials`); any other spelling is scanned.
BEARER_PREFIX = "Bearer "
DPOP_PREFIX = "DPoP "
_SCHEME = re.compile(r"([Bb][Ee][Aa][Rr][Ee][Rr]|[Dd][Pp][Oo][Pp])(?:\s|$)")
# Three segments of unpadded base64url (RFC 7515 §7.1), nothing else.
_COMPACT = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")


Window = tuple[float, float]  # from, until: when a token's time claims hold


@dataclass(frozen=True, slots=True)
class Parsed:
    """A JWS that is well formed; its signature is not yet checked."""

    header: dict[str, Any]
    alg: str
    kid: str | None
    signing_input: bytes
    signature: bytes
    # The payload as a JSON object: read before the signature is checked, for its iss (which
    # issuer's keys may verify it); trusted only once the signature is.
    claims: dict[str, Any]


def credentials(authorization: str | None, known: Container[str] = ()) -> tuple[Scheme, str]:
    """The scheme and b64token of an `Authorization: Bearer` or `DPoP` header, or why not.

    `known`: tokens verified before (the verified-token cache). A header that is exactly
    `Bearer ` or `DPoP ` (that case, one space) and one of them is taken without the scan below
    (~7 ns a character under Pyodide): every token in that cache passed `split`, at most
    MAX_TOKEN_BYTES of base64url and dots (a subset of b64token), so the scan would give the
    same answer. Any other header, a known token in another spelling too, gets every rule."""
    candidate = _prefixed(authorization)
    if candidate is not None and candidate[1] in known:
        return candidate
    if authorization is None or not (value := authorization.strip(" \t")):
        raise MissingToken()
    if len(authorization) > MAX_TOKEN_BYTES + 64:
        raise InvalidToken("too_large", "token too large")
    match = _CREDENTIALS.fullmatch(value)
    if match is not None:  # the common case, in one scan; only a failure needs the scheme test
        found = _scheme(match.group(1)), match.group(2)
        # The same token as the candidate's: return that string, whose hash the lookup above
        # computed and kept, so that the cache's own lookup does not hash the token again.
        return candidate if candidate == found else found
    scheme = _SCHEME.match(value)
    if scheme is None:
        raise MissingToken("unsupported_scheme")
    name = _scheme(scheme.group(1))
    error = InvalidToken("malformed", f"malformed {name} credentials")
    error.scheme = name
    raise error


def _prefixed(authorization: str | None) -> tuple[Scheme, str] | None:
    """The scheme and the rest of a header that starts with a scheme's exact prefix, unchecked;
    None for any other, and for one too long to hold a token `split` accepts."""
    if authorization is None or len(authorization) > MAX_TOKEN_BYTES + len(BEARER_PREFIX):
        return None
    if authorization.startswith(BEARER_PREFIX):
        return "Bearer", authorization[len(BEARER_PREFIX) :]
    if authorization.startswith(DPOP_PREFIX):
        return "DPoP", authorization[len(DPOP_PREFIX) :]
    return None


def _scheme(text: str) -> Scheme:
    return "DPoP" if text[0] in "Dd" else "Bearer"


def split(token: str, max_bytes: int = MAX_TOKEN_BYTES) -> tuple[str, str, str]:
    """The three base64url segments of a compact JWS (RFC 7515 §7.1), size-capped first
    (a DPoP proof may pass a cap of its own)."""
    if len(token) > max_bytes:
        raise InvalidToken("too_large", "token too large")
    match = _COMPACT.fullmatch(token)
    if match is None:
        raise InvalidToken("malformed", "not a compact JWS")
    header_b64, payload_b64, signature_b64 = match.groups()
    return header_b64, payload_b64, signature_b64


def read_header(
    header_b64: str, types: frozenset[str], algorithms: frozenset[str], what: str
) -> tuple[dict[str, Any], str]:
    """The header and its alg, checked: a flat JSON object, an allowed alg, an expected typ
    (any case, RFC 9068 §4 / RFC 9449 §4.2), no crit or b64 (RFC 8725 §3.1, §3.11)."""
    header_bytes = b64decode(header_b64)
    if header_bytes.count(b"{") + header_bytes.count(b"[") > MAX_HEADER_BRACKETS:
        raise InvalidToken("malformed", "header is not a flat JSON object")
    header = json_object(header_bytes, "header")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:  # a list or object is unhashable
        raise InvalidToken("unsupported_alg", "algorithm not allowed")
    typ = header.get("typ")
    if not isinstance(typ, str) or typ.lower() not in types:
        raise InvalidToken("wrong_typ", f"not {what}")
    if "crit" in header or "b64" in header:
        raise InvalidToken("unsupported_crit", "unsupported critical header")
    return header, alg


def parse(token: str) -> Parsed:
    """An access token's structure, header and payload (RFC 7515, RFC 8725 §3.1, §3.11,
    RFC 9068 §4); its signature is not checked yet."""
    header_b64, payload_b64, signature_b64 = split(token)
    header, alg = read_header(header_b64, ACCESS_TOKEN_TYPES, _ALLOWED, "an access token")
    kid = header.get("kid")
    if "kid" in header and (not isinstance(kid, str) or not kid):  # null too: not a string
        raise InvalidToken("malformed", "invalid kid")
    return Parsed(
        header=header,
        alg=alg,
        kid=kid,
        signing_input=f"{header_b64}.{payload_b64}".encode("ascii"),
        signature=b64decode(signature_b64),
        claims=json_object(b64decode(payload_b64), "payload"),
    )


def verify_signature(parsed: Parsed, key: Any) -> None:
    """The signature over header.payload, with a key the key set chose for parsed.alg."""
    check_signature(parsed.alg, parsed.signing_input, parsed.signature, key)


def check_signature(alg: str, signing_input: bytes, signature: bytes, key: Any) -> None:
    """A JWS signature (RFC 7515 §5.2) in alg, with a key already known to fit it."""
    if not _verifier(alg).verify(signing_input, key, signature):
        raise InvalidToken("bad_signature", "signature verification failed")


@cache
def _verifier(alg: str) -> Algorithm:
    """PyJWT's algorithm object for alg, made at the first signature check, not at import:
    it needs cryptography, and the entry must import without it (the Pyodide test stage).
    PyJWT knows Ed25519 only as EdDSA; the key set hands either name an Ed25519 key only."""
    return get_default_algorithms()["EdDSA" if alg == "Ed25519" else alg]


def check_claims(claims: Mapping[str, Any], settings: Settings, now: float) -> Window:
    """RFC 9068 §4 and RFC 7519 §4.1: iss, aud, exp, nbf, iat, sub. Returns the window in
    which the time rules hold, for the verified-token cache."""
    if claims.get("iss") not in settings.issuers:  # the Verifier chose its keys by this iss
        raise InvalidToken("wrong_issuer", "unexpected issuer")
    if not _for_us(claims.get("aud"), settings.audiences):
        raise InvalidToken("wrong_audience", "unexpected audience")
    window = check_times(claims, settings.clock_tolerance, now)
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise InvalidToken("missing_sub", "missing subject")
    return window


def check_times(claims: Mapping[str, Any], tolerance: int, now: float) -> Window:
    """exp is required; nbf and iat, when present, must not be in the future. Returns when
    these rules hold: from max(nbf, iat) until exp, each widened by the tolerance."""
    exp = numeric(claims, "exp")
    if exp is None:
        raise InvalidToken("missing_exp", "missing exp")
    if exp <= now - tolerance:
        raise InvalidToken("expired", "token expired")
    nbf = numeric(claims, "nbf")
    if nbf is not None and nbf > now + tolerance:
        raise InvalidToken("not_yet_valid", "token not yet valid")
    iat = numeric(claims, "iat")
    if iat is not None and iat > now + tolerance:
        raise InvalidToken("issued_in_future", "token issued in the future")
    starts = [start for start in (nbf, iat) if start is not None]
    return max(starts, default=-math.inf) - tolerance, exp + tolerance


def confirmation(claims: Mapping[str, Any]) -> str | None:
    """The key thumbprint a token is bound to (RFC 9449 §6.1 `cnf.jkt`), or None when unbound.
    A binding we cannot check (e.g. mTLS `x5t#S256`, RFC 8705) must not become a bearer token."""
    if "cnf" not in claims:
        return None
    cnf = claims["cnf"]
    if not isinstance(cnf, dict) or set(cnf) != {"jkt"}:
        raise InvalidToken("unsupported_cnf", "bound to a key we cannot check")
    jkt = cnf["jkt"]
    if not isinstance(jkt, str) or not jkt:
        raise InvalidToken("unsupported_cnf", "bound to a key we cannot check")
    return jkt


def _for_us(aud: object, ours: tuple[str, ...]) -> bool:
    """aud (RFC 7519 §4.1.3) is one of our audiences, or a list naming one of them."""
    if isinstance(aud, str):
        return aud in ours
    return isinstance(aud, list) and any(isinstance(name, str) and name in ours for name in aud)


def numeric(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate: a JSON number. Not a string, not a bool, not Infinity or NaN."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken("invalid_claim", f"{name} is not a number")
    try:
        number = float(value)
    except OverflowError:  # an integer beyond any float: Infinity, as 1e400 would parse
        number = math.inf
    if not math.isfinite(number):
        raise InvalidToken("invalid_claim", f"{name} is not a number")
    return number


def b64decode(segment: str) -> bytes:
    """Strict, canonical base64url: the alphabet is checked by _COMPACT; here, the tail."""
    tail = len(segment) % 4
    if tail == 1 or (tail and segment[-1] not in _CANONICAL_LAST[tail]):
        # A length of 4n+1 is impossible; set unused trailing bits are a second spelling.
        raise InvalidToken("malformed", "invalid base64url")
    return urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


# The last character of a 4n+2 / 4n+3 segment carries 4 / 2 unused bits, which must be 0.
_CANONICAL_LAST = {2: frozenset("AQgw"), 3: frozenset("AEIMQUYcgkosw048")}


def json_object(data: bytes, part: str) -> dict[str, Any]:
    """Strict JSON (authpi_worker.strict_json) with one object at the top."""
    try:
        value = strict_json.loads(data)
    except strict_json.InvalidJson as problem:
        why = "nests too deep" if problem.reason == "too_deep" else "is not JSON"
        raise InvalidToken("malformed", f"{part} {why}") from None
    if not isinstance(value, dict):
        raise InvalidToken("malformed", f"{part} is not a JSON object")
    return value
