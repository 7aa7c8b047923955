"""DPoP (RFC 9449): the proof that a client holds the key its access token is bound to.

A proof is a JWS the client signs for one request: its header carries the public key (`jwk`),
its claims name the request (`htm`, `htu`), the time (`iat`), a one-time id (`jti`) and the
token (`ath`). Each is checked as RFC 9449 §4.3 lists, with the same strict parsing as access
tokens, and every check that fails has a reason code of its own. The binding comes first: the
jwk's thumbprint, from its members as sent, must be the token's cnf.jkt before the key is read
or any signature checked, so another key's proof costs a hash. The proof's signature is
verified on every request: only the work of reading its key is cached. Replays are refused per
proof key (ReplayCache): one client's flood narrows its own window, no one else's.
"""

from __future__ import annotations

import hashlib
import heapq
import math
import re
from base64 import urlsafe_b64encode
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
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
# Seconds a proof's iat may lie ahead: a client's clock that runs a little fast. NTP keeps
# clocks within a second or so; a few more for a device that syncs rarely. No more: a proof
# dated ahead is valid that much longer, and a flood dated ahead holds its key's window (see
# ReplayCache) shut that long.
PROOF_MAX_FUTURE = 5
MAX_JTI_LENGTH = 256  # a random jti is 22-43 characters; anything longer only fills the cache
# A proof holds one public key (an RSA-4096 JWK is ~750 characters) and a few claims; unlike an
# access token it carries no memberships, so it keeps a cap of its own, checked first.
MAX_PROOF_BYTES = 8192
# Accepted proofs remembered per isolate, all keys together (each a jti of at most 256
# characters and its iat). Bounds the memory whatever the traffic.
REPLAY_CACHE_SIZE = 10_000
# ...and per proof key: 1,000 in the 300 s window, over 3 requests a second. A key sending more
# still has its fresh proofs accepted; its oldest are evicted and refused from then on (see
# ReplayCache): it narrows its own window, no one else's.
REPLAY_CACHE_PER_KEY = 1_000
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


@dataclass(slots=True)
class _KeyReplays:
    """One proof key's accepted proofs: jti → iat, the same by iat (a heap), and its floor."""

    jtis: dict[str, float] = field(default_factory=dict)
    by_iat: list[tuple[float, str]] = field(default_factory=list)
    floor: float = -math.inf  # the newest iat of its own evicted while still in the window
    newest: float = -math.inf  # the newest iat remembered: the floor is never above it


class ReplayCache:
    """The jtis of accepted proofs, per proof key (its thumbprint), each kept until its iat
    leaves the window (then the age check refuses a replay anyway).

    Bounded per key and in all. A key at REPLAY_CACHE_PER_KEY loses its own oldest entry;
    when the whole cache is at REPLAY_CACHE_SIZE, the key holding the most loses its oldest.
    Either way that key's `floor` rises to the evicted iat and its proofs that old or older
    are refused: a flood narrows the window of the key that floods, never another's, and never
    lets an evicted proof be replayed. A key's record goes once its proofs (and so its floor)
    are out of the window. Only when every remembered proof is another key's (as many bound
    keys at once as the cache holds, each with its own token from the issuer) is a key
    forgotten whole, and its floor raises the isolate-wide `floor`: the residual."""

    def __init__(self, size: int = REPLAY_CACHE_SIZE, per_key: int = REPLAY_CACHE_PER_KEY) -> None:
        self.size = size
        self.per_key = per_key
        self.floor = -math.inf  # isolate-wide: raised only by forgetting a key whole
        self._keys: OrderedDict[str, _KeyReplays] = OrderedDict()  # least recently used first
        self._by_count: dict[int, OrderedDict[str, None]] = {}  # entries held → the keys
        self._largest = 0  # the most entries one key holds
        self._total = 0

    def __len__(self) -> int:
        return self._total

    @property
    def tracked(self) -> int:
        """How many keys have a record."""
        return len(self._keys)

    def seen(self, jkt: str, jti: str) -> bool:
        replays = self._keys.get(jkt)
        return replays is not None and jti in replays.jtis

    def floor_of(self, jkt: str) -> float:
        """Proofs of this key with an iat at or below this are refused."""
        replays = self._keys.get(jkt)
        return self.floor if replays is None else max(self.floor, replays.floor)

    def remember(self, jkt: str, jti: str, iat: float, now: float) -> None:
        horizon = now - PROOF_MAX_AGE
        self._forget_idle(horizon)
        replays = self._keys.get(jkt)
        if replays is None:
            replays = self._keys[jkt] = _KeyReplays()
        self._keys.move_to_end(jkt)
        while replays.by_iat and replays.by_iat[0][0] < horizon:
            self._pop_oldest(jkt, replays)  # expired: no floor needed
        if len(replays.jtis) >= self.per_key:
            self._evict(jkt, replays)
        elif self._total >= self.size:
            self._evict_from_largest(jkt, replays)
        self._resize(jkt, len(replays.jtis), len(replays.jtis) + 1)
        replays.jtis[jti] = iat
        heapq.heappush(replays.by_iat, (iat, jti))
        replays.newest = max(replays.newest, iat)

    def _forget_idle(self, horizon: float) -> None:
        """Drop the records of keys whose every proof, and so its floor, is out of the window
        (the least recently used first: the cost is paid once per record)."""
        while self._keys:
            jkt, replays = next(iter(self._keys.items()))
            if replays.newest >= horizon:
                return
            self._resize(jkt, len(replays.jtis), 0)
            del self._keys[jkt]

    def _evict_from_largest(self, jkt: str, current: _KeyReplays) -> None:
        """The cache is full: the key holding the most pays (the requesting one, if it is among
        them). If every key holds one proof, the least recently used key is forgotten whole."""
        if len(current.jtis) == self._largest:
            victim, replays = jkt, current
        elif self._largest > 1:
            victim = next(iter(self._by_count[self._largest]))
            replays = self._keys[victim]
        else:
            victim, replays = next(iter(self._keys.items()))
        self._evict(victim, replays)
        if not replays.jtis and victim != jkt:
            self.floor = max(self.floor, replays.floor)
            del self._keys[victim]

    def _evict(self, jkt: str, replays: _KeyReplays) -> None:
        """The key's oldest proof goes while it could still be replayed: its floor rises."""
        replays.floor = max(replays.floor, self._pop_oldest(jkt, replays))

    def _pop_oldest(self, jkt: str, replays: _KeyReplays) -> float:
        iat, jti = heapq.heappop(replays.by_iat)
        del replays.jtis[jti]
        self._resize(jkt, len(replays.jtis) + 1, len(replays.jtis))
        return iat

    def _resize(self, jkt: str, old: int, new: int) -> None:
        """Move a key between the per-count sets as its number of entries changes."""
        if old:
            keys = self._by_count[old]
            del keys[jkt]
            if not keys:
                del self._by_count[old]
        if new:
            self._by_count.setdefault(new, OrderedDict())[jkt] = None
        self._total += new - old
        self._largest = max(self._largest, new)
        while self._largest and self._largest not in self._by_count:
            self._largest -= 1


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
            header_b64, payload_b64, signature_b64 = split(proof, MAX_PROOF_BYTES)
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
        if iat <= self.replays.floor_of(jkt):  # narrowed by this key's own flood
            raise InvalidDpopProof("dpop_iat_out_of_window", "proof iat outside the window")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
            raise InvalidDpopProof("dpop_bad_jti", "proof jti missing or invalid")
        if self.replays.seen(jkt, jti):
            raise InvalidDpopProof("dpop_replayed", "proof already used")
        if claims.get("ath") != access_token_hash(token):
            raise InvalidDpopProof("dpop_wrong_ath", "ath does not match the access token")
        self.replays.remember(jkt, jti, iat, now)

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
