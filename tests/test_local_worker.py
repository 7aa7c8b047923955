"""scripts/local_worker.py behind scripts/serve: configuration precedence like wrangler's
(wrangler.jsonc vars < .dev.vars < environment) and the real executable serving requests."""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import httpx
import pytest

from authpi_worker.testing.dpop import jkt, proof
from authpi_worker.testing.keys import make_key
from authpi_worker.testing.tokens import caller, organization
from scripts.local_worker import (
    MAX_BODY,
    BadRequest,
    load_vars,
    parse_dev_vars,
    request_body,
    request_url,
)
from tests.support.issuer import FakeIssuer, running

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


# Hostile HTTP against the real scripts/serve, over raw sockets: it must answer as Workers
# would (issue 14 item 9), at once, in JSON, and never print a traceback.
ANSWER_WITHIN = 5  # seconds a hostile request may take before the test calls it a hang
ORIGIN = "http://localhost:5173"


@dataclass
class Served:
    host: str
    port: int
    issuer: FakeIssuer
    stderr: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One scripts/serve for the module's hostile requests, its output in files."""
    logs = tmp_path_factory.mktemp("serve")
    with running(FakeIssuer()) as fake:
        env = {
            **os.environ,
            "AUTHPI_ISSUER_URL": fake.url,
            "AUTHPI_AUDIENCE": fake.audience,
            "CORS_ALLOWED_ORIGINS": ORIGIN,
            "PYTHONPATH": "",
        }
        with (logs / "out").open("w") as out, (logs / "err").open("w") as err:
            process = subprocess.Popen(  # noqa: S603 - our own script
                [PROJECT / "scripts" / "serve", "--port", "0"],
                cwd=logs,
                env=env,
                stdout=out,
                stderr=err,
                text=True,
            )
        try:
            deadline = time.monotonic() + 60
            while not (ready := (logs / "out").read_text()).endswith("\n"):
                assert process.poll() is None and time.monotonic() < deadline, ready
                time.sleep(0.05)
            host, port = ready.split()[2].removeprefix("http://").rsplit(":", 1)
            yield Served(host, int(port), fake, logs / "err")
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(5)


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> object:
        assert self.headers["content-type"] == "application/json"
        return json.loads(self.body)


def exchange(served: Served, *requests: bytes) -> list[Answer]:
    """Write each request verbatim on one connection and read its answer, within the timeout."""
    answers = []
    with socket.create_connection((served.host, served.port), timeout=ANSWER_WITHIN) as sock:
        for request in requests:
            sock.sendall(request)
            response = http.client.HTTPResponse(sock)
            response.begin()
            answers.append(Answer(response.status, response.headers, response.read()))
    return answers


def raw(served: Served, method: str, path: str, headers: list[str], body: bytes = b"") -> Answer:
    head = f"{method} {path} HTTP/1.1\r\nhost: {served.host}:{served.port}\r\n"
    head += "".join(f"{line}\r\n" for line in headers) + "\r\n"
    return exchange(served, head.encode() + body)[0]


def assert_no_traceback(served: Served) -> None:
    err = served.stderr.read_text()
    assert "Traceback" not in err and "Exception" not in err, err


def test_two_authorization_headers_are_joined_as_workers_does_and_refused(
    served: Served,
) -> None:
    """Headers.get joins repeated fields with ", ": the local server took the first (200)."""
    token = served.issuer.mint()
    one = raw(served, "GET", "/me", [f"authorization: Bearer {token}"])
    assert one.status == 200
    two = raw(served, "GET", "/me", [f"authorization: Bearer {token}"] * 2)
    assert (two.status, two.json()) == (401, {"error": "unauthorized"})
    assert 'error="invalid_token"' in two.headers["www-authenticate"]
    assert_no_traceback(served)


def test_a_person_in_100_organizations_is_served_over_real_http(served: Served) -> None:
    """A 19 KB Authorization header (every membership in the token) through scripts/serve."""
    orgs = [organization(f"org_{n:025d}", "reports:read", title=f"Org {n}") for n in range(100)]
    token = served.issuer.mint(**caller("person"), organizations=orgs)
    answer = raw(served, "GET", "/me", [f"authorization: Bearer {token}"])
    assert (answer.status, answer.json()) == (200, {"sub": "usr_demo", "scope": "read:reports"})


def test_two_origin_headers_are_one_origin_no_list_allows(served: Served) -> None:
    asked = ["access-control-request-method: GET"]
    one = raw(served, "OPTIONS", "/me", [f"origin: {ORIGIN}", *asked])
    assert (one.status, one.headers["access-control-allow-origin"]) == (204, ORIGIN)
    two = raw(served, "OPTIONS", "/me", [f"origin: {ORIGIN}"] * 2 + asked)
    assert two.status == 403 and "access-control-allow-origin" not in two.headers


@pytest.mark.parametrize(
    "framing",
    [
        ["content-length: abc"],
        ["content-length: -1"],
        ["content-length: +5"],
        ["content-length: 0x10"],
        ["content-length: 5, 6"],
        ["content-length: 5", "content-length: 6"],
        ["content-length: ", "content-length: 5"],
        ["content-length: 5", "transfer-encoding: chunked"],
        ["transfer-encoding: gzip"],
        ["transfer-encoding: chunked, chunked"],
        ["transfer-encoding: chunked", "transfer-encoding: gzip"],
    ],
)
def test_a_bad_body_length_is_a_json_400_at_once(served: Served, framing: list[str]) -> None:
    """`Content-Length: abc` printed a traceback and sent nothing; `-1` hung the handler."""
    started = time.monotonic()
    answer = raw(served, "POST", "/me", framing, b"hello")
    assert (answer.status, answer.json()) == (400, {"error": "bad_request"})
    assert answer.headers["connection"] == "close"  # the stream can no longer be trusted
    assert time.monotonic() - started < ANSWER_WITHIN
    assert_no_traceback(served)


def test_an_unknown_transfer_coding_before_chunked_is_501(served: Served) -> None:
    answer = raw(served, "POST", "/me", ["transfer-encoding: gzip, chunked"], b"0\r\n\r\n")
    assert (answer.status, answer.json()) == (501, {"error": "not_implemented"})
    assert_no_traceback(served)


def test_two_host_headers_are_a_400(served: Served) -> None:
    answer = raw(served, "GET", "/", ["host: other.example"])  # beside the one raw() sends
    assert (answer.status, answer.json()) == (400, {"error": "bad_request"})


def test_equal_repeated_lengths_are_one_length(served: Served) -> None:
    """RFC 9112 §6.3 lets a recipient take a list of one repeated value."""
    first, second = exchange(
        served,
        b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello",
        b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    assert (first.status, second.status) == (405, 200)


def test_a_chunked_body_is_read_and_the_connection_goes_on(served: Served) -> None:
    """Browsers and curl may stream a body: it must be consumed, not read as the next request."""
    chunked = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\ntrailer: x\r\n\r\n"
    first, second = exchange(
        served,
        b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n" + chunked,
        b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    assert (first.status, first.json()) == (405, {"error": "method_not_allowed"})
    assert (second.status, second.json()) == (200, {"status": "ok"})
    assert_no_traceback(served)


@pytest.mark.parametrize(
    ("framing", "body"),
    [
        ([f"content-length: {MAX_BODY + 1}"], b""),  # refused before a byte is read
        ([f"content-length: {'9' * 5000}"], b""),  # beyond any int a length parser takes
        (["transfer-encoding: chunked"], f"{MAX_BODY + 1:x}\r\n".encode()),
        (["transfer-encoding: chunked"], b"1" * 40 + b"\r\n"),
    ],
)
def test_a_body_over_the_cap_is_a_json_413_at_once(
    served: Served, framing: list[str], body: bytes
) -> None:
    answer = raw(served, "POST", "/me", framing, body)
    assert (answer.status, answer.json()) == (413, {"error": "content_too_large"})
    assert answer.headers["connection"] == "close"
    assert_no_traceback(served)


@pytest.mark.parametrize(
    "chunks",
    [
        b"zz\r\nhello\r\n0\r\n\r\n",  # not a hex size
        b"-5\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",  # no CRLF after the data
        b"\r\n",  # no size at all
    ],
)
def test_a_malformed_chunked_body_is_a_json_400(served: Served, chunks: bytes) -> None:
    answer = raw(served, "POST", "/me", ["transfer-encoding: chunked"], chunks)
    assert (answer.status, answer.json()) == (400, {"error": "bad_request"})
    assert_no_traceback(served)


def test_the_standard_librarys_own_refusals_are_json_too(served: Served) -> None:
    (unknown,) = exchange(served, b"BREW / HTTP/1.1\r\nhost: x\r\n\r\n")
    assert (unknown.status, unknown.json()) == (501, {"error": "not_implemented"})
    (long,) = exchange(served, b"GET / HTTP/1.1\r\nx: " + b"y" * 70_000 + b"\r\n\r\n")
    assert (long.status, long.json()) == (431, {"error": "request_header_fields_too_large"})
    assert_no_traceback(served)


def _headers(*lines: str) -> Message:
    message = Message()
    for line in lines:
        name, _, value = line.partition(": ")
        message[name] = value
    return message


@pytest.mark.parametrize(
    ("lines", "data", "body"),
    [
        ((), b"ignored", b""),
        (("content-length: 5",), b"hello, more", b"hello"),
        (("content-length: 005",), b"hello", b"hello"),
        (("content-length: 0",), b"", b""),
        (("transfer-encoding: chunked",), b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
        (("transfer-encoding: Chunked",), b"3;a=b\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", b"abcde"),
        (("transfer-encoding: chunked",), b"A\r\n0123456789\r\n0\r\nx: y\r\n\r\n", b"0123456789"),
    ],
)
def test_request_body_frames_as_rfc_9112_says(
    lines: tuple[str, ...], data: bytes, body: bytes
) -> None:
    assert request_body(_headers(*lines), io.BytesIO(data)) == body


def test_a_body_shorter_than_its_length_is_a_400() -> None:
    with pytest.raises(BadRequest) as caught:
        request_body(_headers("content-length: 10"), io.BytesIO(b"short"))
    assert caught.value.status == 400
