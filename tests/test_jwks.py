"""The JWKS cache policy against a real fake issuer, with an injectable clock (no sleeps)."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import pytest

from authpi_worker import Isolate, jwks
from authpi_worker.auth import Verifier
from authpi_worker.jwks import (
    BYPASS,
    COOLDOWN,
    FETCH_TIMEOUT,
    FOLLOW_ISSUER,
    JWKS_MAX_AGE,
    MAX_MAX_AGE,
    MIN_MAX_AGE,
    RETRY_AFTER,
    STALE_IF_ERROR,
    Edge,
    Fetched,
    max_age,
    shared_max_age,
)
from authpi_worker.testing.keys import SigningKey, make_key
from scripts.local_worker import httpx_fetcher
from tests.conftest import Call, Clock
from tests.support.issuer import FakeIssuer, Faults
from tests.support.logs import logged


class RecordingFetcher:
    """The real HTTP fetcher (httpx to the fake issuer), recording the Edge policy of each call.

    Cloudflare's edge cannot run here. When `edge_age` is set, this plays it (a mock edge
    cache): an answer the edge was allowed to serve (not a bypass) comes with that Age."""

    def __init__(self) -> None:
        self.edges: list[Edge] = []
        self.edge_age: int | None = None

    async def __call__(self, url: str, edge: Edge) -> Fetched:
        self.edges.append(edge)
        fetched = await httpx_fetcher(url, edge)
        if self.edge_age is not None and not edge.bypass:
            return dataclasses.replace(fetched, age=str(self.edge_age))
        return fetched


def now_token(issuer: FakeIssuer, clock: Clock, key: SigningKey | None = None) -> str:
    """A token valid at the test clock's now (tests move the clock past real time)."""
    return issuer.mint(key, iat=int(clock.now), exp=int(clock.now) + 300)


@pytest.fixture
def recording_fetcher() -> RecordingFetcher:
    return RecordingFetcher()


@pytest.fixture
def isolate(clock: Clock, recording_fetcher: RecordingFetcher) -> Isolate:
    """The isolate the requests go through, its JWKS fetches recorded."""
    return Isolate(recording_fetcher, clock)


async def test_many_requests_one_fetch(call: Call, issuer: FakeIssuer, verifier: Verifier) -> None:
    for _ in range(50):
        assert (await call("/me", issuer.mint())).status == 200
    assert issuer.jwks_hits == 1 and verifier.keys.fetches == 1


async def test_nothing_is_fetched_until_a_protected_request(call: Call, issuer: FakeIssuer) -> None:
    assert (await call("/")).status == 200
    assert (await call("/me")).status == 401  # no token: no reason to fetch keys either
    assert issuer.jwks_hits == 0


async def test_rotation_is_seen_after_one_refetch_past_the_edge_cache(
    call: Call, issuer: FakeIssuer, clock: Clock, recording_fetcher: RecordingFetcher
) -> None:
    assert (await call("/me", issuer.mint())).status == 200
    new_key = issuer.rotate()
    clock.advance(COOLDOWN)
    assert (await call("/me", issuer.mint(new_key))).status == 200
    assert issuer.jwks_hits == 2
    assert recording_fetcher.edges == [FOLLOW_ISSUER, BYPASS]  # the refetch bypassed the edge


async def test_unknown_kid_within_the_cooldown_is_401_without_a_fetch(
    call: Call, issuer: FakeIssuer, clock: Clock
) -> None:
    assert (await call("/me", issuer.mint())).status == 200
    clock.advance(COOLDOWN - 1)
    stranger = make_key("ES256")
    reply = await call("/me", issuer.mint(stranger))
    assert reply.status == 401 and "invalid_token" in reply.headers["www-authenticate"]
    assert issuer.jwks_hits == 1


async def test_unknown_kid_flood_costs_at_most_one_refetch_per_cooldown(
    call: Call, issuer: FakeIssuer, clock: Clock
) -> None:
    assert (await call("/me", issuer.mint())).status == 200
    clock.advance(COOLDOWN)
    forged = [issuer.mint(make_key("ES256", f"kid-{n}")) for n in range(20)]
    replies = await asyncio.gather(*(call("/me", token) for token in forged))  # in flight together
    replies += [await call("/me", token) for token in forged]
    assert {r.status for r in replies} == {401}
    assert issuer.jwks_hits == 2
    clock.advance(COOLDOWN)
    await call("/me", forged[0])
    assert issuer.jwks_hits == 3


async def test_the_set_is_refetched_after_max_age(
    call: Call, issuer: FakeIssuer, clock: Clock
) -> None:
    issuer.faults.cache_control = None
    await call("/me", issuer.mint())
    clock.advance(JWKS_MAX_AGE - 1)
    await call("/me", issuer.mint())
    assert issuer.jwks_hits == 1
    clock.advance(1)
    await call("/me", issuer.mint())
    assert issuer.jwks_hits == 2


async def test_cache_control_max_age_is_honoured(
    call: Call, issuer: FakeIssuer, clock: Clock
) -> None:
    issuer.faults.cache_control = "public, max-age=120"
    await call("/me", issuer.mint())
    clock.advance(119)
    await call("/me", issuer.mint())
    assert issuer.jwks_hits == 1
    clock.advance(1)
    await call("/me", issuer.mint())
    assert issuer.jwks_hits == 2


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, JWKS_MAX_AGE),
        ("", JWKS_MAX_AGE),
        ("public", JWKS_MAX_AGE),
        ("max-age=300", 300),
        ("public, max-age=3600, must-revalidate", 3600),
        ('max-age="900"', 900),
        ("s-maxage=10, max-age=700", 700),
        ("max-age=5", MIN_MAX_AGE),
        ("max-age=0", MIN_MAX_AGE),
        ("no-store", MIN_MAX_AGE),
        ("max-age=99999999999999999999", MAX_MAX_AGE),
        ("max-age=-5", JWKS_MAX_AGE),
        ("max-age=abc", JWKS_MAX_AGE),
    ],
)
def test_max_age_is_clamped_to_one_minute_and_one_day(header: str | None, seconds: int) -> None:
    assert max_age(header) == seconds


@pytest.mark.parametrize(
    ("header", "age", "seconds"),
    [
        ("max-age=600", "100", 500),
        ("max-age=600", "590", 10),  # its life is counted from when the issuer sent it
        ("max-age=600", "600", 0),
        (None, "30", JWKS_MAX_AGE - 30),
        ("max-age=600", "-5", 600),
        ("max-age=600", "soon", 600),
        ("max-age=600", "9" * 50, 600),
    ],
)
def test_the_time_an_edge_cache_held_the_set_counts_against_its_max_age(
    header: str | None, age: str, seconds: int
) -> None:
    """Without it, a set cached at the edge could be trusted for twice its max-age."""
    assert max_age(header, age) == seconds


# --- The edge policy: what Cloudflare's edge may do with each fetch (issue 14 item 2) -------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("max-age=60", 60),
        ("public, max-age=3600", 3600),
        ("max-age=5", 5),  # unclamped below: the edge never keeps it longer than the issuer says
        ("max-age=864000", MAX_MAX_AGE),
        (None, JWKS_MAX_AGE),  # no lifetime given: our own default, as the isolate keeps it
        ("public", JWKS_MAX_AGE),
        ("max-age=600, s-maxage=30", 30),  # the shorter of the two
        ("s-maxage=120", 120),
        ("max-age=60, s-maxage=600", 60),
        ("s-maxage=7200", JWKS_MAX_AGE),  # never past what the isolate keeps
        ("no-store", 0),
        ("no-cache", 0),
        ("private, max-age=300", 0),
        ("max-age=0", 0),
        ("max-age=0, s-maxage=60", 0),
        ('public, max-age="120"', 120),
    ],
)
def test_shared_max_age_never_exceeds_what_the_answer_allows_a_shared_cache(
    header: str | None, seconds: int
) -> None:
    assert shared_max_age(header) == seconds


async def refetched_edges(
    call: Call, issuer: FakeIssuer, clock: Clock, fetcher: RecordingFetcher, header: str | None
) -> list[Edge]:
    """The Edge policies of an isolate's first fetch and of the refresh after it expires."""
    issuer.faults.cache_control = header
    assert (await call("/me", now_token(issuer, clock))).status == 200
    clock.advance(max_age(header))
    assert (await call("/me", now_token(issuer, clock))).status == 200
    assert issuer.jwks_hits == 2
    return fetcher.edges


@pytest.mark.parametrize(
    ("header", "later"),
    [
        ("max-age=60", Edge(60)),
        ("no-store", BYPASS),
        (None, Edge(JWKS_MAX_AGE)),
        ("public, max-age=600, s-maxage=30", Edge(30)),
        ("private, max-age=300", BYPASS),
        ("max-age=5", Edge(5)),
    ],
)
async def test_the_first_fetch_follows_the_issuer_and_later_ones_what_it_last_allowed(
    header: str | None,
    later: Edge,
    call: Call,
    issuer: FakeIssuer,
    clock: Clock,
    recording_fetcher: RecordingFetcher,
) -> None:
    """Issue 14 item 2: the first fetch asked the edge for 600 s whatever the issuer said.
    Nothing is known before it, so the edge follows the issuer's own Cache-Control; after it,
    an explicit TTL that the issuer's last answer allowed, or none at all (bypass)."""
    edges = await refetched_edges(call, issuer, clock, recording_fetcher, header)
    assert edges == [FOLLOW_ISSUER, later]


@pytest.mark.parametrize(
    ("header", "age", "over"),
    [
        ("max-age=60", 61, True),
        ("max-age=60", 60, False),
        ("max-age=600, s-maxage=30", 31, True),
        (None, JWKS_MAX_AGE + 1, True),  # no Cache-Control: JWKS_MAX_AGE is the allowance
        (None, JWKS_MAX_AGE, False),
        ("no-store", 1, True),  # an edge that kept what it must not have
    ],
)
async def test_an_answer_older_than_its_cache_control_allows_is_refetched_past_the_mock_edge_cache(
    header: str | None,
    age: int,
    over: bool,
    call: Call,
    issuer: FakeIssuer,
    clock: Clock,
    verifier: Verifier,
    recording_fetcher: RecordingFetcher,
) -> None:
    """Whatever the edge does (a CDN-Cache-Control, a default TTL, a cross-zone issuer), a
    copy older than the issuer allows is never trusted: it is refetched at once, past it."""
    issuer.faults.cache_control = header
    recording_fetcher.edge_age = age
    assert (await call("/me", now_token(issuer, clock))).status == 200
    keys = verifier.keys
    assert keys.cached is not None
    if over:
        assert recording_fetcher.edges == [FOLLOW_ISSUER, BYPASS]
        assert issuer.jwks_hits == 2 and keys.fetches == 2
        assert keys.cached.max_age == max_age(header)  # the issuer's own copy: a full life
    else:
        assert recording_fetcher.edges == [FOLLOW_ISSUER]
        assert keys.cached.max_age == max_age(header) - age  # counted from when it was sent


async def test_a_refresh_whose_edge_copy_is_over_age_bypasses_it_then_uses_it_again(
    call: Call,
    issuer: FakeIssuer,
    clock: Clock,
    recording_fetcher: RecordingFetcher,
) -> None:
    issuer.faults.cache_control = "max-age=60"
    assert (await call("/me", now_token(issuer, clock))).status == 200
    clock.advance(60)
    recording_fetcher.edge_age = 75  # the edge kept it longer than the issuer allows
    assert (await call("/me", now_token(issuer, clock))).status == 200
    clock.advance(60)
    recording_fetcher.edge_age = 12
    assert (await call("/me", now_token(issuer, clock))).status == 200
    assert recording_fetcher.edges == [FOLLOW_ISSUER, Edge(60), BYPASS, Edge(60)]
    assert issuer.jwks_hits == 4


async def test_no_keys_and_issuer_down_is_503_with_retry_after_then_recovers(
    call: Call, issuer: FakeIssuer, clock: Clock
) -> None:
    issuer.faults.status = 500
    with logged() as events:
        first = await call("/me", issuer.mint())
        again = [await call("/me", issuer.mint()) for _ in range(5)]
    assert (first.status, first.body) == (503, '{"error":"temporarily_unavailable"}')
    assert first.headers["retry-after"] == str(RETRY_AFTER)
    assert "www-authenticate" not in first.headers
    assert {r.status for r in again} == {503}
    assert issuer.jwks_hits == 1  # attempts are spaced: not one per request
    assert [e["event"] for e in events].count("jwks_fetch_failed") == 1
    issuer.faults.status = 200
    clock.advance(RETRY_AFTER)
    assert (await call("/me", issuer.mint())).status == 200


async def test_stale_if_error_keeps_the_last_good_set_for_a_bounded_grace(
    call: Call, issuer: FakeIssuer, clock: Clock
) -> None:
    issuer.faults.cache_control = None
    assert (await call("/me", now_token(issuer, clock))).status == 200
    issuer.faults.status = 503
    clock.advance(JWKS_MAX_AGE + 60)
    assert (
        await call("/me", now_token(issuer, clock))
    ).status == 200  # refresh failed, old keys still decide
    clock.advance(STALE_IF_ERROR)
    reply = await call("/me", now_token(issuer, clock))
    assert reply.status == 503


async def test_unknown_kid_whose_refetch_fails_is_503_not_401(
    call: Call, issuer: FakeIssuer, clock: Clock
) -> None:
    await call("/me", issuer.mint())
    new_key = issuer.rotate()
    issuer.faults.status = 500
    clock.advance(COOLDOWN)
    assert (await call("/me", issuer.mint(new_key))).status == 503


async def test_a_removed_key_stops_its_cached_tokens_once_the_set_changes(
    call: Call, issuer: FakeIssuer, clock: Clock, verifier: Verifier
) -> None:
    old = issuer.signer
    token = issuer.mint(old, exp=int(clock.now) + 10 * 86_400)
    assert (await call("/me", token)).status == 200
    assert len(verifier.tokens) == 1
    issuer.rotate()
    issuer.retire(old.kid)
    clock.advance(JWKS_MAX_AGE)
    reply = await call("/me", token)
    assert reply.status == 401
    assert len(verifier.tokens) == 0


# --- A burst on a cold isolate (issue 14 item 10) --------------------------------------------

BURST = 200  # requests arriving together on a cold isolate


async def test_a_burst_on_a_cold_isolate_costs_one_fetch_not_200(
    call: Call, issuer: FakeIssuer, verifier: Verifier
) -> None:
    """Before: each of the 200 requests fetched the set itself (200 issuer hits). Now the first
    fetches and the others wait for its result in the module-level cache."""
    issuer.faults.delay = 0.2  # all 200 arrive while the first fetch is in flight
    replies = await asyncio.gather(*(call("/me", issuer.mint()) for _ in range(BURST)))
    assert [r.status for r in replies] == [200] * BURST
    assert issuer.jwks_hits == 1 and verifier.keys.fetches == 1


async def test_a_burst_whose_fetch_fails_is_503_after_one_attempt(
    call: Call, issuer: FakeIssuer
) -> None:
    issuer.faults.status, issuer.faults.delay = 500, 0.2
    with logged() as events:
        replies = await asyncio.gather(*(call("/me", issuer.mint()) for _ in range(50)))
    assert {r.status for r in replies} == {503}
    assert {r.headers["retry-after"] for r in replies} == {str(RETRY_AFTER)}
    assert issuer.jwks_hits == 1  # the waiters saw the failure; none retried inside the backoff
    assert [e["event"] for e in events].count("jwks_fetch_failed") == 1


async def test_a_waiter_never_awaits_the_other_requests_fetch_it_survives_its_cancellation(
    call: Call, issuer: FakeIssuer
) -> None:
    """workerd cancels a request's I/O when its client goes away; a request that had awaited
    that fetch would fail with it. A waiter only looks at the cache, so it fetches itself."""
    issuer.faults.delay = 0.3
    owner = asyncio.ensure_future(call("/me", issuer.mint()))
    await asyncio.sleep(0.1)  # the owner's fetch is in flight
    waiter = asyncio.ensure_future(call("/me", issuer.mint()))
    await asyncio.sleep(0.05)  # the waiter is waiting for its result
    owner.cancel()
    assert (await waiter).status == 200
    assert owner.cancelled()
    assert issuer.jwks_hits == 2  # the owner's fetch reached the issuer; the waiter's own too


async def test_a_waiter_whose_owner_never_resumes_fetches_itself_after_the_fetch_timeout(
    call: Call,
    issuer: FakeIssuer,
    clock: Clock,
    verifier: Verifier,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On Workers a request whose client left may never resume (simulated: the in-flight
    count left at 1): its waiters give up after the fetch timeout, not forever."""
    monkeypatch.setattr(
        jwks, "FETCH_TIMEOUT", 0.6
    )  # a loaded machine needs more than 0.3 s for one fetch
    verifier.keys._refreshing = 1  # a fetch that started now and will never finish
    verifier.keys._last_attempt = clock.now
    assert (await call("/me", issuer.mint())).status == 200
    assert issuer.jwks_hits == 1


async def test_a_new_kid_arriving_during_a_refresh_is_found_in_its_answer(
    call: Call, issuer: FakeIssuer, clock: Clock
) -> None:
    """The refresh in flight may bring the kid (a rotation): wait for it rather than 401."""
    issuer.faults.cache_control = None
    assert (await call("/me", now_token(issuer, clock))).status == 200
    new_key = issuer.rotate()
    clock.advance(JWKS_MAX_AGE)
    issuer.faults.delay = 0.3
    replies = await asyncio.gather(
        call("/me", now_token(issuer, clock)), call("/me", now_token(issuer, clock, new_key))
    )
    assert [r.status for r in replies] == [200, 200]
    assert issuer.jwks_hits == 2


async def test_a_bad_document_is_a_failed_refresh_that_keeps_the_good_set(
    call: Call, issuer: FakeIssuer, clock: Clock
) -> None:
    await call("/me", now_token(issuer, clock))
    issuer.faults.body = json.dumps({"keys": "none"}).encode()  # not a JWKS document
    clock.advance(JWKS_MAX_AGE)
    assert (await call("/me", now_token(issuer, clock))).status == 200
    assert issuer.jwks_hits == 2


# --- Withdrawal: a parseable JWKS document is the issuer's answer, even with no usable key ---

# When the review saw a withdrawn key still accepted (200), in seconds after the withdrawal: past
# the issuer's max-age=60, an hour, and the last second of max-age + STALE_IF_ERROR (86,460 s).
MEASURED_AT = (61, 3_600, 86_459)


def _no_keys(issuer: FakeIssuer) -> dict[str, object]:
    return {"keys": []}


def _only_unusable_keys(issuer: FakeIssuer) -> dict[str, object]:
    """A set holding only a key we cannot use: ES384 on P-384 (and an unknown kty)."""
    return {"keys": [make_key("ES384", curve="P-384").jwk(), {"kty": "oct", "k": "c2VjcmV0"}]}


WITHDRAWALS = {"empty set": _no_keys, "only unusable keys": _only_unusable_keys}


def long_lived_token(issuer: FakeIssuer, clock: Clock) -> str:
    """Signed by the issuer's key k1, valid past the last measured time."""
    return issuer.mint(iat=int(clock.now), exp=int(clock.now) + 2 * 86_400)


async def reasons_of(call: Call, token: str) -> tuple[int, list[str]]:
    """The status of /me with token, and the reasons its refusal logged."""
    with logged() as events:
        reply = await call("/me", token)
    return reply.status, [e["reason"] for e in events if e["event"] == "request_rejected"]


@pytest.mark.parametrize("withdrawal", sorted(WITHDRAWALS))
async def test_a_withdrawn_key_is_401_at_61_s_3600_s_and_86459_s_after_the_withdrawal(
    withdrawal: str, call: Call, issuer: FakeIssuer, clock: Clock, verifier: Verifier
) -> None:
    """Issue 14 item 1: a 200 JWKS document without k1 replaces the set, usable keys or not;
    it is not a failed refresh that stale-if-error would paper over for a day."""
    issuer.faults.cache_control = "max-age=60"
    token = long_lived_token(issuer, clock)
    assert (await call("/me", token)).status == 200
    assert len(verifier.tokens) == 1
    issuer.faults.body = json.dumps(WITHDRAWALS[withdrawal](issuer)).encode()
    withdrawn_at = clock.now
    with logged() as events:
        for seconds in MEASURED_AT:
            clock.now = withdrawn_at + seconds
            assert await reasons_of(call, token) == (401, ["unknown_kid"]), seconds
    assert len(verifier.tokens) == 0  # the verified-token cache followed the new set
    assert verifier.keys.cached is not None and verifier.keys.cached.keys.all() == ()
    assert [e for e in events if e["event"] == "jwks_fetch_failed"] == []
    assert issuer.jwks_hits == 1 + len(MEASURED_AT)  # one refresh each time, no more


@pytest.mark.parametrize("withdrawal", sorted(WITHDRAWALS))
async def test_a_set_with_no_usable_key_on_a_cold_isolate_is_401_not_503(
    withdrawal: str, call: Call, issuer: FakeIssuer
) -> None:
    issuer.faults.body = json.dumps(WITHDRAWALS[withdrawal](issuer)).encode()
    assert await reasons_of(call, issuer.mint()) == (401, ["unknown_kid"])


# What stale-if-error is for: the issuer unreachable or answering something that is no JWKS.
OUTAGES = {
    "HTTP 503": Faults(status=503, cache_control="max-age=60"),
    "timeout": Faults(delay=1.0, cache_control="max-age=60"),
    "HTML body": Faults(body=b"<html>502 Bad Gateway</html>", cache_control="max-age=60"),
    "keys not a list": Faults(body=b'{"keys": {}}', cache_control="max-age=60"),
}


@pytest.mark.parametrize("outage", sorted(OUTAGES))
async def test_an_outage_keeps_k1_at_61_s_3600_s_and_86459_s_within_stale_if_error(
    outage: str,
    call: Call,
    issuer: FakeIssuer,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer.faults.cache_control = "max-age=60"
    token = long_lived_token(issuer, clock)
    assert (await call("/me", token)).status == 200
    # Only now: the timeout case waits 0.3 s, not 5 s (the first fetch, on a loaded machine,
    # may take longer than that).
    monkeypatch.setattr(jwks, "FETCH_TIMEOUT", 0.3)
    issuer.faults = OUTAGES[outage]
    failed_at = clock.now
    with logged() as events:
        for seconds in MEASURED_AT:  # the last one is max-age + STALE_IF_ERROR - 1
            clock.now = failed_at + seconds
            assert (await call("/me", token)).status == 200, seconds
        clock.now = failed_at + 60 + STALE_IF_ERROR + RETRY_AFTER  # past stale-if-error
        assert (await call("/me", token)).status == 503
    failures = [e for e in events if e["event"] == "jwks_fetch_failed"]
    assert len(failures) == len(MEASURED_AT) + 1


async def test_while_one_request_refreshes_an_expired_set_the_others_use_it(
    call: Call, issuer: FakeIssuer, clock: Clock
) -> None:
    issuer.faults.cache_control = None
    assert (await call("/me", now_token(issuer, clock))).status == 200
    clock.advance(JWKS_MAX_AGE)
    issuer.faults.delay = 0.3
    replies = await asyncio.gather(*(call("/me", now_token(issuer, clock)) for _ in range(10)))
    assert [r.status for r in replies] == [200] * 10
    assert issuer.jwks_hits == 2  # one refresh, not ten; nobody waited on another's fetch


async def test_a_long_expired_set_is_not_used_while_another_request_refreshes_it(
    call: Call, issuer: FakeIssuer, clock: Clock
) -> None:
    old = issuer.signer
    assert (await call("/me", now_token(issuer, clock))).status == 200
    issuer.rotate()
    issuer.retire(old.kid)
    clock.advance(JWKS_MAX_AGE + 3600)  # nobody called for an hour past expiry
    issuer.faults.delay = 0.3
    replies = await asyncio.gather(*(call("/me", now_token(issuer, clock, old)) for _ in range(2)))
    assert [r.status for r in replies] == [401, 401]  # neither trusted the hour-old set
    assert issuer.jwks_hits == 2  # the second waited for the first one's answer


async def test_a_refresh_that_never_finished_does_not_pin_the_old_set(
    call: Call, issuer: FakeIssuer, clock: Clock, verifier: Verifier
) -> None:
    """On Workers a request whose client left may never resume to finish its fetch; its
    in-flight mark must lapse with the fetch timeout (simulated: the count left at 1)."""
    issuer.faults.cache_control = None
    assert (await call("/me", now_token(issuer, clock))).status == 200
    clock.advance(JWKS_MAX_AGE)
    verifier.keys._refreshing = 1  # a fetch that started and will never finish
    verifier.keys._last_attempt = clock.now - FETCH_TIMEOUT
    assert (await call("/me", now_token(issuer, clock))).status == 200
    assert issuer.jwks_hits == 2  # this request refreshed the set itself
