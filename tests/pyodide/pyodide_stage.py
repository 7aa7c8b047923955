"""The Pyodide stage (`make test-pyodide`): src/entry.py under the production runtime's Python.

CPython tests cannot see the FFI boundary: JsNull versus None, a JsProxy where a str or a dict
was expected, header access, how the Response is built, env access, what `workers.fetch`
returns. Here Node runs the npm `pyodide` (Python 3.14, as workerd with our compatibility_date)
offline, with the exact workers-runtime-sdk and PyJWT that requirements-dev.lock pins, taken
from the venv, and tests/pyodide/run.mjs calls `Default.fetch` the way workerd does: real JS
Request, Headers and Response, and real JS fetch to the fake issuer on loopback. Each reply
must equal, status, headers, body and log lines, what the CPython core answers to the same
request (`authpi_worker.dispatch` with src/app.py's routes).

Limit: cryptography has no Pyodide build offline, so nothing here verifies a signature. The
tests named `..._needs_cryptography` assert up to that step: the JWKS is fetched through JS
fetch and handed over intact; parsing its keys is where Pyodide stops and CPython goes on.

The file is not named test_*.py, so `make test-python` (CPython only) leaves it out;
`make test-pyodide` names it. Without node or node_modules it fails, never skips.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import authpi_worker.jwks
from authpi_worker import Isolate
from authpi_worker.keys import parse_jwks
from authpi_worker.testing.dpop import jkt, proof, proof_header
from authpi_worker.testing.keys import SigningKey, make_key
from authpi_worker.testing.tokens import AUDIENCE, caller, claims, header, organization, sign
from authpi_worker.tokens import MAX_TOKEN_BYTES
from scripts.local_worker import httpx_fetcher
from tests.pyodide import host
from tests.pyodide.host import (
    PROJECT,
    WORKER_DIR,
    Outcome,
    core_outcome,
    locked_version,
    outcome,
    wrangler_config,
)
from tests.support.child import JsonLinesChild
from tests.support.issuer import FakeIssuer, running
from tests.support.node import NoNode

HARNESS = Path(__file__).with_name("run.mjs")
PROBES = Path(__file__).with_name("probes.py")  # the stage's own Python inside Pyodide
# The bench's priming of the caches without cryptography, which the DPoP cases reuse.
BENCH_PROBES = Path(__file__).with_name("bench_probes.py")
BOOT_TIMEOUT = 120  # seconds to load Pyodide and import the entry; about 3 s on a laptop
REPLY_TIMEOUT = 30  # seconds for one request; the slowest (the timeout case) takes under 1 s
ORIGIN = "https://authpi-worker.example"  # the Worker's own URL in the JS Requests
SHORT_TIMEOUT = 0.2  # seconds: FETCH_TIMEOUT for the timeout case, on both sides
SLOW_ISSUER = 0.6  # seconds the issuer then takes: well past SHORT_TIMEOUT

Env = dict[str, str | None]  # a Worker env; None is JS null
Headers = tuple[tuple[str, str], ...]  # request header fields beyond accept and authorization
JSON = {"content-type": "application/json", "x-content-type-options": "nosniff"}
# RFC 9728 §5.1: challenges point to the metadata of the resource, here the audience.
METADATA = f'resource_metadata="{AUDIENCE}/.well-known/oauth-protected-resource"'


# --- Node ------------------------------------------------------------------------------------


def node_command() -> list[str]:
    """The Node to run run.mjs with (host.node_command), or the test fails saying why."""
    try:
        return host.node_command()
    except NoNode as missing:
        pytest.fail(str(missing))


class Stage(JsonLinesChild):
    """run.mjs as a subprocess: one JSON command per line in, one JSON reply per line out."""

    def __init__(self, manifest_file: Path) -> None:
        super().__init__(
            "Pyodide (run.mjs)",
            [*node_command(), str(HARNESS), str(manifest_file)],
            manifest_file.with_suffix(".stderr"),
            boot_timeout=BOOT_TIMEOUT,
            reply_timeout=REPLY_TIMEOUT,
            explain=lambda reply: "\n".join(reply["output"]),
        )

    def fetch(
        self,
        path: str,
        authorization: str | None,
        env: Env,
        *,
        method: str = "GET",
        headers: Headers = (),
        body: bytes | None = None,
    ) -> Outcome:
        """One request through Default.fetch, as workerd makes it (a body: a real JS stream)."""
        sent = self.fields(authorization, headers)
        reply = self.command(
            "fetch",
            url=ORIGIN + path,
            method=method,
            headers=[list(h) for h in sent],
            env=env,
            body=None if body is None else base64.b64encode(body).decode("ascii"),
        )
        return outcome(reply["result"], reply["output"])

    def fields(self, authorization: str | None, headers: Headers) -> list[tuple[str, str]]:
        """The request's header fields (a stage for another Worker may send others)."""
        return request_headers(authorization, headers)

    def probe(self, name: str, *args: Any) -> Any:
        """Call a function of tests/pyodide/probes.py inside Pyodide; its JSON answer."""
        return self.command("probe", name=name, args=list(args))["result"]

    def fetches(self, name: str, *args: Any) -> list[dict[str, Any]]:
        """The JS fetch calls a probe made, as run.mjs recorded them."""
        fetches: list[dict[str, Any]] = self.command("probe", name=name, args=list(args))["fetches"]
        return fetches

    def finish(self) -> None:
        code = self.close()
        assert code == 0, f"run.mjs exited with {code}:\n{self.stderr.read_text()}"


# --- The CPython side ------------------------------------------------------------------------


def request_headers(authorization: str | None, extra: Headers) -> list[tuple[str, str]]:
    """The request's header fields, in order: a browser-like accept, then the others."""
    fields = [("accept", "application/json")]
    if authorization is not None:
        fields.append(("authorization", authorization))
    return fields + list(extra)


def cpython(
    path: str,
    authorization: str | None,
    env: Env,
    isolate: Isolate,
    *,
    method: str = "GET",
    headers: Headers = (),
    body: bytes | None = None,
) -> Outcome:
    """What the core answers under CPython to the same request, through the same steps as
    src/entry.py: a module-level Isolate, the env's variables, dispatch(), with the request
    read as the entry reads it (repeated header fields joined, as Headers.get joins them)."""
    fields = request_headers(authorization, headers)
    request = host.request(method, ORIGIN + path, fields, body)
    return asyncio.run(core_outcome(request, isolate, env.get))


def fresh_isolate(now: float | None = None) -> Isolate:
    """A new isolate's state under CPython: httpx for the JWKS, and a frozen clock if given."""
    return Isolate(httpx_fetcher) if now is None else Isolate(httpx_fetcher, lambda: now)


def same_in_both(
    stage: Stage,
    path: str,
    authorization: str | None,
    env: Env,
    *,
    method: str = "GET",
    headers: Headers = (),
    body: bytes | None = None,
) -> Outcome:
    """The Pyodide outcome, after checking that it equals the CPython one."""
    in_pyodide = stage.fetch(path, authorization, env, method=method, headers=headers, body=body)
    in_cpython = cpython(
        path, authorization, env, fresh_isolate(), method=method, headers=headers, body=body
    )
    assert in_pyodide == in_cpython
    return in_pyodide


# --- Fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    manifest_file = tmp_path_factory.mktemp("pyodide") / "manifest.json"
    manifest_file.write_text(json.dumps(host.manifest([PROBES, BENCH_PROBES])))
    running = Stage(manifest_file)
    yield running
    running.finish()


@pytest.fixture
def env(issuer: FakeIssuer) -> Env:
    return {"AUTHPI_ISSUER_URL": issuer.url, "AUTHPI_AUDIENCE": AUDIENCE}


# --- The runtime itself ----------------------------------------------------------------------


def test_runs_the_locked_packages_on_the_runtimes_python_offline(stage: Stage) -> None:
    package = json.loads((PROJECT / "package.json").read_text())
    assert stage.boot["pyodide"] == package["devDependencies"]["pyodide"]
    assert stage.boot["jspi"] is True
    assert stage.boot["bootFetches"] == []  # Pyodide came from node_modules, nothing else
    flags = stage.boot["compatibilityFlags"]
    assert flags["python_no_global_handlers"] and flags["enable_python_external_sdk"]
    found = stage.probe("versions")
    assert found["python"].startswith("3.14.") and found["platform"] == "emscripten"
    assert found["workers-runtime-sdk"] == locked_version("workers-runtime-sdk")
    assert found["pyjwt"] == locked_version("pyjwt")
    assert found["cryptography"] is False  # the limit this stage works within
    assert found["files"] == {
        "entry": f"{WORKER_DIR}/entry.py",
        "workers": f"{WORKER_DIR}/python_modules/workers/__init__.py",
        "jwt": f"{WORKER_DIR}/python_modules/jwt/__init__.py",
        "authpi_worker.jwks": f"{WORKER_DIR}/authpi_worker/jwks.py",
    }


# --- Requests that never reach the key set ---------------------------------------------------


def test_root_is_200_json(stage: Stage, env: Env) -> None:
    outcome = same_in_both(stage, "/", None, env)
    assert (outcome.status, outcome.body) == (200, '{"status":"ok"}')
    assert outcome.headers == JSON


def _bad_bearer(**head: Any) -> Callable[[FakeIssuer], str]:
    """A token signed by the issuer's key whose header fails before any key lookup."""

    def make(issuer: FakeIssuer) -> str:
        token = sign(issuer.signer, header(issuer.signer, **head), claims(issuer.url))
        return f"Bearer {token}"

    return make


def _invalid(description: str) -> str:
    return f'Bearer error="invalid_token", error_description="{description}", {METADATA}'


NO_CREDENTIALS = f'Bearer {METADATA}, DPoP algs="ES256 Ed25519 EdDSA RS256", {METADATA}'


@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        pytest.param(lambda issuer: None, NO_CREDENTIALS, id="no-authorization"),
        pytest.param(lambda issuer: "Basic ZGVtbzpzZWNyZXQ=", NO_CREDENTIALS, id="basic-scheme"),
        pytest.param(
            lambda issuer: "Bearer",
            _invalid("malformed Bearer credentials"),
            id="bearer-without-token",
        ),
        pytest.param(
            lambda issuer: "Bearer not-a-jws", _invalid("not a compact JWS"), id="not-a-jws"
        ),
        pytest.param(
            lambda issuer: "Bearer a.b.c", _invalid("invalid base64url"), id="bad-base64url"
        ),
        pytest.param(
            lambda issuer: "Bearer " + "a" * (MAX_TOKEN_BYTES + 100),
            _invalid("token too large"),
            id="too-large",
        ),
        pytest.param(  # read before the signature; 10,000 nested brackets kill Pyodide's stack
            lambda issuer: (
                "Bearer "
                + sign(issuer.signer, header(issuer.signer), b"[" * 12_000 + b"]" * 12_000)
            ),
            _invalid("payload nests too deep"),
            id="payload-nested-12000-deep",
        ),
        pytest.param(_bad_bearer(typ="JWT"), _invalid("not an access token"), id="typ-JWT"),
        pytest.param(_bad_bearer(typ=None), _invalid("not an access token"), id="typ-missing"),
        pytest.param(_bad_bearer(alg="HS256"), _invalid("algorithm not allowed"), id="alg-HS256"),
        pytest.param(_bad_bearer(alg="none"), _invalid("algorithm not allowed"), id="alg-none"),
        pytest.param(_bad_bearer(crit=["exp"]), _invalid("unsupported critical header"), id="crit"),
    ],
)
def test_me_without_a_usable_token_is_401_with_the_right_challenge(
    stage: Stage,
    issuer: FakeIssuer,
    env: Env,
    authorization: Callable[[FakeIssuer], str | None],
    challenge: str,
) -> None:
    outcome = same_in_both(stage, "/me", authorization(issuer), env)
    assert (outcome.status, outcome.body) == (401, '{"error":"unauthorized"}')
    assert outcome.headers["www-authenticate"] == challenge
    assert issuer.jwks_hits == 0


def test_unknown_path_without_token_is_401(stage: Stage, env: Env) -> None:
    outcome = same_in_both(stage, "/admin", None, env)
    assert (outcome.status, outcome.headers["www-authenticate"]) == (401, NO_CREDENTIALS)


def _committed_vars(issuer: FakeIssuer) -> Env:
    vars_: Env = wrangler_config()["vars"]
    return vars_


@pytest.mark.parametrize(
    ("make_env", "variable"),
    [
        pytest.param(_committed_vars, "AUTHPI_ISSUER_URL", id="wrangler-placeholder"),
        pytest.param(
            lambda issuer: {"AUTHPI_AUDIENCE": AUDIENCE}, "AUTHPI_ISSUER_URL", id="issuer-missing"
        ),
        pytest.param(
            lambda issuer: {"AUTHPI_ISSUER_URL": issuer.url, "AUTHPI_AUDIENCE": None},
            "AUTHPI_AUDIENCE",
            id="audience-js-null",
        ),
        pytest.param(
            lambda issuer: {"AUTHPI_ISSUER_URL": "ftp://idp.example/x", "AUTHPI_AUDIENCE": "a"},
            "AUTHPI_ISSUER_URL",
            id="issuer-not-http",
        ),
        pytest.param(
            lambda issuer: {
                "AUTHPI_ISSUER_URL": issuer.url,
                "AUTHPI_AUDIENCE": AUDIENCE,
                "AUTHPI_CLOCK_TOLERANCE": "5m",
            },
            "AUTHPI_CLOCK_TOLERANCE",
            id="tolerance-not-seconds",
        ),
    ],
)
def test_misconfigured_env_is_500_json_on_protected_routes_only(
    stage: Stage, issuer: FakeIssuer, make_env: Callable[[FakeIssuer], Env], variable: str
) -> None:
    env = make_env(issuer)
    outcome = same_in_both(stage, "/me", f"Bearer {issuer.mint()}", env)
    assert (outcome.status, outcome.body) == (500, '{"error":"server_misconfigured"}')
    assert outcome.headers == {**JSON, "cache-control": "no-store"}
    assert [event.get("detail") for event in outcome.events] == [variable]
    assert same_in_both(stage, "/", None, env).status == 200


# --- The Workers fetch adapter and the key set -----------------------------------------------


def test_fetch_jwks_hands_over_the_body_and_cache_header_through_js_fetch(
    stage: Stage, issuer: FakeIssuer
) -> None:
    url = f"{issuer.url}/jwks.json"
    command = stage.command("probe", name="fetch_jwks", args=[url, 600])
    fetched, (sent,) = command["result"], command["fetches"]
    assert fetched == {
        "type": "Fetched",
        "status": 200,
        "status_type": "int",
        "body": json.dumps(issuer.jwks()),  # byte for byte what the issuer served
        "body_type": "bytes",
        "cache_control": "public, max-age=600",
        "cache_control_type": "str",
        "age": None,  # no edge cache in front of the fake issuer: no Age header, None not JsNull
        "age_type": "NoneType",
    }
    # What JS fetch was given for Edge(600): the edge cache for 600 s, successes only, as plain
    # objects workerd can read.
    assert sent == {
        "url": url,
        "method": "GET",
        "headers": {"accept": "application/json"},
        "redirect": "manual",
        "cache": None,
        "cf": {"cacheEverything": True, "cacheTtlByStatus": {"200-299": 600, "300-599": -1}},
    }
    # Edge(None): as the issuer's own Cache-Control says, errors never kept.
    (follow,) = stage.fetches("fetch_jwks", url, None)
    assert (follow["cache"], follow["cf"]) == (
        None,
        {"cacheEverything": True, "cacheTtlByStatus": {"300-599": -1}},
    )
    # Edge(0), after an unknown kid: past the edge cache.
    (bypass,) = stage.fetches("fetch_jwks", url, 0)
    assert (bypass["cache"], bypass["cf"]) == ("no-store", None)
    assert issuer.jwks_hits == 3


# What the edge is told: the issuer's own Cache-Control on an isolate's first fetch; later, what
# the issuer's last answer allowed (issue 14 item 2). As JS fetch's init records it: (cache, cf).
FOLLOW_ISSUER_INIT = (None, {"cacheEverything": True, "cacheTtlByStatus": {"300-599": -1}})
LATER_INIT = {
    "max-age=60": (
        None,
        {"cacheEverything": True, "cacheTtlByStatus": {"200-299": 60, "300-599": -1}},
    ),
    "no-store": ("no-store", None),
}


@pytest.mark.parametrize("cache_control", sorted(LATER_INIT))
def test_the_entry_tells_the_edge_what_the_issuer_allows_first_fetch_included(
    stage: Stage, issuer: FakeIssuer, env: Env, cache_control: str
) -> None:
    """The real entry, through real JS fetch: the first fetch follows the issuer (no TTL of
    ours for 2xx), the refresh after the set expires asks for the issuer's max-age, or
    bypasses the edge for no-store. (No cryptography here: the set has no usable key, so each
    request is a 401 unknown_kid after exactly one fetch.)"""
    issuer.faults.cache_control = cache_control
    token = f"Bearer {issuer.mint()}"
    stage.probe("reset_isolate", time.time())
    inits = []
    for _ in range(2):
        reply = stage.command(
            "fetch", url=f"{ORIGIN}/me", method="GET", headers=[["authorization", token]], env=env
        )
        assert outcome(reply["result"], reply["output"]).status == 401
        (sent,) = reply["fetches"]
        inits.append((sent["cache"], sent["cf"]))
        stage.probe("advance_clock", 61)  # past max-age=60, and past no-store's 60 s floor
    assert inits == [FOLLOW_ISSUER_INIT, LATER_INIT[cache_control]]
    assert issuer.jwks_hits == 2


def test_fetch_jwks_without_cache_control_gives_none_not_jsnull(
    stage: Stage, issuer: FakeIssuer
) -> None:
    issuer.faults.cache_control = None
    fetched = stage.probe("fetch_jwks", f"{issuer.url}/jwks.json", None)
    assert (fetched["cache_control"], fetched["cache_control_type"]) == (None, "NoneType")


def test_fetch_jwks_key_set_parsing_needs_cryptography(stage: Stage, issuer: FakeIssuer) -> None:
    body = stage.probe("fetch_jwks", f"{issuer.url}/jwks.json", 600)["body"]
    # Pyodide stops here: PyJWT cannot build a key without cryptography (the document is
    # still the issuer's answer, a set with no usable key)...
    assert stage.probe("parse_keys", body) == {
        "keys": [f"unreadable {key.alg} key (MissingCryptographyError)" for key in issuer.keys],
        "document": "0 usable keys",
    }
    # ...where CPython, given the same bytes, goes on to the key set.
    assert sorted(parse_jwks(body.encode()).by_kid) == sorted(key.kid for key in issuer.keys)


def test_valid_token_goes_as_far_as_the_jwks_fetch_then_needs_cryptography(
    stage: Stage, issuer: FakeIssuer, env: Env
) -> None:
    now = time.time()
    token = f"Bearer {issuer.mint(sub='client_a', scope=None)}"
    stage.probe("reset_isolate", now)
    in_pyodide = stage.fetch("/me", token, env)
    assert issuer.jwks_hits == 1  # the real JS fetch reached the issuer
    # No key could be built (no cryptography): the set the issuer answered holds no usable
    # key, which is an answer, not a failure. The token's kid is then unknown.
    url = f"{issuer.url}/jwks.json"
    assert in_pyodide.status == 401
    assert [(e["event"], e.get("detail"), e.get("url")) for e in in_pyodide.events] == [
        *[
            (
                "jwks_key_skipped",
                f"key {n}: unreadable {key.alg} key (MissingCryptographyError)",
                url,
            )
            for n, key in enumerate(issuer.keys)
        ],
        ("jwks_no_usable_keys", None, url),
        ("request_rejected", None, None),
    ]
    assert in_pyodide.events[-1]["reason"] == "unknown_kid"
    assert cpython("/me", token, env, fresh_isolate(now)).body == '{"sub":"client_a"}'


def test_jwks_5xx_is_503(stage: Stage, issuer: FakeIssuer, env: Env) -> None:
    issuer.faults.status = 500
    fetched = stage.probe("fetch_jwks", f"{issuer.url}/jwks.json", 600)
    assert fetched["status"] == 500  # the adapter reports it; the key cache refuses it
    now, token = time.time(), f"Bearer {issuer.mint()}"
    stage.probe("reset_isolate", now)
    in_pyodide = stage.fetch("/me", token, env)
    assert in_pyodide == cpython("/me", token, env, fresh_isolate(now))
    assert (in_pyodide.status, in_pyodide.body) == (503, '{"error":"temporarily_unavailable"}')
    assert in_pyodide.headers["retry-after"] == str(authpi_worker.jwks.RETRY_AFTER)
    assert in_pyodide.events[0]["detail"] == "HTTP 500"
    assert issuer.jwks_hits == 3


def test_jwks_timeout_is_503(
    stage: Stage, issuer: FakeIssuer, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer.faults.delay = SLOW_ISSUER
    monkeypatch.setattr(authpi_worker.jwks, "FETCH_TIMEOUT", SHORT_TIMEOUT)
    now, token = time.time(), f"Bearer {issuer.mint()}"
    previous = stage.probe("set_fetch_timeout", SHORT_TIMEOUT)
    try:
        stage.probe("reset_isolate", now)
        in_pyodide = stage.fetch("/me", token, env)
    finally:
        stage.probe("set_fetch_timeout", previous)
    assert in_pyodide == cpython("/me", token, env, fresh_isolate(now))
    assert (in_pyodide.status, in_pyodide.body) == (503, '{"error":"temporarily_unavailable"}')
    assert in_pyodide.events[0]["detail"] == "TimeoutError"  # gave up; did not wait it out


def test_module_level_cache_survives_between_two_entrypoint_instances(
    stage: Stage, issuer: FakeIssuer, env: Env
) -> None:
    issuer.faults.status = 503
    now, token = time.time(), f"Bearer {issuer.mint()}"
    stage.probe("reset_isolate", now)
    isolate = fresh_isolate(now)  # CPython: one Isolate for both requests, as one isolate has
    # Each stage.fetch builds a new Default, as workerd does per request.
    first = stage.fetch("/me", token, env)
    state = stage.probe("isolate_state", env)
    assert first == cpython("/me", token, env, isolate)
    assert issuer.jwks_hits == 2  # one fetch each side
    second = stage.fetch("/me", token, env)
    assert second == cpython("/me", token, env, isolate)
    # The second instance found the first one's failed attempt in entry.ISOLATE and backed
    # off instead of fetching again: the same Verifier, still one fetch.
    assert issuer.jwks_hits == 2
    assert stage.probe("isolate_state", env) == state == {**state, "fetches": 1}
    assert second.status == 503 and second.events[0]["reason"] == "jwks_unavailable"


BURST = 200  # requests arriving together on a cold isolate


def test_a_burst_of_200_on_a_cold_isolate_fetches_the_jwks_once_then_needs_cryptography(
    stage: Stage, issuer: FakeIssuer, env: Env
) -> None:
    """Issue 14 item 10, through the real entry and real JS fetch: 200 concurrent
    Default.fetch calls on a cold isolate. The first request fetches; the others wait for
    its result (asyncio.sleep polls of the module-level cache, never its I/O). Before: 200
    fetches. (No cryptography here: the set has no usable key, so every answer is a 401.)"""
    issuer.faults.delay = 0.2  # all 200 arrive while the first fetch is in flight
    token = f"Bearer {issuer.mint()}"
    stage.probe("reset_isolate", time.time())
    reply = stage.command(
        "burst",
        url=f"{ORIGIN}/me",
        method="GET",
        headers=[["authorization", token]],
        env=env,
        count=BURST,
    )
    jwks_fetches = [sent for sent in reply["fetches"] if sent["url"].endswith("/jwks.json")]
    assert (len(jwks_fetches), issuer.jwks_hits) == (1, 1)
    assert reply["result"]["statuses"] == {"401": BURST}
    reasons = [e["reason"] for e in outcome_events(reply["output"]) if "reason" in e]
    assert reasons == ["unknown_kid"] * BURST


def outcome_events(output: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output if line.startswith('{"event":')]


# --- The request's method, URL, Origin and DPoP headers, read through the FFI ----------------

APP = "https://app.example.com"
PREFLIGHT: Headers = (("origin", APP), ("access-control-request-method", "GET"))


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_the_method_is_read_other_methods_on_root_are_405(
    stage: Stage, env: Env, method: str
) -> None:
    outcome = same_in_both(stage, "/", None, env, method=method)
    assert (outcome.status, outcome.headers["allow"]) == (405, "GET, HEAD")


def test_head_answers_without_a_body_and_protected_routes_authenticate_first(
    stage: Stage, env: Env
) -> None:
    head = same_in_both(stage, "/", None, env, method="HEAD")
    assert (head.status, head.body, head.headers["content-type"]) == (200, "", "application/json")
    refused = same_in_both(stage, "/me", None, env, method="DELETE")
    assert (refused.status, refused.headers["cache-control"]) == (401, "no-store")


def test_a_preflight_is_answered_from_the_origin_and_method_headers(stage: Stage, env: Env) -> None:
    cors = {**env, "CORS_ALLOWED_ORIGINS": APP}
    allowed = same_in_both(stage, "/me", None, cors, method="OPTIONS", headers=PREFLIGHT)
    assert (allowed.status, allowed.body) == (204, "")
    assert allowed.headers["access-control-allow-origin"] == APP
    other = (("origin", "https://evil.example"), PREFLIGHT[1])
    refused = same_in_both(stage, "/me", None, cors, method="OPTIONS", headers=other)
    assert (refused.status, refused.body) == (403, '{"error":"cors_origin_not_allowed"}')
    # A 401 to an allowed origin is readable: its challenge is exposed.
    challenged = same_in_both(stage, "/me", None, cors, headers=(("origin", APP),))
    assert challenged.headers["access-control-expose-headers"].startswith("WWW-Authenticate")


def test_the_metadata_names_the_request_url_read_through_the_ffi(
    stage: Stage, issuer: FakeIssuer
) -> None:
    env: Env = {"AUTHPI_ISSUER_URL": issuer.url, "AUTHPI_AUDIENCE": "client_abc"}
    outcome = same_in_both(stage, "/.well-known/oauth-protected-resource", None, env)
    assert json.loads(outcome.body)["resource"] == ORIGIN
    challenge = same_in_both(stage, "/me", None, env).headers["www-authenticate"]
    assert f'resource_metadata="{ORIGIN}/.well-known/oauth-protected-resource"' in challenge


@pytest.fixture
def bound(stage: Stage, issuer: FakeIssuer, env: Env) -> Iterator[tuple[SigningKey, str]]:
    """A DPoP key and a token bound to it, the token a cache hit in Pyodide's isolate (no
    cryptography there to verify it) and verified for real under CPython."""
    key = make_key("ES256", "client")
    token = issuer.mint(cnf={"jkt": jkt(key)})
    stage.probe("reset_isolate", time.time())
    stage.probe("prime", env, token)
    yield key, token
    stage.probe("reset_isolate", time.time())


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        pytest.param(lambda key, token: (), "dpop_proof_missing", id="no-proof"),
        pytest.param(
            lambda key, token: (
                ("dpop", proof(key, "GET", f"{ORIGIN}/me", token)),
                ("dpop", proof(key, "GET", f"{ORIGIN}/me", token)),
            ),
            "dpop_proof_repeated",
            id="two-proofs-joined-by-headers-get",
        ),
        pytest.param(lambda key, token: (("dpop", "not-a-jws"),), "dpop_malformed", id="not-a-jws"),
        pytest.param(
            lambda key, token: (
                (
                    "dpop",
                    proof(key, "GET", f"{ORIGIN}/me", token, head=proof_header(key, typ="JWT")),
                ),
            ),
            "dpop_wrong_typ",
            id="typ-JWT",
        ),
    ],
)
def test_the_dpop_header_is_read_and_judged_before_any_key_is_needed(
    stage: Stage,
    env: Env,
    bound: tuple[SigningKey, str],
    make: Callable[[SigningKey, str], Headers],
    reason: str,
) -> None:
    key, token = bound
    outcome = same_in_both(stage, "/me", f"DPoP {token}", env, headers=make(key, token))
    assert outcome.status == 401
    assert outcome.headers["www-authenticate"].startswith('DPoP error="invalid_dpop_proof"')
    assert [event["reason"] for event in outcome.events] == [reason]


def test_a_valid_proof_goes_as_far_as_reading_its_key_then_needs_cryptography(
    stage: Stage, env: Env, bound: tuple[SigningKey, str]
) -> None:
    key, token = bound
    value = proof(key, "GET", f"{ORIGIN}/me", token)
    in_pyodide = stage.fetch("/me", f"DPoP {token}", env, headers=(("dpop", value),))
    # Pyodide stops where the proof's jwk becomes a key (cryptography)...
    assert [event["reason"] for event in in_pyodide.events] == ["dpop_bad_jwk"]
    # ...where CPython, given the same request, goes on to accept it.
    fresh = proof(key, "GET", f"{ORIGIN}/me", token)
    assert (
        cpython("/me", f"DPoP {token}", env, fresh_isolate(), headers=(("dpop", fresh),)).status
        == 200
    )


# --- /orgs/{org_id}/reports: path parameters, organizations, caller kinds, real JS bodies ------

ORG, OTHER_ORG = "org_acme", "org_globex"
ORG_REPORTS = f"/orgs/{ORG}/reports"
TITLE = b'{"title":"Q3"}'
JSON_TYPE = ("content-type", "application/json")


def length(body: bytes) -> Headers:
    """The Content-Length a client declares for body (curl and browsers send one)."""
    return (JSON_TYPE, ("content-length", str(len(body))))


@pytest.fixture(scope="module")
def members(stage: Stage, issuer_for_members: FakeIssuer) -> Iterator[dict[str, str]]:
    """Tokens of each kind of caller, cache hits in Pyodide's isolate (no cryptography there)
    and verified for real under CPython: a person who may read and write in ORG, an agent who
    may too (by membership), a client, and a person whose organizations claim is malformed."""
    write = organization(ORG, "member", "reports:read", "reports:write")
    issuer = issuer_for_members
    tokens = {
        "person": issuer.mint(**caller("person"), organizations=[write]),
        "agent": issuer.mint(**caller("agent"), organizations=[write]),
        "client": issuer.mint(**caller("client"), organizations=[write]),
        "reader": issuer.mint(**caller("person"), organizations=[organization(ORG, "*:read")]),
        "malformed": issuer.mint(**caller("person"), organizations=[{"id": ORG, "scopes": "*:**"}]),
    }
    stage.probe("reset_isolate", time.time())
    for token in tokens.values():
        stage.probe("prime", {"AUTHPI_ISSUER_URL": issuer.url, "AUTHPI_AUDIENCE": AUDIENCE}, token)
    yield {kind: f"Bearer {token}" for kind, token in tokens.items()}
    stage.probe("reset_isolate", time.time())


@pytest.fixture(scope="module")
def issuer_for_members(keys: dict[str, SigningKey]) -> Iterator[FakeIssuer]:
    """One issuer for the module's primed tokens: its URL is in their iss and in the env."""
    with running(FakeIssuer(keys=list(keys.values()))) as server:
        yield server


@pytest.fixture
def member_env(issuer_for_members: FakeIssuer) -> Env:
    return {"AUTHPI_ISSUER_URL": issuer_for_members.url, "AUTHPI_AUDIENCE": AUDIENCE}


OVER = b'{"title":"' + b"x" * (64 * 1024) + b'"}'  # past MAX_REPORT_BYTES


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "headers", "status", "answer"),
    [
        ("person", "GET", ORG_REPORTS, None, (), 200, None),
        ("agent", "GET", ORG_REPORTS, None, (), 200, None),
        ("reader", "GET", ORG_REPORTS, None, (), 200, None),
        ("person", "GET", f"/orgs/{OTHER_ORG}/reports", None, (), 403, "insufficient_scope"),
        ("client", "GET", ORG_REPORTS, None, (), 403, "insufficient_scope"),
        ("malformed", "GET", ORG_REPORTS, None, (), 403, "insufficient_scope"),
        ("person", "GET", "/orgs/org%5Facme/reports", None, (), 200, None),  # decoded once
        ("person", "GET", "/orgs/%zz/reports", None, (), 404, "not_found"),
        ("person", "HEAD", ORG_REPORTS, None, (), 200, None),
        ("person", "PUT", ORG_REPORTS, TITLE, length(TITLE), 405, "method_not_allowed"),
        ("person", "POST", ORG_REPORTS, TITLE, length(TITLE), 201, None),
        ("person", "POST", ORG_REPORTS, TITLE, (JSON_TYPE,), 201, None),  # no Content-Length
        ("agent", "POST", ORG_REPORTS, TITLE, length(TITLE), 403, "insufficient_scope"),
        ("client", "POST", ORG_REPORTS, TITLE, length(TITLE), 403, "insufficient_scope"),
        ("reader", "POST", ORG_REPORTS, TITLE, length(TITLE), 403, "insufficient_scope"),
        (None, "POST", ORG_REPORTS, TITLE, length(TITLE), 401, "unauthorized"),
        ("person", "POST", ORG_REPORTS, b"not json", length(b"not json"), 400, "invalid_request"),
        ("person", "POST", ORG_REPORTS, b'{"title":"\xff"}', (), 400, "invalid_request"),
        ("person", "POST", ORG_REPORTS, b'{"title":"a","title":"b"}', (), 400, "invalid_request"),
        ("person", "POST", ORG_REPORTS, b'{"title":"a","n":NaN}', (), 400, "invalid_request"),
        ("person", "POST", ORG_REPORTS, b'{"title":"a","n":1e999}', (), 400, "invalid_request"),
        ("person", "POST", ORG_REPORTS, b"[" * 60_000, (), 400, "invalid_request"),
        ("person", "POST", ORG_REPORTS, b'{"title":""}', (), 400, "invalid_request"),
        ("person", "POST", ORG_REPORTS, b"", (), 400, "invalid_request"),
        ("person", "POST", ORG_REPORTS, OVER, length(OVER), 413, "payload_too_large"),
        ("person", "POST", ORG_REPORTS, OVER, (), 413, "payload_too_large"),  # read, then refused
        # Declared over the limit: refused on the header, the body never read.
        (
            "person",
            "POST",
            ORG_REPORTS,
            TITLE,
            (JSON_TYPE, ("content-length", "104857600")),
            413,
            "payload_too_large",
        ),
        (
            "person",
            "POST",
            ORG_REPORTS,
            TITLE,
            (JSON_TYPE, ("content-length", "12abc")),
            400,
            "invalid_request",
        ),
    ],
)
def test_org_reports_through_the_entry_with_real_js_bodies(
    stage: Stage,
    members: dict[str, str],
    member_env: Env,
    who: str | None,
    method: str,
    path: str,
    body: bytes | None,
    headers: Headers,
    status: int,
    answer: str | None,
) -> None:
    authorization = members[who] if who is not None else None
    outcome = same_in_both(
        stage, path, authorization, member_env, method=method, headers=headers, body=body
    )
    assert outcome.status == status
    if method == "HEAD":
        assert outcome.body == ""
    elif answer is not None:
        assert json.loads(outcome.body) == {"error": answer}
    elif status == 201:
        assert json.loads(outcome.body) == {"org": ORG, "title": "Q3", "created_by": "usr_demo"}
    else:
        sub = "agt_demo" if who == "agent" else "usr_demo"
        assert json.loads(outcome.body) == {"org": ORG, "reports": [], "requested_by": sub}
    if status == 405:
        assert outcome.headers["allow"] == "GET, HEAD, POST"


def test_a_cross_origin_post_is_preflighted_with_content_type(
    stage: Stage, member_env: Env
) -> None:
    cors = {**member_env, "CORS_ALLOWED_ORIGINS": APP}
    asks: Headers = (
        ("origin", APP),
        ("access-control-request-method", "POST"),
        ("access-control-request-headers", "authorization,content-type"),
    )
    allowed = same_in_both(stage, ORG_REPORTS, None, cors, method="OPTIONS", headers=asks)
    assert allowed.status == 204
    assert allowed.headers["access-control-allow-methods"] == "GET, HEAD, POST"
    assert allowed.headers["access-control-allow-headers"] == "authorization, content-type, dpop"
