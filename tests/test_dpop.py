"""DPoP (RFC 9449): every check of a proof, each with the hostile proof it stops, through the
full request path; the modes; and the replay cache's bounds."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest

from authpi_worker import Isolate, Reply
from authpi_worker.dpop import (
    MAX_JTI_LENGTH,
    PROOF_MAX_AGE,
    PROOF_MAX_FUTURE,
    REPLAY_CACHE_PER_KEY,
    REPLAY_CACHE_SIZE,
    ReplayCache,
    normalized_url,
)
from authpi_worker.keys import parse_jwk, thumbprint
from authpi_worker.testing.dpop import jkt, proof, proof_claims, proof_header, public_jwk
from authpi_worker.testing.keys import SigningKey, make_key
from authpi_worker.testing.tokens import b64url, encode_part, header, sign, unb64url
from authpi_worker.testing.tokens import claims as token_claims
from tests.conftest import WORKER, Call, Clock, body
from tests.hostile import HOSTILE_PROOFS as HOSTILE
from tests.hostile import signed_proof as _signed
from tests.support.issuer import FakeIssuer
from tests.support.logs import logged
from tests.test_keys import SMALL_ORDER, forged, rsa_jwk, small_order_jwk

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
            lambda k, t: proof(k, "GET", ME, t, iat=int(time.time()) + PROOF_MAX_FUTURE - 1),
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


def _rsa_jwk(n: int, e: int) -> dict[str, Any]:
    """An RSA public jwk of these numbers, without kid (as a client sends it)."""
    return {k: v for k, v in rsa_jwk(n, e).items() if k != "kid"}


@cache
def _rsa_n(bits: int) -> str:
    """A real modulus of this size, base64url, made once per size."""
    return str(make_key("RS256", bits=bits).jwk()["n"])


def _modulus(bits: int) -> int:
    return int.from_bytes(unb64url(_rsa_n(bits)), "big")


# jwks the token is bound to (cnf.jkt is their thumbprint as sent) that are still no usable
# public key: refused as dpop_bad_jwk, the proof's signature never checked (it is junk here).
HOSTILE_KEYS: dict[str, Callable[[SigningKey], dict[str, Any]]] = {
    "RSA 1024 bits": lambda k: public_jwk(make_key("RS256", bits=1024)),
    "RSA modulus over 4096 bits": lambda k: _rsa_jwk((1 << 4096) | 1, 65537),
    "RSA exponent of 3072 bits": lambda k: _rsa_jwk(_modulus(3072), (1 << 3071) | 1),
    "RSA exponent 2**32 + 1": lambda k: _rsa_jwk(_modulus(2048), 2**32 + 1),
    "RSA exponent even": lambda k: _rsa_jwk(_modulus(2048), 65536),
    "RSA exponent 1": lambda k: _rsa_jwk(_modulus(2048), 1),
    "RSA n with a leading zero byte (another spelling of the key)": lambda k: {
        "kty": "RSA",
        "n": b64url(b"\0" + unb64url(_rsa_n(2048))),
        "e": "AQAB",
    },
    "EC x padded (another spelling of the key)": lambda k: {
        **public_jwk(k),
        "x": public_jwk(k)["x"] + "=",
    },
    "P-384": lambda k: public_jwk(make_key("ES256", curve="P-384")),
    "point not on the curve": lambda k: {**public_jwk(k), "y": public_jwk(k)["x"]},
    "an oct key with a kty/k the thumbprint cannot name": lambda k: {"kty": "oct", "k": "c2Vj"},
}


@pytest.mark.parametrize("name", list(HOSTILE_KEYS))
async def test_a_bound_jwk_that_is_no_usable_key_is_dpop_bad_jwk(
    name: str, call: Call, issuer: FakeIssuer, client: SigningKey
) -> None:
    jwk = HOSTILE_KEYS[name](client)
    token = issuer.mint(cnf={"jkt": _as_sent(jwk)})
    alg = "RS256" if jwk["kty"] == "RSA" else "ES256"
    head = encode_part({"typ": "dpop+jwt", "alg": alg, "jwk": jwk})
    value = f"{head}.{encode_part(proof_claims('GET', ME, token))}.{b64url(b'junk' * 64)}"
    reply, rejected = await dpop_call(call, token, value)
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith('DPoP error="invalid_dpop_proof"')
    assert [event["reason"] for event in rejected] == ["dpop_bad_jwk"]


def _as_sent(jwk: dict[str, Any]) -> str:
    """The RFC 7638 thumbprint of a jwk's required members as they are spelled (for an oct
    key, of its k: a binding an issuer could not have made to any usable key)."""
    return jkt(jwk) if jwk["kty"] != "oct" else "unthumbprintable"


async def test_a_proof_of_another_key_is_refused_before_its_signature_is_checked(
    call: Call, bound: str
) -> None:
    """Ordering without timing: the signature would fail too, but the binding is checked
    first, so the reason is the key (invalid_token), not the signature."""
    other = make_key("ES256")
    value = _signed(proof_header(other), proof_claims("GET", ME, bound), make_key("ES256"))
    reply, rejected = await dpop_call(call, bound, value)
    assert reply.headers["www-authenticate"].startswith('DPoP error="invalid_token"')
    assert [event["reason"] for event in rejected] == ["dpop_key_mismatch"]


async def test_a_hostile_rsa_proof_key_not_bound_to_the_token_costs_no_rsa_work(
    call: Call, bound: str
) -> None:
    """The review's proof: a 3,072-bit key with a 3,072-bit exponent and a junk signature,
    which cost about 55 ES256 proofs to verify. Its thumbprint is not the token's: refused
    as another key's proof, before it is read as a key or its signature checked."""
    jwk = _rsa_jwk(_modulus(3072), (1 << 3071) | 1)
    head = encode_part({"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk})
    value = f"{head}.{encode_part(proof_claims('GET', ME, bound))}.{b64url(bytes(384))}"
    reply, rejected = await dpop_call(call, bound, value)
    assert reply.headers["www-authenticate"].startswith('DPoP error="invalid_token"')
    assert [event["reason"] for event in rejected] == ["dpop_key_mismatch"]


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


# Per mode: (scheme, which token) -> status and the reason logged. `plain` is unbound.
MODE_VERDICTS = {
    "allowed": {
        ("Bearer", "plain"): (200, []),
        ("DPoP", "plain"): (401, ["token_not_bound"]),
        ("Bearer", "bound"): (401, ["dpop_bound_token"]),
        ("DPoP", "bound"): (200, []),
    },
    "required": {
        ("Bearer", "plain"): (401, ["dpop_required"]),
        ("DPoP", "plain"): (401, ["token_not_bound"]),
        ("Bearer", "bound"): (401, ["dpop_required"]),
        ("DPoP", "bound"): (200, []),
    },
    "disabled": {
        ("Bearer", "plain"): (200, []),
        ("DPoP", "plain"): (401, ["unsupported_scheme"]),
        ("Bearer", "bound"): (401, ["dpop_bound_token"]),
        ("DPoP", "bound"): (401, ["unsupported_scheme"]),
    },
}


@pytest.mark.parametrize("mode", list(MODE_VERDICTS))
async def test_each_modes_scheme_rules_hold_for_a_cached_token_too(
    call: Call,
    env: dict[str, object],
    isolate: Isolate,
    issuer: FakeIssuer,
    client: SigningKey,
    bound: str,
    mode: str,
) -> None:
    """Each token is cached by the first round (a refusal after the signature caches it too);
    the second round, exactly `Bearer ` / `DPoP ` and a cached token, gets the same verdicts."""
    env["AUTHPI_DPOP"] = mode
    tokens = {"plain": issuer.mint(), "bound": bound}
    for _ in range(2):
        verdicts = {}
        for scheme, name in MODE_VERDICTS[mode]:
            token = tokens[name]
            with logged() as events:
                reply = await call(
                    "/me", authorization=f"{scheme} {token}", dpop=proof(client, "GET", ME, token)
                )
            rejected = [e["reason"] for e in events if e["event"] == "request_rejected"]
            verdicts[scheme, name] = (reply.status, rejected)
        assert verdicts == MODE_VERDICTS[mode]
        assert all(token in isolate.verifier(env.get).tokens for token in tokens.values())


@pytest.mark.parametrize("scheme", ["DPoP ", "dpop ", "DPOP   "])
async def test_the_dpop_scheme_is_case_insensitive(
    call: Call, client: SigningKey, bound: str, scheme: str
) -> None:
    reply = await call("/me", authorization=scheme + bound, dpop=proof(client, "GET", ME, bound))
    assert reply.status == 200


# --- The replay cache: one client cannot lock the others out (issue 14, item 4) -------------


async def test_one_keys_flood_of_proofs_ahead_in_time_never_refuses_another_keys_proof(
    call: Call, issuer: FakeIssuer, client: SigningKey, bound: str, verifier: Any, clock: Clock
) -> None:
    """The review's attack: a client with its own bound token sends REPLAY_CACHE_SIZE + 1
    accepted proofs, each as far ahead as allowed. Before, the global floor rose past now and
    every other client's fresh proof was dpop_iat_out_of_window; now only the flooding key's
    own window narrows, and its evicted proofs still cannot be replayed."""
    flooder = make_key("EdDSA")  # the quickest to sign: the flood is 10,001 real requests
    token = issuer.mint(cnf={"jkt": jkt(flooder)})
    now = int(clock.now)
    first = proof(flooder, "GET", ME, token, iat=now)
    # Each iat a little newer than the last, up to the limit: every one is accepted.
    step = PROOF_MAX_FUTURE / REPLAY_CACHE_SIZE
    flood = [
        proof(flooder, "GET", ME, token, iat=now + step * (index + 1))
        for index in range(REPLAY_CACHE_SIZE)
    ]
    with logged() as events:
        for value in [first, *flood]:
            await call("/me", authorization=f"DPoP {token}", dpop=value)
    assert [e for e in events if e["event"] == "request_rejected"] == []
    reply, rejected = await dpop_call(call, bound, proof(client, "GET", ME, bound))
    assert (reply.status, rejected) == (200, [])  # another key's fresh proof
    assert len(verifier.proofs.replays) <= REPLAY_CACHE_PER_KEY + 1  # the flooder's share, +1
    replayed, rejected = await dpop_call(call, token, first)  # evicted, yet no replay
    assert replayed.status == 401
    assert [event["reason"] for event in rejected] == ["dpop_iat_out_of_window"]
    fresh, rejected = await dpop_call(call, token, proof(flooder, "GET", ME, token))
    assert fresh.status == 401  # the flooder narrowed its own window, until `ahead` passes
    assert [event["reason"] for event in rejected] == ["dpop_iat_out_of_window"]
    clock.advance(PROOF_MAX_FUTURE + 1)
    later = proof(flooder, "GET", ME, token, iat=int(clock.now))
    assert (await dpop_call(call, token, later))[0].status == 200


@pytest.mark.parametrize(
    ("ahead", "accepted"),
    [(0, True), (PROOF_MAX_FUTURE, True), (PROOF_MAX_FUTURE + 1, False), (30, False)],
)
async def test_a_proof_may_lie_at_most_proof_max_future_seconds_ahead(
    call: Call, client: SigningKey, bound: str, clock: Clock, ahead: int, accepted: bool
) -> None:
    """A few seconds (the review: 30 s let one flood hold the window shut for 30 s)."""
    value = proof(client, "GET", ME, bound, iat=int(clock.now) + ahead)
    reply, rejected = await dpop_call(call, bound, value)
    if accepted:
        assert (reply.status, rejected) == (200, [])
    else:
        assert reply.status == 401
        assert reply.headers["www-authenticate"].startswith('DPoP error="invalid_dpop_proof"')
        assert [event["reason"] for event in rejected] == ["dpop_iat_out_of_window"]


def test_the_future_skew_is_a_few_seconds() -> None:
    assert 1 <= PROOF_MAX_FUTURE <= 5


def test_one_keys_proofs_are_capped_and_only_its_own_floor_rises() -> None:
    cache = ReplayCache(size=100, per_key=3)
    cache.remember("other", "o", iat=100.0, now=100.0)
    for jti, iat in (("a", 100.0), ("b", 90.0), ("c", 110.0), ("d", 105.0)):
        cache.remember("flooder", jti, iat, now=120.0)
    assert len(cache) == 4  # 3 of the flooder's, 1 of the other's
    assert not cache.seen("flooder", "b")  # its oldest iat went, not its first in
    assert cache.floor_of("flooder") == 90.0  # so its proofs from iat 90 or before are refused
    assert cache.floor_of("other") == float("-inf")  # and no one else's
    assert cache.seen("other", "o") and not cache.seen("other", "a")  # jtis are per key


def test_a_full_replay_cache_evicts_from_the_key_holding_the_most() -> None:
    cache = ReplayCache(size=6, per_key=5)
    for index in range(4):
        cache.remember("heavy", f"h{index}", iat=100.0 + index, now=110.0)
    cache.remember("light", "l0", iat=100.0, now=110.0)
    cache.remember("light", "l1", iat=101.0, now=110.0)
    cache.remember("new", "n0", iat=109.0, now=110.0)  # full: the heaviest pays
    assert len(cache) == 6
    assert not cache.seen("heavy", "h0") and cache.floor_of("heavy") == 100.0
    assert cache.seen("light", "l0") and cache.floor_of("light") == float("-inf")
    assert cache.floor_of("new") == float("-inf") and cache.floor == float("-inf")


def test_only_as_many_distinct_keys_as_the_cache_holds_press_on_the_others() -> None:
    """The residual: when every remembered proof is another key's, a new key's proof makes the
    least recently used key be forgotten whole, and its floor becomes the isolate's."""
    cache = ReplayCache(size=3, per_key=2)
    for index in range(3):
        cache.remember(f"k{index}", "j", iat=100.0 + index, now=110.0)
    cache.remember("k3", "j", iat=105.0, now=110.0)
    assert len(cache) == 3 and cache.tracked == 3
    assert not cache.seen("k0", "j") and cache.floor == 100.0
    assert cache.floor_of("k1") == 100.0


def test_replay_cache_forgets_a_jti_once_its_proof_is_too_old_anyway() -> None:
    cache = ReplayCache(size=10)
    cache.remember("k", "a", iat=1000.0, now=1000.0)
    cache.remember("k", "b", iat=1000.0 + PROOF_MAX_AGE, now=1000.0 + PROOF_MAX_AGE + 1)
    assert not cache.seen("k", "a") and cache.seen("k", "b") and len(cache) == 1
    assert cache.floor_of("k") == float("-inf")  # nothing was evicted while it could be replayed


def test_a_keys_record_is_dropped_once_its_proofs_and_floor_are_out_of_the_window() -> None:
    cache = ReplayCache(size=10, per_key=1)
    cache.remember("idle", "a", iat=1000.0, now=1000.0)
    cache.remember("idle", "b", iat=1001.0, now=1001.0)  # a floor of 1000
    later = 1001.0 + PROOF_MAX_AGE + PROOF_MAX_FUTURE + 1
    cache.remember("busy", "c", iat=later, now=later)
    assert cache.tracked == 1 and len(cache) == 1 and not cache.seen("idle", "b")
    assert cache.floor_of("idle") == float("-inf")


def test_the_replay_cache_stays_within_its_bounds_under_any_flood() -> None:
    cache = ReplayCache(size=50, per_key=10)
    for index in range(5_000):
        key = f"k{index % 7}" if index % 3 else f"one-off-{index}"
        cache.remember(key, f"j{index}", iat=1000.0 + index / 100, now=1000.0 + index / 100)
        assert len(cache) <= 50 and cache.tracked <= 51
    assert all(len(cache._keys[key].jtis) <= 10 for key in cache._keys)


async def test_a_flood_of_proofs_shortens_the_keys_window_instead_of_reopening_replays(
    call: Call,
    client: SigningKey,
    bound: str,
    verifier: Any,
    monkeypatch: pytest.MonkeyPatch,
    clock: Clock,
) -> None:
    monkeypatch.setattr(verifier.proofs, "replays", ReplayCache(size=10, per_key=2))
    now = int(clock.now)
    early = proof(client, "GET", ME, bound, iat=now - 60)
    assert (await dpop_call(call, bound, early))[0].status == 200
    for _ in range(2):  # newer proofs push the early one out of the key's full share
        value = proof(client, "GET", ME, bound, iat=now)
        assert (await dpop_call(call, bound, value))[0].status == 200
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


# --- Malformed jwk members: a refused proof, never an exception (issue 14, item 3) -----------


@pytest.mark.parametrize("declared", [["EdDSA"], {}, {"EdDSA": 1}])
async def test_a_proof_jwk_whose_alg_is_not_a_string_is_dpop_bad_jwk_not_500(
    call: Call, issuer: FakeIssuer, declared: object
) -> None:
    """Regression: `declared in ED25519_NAMES` raised TypeError (a list or an object is
    unhashable): a 500 internal_error for anyone holding a bound token."""
    key = make_key("EdDSA")
    token = issuer.mint(cnf={"jkt": jkt(key)})
    head = proof_header(key, jwk={**public_jwk(key), "alg": declared})
    reply, rejected = await dpop_call(call, token, proof(key, "GET", ME, token, head=head))
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith('DPoP error="invalid_dpop_proof"')
    assert [event["reason"] for event in rejected] == ["dpop_bad_jwk"]


async def test_isolate_authenticate_returns_a_refusal_for_a_malformed_proof_jwk(
    isolate: Any, env: dict[str, object], issuer: FakeIssuer
) -> None:
    """The library call returns the ready 401 Reply; it never raises."""
    key = make_key("EdDSA")
    token = issuer.mint(cnf={"jkt": jkt(key)})
    head = proof_header(key, jwk={**public_jwk(key), "alg": ["EdDSA"]})
    with logged() as events:
        reply = await isolate.authenticate(
            env.get,
            f"DPoP {token}",
            method="GET",
            url=ME,
            dpop=proof(key, "GET", ME, token, head=head),
        )
    assert isinstance(reply, Reply) and reply.status == 401
    assert [e["reason"] for e in events if e["event"] == "request_rejected"] == ["dpop_bad_jwk"]


# --- Ed25519 proof keys of small order (issue 14, item 7) ------------------------------------


@pytest.mark.parametrize("name", list(SMALL_ORDER))
async def test_a_proof_with_a_small_order_ed25519_jwk_is_dpop_bad_jwk(
    call: Call, issuer: FakeIssuer, name: str
) -> None:
    """The token is bound to the small-order key, and the proof's R = identity, S = 0 verifies
    under it in cryptography: the key itself is refused."""
    jwk = small_order_jwk(SMALL_ORDER[name])
    token = issuer.mint(cnf={"jkt": jkt(jwk)})
    head = {"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk}
    value = forged(
        SMALL_ORDER[name],
        lambda n: f"{encode_part(head)}.{encode_part(proof_claims('GET', ME, token, jti=str(n)))}",
    )
    reply, rejected = await dpop_call(call, token, value)
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith('DPoP error="invalid_dpop_proof"')
    assert [event["reason"] for event in rejected] == ["dpop_bad_jwk"]


# --- htu: a URL that cannot be normalised equals nothing (issue 14, item 8) -----------------


@pytest.mark.parametrize(
    ("url", "htu"),
    [
        ("urn:anything", "urn:anything"),
        ("", ""),
        ("urn:anything", ""),
        ("", "urn:anything"),
        ("/me", "/me"),
        ("ftp://authpi-worker.example/me", "ftp://authpi-worker.example/me"),
        ("https://u:p@authpi-worker.example/me", "https://u:p@authpi-worker.example/me"),
    ],
)
async def test_an_htu_is_never_matched_by_a_url_that_cannot_be_normalised(
    isolate: Any, env: dict[str, object], client: SigningKey, bound: str, url: str, htu: str
) -> None:
    """Regression: normalized_url gives None for both, and None == None accepted the proof."""
    value = proof(client, "GET", htu, bound)
    with logged() as events:
        reply = await isolate.authenticate(
            env.get, f"DPoP {bound}", method="GET", url=url, dpop=value
        )
    assert isinstance(reply, Reply) and reply.status == 401
    assert [e["reason"] for e in events if e["event"] == "request_rejected"] == ["dpop_wrong_htu"]
