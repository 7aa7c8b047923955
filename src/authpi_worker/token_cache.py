"""The verified-token cache: a client that calls many times with one token pays for the
signature check once. Only successes are kept, never past the token's own exp, and each only
while the key set of the issuer that verified it is fresh and unchanged."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, Protocol, TypeVar

# Entries per isolate. Keyed by the whole token (an exact match, never a part of it that a
# forger could pair with other claims).
TOKEN_CACHE_SIZE = 1024
# And at most this many bytes of tokens: their claims take ~3x as much again as Python objects
# (~4x once an organization route has read a token's memberships into an index by id), and
# tokens up to 32 KiB (MAX_TOKEN_BYTES) must not let 1,024 of them fill an isolate's 128 MB.
TOKEN_CACHE_BYTES = 8 * 1024 * 1024


class KeySource(Protocol):
    """What verified a token: one issuer's key cache (jwks.KeyCache), whose version changes
    whenever its usable keys do."""

    version: int

    def fresh(self, now: float) -> bool: ...


V = TypeVar("V")  # what is kept of a verified token: the Verifier keeps its Entitlements

# what was verified, valid from, valid until, the issuer's key cache, its version then
Entry = tuple[V, float, float, KeySource, int]


class TokenCache(Generic[V]):
    """A bounded LRU from a token to what was verified of it (its claims). Each entry keeps the
    window its nbf/iat and exp allow, and the key set (and its version) of the issuer that
    verified it: a hit costs a few comparisons, and one issuer's rotation drops only that
    issuer's tokens."""

    def __init__(self, size: int = TOKEN_CACHE_SIZE, max_bytes: int = TOKEN_CACHE_BYTES) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0  # the length of the tokens held
        self._entries: OrderedDict[str, Entry[V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, token: object) -> bool:
        """Whether token is held, whatever its window: `get` says whether it is still good.
        The Verifier keeps only tokens that passed tokens.split, which is what lets
        `tokens.credentials` take one unscanned."""
        return token in self._entries

    def get(self, token: str, now: float) -> V | None:
        """What was kept of a token verified before, if it is still inside its window and its
        issuer's key set is fresh and the one that verified it (a removed key must stop its
        tokens at once). One that is not is dropped: the full check then says why."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        verified, valid_from, valid_until, keys, version = entry
        if not (valid_from <= now < valid_until and keys.version == version and keys.fresh(now)):
            del self._entries[token]
            self.bytes -= len(token)
            return None
        self._entries.move_to_end(token)
        return verified

    def put(
        self, token: str, verified: V, valid_from: float, valid_until: float, keys: KeySource
    ) -> None:
        """Keep what was verified of a token just verified with keys (at their current
        version); the least recently used go while there are too many, or too many bytes."""
        if self._entries.pop(token, None) is not None:
            self.bytes -= len(token)
        self._entries[token] = (verified, valid_from, valid_until, keys, keys.version)
        self.bytes += len(token)
        while len(self._entries) > self.size or self.bytes > self.max_bytes:
            self.bytes -= len(self._entries.popitem(last=False)[0])
