"""Bad input at scale: hypothesis drives the full request path (dispatch → Verifier →
tokens → keys → jwks) with generated Authorization headers, token segments and JWKS documents.

Whatever comes in, the answer is one of 200/401/403/404/503 with a JSON body and the challenge
its status calls for, never an exception: dispatch() turns an exception into a 500
internal_error, which these tests forbid. Where the input is built to be valid or invalid by
construction (a value drawn from a "good" or a "bad" strategy), the verdict is checked too.

The clock is fixed and the JWKS is served from memory, so each example is deterministic.
"""

from __future__ import annotations

import json
import math
import re
import string
from functools import cache
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import REPORTS_SCOPE, ROUTES
from authpi_worker import Isolate, Reply, Request, dispatch, strict_json
from authpi_worker.config import AUDIENCE_VAR, ISSUER_VAR
from authpi_worker.dpop import DPOP_TYPES, PROOF_MAX_AGE, PROOF_MAX_FUTURE, ReplayCache
from authpi_worker.jwks import MAX_MAX_AGE, MIN_MAX_AGE, Edge, Fetched
from authpi_worker.keys import MAX_JWKS_BYTES, MAX_KEYS, parse_jwks
from authpi_worker.responses import DPOP_ALGS
from authpi_worker.testing.dpop import jkt, proof_claims, proof_header, public_jwk
from authpi_worker.testing.keys import SigningKey, make_key
from authpi_worker.testing.tokens import AUDIENCE, b64url, edit_signature, sign
from authpi_worker.testing.tokens import header as token_header
from authpi_worker.token_cache import TokenCache
from tests.support.logs import logged
from tests.test_tokens import verdict

ISSUER = "https://idp.example.test/iss_props"
ENV = {ISSUER_VAR: ISSUER, AUDIENCE_VAR: AUDIENCE}
WORKER = "https://authpi-worker.example"
NOW = 1_800_000_000.0  # the fixed clock of every example
LATER = int(NOW) + 3600  # an exp that is valid at NOW
ALGS = ("ES256", "EdDSA", "RS256")
PROTECTED = ("/me", "/reports")
KNOWN_PATHS = ("/", *PROTECTED)
EXAMPLES = 250

# README, "Verification rules": every reason code a rejection may log.
REASONS = frozenset(
    {
        *("missing_token", "unsupported_scheme", "malformed", "too_large", "unsupported_alg"),
        *("wrong_typ", "unsupported_crit", "unknown_kid", "alg_key_mismatch", "bad_signature"),
        *("expired", "not_yet_valid", "issued_in_future", "invalid_claim", "wrong_issuer"),
        *("wrong_audience", "missing_exp", "missing_sub", "insufficient_scope"),
        *("jwks_unavailable", "token_not_bound", "dpop_bound_token", "unsupported_cnf"),
        *("dpop_proof_missing", "dpop_proof_repeated", "dpop_malformed", "dpop_too_large"),
        *("dpop_wrong_typ", "dpop_unsupported_alg", "dpop_unsupported_crit", "dpop_bad_jwk"),
        *("dpop_alg_key_mismatch", "dpop_bad_signature", "dpop_key_mismatch"),
        *("dpop_wrong_htm", "dpop_wrong_htu", "dpop_bad_iat", "dpop_iat_out_of_window"),
        *("dpop_bad_jti", "dpop_replayed", "dpop_wrong_ath"),
    }
)
# RFC 9728 §5.1: every challenge points to the metadata (of the audience, here a URL).
METADATA = f'resource_metadata="{AUDIENCE}/.well-known/oauth-protected-resource"'
NO_CREDENTIALS_CHALLENGE = f'Bearer {METADATA}, DPoP algs="{DPOP_ALGS}", {METADATA}'
# RFC 6750 §3: error_description is a quoted-string of %x20-21 / %x23-5B / %x5D-7E.
INVALID_CHALLENGE = re.compile(
    r'(Bearer|DPoP) error="(invalid_token|invalid_dpop_proof)", '
    r'error_description="[\x20\x21\x23-\x5b\x5d-\x7e]*"'
    rf'(, algs="{DPOP_ALGS}")?, {re.escape(METADATA)}'
)
SCOPE_CHALLENGE = f'Bearer error="insufficient_scope", scope="{REPORTS_SCOPE}", {METADATA}'

B64URL = string.ascii_letters + string.digits + "-_"
B64TOKEN = B64URL + ".~+/"


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ABSENT = _Marker("ABSENT")  # leave the member out
SAME = _Marker("SAME")  # the value that fits the signing key (its alg, its kid)

Tagged = tuple[Any, bool]  # a value, and whether the rules accept it


# --- keys and verifiers ---------------------------------------------------------------------


@cache
def published() -> dict[str, SigningKey]:
    """The issuer's three keys, one per algorithm (made once per session)."""
    return {alg: make_key(alg, f"props-{alg.lower()}") for alg in ALGS}


@cache
def spare(name: str) -> SigningKey:
    """Keys the issuer does not publish: forgers under a published kid, and unusable kinds."""
    if name.startswith("forger-"):
        alg = name.removeprefix("forger-")
        return make_key(alg, published()[alg].kid)
    kid = f"spare-{name.lower()}"
    if name == "RSA-1024":
        return make_key("RS256", kid, bits=1024)
    return make_key({"P-384": "ES256", "Ed448": "EdDSA"}[name], kid, curve=name)


def good_jwks() -> bytes:
    return json.dumps({"keys": [key.jwk() for key in published().values()]}).encode()


def isolate_for(
    document: bytes, status: int = 200, cache_control: str | None = "max-age=600"
) -> Isolate:
    """An isolate whose JWKS fetch always answers this, at the fixed clock."""

    async def fetch(url: str, edge: Edge) -> Fetched:
        return Fetched(status, document, cache_control)

    return Isolate(fetch, lambda: NOW)


def valid_token(alg: str = "ES256", overrides: dict[str, Any] | None = None) -> str:
    key = published()[alg]
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "client_props", "iat": int(NOW) - 10}
    claims.update({"exp": LATER, "scope": REPORTS_SCOPE, **(overrides or {})})
    return sign(key, token_header(key), claims)


# --- the checks every reply must pass -------------------------------------------------------


async def request(
    path: str, authorization: str | None, isolate: Isolate, dpop: str | None = None
) -> Reply:
    """One request through the full path; checks what every reply must be, returns it."""
    with logged() as events:
        # As the runtime has it: a URL whose path is percent-encoded (WHATWG URL).
        url = WORKER + quote(path, safe="/%:@!$&'()*+,;=~")
        request = Request("GET", url, authorization, dpop)
        reply = await dispatch(ROUTES, request, isolate, ENV.get)
    check_reply(reply, path, events)
    credential = (authorization or "").split()[-1:]  # the token, or what stands for it
    if credential and len(credential[0]) >= 40:
        logged_text = [str(value) for event in events for value in event.values()]
        assert not any(credential[0] in text for text in logged_text), "a token reached the log"
    return reply


def check_reply(reply: Reply, path: str, events: list[dict[str, Any]]) -> None:
    assert reply.status in (200, 401, 403, 404, 503), (reply.status, reply.body, events)
    assert not [e for e in events if e["event"] == "internal_error"], events
    assert reply.headers["content-type"] == "application/json"
    data = json.loads(reply.body)
    assert reply.body == json.dumps(data, separators=(",", ":"))  # Response.json()'s bytes
    challenge = reply.headers.get("www-authenticate")
    rejections = [e for e in events if e["event"] == "request_rejected"]
    if reply.status in (401, 403, 503):
        assert len(rejections) == 1, events
        assert rejections[0]["status"] == reply.status
        assert rejections[0]["reason"] in REASONS
    else:
        assert rejections == [], events
    if reply.status == 401:
        assert data == {"error": "unauthorized"}
        assert challenge is not None
        assert challenge == NO_CREDENTIALS_CHALLENGE or INVALID_CHALLENGE.fullmatch(challenge), (
            challenge
        )
    elif reply.status == 403:
        assert path == "/reports"
        assert data == {"error": "insufficient_scope"}
        assert challenge == SCOPE_CHALLENGE
    elif reply.status == 503:
        assert data == {"error": "temporarily_unavailable"}
        assert challenge is None
        retry_after = reply.headers["retry-after"]
        assert retry_after.isascii() and retry_after.isdigit() and int(retry_after) >= 1
    elif reply.status == 404:
        assert path not in KNOWN_PATHS
        assert data == {"error": "not_found"}
        assert challenge is None
    else:
        assert challenge is None
        if path == "/":
            assert data == {"status": "ok"}
        elif path == "/me":
            assert isinstance(data["sub"], str) and data["sub"]
            assert set(data) <= {"sub", "scope"}
        else:
            assert path == "/reports"
            assert data["reports"] == [] and isinstance(data["requested_by"], str)


def is_invalid_token(reply: Reply) -> bool:
    challenge = reply.headers.get("www-authenticate", "")
    return reply.status == 401 and challenge.startswith('Bearer error="invalid_token"')


# --- strategies -----------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
# json.dumps writes NaN and Infinity, which no JSON parser should take.
json_with_constants = st.recursive(
    scalars | st.floats(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
deep_nesting = st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth)
non_numbers = (
    st.text(max_size=12)
    | st.integers(0, 2**40).map(str)
    | st.booleans()
    | st.none()
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=4), st.integers(), max_size=2)
)
# Integers a float cannot hold: finite as JSON, Infinity once converted.
beyond_float = st.integers(2**1024, 10**400) | st.integers(-(10**400), -(2**1024))
paths = st.sampled_from([*KNOWN_PATHS, "/admin", "/reports/", "/ME", "//me"]) | st.text(
    max_size=20
).map(lambda text: "/" + text)


def tagged(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Tagged]:
    return good.map(lambda value: (value, True)) | bad.map(lambda value: (value, False))


def any_case(word: str) -> st.SearchStrategy[str]:
    return st.tuples(*(st.sampled_from([c.lower(), c.upper()]) for c in word)).map("".join)


Rules = dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]]


HEADER_RULES: Rules = {
    "alg": (
        st.just(SAME),
        st.just(ABSENT)
        | st.sampled_from(ALGS)  # another algorithm; when it is the key's own, it counts as good
        | st.sampled_from(["none", "None", "NONE", "HS256", "hs256", "HS512", "ES384"])
        | st.sampled_from(["RS512", "PS256", "es256", "ES256 ", "eddsa", "ed25519", "Ed448", ""])
        | st.just("Ed25519")  # RFC 9864's name: good exactly when the key is Ed25519
        | json_values,
    ),
    "typ": (
        any_case("at+jwt") | any_case("application/at+jwt"),
        st.just(ABSENT)
        | st.sampled_from(["JWT", "jwt", "at+jwt ", " at+jwt", "application/jwt", "at+jwt;"])
        | st.sampled_from(["application/at+jwt+x", "at-jwt", "", "JOSE", "secevent+jwt"])
        | st.text(max_size=12).filter(lambda v: v.lower() not in ("at+jwt", "application/at+jwt"))
        | json_values.filter(lambda v: not isinstance(v, str)),
    ),
    "kid": (
        st.just(SAME) | st.just(ABSENT),  # without kid, the one key of the alg is used
        st.just("")
        | st.sampled_from([f"props-{alg.lower()}" for alg in ALGS])  # another key's kid
        | st.text(max_size=16)
        | json_values.filter(lambda v: not isinstance(v, str) and v is not None),
    ),
    # We implement no extension: any crit, even an empty one, and any b64 are refused.
    "crit": (st.just(ABSENT), json_values | st.just(["exp"]) | st.just([])),
    "b64": (st.just(ABSENT), json_values),
}
# Key-location headers are ignored, whatever they say (RFC 8725 §3.10).
HEADER_IGNORED = {
    "jku": st.just(ABSENT) | st.just("https://attacker.example/jwks.json") | json_values,
    "x5u": st.just(ABSENT) | json_values,
    "jwk": st.just(ABSENT) | st.dictionaries(st.text(max_size=4), json_values, max_size=3),
    "x5c": st.just(ABSENT) | st.lists(st.text(max_size=20), max_size=2),
    "cty": st.just(ABSENT) | json_values,
}
RESERVED_HEADER = {*HEADER_RULES, *HEADER_IGNORED}

# The bad values: the edge cases by name (half of the draws), then anything else.
past = st.integers(-(10**300), int(NOW)) | st.floats(-1e300, NOW)
future = st.integers(int(NOW) + 1, 10**300) | st.floats(NOW, 1e300, exclude_min=True)
not_in_future = (
    st.sampled_from([ABSENT, int(NOW), NOW - 0.5, 0, -1]) | past,
    st.sampled_from([int(NOW) + 1, NOW + 0.001, "0", True, None, 2**1024, -(2**1024)])
    | future
    | beyond_float
    | non_numbers,
)
CLAIM_RULES: Rules = {
    "iss": (
        st.just(ISSUER),
        st.sampled_from([ABSENT, ISSUER + "/", ISSUER.upper(), ISSUER[:-1], "", [ISSUER], None])
        | json_values.filter(lambda v: v != ISSUER),
    ),
    "aud": (
        st.just(AUDIENCE)
        | st.tuples(st.lists(st.text(max_size=10), max_size=3), st.integers(0, 3)).map(
            lambda pair: [*pair[0][: pair[1]], AUDIENCE, *pair[0][pair[1] :]]
        ),
        st.sampled_from([ABSENT, AUDIENCE + "/", AUDIENCE.upper(), AUDIENCE + " x", "", None])
        | st.sampled_from([[AUDIENCE + "/"], [[AUDIENCE]], [], {"aud": AUDIENCE}, {AUDIENCE: 1}])
        | json_values.filter(
            lambda v: v != AUDIENCE and not (isinstance(v, list) and AUDIENCE in v)
        ),
    ),
    "exp": (
        st.sampled_from([int(NOW) + 1, NOW + 0.001, 10**300, 1e300]) | future,
        st.sampled_from([ABSENT, int(NOW), NOW - 0.5, 0, "1900000000", True, None, 2**1024])
        | past
        | beyond_float
        | non_numbers,
    ),
    "nbf": not_in_future,
    "iat": not_in_future,
    "sub": (
        st.text(min_size=1, max_size=30),
        st.sampled_from([ABSENT, "", 0, None, True, [], ["client"], {"sub": "client"}])
        | json_values.filter(lambda v: not isinstance(v, str)),
    ),
}
CLAIMS_IGNORED = {
    # Any scope is acceptable for /me; it decides 200 or 403 on /reports.
    "scope": st.just(ABSENT)
    | json_values
    | st.lists(
        st.sampled_from([REPORTS_SCOPE, "read:profile", "openid", "READ:REPORTS", "", "x"]),
        max_size=4,
    ).map(" ".join),
    "jti": st.just(ABSENT) | json_values,
    "client_id": st.just(ABSENT) | json_values,
}
RESERVED_CLAIMS = {*CLAIM_RULES, *CLAIMS_IGNORED}


def extra_members(reserved: set[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(
        st.text(max_size=8).filter(lambda name: name not in reserved), json_values, max_size=3
    )


def segment_b64(values: st.SearchStrategy[Any]) -> st.SearchStrategy[str]:
    return values.map(lambda value: b64url(json.dumps(value).encode()))


header_like = st.fixed_dictionaries(
    {},
    optional={
        "alg": st.sampled_from([*ALGS, "none", "HS256"]) | json_values,
        "typ": st.sampled_from(["at+jwt", "AT+JWT", "application/at+jwt", "JWT"]) | json_values,
        "kid": st.sampled_from([f"props-{alg.lower()}" for alg in ALGS]) | json_values,
        "crit": json_values,
    },
)
claims_like = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.just(ISSUER) | json_values,
        "aud": st.just(AUDIENCE) | json_values,
        "exp": st.just(LATER) | json_values | beyond_float,
        "sub": st.text(max_size=8) | json_values,
        "scope": st.just(REPORTS_SCOPE) | json_values,
    },
)
segments = st.one_of(
    segment_b64(json_with_constants),
    segment_b64(header_like),
    segment_b64(claims_like),
    deep_nesting.map(lambda text: b64url(text.encode())),
    st.binary(max_size=300).map(b64url),
    st.text(alphabet=B64URL, max_size=60),  # often not canonical base64url
    st.text(max_size=30),  # anything: dots, padding, spaces, non-ASCII
)

# Authorization headers: what a client, a proxy or an attacker may send.
schemes = st.sampled_from(
    ["Bearer", "bearer", "BEARER", "bEaReR", "Basic", "Bearer:", "Bearerx", "Token", "DPoP", ""]
)
separators = st.text(alphabet=" \t\r\n\x0b\x0c\xa0,:", max_size=3)
b64tokens = st.text(alphabet=B64TOKEN + "=", max_size=120) | st.lists(
    st.text(alphabet=B64URL, max_size=40), min_size=1, max_size=5
).map(".".join)
bearerish = st.builds(
    lambda lead, scheme, sep, token, trail: f"{lead}{scheme}{sep}{token}{trail}",
    st.sampled_from(["", " ", "\t", "\n"]),
    schemes,
    separators,
    b64tokens,
    st.sampled_from(["", " ", "\t", "=", ",", "\n", " x", "."]),
)
oversized = st.builds(
    lambda scheme, count, filler: scheme + filler * count,
    st.sampled_from(["Bearer ", "Basic ", ""]),
    st.integers(8000, 8400),
    st.sampled_from(["a", "A.", "-", " "]),
)
authorizations = (
    st.none()
    | st.text()
    | st.text(st.characters(codec="latin-1"))  # what an HTTP header can carry
    | bearerish
    | oversized
)
# A real token with a well-formed ("good") or a broken ("bad") way of presenting it.
presentations = tagged(
    st.tuples(
        st.sampled_from(["", " ", "\t", " \t"]),
        any_case("bearer"),
        st.integers(1, 3).map(lambda n: " " * n),
        st.sampled_from(["", " ", "\t", " \t "]),
    ),
    st.tuples(st.sampled_from(["\n", "x", ","]), st.just("Bearer"), st.just(" "), st.just(""))
    | st.tuples(
        st.just(""), st.sampled_from(["Basic", "Bearer:", "Bearerr"]), st.just(" "), st.just("")
    )
    | st.tuples(
        st.just(""),
        st.just("Bearer"),
        st.sampled_from(["", "\t", " \t", "\xa0", "\n"]),
        st.just(""),
    )
    | st.tuples(
        st.just(""),
        st.just("Bearer"),
        st.just(" "),
        st.sampled_from(["=", ",", "\n", " x", ".", ".x"]),
    ),
)


# --- the properties -------------------------------------------------------------------------


@settings(max_examples=EXAMPLES, deadline=None)
@given(path=paths, authorization=authorizations)
async def test_any_authorization_header_gets_a_proper_answer(
    path: str, authorization: str | None
) -> None:
    reply = await request(path, authorization, isolate_for(good_jwks()))
    if path == "/":
        assert reply.status == 200
        return
    assert reply.status == 401  # nothing here is a validly signed token
    value = (authorization or "").strip(" \t")
    if not value:
        assert reply.headers["www-authenticate"] == NO_CREDENTIALS_CHALLENGE  # no credentials
    elif len(authorization or "") <= 8192 and not value.lower().startswith(("bearer", "dpop")):
        assert reply.headers["www-authenticate"] == NO_CREDENTIALS_CHALLENGE  # another scheme


@settings(max_examples=EXAMPLES, deadline=None)
@given(path=paths, alg=st.sampled_from(ALGS), presentation=presentations)
async def test_a_real_token_is_accepted_only_when_presented_well(
    path: str, alg: str, presentation: Tagged
) -> None:
    (lead, scheme, separator, trail), well_formed = presentation
    authorization = f"{lead}{scheme}{separator}{valid_token(alg)}{trail}"
    reply = await request(path, authorization, isolate_for(good_jwks()))
    if path == "/":
        assert reply.status == 200
    elif well_formed:
        assert reply.status == {"/me": 200, "/reports": 200}.get(path, 404), reply
    else:
        assert reply.status == 401


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    path=paths, parts=st.lists(segments, min_size=3, max_size=3) | st.lists(segments, max_size=5)
)
async def test_any_token_segments_are_refused_as_invalid_tokens(
    path: str, parts: list[str]
) -> None:
    isolate = isolate_for(good_jwks())
    reply = await request(path, "Bearer " + ".".join(parts), isolate)
    if path == "/":
        assert reply.status == 200
    else:
        assert is_invalid_token(reply), (reply, parts)  # no valid signature is possible here
    assert isolate.verifier(ENV.get).keys.fetches <= 1


SIGNATURE_RULES: Rules = {
    "signature": (st.just("valid"), st.sampled_from(["forged", "edited"]) | st.binary(max_size=600))
}


PARTS = {"header": HEADER_RULES, "claims": CLAIM_RULES, "signature": SIGNATURE_RULES}
RULES = sorted(f"{part}.{name}" for part, rules in PARTS.items() for name in rules)


@st.composite
def token_parts(draw: st.DrawFn, broken: str | None) -> dict[str, dict[str, Tagged]]:
    """Header members, claims and signature: every rule's value drawn from its good values,
    except the one rule `broken`, drawn from its bad values. Ignored members are always
    acceptable."""
    drawn = {
        part: {
            name: (draw(bad), False) if f"{part}.{name}" == broken else (draw(good), True)
            for name, (good, bad) in rules.items()
        }
        for part, rules in PARTS.items()
    }
    for part, ignored in (("header", HEADER_IGNORED), ("claims", CLAIMS_IGNORED)):
        drawn[part].update({name: (draw(values), True) for name, values in ignored.items()})
    return drawn


# Every rule broken on its own, in turn (hypothesis alone would visit some far more than
# others), and none broken: each case checks the exact verdict.
@pytest.mark.parametrize("broken", [None, *RULES])
@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    path=st.sampled_from(["/me", "/reports", "/admin"]),
    alg=st.sampled_from(ALGS),
    head_extra=extra_members(RESERVED_HEADER),
    payload_extra=extra_members(RESERVED_CLAIMS),
)
async def test_signed_tokens_pass_exactly_when_every_rule_holds(
    broken: str | None,
    data: st.DataObject,
    path: str,
    alg: str,
    head_extra: dict[str, Any],
    payload_extra: dict[str, Any],
) -> None:
    parts = data.draw(token_parts(broken), label="parts")
    key = published()[alg]
    signature, valid = parts["signature"]["signature"]
    header_values: dict[str, Any] = dict(head_extra)
    for name, (value, ok) in parts["header"].items():
        if value is SAME:
            value = {"alg": key.alg, "kid": key.kid}[name]
        elif name in ("alg", "kid") and value == getattr(key, name):
            ok = True  # drawn as "another algorithm" or "another kid", but it is the key's own
        elif name == "alg" and key.alg == "EdDSA" and value == "Ed25519":
            ok = True  # the key's own algorithm under its fully specified name (RFC 9864)
        valid = valid and ok
        if value is not ABSENT:
            header_values[name] = value
    claims: dict[str, Any] = dict(payload_extra)
    for name, (value, ok) in parts["claims"].items():
        valid = valid and ok
        if value is not ABSENT:
            claims[name] = value

    signer = spare(f"forger-{alg}") if signature == "forged" else key
    token = sign(signer, header_values, claims, alg)
    if signature == "edited":
        token = edit_signature(token)
    elif isinstance(signature, bytes):
        token = token.rsplit(".", 1)[0] + "." + b64url(signature)

    isolate = isolate_for(good_jwks())
    reply = await request(path, f"Bearer {token}", isolate)
    if not valid:
        assert is_invalid_token(reply), (reply, header_values, claims)
        return
    scope = claims.get("scope")
    allowed = isinstance(scope, str) and REPORTS_SCOPE in scope.split(" ")
    if path == "/me":
        expected = {"sub": claims["sub"], **({"scope": scope} if isinstance(scope, str) else {})}
        assert (reply.status, json.loads(reply.body)) == (200, expected)
    elif path == "/reports":
        assert reply.status == (200 if allowed else 403), (reply, claims)
        if allowed:
            assert json.loads(reply.body) == {"reports": [], "requested_by": claims["sub"]}
    else:
        assert reply.status == 404
    # The same token again: the verified-token cache answers, and answers the same.
    again = await request(path, f"Bearer {token}", isolate)
    assert (again.status, again.body, again.headers) == (reply.status, reply.body, reply.headers)
    assert isolate.verifier(ENV.get).keys.fetches == 1


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize(
    "value", [2**1024, 10**400, -(2**1024)], ids=["2^1024", "1e400", "-2^1024"]
)
async def test_integers_beyond_float_range_are_refused_not_500(claim: str, value: int) -> None:
    """Regression: math.isfinite(10**400) raised OverflowError, which became a 500. An integer
    no float can hold is refused like 1e400: as a claim that is not a number, or as a payload
    that is not acceptable JSON; never a 500."""
    with logged() as events:
        token = valid_token("ES256", {claim: value})
        reply = await request("/me", f"Bearer {token}", isolate_for(good_jwks()))
    assert is_invalid_token(reply)
    reasons = [e["reason"] for e in events if e["event"] == "request_rejected"]
    assert reasons in (["invalid_claim"], ["malformed"])


@pytest.mark.parametrize("alg", [[], {}, ["ES256"], {"ES256": True}])
async def test_an_alg_that_is_not_a_string_is_unsupported_not_500(alg: object) -> None:
    """Regression: `alg not in ALLOWED` raised TypeError for a list or an object (unhashable),
    which became a 500 for anyone who sent `{"alg":[]}`, with no key needed."""
    head = b64url(json.dumps({"alg": alg, "typ": "at+jwt"}).encode())
    with logged() as events:
        reply = await request("/me", f"Bearer {head}.e30.c2ln", isolate_for(good_jwks()))
    assert is_invalid_token(reply)
    assert [e["reason"] for e in events if e["event"] == "request_rejected"] == ["unsupported_alg"]


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": int(NOW)}, "expired"),  # exp is the first instant the token is invalid
        ({"exp": NOW + 0.001}, None),
        ({"nbf": int(NOW)}, None),  # nbf and iat may equal now
        ({"nbf": NOW + 0.001}, "not_yet_valid"),
        ({"iat": int(NOW)}, None),
        ({"iat": NOW + 0.001}, "issued_in_future"),
        ({"exp": 10**300}, None),  # huge but a float can hold it: valid
        ({"exp": str(LATER)}, "invalid_claim"),
        ({"exp": True}, "invalid_claim"),
        ({"aud": {AUDIENCE: True}}, "wrong_audience"),  # an object is not a list of audiences
        ({"aud": [[AUDIENCE]]}, "wrong_audience"),
        ({"sub": ""}, "missing_sub"),
    ],
)
async def test_claim_boundaries_at_the_fixed_clock(
    claims: dict[str, Any], reason: str | None
) -> None:
    """The edges the generated claims reach only by luck: each value exactly at its limit."""
    with logged() as events:
        reply = await request(
            "/me", f"Bearer {valid_token('ES256', claims)}", isolate_for(good_jwks())
        )
    reasons = [e["reason"] for e in events if e["event"] == "request_rejected"]
    assert (reply.status, reasons) == ((200, []) if reason is None else (401, [reason]))


# --- JWKS documents -------------------------------------------------------------------------

documents = st.one_of(
    st.binary(max_size=400),
    st.text(max_size=60).map(str.encode),
    json_with_constants.map(lambda value: json.dumps(value).encode()),
    st.dictionaries(st.sampled_from(["keys", "Keys", "KEYS", "key"]), json_values, min_size=1).map(
        lambda value: json.dumps(value).encode()
    ),
    st.lists(json_values, max_size=8).map(lambda keys: json.dumps({"keys": keys}).encode()),
    deep_nesting.map(lambda text: f'{{"keys":{text}}}'.encode()),
    st.just(b'{"keys":[]}'),
)


def is_key_set_document(body: bytes) -> bool:
    """RFC 7517 §5, within keys.py's limits: a JSON object whose `keys` is a list."""
    if len(body) > MAX_JWKS_BYTES:
        return False
    try:  # strictly, as every document the Worker parses (a nest too deep is no document)
        document = strict_json.loads(body)
    except strict_json.InvalidJson:
        return False
    jwks = document.get("keys") if isinstance(document, dict) else None
    return isinstance(jwks, list) and len(jwks) <= MAX_KEYS


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    path=st.sampled_from(PROTECTED),
    document=st.just(None) | documents,
    status=st.just(200) | st.sampled_from([204, 301, 304, 403, 404, 429, 500, 502, 503]),
    cache_control=st.none() | st.text(max_size=40) | st.sampled_from(["no-store", "max-age=0"]),
)
async def test_any_jwks_document_or_status_gives_a_proper_answer(
    path: str, document: bytes | None, status: int, cache_control: str | None
) -> None:
    """A 200 key set document is the issuer's answer: here it holds none of the token's keys
    (none is usable), so 401 unknown_kid, not a failure. Anything else (a body that is no key
    set, any non-200 answer) is a failed refresh: with no cached keys, 503 with Retry-After,
    one logged failure. Either way, no refetch per request."""
    healthy = document is None and status == 200
    body = good_jwks() if document is None else document
    answered = status == 200 and is_key_set_document(body)
    isolate = isolate_for(body, status, cache_control)
    with logged() as events:
        first = await request(path, f"Bearer {valid_token()}", isolate)
        second = await request(path, f"Bearer {valid_token('EdDSA')}", isolate)
    failures = [e for e in events if e["event"] == "jwks_fetch_failed"]
    reasons = [e["reason"] for e in events if e["event"] == "request_rejected"]
    keys = isolate.verifier(ENV.get).keys
    assert keys.fetches == 1
    if healthy:
        assert (first.status, second.status) == (200, 200)
        assert failures == []
        assert keys.cached is not None
        assert MIN_MAX_AGE <= keys.cached.max_age <= MAX_MAX_AGE
    elif answered:
        assert (first.status, second.status) == (401, 401), (first, second)
        assert reasons == ["unknown_kid", "unknown_kid"]
        assert failures == []
        assert keys.cached is not None and keys.cached.keys.all() == ()
    else:
        assert (first.status, second.status) == (503, 503), (first, second)
        assert len(failures) == 1


DROP = _Marker("DROP")
jwk_field_values = (
    st.sampled_from([DROP, "EC", "OKP", "RSA", "oct", "ec", "", "P-256", "P-384", "P-521"])
    | st.sampled_from(["Ed25519", "Ed448", "X25519", "secp256k1", "ES256", "ES384", "EdDSA"])
    | st.sampled_from(["RS256", "RS384", "PS256", "HS256", "none", "sig", "enc", "AQAB", "AA"])
    | st.sampled_from([["verify"], ["sign"], ["verify", "sign"], [], "verify", 0, 1, None, True])
    | st.binary(max_size=300).map(b64url)
    | json_values
)
jwk_entries = st.one_of(
    st.tuples(st.just("verbatim"), st.sampled_from(ALGS)),
    st.tuples(
        st.just("mutated"),
        st.sampled_from([*ALGS, "P-384", "Ed448", "RSA-1024", "forger-ES256"]),
        st.dictionaries(
            st.sampled_from(
                ["kty", "crv", "alg", "use", "key_ops", "kid", "x", "y", "n", "e", "d"]
            ),
            jwk_field_values,
            max_size=3,
        ),
    ),
    st.tuples(st.just("junk"), json_values),
)


def build_jwk(entry: tuple[Any, ...]) -> Any:
    if entry[0] == "junk":
        return entry[1]
    if entry[0] == "verbatim":
        return published()[entry[1]].jwk()
    _, base, overrides = entry
    key = published()[base] if base in ALGS else spare(base)
    jwk = key.jwk()
    for name, value in overrides.items():
        if value is DROP:
            jwk.pop(name, None)
        else:
            jwk[name] = value
    return jwk


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    alg=st.sampled_from(ALGS),
    entries=st.lists(jwk_entries, max_size=8),
    padding=st.sampled_from([0, 0, 0, MAX_KEYS]),
)
async def test_plausible_key_sets_never_break_the_good_key(
    alg: str, entries: list[tuple[Any, ...]], padding: int
) -> None:
    """JWKs with wrong kty/crv/alg/use/key_ops, sizes and types are skipped; the signer's own
    JWK still verifies, unless another entry claims its kid or the set is over the limit."""
    key = published()[alg]
    jwks = [build_jwk(entry) for entry in entries] + [{}] * padding
    isolate = isolate_for(json.dumps({"keys": jwks}).encode())
    reply = await request("/me", f"Bearer {valid_token(alg)}", isolate)
    claiming_kid = [jwk for jwk in jwks if isinstance(jwk, dict) and jwk.get("kid") == key.kid]
    if len(jwks) > MAX_KEYS:
        assert reply.status == 503
    elif claiming_kid.count(key.jwk()) > 1:  # a kid published twice is trusted for neither
        assert reply.status in (401, 503)
    elif claiming_kid == [key.jwk()]:
        assert reply.status == 200, (reply, jwks)
    elif not claiming_kid:
        assert reply.status in (401, 503)
    # A token signed by a key the document does not carry never passes, whatever else is there.
    forger = spare(f"forger-{alg}")
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "forger", "exp": LATER}
    forged = await request("/me", f"Bearer {sign(forger, token_header(key), claims)}", isolate)
    if not any(entry[0] == "mutated" and entry[1] == f"forger-{alg}" for entry in entries):
        assert forged.status in (401, 503), (forged, jwks)


# --- Every member, replaced by every JSON type (issue 14, item 3) ----------------------------
# A member of the wrong type is a refused token, a refused proof, or a skipped JWK: never an
# exception (dispatch's 500), never a failed key set. Each member meets each JSON type; the
# value is drawn, and the verdict follows from the rule the member is under.

JSON_TYPES: dict[str, st.SearchStrategy[Any]] = {
    "string": st.text(max_size=12),
    "number": st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False),
    "bool": st.booleans(),
    "null": st.none(),
    "list": st.lists(json_values, max_size=3),
    "object": st.dictionaries(st.text(max_size=6), json_values, max_size=3),
}
MEMBER_EXAMPLES = 4  # per member and type: the parametrization, not the count, covers the space
# Header members an access token or a proof may carry; the key-location ones are ignored
# (RFC 8725 §3.10; a proof's key is its jwk, RFC 9449 §4.2), as is kid in a proof.
TOKEN_HEADER_MEMBERS = ("alg", "typ", "kid", "crit", "b64", "jku", "jwk", "x5u", "x5c", "cty")
PROOF_HEADER_MEMBERS = ("alg", "typ", "jwk", "crit", "b64", "kid", "jku", "x5u", "x5c", "cty")
IGNORED_IN_TOKENS = frozenset({"jku", "jwk", "x5u", "x5c", "cty"})
IGNORED_IN_PROOFS = frozenset({"kid", "jku", "x5u", "x5c", "cty"})
JWK_MEMBERS = ("kty", "crv", "alg", "use", "key_ops", "kid", "x", "y", "n", "e", "d")
# RFC 7638 §3.2: the members a thumbprint hashes, by key (written out, not taken from keys.py).
REQUIRED_MEMBERS = {
    "ES256": ("crv", "kty", "x", "y"),
    "EdDSA": ("crv", "kty", "x"),
    "RS256": ("e", "kty", "n"),
}
ALG_NAMES = {"ES256": {"ES256"}, "EdDSA": {"EdDSA", "Ed25519"}, "RS256": {"RS256"}}


def replacement(data: st.DataObject, kind: str, *unlike: Any) -> Any:
    """A value of this JSON type that is none of unlike (the member's own value, ...)."""
    return data.draw(JSON_TYPES[kind].filter(lambda value: value not in unlike), label="value")


@cache
def proof_key(alg: str) -> SigningKey:
    """A DPoP client's key per algorithm, made once."""
    return make_key(alg, f"proof-{alg.lower()}")


def jwk_member_fits(alg: str, name: str, value: Any) -> bool | None:
    """Whether a JWK of alg's key with this member set to value is a usable key: True, False,
    or None when only the key material itself could tell (a string where x or n belongs)."""
    if name == "d":
        return False  # a private member, whatever it holds
    if not (isinstance(value, list) if name == "key_ops" else isinstance(value, str)):
        return False
    if name == "alg":
        return value in ALG_NAMES[alg]
    if name == "use":
        return bool(value == "sig")
    if name == "key_ops":
        return all(isinstance(op, str) for op in value) and "verify" in value
    if name in REQUIRED_MEMBERS[alg]:
        return None
    return True  # kid, and a member of another key type (a string: not read)


def header_member_fits(
    alg: str, name: str, value: Any, types: frozenset[str], ignored: frozenset[str]
) -> bool:
    """Whether a header with this member set to value is still acceptable (kid aside)."""
    if name == "alg":
        return isinstance(value, str) and value in ALG_NAMES[alg]
    if name == "typ":
        return isinstance(value, str) and value.lower() in types
    return name in ignored


@pytest.mark.parametrize("kind", list(JSON_TYPES))
@pytest.mark.parametrize("member", TOKEN_HEADER_MEMBERS)
@settings(max_examples=MEMBER_EXAMPLES, deadline=None)
@given(data=st.data(), alg=st.sampled_from(ALGS))
async def test_every_access_token_header_member_of_every_type_is_401_or_ignored(
    member: str, kind: str, data: st.DataObject, alg: str
) -> None:
    key = published()[alg]
    head = token_header(key)
    value = replacement(data, kind, head.get(member, ABSENT))
    head[member] = value
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "client_props", "exp": LATER}
    token = sign(key, head, claims, alg)
    reply = await request("/me", f"Bearer {token}", isolate_for(good_jwks()))
    if member == "kid":
        fits = False  # any other kid: unknown, another key's, or not a non-empty string
    else:
        types = frozenset({"at+jwt", "application/at+jwt"})
        fits = header_member_fits(alg, member, value, types, IGNORED_IN_TOKENS)
    if fits:
        assert reply.status == 200, (reply, head)
    else:
        assert is_invalid_token(reply), (reply, head)


def bound_token(client: SigningKey) -> str:
    """An access token from the published ES256 key, bound to client's thumbprint."""
    key = published()["ES256"]
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "client_props", "exp": LATER}
    return sign(key, token_header(key), {**claims, "cnf": {"jkt": jkt(client)}})


async def proof_request(client: SigningKey, head: dict[str, Any]) -> Reply:
    """One DPoP request with this proof header, signed by client, in a fresh isolate."""
    token = bound_token(client)
    claims = proof_claims("GET", f"{WORKER}/me", token, iat=int(NOW), jti="fuzzed")
    value = sign(client, head, claims, "EdDSA" if client.alg == "EdDSA" else client.alg)
    return await request("/me", f"DPoP {token}", isolate_for(good_jwks()), value)


def is_refused_proof(reply: Reply) -> bool:
    challenge = reply.headers.get("www-authenticate", "")
    return reply.status == 401 and challenge.startswith(
        ('DPoP error="invalid_dpop_proof"', 'DPoP error="invalid_token"')
    )


@pytest.mark.parametrize("kind", list(JSON_TYPES))
@pytest.mark.parametrize("member", PROOF_HEADER_MEMBERS)
@settings(max_examples=MEMBER_EXAMPLES, deadline=None)
@given(data=st.data(), alg=st.sampled_from(ALGS))
async def test_every_proof_header_member_of_every_type_is_a_refused_proof_or_ignored(
    member: str, kind: str, data: st.DataObject, alg: str
) -> None:
    client = proof_key(alg)
    head = proof_header(client)
    value = replacement(data, kind, head.get(member, ABSENT))
    head[member] = value
    reply = await proof_request(client, head)
    fits = header_member_fits(alg, member, value, DPOP_TYPES, IGNORED_IN_PROOFS)
    if fits:
        assert reply.status == 200, (reply, head)
    else:
        assert is_refused_proof(reply), (reply, head)


@pytest.mark.parametrize("kind", list(JSON_TYPES))
@pytest.mark.parametrize("member", JWK_MEMBERS)
@settings(max_examples=MEMBER_EXAMPLES, deadline=None)
@given(data=st.data(), alg=st.sampled_from(ALGS))
async def test_every_proof_jwk_member_of_every_type_is_a_refused_proof_or_fits(
    member: str, kind: str, data: st.DataObject, alg: str
) -> None:
    """The token is bound to the client's key: a changed thumbprint member is another key
    (dpop_key_mismatch), any other member is judged as the key set judges it."""
    client = proof_key(alg)
    jwk = public_jwk(client)
    value = replacement(data, kind, jwk.get(member, ABSENT))
    jwk[member] = value
    reply = await proof_request(client, proof_header(client, jwk=jwk))
    if jwk_member_fits(alg, member, value):
        assert reply.status == 200, (reply, jwk)
    else:  # None too: the thumbprint of the jwk as sent is not the token's
        assert is_refused_proof(reply), (reply, jwk)


@pytest.mark.parametrize("kind", list(JSON_TYPES))
@pytest.mark.parametrize("member", JWK_MEMBERS)
@settings(max_examples=MEMBER_EXAMPLES, deadline=None)
@given(data=st.data(), alg=st.sampled_from(ALGS), good=st.sampled_from(ALGS))
async def test_every_jwks_member_of_every_type_is_skipped_or_fits_beside_a_good_key(
    member: str, kind: str, data: st.DataObject, alg: str, good: str
) -> None:
    """parse_jwks raises only InvalidKeySet, for the document; the bad JWK is skipped with a
    note, and the good key beside it goes on verifying its tokens."""
    good_kid = published()[good].kid
    jwk = spare(f"forger-{alg}").jwk(kid=f"other-{alg.lower()}")
    value = replacement(data, kind, jwk.get(member, ABSENT), good_kid)
    jwk[member] = value
    document = json.dumps({"keys": [jwk, published()[good].jwk()]}).encode()
    key_set = parse_jwks(document)
    assert good_kid in key_set.by_kid
    fits = jwk_member_fits(alg, member, value)
    if fits is not None:
        assert len(key_set.skipped) == (0 if fits else 1), (key_set.skipped, jwk)
        assert len(key_set.all()) == (2 if fits else 1)
    with logged() as events:
        reply = await request("/me", f"Bearer {valid_token(good)}", isolate_for(document))
    assert reply.status == 200, (reply, jwk)
    skipped = [e for e in events if e["event"] == "jwks_key_skipped"]
    assert len(skipped) == len(key_set.skipped)


async def test_a_null_kid_is_malformed_not_read_as_absent() -> None:
    """A kid is a string (RFC 7515 §4.1.4): `"kid": null` is no way to say "no kid"."""
    key = published()["ES256"]
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "client_props", "exp": LATER}
    token = sign(key, {**token_header(key), "kid": None}, claims)
    with logged() as events:
        reply = await request("/me", f"Bearer {token}", isolate_for(good_jwks()))
    assert is_invalid_token(reply)
    assert [e["reason"] for e in events if e["event"] == "request_rejected"] == ["malformed"]


# --- The verified-token cache's shortcut: `credentials` given the tokens it holds ------------

compact_tokens = st.lists(
    st.text(alphabet=B64URL, min_size=1, max_size=20), min_size=3, max_size=3
).map(".".join)  # what split accepts, so what the cache may hold


class _FreshKeys:
    """A key source that never changes: every token put stays held."""

    version = 0

    def fresh(self, now: float) -> bool:
        return True


@st.composite
def near_known(draw: st.DrawFn) -> tuple[TokenCache[object], str | None]:
    """A verified-token cache holding a few tokens, and a header built around one of them as a
    client, a proxy or an attacker may send it (often exactly `Bearer ` or `DPoP ` and it),
    or any header at all."""
    cache: TokenCache[object] = TokenCache()
    known = draw(st.lists(compact_tokens, min_size=1, max_size=3, unique=True))
    for token in known:
        cache.put(token, {}, -math.inf, math.inf, _FreshKeys())
    token = draw(st.sampled_from(known))
    around = st.builds(
        lambda lead, scheme, sep, body, trail: f"{lead}{scheme}{sep}{body}{trail}",
        st.sampled_from(["", "", "", " ", "\t", "\n"]),
        schemes | st.sampled_from(["DPoP", "DPoP", "dpop", "DPOP", "Bearer", "Bearer"]),
        st.just(" ") | separators,
        st.sampled_from([token, token, token[:-1], token[1:], token + token, token.upper()]),
        st.just("") | st.sampled_from([" ", "\t", "=", "==", ",", "\n", " x", ".", "\x00", "ä"]),
    )
    return cache, draw(around | authorizations)


@settings(max_examples=EXAMPLES * 4, deadline=None)
@given(case=near_known())
def test_a_token_the_cache_holds_never_changes_a_headers_verdict(
    case: tuple[TokenCache[object], str | None],
) -> None:
    """Whatever the header: the same token and scheme, or the same refusal, with the cache's
    tokens as without them. The shortcut never accepts what the scan refuses."""
    cache, authorization = case
    assert verdict(authorization, cache) == verdict(authorization)


# --- The replay cache under any sequence of proofs (issue 14, item 4) -----------------------

replay_steps = st.lists(
    st.tuples(
        st.integers(0, 11),  # which key (12 of them: more than the cache below holds)
        st.floats(-PROOF_MAX_AGE, PROOF_MAX_FUTURE),  # the proof's iat, from now
        st.sampled_from([0.0, 0.0, 1.0, 30.0, PROOF_MAX_AGE / 2]),  # time passing first
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(steps=replay_steps, keys=st.sampled_from(["few", "some", "each new"]))
def test_the_replay_cache_never_lets_an_accepted_proof_be_replayed(
    steps: list[tuple[int, float, float]], keys: str
) -> None:
    """Whatever the order, keys and times: every accepted proof stays refused while it is in
    the window (remembered, or at or below its key's floor); the bounds hold; and the
    isolate-wide floor never rises while fewer keys than the cache holds are in play."""
    cache = ReplayCache(size=8, per_key=3)
    now = 1_000_000.0
    accepted: list[tuple[str, str, float]] = []
    for number, (key, ahead, passing) in enumerate(steps):
        now += passing
        jkt = {"few": f"k{key % 4}", "some": f"k{key}", "each new": f"k{number}"}[keys]
        iat = now + ahead
        if iat <= cache.floor_of(jkt):
            continue  # the checker refuses it: dpop_iat_out_of_window
        cache.remember(jkt, f"j{number}", iat, now)
        accepted.append((jkt, f"j{number}", iat))
        assert len(cache) <= 8 and cache.tracked <= 9
        for held, jti, old in accepted:
            assert old < now - PROOF_MAX_AGE or cache.seen(held, jti) or old <= cache.floor_of(held)
        if keys == "few":
            assert cache.floor == float("-inf")
