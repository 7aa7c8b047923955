"""scripts/local_worker.py behind scripts/serve: configuration precedence like wrangler's
(wrangler.jsonc vars < .dev.vars < environment) and the real executable serving requests."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from scripts.local_worker import load_vars, parse_dev_vars
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
    process = subprocess.Popen(  # noqa: S603 - our own scripts
        [PROJECT / "scripts" / "serve", "--port", "0"],
        cwd=tmp_path,  # not the project: the script finds its own way
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
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
