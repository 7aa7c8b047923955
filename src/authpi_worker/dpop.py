"""DPoP (RFC 9449): the proof that a client holds the key its access token is bound to.

A proof is a JWS the client signs for one request: its header carries the public key (`jwk`),
its claims name the request (`htm`, `htu`), the time (`iat`), a one-time id (`jti`) and the
token (`ath`). Each is checked as RFC 9449 §4.3 lists, with the same strict parsing as access
tokens, and every check that fails has a reason code of its own. The proof's signature is
verified on every request: only the work of reading its key is cached.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import re
from base64 import urlsafe_b64encode
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from authpi_worker.config import normalized_origin
from authpi_worker.errors import InvalidDpopProof, InvalidToken
from authpi_worker.keys import parse_jwk, thumbprint, thumbprint_as_sent
from authpi_worker.tokens import (
    b64decode,
    check_signature,
    json_object,
    numeric,
    read_header,
    split,
)

# RFC 9449 §4.2: typ says DPoP proof; compared as at+jwt is (any case, application/ prefix).
DPOP_TYPES = frozenset({"dpop+jwt", "application/dpop+jwt"})
# Asymmetric only (§4.2); the `algs` our challenges offer (§7.1). Never none or HS*.
DPOP_ALGORITHMS = ("ES256", "Ed25519", "EdDSA", "RS256")
PROOF_MAX_AGE = 300  # seconds a proof's iat may lie in the past (§11.1: a short window)
PROOF_MAX_FUTURE = 30  # seconds it may lie ahead: a client's clock that runs a little fast
MAX_JTI_LENGTH = 256  # a random jti is 22-43 characters; anything longer only fills the cache
# Accepted proofs remembered per isolate, about 100 bytes each. A flood of more within the
# window narrows the window (see ReplayCache) instead of letting an evicted proof through.
REPLAY_CACHE_SIZE = 10_000
# Proof headers whose jwk was read: a client sends the same header with every proof, and
# reading a key (point validation, RSA numbers) and hashing its thumbprint is not free.
PROOF_KEY_CACHE_SIZE = 256

_ALLOWED = frozenset(DPOP_ALGORITHMS)
_PERCENT = re.compile(r"%[0-9A-Fa-f]{2}")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


@dataclass(frozen=True, slots=True)
class ProofKey:
    """What a proof header yields once checked: its alg, the public key, and its thumbprint."""

    alg: str
    key: Any
    jkt: str


class ReplayCache:
    """The jtis of accepted proofs, each kept until its iat leaves the window (then the age
    check refuses a replay anyway). Bounded: when full, the entry with the oldest iat goes,
    and from then on proofs that old or older are refused (`floor`). So a flood shortens the
    window the isolate accepts; it never lets an evicted proof be replayed."""

    def __init__(self, size: int = REPLAY_CACHE_SIZE) -> None:
        self.size = size
        self.floor = -math.inf  # the newest iat evicted while still inside the window
        self._seen: dict[str, float] = {}
        self._by_iat: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, jti: str) -> bool:
        return jti in self._seen

    def remember(self, jti: str, iat: float, now: float) -> None:
        horizon = now - PROOF_MAX_AGE
        while self._by_iat and self._by_iat[0][0] < horizon:
            self._seen.pop(heapq.heappop(self._by_iat)[1], None)
        if len(self._seen) >= self.size:
            oldest, evicted = heapq.heappop(self._by_iat)
            del self._seen[evicted]
            self.floor = max(self.floor, oldest)
        self._seen[jti] = iat
        heapq.heappush(self._by_iat, (iat, jti))


class ProofChecker:
    """Checks DPoP proofs for one isolate: the replay cache and the proof-key cache."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.replays = ReplayCache()
        self._keys: OrderedDict[str, ProofKey] = OrderedDict()
        self._clock = clock

    def check(self, proof: str | None, *, method: str, url: str, token: str, jkt: str) -> None:
        """Raise InvalidDpopProof (or InvalidToken, for a key that is not the token's) unless
        proof is one valid DPoP proof for this request, this token and its bound key."""
        if not proof:
            raise InvalidDpopProof("dpop_proof_missing", "DPoP proof missing")
        if "," in proof or " " in proof:  # Headers.get joins repeated fields with ", "
            raise InvalidDpopProof("dpop_proof_repeated", "more than one DPoP proof")
        try:
            header_b64, payload_b64, signature_b64 = split(proof)
        except InvalidToken as problem:
            _refuse(problem)
        found = self._key(header_b64, jkt)  # the binding first: no key work for another key
        try:
            signing_input = f"{header_b64}.{payload_b64}".encode("ascii")
            check_signature(found.alg, signing_input, b64decode(signature_b64), found.key)
            claims = json_object(b64decode(payload_b64), "payload")
        except InvalidToken as problem:
            _refuse(problem)
        now = self._clock()
        if claims.get("htm") != method:
            raise InvalidDpopProof("dpop_wrong_htm", "htm does not match the request method")
        htu = claims.get("htu")
        expected = normalized_url(url)  # None for no absolute http(s) URL: it matches nothing
        if expected is None or not isinstance(htu, str) or normalized_url(htu) != expected:
            raise InvalidDpopProof("dpop_wrong_htu", "htu does not match the request URL")
        iat = _iat(claims)
        if not now - PROOF_MAX_AGE <= iat <= now + PROOF_MAX_FUTURE:
            raise InvalidDpopProof("dpop_iat_out_of_window", "proof iat outside the window")
        if iat <= self.replays.floor:
            raise InvalidDpopProof("dpop_iat_out_of_window", "proof iat outside the window")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
            raise InvalidDpopProof("dpop_bad_jti", "proof jti missing or invalid")
        if self.replays.seen(jti):
            raise InvalidDpopProof("dpop_replayed", "proof already used")
        if claims.get("ath") != access_token_hash(token):
            raise InvalidDpopProof("dpop_wrong_ath", "ath does not match the access token")
        self.replays.remember(jti, iat, now)

    def _key(self, header_b64: str, jkt: str) -> ProofKey:
        """The checked header's key, if it is the one the token is bound to (§4.3 steps 4, 5, 7
        and 12). Read once per distinct header: a client sends the same one every time."""
        found = self._keys.get(header_b64)
        if found is None:
            found = self._read_key(header_b64, jkt)
            self._keys[header_b64] = found
            if len(self._keys) > PROOF_KEY_CACHE_SIZE:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(header_b64)
            if found.jkt != jkt:
                raise _key_mismatch()
        return found

    def _read_key(self, header_b64: str, jkt: str) -> ProofKey:
        """The header read, then the binding compared on the jwk's members as sent (hashing
        them is all the work another key's proof gets), then the key read and checked."""
        try:
            header, alg = read_header(header_b64, DPOP_TYPES, _ALLOWED, "a DPoP proof")
        except InvalidToken as problem:
            _refuse(problem)
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            raise InvalidDpopProof("dpop_bad_jwk", "proof has no jwk")
        try:
            sent = thumbprint_as_sent(jwk)
        except ValueError:
            raise InvalidDpopProof("dpop_bad_jwk", "proof jwk is not a usable public key") from None
        if sent != jkt:
            raise _key_mismatch()
        try:
            key = parse_jwk(jwk)
        except ValueError:
            raise InvalidDpopProof("dpop_bad_jwk", "proof jwk is not a usable public key") from None
        if thumbprint(key) != sent:  # another spelling of a key: the binding names the canonical
            raise InvalidDpopProof("dpop_bad_jwk", "proof jwk is not in its canonical form")
        if alg not in key.algs:
            raise InvalidDpopProof("dpop_alg_key_mismatch", "algorithm does not fit the key")
        return ProofKey(alg, key.key, sent)


def _key_mismatch() -> InvalidToken:
    """A proof of another key than the token's (§4.3 step 12): a thief's own key, so the
    token is what is refused (invalid_token)."""
    return InvalidToken("dpop_key_mismatch", "token is bound to another key")


def access_token_hash(token: str) -> str:
    """RFC 9449 §4.2 `ath`: base64url(SHA-256(the ASCII access token)), unpadded."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def normalized_url(url: str) -> str | None:
    """The URL as RFC 9449 §4.3 compares htu: without query and fragment, after RFC 3986
    §6.2.2-6.2.3 normalisation (scheme and host in lower case, no default port, percent-
    encodings in upper case, unreserved characters decoded, an empty path as /). None when
    it is no absolute http(s) URL."""
    found = normalized_origin(url)
    if found is None:
        return None
    origin, parts = found
    return origin + (_PERCENT.sub(_percent, parts.path) or "/")


def _percent(match: re.Match[str]) -> str:
    char = chr(int(match.group()[1:], 16))
    return char if char in _UNRESERVED else match.group().upper()


def _iat(claims: dict[str, Any]) -> float:
    try:
        iat = numeric(claims, "iat")
    except InvalidToken:
        iat = None
    if iat is None:
        raise InvalidDpopProof("dpop_bad_iat", "proof iat missing or not a number")
    return iat


def _refuse(problem: InvalidToken) -> NoReturn:
    """A proof that fails the parsing and signature rules shared with access tokens: the same
    check, reported as a proof error with its own reason code."""
    raise InvalidDpopProof(f"dpop_{problem.reason}", problem.description) from None
