"""Interoperability with independent implementations: access tokens from panva's oidc-provider
(a certified authorization server) and DPoP proofs (RFC 9449) from oauth4webapi's client,
against the Worker under CPython (scripts/serve). Real processes and HTTP on 127.0.0.1.

One oidc-provider (one client per token signing alg) and one scripts/serve per AUTHPI_DPOP
mode serve the whole module; tests/interop/client.mjs runs once per case and reports each
scenario's request and the Worker's answer (tests/support/interop.py). The expectations are
the DPoP spec's: status, the challenge's scheme and error, never the description's wording.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app import REPORTS_SCOPE
from authpi_worker.testing.tokens import AUDIENCE, header_of
from tests.support.challenges import find_challenge
from tests.support.interop import (
    InteropError,
    Servers,
    find_node,
    run_client,
    start_servers,
)
from tests.support.node import NoNode

TOKEN_ALGS = ("ES256", "EdDSA", "Ed25519")  # oidc-provider signs an Ed25519 key under both names
MODES = {"allowed": None, "required": "required", "disabled": "disabled"}  # allowed: the default


@dataclass(frozen=True)
class Case:
    mode: str  # AUTHPI_DPOP (allowed: unset)
    token_alg: str  # how oidc-provider signs the access tokens
    proof_alg: str  # the DPoP key oauth4webapi proves possession with

    def __str__(self) -> str:
        return f"{self.mode}-{self.token_alg}-token-{self.proof_alg}-proof"


ALLOWED = [
    Case("allowed", "ES256", "ES256"),
    Case("allowed", "EdDSA", "Ed25519"),
    Case("allowed", "Ed25519", "Ed25519"),
]
REQUIRED = [Case("required", "ES256", "ES256")]
DISABLED = [Case("disabled", "ES256", "ES256")]
DPOP_ACCEPTED = ALLOWED + REQUIRED
BEARER_ACCEPTED = ALLOWED + DISABLED
EVERY_MODE = ALLOWED + REQUIRED + DISABLED
UNAUTHORIZED = {"error": "unauthorized"}


def cases(selected: list[Case]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("case", selected, ids=str)


@dataclass(frozen=True)
class Outcome:
    """client.mjs's document for one case, and the Worker's log lines right after it."""

    case: Case
    document: dict[str, Any]
    worker_log: str

    def scenario(self, name: str) -> dict[str, Any]:
        scenario: dict[str, Any] = self.document["scenarios"][name]
        return scenario

    def explain(self, name: str) -> str:
        scenario = self.scenario(name)
        return (
            f"{self.case} / {name}\n  request: {scenario['request']}\n"
            f"  response: {scenario['response']}\n  the worker's last lines:\n{self.worker_log}"
        )

    def expect(
        self,
        name: str,
        status: int,
        scheme: str | None = None,
        error: str | None = None,
        **params: str,
    ) -> dict[str, Any]:
        """Assert the status and, if given, a challenge for scheme with error and params."""
        response: dict[str, Any] = self.scenario(name)["response"]
        why = self.explain(name)
        assert response["status"] == status, why
        if scheme is not None:
            challenge = find_challenge(response["www_authenticate"], scheme)
            assert challenge is not None, why
            if error is not None:
                assert challenge.params.get("error") == error, why
            for param, value in params.items():
                assert challenge.params.get(param) == value, why
        return response


@pytest.fixture(scope="module")
def node() -> str:
    """Never a skip: without Node or the packages, every test here fails saying why."""
    try:
        return find_node()
    except NoNode as error:
        raise pytest.fail.Exception(str(error), pytrace=False) from None


@pytest.fixture(scope="module")
def servers(node: str) -> Iterator[Servers]:
    try:
        started = start_servers(node, TOKEN_ALGS, list(MODES.values()))
    except InteropError as error:
        raise pytest.fail.Exception(str(error), pytrace=False) from None
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def outcome(node: str, servers: Servers) -> Callable[[Case], Outcome]:
    """client.mjs for a case, run once per module."""
    done: dict[Case, Outcome] = {}

    def run(case: Case) -> Outcome:
        if case not in done:
            worker = servers.workers[MODES[case.mode]]
            auth = servers.authorization_server
            client = auth.clients[case.token_alg]
            document = run_client(node, auth.issuer, client, worker.url, case.proof_alg)
            done[case] = Outcome(case, document, worker.tail())
        return done[case]

    return run


# --- what the independent implementations produce (no Worker judgement involved) -------------


@cases(ALLOWED)
def test_oidc_provider_issues_rfc9068_jwts_bound_to_the_oauth4webapi_key(
    case: Case, outcome: Callable[[Case], Outcome], servers: Servers
) -> None:
    document = outcome(case).document
    issuer = servers.authorization_server.issuer
    tokens = document["tokens"]
    for name, scope in (
        ("dpop", REPORTS_SCOPE),
        ("dpop_without_read_reports", "read:profile"),
        ("bearer", REPORTS_SCOPE),
    ):
        token = tokens[name]
        assert token["header"]["typ"] == "at+jwt", name
        assert token["header"]["alg"] == case.token_alg, name
        assert (token["iss"], token["aud"], token["scope"]) == (issuer, AUDIENCE, scope), name
    for name in ("dpop", "dpop_without_read_reports"):
        assert tokens[name]["token_type"].lower() == "dpop"
        assert tokens[name]["cnf_jkt_present"] and tokens[name]["cnf_jkt_matches_proof_key"]
    assert tokens["bearer"]["token_type"].lower() == "bearer"
    assert not tokens["bearer"]["cnf_jkt_present"]
    # oauth4webapi names an Ed25519 key's proofs Ed25519 (RFC 9864), never EdDSA.
    proof = document["token_request_proof"]
    assert proof["header"]["typ"] == "dpop+jwt"
    assert proof["header"]["alg"] == case.proof_alg
    assert (proof["claims"]["htm"], proof["claims"]["htu"]) == ("POST", f"{issuer}/token")
    me = document["scenarios"]["dpop_me"]["request"]
    assert me["scheme"] == "DPoP" and me["dpop"]["count"] == 1
    assert me["dpop"]["claims"]["htu"] == f"{document['worker']}/me"
    assert me["dpop"]["claims"]["ath_matches_token"]
    assert me["dpop"]["claims"]["nonce"] is None


# --- plain Bearer tokens from oidc-provider -------------------------------------------------


@cases(BEARER_ACCEPTED)
def test_a_plain_bearer_token_from_oidc_provider_is_accepted(
    case: Case, outcome: Callable[[Case], Outcome], servers: Servers
) -> None:
    result = outcome(case)
    client_id = servers.authorization_server.clients[case.token_alg].client_id
    me = result.expect("bearer_me", 200)
    assert me["body"] == {"sub": client_id, "scope": REPORTS_SCOPE}
    reports = result.expect("bearer_reports", 200)
    assert reports["body"] == {"reports": [], "requested_by": client_id}


@cases(REQUIRED)
def test_required_mode_answers_bearer_with_a_dpop_challenge(
    case: Case, outcome: Callable[[Case], Outcome]
) -> None:
    result = outcome(case)
    for name in ("bearer_me", "bearer_reports"):
        assert result.expect(name, 401, "DPoP")["body"] == UNAUTHORIZED


# --- DPoP-bound tokens with oauth4webapi's proofs ---------------------------------------------


@cases(DPOP_ACCEPTED)
def test_fresh_oauth4webapi_proofs_are_accepted(
    case: Case, outcome: Callable[[Case], Outcome], servers: Servers
) -> None:
    result = outcome(case)
    client_id = servers.authorization_server.clients[case.token_alg].client_id
    assert result.expect("dpop_me", 200)["body"] == {"sub": client_id, "scope": REPORTS_SCOPE}
    reports = result.expect("dpop_reports", 200)
    assert reports["body"] == {"reports": [], "requested_by": client_id}


@cases(DPOP_ACCEPTED)
def test_the_same_authorization_and_dpop_headers_replayed_are_refused(
    case: Case, outcome: Callable[[Case], Outcome]
) -> None:
    result = outcome(case)
    # The harness really replayed the first request's proof (same jti, same URL).
    first = result.scenario("dpop_me")["request"]
    again = result.scenario("dpop_replayed")["request"]
    assert (again["url"], again["dpop"]["claims"]) == (first["url"], first["dpop"]["claims"])
    response = result.expect("dpop_replayed", 401, "DPoP", "invalid_dpop_proof")
    assert response["body"] == UNAUTHORIZED


@cases(DPOP_ACCEPTED)
def test_a_proof_made_for_me_is_refused_at_reports(
    case: Case, outcome: Callable[[Case], Outcome]
) -> None:
    result = outcome(case)
    request = result.scenario("dpop_proof_for_other_url")["request"]
    assert request["url"].endswith("/reports") and request["dpop"]["claims"]["htu"].endswith("/me")
    response = result.expect("dpop_proof_for_other_url", 401, "DPoP", "invalid_dpop_proof")
    assert response["body"] == UNAUTHORIZED


@cases(DPOP_ACCEPTED)
@pytest.mark.parametrize("scenario", ["dpop_scheme_without_proof", "dpop_two_proofs"])
def test_a_missing_or_duplicated_proof_is_refused(
    case: Case, scenario: str, outcome: Callable[[Case], Outcome]
) -> None:
    response = outcome(case).expect(scenario, 401, "DPoP", "invalid_dpop_proof")
    assert response["body"] == UNAUTHORIZED


@cases(DPOP_ACCEPTED)
def test_a_bound_token_without_the_scope_is_403_with_a_dpop_challenge(
    case: Case, outcome: Callable[[Case], Outcome]
) -> None:
    response = outcome(case).expect(
        "dpop_without_scope_reports", 403, "DPoP", "insufficient_scope", scope=REPORTS_SCOPE
    )
    assert response["body"] == {"error": "insufficient_scope"}


@cases(EVERY_MODE)
def test_a_dpop_bound_token_sent_as_bearer_is_refused(
    case: Case, outcome: Callable[[Case], Outcome]
) -> None:
    assert outcome(case).expect("dpop_token_as_bearer", 401)["body"] == UNAUTHORIZED


@cases(DISABLED)
def test_disabled_mode_refuses_the_dpop_scheme_and_offers_only_bearer(
    case: Case, outcome: Callable[[Case], Outcome]
) -> None:
    result = outcome(case)
    for name in ("dpop_me", "dpop_reports"):
        response = result.expect(name, 401, "Bearer")
        assert find_challenge(response["www_authenticate"], "DPoP") is None, result.explain(name)
        assert response["body"] == UNAUTHORIZED


# --- keys ------------------------------------------------------------------------------------


def test_a_signing_key_rotation_prepublished_by_oidc_provider_needs_no_pause(
    servers: Servers,
) -> None:
    """oidc-provider publishes the next key from the start; after `rotate` its tokens carry
    the new kid and the Worker, holding the set it fetched before, accepts them at once, and
    the old key's tokens still."""
    auth = servers.authorization_server
    worker = servers.workers[MODES["allowed"]]
    client = auth.clients["ES256"]

    def token() -> str:
        response = httpx.post(
            auth.token_endpoint,
            auth=(client.client_id, client.client_secret),
            data={"grant_type": "client_credentials", "scope": REPORTS_SCOPE},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        value: str = response.json()["access_token"]
        return value

    def me(access_token: str) -> int:
        headers = {"authorization": f"Bearer {access_token}"}
        return httpx.get(f"{worker.url}/me", headers=headers, timeout=10).status_code

    kids = auth.command("kids")["kids"]["ES256"]
    before = token()
    assert header_of(before)["kid"] == kids["current"]
    assert me(before) == 200, worker.tail()
    rotated = auth.command("rotate")["kids"]["ES256"]
    assert rotated["current"] == kids["next"]
    after = token()
    assert header_of(after)["kid"] == kids["next"]
    assert (me(after), me(before)) == (200, 200), worker.tail()
