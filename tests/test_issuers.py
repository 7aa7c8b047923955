"""Several issuers (AUTHPI_ISSUER_URL="A B"), against two real fake issuers on 127.0.0.1.

A token's iss picks its issuer, and only that issuer's keys may verify it; each issuer has its
own key cache (set, fetch policy, cooldown), and the verified-token cache follows each one's
key set on its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from authpi_worker import tokens
from authpi_worker.auth import Verifier
from authpi_worker.config import load_settings
from authpi_worker.errors import ServerMisconfigured
from authpi_worker.jwks import COOLDOWN, JWKS_MAX_AGE
from authpi_worker.metadata import WELL_KNOWN
from authpi_worker.testing.keys import SigningKey, make_key
from authpi_worker.testing.tokens import claims, header, sign
from tests.conftest import Call, Clock, body
from tests.support.issuer import FakeIssuer, Faults, running
from tests.support.logs import logged

SHARED_KID = "shared-1"  # both issuers publish a key under this kid: different keys


@pytest.fixture
def first() -> Iterator[FakeIssuer]:
    with running(FakeIssuer(issuer_id="iss_first", keys=[make_key("ES256", SHARED_KID)])) as one:
        yield one


@pytest.fixture
def second() -> Iterator[FakeIssuer]:
    # A longer max-age than the first's: its set stays fresh while the first's is refetched.
    faults = Faults(cache_control="public, max-age=3600")
    key = make_key("ES256", SHARED_KID)
    with running(FakeIssuer(issuer_id="iss_second", keys=[key], faults=faults)) as two:
        yield two


@pytest.fixture
def env(first: FakeIssuer, second: FakeIssuer) -> dict[str, object]:
    """Both issuers, the first as it moves to a custom domain would list its new URL."""
    return {"AUTHPI_ISSUER_URL": f"{first.url}, {second.url}", "AUTHPI_AUDIENCE": first.audience}


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The iss of each real signature check (the original still runs)."""
    seen: list[str] = []
    original = tokens.verify_signature

    def counting(parsed: tokens.Parsed, key: object) -> None:
        seen.append(parsed.claims["iss"])
        original(parsed, key)

    monkeypatch.setattr("authpi_worker.auth.verify_signature", counting)
    return seen


def now_token(issuer: FakeIssuer, clock: Clock, key: SigningKey | None = None) -> str:
    return issuer.mint(key, iat=int(clock.now), exp=int(clock.now) + 3 * 3600)


def hits(*issuers: FakeIssuer) -> list[int]:
    return [issuer.jwks_hits for issuer in issuers]


async def test_a_token_of_each_issuer_verifies_with_its_own_keys(
    call: Call, first: FakeIssuer, second: FakeIssuer
) -> None:
    assert (await call("/me", first.mint())).status == 200
    assert hits(first, second) == [1, 0]  # the second's keys were not needed
    assert (await call("/me", second.mint())).status == 200
    assert hits(first, second) == [1, 1]


@pytest.mark.parametrize(
    "iss",
    [
        "https://evil.example/iss_first",
        "{first}/",  # one character off
        "{first} {second}",  # the variable's text is no issuer
        ["{first}"],
        None,
    ],
)
async def test_an_iss_we_do_not_list_is_401_wrong_issuer_without_any_jwks_fetch(
    call: Call, first: FakeIssuer, second: FakeIssuer, iss: object
) -> None:
    if isinstance(iss, str):
        iss = iss.format(first=first.url, second=second.url)
    elif isinstance(iss, list):
        iss = [entry.format(first=first.url) for entry in iss]
    token = sign(first.signer, header(first.signer), claims(first.url, iss=iss))
    with logged() as events:
        reply = await call("/me", token)
    assert reply.status == 401
    assert 'error_description="unexpected issuer"' in reply.headers["www-authenticate"]
    assert [event["reason"] for event in events] == ["wrong_issuer"]
    assert hits(first, second) == [0, 0]


@pytest.mark.parametrize("direction", ["first's iss, second's key", "second's iss, first's key"])
async def test_a_token_claiming_one_issuer_signed_with_the_others_key_is_401(
    call: Call, first: FakeIssuer, second: FakeIssuer, direction: str
) -> None:
    """Both publish kid shared-1: the kid must be looked up in the claimed issuer's set only."""
    claimed, signer = (first, second) if direction.startswith("first") else (second, first)
    assert claimed.signer.kid == signer.signer.kid == SHARED_KID
    assert (await call("/me", signer.mint())).status == 200  # the key itself is good
    forged = sign(signer.signer, header(signer.signer), claims(claimed.url))
    with logged() as events:
        reply = await call("/me", forged)
    assert (reply.status, body(reply)) == (401, {"error": "unauthorized"})
    assert [event["reason"] for event in events] == ["bad_signature"]
    assert claimed.jwks_hits == 1  # the claimed issuer's keys decided


async def test_a_flood_naming_one_issuer_never_fetches_the_others_jwks(
    call: Call, first: FakeIssuer, second: FakeIssuer, clock: Clock
) -> None:
    valid = [first.mint() for _ in range(20)]
    strangers = [first.mint(make_key("ES256")) for _ in range(50)]  # unknown kids
    for token in valid + strangers:
        await call("/me", token)
    assert hits(first, second) == [1, 0]  # one fetch; unknown kids wait for the cooldown
    clock.advance(COOLDOWN)
    for token in strangers:
        assert (await call("/me", token)).status == 401
    assert hits(first, second) == [2, 0]  # one refetch per cooldown, and only the first's


async def test_each_issuer_has_its_own_cooldown(
    call: Call, first: FakeIssuer, second: FakeIssuer, clock: Clock
) -> None:
    """The first's unknown-kid refetch does not spend the second's: its rotation is seen."""
    assert (await call("/me", now_token(first, clock))).status == 200
    assert (await call("/me", now_token(second, clock))).status == 200
    clock.advance(COOLDOWN)
    await call("/me", first.mint(make_key("ES256")))  # the first's refetch, cooldown now spent
    rotated = second.rotate()
    assert (await call("/me", now_token(second, clock, rotated))).status == 200
    assert hits(first, second) == [2, 2]


async def test_one_issuers_outage_is_its_own(
    call: Call, first: FakeIssuer, second: FakeIssuer
) -> None:
    first.faults.status = 500
    assert (await call("/me", first.mint())).status == 503
    assert (await call("/me", second.mint())).status == 200


async def test_the_token_cache_follows_each_issuers_key_set_on_its_own(
    call: Call,
    first: FakeIssuer,
    second: FakeIssuer,
    clock: Clock,
    verifier: Verifier,
    verifications: list[str],
) -> None:
    """The first rotates and withdraws its key: its cached tokens stop at the next refetch;
    the second's stay cache hits, with no signature check and no fetch."""
    old = first.signer
    ours, theirs = now_token(first, clock), now_token(second, clock)
    for _ in range(3):
        assert [(await call("/me", t)).status for t in (ours, theirs)] == [200, 200]
    assert verifications == [first.url, second.url]  # once each, then cache hits
    first.rotate()
    first.retire(old.kid)
    clock.advance(JWKS_MAX_AGE)  # the first's set is due; the second's (1 h) is fresh
    assert (await call("/me", theirs)).status == 200
    assert hits(first, second) == [1, 1] and len(verifications) == 2  # a hit, untouched
    assert (await call("/me", ours)).status == 401  # refetched: the key is gone
    assert hits(first, second) == [2, 1]
    assert (await call("/me", theirs)).status == 200
    assert len(verifications) == 2 and len(verifier.tokens) == 1


async def test_a_version_change_of_one_issuer_drops_only_its_tokens(
    call: Call,
    first: FakeIssuer,
    second: FakeIssuer,
    clock: Clock,
    verifications: list[str],
) -> None:
    """A rotation that keeps the old key still changes the first's version: its tokens are
    verified again once, the second's are not."""
    ours, theirs = now_token(first, clock), now_token(second, clock)
    for token in (ours, theirs):
        assert (await call("/me", token)).status == 200
    first.rotate()
    clock.advance(JWKS_MAX_AGE)
    for token in (ours, theirs, ours, theirs):
        assert (await call("/me", token)).status == 200
    assert verifications == [first.url, second.url, first.url]


async def test_the_metadata_lists_every_issuer_in_the_configured_order(
    call: Call, env: dict[str, object], first: FakeIssuer, second: FakeIssuer
) -> None:
    assert body(await call(WELL_KNOWN))["authorization_servers"] == [first.url, second.url]
    env["AUTHPI_ISSUER_URL"] = f"{second.url} {first.url}"
    assert body(await call(WELL_KNOWN))["authorization_servers"] == [second.url, first.url]
    assert hits(first, second) == [0, 0]


GOOD = {"AUTHPI_AUDIENCE": "https://api.example.com"}


@pytest.mark.parametrize(
    "value",
    [
        "https://idp.authpi.com/iss_1 https://auth.example.com/iss_1",
        "https://idp.authpi.com/iss_1, https://auth.example.com/iss_1",
        "https://idp.authpi.com/iss_1,https://auth.example.com/iss_1",
        "https://idp.authpi.com/iss_1\n  https://auth.example.com/iss_1",
        "https://idp.authpi.com/iss_1 https://auth.example.com/iss_1 https://idp.authpi.com/iss_1",
    ],
)
def test_several_issuer_urls_in_order(value: str) -> None:
    settings = load_settings({**GOOD, "AUTHPI_ISSUER_URL": value}.get)
    assert settings.issuers == ("https://idp.authpi.com/iss_1", "https://auth.example.com/iss_1")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("https://idp.authpi.com/iss_1 http://auth.example.com/iss_1", "must be https"),
        ("http://10.0.0.5/iss_1 http://127.0.0.1:9400/iss_local", "must be https"),
        ("https://idp.authpi.com/iss_1 auth.example.com", "http(s) URL"),
        ("https://idp.authpi.com/iss_1,", "empty entry"),
        ("https://idp.authpi.com/iss_1 https://idp.authpi.com/{issuer_id}", "placeholder"),
    ],
)
def test_each_issuer_url_is_checked(value: str, problem: str) -> None:
    with pytest.raises(ServerMisconfigured) as caught:
        load_settings({**GOOD, "AUTHPI_ISSUER_URL": value}.get)
    assert caught.value.variable == "AUTHPI_ISSUER_URL"
    assert problem in caught.value.description


def test_plain_http_for_each_issuer_on_this_machine() -> None:
    value = "http://127.0.0.1:9400/a http://localhost:9401/b http://[::1]:9402/c"
    assert load_settings({**GOOD, "AUTHPI_ISSUER_URL": value}.get).issuers == tuple(value.split())


async def test_a_misconfigured_issuer_list_is_500_and_names_the_variable(
    call: Call, env: dict[str, object], first: FakeIssuer
) -> None:
    env["AUTHPI_ISSUER_URL"] = f"{first.url},,{first.url}"
    assert (await call("/")).status == 200
    with logged() as events:
        for path in ("/me", WELL_KNOWN):
            reply = await call(path, first.mint())
            assert (reply.status, body(reply)) == (500, {"error": "server_misconfigured"})
    assert [event["detail"] for event in events] == ["AUTHPI_ISSUER_URL"] * 2
    assert first.jwks_hits == 0
