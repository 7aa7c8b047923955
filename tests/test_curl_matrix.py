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
from authpi_worker.testing.tokens import caller, organization
from scripts.curl_matrix import Response, _last_header_block, describe, main, render, rows, run
from scripts.curl_matrix import use_colour as colour_for
from scripts.keyfiles import load_or_make_key
from scripts.local_worker import LocalWorker, make_server
from tests.support.issuer import DEMO_ORG, FakeIssuer, default_clients

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


def tokens(issuer: FakeIssuer, org_rows: bool = True) -> dict[str, str]:
    """The quickstart's two tokens; with org_rows, a person's and an agent's too."""
    found = {
        "TOKEN": issuer.mint(sub="svc", scope="read:reports"),
        "TOKEN_NO_SCOPE": issuer.mint(sub="svc", scope="read:profile"),
    }
    if org_rows:
        member = organization(DEMO_ORG, "reports:read", "reports:write")
        found["PERSON_TOKEN"] = issuer.mint(**caller("person"), organizations=[member])
        found["AGENT_TOKEN"] = issuer.mint(**caller("agent"), organizations=[member])
        found["ORG_ID"] = DEMO_ORG
    return found


ALL = 15  # rows without --origin and --dpop: the quickstart's 8, the metadata, 6 org rows
ORG_SKIPPED = "6 organization rows skipped"


def client_credentials(issuer: FakeIssuer) -> dict[str, str]:
    """The fake issuer's two default clients, as curl-matrix reads them to mint its tokens."""
    clients = default_clients()
    return {
        "AUTHPI_ISSUER_URL": issuer.url,
        "CLIENT_ID": "c_demo_reports",
        "CLIENT_SECRET": clients["c_demo_reports"].secret,
        "CLIENT_ID_NO_SCOPE": "c_demo_basic",
        "CLIENT_SECRET_NO_SCOPE": clients["c_demo_basic"].secret,
    }


def outcomes(output: str) -> list[str]:
    return re.findall(r"^\d+\s.*\s(PASS|FAIL|SKIP)$", output, re.MULTILINE)


def test_every_row_passes_against_the_worker(
    worker: str, issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([worker], tokens(issuer)) == 0
    out = capsys.readouterr().out
    assert outcomes(out) == ["PASS"] * ALL
    assert "200 sub=svc scope=read:reports" in out
    assert "403 insufficient_scope" in out
    assert f"200 org={DEMO_ORG} by=usr_demo" in out and f"200 org={DEMO_ORG} by=agt_demo" in out
    assert f"201 org={DEMO_ORG} by=usr_demo" in out
    assert "400 invalid_request" in out
    assert f"{ALL}/{ALL} passed" in out and "warning" not in out
    assert not ANSI.search(out)  # not a terminal: no colour


def test_tokens_are_minted_through_get_token_from_client_credentials(
    worker: str, issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = client_credentials(issuer)
    assert main([worker + "/"], environ) == 0
    out = capsys.readouterr().out
    assert "TOKEN minted for c_demo_reports" in out
    assert "TOKEN_NO_SCOPE minted for c_demo_basic" in out
    # No person or agent token from M2M credentials: those rows skip, and the run passes.
    assert outcomes(out) == ["PASS"] * 9 + ["SKIP"] * 6
    assert "no PERSON_TOKEN or ORG_ID" in out and "no AGENT_TOKEN or ORG_ID" in out
    assert "9/9 passed" in out and ORG_SKIPPED in out and "a login at AuthPI" in out


def test_a_client_without_read_reports_cannot_mint_the_scoped_token(
    worker: str, issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {"AUTHPI_ISSUER_URL": issuer.url, "CLIENT_ID": "c_demo_basic"}
    environ["CLIENT_SECRET"] = "demo-basic-secret"
    assert main([worker], environ) == 2
    assert "invalid_scope" in capsys.readouterr().err


def test_a_worker_that_checks_nothing_fails_the_matrix(
    lenient: str, issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([lenient], tokens(issuer)) == 1
    out = capsys.readouterr().out
    quickstart = ["PASS", "FAIL", "PASS", "PASS", "FAIL", "FAIL", "FAIL", "FAIL", "FAIL"]
    assert outcomes(out) == quickstart + ["FAIL"] * 6
    assert f"3/{ALL} passed, 12 failed" in out


def test_a_wrong_audience_fails_every_row_that_needs_a_valid_token(
    issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    variables = {"AUTHPI_ISSUER_URL": issuer.url, "AUTHPI_AUDIENCE": "https://other.example"}
    for base in serve_in_thread(make_server(LocalWorker(variables), 0)):
        assert main([base], tokens(issuer)) == 1
    out = capsys.readouterr().out
    quickstart = ["PASS", "PASS", "FAIL", "FAIL", "FAIL", "PASS", "PASS", "FAIL", "PASS"]
    assert outcomes(out) == quickstart + ["FAIL"] * 6  # the org rows need a valid token too
    assert "401 invalid_token (unexpected audience)" in out


def test_missing_tokens_skip_their_rows_and_fail_the_run(
    worker: str, issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([worker], {"TOKEN": tokens(issuer)["TOKEN"]}) == 1
    out = capsys.readouterr().out
    assert outcomes(out) == ["PASS"] * 4 + ["SKIP", "PASS", "SKIP", "PASS", "PASS"] + ["SKIP"] * 6
    assert "7/9 passed, 2 skipped" in out and ORG_SKIPPED in out


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
    assert outcomes(out) == ["FAIL"] * ALL
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
        r"^16\s+OPTIONS /me\s+preflight from http://localhost:5173 .* PASS$", out, re.M
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
    assert outcomes(out) == ["PASS"] * 9 + ["SKIP"] * 6 + ["PASS"] * 4
    assert f"DPOP_TOKEN minted for c_demo_reports, bound to {key}" in out
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
    assert outcomes(capsys.readouterr().out)[ALL:] == ["FAIL", "PASS", "FAIL", "FAIL"]


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


def test_tokens_of_the_wrong_kind_fail_their_rows_and_are_flagged(
    worker: str, issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = tokens(issuer)
    environ["AGENT_TOKEN"], environ["PERSON_TOKEN"] = (
        environ["PERSON_TOKEN"],
        environ["AGENT_TOKEN"],
    )
    assert main([worker], environ) == 1
    out = capsys.readouterr().out
    # Reading passes for both; the person (an agent now) may not write, the agent (a person) may.
    assert outcomes(out)[9:] == ["PASS", "PASS", "PASS", "FAIL", "FAIL", "FAIL"]
    assert "warning: PERSON_TOKEN is not a person's token (sub 'agt_demo')" in out
    assert "warning: AGENT_TOKEN is not an agent's token (sub 'usr_demo')" in out


def test_a_person_without_reports_write_is_flagged_before_the_table(
    worker: str, issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = tokens(issuer)
    environ["PERSON_TOKEN"] = issuer.mint(
        **caller("person"), organizations=[organization(DEMO_ORG, "reports:read")]
    )
    assert main([worker], environ) == 1
    out = capsys.readouterr().out
    assert f"warning: PERSON_TOKEN's membership in {DEMO_ORG} does not grant reports:write" in out
    assert outcomes(out)[13] == "FAIL"  # the person's POST: 403, not 201


def test_without_org_id_the_org_rows_skip_and_say_why(
    worker: str, issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = tokens(issuer)
    del environ["ORG_ID"]
    assert main([worker], environ) == 0
    out = capsys.readouterr().out
    assert outcomes(out)[9:] == ["SKIP"] * 6 and out.count("no ORG_ID") == 6
