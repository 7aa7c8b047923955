"""scripts/curl-matrix: the eight rows with real curl, against a Worker that behaves and
against ones that do not, with tokens from the environment or minted by get-token."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from authpi_worker.testing.dpop import jkt
from scripts.curl_matrix import Response, _last_header_block, describe, main, render, rows, run
from scripts.curl_matrix import use_colour as colour_for
from scripts.keyfiles import load_or_make_key
from scripts.local_worker import LocalWorker, make_server
from tests.support.issuer import FakeIssuer, default_clients

ANSI = re.compile(r"\x1b\[")


def serve_in_thread(server: ThreadingHTTPServer) -> Iterator[str]:
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def worker(issuer: FakeIssuer) -> Iterator[str]:
    """scripts/serve's server in this process, configured for the fake issuer."""
    variables = {"AUTHPI_ISSUER_URL": issuer.url, "AUTHPI_AUDIENCE": issuer.audience}
    yield from serve_in_thread(make_server(LocalWorker(variables), 0))


@pytest.fixture
def lenient() -> Iterator[str]:
    """A Worker that checks nothing: 200 {"sub": ...} to every request."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"sub":"anyone","scope":"read:reports"}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    yield from serve_in_thread(ThreadingHTTPServer(("127.0.0.1", 0), Handler))


def tokens(issuer: FakeIssuer) -> dict[str, str]:
    return {
        "TOKEN": issuer.mint(sub="svc", scope="read:reports"),
        "TOKEN_NO_SCOPE": issuer.mint(sub="svc", scope="read:profile"),
    }


def client_credentials(issuer: FakeIssuer) -> dict[str, str]:
    """The fake issuer's two default clients, as curl-matrix reads them to mint its tokens."""
    clients = default_clients()
    return {
        "AUTHPI_ISSUER_URL": issuer.url,
        "CLIENT_ID": "demo-reports",
        "CLIENT_SECRET": clients["demo-reports"].secret,
        "CLIENT_ID_NO_SCOPE": "demo-basic",
        "CLIENT_SECRET_NO_SCOPE": clients["demo-basic"].secret,
    }


def outcomes(output: str) -> list[str]:
    return re.findall(r"^\d+\s.*\s(PASS|FAIL|SKIP)$", output, re.MULTILINE)


def test_every_row_passes_against_the_worker(
    worker: str, issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([worker], tokens(issuer)) == 0
    out = capsys.readouterr().out
    assert outcomes(out) == ["PASS"] * 9
    assert "200 sub=svc scope=read:reports" in out
    assert "403 insufficient_scope" in out
    assert "9/9 passed" in out
    assert not ANSI.search(out)  # not a terminal: no colour


def test_tokens_are_minted_through_get_token_from_client_credentials(
    worker: str, issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = client_credentials(issuer)
    assert main([worker + "/"], environ) == 0
    out = capsys.readouterr().out
    assert "TOKEN minted for demo-reports" in out and "TOKEN_NO_SCOPE minted for demo-basic" in out
    assert outcomes(out) == ["PASS"] * 9


def test_a_client_without_read_reports_cannot_mint_the_scoped_token(
    worker: str, issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {"AUTHPI_ISSUER_URL": issuer.url, "CLIENT_ID": "demo-basic"}
    environ["CLIENT_SECRET"] = "demo-basic-secret"
    assert main([worker], environ) == 2
    assert "invalid_scope" in capsys.readouterr().err


def test_a_worker_that_checks_nothing_fails_the_matrix(
    lenient: str, issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([lenient], tokens(issuer)) == 1
    out = capsys.readouterr().out
    assert outcomes(out) == ["PASS", "FAIL", "PASS", "PASS", "FAIL", "FAIL", "FAIL", "FAIL", "FAIL"]
    assert "3/9 passed, 6 failed" in out


def test_a_wrong_audience_fails_every_row_that_needs_a_valid_token(
    issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    variables = {"AUTHPI_ISSUER_URL": issuer.url, "AUTHPI_AUDIENCE": "https://other.example"}
    for base in serve_in_thread(make_server(LocalWorker(variables), 0)):
        assert main([base], tokens(issuer)) == 1
    out = capsys.readouterr().out
    assert outcomes(out) == ["PASS", "PASS", "FAIL", "FAIL", "FAIL", "PASS", "PASS", "FAIL", "PASS"]
    assert "401 invalid_token (unexpected audience)" in out


def test_missing_tokens_skip_their_rows_and_fail_the_run(
    worker: str, issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([worker], {"TOKEN": tokens(issuer)["TOKEN"]}) == 1
    out = capsys.readouterr().out
    assert outcomes(out) == ["PASS"] * 4 + ["SKIP", "PASS", "SKIP", "PASS", "PASS"]
    assert "7/9 passed, 2 skipped" in out


def test_a_scoped_token_given_as_the_unscoped_one_is_flagged(
    worker: str, issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    scoped = tokens(issuer)["TOKEN"]
    assert main([worker], {"TOKEN": scoped, "TOKEN_NO_SCOPE": scoped}) == 1
    assert "warning: TOKEN_NO_SCOPE should not carry read:reports" in capsys.readouterr().out


def test_an_unreachable_worker_fails_with_curls_reason(
    issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["http://127.0.0.1:1"], tokens(issuer)) == 1
    out = capsys.readouterr().out
    assert outcomes(out) == ["FAIL"] * 9
    assert "no answer: curl: (7)" in out


ORIGIN = "http://localhost:5173"


def configured(issuer: FakeIssuer, **extra: str) -> Iterator[str]:
    variables = {"AUTHPI_ISSUER_URL": issuer.url, "AUTHPI_AUDIENCE": issuer.audience, **extra}
    yield from serve_in_thread(make_server(LocalWorker(variables), 0))


def test_the_preflight_row_passes_when_the_worker_allows_the_origin(
    issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    for base in configured(issuer, CORS_ALLOWED_ORIGINS=ORIGIN):
        assert main([base, "--origin", ORIGIN], tokens(issuer)) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"^10\s+OPTIONS /me\s+preflight from http://localhost:5173 .* PASS$", out, re.M
    )


@pytest.mark.parametrize("cors", ["", "https://app.example.com"])
def test_the_preflight_row_fails_when_the_origin_is_not_allowed(
    issuer: FakeIssuer, capsys: pytest.CaptureFixture[str], cors: str
) -> None:
    for base in configured(issuer, CORS_ALLOWED_ORIGINS=cors):
        assert main([base, "--origin", ORIGIN], tokens(issuer)) == 1
    assert outcomes(capsys.readouterr().out)[-1] == "FAIL"


def test_the_dpop_rows_pass_with_a_token_get_token_binds(
    worker: str, issuer: FakeIssuer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = client_credentials(issuer)
    key = tmp_path / "dpop.pem"
    assert main([worker, "--dpop", str(key)], environ) == 0
    out = capsys.readouterr().out
    assert outcomes(out) == ["PASS"] * 13
    assert f"DPOP_TOKEN minted for demo-reports, bound to {key}" in out
    assert "401 invalid_dpop_proof (proof already used)" in out
    assert "401 invalid_dpop_proof (htu does not match the request URL)" in out
    assert key.stat().st_mode & 0o777 == 0o600  # a private key: the owner's alone


def test_the_dpop_rows_fail_against_a_worker_that_takes_no_dpop(
    issuer: FakeIssuer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "dpop.pem"
    bound = issuer.mint(sub="svc", cnf={"jkt": jkt(load_or_make_key(key))})
    for base in configured(issuer, AUTHPI_DPOP="disabled"):
        assert main([base, "--dpop", str(key)], {**tokens(issuer), "DPOP_TOKEN": bound}) == 1
    # The fresh proof and the proof checks fail; the bound token as Bearer is refused anyway.
    assert outcomes(capsys.readouterr().out)[9:] == ["FAIL", "PASS", "FAIL", "FAIL"]


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["127.0.0.1:8787"], {}) == 2
    assert "not an http(s) URL" in capsys.readouterr().err


def test_colour_only_on_a_terminal_and_never_with_no_color(issuer: FakeIssuer) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert colour_for(Terminal(), {}) is True
    assert colour_for(Terminal(), {"NO_COLOR": "1"}) is False
    assert colour_for(io.StringIO(), {}) is False
    results = run("http://127.0.0.1:1", rows(None, None, "no TOKEN", "no TOKEN_NO_SCOPE")[:1], 2)
    assert ANSI.search(render(results, colour=True))
    assert not ANSI.search(render(results, colour=False))


def test_the_last_header_block_is_the_answer() -> None:
    raw = (
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n\r\n"
    )
    assert _last_header_block(raw) == {"www-authenticate": "Bearer"}


def test_the_got_column_names_the_rfc_6750_error() -> None:
    challenge = 'Bearer error="invalid_token", error_description="token expired"'
    response = Response(401, {"www-authenticate": challenge}, '{"error":"unauthorized"}')
    assert describe(response, "/me") == "401 invalid_token (token expired)"
    assert describe(Response(404, {}, '{"error":"not_found"}'), "/x") == "404 not_found"
