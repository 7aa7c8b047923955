"""scripts/get-token: only the token on stdout; refusals in plain words on stderr; a person
(local fake issuer only), an agent or a client, with memberships."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from authpi_worker.authorization import caller_kind
from authpi_worker.testing.tokens import payload_of
from scripts.get_token import main
from tests.support.issuer import FakeIssuer, default_clients, running

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture
def local() -> Iterator[FakeIssuer]:
    with running() as server:
        yield server


def env_for(issuer: str, client: str = "c_demo_reports", secret: str = "") -> dict[str, str]:
    return {
        "AUTHPI_ISSUER_URL": issuer,
        "CLIENT_ID": client,
        "CLIENT_SECRET": secret or default_clients()[client].secret,
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
    argv = ["--issuer", local.url, "--client-id", "c_demo_basic"]
    argv += ["--client-secret", "demo-basic-secret", "--scope", "read:profile"]
    assert main(argv, environ) == 0
    assert payload_of(capsys.readouterr().out.strip())["sub"] == "c_demo_basic"


def test_invalid_scope_is_explained_on_stderr_with_a_non_zero_exit(
    local: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--scope", "read:reports"], env_for(local.url, "c_demo_basic")) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "not allowed the scope it asked for (read:reports)" in err
    assert "allowed scopes" in err and "invalid_scope" in err


def test_invalid_client_is_explained(local: FakeIssuer, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], env_for(local.url, "c_demo_reports", "wrong")) == 1
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
    assert payload_of(done.stdout.removeprefix("got ").strip())["sub"] == "c_demo_reports"


# --- A person, an agent or a client ----------------------------------------------------------


def test_person_with_memberships_from_the_local_issuer(
    local: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--person", "--org", "org_acme=reports:read,reports:write", "--org", "org_x=member"]
    assert main(argv, {"AUTHPI_ISSUER_URL": local.url}) == 0  # no client credentials needed
    claims = payload_of(capsys.readouterr().out.strip())
    assert caller_kind(claims) == "person" and claims["sub"] == "usr_demo"
    assert [(o["id"], o["scopes"]) for o in claims["organizations"]] == [
        ("org_acme", ["reports:read", "reports:write"]),
        ("org_x", ["member"]),
    ]
    assert main(["--person", "usr_alice"], {"AUTHPI_ISSUER_URL": local.url}) == 0
    assert payload_of(capsys.readouterr().out.strip())["sub"] == "usr_alice"


def test_person_against_a_real_issuer_explains_the_login_flow_and_sends_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    environ = {"AUTHPI_ISSUER_URL": "https://idp.authpi.com/i_example"}
    assert main(["--person", "--org", "org_a=reports:read"], environ) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "is not the local fake issuer" in err and "signs in at AuthPI in a browser" in err
    assert "authorization code with PKCE" in err


def test_person_against_a_local_issuer_without_the_grant_explains_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Refuses(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            body = b'{"error":"unsupported_grant_type"}'
            self.send_response(400)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuses)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/iss"
        assert main(["--person"], {"AUTHPI_ISSUER_URL": url}) == 1
    finally:
        server.shutdown()
        server.server_close()
    assert "mints no person tokens" in capsys.readouterr().err


def test_agent_uses_its_own_credentials_and_carries_its_memberships(
    local: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--agent"], env_for(local.url, "agt_demo_reader")) == 0
    claims = payload_of(capsys.readouterr().out.strip())
    assert caller_kind(claims) == "agent"
    assert [o["id"] for o in claims["organizations"]] == ["org_acme"]
    argv = ["--agent", "--org", "org_b=reports:read"]
    assert main(argv, env_for(local.url, "agt_demo_reader")) == 0
    assert [o["id"] for o in payload_of(capsys.readouterr().out)["organizations"]] == ["org_b"]


@pytest.mark.parametrize(
    ("argv", "client", "message"),
    [
        (["--agent"], "c_demo_reports", "an agent's ID starts with agt_"),
        (["--client"], "agt_demo_reader", "an M2M client's ID starts with c_"),
        (["--org", "org_a=reports:read"], "c_demo_reports", "an M2M client holds no memberships"),
        (["--client", "--org", "org_a=x"], "c_demo_reports", "an M2M client holds no memberships"),
        (["--agent", "--org", "org_a"], "agt_demo_reader", "expected ORG_ID=PERMISSION"),
        (["--agent", "--org", "=x"], "agt_demo_reader", "expected ORG_ID=PERMISSION"),
        (["--person", "agt_x"], "c_demo_reports", "a person's ID starts with usr_"),
    ],
)
def test_a_kind_that_does_not_fit_is_refused_before_any_request(
    argv: list[str], client: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv, env_for("http://127.0.0.1:1/iss", client)) == 2
    assert message in capsys.readouterr().err


def test_memberships_asked_of_a_real_issuer_are_explained(
    capsys: pytest.CaptureFixture[str],
) -> None:
    environ = env_for("https://idp.authpi.com/i_example", "agt_demo_reader")
    assert main(["--agent", "--org", "org_a=reports:read"], environ) == 2
    assert "managed in the AuthPI console" in capsys.readouterr().err
