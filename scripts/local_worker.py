"""The Worker under CPython: the same core as src/entry.py behind a local HTTP server.

Only the runtime adapter differs: httpx fetches the JWKS instead of the Workers fetch API,
and the configuration is read the way wrangler dev reads it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Mapping
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import pyjson5

from app import ROUTES
from authpi_worker import Edge, Fetched, Isolate, Request, dispatch
from authpi_worker.config import AUDIENCE_VAR, ISSUER_VAR, VARS
from authpi_worker.metadata import plain_host

PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 8787  # wrangler dev's port
REQUEST_TIMEOUT = 30  # seconds a local request may take before the server gives up
# Bytes of a request body taken; more is a 413, as Cloudflare answers over its plan's limit
# (100 MB and up): the local server holds a body in memory, and no route here needs a big one.
MAX_BODY = 1 << 20
MAX_CHUNK_LINE = 4096  # bytes of a chunk-size line or a trailer line (RFC 9112 §7.1)
MAX_TRAILERS = 64  # trailer lines after the last chunk; they are read and dropped
# The JSON `error` of the refusals the server makes itself, before the Worker sees a request.
ERRORS: dict[int, str] = {
    HTTPStatus.BAD_REQUEST: "bad_request",
    HTTPStatus.REQUEST_TIMEOUT: "request_timeout",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "content_too_large",  # RFC 9110's name for 413
    HTTPStatus.NOT_IMPLEMENTED: "not_implemented",
}
_DIGITS = re.compile(r"[0-9]+")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]+)[ \t]*(?:;[^\r\n]*)?\r?\n")


class BadRequest(Exception):
    """A request the server refuses before the Worker sees it: its status (400, 413, 501)."""

    def __init__(self, status: HTTPStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status


def joined(headers: Message, name: str) -> str | None:
    """A request header as the Fetch standard's Headers.get gives it to a Worker: repeated
    fields joined with ", " (so two Authorization headers are one malformed value)."""
    values = headers.get_all(name)
    return ", ".join(values) if values else None


def request_body(headers: Message, stream: BufferedIOBase, limit: int = MAX_BODY) -> bytes:
    """The body as RFC 9112 §6 frames it: chunked, or Content-Length bytes, or none. A length
    that cannot be trusted is a 400 before anything is read; a body over limit is a 413."""
    codings = joined(headers, "transfer-encoding")
    if codings is not None:
        if headers.get_all("content-length"):  # request smuggling's favourite pair (§6.3)
            raise BadRequest(HTTPStatus.BAD_REQUEST, "Content-Length with Transfer-Encoding")
        names = [coding.strip().lower() for coding in codings.split(",")]
        if names[-1] != "chunked" or names.count("chunked") > 1 or "" in names:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "the body's length is unknowable")
        if names != ["chunked"]:
            raise BadRequest(HTTPStatus.NOT_IMPLEMENTED, "a transfer coding we do not decode")
        return _chunked(stream, limit)
    length = declared_length(headers, limit)
    data = stream.read(length) if length else b""
    if len(data) < length:
        raise BadRequest(HTTPStatus.BAD_REQUEST, "the body is shorter than Content-Length")
    return data


def declared_length(headers: Message, limit: int = MAX_BODY) -> int:
    """Content-Length: digits only, the same value however often repeated (§6.3), at most
    limit; 0 when absent."""
    lines = headers.get_all("content-length")
    if not lines:
        return 0
    values = {value.strip() for line in lines for value in line.split(",")}
    if len(values) != 1 or not _DIGITS.fullmatch(value := values.pop()):
        raise BadRequest(HTTPStatus.BAD_REQUEST, "an invalid Content-Length")
    if len(value.lstrip("0")) > len(str(limit)) or int(value) > limit:
        raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "the body is over the cap")
    return int(value)


def _chunked(stream: BufferedIOBase, limit: int) -> bytes:
    """RFC 9112 §7.1: hex-sized chunks (extensions ignored), a last chunk of 0, trailers."""
    body = bytearray()
    while True:
        line = stream.readline(MAX_CHUNK_LINE + 1)
        size = _CHUNK_SIZE.fullmatch(line)
        if size is None:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "a malformed chunk size")
        digits = size.group(1).lstrip(b"0")
        if len(digits) > len(f"{limit:x}") or len(body) + int(digits or b"0", 16) > limit:
            raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "the body is over the cap")
        if not digits:
            break
        wanted = int(digits, 16)
        data = stream.read(wanted)
        if len(data) < wanted or stream.readline(3) not in (b"\r\n", b"\n"):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "a malformed chunk")
        body += data
    for _ in range(MAX_TRAILERS):
        line = stream.readline(MAX_CHUNK_LINE + 1)
        if line in (b"\r\n", b"\n"):
            return bytes(body)
        if not line.endswith(b"\n"):
            break
    raise BadRequest(HTTPStatus.BAD_REQUEST, "malformed trailers")


async def httpx_fetcher(url: str, edge: Edge) -> Fetched:
    """The JWKS over real HTTP from CPython (there is no edge cache here to use or bypass)."""
    async with httpx.AsyncClient(follow_redirects=False) as client:
        response = await client.get(url, headers={"accept": "application/json"})
        headers = response.headers
        return Fetched(
            response.status_code, response.content, headers.get("cache-control"), headers.get("age")
        )


def load_vars(project: Path = PROJECT, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """wrangler.jsonc `vars`, overridden by .dev.vars, overridden by the process environment."""
    merged: dict[str, str] = {}
    config = pyjson5.decode((project / "wrangler.jsonc").read_text())
    merged.update({k: str(v) for k, v in config.get("vars", {}).items()})
    dev_vars = project / ".dev.vars"
    if dev_vars.exists():
        merged.update(parse_dev_vars(dev_vars.read_text()))
    merged.update({k: environ[k] for k in VARS if k in environ})
    return merged


def parse_dev_vars(text: str) -> dict[str, str]:
    """The dotenv format of .dev.vars: KEY=value lines, # comments, optional quotes."""
    result = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        result[name.strip()] = value
    return result


class LocalWorker:
    """One event loop thread owns the isolate state; HTTP threads hand requests to it."""

    def __init__(self, variables: Mapping[str, str]) -> None:
        self.variables = dict(variables)
        self.isolate = Isolate(httpx_fetcher)
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def answer(self, request: Request) -> tuple[int, str, dict[str, str]]:
        coroutine = dispatch(ROUTES, request, self.isolate, self.variables.get)
        reply = asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(REQUEST_TIMEOUT)
        return reply.status, reply.body, reply.headers


def request_url(host: str | None, target: str, listening: str) -> str:
    """The URL the Worker sees, built from the Host header as Workers does (DPoP proofs name
    it); an unusable Host (metadata.plain_host) is taken as the address we listen on, as
    workerd, too, only ever hands the Worker a parsed URL."""
    authority = host if host is not None and plain_host(host) else listening
    return f"http://{authority}{target if target.startswith('/') else '/' + target}"


def make_server(worker: LocalWorker, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # small keep-alive replies would otherwise wait ~40 ms
        timeout = REQUEST_TIMEOUT  # a client that stops sending mid-request is let go

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request is written by _serve

        # The standard library's own refusals (a bad request line, headers too long, an
        # unknown method) in JSON like every other answer, never with the client's text.
        error_content_type = "application/json"
        error_message_format = '{"error":"%(explain)s"}'

        def send_error(
            self, code: int, message: str | None = None, explain: str | None = None
        ) -> None:
            name = ERRORS.get(code) or HTTPStatus(code).phrase.lower().replace(" ", "_")
            super().send_error(code, None, name)

        def handle_expect_100(self) -> bool:
            """Invite the body only when it will be taken: else the refusal comes instead."""
            try:
                declared_length(self.headers)
            except BadRequest:
                return True
            return super().handle_expect_100()

        def _serve(self) -> None:
            started = time.perf_counter()
            try:
                if len(self.headers.get_all("host") or ()) > 1:  # RFC 9112 §3.2
                    raise BadRequest(HTTPStatus.BAD_REQUEST, "more than one Host")
                payload = request_body(self.headers, self.rfile)
            except BadRequest as refused:
                self.send_error(refused.status)
                self._log(refused.status, started)
                return
            except TimeoutError:
                self.send_error(HTTPStatus.REQUEST_TIMEOUT)
                self._log(HTTPStatus.REQUEST_TIMEOUT, started)
                return

            async def body() -> bytes:
                return payload

            host, port = cast(tuple[str, int], self.server.server_address)[:2]
            header = functools.partial(joined, self.headers)
            request = Request(
                self.command,
                request_url(header("host"), self.path, f"{host}:{port}"),
                authorization=header("authorization"),
                dpop=header("dpop"),
                origin=header("origin"),
                access_control_request_method=header("access-control-request-method"),
                body=body,
                content_length=header("content-length"),
            )
            status, text, headers = worker.answer(request)
            data = text.encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            if self.command != "HEAD":  # RFC 9110 §8.6: a HEAD's length would be the GET's
                self.send_header("content-length", str(len(data)))
            self._log(status, started)  # before the client can see the answer: a test that
            self.end_headers()  # stops the server right after it must find the line
            self.wfile.write(data)

        def _log(self, status: int, started: float) -> None:
            elapsed = (time.perf_counter() - started) * 1000
            print(f"{self.command} {urlsplit(self.path).path} {status} {elapsed:.1f}ms", flush=True)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128  # the default 5 stalls a burst of new connections for 1 s

    return Server((host, port), Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/serve", description=__doc__)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    variables = load_vars()
    try:
        server = make_server(LocalWorker(variables), args.port, args.host)
    except OSError as error:
        print(
            f"scripts/serve: cannot listen on {args.host}:{args.port}: {error.strerror}",
            file=sys.stderr,
        )
        return 1
    shown = ", ".join(f"{k}={variables.get(k)}" for k in (ISSUER_VAR, AUDIENCE_VAR))
    print(f"authpi-worker on http://{args.host}:{server.server_address[1]} ({shown})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
