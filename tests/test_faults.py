"""Fault injection: the real fake issuer over HTTP misbehaves, the Worker answers right.

Each fault (slower than the fetch timeout, a connection reset mid-body, a 500, an HTML page, a
body over the size limit, a `keys` that is no list) is a failed refresh. Without cached keys
that is a 503 with Retry-After; with a good set past its max-age, stale-if-error keeps
verifying (200); an unknown kid whose refetch fails is a 503. Once the issuer is healthy
again, the same Verifier recovers: no restart. Time moves on the injectable clock; the only
real wait is the fetch timeout itself, shortened to 0.3 s.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from authpi_worker import jwks
from authpi_worker.auth import Verifier
from authpi_worker.jwks import COOLDOWN, JWKS_MAX_AGE, RETRY_AFTER, STALE_IF_ERROR
from authpi_worker.keys import MAX_JWKS_BYTES
from authpi_worker.responses import Reply
from authpi_worker.testing.keys import SigningKey
from authpi_worker.testing.tokens import edit_signature
from tests.conftest import Call, Clock, body
from tests.support.issuer import FakeIssuer, Faults
from tests.support.logs import logged

FAST_TIMEOUT = 0.6  # seconds: the fetch timeout during these tests (a healthy local fetch
# takes milliseconds, but a loaded 2-core CI machine has been seen to need more than 0.3 s)
SLOW_ISSUER = 1.5  # seconds the "slow" issuer waits before answering: past the timeout


def _huge(issuer: FakeIssuer) -> Faults:
    """The real key set, padded past the size limit: only the size makes it unusable."""
    document = {**issuer.jwks(), "padding": "x" * MAX_JWKS_BYTES}
    return Faults(body=json.dumps(document).encode())


# name → (the fault, what the failure log line may say)
FAULTS: dict[str, tuple[Callable[[FakeIssuer], Faults], str | tuple[str, ...]]] = {
    "slower than the timeout": (lambda _: Faults(delay=SLOW_ISSUER), "TimeoutError"),
    # httpx's error: which one depends on when the reset reaches the client
    "reset mid-body": (lambda _: Faults(reset=True), ("ReadError", "RemoteProtocolError")),
    "HTTP 500": (lambda _: Faults(status=500), "HTTP 500"),
    "HTML body": (
        lambda _: Faults(body=b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"),
        "not JSON",
    ),
    "huge body": (_huge, f"document over {MAX_JWKS_BYTES} bytes"),
    "keys not a list": (lambda _: Faults(body=b'{"keys": {}}'), "no keys list"),
}
# Not a fault: a JWKS document with no usable key (`{"keys": []}`) is the issuer's answer, and
# replaces the set (tests/test_jwks.py, the withdrawal tests).


@pytest.fixture(params=sorted(FAULTS))
def fault(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each fault in turn; the fetch timeout is short, so "slower than it" costs 0.6 s."""
    name: str = request.param
    if name == "slower than the timeout":
        monkeypatch.setattr(jwks, "FETCH_TIMEOUT", FAST_TIMEOUT)
    return name


@pytest.fixture
def failures() -> Iterator[Callable[[], list[str]]]:
    """The details of the jwks_fetch_failed lines logged so far."""
    with logged() as events:

        def details() -> list[str]:
            return [e["detail"] for e in events if e["event"] == "jwks_fetch_failed"]

        yield details


def break_issuer(issuer: FakeIssuer, fault: str) -> None:
    issuer.faults = FAULTS[fault][0](issuer)


def heal(issuer: FakeIssuer) -> None:
    issuer.faults = Faults()


def token(issuer: FakeIssuer, clock: Clock, key: SigningKey | None = None) -> str:
    """A valid token at the test clock's time, for long enough to outlive the cache."""
    now = int(clock.now)
    return issuer.mint(key, iat=now - 1, exp=now + 3 * STALE_IF_ERROR)


def assert_unavailable(reply: Reply, retry_after: int = RETRY_AFTER) -> None:
    assert (reply.status, body(reply)) == (503, {"error": "temporarily_unavailable"})
    assert reply.headers["retry-after"] == str(retry_after)
    assert "www-authenticate" not in reply.headers  # not a 401: the token is not proven bad


def assert_logged_once(details: list[str], fault: str) -> None:
    assert len(details) == 1, details
    expected = FAULTS[fault][1]
    alternatives = (expected,) if isinstance(expected, str) else expected
    assert any(text in details[0] for text in alternatives), details


async def test_no_cached_keys_is_503_with_retry_after_then_recovers(
    fault: str,
    issuer: FakeIssuer,
    clock: Clock,
    call: Call,
    verifier: Verifier,
    failures: Callable[[], list[str]],
) -> None:
    break_issuer(issuer, fault)
    assert_unavailable(await call("/me", token(issuer, clock)))
    assert issuer.jwks_hits == 1
    assert_logged_once(failures(), fault)

    # During the backoff: no new attempt, no new log line, however many requests come.
    for _ in range(10):
        assert_unavailable(await call("/reports", token(issuer, clock)))
    clock.advance(2)
    assert_unavailable(await call("/me", token(issuer, clock)), RETRY_AFTER - 2)
    assert issuer.jwks_hits == 1
    assert_logged_once(failures(), fault)

    # A token that is bad on its face is still a 401: no key is needed to refuse it.
    garbage = await call("/me", "not-a-jwt")
    assert garbage.status == 401
    assert garbage.headers["www-authenticate"].startswith('Bearer error="invalid_token"')

    # After Retry-After, one more attempt; it fails too while the fault lasts, logged once.
    clock.advance(RETRY_AFTER - 2)
    assert_unavailable(await call("/me", token(issuer, clock)))
    assert issuer.jwks_hits == 2
    assert len(failures()) == 2

    # The issuer heals: the same Verifier recovers at the next attempt, no restart.
    heal(issuer)
    clock.advance(RETRY_AFTER)
    reply = await call("/me", token(issuer, clock))
    assert (reply.status, body(reply)["sub"]) == (200, "c_demo")
    assert issuer.jwks_hits == 3
    assert verifier.keys.fresh(clock.now)
    assert (await call("/reports", token(issuer, clock))).status == 200
    assert issuer.jwks_hits == 3
    assert len(failures()) == 2


async def test_expired_cache_keeps_verifying_while_refreshes_fail_then_refreshes(
    fault: str,
    issuer: FakeIssuer,
    clock: Clock,
    call: Call,
    verifier: Verifier,
    failures: Callable[[], list[str]],
) -> None:
    assert (await call("/me", token(issuer, clock))).status == 200
    fetched_at = clock.now
    assert issuer.jwks_hits == 1

    break_issuer(issuer, fault)
    clock.advance(JWKS_MAX_AGE + 1)  # the fake issuer sends max-age=600: now expired
    assert not verifier.keys.fresh(clock.now)
    for alg_key in issuer.keys:  # every published key keeps verifying: stale-if-error
        reply = await call("/me", token(issuer, clock, alg_key))
        assert reply.status == 200, (alg_key.alg, reply)
    assert (await call("/reports", token(issuer, clock))).status == 200
    assert issuer.jwks_hits == 2  # one attempt for all those requests
    assert_logged_once(failures(), fault)

    # Tokens are still judged: a bad one is a 401, not let through by the stale set.
    assert (await call("/me", edit_signature(token(issuer, clock)))).status == 401

    clock.advance(RETRY_AFTER)
    assert (await call("/me", token(issuer, clock))).status == 200
    assert issuer.jwks_hits == 3
    assert len(failures()) == 2

    heal(issuer)
    clock.advance(RETRY_AFTER)
    assert (await call("/me", token(issuer, clock))).status == 200
    assert issuer.jwks_hits == 4
    assert verifier.keys.cached is not None and verifier.keys.cached.fetched_at > fetched_at
    assert verifier.keys.fresh(clock.now)
    assert len(failures()) == 2


async def test_past_the_stale_window_it_is_503_until_the_issuer_heals(
    fault: str,
    issuer: FakeIssuer,
    clock: Clock,
    call: Call,
    failures: Callable[[], list[str]],
) -> None:
    assert (await call("/me", token(issuer, clock))).status == 200
    break_issuer(issuer, fault)
    clock.advance(JWKS_MAX_AGE + STALE_IF_ERROR)  # the last good set is too old to trust
    assert_unavailable(await call("/me", token(issuer, clock)))
    assert_logged_once(failures(), fault)

    heal(issuer)
    clock.advance(RETRY_AFTER)
    assert (await call("/me", token(issuer, clock))).status == 200


async def test_unknown_kid_whose_refetch_fails_is_503_and_is_seen_once_healthy(
    fault: str,
    issuer: FakeIssuer,
    clock: Clock,
    call: Call,
    failures: Callable[[], list[str]],
) -> None:
    old = issuer.signer
    assert (await call("/me", token(issuer, clock, old))).status == 200
    assert issuer.jwks_hits == 1

    new = issuer.rotate()  # published beside the old key, but the issuer now fails
    break_issuer(issuer, fault)
    clock.advance(COOLDOWN)  # the cache is fresh; only the unknown kid asks for a refetch
    assert_unavailable(await call("/me", token(issuer, clock, new)))
    assert issuer.jwks_hits == 2
    assert_logged_once(failures(), fault)

    # The known key keeps working from the fresh cache, without asking the issuer.
    assert (await call("/me", token(issuer, clock, old))).status == 200
    assert issuer.jwks_hits == 2

    # Healthy again: after the cooldown, the new kid's refetch succeeds.
    heal(issuer)
    clock.advance(COOLDOWN)
    reply = await call("/me", token(issuer, clock, new))
    assert reply.status == 200, reply
    assert issuer.jwks_hits == 3
    assert (await call("/me", token(issuer, clock, old))).status == 200
    assert len(failures()) == 1


async def test_after_a_failed_refetch_an_unknown_kid_is_never_proven_bad(
    issuer: FakeIssuer, clock: Clock, call: Call
) -> None:
    assert (await call("/me", token(issuer, clock))).status == 200
    new = issuer.rotate()
    break_issuer(issuer, "HTTP 500")
    clock.advance(COOLDOWN)
    assert_unavailable(await call("/me", token(issuer, clock, new)))

    # Still failing: the set cannot decide this kid, so it is not a 401 (README: a 503 is not
    # a 401 on purpose, the token has not been proven bad).
    clock.advance(RETRY_AFTER)
    assert (await call("/me", token(issuer, clock, new))).status == 503

    # Healthy again: a client that waited as Retry-After said is let in.
    heal(issuer)
    clock.advance(RETRY_AFTER)
    assert (await call("/me", token(issuer, clock, new))).status == 200
