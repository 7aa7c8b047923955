"""DPoP (RFC 9449): every check of a proof, each with the hostile proof it stops, through the
full request path; the modes; and the replay cache's bounds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from authpi_worker.dpop import (
    MAX_JTI_LENGTH,
    PROOF_MAX_AGE,
    PROOF_MAX_FUTURE,
    ReplayCache,
    normalized_url,
)
from authpi_worker.keys import parse_jwk, thumbprint
from authpi_worker.testing.dpop import jkt, proof, proof_claims, proof_header, public_jwk
from authpi_worker.testing.keys import SigningKey, make_key
from authpi_worker.testing.tokens import claims as token_claims
from authpi_worker.testing.tokens import header, sign
from tests.conftest import WORKER, Call, Clock, body
from tests.hostile import HOSTILE_PROOFS as HOSTILE
from tests.hostile import signed_proof as _signed
from tests.support.issuer import FakeIssuer
from tests.support.logs import logged

ME = f"{WORKER}/me"
ALGS = 'algs="ES256 Ed25519 EdDSA RS256"'
METADATA = 'resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"'


@pytest.fixture(scope="module")
def client() -> SigningKey:
    """The client's DPoP key (ES256 unless a test says otherwise)."""
    return make_key("ES256", "client")


@pytest.fixture
def bound(issuer: FakeIssuer, client: SigningKey) -> str:
    """An access token bound to the client's key, as an RFC 9449 server issues it."""
    return issuer.mint(cnf={"jkt": jkt(client)})


async def dpop_call(call: Call, token: str, proof_value: str | None, path: str = "/me") -> Any:
    with logged() as events:
        reply = await call(path, authorization=f"DPoP {token}", dpop=proof_value)
    return reply, [e for e in events if e["event"] == "request_rejected"]


# --- A good proof, and what may vary in one ------------------------------------------------


@pytest.mark.parametrize(
    ("alg", "header_alg"),
    [("ES256", "ES256"), ("EdDSA", "EdDSA"), ("EdDSA", "Ed25519"), ("RS256", "RS256")],
)
async def test_a_valid_proof_for_each_algorithm_is_200(
    call: Call, issuer: FakeIssuer, alg: str, header_alg: str
) -> None:
    key = make_key(alg)
    token = issuer.mint(cnf={"jkt": jkt(key)})
    reply, rejected = await dpop_call(call, token, proof(key, "GET", ME, token, alg=header_alg))
    assert (reply.status, body(reply)["sub"], rejected) == (200, "c_demo", [])


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda k, t: proof(k, "GET", ME + "?page=2#top", t), id="htu-with-query"),
        pytest.param(
            lambda k, t: proof(k, "GET", "HTTPS://AUTHPI-WORKER.EXAMPLE:443/me", t),
            id="htu-scheme-host-case-default-port",
        ),
        pytest.param(
            lambda k, t: proof(k, "GET", ME, t, head=proof_header(k, typ="application/DPOP+JWT")),
            id="typ-application-prefix-any-case",
        ),
        pytest.param(
            lambda k, t: proof(k, "GET", ME, t, iat=int(time.time()) + PROOF_MAX_FUTURE - 5),
            id="iat-a-little-ahead",
        ),
        pytest.param(
            lambda k, t: proof(k, "GET", ME, t, iat=int(time.time()) - PROOF_MAX_AGE + 5),
            id="iat-nearly-five-minutes-old",
        ),
        pytest.param(lambda k, t: proof(k, "GET", ME, t, jti="x" * MAX_JTI_LENGTH), id="long-jti"),
        pytest.param(
            lambda k, t: proof(k, "GET", ME, t, head=proof_header(k, kid="client-key-1")),
            id="a-kid-in-the-header",
        ),
    ],
)
async def test_what_a_proof_may_vary(
    call: Call, client: SigningKey, bound: str, make: Callable[[SigningKey, str], str]
) -> None:
    reply, rejected = await dpop_call(call, bound, make(client, bound))
    assert (reply.status, rejected) == (200, [])


async def test_request_url_url_decoding_and_percent_case_compare_equal(
    call: Call, client: SigningKey, bound: str
) -> None:
    # RFC 3986 §6.2.2: %7E is ~ (unreserved), %3a and %3A are the same escape.
    value = proof(client, "GET", f"{WORKER}/no%7Esuch%3aroute", bound)
    with logged():
        reply = await call("/no~such%3Aroute", authorization=f"DPoP {bound}", dpop=value)
    assert reply.status == 404  # authenticated: the proof matched; the path is unknown


async def test_head_is_proven_with_htm_head(call: Call, client: SigningKey, bound: str) -> None:
    reply = await call(
        "/me", authorization=f"DPoP {bound}", dpop=proof(client, "HEAD", ME, bound), method="HEAD"
    )
    assert (reply.status, reply.body) == (200, "")


# --- Every check, with the proof it stops ---------------------------------------------------


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_hostile_proof_is_401_invalid_dpop_proof_with_its_reason(
    name: str, call: Call, client: SigningKey, bound: str
) -> None:
    make, reason = HOSTILE[name]
    reply, rejected = await dpop_call(call, bound, make(client, bound))
    assert (reply.status, body(reply)) == (401, {"error": "unauthorized"})
    challenge = reply.headers["www-authenticate"]
    assert challenge.startswith('DPoP error="invalid_dpop_proof", error_description="'), challenge
    assert challenge.endswith(f'", {ALGS}, {METADATA}'), challenge
    assert [event["reason"] for event in rejected] == [reason]


async def test_a_replayed_proof_is_refused(call: Call, client: SigningKey, bound: str) -> None:
    value = proof(client, "GET", ME, bound)
    first, _ = await dpop_call(call, bound, value)
    again, rejected = await dpop_call(call, bound, value)
    assert (first.status, again.status) == (200, 401)
    assert [event["reason"] for event in rejected] == ["dpop_replayed"]
    assert 'error="invalid_dpop_proof"' in again.headers["www-authenticate"]


async def test_a_jti_is_spent_only_by_an_accepted_proof(
    call: Call, client: SigningKey, bound: str
) -> None:
    """A proof refused for another reason does not burn its jti: no one can spend a client's
    jti with a proof they could not make valid."""
    refused, _ = await dpop_call(call, bound, proof(client, "POST", ME, bound, jti="once"))
    accepted, _ = await dpop_call(call, bound, proof(client, "GET", ME, bound, jti="once"))
    assert (refused.status, accepted.status) == (401, 200)


async def test_a_cached_token_still_needs_a_valid_proof_every_time(
    call: Call, client: SigningKey, bound: str, verifier: Any
) -> None:
    """The verified-token cache spares the token's signature, never the proof's."""
    assert (await dpop_call(call, bound, proof(client, "GET", ME, bound)))[0].status == 200
    assert len(verifier.tokens) == 1
    forged = _signed(proof_header(client), proof_claims("GET", ME, bound), make_key("ES256"))
    reply, rejected = await dpop_call(call, bound, forged)
    assert reply.status == 401 and [e["reason"] for e in rejected] == ["dpop_bad_signature"]
    again, _ = await dpop_call(call, bound, proof(client, "GET", ME, bound))
    assert again.status == 200


async def test_a_proof_of_another_key_than_the_tokens_is_invalid_token(
    call: Call, bound: str
) -> None:
    """A thief with the token and a key of their own: a valid proof, of the wrong key."""
    reply, rejected = await dpop_call(call, bound, proof(make_key("ES256"), "GET", ME, bound))
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith('DPoP error="invalid_token"')
    assert [event["reason"] for event in rejected] == ["dpop_key_mismatch"]


async def test_an_unbound_token_under_the_dpop_scheme_is_invalid_token(
    call: Call, issuer: FakeIssuer, client: SigningKey
) -> None:
    token = issuer.mint()
    reply, rejected = await dpop_call(call, token, proof(client, "GET", ME, token))
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith('DPoP error="invalid_token"')
    assert [event["reason"] for event in rejected] == ["token_not_bound"]


async def test_a_bad_token_under_dpop_is_a_dpop_invalid_token(
    call: Call, issuer: FakeIssuer, client: SigningKey
) -> None:
    token = issuer.mint(cnf={"jkt": jkt(client)}, exp=1)
    reply, rejected = await dpop_call(call, token, proof(client, "GET", ME, token))
    assert reply.headers["www-authenticate"] == (
        f'DPoP error="invalid_token", error_description="token expired", {ALGS}, {METADATA}'
    )
    assert [event["reason"] for event in rejected] == ["expired"]


async def test_missing_scope_under_dpop_is_403_with_a_dpop_challenge(
    call: Call, issuer: FakeIssuer, client: SigningKey
) -> None:
    token = issuer.mint(cnf={"jkt": jkt(client)}, scope="read:profile")
    value = proof(client, "GET", f"{WORKER}/reports", token)
    reply, _ = await dpop_call(call, token, value, "/reports")
    assert (reply.status, body(reply)) == (403, {"error": "insufficient_scope"})
    assert reply.headers["www-authenticate"] == (
        f'DPoP error="insufficient_scope", scope="read:reports", {METADATA}'
    )


# --- cnf: a binding we cannot honour never becomes a bearer token ---------------------------


@pytest.mark.parametrize("mode", ["allowed", "required", "disabled"])
async def test_a_bound_token_as_bearer_is_401_in_every_mode(
    call: Call, env: dict[str, object], bound: str, mode: str
) -> None:
    env["AUTHPI_DPOP"] = mode
    with logged() as events:
        reply = await call("/me", bound)
    assert (reply.status, body(reply)) == (401, {"error": "unauthorized"})
    reason = "dpop_required" if mode == "required" else "dpop_bound_token"
    assert [e["reason"] for e in events if e["event"] == "request_rejected"] == [reason]


@pytest.mark.parametrize(
    "cnf",
    [
        {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"},  # mTLS (RFC 8705)
        {"jkt": "abc", "x5t#S256": "def"},
        {"jwk": {"kty": "EC"}},
        {},
        {"jkt": ""},
        {"jkt": 7},
        "jkt",
        ["jkt"],
    ],
)
@pytest.mark.parametrize("scheme", ["Bearer", "DPoP"])
async def test_a_binding_we_cannot_check_is_refused_under_either_scheme(
    call: Call, issuer: FakeIssuer, client: SigningKey, cnf: object, scheme: str
) -> None:
    token = issuer.mint(cnf=cnf)
    with logged() as events:
        reply = await call(
            "/me", authorization=f"{scheme} {token}", dpop=proof(client, "GET", ME, token)
        )
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith(f'{scheme} error="invalid_token"')
    assert [e["reason"] for e in events if e["event"] == "request_rejected"] == ["unsupported_cnf"]


# --- The modes -------------------------------------------------------------------------------


async def test_allowed_takes_bearer_and_dpop_and_offers_both(
    call: Call, issuer: FakeIssuer, client: SigningKey, bound: str
) -> None:
    assert (await call("/me", issuer.mint())).status == 200
    assert (await dpop_call(call, bound, proof(client, "GET", ME, bound)))[0].status == 200
    challenge = (await call("/me")).headers["www-authenticate"]
    assert challenge == f"Bearer {METADATA}, DPoP {ALGS}, {METADATA}"


async def test_required_refuses_bearer_with_a_dpop_challenge(
    call: Call, env: dict[str, object], issuer: FakeIssuer, client: SigningKey, bound: str
) -> None:
    env["AUTHPI_DPOP"] = "required"
    for reply in (await call("/me", issuer.mint()), await call("/me")):
        assert reply.status == 401
        assert reply.headers["www-authenticate"] == f"DPoP {ALGS}, {METADATA}"
    assert (await dpop_call(call, bound, proof(client, "GET", ME, bound)))[0].status == 200


async def test_disabled_does_not_accept_the_dpop_scheme(
    call: Call, env: dict[str, object], issuer: FakeIssuer, client: SigningKey, bound: str
) -> None:
    env["AUTHPI_DPOP"] = "disabled"
    assert (await call("/me", issuer.mint())).status == 200
    reply, rejected = await dpop_call(call, bound, proof(client, "GET", ME, bound))
    assert reply.status == 401
    assert reply.headers["www-authenticate"] == f"Bearer {METADATA}"
    assert [event["reason"] for event in rejected] == ["unsupported_scheme"]


@pytest.mark.parametrize("scheme", ["DPoP ", "dpop ", "DPOP   "])
async def test_the_dpop_scheme_is_case_insensitive(
    call: Call, client: SigningKey, bound: str, scheme: str
) -> None:
    reply = await call("/me", authorization=scheme + bound, dpop=proof(client, "GET", ME, bound))
    assert reply.status == 200


# --- The replay cache: bounded, and a flood narrows the window instead of opening it ----------


def test_replay_cache_forgets_a_jti_once_its_proof_is_too_old_anyway() -> None:
    cache = ReplayCache(size=10)
    cache.remember("a", iat=1000.0, now=1000.0)
    cache.remember("b", iat=1000.0 + PROOF_MAX_AGE, now=1000.0 + PROOF_MAX_AGE + 1)
    assert not cache.seen("a") and cache.seen("b") and len(cache) == 1
    assert cache.floor == float("-inf")  # nothing was evicted while it could still be replayed


def test_a_full_replay_cache_evicts_the_oldest_and_refuses_proofs_that_old() -> None:
    cache = ReplayCache(size=3)
    for jti, iat in (("a", 100.0), ("b", 90.0), ("c", 110.0), ("d", 105.0)):
        cache.remember(jti, iat, now=120.0)
    assert len(cache) == 3 and not cache.seen("b")  # the oldest iat went, not the first in
    assert cache.floor == 90.0  # so any proof from iat 90 or before is now refused


async def test_a_flood_of_proofs_shortens_the_window_instead_of_reopening_replays(
    call: Call,
    client: SigningKey,
    bound: str,
    verifier: Any,
    monkeypatch: pytest.MonkeyPatch,
    clock: Clock,
) -> None:
    monkeypatch.setattr(verifier.proofs, "replays", ReplayCache(size=2))
    now = int(clock.now)
    early = proof(client, "GET", ME, bound, iat=now - 60)
    assert (await dpop_call(call, bound, early))[0].status == 200
    for _ in range(2):  # newer proofs push the early one out of the full cache
        assert (await dpop_call(call, bound, proof(client, "GET", ME, bound, iat=now)))[
            0
        ].status == 200
    reply, rejected = await dpop_call(call, bound, early)
    assert reply.status == 401
    assert [event["reason"] for event in rejected] == ["dpop_iat_out_of_window"]


# --- URL normalisation and the thumbprint ---------------------------------------------------


@pytest.mark.parametrize(
    ("left", "right", "equal"),
    [
        ("https://a.example/x", "HTTPS://A.EXAMPLE/x", True),
        ("https://a.example:443/x", "https://a.example/x", True),
        ("http://a.example:80/x", "http://a.example/x", True),
        ("https://a.example/x?q=1#f", "https://a.example/x", True),
        ("https://a.example", "https://a.example/", True),
        ("https://a.example/%7e%41", "https://a.example/~A", True),
        ("https://a.example/%2f", "https://a.example/%2F", True),
        ("https://a.example/%2F", "https://a.example//", False),  # / is reserved: not decoded
        ("https://a.example/X", "https://a.example/x", False),  # the path is case-sensitive
        ("https://a.example:8443/x", "https://a.example/x", False),
        ("http://a.example/x", "https://a.example/x", False),
        ("https://[::1]:8443/x", "https://[::1]:8443/x", True),
    ],
)
def test_htu_comparison_follows_rfc_3986_normalisation(left: str, right: str, equal: bool) -> None:
    assert (normalized_url(left) == normalized_url(right)) is equal
    assert normalized_url(left) is not None


@pytest.mark.parametrize(
    "url", ["/me", "ftp://a.example/x", "https://u:p@a.example/x", "https://[::1/x", "me"]
)
def test_urls_that_are_no_request_url_never_match(url: str) -> None:
    assert normalized_url(url) is None


def test_thumbprint_matches_rfc_7638s_example() -> None:
    """RFC 7638 §3.1: the RSA key and its SHA-256 thumbprint."""
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
            "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
            "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO"
            "pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
            "Cur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(parse_jwk(jwk)) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "RS256"])
def test_the_workers_thumbprint_equals_the_clients(alg: str) -> None:
    key = make_key(alg)
    assert thumbprint(parse_jwk(public_jwk(key))) == jkt(key)


def test_ed25519_access_tokens_verify_under_both_names() -> None:
    """RFC 9864: a key published as Ed25519 serves the EdDSA name too, and the other way."""
    key = make_key("EdDSA")
    for declared in ("EdDSA", "Ed25519"):
        assert parse_jwk(key.jwk(alg=declared)).algs == frozenset({"EdDSA", "Ed25519"})
    assert parse_jwk(make_key("ES256").jwk()).algs == frozenset({"ES256"})


async def test_ed25519_named_access_token_is_200(
    call: Call, issuer: FakeIssuer, keys: dict[str, SigningKey]
) -> None:
    key = keys["EdDSA"]
    token = sign(key, header(key, alg="Ed25519"), token_claims(issuer.url), alg="EdDSA")
    assert (await call("/me", token)).status == 200
