"""The verified-token cache: a client that calls many times with one token pays for the
signature check once. Only successes are kept, and never past the token's own exp."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

# Entries per isolate. Keyed by the whole token (an exact match, never a part of it that a
# forger could pair with other claims): at most 8 MiB of tokens, plus their claims.
TOKEN_CACHE_SIZE = 1024

Entry = tuple[Mapping[str, Any], float, float]  # claims, valid from, valid until


class TokenCache:
    """A bounded LRU from a token to its verified claims, for one key-set version. Each entry
    keeps the window its nbf/iat and exp allow, so a hit costs two comparisons."""

    def __init__(self, size: int = TOKEN_CACHE_SIZE) -> None:
        self.size = size
        self.version = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def sync(self, version: int) -> None:
        """The key set changed: forget every token it vouched for (a removed key must stop
        its tokens at once)."""
        if version != self.version:
            self._entries.clear()
            self.version = version

    def get(self, token: str, now: float) -> Mapping[str, Any] | None:
        """The claims of a token verified before, if it is still inside its window. One that
        is not is dropped: the full check then says why (expired, not yet valid)."""
        entry = self._entries.get(token)
        if entry is None:
            return None
        claims, valid_from, valid_until = entry
        if not valid_from <= now < valid_until:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return claims

    def put(
        self, token: str, claims: Mapping[str, Any], valid_from: float, valid_until: float
    ) -> None:
        self._entries[token] = (claims, valid_from, valid_until)
        self._entries.move_to_end(token)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)
