"""The browser stage (`make test-browser`): CORS as a real headless Chromium enforces it.

A single-page app on one local origin calls the Worker on another, with a token from the fake
issuer, the way a browser app would: tests/browser/page.html, served by a real HTTP server on
127.0.0.1, calls `scripts/serve` (a real process on 127.0.0.1, `CORS_ALLOWED_ORIGINS` set to
the page's origin) with fetch, in Chromium (Debian's `chromium`, or $CHROMIUM) driven by
tests/browser/driver.mjs with playwright-core. What the page could read (status, JSON body,
WWW-Authenticate) is checked against what the Worker logged it was asked (one line per
request: `OPTIONS /me 204 …`), so a preflight is seen to reach the Worker, and a call the
browser blocked is seen to stop at its refused preflight. A second page, the same file on
another port (another origin, not allowed), is the one the browser must block.

The file is not named test_*.py, so `make test-python` leaves it out; `make test-browser`
names it. Without Chromium, Node or playwright-core it fails with what to install, never skips.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from authpi_worker.testing.tokens import AUDIENCE, caller, organization
from tests.support.child import JsonLinesChild
from tests.support.issuer import FakeIssuer, running
from tests.support.node import NoNode, find_node, package_versions

PROJECT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PAGE = HERE / "page.html"
DRIVER = HERE / "driver.mjs"
SERVE = PROJECT / "scripts" / "serve"
DEFAULT_CHROMIUM = "/usr/bin/chromium"  # Debian's package `chromium`
MIN_NODE = 20  # playwright-core 1.65's engines
BOOT_TIMEOUT = 90  # seconds for Chromium to start; about 1 s here
REPLY_TIMEOUT = 30  # seconds for one page action; a call takes milliseconds
WORKER_START_TIMEOUT = 60  # seconds for scripts/serve to listen (it may build .venv first)
LOG_WAIT = 3.0  # seconds to wait for the Worker's request lines after the page has its answer
SETTLE = 0.2  # seconds more, for a line nobody expected (a request after a refused preflight)
SUBJECT = "spa-user"
ORG = "org_acme"  # the organization the person's token is a member of
CORS_ERROR = "has been blocked by CORS policy"  # how Chromium explains a blocked fetch
# RFC 9728 §5.1: every challenge points to the metadata of the resource (the audience here).
METADATA = f'resource_metadata="{AUDIENCE}/.well-known/oauth-protected-resource"'


# --- What runs -------------------------------------------------------------------------------


def chromium_executable() -> str:
    """$CHROMIUM, else Debian's /usr/bin/chromium; the stage fails (never skips) without it."""
    path = os.environ.get("CHROMIUM") or DEFAULT_CHROMIUM
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"no Chromium at {path}: install Debian's (`apt-get install chromium`), "
            "or set CHROMIUM to a Chrome or Chromium executable"
        )
    return path


def node_executable() -> str:
    """The Makefile's Node, with playwright-core beside it; or the stage fails saying why."""
    try:
        package_versions("playwright-core")
        return find_node(MIN_NODE, "playwright-core")
    except NoNode as missing:
        pytest.fail(str(missing))


class PageServer:
    """A static server on 127.0.0.1 for page.html alone: one origin an SPA could live on."""

    def __init__(self) -> None:
        self.paths: list[str] = []  # what the browser asked this origin for
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass  # self.paths is the log

            def do_GET(self) -> None:
                server.paths.append(self.path)
                found = urlsplit(self.path).path == "/page.html"
                body = PAGE.read_bytes() if found else b"not found\n"
                self.send_response(200 if found else 404)
                self.send_header(
                    "content-type", "text/html; charset=utf-8" if found else "text/plain"
                )
                self.send_header("cache-control", "no-store")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True).start()

    def page_url(self, worker: str) -> str:
        return f"{self.origin}/page.html?worker={worker}"

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()


class Worker:
    """scripts/serve as a real process; its one line per request, read as they come."""

    def __init__(self, issuer: FakeIssuer, allowed_origins: str, stderr: Path) -> None:
        own = ("AUTHPI_", "CORS_")  # nothing from the developer's shell; ours below
        env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
        env.update(
            AUTHPI_ISSUER_URL=issuer.url,
            AUTHPI_AUDIENCE=issuer.audience,
            CORS_ALLOWED_ORIGINS=allowed_origins,
            PYTHONPATH="",
        )
        self.stderr = stderr
        with stderr.open("wb") as errors:
            self._process = subprocess.Popen(  # noqa: S603 - our own script
                [SERVE, "--port", "0"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
        self.lines: list[str] = []  # request lines, `METHOD /path STATUS`, elapsed time dropped
        self._consumed = 0
        self._exit: int | None = None
        self._ready: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            ready = self._ready.get(timeout=WORKER_START_TIMEOUT)
        except queue.Empty:
            ready = None
        if ready is None or not ready.startswith("authpi-worker on http://127.0.0.1:"):
            self.stop()
            pytest.fail(f"scripts/serve did not start: {ready!r}\n{stderr.read_text()}")
        self.url = ready.split()[2]

    def _read(self) -> None:
        assert self._process.stdout is not None
        first = True
        for line in self._process.stdout:
            if first:
                self._ready.put(line.strip())
                first = False
            else:
                self.lines.append(line.strip().rsplit(" ", 1)[0])
        self._ready.put(None)

    def requests(self, expected: int) -> list[str]:
        """The request lines since the last call, once `expected` of them (or LOG_WAIT) passed.

        The page has its answer before the Worker prints its line (it writes the response
        first), so the lines are awaited; SETTLE more lets an unexpected one show here too."""
        deadline = time.monotonic() + LOG_WAIT
        while len(self.lines) - self._consumed < expected and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(SETTLE)
        new = self.lines[self._consumed :]
        self._consumed += len(new)
        return new

    def unread(self) -> list[str]:
        return self.lines[self._consumed :]

    def stop(self) -> int:
        """Ctrl-C, as a person stops it; its exit status, once all its lines are read."""
        if self._exit is None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGINT)
            self._exit = self._process.wait(REPLY_TIMEOUT)
            while self._ready.get(timeout=REPLY_TIMEOUT) is not None:  # the reader's EOF
                pass
            assert self._process.stdout is not None
            self._process.stdout.close()
        return self._exit


class Driver(JsonLinesChild):
    """driver.mjs as a subprocess: one JSON command per line in, one JSON reply per line out;
    `output` keeps every line it wrote, to check no token is there."""

    def __init__(self, profile: Path, stderr: Path) -> None:
        super().__init__(
            "the browser (driver.mjs)",
            [node_executable(), str(DRIVER), chromium_executable(), str(profile)],
            stderr,
            boot_timeout=BOOT_TIMEOUT,
            reply_timeout=REPLY_TIMEOUT,
            explain=lambda reply: str(reply["messages"]),
        )


# --- One call from a page, and what it caused ------------------------------------------------


@dataclass(frozen=True)
class Call:
    result: dict[str, Any]  # what the page's fetch gave it (window.results[name])
    row: list[str]  # the page's table row for it: call, status, body, WWW-Authenticate, error
    messages: list[dict[str, str]]  # the browser console meanwhile (Chromium explains blocks)
    requests: list[str]  # the Worker's request lines meanwhile

    def why(self) -> str:
        """For a failing assertion: what the browser and the Worker said."""
        console = "\n".join(f"  console {m['type']}: {m['text']}" for m in self.messages)
        return f"page got {self.result}\nWorker logged {self.requests}\n{console}"


@dataclass(repr=False)
class Session:
    issuer: FakeIssuer
    page_server: PageServer  # the allowed origin
    elsewhere: PageServer  # the same page on another port: an origin not allowed
    worker: Worker
    driver: Driver
    profile: Path
    tokens: dict[str, str]  # kind -> token; never printed
    opened: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __repr__(self) -> str:  # what a failing test shows of its fixture: never the tokens
        return (
            f"Session(worker={self.worker.url}, allowed={self.page_server.origin}, "
            f"elsewhere={self.elsewhere.origin})"
        )

    def call(
        self,
        page: str,
        name: str,
        path: str,
        *,
        token: str | None = None,
        mode: str = "cors",
        target: str = "worker",
        method: str = "GET",
        json: Any = None,
        requests: int,
    ) -> Call:
        """One fetch made by the page's own script (json: a JSON body it sends); `requests` is
        how many the Worker should log for it (2 with a preflight), awaited before the next
        step begins."""
        reply = self.driver.command(
            "call",
            page=page,
            name=name,
            target=target,
            path=path,
            token=token,
            mode=mode,
            method=method,
            json=json,
        )
        return Call(
            reply["result"]["result"],
            reply["result"]["row"],
            reply["messages"],
            self.worker.requests(requests),
        )


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Session]:
    chromium_executable()  # fail first, and clearly, without a browser
    node_executable()
    work = tmp_path_factory.mktemp("browser")
    profile = work / "profile"
    profile.mkdir()
    with ExitStack() as stack:
        issuer = stack.enter_context(running(FakeIssuer()))
        page_server, elsewhere = PageServer(), PageServer()
        stack.callback(page_server.stop)
        stack.callback(elsewhere.stop)
        # Only the first page's origin is allowed, exactly as it is written.
        worker = Worker(issuer, page_server.origin, work / "worker.stderr")
        stack.callback(worker.stop)
        driver = Driver(profile, work / "driver.stderr")
        stack.callback(driver.close)  # on the way out of a failed setup too
        tokens = {
            "reports": issuer.mint(sub=SUBJECT, client_id="spa", scope="read:reports"),
            "profile": issuer.mint(sub=SUBJECT, client_id="spa", scope="read:profile"),
            # A person signed in to the SPA, a member of ORG who may write its reports.
            "person": issuer.mint(
                **caller("person", "spa"),
                organizations=[organization(ORG, "reports:read", "reports:write")],
            ),
        }
        session = Session(issuer, page_server, elsewhere, worker, driver, profile, tokens)
        for name, server in (("allowed", page_server), ("elsewhere", elsewhere)):
            opened = driver.command("open", page=name, url=server.page_url(worker.url))
            session.opened[name] = opened["result"]
        yield session
        assert driver.close() == 0, driver.stderr.read_text()


# --- The harness itself: these pass whether or not the Worker answers CORS -------------------


def test_chromium_runs_headless_with_an_empty_profile_and_the_offline_flags(
    session: Session,
) -> None:
    boot = session.driver.boot
    assert boot["ready"] is True
    assert "HeadlessChrome/" in boot["userAgent"]
    assert boot["product"].startswith(("Chrome/", "HeadlessChrome/"))
    command_line = boot["commandLine"].split()
    assert set(boot["flags"]) <= set(command_line)
    assert f"--user-data-dir={session.profile}" in command_line


def test_each_page_loads_from_its_own_origin(session: Session) -> None:
    allowed, elsewhere = session.opened["allowed"], session.opened["elsewhere"]
    assert allowed["status"] == elsewhere["status"] == 200
    assert allowed["origin"] == session.page_server.origin
    assert elsewhere["origin"] == session.elsewhere.origin
    assert allowed["origin"] != elsewhere["origin"]  # another port: another origin
    assert allowed["title"] == "authpi-worker: a page on another origin"
    assert (
        session.page_server.paths[0]
        == session.elsewhere.paths[0]
        == (f"/page.html?worker={session.worker.url}")
    )


def test_a_same_origin_fetch_from_the_page_works(session: Session) -> None:
    call = session.call("allowed", "same-origin", "/page.html?probe", target="self", requests=0)
    assert call.result["ok"], call.why()
    assert (call.result["type"], call.result["status"]) == ("basic", 200)
    assert call.row[:2] == ["same-origin", "200"]  # the page shows what it got
    assert session.page_server.paths[-1] == "/page.html?probe"
    assert call.requests == []  # the Worker was not involved


def test_the_page_reaches_the_worker_across_origins(session: Session) -> None:
    # A no-cors GET: sent whatever the CORS policy, answered opaquely; the Worker's log is
    # the proof that the browser on one origin reached the Worker on the other.
    call = session.call("allowed", "no-cors-root", "/", mode="no-cors", requests=1)
    assert call.result["ok"], call.why()
    assert (call.result["type"], call.result["status"]) == ("opaque", 0)
    assert call.requests == ["GET / 200"]


# --- CORS, as the spec asks ------------------------------------------------------------------


def test_me_with_a_token_is_200_through_a_real_preflight_and_the_page_reads_the_json(
    session: Session,
) -> None:
    call = session.call("allowed", "me", "/me", token=session.tokens["reports"], requests=2)
    assert call.result["ok"], f"the browser blocked the call:\n{call.why()}"
    assert (call.result["type"], call.result["status"]) == ("cors", 200), call.why()
    assert call.result["json"] == {"sub": SUBJECT, "scope": "read:reports"}
    assert call.row[:3] == ["me", "200", call.result["bodyText"]]
    # An Authorization header makes it a non-simple request: the browser asked first.
    assert sorted(call.requests) == ["GET /me 200", "OPTIONS /me 204"], call.why()


def test_reports_without_the_scope_is_403_and_the_page_reads_www_authenticate(
    session: Session,
) -> None:
    token = session.tokens["profile"]
    call = session.call("allowed", "reports-no-scope", "/reports", token=token, requests=2)
    assert call.result["ok"], f"the browser blocked the call:\n{call.why()}"
    assert (call.result["type"], call.result["status"]) == ("cors", 403), call.why()
    assert call.result["json"] == {"error": "insufficient_scope"}
    challenge = f'Bearer error="insufficient_scope", scope="read:reports", {METADATA}'
    # Readable only because the Worker exposes it (Access-Control-Expose-Headers).
    assert call.result["wwwAuthenticate"] == challenge, call.why()
    assert "www-authenticate" in call.result["visibleHeaders"]
    assert call.row[1:4] == ["403", '{"error":"insufficient_scope"}', challenge]
    assert sorted(call.requests) == ["GET /reports 403", "OPTIONS /reports 204"], call.why()


def test_no_token_is_401_and_the_page_reads_the_challenge(session: Session) -> None:
    call = session.call("allowed", "me-no-token", "/me", requests=1)
    assert call.result["ok"], f"the browser blocked the call:\n{call.why()}"
    assert (call.result["type"], call.result["status"]) == ("cors", 401), call.why()
    assert call.result["json"] == {"error": "unauthorized"}
    challenge = f'Bearer {METADATA}, DPoP algs="ES256 Ed25519 EdDSA RS256", {METADATA}'
    assert call.result["wwwAuthenticate"] == challenge, call.why()
    assert call.row[1:4] == ["401", '{"error":"unauthorized"}', challenge]
    # No Authorization header: a simple request, no preflight; the answer itself must allow it.
    assert call.requests == ["GET /me 401"], call.why()


def test_a_page_from_a_disallowed_origin_is_blocked_by_the_browser(session: Session) -> None:
    token = session.tokens["reports"]
    call = session.call("elsewhere", "me-elsewhere", "/me", token=token, requests=1)
    # The page's script gets nothing but fetch's TypeError...
    assert not call.result["ok"], f"the browser let the call through:\n{call.why()}"
    assert call.result["error"]["name"] == "TypeError"
    assert call.row[4].startswith("TypeError: ")
    # ...because the Worker refused the preflight, and no GET followed it.
    assert call.requests == ["OPTIONS /me 403"], call.why()
    blocked = [m["text"] for m in call.messages if CORS_ERROR in m["text"]]
    assert blocked and session.elsewhere.origin in blocked[0], call.why()
    # Not the token: the same request with no Origin, outside a browser, is answered.
    direct = httpx.get(f"{session.worker.url}/me", headers={"authorization": f"Bearer {token}"})
    assert direct.status_code == 200
    assert session.worker.requests(1) == ["GET /me 200"]


def test_a_person_posts_json_across_origins_through_a_preflight_that_allows_content_type(
    session: Session,
) -> None:
    path = f"/orgs/{ORG}/reports"
    token = session.tokens["person"]
    call = session.call(
        "allowed",
        "create-report",
        path,
        token=token,
        method="POST",
        json={"title": "Q3"},
        requests=2,
    )
    assert call.result["ok"], f"the browser blocked the call:\n{call.why()}"
    assert (call.result["type"], call.result["status"]) == ("cors", 201), call.why()
    assert call.result["json"] == {"org": ORG, "title": "Q3", "created_by": "usr_spa"}
    # Authorization and a JSON content-type make it non-simple: the browser asked first, and
    # went on only because the preflight allowed POST and both headers.
    assert sorted(call.requests) == [f"OPTIONS {path} 204", f"POST {path} 201"], call.why()
    bad = session.call(
        "allowed", "create-report-bad", path, token=token, method="POST", json=["Q3"], requests=1
    )
    assert (bad.result["status"], bad.result["json"]) == (400, {"error": "invalid_request"})
    # The browser keeps the preflight's answer for Access-Control-Max-Age: no second OPTIONS.
    assert bad.requests == [f"POST {path} 400"], bad.why()


def test_a_post_from_a_disallowed_origin_is_blocked_at_its_preflight(session: Session) -> None:
    path = f"/orgs/{ORG}/reports"
    call = session.call(
        "elsewhere",
        "create-elsewhere",
        path,
        token=session.tokens["person"],
        method="POST",
        json={"title": "Q3"},
        requests=1,
    )
    assert not call.result["ok"], f"the browser let the call through:\n{call.why()}"
    assert call.requests == [f"OPTIONS {path} 403"], call.why()  # no POST followed


# --- Afterwards ------------------------------------------------------------------------------


def test_no_request_went_unaccounted_and_no_token_was_written_anywhere(session: Session) -> None:
    pages = {
        name: session.driver.command("html", page=name)["result"]
        for name in ("allowed", "elsewhere")
    }
    assert session.worker.stop() == 0
    assert session.worker.unread() == []  # every request line belongs to a step above
    written = {
        "driver stdout": "".join(session.driver.output),
        "driver stderr": session.driver.stderr.read_text(),
        "worker stdout": "\n".join(session.worker.lines),
        "worker stderr": session.worker.stderr.read_text(),
        **{f"page {name}": html for name, html in pages.items()},
    }
    leaks = [
        f"{kind} token in {where}"
        for where, text in written.items()
        for kind, token in session.tokens.items()
        if token in text
    ]
    assert leaks == []
