"""The verified-token cache: a client that calls many times with one token pays for the
signature check once. Only successes are kept, and never past the token's own exp."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

TOKEN_CACHE_SIZE = 1024  # entries per isolate: a few MiB of claims even for 8 KiB tokens


class TokenCache:
    """A bounded LRU from sha256(token) to its verified claims, for one key-set version."""

    def __init__(self, size: int = TOKEN_CACHE_SIZE) -> None:
        self.size = size
        self.version = 0
        self._entries: OrderedDict[bytes, Mapping[str, Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def sync(self, version: int) -> None:
        """The key set changed: forget every token it vouched for (a removed key must stop
        its tokens at once)."""
        if version != self.version:
            self._entries.clear()
            self.version = version

    def get(self, key: bytes) -> Mapping[str, Any] | None:
        claims = self._entries.get(key)
        if claims is not None:
            self._entries.move_to_end(key)
        return claims

    def put(self, key: bytes, claims: Mapping[str, Any]) -> None:
        self._entries[key] = claims
        self._entries.move_to_end(key)
        if len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def drop(self, key: bytes) -> None:
        self._entries.pop(key, None)
