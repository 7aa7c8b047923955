"""The verified-token cache: hits skip the signature check, never outlive exp, stay bounded."""

from __future__ import annotations

import math

import pytest

from authpi_worker import tokens
from authpi_worker.auth import Verifier
from authpi_worker.errors import InvalidToken
from authpi_worker.jwks import JWKS_MAX_AGE, Cached, Edge, Fetched, KeyCache
from authpi_worker.keys import KeySet
from authpi_worker.token_cache import TOKEN_CACHE_BYTES, TOKEN_CACHE_SIZE, TokenCache
from authpi_worker.tokens import MAX_TOKEN_BYTES
from tests.conftest import Call, Clock
from tests.support.issuer import FakeIssuer
from tests.support.logs import logged


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count real signature checks (the original still runs)."""
    seen: list[str] = []
    original = tokens.verify_signature

    def counting(parsed: tokens.Parsed, key: object) -> None:
        seen.append(parsed.alg)
        original(parsed, key)

    monkeypatch.setattr("authpi_worker.auth.verify_signature", counting)
    return seen


async def test_a_repeated_token_is_verified_once(
    call: Call, issuer: FakeIssuer, verifications: list[str]
) -> None:
    token = issuer.mint()
    for _ in range(20):
        assert (await call("/reports", token)).status == 200
    assert len(verifications) == 1


async def test_a_cached_token_still_expires_on_time(
    call: Call, issuer: FakeIssuer, clock: Clock, verifier: Verifier
) -> None:
    token = issuer.mint(exp=int(clock.now) + 60)
    assert (await call("/me", token)).status == 200
    clock.advance(59)
    assert (await call("/me", token)).status == 200
    clock.advance(1)
    reply = await call("/me", token)
    assert reply.status == 401 and "token expired" in reply.headers["www-authenticate"]
    assert len(verifier.tokens) == 0


async def test_nbf_is_rechecked_on_every_hit(call: Call, issuer: FakeIssuer, clock: Clock) -> None:
    token = issuer.mint(nbf=int(clock.now))
    assert (await call("/me", token)).status == 200
    clock.now -= 10  # the clock went back: the cached token is not valid yet
    assert (await call("/me", token)).status == 401


async def test_failures_are_never_cached(
    call: Call, issuer: FakeIssuer, verifier: Verifier, verifications: list[str]
) -> None:
    bad = issuer.mint(aud="https://other.example")
    for _ in range(3):
        assert (await call("/me", bad)).status == 401
    assert len(verifier.tokens) == 0 and len(verifications) == 3


async def test_a_503_is_never_cached(call: Call, issuer: FakeIssuer, verifier: Verifier) -> None:
    issuer.faults.status = 500
    assert (await call("/me", issuer.mint())).status == 503
    assert len(verifier.tokens) == 0


async def test_insufficient_scope_is_decided_on_cached_claims_too(
    call: Call, issuer: FakeIssuer
) -> None:
    token = issuer.mint(scope="read:profile")
    assert (await call("/me", token)).status == 200
    assert (await call("/reports", token)).status == 403


@pytest.mark.parametrize(
    ("spelling", "status", "reason"),
    [
        ("Bearer {}", 200, None),  # the exact spelling: the cache's shortcut
        ("bearer {}", 200, None),  # the others: the full scan, then the cache
        ("Bearer   {}", 200, None),
        ("Bearer {} ", 200, None),
        ("Bearer {} junk", 401, "malformed"),
        ("Bearer {}=", 401, "malformed"),
        ("Bearer {}, Bearer {}", 401, "malformed"),
        ("Bearer\t{}", 401, "malformed"),
        ("Basic {}", 401, "unsupported_scheme"),
        ("DPoP {}", 401, "token_not_bound"),
    ],
)
async def test_a_cached_token_in_any_spelling_gets_the_verdict_of_a_fresh_one(
    call: Call, issuer: FakeIssuer, verifier: Verifier, spelling: str, status: int, reason: str
) -> None:
    token = issuer.mint()
    assert (await call("/me", token)).status == 200
    assert token in verifier.tokens
    with logged() as events:
        reply = await call("/me", authorization=spelling.format(token, token))
    rejected = [e["reason"] for e in events if e["event"] == "request_rejected"]
    assert (reply.status, rejected) == (status, [reason] if reason else [])


async def test_the_verifier_caches_only_tokens_the_scan_takes_unchanged(
    call: Call, issuer: FakeIssuer, verifier: Verifier
) -> None:
    """What makes the shortcut sound: every token cached is one split accepts, so the exact
    `Bearer ` spelling of it passes the scan as that very token."""
    minted = [issuer.mint() for _ in range(4)]
    for spelling, token in zip(
        ("bearer {}", "Bearer  {} ", "DPoP {}", "Bearer {}"), minted, strict=True
    ):
        await call("/me", authorization=spelling.format(token))  # the DPoP one: 401, but cached
    assert len(verifier.tokens) == 4 and all(token in verifier.tokens for token in minted)
    for token in minted:
        assert tokens.split(token) and tokens.credentials(f"Bearer {token}") == ("Bearer", token)


NOW = 1_800_000_000.0
WINDOW = (NOW - 10, NOW + 10)
Cache = TokenCache[dict[str, object]]  # what is kept of a token: here, plain claims


async def _never_fetched(url: str, edge: Edge) -> Fetched:
    raise AssertionError("the cache never fetches")


def key_cache(fetched_at: float = NOW, max_age: int = JWKS_MAX_AGE) -> KeyCache:
    """A real KeyCache holding an (empty) set fetched at fetched_at, as an issuer's would."""
    keys = KeyCache("http://127.0.0.1:9/iss/jwks.json", _never_fetched)
    keys.cached = Cached(KeySet({}, ()), fetched_at, max_age)
    return keys


KEYS = key_cache()


def test_the_cache_is_a_bounded_lru() -> None:
    cache = Cache(size=3)
    for name in "abc":
        cache.put(name, {"sub": name}, *WINDOW, KEYS)
    assert cache.get("a", NOW) is not None  # a is now the most recent
    cache.put("d", {"sub": "d"}, *WINDOW, KEYS)
    assert len(cache) == 3
    assert cache.get("b", NOW) is None  # the least recently used went
    assert cache.get("a", NOW) == {"sub": "a"}


def test_the_default_bound_holds_under_many_tokens() -> None:
    cache = Cache()
    for n in range(TOKEN_CACHE_SIZE * 2):
        cache.put(str(n), {"sub": str(n)}, *WINDOW, KEYS)
    assert len(cache) == TOKEN_CACHE_SIZE


def test_the_bytes_of_tokens_held_are_bounded_too() -> None:
    """Tokens up to MAX_TOKEN_BYTES: 1,024 of them, with their claims, would not fit an
    isolate's memory. The least recently used go while the bytes are over the budget."""
    cache = Cache()
    for n in range(TOKEN_CACHE_SIZE):
        cache.put(f"{n:05d}".ljust(MAX_TOKEN_BYTES, "t"), {"sub": str(n)}, *WINDOW, KEYS)
    assert len(cache) == TOKEN_CACHE_BYTES // MAX_TOKEN_BYTES
    assert cache.bytes == len(cache) * MAX_TOKEN_BYTES <= TOKEN_CACHE_BYTES
    newest = f"{TOKEN_CACHE_SIZE - 1:05d}".ljust(MAX_TOKEN_BYTES, "t")
    assert cache.get(newest, NOW) == {"sub": str(TOKEN_CACHE_SIZE - 1)}
    for _ in range(3):  # the same token again is one entry, counted once
        cache.put("small", {"sub": "s"}, *WINDOW, KEYS)
    assert cache.bytes == (len(cache) - 1) * MAX_TOKEN_BYTES + len("small")
    KEYS.version += 1  # misses drop their bytes too
    try:
        assert cache.get("small", NOW) is None and cache.get(newest, NOW) is None
    finally:
        KEYS.version -= 1
    assert cache.bytes == (len(cache)) * MAX_TOKEN_BYTES


def test_the_key_is_the_whole_token() -> None:
    """Not a part a forger could pair with other claims: one character anywhere misses."""
    cache = Cache()
    cache.put("head.payload.signature", {"sub": "a"}, *WINDOW, KEYS)
    for other in ("head.payloaX.signature", "heaX.payload.signature", "head.payload.signaturX"):
        assert cache.get(other, NOW) is None
    assert cache.get("head.payload.signature", NOW) == {"sub": "a"}


@pytest.mark.parametrize(
    ("now", "hit"), [(NOW - 10, True), (NOW + 9.99, True), (NOW + 10, False), (NOW - 10.01, False)]
)
def test_a_hit_only_inside_the_window_and_a_miss_drops_the_entry(now: float, hit: bool) -> None:
    cache = Cache()
    cache.put("t", {"sub": "a"}, *WINDOW, KEYS)
    assert (cache.get("t", now) is not None) is hit
    assert len(cache) == (1 if hit else 0)


@pytest.mark.parametrize(
    ("claims", "window"),
    [
        ({"exp": NOW + 60}, (-math.inf, NOW + 65)),
        ({"exp": NOW + 60, "iat": NOW - 5}, (NOW - 10, NOW + 65)),
        ({"exp": NOW + 60, "iat": NOW - 5, "nbf": NOW + 1}, (NOW - 4, NOW + 65)),
        ({"exp": NOW + 60, "nbf": 0}, (-5, NOW + 65)),
    ],
)
def test_the_window_is_where_the_time_rules_pass(
    claims: dict[str, float], window: tuple[float, float]
) -> None:
    assert tokens.check_times(claims, 5, NOW) == window  # the window of claims valid now
    start, end = window
    for now in (start, end - 0.01):  # inside: the rules pass
        if math.isfinite(now):
            tokens.check_times(claims, 5, now)
    for now in (start - 0.01, end):  # outside: they refuse
        if math.isfinite(now):
            with pytest.raises(InvalidToken):
                tokens.check_times(claims, 5, now)


def test_a_key_set_change_drops_that_issuers_tokens_only() -> None:
    cache, first, second = Cache(), key_cache(), key_cache()
    cache.put("a", {"sub": "a"}, *WINDOW, first)
    cache.put("b", {"sub": "b"}, *WINDOW, second)
    first.version += 1  # the first issuer rotated or withdrew a key
    assert cache.get("a", NOW) is None
    assert cache.get("b", NOW) == {"sub": "b"}
    assert len(cache) == 1


def test_a_hit_only_while_its_issuers_key_set_is_fresh() -> None:
    cache, due, fresh = Cache(), key_cache(NOW - JWKS_MAX_AGE), key_cache(NOW - 1)
    cache.put("a", {"sub": "a"}, *WINDOW, due)
    cache.put("b", {"sub": "b"}, *WINDOW, fresh)
    assert cache.get("a", NOW) is None  # its set is due: the full check refreshes it
    assert cache.get("b", NOW) == {"sub": "b"}


def test_the_version_is_the_one_the_token_was_verified_under() -> None:
    cache, keys = Cache(), key_cache()
    keys.version = 7
    cache.put("a", {"sub": "a"}, *WINDOW, keys)
    assert cache.get("a", NOW) == {"sub": "a"}
    keys.version = 8
    assert cache.get("a", NOW) is None
