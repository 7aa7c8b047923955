"""scripts/get-token: only the token on stdout; refusals in plain words on stderr."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from authpi_worker.testing.tokens import payload_of
from scripts.get_token import main
from tests.support.issuer import FakeIssuer, running

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture
def local() -> Iterator[FakeIssuer]:
    with running() as server:
        yield server


def env_for(issuer: str, client: str = "demo-reports", secret: str = "") -> dict[str, str]:
    return {
        "AUTHPI_ISSUER_URL": issuer,
        "CLIENT_ID": client,
        "CLIENT_SECRET": secret or f"{client}-secret",
    }


def test_prints_only_the_token(local: FakeIssuer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--scope", "read:reports"], env_for(local.url)) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and out.count(".") == 2
    assert payload_of(out.strip())["scope"] == "read:reports"
    assert err == ""


def test_flags_win_over_the_environment(
    local: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {**env_for("http://127.0.0.1:1/nowhere", "nobody", "x"), "SCOPE": "admin"}
    argv = ["--issuer", local.url, "--client-id", "demo-basic"]
    argv += ["--client-secret", "demo-basic-secret", "--scope", "read:profile"]
    assert main(argv, environ) == 0
    assert payload_of(capsys.readouterr().out.strip())["sub"] == "demo-basic"


def test_invalid_scope_is_explained_on_stderr_with_a_non_zero_exit(
    local: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--scope", "read:reports"], env_for(local.url, "demo-basic")) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "not allowed the scope it asked for (read:reports)" in err
    assert "allowed scopes" in err and "invalid_scope" in err


def test_invalid_client_is_explained(local: FakeIssuer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], env_for(local.url, "demo-reports", "wrong")) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "did not accept the client credentials" in err and "CLIENT_SECRET" in err


def test_missing_inputs_name_the_flag_and_the_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main([], {"CLIENT_ID": "x"}) == 2
    err = capsys.readouterr().err
    assert "--issuer (or AUTHPI_ISSUER_URL)" in err and "--client-secret (or CLIENT_SECRET)" in err


def test_a_wrong_issuer_url_says_so(local: FakeIssuer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], env_for(local.url.replace("iss_local", "other"))) == 1
    assert "no token endpoint at" in capsys.readouterr().err


def test_an_unreachable_issuer_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], env_for("http://127.0.0.1:1/iss")) == 1
    assert "cannot reach the token endpoint" in capsys.readouterr().err


def test_a_redirect_is_not_followed_with_the_credentials(
    capsys: pytest.CaptureFixture[str],
) -> None:
    seen: list[str] = []

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.path)
            self.send_response(307)
            self.send_header("location", "http://127.0.0.1:1/elsewhere")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/iss"
        assert main([], env_for(url)) == 1
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["/iss/token"]
    assert "redirects (HTTP 307)" in capsys.readouterr().err


def test_the_executable_works_in_command_substitution(local: FakeIssuer) -> None:
    script = f'TOKEN=$("{PROJECT}/scripts/get-token" --scope read:reports) && echo "got $TOKEN"'
    done = subprocess.run(  # noqa: S603 - our own scripts
        ["bash", "-c", script],  # noqa: S607
        env={**os.environ, "SCOPE": "", **env_for(local.url)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert payload_of(done.stdout.removeprefix("got ").strip())["sub"] == "demo-reports"
