"""The Worker under CPython: the same core as src/entry.py behind a local HTTP server.

Only the runtime adapter differs: httpx fetches the JWKS instead of the Workers fetch API,
and the configuration is read the way wrangler dev reads it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
import pyjson5

from app import ROUTES
from authpi_worker import Fetched, Isolate, Request, dispatch
from authpi_worker.config import AUDIENCE_VAR, ISSUER_VAR, VARS

PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_PORT = 8787  # wrangler dev's port
REQUEST_TIMEOUT = 30  # seconds a local request may take before the server gives up
MAX_BODY = 1 << 20  # bytes of a request body read; Workers' own limit is far higher
# A Host header as browsers and curl send it; anything else is answered as if it named the
# address we listen on (workerd, too, only ever hands the Worker a parsed URL).
_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


async def httpx_fetcher(url: str, edge_ttl: int | None) -> Fetched:
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
    it); an unusable Host is taken as the address we listen on."""
    authority = host if host is not None and _HOST.fullmatch(host) else listening
    return f"http://{authority}{target if target.startswith('/') else '/' + target}"


def make_server(worker: LocalWorker, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # small keep-alive replies would otherwise wait ~40 ms

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request is written by _serve

        def _serve(self) -> None:
            started = time.perf_counter()
            length = int(self.headers.get("content-length") or 0)
            payload = self.rfile.read(min(length, MAX_BODY)) if length else b""

            async def body() -> bytes:
                return payload

            host, port = cast(tuple[str, int], self.server.server_address)[:2]
            header = self.headers.get
            request = Request(
                self.command,
                request_url(header("host"), self.path, f"{host}:{port}"),
                authorization=header("authorization"),
                # Repeated fields joined with ", ", as the Fetch standard's Headers.get does.
                dpop=", ".join(self.headers.get_all("dpop") or ()) or None,
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
            self.end_headers()
            self.wfile.write(data)
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
