"""The JWKS cache policy: when the issuer's key set is fetched, kept, and refetched.

It starts from jose's createRemoteJWKSet (the quickstart's policy) and adds what a Worker
billed per CPU-millisecond wants: Cache-Control, stale-if-error, and Cloudflare's edge cache.
The cache lives for the isolate; it is filled lazily inside a request, never at import.
Requests never share an in-flight fetch (workerd forbids I/O on behalf of another request);
one that finds a fetch in flight waits for its result in the cache instead of fetching too.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from authpi_worker.errors import InvalidToken, JwksUnavailable
from authpi_worker.keys import (
    InvalidKeySet,
    Key,
    KeySet,
    parse_jwks,
)
from authpi_worker.logs import log_event

JWKS_MAX_AGE = 600  # jose's cacheMaxAge: refetch after 10 min when the issuer sends no max-age
MIN_MAX_AGE = 60  # a max-age below 1 min would turn every isolate into a polling client
MAX_MAX_AGE = 86_400  # above 1 day, a removed key would stay trusted too long
COOLDOWN = 30  # jose's cooldownDuration: an unknown kid refetches at most once per 30 s
FETCH_TIMEOUT = 5  # jose's timeoutDuration: a hung issuer must not hold the request
STALE_IF_ERROR = 86_400  # keep the last good set this long past expiry while refreshes fail
RETRY_AFTER = 5  # after a failed fetch, wait this long before the next attempt (and say so)
STALE_WHILE_REFRESH = 60  # an expired set may answer this long while another request refreshes it
POLL = 0.02  # seconds between looks at the cache while another request fetches the set: short
# next to a fetch (tens of ms at the edge), long enough that 200 waiting requests cost little


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a fetcher returns: the status, the raw body, and the Cache-Control and Age headers
    (Age is how long an edge cache already held the answer)."""

    status: int
    body: bytes
    cache_control: str | None = None
    age: str | None = None


@dataclass(frozen=True, slots=True)
class Edge:
    """What a shared cache in front of the issuer (Cloudflare's edge) may do with one fetch:
    keep and serve the answer `ttl` seconds; with `ttl` None, only as long as the answer's own
    Cache-Control allows; with 0, not at all (ask the issuer itself). Never an error answer.
    A fetcher with no shared cache in front of it ignores this."""

    ttl: int | None

    @property
    def bypass(self) -> bool:
        return self.ttl == 0


FOLLOW_ISSUER = Edge(None)  # an isolate's first fetch: nothing is known yet of what it allows
BYPASS = Edge(0)  # after an unknown kid, or an edge copy older than the issuer allows

# fetch(url, edge) -> Fetched: GET the JWKS, redirects not followed, the edge as `edge` says.
Fetcher = Callable[[str, Edge], Awaitable[Fetched]]


@dataclass(frozen=True, slots=True)
class Cached:
    keys: KeySet
    fetched_at: float
    max_age: int
    edge: Edge = FOLLOW_ISSUER  # what the answer allows the edge for the next fetch

    @property
    def expires_at(self) -> float:
        return self.fetched_at + self.max_age


class KeyCache:
    """One issuer's key set for the life of the isolate."""

    def __init__(self, url: str, fetch: Fetcher, clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self._fetch = fetch
        self._clock = clock
        self.cached: Cached | None = None
        self.version = 0  # bumped whenever the usable keys change
        self.fetches = 0  # attempts, for tests and the benchmark
        self._last_attempt = -math.inf
        self._last_failure = -math.inf
        self._failing = False  # the last attempt failed: the cached set may be out of date
        self._refreshing = 0  # requests now fetching the set

    def fresh(self, now: float) -> bool:
        return self.cached is not None and now < self.cached.expires_at

    async def key_for(self, kid: str | None, alg: str) -> Key:
        """The key that may verify a token with this kid and alg, or why there is none."""
        now = self._clock()
        if self._due(now) and self._in_flight(now):
            await self._await_other_fetch()
            now = self._clock()
        if self._due(now):
            await self._refresh(self.cached.edge if self.cached else FOLLOW_ISSUER)
        key = self._usable(now).keys.find(kid, alg)
        if key is None:
            key = await self._refetch_for(kid, alg, now)
        if alg not in key.algs:
            raise InvalidToken("alg_key_mismatch", "algorithm does not fit the key")
        return key

    async def _refetch_for(self, kid: str | None, alg: str, now: float) -> Key:
        """A key we don't know: maybe a rotation. Ask the issuer itself, past the edge cache,
        at most once per cooldown. While the issuer is failing, the cached set cannot prove the
        token bad, so the answer is 503 (retry), not 401, and the refetch waits only the backoff."""
        if self._in_flight(now):  # another request is fetching the set: its answer may hold it
            await self._await_other_fetch()
            now = self._clock()
            key = self._usable(now).keys.find(kid, alg)
            if key is not None:
                return key
        if self._failing and (self._backing_off(now) or self._in_flight(now)):
            raise JwksUnavailable(self._retry_after())
        if not self._failing and not self._may_refetch(now):
            raise InvalidToken("unknown_kid", "no key for this token")
        if not await self._refresh(BYPASS):
            raise JwksUnavailable(self._retry_after())
        key = self._usable(now).keys.find(kid, alg)
        if key is None:
            raise InvalidToken("unknown_kid", "no key for this token")
        return key

    def _due(self, now: float) -> bool:
        """This request should fetch the set: it is not fresh, no failure is being backed off
        from, and no other request is refreshing a just-expired one."""
        return not self.fresh(now) and not self._backing_off(now) and not self._being_refreshed(now)

    async def _await_other_fetch(self) -> None:
        """Wait for the result of the fetch another request has in flight, never for the fetch
        itself: look at the cache every POLL seconds until that fetch ends, for at most
        FETCH_TIMEOUT, then the caller decides again (use the set, back off, or fetch itself).

        Only the result is shared, through this module-level cache. The in-flight awaitable is
        not: workerd ties each request's I/O (the JS fetch and the future it resolves) to that
        request. Another request awaiting it would fail ("Cannot perform I/O on behalf of a
        different request") or hang when the owner is cancelled because its client went away.
        asyncio.sleep is a timer in this request's own context."""
        for _ in range(math.ceil(FETCH_TIMEOUT / POLL)):
            await asyncio.sleep(POLL)
            if self._refreshing == 0:
                return

    def _being_refreshed(self, now: float) -> bool:
        """Another request is refreshing a just-expired set: use it meanwhile rather than start
        a second fetch (without sharing its in-flight I/O). Only briefly past expiry, and only
        while that fetch can still be running, so a lost request cannot pin an old set."""
        cached = self.cached
        return (
            self._in_flight(now)
            and cached is not None
            and now < cached.expires_at + STALE_WHILE_REFRESH
        )

    def _in_flight(self, now: float) -> bool:
        """A fetch started within its timeout and not finished. The time bound matters on
        Workers: a request whose client went away may never resume to finish its own."""
        return self._refreshing > 0 and now - self._last_attempt < FETCH_TIMEOUT

    def _usable(self, now: float) -> Cached:
        cached = self.cached
        if cached is None or now >= cached.expires_at + STALE_IF_ERROR:
            raise JwksUnavailable(self._retry_after())
        return cached

    def _backing_off(self, now: float) -> bool:
        return now - self._last_failure < RETRY_AFTER

    def _retry_after(self) -> int:
        """Seconds until the next attempt, from now (not from before a fetch that timed out)."""
        return max(1, math.ceil(self._last_failure + RETRY_AFTER - self._clock()))

    def _may_refetch(self, now: float) -> bool:
        """jose's cooldown, counted from the last attempt so a flood of requests in flight
        together also starts only one refetch."""
        last_success = self.cached.fetched_at if self.cached else -math.inf
        return now - max(last_success, self._last_attempt) >= COOLDOWN

    async def _refresh(self, edge: Edge) -> bool:
        """Fetch and parse the set. On any failure keep the old one, log once, return False."""
        self._refreshing += 1
        try:
            fetched = await self._fetch_once(edge)
            if fetched.status == 200 and not edge.bypass and _over_age(fetched):
                fetched = await self._fetch_once(BYPASS)  # no copy older than allowed: past it
                edge = BYPASS
            if fetched.status != 200:
                raise InvalidKeySet(f"HTTP {fetched.status}")
            # A JWKS document is the issuer's word even with no key we can use: it withdrew them
            # (the answer to a leaked key), an empty set, not a failure to keep old keys for.
            keys = parse_jwks(fetched.body)
        except Exception as error:  # timeout, network, HTTP status, bad document, JS error
            return self._failed(error)
        finally:
            self._refreshing -= 1
        self._failing = False
        previous = self.cached
        kept = max_age(fetched.cache_control, fetched.age)
        if edge.bypass:  # no younger copy to be had (the issuer's own cache served it): no polling
            kept = max(kept, MIN_MAX_AGE)
        next_edge = Edge(shared_max_age(fetched.cache_control))
        self.cached = Cached(keys, self._clock(), kept, next_edge)
        if previous is None or previous.keys.fingerprint != keys.fingerprint:
            self.version += 1
        for note in keys.skipped:
            log_event("jwks_key_skipped", detail=note, url=self.url)
        if not keys.all():  # every token is now refused: say so once per fetch
            log_event("jwks_no_usable_keys", url=self.url)
        return True

    async def _fetch_once(self, edge: Edge) -> Fetched:
        self._last_attempt = self._clock()
        self.fetches += 1
        return await asyncio.wait_for(self._fetch(self.url, edge), FETCH_TIMEOUT)

    def _failed(self, error: BaseException) -> bool:
        self._last_failure = self._clock()
        self._failing = True
        detail = str(error) or type(error).__name__
        log_event("jwks_fetch_failed", detail=detail[:200], url=self.url)
        return False


_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
_S_MAXAGE = re.compile(r"(?:^|[,\s])s-maxage\s*=\s*\"?(\d+)\"?", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|[,\s])(?:no-store|no-cache)\b", re.IGNORECASE)
_NOT_SHARED = re.compile(r"(?:^|[,\s])(?:no-store|no-cache|private)\b", re.IGNORECASE)


def max_age(cache_control: str | None, age: str | None = None) -> int:
    """Seconds to keep a fetched set: the response's max-age clamped to [1 min, 1 day], or
    jose's 10 min when there is none, counted from when the issuer sent it (less the Age a
    cache already held it for). no-store/no-cache mean the floor."""
    if not cache_control:
        seconds = JWKS_MAX_AGE
    elif _NO_CACHE.search(cache_control):
        seconds = MIN_MAX_AGE
    elif match := _MAX_AGE.search(cache_control):
        seconds = min(MAX_MAX_AGE, max(MIN_MAX_AGE, int(match.group(1)[:9])))
    else:
        seconds = JWKS_MAX_AGE
    return max(0, seconds - _held(age))


def shared_max_age(cache_control: str | None) -> int:
    """How old a copy a shared cache (Cloudflare's edge) hands us may be, and so how long the
    edge may keep one: the answer's max-age or s-maxage, the shorter, unclamped below, never
    longer than the isolate keeps the set (max_age); 0 when the answer forbids shared caching
    (no-store, no-cache, private, max-age=0)."""
    if cache_control and _NOT_SHARED.search(cache_control):
        return 0
    given = [
        int(match.group(1)[:9])
        for pattern in (_MAX_AGE, _S_MAXAGE)
        if cache_control and (match := pattern.search(cache_control))
    ]
    return min([*given, max_age(cache_control)])


def _over_age(fetched: Fetched) -> bool:
    """A copy a cache held longer than the answer's own Cache-Control allows (JWKS_MAX_AGE
    when it says nothing): whatever the edge was told, it must not be trusted."""
    return _held(fetched.age) > shared_max_age(fetched.cache_control)


def _held(age: str | None) -> int:
    """The Age header's seconds; 0 when absent or not a plain non-negative integer."""
    return int(age) if age and age.isascii() and age.isdigit() and len(age) <= 9 else 0
