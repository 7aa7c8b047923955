"""The example's own tests, as a user writes them: FastAPI's TestClient against the app, and
authpi_worker.testing's in-process issuer (real tokens, real signatures, no network)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api import app, auth
from authpi_worker.testing import Issuer, SigningKey, organization

API = "https://api.example.com"  # the base URL of the requests; the issuer's audience too


@pytest.fixture
def client(authpi_issuer: Issuer) -> Iterator[TestClient]:
    with authpi_issuer.serve(auth), TestClient(app, base_url=API) as client:
        yield client


def test_root_is_public(client: TestClient) -> None:
    response = client.get("/")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_me_needs_a_token(client: TestClient, authpi_issuer: Issuer) -> None:
    refused = client.get("/me")
    assert (refused.status_code, refused.json()) == (401, {"error": "unauthorized"})
    assert refused.headers["www-authenticate"].startswith("Bearer resource_metadata=")
    answered = client.get("/me", headers=authpi_issuer.bearer(scope="read:reports openid"))
    assert answered.json() == {"sub": "c_demo", "scope": "read:reports openid"}
    assert answered.headers["cache-control"] == "no-store"


def test_reports_need_read_reports(client: TestClient, authpi_issuer: Issuer) -> None:
    assert client.get("/reports", headers=authpi_issuer.bearer()).status_code == 200
    refused = client.get("/reports", headers=authpi_issuer.bearer(scope="read:profile"))
    assert (refused.status_code, refused.json()) == (403, {"error": "insufficient_scope"})
    assert 'scope="read:reports"' in refused.headers["www-authenticate"]


def test_a_dpop_bound_token_needs_its_proof(
    client: TestClient, authpi_issuer: Issuer, authpi_dpop_key: SigningKey
) -> None:
    headers = authpi_issuer.dpop(authpi_dpop_key, "GET", f"{API}/me")
    assert client.get("/me", headers=headers).status_code == 200
    assert client.get("/me", headers=headers).status_code == 401  # the proof was spent


@pytest.mark.parametrize(
    ("kind", "scopes", "status"),
    [
        ("person", ["reports:read"], 200),
        ("agent", ["reports:*"], 200),
        ("client", ["reports:read"], 403),
        ("person", ["billing:read"], 403),
    ],
)
def test_an_organizations_reports(
    client: TestClient, authpi_issuer: Issuer, kind: str, scopes: list[str], status: int
) -> None:
    member = [organization("org_1", *scopes)]
    headers = authpi_issuer.bearer(caller_kind=kind, organizations=member)
    assert client.get("/orgs/org_1/reports", headers=headers).status_code == status
    assert client.get("/orgs/org_2/reports", headers=headers).status_code == 403


def test_a_writer_creates_a_report(client: TestClient, authpi_issuer: Issuer) -> None:
    writer = authpi_issuer.bearer(
        caller_kind="person", organizations=[organization("org_1", "reports:write")]
    )
    created = client.post("/orgs/org_1/reports", headers=writer, json={"title": "Q3"})
    assert (created.status_code, created.json()) == (
        201,
        {"org": "org_1", "title": "Q3", "created_by": "usr_demo"},
    )
    assert client.post("/orgs/org_1/reports", headers=writer, json={}).status_code == 400
    too_large = {"title": "x" * 70_000}
    assert client.post("/orgs/org_1/reports", headers=writer, json=too_large).status_code == 413


def test_unknown_paths_and_methods_answer_json(client: TestClient, authpi_issuer: Issuer) -> None:
    assert client.get("/nowhere").status_code == 401  # nothing of the routes without a token
    missing = client.get("/nowhere", headers=authpi_issuer.bearer())
    assert (missing.status_code, missing.json()) == (404, {"error": "not_found"})
    wrong = client.put("/", headers=authpi_issuer.bearer())
    assert (wrong.status_code, wrong.json()) == (405, {"error": "method_not_allowed"})
    assert wrong.headers["allow"] == "GET, HEAD"


def test_the_metadata_names_the_issuer(client: TestClient, authpi_issuer: Issuer) -> None:
    document = client.get("/.well-known/oauth-protected-resource").json()
    assert document["authorization_servers"] == [authpi_issuer.url]
    assert document["scopes_supported"] == ["read:reports"]


def test_the_issuer_down_is_503(client: TestClient, authpi_issuer: Issuer) -> None:
    authpi_issuer.status = 503
    refused = client.get("/me", headers=authpi_issuer.bearer())
    assert refused.status_code == 503
    # Seconds until the next attempt: 5, rounded up from when the request began (a real clock).
    assert refused.headers["retry-after"] in ("5", "6")
