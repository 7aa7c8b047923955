"""scripts/local_worker.py behind scripts/serve: configuration precedence like wrangler's
(wrangler.jsonc vars < .dev.vars < environment) and the real executable serving requests."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from authpi_worker.testing.dpop import jkt, proof
from authpi_worker.testing.keys import make_key
from scripts.local_worker import load_vars, parse_dev_vars, request_url
from tests.support.issuer import FakeIssuer

PROJECT = Path(__file__).resolve().parent.parent
WRANGLER = """{
  // comments and trailing commas, as wrangler allows
  "name": "authpi-worker",
  "vars": {
    "AUTHPI_ISSUER_URL": "https://from-wrangler.example/iss",
    "AUTHPI_AUDIENCE": "https://aud-from-wrangler.example",
  },
}
"""


def serve(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """scripts/serve on a free port, as a person starts it; its first line says where."""
    return subprocess.Popen(  # noqa: S603 - our own scripts
        [PROJECT / "scripts" / "serve", "--port", "0"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "wrangler.jsonc").write_text(WRANGLER)
    return tmp_path


def test_wrangler_jsonc_vars_alone(project: Path) -> None:
    assert load_vars(project, {}) == {
        "AUTHPI_ISSUER_URL": "https://from-wrangler.example/iss",
        "AUTHPI_AUDIENCE": "https://aud-from-wrangler.example",
    }


def test_dev_vars_override_wrangler_jsonc(project: Path) -> None:
    (project / ".dev.vars").write_text("AUTHPI_ISSUER_URL=http://127.0.0.1:9400/iss_local\n")
    merged = load_vars(project, {})
    assert merged["AUTHPI_ISSUER_URL"] == "http://127.0.0.1:9400/iss_local"
    assert merged["AUTHPI_AUDIENCE"] == "https://aud-from-wrangler.example"


def test_the_environment_overrides_both(project: Path) -> None:
    (project / ".dev.vars").write_text(
        "AUTHPI_ISSUER_URL=http://dev-vars.example/iss\nAUTHPI_AUDIENCE=https://dev-vars.example\n"
    )
    environ = {"AUTHPI_AUDIENCE": "https://from-env.example", "AUTHPI_CLOCK_TOLERANCE": "30"}
    assert load_vars(project, environ) == {
        "AUTHPI_ISSUER_URL": "http://dev-vars.example/iss",
        "AUTHPI_AUDIENCE": "https://from-env.example",
        "AUTHPI_CLOCK_TOLERANCE": "30",
    }


def test_only_the_workers_own_variables_come_from_the_environment(project: Path) -> None:
    merged = load_vars(project, {"HOME": "/root", "CLIENT_SECRET": "s", "PATH": "/bin"})
    assert set(merged) == {"AUTHPI_ISSUER_URL", "AUTHPI_AUDIENCE"}


@pytest.mark.parametrize(
    "name", ["AUTHPI_DPOP", "AUTHPI_RESOURCE", "CORS_ALLOWED_ORIGINS", "AUTHPI_CLOCK_TOLERANCE"]
)
def test_the_optional_variables_come_from_all_three_places(project: Path, name: str) -> None:
    (project / "wrangler.jsonc").write_text(f'{{"vars": {{"{name}": "from-wrangler"}}}}')
    assert load_vars(project, {})[name] == "from-wrangler"
    (project / ".dev.vars").write_text(f"{name}=from-dev-vars\n")
    assert load_vars(project, {})[name] == "from-dev-vars"
    assert load_vars(project, {name: "from-env"})[name] == "from-env"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1:8787", "http://127.0.0.1:8787/me?x=1"),
        ("localhost:8787", "http://localhost:8787/me?x=1"),
        ("[::1]:8787", "http://[::1]:8787/me?x=1"),
        ('evil"host', "http://127.0.0.1:9/me?x=1"),  # not a Host: the address we listen on
        ("a b", "http://127.0.0.1:9/me?x=1"),
        (None, "http://127.0.0.1:9/me?x=1"),
    ],
)
def test_the_request_url_is_built_from_the_host_header_as_workers_does(
    host: str | None, url: str
) -> None:
    assert request_url(host, "/me?x=1", "127.0.0.1:9") == url


def test_no_vars_in_wrangler_jsonc_is_an_empty_start(tmp_path: Path) -> None:
    (tmp_path / "wrangler.jsonc").write_text('{"name": "x"}')
    assert load_vars(tmp_path, {"AUTHPI_AUDIENCE": "a"}) == {"AUTHPI_AUDIENCE": "a"}


def test_dev_vars_format() -> None:
    text = """
# a comment
export AUTHPI_ISSUER_URL="http://127.0.0.1:9400/iss_local"
AUTHPI_AUDIENCE = 'https://api.example.com'
WITH_EQUALS=a=b
not a line
"""
    assert parse_dev_vars(text) == {
        "AUTHPI_ISSUER_URL": "http://127.0.0.1:9400/iss_local",
        "AUTHPI_AUDIENCE": "https://api.example.com",
        "WITH_EQUALS": "a=b",
    }


def test_scripts_serve_answers_with_the_environment_config_from_any_directory(
    issuer: FakeIssuer, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "AUTHPI_ISSUER_URL": issuer.url,
        "AUTHPI_AUDIENCE": issuer.audience,
        "PYTHONPATH": "",
    }
    process = serve(env, tmp_path)  # not in the project: the script finds its own way
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert ready.startswith("authpi-worker on http://127.0.0.1:"), ready
        assert f"AUTHPI_ISSUER_URL={issuer.url}" in ready
        base = ready.split()[2]
        assert httpx.get(f"{base}/", timeout=5).status_code == 200
        token = issuer.mint(sub="svc", scope="read:reports")
        me = httpx.get(f"{base}/me", headers={"authorization": f"Bearer {token}"}, timeout=5)
        assert (me.status_code, me.json()) == (200, {"sub": "svc", "scope": "read:reports"})
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(5)
    assert process.stdout is not None
    log = process.stdout.read().splitlines()
    process.stdout.close()
    # One line per request, after the JWKS fetch and rejection lines of their own.
    requests = [line for line in log if line.startswith("GET ")]
    assert [line.rsplit(" ", 1)[0] for line in requests] == ["GET / 200", "GET /me 200"]


def test_scripts_serve_speaks_methods_cors_metadata_and_dpop_over_real_http(
    issuer: FakeIssuer, tmp_path: Path
) -> None:
    """What a browser, an agent and a DPoP client see from scripts/serve, with real HTTP."""
    origin = "http://localhost:5173"
    env = {
        **os.environ,
        "AUTHPI_ISSUER_URL": issuer.url,
        "AUTHPI_AUDIENCE": "client_abc",  # not a URL: the resource is the request's origin
        "CORS_ALLOWED_ORIGINS": origin,
        "PYTHONPATH": "",
    }
    process = serve(env, tmp_path)
    try:
        assert process.stdout is not None
        base = process.stdout.readline().split()[2]
        with httpx.Client(base_url=base, timeout=5) as http:
            assert http.post("/").status_code == 405
            assert http.head("/").headers["content-type"] == "application/json"
            metadata = http.get("/.well-known/oauth-protected-resource")
            assert metadata.json()["resource"] == base  # from the Host header
            unauthorized = http.get("/me")
            assert (
                f'resource_metadata="{base}/.well-known/oauth-protected-resource"'
                in (unauthorized.headers["www-authenticate"])
            )
            assert unauthorized.headers["cache-control"] == "no-store"
            preflight = http.options(
                "/me", headers={"origin": origin, "access-control-request-method": "GET"}
            )
            assert (preflight.status_code, preflight.headers["access-control-allow-origin"]) == (
                204,
                origin,
            )
            key = make_key("ES256")
            token = issuer.mint(aud="client_abc", cnf={"jkt": jkt(key)})
            proven = http.get(
                "/me",
                headers={
                    "authorization": f"DPoP {token}",
                    "dpop": proof(key, "GET", f"{base}/me", token),
                },
            )
            assert proven.status_code == 200
            twice = http.get(
                "/me",
                headers=[
                    ("authorization", f"DPoP {token}"),
                    ("dpop", proof(key, "GET", f"{base}/me", token)),
                    ("dpop", proof(key, "GET", f"{base}/me", token)),
                ],
            )
            assert 'error="invalid_dpop_proof"' in twice.headers["www-authenticate"]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(5)
        if process.stdout is not None:
            process.stdout.close()
