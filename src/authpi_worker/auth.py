"""From an Authorization header to verified claims: the token rules applied with the
isolate's key cache and verified-token cache."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from authpi_worker.config import AUDIENCE_VAR, ISSUER_VAR, TOLERANCE_VAR, Settings, load_settings
from authpi_worker.errors import Denied, InvalidToken
from authpi_worker.jwks import Fetcher, KeyCache
from authpi_worker.token_cache import TokenCache
from authpi_worker.tokens import (
    Parsed,
    bearer_token,
    check_claims,
    check_times,
    parse,
    verify_signature,
)
from authpi_worker.tokens import claims as claims_of

Claims = Mapping[str, Any]


class Verifier:
    """Verifies access tokens for one issuer and audience."""

    def __init__(
        self, settings: Settings, fetch: Fetcher, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.keys = KeyCache(settings.jwks_url, fetch, clock)
        self.tokens = TokenCache()
        self._clock = clock

    async def authenticate(self, authorization: str | None) -> Claims:
        """Claims of a valid token, or a Denied saying why not (401 or 503)."""
        token = bearer_token(authorization)
        now = self._clock()
        cache_key = TokenCache.key(token)
        if self.keys.fresh(now):
            cached = self.tokens.get(cache_key)
            if cached is not None:
                try:
                    check_times(cached, self.settings.clock_tolerance, now)
                except InvalidToken:
                    self.tokens.drop(cache_key)
                    raise
                return cached
        parsed = parse(token)
        try:
            claims = await self._verify(parsed)
        except Denied as denied:
            denied.kid = parsed.kid
            raise
        finally:
            self.tokens.sync(self.keys.version)  # a refresh may have changed the keys
        self.tokens.put(cache_key, claims)
        return claims

    async def _verify(self, parsed: Parsed) -> Claims:
        key = await self.keys.key_for(parsed.kid, parsed.alg)
        verify_signature(parsed, key.key)
        claims = claims_of(parsed)
        check_claims(claims, self.settings, self._clock())
        return claims


class Isolate:
    """What one Workers isolate keeps between requests: a Verifier per configuration.

    Built empty at import (no I/O, no randomness, no JS objects: the deploy snapshot);
    the Verifier and its caches are made inside the first request that needs them."""

    def __init__(self, fetch: Fetcher, clock: Callable[[], float] = time.time) -> None:
        self._fetch = fetch
        self._clock = clock
        self._vars: tuple[object, ...] | None = None
        self._verifier: Verifier | None = None

    def verifier(self, var: Callable[[str], object]) -> Verifier:
        """The Verifier for these variables; raises ServerMisconfigured if they are unusable."""
        current = (var(ISSUER_VAR), var(AUDIENCE_VAR), var(TOLERANCE_VAR))
        if self._verifier is None or current != self._vars:
            settings = load_settings(var)
            self._verifier = Verifier(settings, self._fetch, self._clock)
            self._vars = current
        return self._verifier
