"""authpi_worker.fastapi: the same verdicts as the core, through FastAPI's dependencies.

The example's app (examples/fastapi/src/api.py) serves the main Worker's routes; each request
here goes to it (in-process, httpx.ASGITransport) and to the core (`dispatch` with src/app.py's
routes), and the two answers must be equal: status, body, headers (but Content-Length, which
the core leaves to the runtime) and log lines (tests/support/asgi.py). The hostile tokens and
proofs are the core's own table (tests/hostile.py). The JWKS comes over real HTTP from the fake
issuer, through the integration's stdlib fetcher.
"""

# No `from __future__ import annotations`: FastAPI reads the annotations of the routes made
# inside functions here, which name local objects.
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, HTTPException, Security

import api
import authpi_worker.starlette
from authpi_worker import Edge, Isolate
from authpi_worker.fastapi import BEARER, CLIENT_CREDENTIALS, AuthPI, Claims
from authpi_worker.starlette import urllib_fetch
from authpi_worker.testing import caller, make_key, organization, proof
from authpi_worker.testing.dpop import jkt
from tests.conftest import WORKER, Call, Clock
from tests.hostile import HOSTILE_PROOFS, HOSTILE_TOKENS, ME, Keys
from tests.support.asgi import MATRIX, Both, asgi_client, matrix
from tests.support.issuer import FakeIssuer
from tests.support.logs import logged

INVALID = 'Bearer error="invalid_token"'


@pytest.fixture
def auth(env: dict[str, object], clock: Clock) -> Iterator[AuthPI]:
    """The example's module-level AuthPI, trusting the fake issuer (the test's env, which a
    test may change), with caches of its own on the test's clock."""
    saved = api.auth.env, api.auth.isolate
    api.auth.env = env
    api.auth.isolate = Isolate(urllib_fetch, clock)
    yield api.auth
    api.auth.env, api.auth.isolate = saved


@pytest.fixture
async def client(auth: AuthPI) -> AsyncIterator[httpx.AsyncClient]:
    async for client in asgi_client(api.app):
        yield client


@pytest.fixture
def both(call: Call, client: httpx.AsyncClient) -> Both:
    return Both(call, client)


# --- The quickstart's matrix and the routing answers ---------------------------------------


@pytest.mark.parametrize("name", MATRIX)
async def test_each_answer_equals_the_cores(both: Both, issuer: FakeIssuer, name: str) -> None:
    path, options = matrix(issuer)[name]
    ours, core = await both(path, **options)
    assert ours == core


async def test_a_missing_token_is_401_never_400_and_names_both_schemes(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/reports")
    assert (response.status_code, response.json()) == (401, {"error": "unauthorized"})
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer resource_metadata=") and ", DPoP algs=" in challenge
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("name", list(HOSTILE_TOKENS))
async def test_hostile_token_is_401_as_in_the_core(
    both: Both, issuer: FakeIssuer, keys: Keys, name: str
) -> None:
    token = HOSTILE_TOKENS[name](issuer, keys)
    ours, core = await both("/reports", token)
    assert ours == core
    assert (ours.status, json.loads(ours.body)) == (401, {"error": "unauthorized"})
    assert ours.headers["www-authenticate"].startswith(INVALID)


@pytest.fixture(scope="module")
def client_key() -> Any:
    return make_key("ES256", "client")


@pytest.mark.parametrize("name", list(HOSTILE_PROOFS))
async def test_hostile_proof_is_401_as_in_the_core(
    both: Both, issuer: FakeIssuer, client_key: Any, name: str
) -> None:
    make, reason = HOSTILE_PROOFS[name]
    bound = issuer.mint(cnf={"jkt": jkt(client_key)})
    value = make(client_key, bound)
    ours, core = await both("/me", authorization=f"DPoP {bound}", dpop=value)
    assert ours == core
    assert ours.status == 401
    assert ours.headers["www-authenticate"].startswith('DPoP error="invalid_dpop_proof"')
    assert [event["reason"] for event in ours.events] == [reason]


async def test_dpop_names_the_method_and_the_full_url(
    client: httpx.AsyncClient, issuer: FakeIssuer, client_key: Any
) -> None:
    bound = issuer.mint(cnf={"jkt": jkt(client_key)})
    url = f"{WORKER}/me?page=2"
    ok = await client.get(
        url,
        headers={"authorization": f"DPoP {bound}", "dpop": proof(client_key, "GET", url, bound)},
    )
    assert (ok.status_code, ok.json()["sub"]) == (200, "c_demo")
    head = proof(client_key, "HEAD", ME, bound)
    answered = await client.head("/me", headers={"authorization": f"DPoP {bound}", "dpop": head})
    assert (answered.status_code, answered.content) == (200, b"")
    other_host = proof(client_key, "GET", "https://evil.example/me", bound)
    refused = await client.get(
        "/me", headers={"authorization": f"DPoP {bound}", "dpop": other_host}
    )
    assert refused.status_code == 401


async def test_a_missing_scope_is_403_only_once_the_token_is_valid(
    client: httpx.AsyncClient, issuer: FakeIssuer
) -> None:
    unscoped = issuer.mint(scope="read:profile")
    assert (
        await client.get("/reports", headers={"authorization": f"Bearer {unscoped}"})
    ).status_code == 403
    # The same claims with a signature that does not hold: the scope is never looked at.
    broken = unscoped[:-4] + ("AAAA" if not unscoped.endswith("AAAA") else "BBBB")
    refused = await client.get("/reports", headers={"authorization": f"Bearer {broken}"})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith(INVALID)


# --- Organizations and caller kinds ------------------------------------------------------


def _member(issuer: FakeIssuer, kind: str, *scopes: str, org: str = "org_1") -> str:
    return issuer.mint(**caller(kind), organizations=[organization(org, *scopes)])


@pytest.mark.parametrize(
    ("kind", "scopes", "org", "status"),
    [
        ("person", ("reports:read",), "org_1", 200),
        ("agent", ("reports:read",), "org_1", 200),
        ("person", ("reports:*",), "org_1", 200),
        ("person", ("owner",), "org_1", 403),
        ("person", ("reports:read",), "org_2", 403),  # a membership elsewhere grants nothing
        ("client", ("reports:read",), "org_1", 403),  # an M2M client is no member
    ],
)
async def test_reading_an_organizations_reports(
    client: httpx.AsyncClient,
    issuer: FakeIssuer,
    kind: str,
    scopes: tuple[str, ...],
    org: str,
    status: int,
) -> None:
    token = _member(issuer, kind, *scopes, org=org)
    response = await client.get("/orgs/org_1/reports", headers={"authorization": f"Bearer {token}"})
    assert response.status_code == status
    if status == 200:
        sub = caller(kind)["sub"]
        assert response.json() == {"org": "org_1", "reports": [], "requested_by": sub}
    else:
        assert response.json() == {"error": "insufficient_scope"}
        assert (
            'error="insufficient_scope", error_description="'
            in response.headers["www-authenticate"]
        )


def _post(client: httpx.AsyncClient, token: str | None, content: bytes) -> Any:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return client.post("/orgs/org_1/reports", headers=headers, content=content)


async def test_a_person_with_reports_write_creates_a_report(
    client: httpx.AsyncClient, issuer: FakeIssuer
) -> None:
    token = _member(issuer, "person", "reports:write")
    response = await _post(client, token, b'{"title":"Q3"}')
    assert (response.status_code, response.json()) == (
        201,
        {"org": "org_1", "title": "Q3", "created_by": "usr_demo"},
    )
    assert response.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("kind", "scopes"),
    [("agent", ("reports:write",)), ("client", ("reports:write",)), ("person", ("reports:read",))],
)
async def test_creating_a_report_is_403_for_others_before_the_body_is_read(
    client: httpx.AsyncClient, issuer: FakeIssuer, kind: str, scopes: tuple[str, ...]
) -> None:
    response = await _post(client, _member(issuer, kind, *scopes), b"not json")
    assert (response.status_code, response.json()) == (403, {"error": "insufficient_scope"})


@pytest.mark.parametrize(
    ("content", "status", "error"),
    [
        (b"not json", 400, "invalid_request"),
        (b'["Q3"]', 400, "invalid_request"),
        (b'{"title": 3}', 400, "invalid_request"),
        (b'{"title": ""}', 400, "invalid_request"),
        (b'{"name": "Q3"}', 400, "invalid_request"),
        (b'{"title": "' + b"x" * (64 * 1024) + b'"}', 413, "payload_too_large"),
    ],
)
async def test_a_bad_body_is_400_and_an_oversize_one_413(
    client: httpx.AsyncClient, issuer: FakeIssuer, content: bytes, status: int, error: str
) -> None:
    token = _member(issuer, "person", "reports:write")
    response = await _post(client, token, content)
    assert (response.status_code, response.json()) == (status, {"error": error})


async def test_a_bad_body_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    response = await _post(client, None, b"not json")
    assert response.status_code == 401


# --- Dependencies of one's own: several per route, SecurityScopes -------------------------


def _own_app(auth: AuthPI) -> FastAPI:
    app = FastAPI()
    auth.install(app)

    @app.get("/orgs/{org_id}/both")
    async def both_checks(
        org_id: str,
        claims: Annotated[Claims, Security(auth.claims, scopes=["read:reports"])],
        member: Annotated[Claims, Depends(auth.require(org=("org_id", "reports:read")))],
    ) -> dict[str, Any]:
        return {"same": claims is member}

    @app.get("/two-scopes")
    async def two_scopes(
        claims: Annotated[Claims, Security(auth.claims, scopes=["read:reports", "write:reports"])],
    ) -> dict[str, str]:
        return {"sub": claims["sub"]}

    @app.get("/items/{item}")
    async def item(item: str) -> dict[str, str]:
        raise HTTPException(404, f"no item {item}")

    @app.get("/bug")
    async def bug(claims: Annotated[Claims, Depends(auth.claims)]) -> dict[str, str]:
        raise RuntimeError("a bug")

    return app


@pytest.fixture
def own(env: dict[str, object], clock: Clock) -> AuthPI:
    return AuthPI(env=env, fetch=urllib_fetch, clock=clock)


@pytest.fixture
async def own_client(own: AuthPI) -> AsyncIterator[httpx.AsyncClient]:
    async for client in asgi_client(_own_app(own)):
        yield client


async def test_two_dependencies_verify_the_token_and_its_proof_once(
    own_client: httpx.AsyncClient, issuer: FakeIssuer, client_key: Any
) -> None:
    url = f"{WORKER}/orgs/org_1/both"
    bound = issuer.mint(
        cnf={"jkt": jkt(client_key)}, organizations=[organization("org_1", "reports:read")]
    )
    headers = {"authorization": f"DPoP {bound}", "dpop": proof(client_key, "GET", url, bound)}
    with logged() as events:
        response = await own_client.get(url, headers=headers)
    # A second verification would have refused the proof as replayed.
    assert (response.status_code, response.json(), events) == (200, {"same": True}, [])


async def test_the_second_dependencys_403_is_the_cores_in_the_scheme_used(
    own_client: httpx.AsyncClient, issuer: FakeIssuer, client_key: Any
) -> None:
    url = f"{WORKER}/orgs/org_2/both"
    bound = issuer.mint(
        cnf={"jkt": jkt(client_key)}, organizations=[organization("org_1", "reports:read")]
    )
    headers = {"authorization": f"DPoP {bound}", "dpop": proof(client_key, "GET", url, bound)}
    with logged() as events:
        response = await own_client.get(url, headers=headers)
    assert (response.status_code, response.json()) == (403, {"error": "insufficient_scope"})
    assert response.headers["www-authenticate"] == (
        'DPoP error="insufficient_scope", error_description="requires reports:read in the '
        'organization", resource_metadata="https://api.example.com/.well-known/'
        'oauth-protected-resource"'
    )
    assert response.headers["cache-control"] == "no-store"
    assert [(e["status"], e["reason"], e["path"]) for e in events] == [
        (403, "insufficient_scope", "/orgs/org_2/both")
    ]


@pytest.mark.parametrize(
    ("scope", "status", "missing"),
    [
        ("read:reports write:reports", 200, None),
        ("read:reports", 403, "write:reports"),
        ("openid", 403, "read:reports write:reports"),
    ],
)
async def test_every_scope_of_security_scopes_is_needed(
    own_client: httpx.AsyncClient, issuer: FakeIssuer, scope: str, status: int, missing: str | None
) -> None:
    response = await own_client.get(
        "/two-scopes", headers={"authorization": f"Bearer {issuer.mint(scope=scope)}"}
    )
    assert response.status_code == status
    if missing is not None:
        assert f'scope="{missing}"' in response.headers["www-authenticate"]


async def test_a_routes_own_404_keeps_fastapis_answer(own_client: httpx.AsyncClient) -> None:
    response = await own_client.get("/items/7")
    assert (response.status_code, response.json()) == (404, {"detail": "no item 7"})


async def test_a_bug_is_a_json_500_without_a_traceback(
    own_client: httpx.AsyncClient, issuer: FakeIssuer
) -> None:
    with logged() as events:
        response = await own_client.get(
            "/bug", headers={"authorization": f"Bearer {issuer.mint()}"}
        )
    assert (response.status_code, response.text) == (500, '{"error":"internal_error"}')
    assert response.headers["cache-control"] == "no-store"
    assert events == [{"event": "internal_error", "path": "/bug", "error": "RuntimeError"}]


# --- Faults and configuration: the core's 503 and 500 ----------------------------------------


async def test_jwks_down_is_503_with_retry_after_as_in_the_core(
    both: Both, issuer: FakeIssuer
) -> None:
    issuer.faults.status = 500
    ours, core = await both("/me", issuer.mint())
    assert ours == core
    assert (ours.status, ours.headers["retry-after"]) == (503, "5")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("AUTHPI_ISSUER_URL", None),
        ("AUTHPI_AUDIENCE", ""),
        ("AUTHPI_DPOP", "sometimes"),
        ("CORS_ALLOWED_ORIGINS", "https://app.example.com/path"),
    ],
)
async def test_an_unusable_variable_is_500_on_protected_routes_only_as_in_the_core(
    both: Both, env: dict[str, object], issuer: FakeIssuer, variable: str, value: str | None
) -> None:
    if value is None:
        del env[variable]
    else:
        env[variable] = value
    for path, token in (
        ("/me", issuer.mint()),
        ("/", None),
        ("/.well-known/oauth-protected-resource", None),
    ):
        ours, core = await both(path, token)
        assert ours == core
    ours, _ = await both("/me", issuer.mint())
    assert (ours.status, ours.body) == (500, '{"error":"server_misconfigured"}')
    assert [event["detail"] for event in ours.events] == [variable]


# --- Where the variables come from ------------------------------------------------------


def _with_env(app: Any, env: object) -> Any:
    """The app as workers.asgi calls it: the Worker's env in scope["env"]."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await app({**scope, "env": env}, receive, send)

    return asgi


async def test_on_workers_the_variables_are_read_from_the_env_in_the_scope(
    auth: AuthPI, env: dict[str, object], issuer: FakeIssuer
) -> None:
    auth.env = None
    workers_env = SimpleNamespace(**env, AUTHPI_DPOP=True)  # not a string: as if unset
    async for client in asgi_client(_with_env(api.app, workers_env)):
        ok = await client.get("/me", headers={"authorization": f"Bearer {issuer.mint()}"})
        assert ok.status_code == 200
        del workers_env.AUTHPI_ISSUER_URL
        missing = await client.get("/me", headers={"authorization": f"Bearer {issuer.mint()}"})
        assert missing.json() == {"error": "server_misconfigured"}


async def test_on_a_cpython_server_the_variables_come_from_the_process(
    auth: AuthPI, env: dict[str, object], issuer: FakeIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth.env = None
    for name, value in env.items():
        monkeypatch.setenv(name, str(value))
    async for client in asgi_client(api.app):
        response = await client.get("/me", headers={"authorization": f"Bearer {issuer.mint()}"})
        assert response.status_code == 200


# --- OpenAPI: the schemes, each operation's scopes, the issuer's tokenUrl -------------------


async def test_openapi_offers_a_bearer_scheme_and_the_issuers_client_credentials_flow(
    client: httpx.AsyncClient, issuer: FakeIssuer
) -> None:
    document = (await client.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes[BEARER] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schemes[BEARER]["description"],
    }
    assert "DPoP" in schemes[BEARER]["description"]
    assert schemes[CLIENT_CREDENTIALS]["flows"] == {
        "clientCredentials": {
            "tokenUrl": f"{issuer.url}/token",  # known only from the variables
            "scopes": {"read:reports": "read:reports"},
        }
    }
    paths = document["paths"]
    assert "security" not in paths["/"]["get"]
    assert paths["/me"]["get"]["security"] == [{BEARER: []}, {CLIENT_CREDENTIALS: []}]
    assert paths["/reports"]["get"]["security"] == [
        {BEARER: ["read:reports"]},
        {CLIENT_CREDENTIALS: ["read:reports"]},
    ]
    assert paths["/orgs/{org_id}/reports"]["post"]["security"] == [
        {BEARER: []},
        {CLIENT_CREDENTIALS: []},
    ]
    assert ".well-known" not in json.dumps(paths)  # the metadata route is no operation


async def test_openapi_follows_the_issuer_of_each_environment(
    client: httpx.AsyncClient, env: dict[str, object]
) -> None:
    first = (await client.get("/openapi.json")).json()
    env["AUTHPI_ISSUER_URL"] = "https://idp.authpi.com/iss_other"
    second = (await client.get("/openapi.json")).json()
    flows = [
        d["components"]["securitySchemes"][CLIENT_CREDENTIALS]["flows"] for d in (first, second)
    ]
    assert flows[1]["clientCredentials"]["tokenUrl"] == "https://idp.authpi.com/iss_other/token"
    assert flows[0] != flows[1]


async def test_without_a_usable_issuer_openapi_leaves_the_flow_out(
    client: httpx.AsyncClient, env: dict[str, object]
) -> None:
    del env["AUTHPI_ISSUER_URL"]
    response = await client.get("/openapi.json")
    document = response.json()
    assert response.status_code == 200
    assert list(document["components"]["securitySchemes"]) == [BEARER]
    assert document["paths"]["/reports"]["get"]["security"] == [{BEARER: ["read:reports"]}]


async def test_swagger_ui_loads_the_served_document(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text


# --- CORS, lazily per value of CORS_ALLOWED_ORIGINS -------------------------------------------

APP = "https://app.example.com"


async def test_cors_is_off_until_configured(client: httpx.AsyncClient, issuer: FakeIssuer) -> None:
    response = await client.get("/", headers={"origin": APP})
    assert not [k for k in response.headers if k.startswith("access-control-")]


async def test_a_preflight_is_204_before_any_token_and_allows_the_headers_a_client_sends(
    client: httpx.AsyncClient, env: dict[str, object], issuer: FakeIssuer
) -> None:
    env["CORS_ALLOWED_ORIGINS"] = APP
    response = await client.options(
        "/me",
        headers={
            "origin": APP,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, dpop, content-type",
        },
    )
    assert (response.status_code, response.content) == (204, b"")
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-max-age"] == "600"
    allowed = {
        h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")
    }
    assert {"authorization", "dpop", "content-type"} <= allowed
    assert {"GET", "HEAD", "POST"} <= set(
        response.headers["access-control-allow-methods"].split(", ")
    )
    assert response.headers["vary"] == "Origin"
    assert issuer.jwks_hits == 0


@pytest.mark.parametrize(
    ("origin", "asked", "error"),
    [
        ("https://evil.example", "authorization", "cors_origin_not_allowed"),
        (APP, "x-secret", "cors_preflight_refused"),
    ],
)
async def test_a_preflight_the_policy_refuses_is_403_json_and_logged(
    client: httpx.AsyncClient, env: dict[str, object], origin: str, asked: str, error: str
) -> None:
    env["CORS_ALLOWED_ORIGINS"] = APP
    headers = {
        "origin": origin,
        "access-control-request-method": "GET",
        "access-control-request-headers": asked,
    }
    with logged() as events:
        response = await client.options("/me", headers=headers)
    assert (response.status_code, response.json()) == (403, {"error": error})
    assert "access-control-allow-origin" not in response.headers
    assert events == [{"event": "request_rejected", "status": 403, "reason": error, "path": "/me"}]


async def test_a_refusal_is_readable_by_an_allowed_origin_and_every_answer_varies_by_origin(
    client: httpx.AsyncClient, env: dict[str, object]
) -> None:
    env["CORS_ALLOWED_ORIGINS"] = f"{APP} http://localhost:5173"
    refused = await client.get("/me", headers={"origin": APP})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == APP
    assert (
        refused.headers["access-control-expose-headers"]
        == "WWW-Authenticate, Retry-After, DPoP-Nonce"
    )
    assert refused.headers["vary"] == "Origin"
    other = await client.get("/", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    assert (await client.get("/")).headers["vary"] == "Origin"  # no Origin: still varies


async def test_a_new_value_of_the_variable_is_a_new_policy(
    client: httpx.AsyncClient, env: dict[str, object]
) -> None:
    env["CORS_ALLOWED_ORIGINS"] = APP
    assert (await client.get("/", headers={"origin": APP})).headers[
        "access-control-allow-origin"
    ] == APP
    env["CORS_ALLOWED_ORIGINS"] = "*"
    other = await client.get("/", headers={"origin": "https://any.example"})
    assert other.headers["access-control-allow-origin"] == "*"


async def test_a_malformed_cors_variable_is_500_on_a_preflight_as_in_the_core(
    both: Both, env: dict[str, object]
) -> None:
    env["CORS_ALLOWED_ORIGINS"] = "*, https://app.example.com"
    ours, core = await both("/me", method="OPTIONS", origin=APP, preflight="GET")
    assert ours == core
    assert (ours.status, ours.body) == (500, '{"error":"server_misconfigured"}')


# --- RFC 9728 metadata ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variables", "path"),
    [
        ({}, "/.well-known/oauth-protected-resource"),
        ({"AUTHPI_DPOP": "required"}, "/.well-known/oauth-protected-resource"),
        ({"AUTHPI_AUDIENCE": "client_abc"}, "/.well-known/oauth-protected-resource"),
        (
            {"AUTHPI_RESOURCE": "https://authpi-worker.example/v1"},
            "/.well-known/oauth-protected-resource/v1",
        ),
        (
            {"AUTHPI_RESOURCE": "https://authpi-worker.example/v1"},
            "/.well-known/oauth-protected-resource",
        ),
    ],
)
async def test_the_metadata_equals_the_cores(
    both: Both, env: dict[str, object], variables: dict[str, str], path: str
) -> None:
    env.update(variables)
    ours, core = await both(path)
    assert ours == core
    assert ours.status == 200 and json.loads(ours.body)["scopes_supported"] == ["read:reports"]


# --- The stdlib fetcher ---------------------------------------------------------------------


async def test_the_stdlib_fetcher_gets_the_jwks_and_its_cache_headers(issuer: FakeIssuer) -> None:
    fetched = await urllib_fetch(f"{issuer.url}/jwks.json", Edge(600))
    assert (fetched.status, json.loads(fetched.body)) == (200, issuer.jwks())
    assert fetched.cache_control == "public, max-age=600"


async def test_the_stdlib_fetcher_reports_an_error_status(issuer: FakeIssuer) -> None:
    issuer.faults.status = 503
    fetched = await urllib_fetch(f"{issuer.url}/jwks.json", Edge(None))
    assert fetched.status == 503


@pytest.fixture
def redirecting() -> Iterator[str]:
    """A server that redirects every GET elsewhere (here, to a key set of an attacker's)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("location", "http://127.0.0.1:9/evil.json")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    server.shutdown()
    server.server_close()


async def test_the_stdlib_fetcher_never_follows_a_redirect(redirecting: str) -> None:
    fetched = await urllib_fetch(redirecting, Edge(None))
    assert fetched.status == 302


async def test_the_stdlib_fetcher_gives_up_after_its_timeout(
    issuer: FakeIssuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(authpi_worker.starlette, "FETCH_TIMEOUT", 0.2)
    issuer.faults.delay = 1.0
    with pytest.raises(TimeoutError):
        await urllib_fetch(f"{issuer.url}/jwks.json", Edge(None))
