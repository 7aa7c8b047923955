"""Load: N concurrent clients through scripts/serve, every answer checked exactly.

    make load
    PYTHONPATH=src python -m scripts.load [--clients 16] [--requests 250] [--burst 200]
                                          [--seed 1] [--in-process] [--time-limit 120]

A fake issuer (tests/support/issuer.py) runs in this process; the Worker runs as
`scripts/serve` (or, with --in-process, its server in this process). Each client thread keeps
one HTTP/1.1 connection on 127.0.0.1 and sends a seeded random mix of requests with valid,
expired and forged tokens, all made by tests/support/tokens.py. Every answer must be exactly
the expected status, body bytes and WWW-Authenticate challenge for its kind of token.

First a cold burst: --burst clients, each on its own connection, send one valid request at
the same moment to the fresh Worker, whose key set is still empty; it reports how many JWKS
fetches that cost (one: the first request fetches, the others wait for its result). Then the
load itself. It prints a table of counts, the throughput and latencies, and the issuer's JWKS
fetch count. Exit status: 0 when every answer was right; 1 on any wrong answer, transport
error, the time limit, or more JWKS fetches than the policy allows; 2 when the servers could
not start.

This is a benchmark-style check with bounded counts and time, not a timed test: the numbers
depend on the machine, and the clients share it with the server.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from authpi_worker.jwks import COOLDOWN, JWKS_MAX_AGE
from authpi_worker.testing.keys import make_key
from authpi_worker.testing.tokens import (
    AUDIENCE,
    claims,
    edit_signature,
    header,
    mint,
    sign,
    with_payload,
)
from tests.support.issuer import FakeIssuer, running
from tests.support.logs import logged

PROJECT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
REPORTS_SCOPE = "read:reports"
MAX_CLIENTS = 256
COLD_BURST_FETCHES = 1  # a burst on a cold isolate: the first request fetches, the rest wait
MAX_REQUESTS = 100_000  # per client
MAX_TIME_LIMIT = 3600.0  # seconds
REQUEST_TIMEOUT = 30.0  # seconds for one answer
READY_TIMEOUT = 120.0  # seconds; a fresh clone's scripts/serve may install .venv first
STOP_TIMEOUT = 5.0  # seconds between SIGINT and SIGKILL
READY = re.compile(r"^authpi-worker on (http://\S+)")  # scripts/serve's first line
SHOWN_PROBLEMS = 10
SERVER_TAIL = 40  # lines of the server's output kept to explain a failure
# RFC 9728 §5.1: every challenge points to the metadata of the resource (the audience here).
METADATA = f'resource_metadata="{AUDIENCE}/.well-known/oauth-protected-resource"'
DPOP_ALGS = 'algs="ES256 Ed25519 EdDSA RS256"'


class LoadError(Exception):
    """The load could not start: a server did not come up."""


@dataclass(frozen=True)
class Probe:
    """One request and the one right answer to it."""

    kind: str
    path: str
    authorization: str | None
    status: int
    body: bytes  # exactly, as the quickstart's Response.json() writes it
    challenge: str | None = None  # WWW-Authenticate, or None when there must be none


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def _invalid(kind: str, path: str, token: str, description: str) -> Probe:
    challenge = f'Bearer error="invalid_token", error_description="{description}", {METADATA}'
    return Probe(kind, path, f"Bearer {token}", 401, _json({"error": "unauthorized"}), challenge)


@dataclass(frozen=True)
class Kind:
    name: str
    weight: int  # relative frequency in the mix
    probes: list[Probe]


def build_kinds(issuer: FakeIssuer, pool: int) -> list[Kind]:
    """`pool` requests of each kind; their tokens repeat, so the token cache is exercised too."""
    keys = issuer.keys  # one per algorithm: every kind cycles through them
    # Same kid and algorithm as a published key, but a private key the issuer never had.
    forgers = {key.kid: make_key(key.alg, key.kid) for key in keys}
    unpublished = make_key("ES256")
    now = int(time.time())
    url, audience = issuer.url, issuer.audience

    def each(make: Callable[[int], Probe]) -> list[Probe]:
        return [make(i) for i in range(pool)]

    def valid(i: int, path: str) -> Probe:
        sub = f"load-client-{i}"
        token = issuer.mint(keys[i % len(keys)], sub=sub, scope=f"read:profile {REPORTS_SCOPE}")
        body = (
            {"sub": sub, "scope": f"read:profile {REPORTS_SCOPE}"}
            if path == "/me"
            else {"reports": [], "requested_by": sub}
        )
        return Probe(f"valid {path}", path, f"Bearer {token}", 200, _json(body))

    def no_scope(i: int) -> Probe:
        token = issuer.mint(keys[i % len(keys)], scope="read:profile")
        challenge = f'Bearer error="insufficient_scope", scope="{REPORTS_SCOPE}", {METADATA}'
        body = _json({"error": "insufficient_scope"})
        return Probe("valid, no scope", "/reports", f"Bearer {token}", 403, body, challenge)

    def expired(i: int) -> Probe:
        token = issuer.mint(keys[i % len(keys)], iat=now - 7200, exp=now - 3600)
        return _invalid("expired", "/me", token, "token expired")

    def signature_edited(i: int) -> Probe:
        token = edit_signature(issuer.mint(keys[i % len(keys)]), position=i)
        return _invalid("forged: signature edited", "/me", token, "signature verification failed")

    def payload_swapped(i: int) -> Probe:
        token = issuer.mint(keys[i % len(keys)], scope="read:profile")
        forged = with_payload(token, claims(url, audience, scope=REPORTS_SCOPE))
        description = "signature verification failed"
        return _invalid("forged: scope added", "/reports", forged, description)

    def wrong_key(i: int) -> Probe:
        key = keys[i % len(keys)]
        token = mint(forgers[key.kid], url, audience)
        description = "signature verification failed"
        return _invalid("forged: other key, real kid", "/me", token, description)

    def alg_none(i: int) -> Probe:
        key = keys[i % len(keys)]
        token = sign(key, header(key, alg="none"), claims(url, audience))
        return _invalid("forged: alg none", "/me", token, "algorithm not allowed")

    def unknown_kid(i: int) -> Probe:
        token = mint(unpublished, url, audience)
        return _invalid("forged: unknown kid", "/me", token, "no key for this token")

    def no_token(i: int) -> Probe:
        body = _json({"error": "unauthorized"})
        challenge = f"Bearer {METADATA}, DPoP {DPOP_ALGS}, {METADATA}"
        return Probe("no token", "/me", None, 401, body, challenge)

    return [
        Kind("valid /me", 6, each(lambda i: valid(i, "/me"))),
        Kind("valid /reports", 6, each(lambda i: valid(i, "/reports"))),
        Kind("valid, no scope", 2, each(no_scope)),
        Kind("expired", 3, each(expired)),
        Kind("forged: signature edited", 2, each(signature_edited)),
        Kind("forged: scope added", 2, each(payload_swapped)),
        Kind("forged: other key, real kid", 2, each(wrong_key)),
        Kind("forged: alg none", 1, each(alg_none)),
        Kind("forged: unknown kid", 1, each(unknown_kid)),
        Kind("no token", 1, each(no_token)),
    ]


def check(probe: Probe, status: int, headers: dict[str, str], body: bytes) -> str | None:
    """What is wrong with this answer, or None when it is exactly right."""
    problems = []
    if status != probe.status:
        problems.append(f"status {status}, expected {probe.status}")
    if body != probe.body:
        problems.append(f"body {body[:120]!r}, expected {probe.body!r}")
    if headers.get("content-type") != "application/json":
        problems.append(f"content-type {headers.get('content-type')!r}")
    if headers.get("www-authenticate") != probe.challenge:
        problems.append(
            f"WWW-Authenticate {headers.get('www-authenticate')!r}, expected {probe.challenge!r}"
        )
    if "retry-after" in headers:
        problems.append(f"Retry-After {headers['retry-after']!r}: the JWKS was unavailable")
    return "; ".join(problems) or None


@dataclass
class Tally:
    """One client's results; merged after the run."""

    sent: Counter[str] = field(default_factory=Counter)
    right: Counter[str] = field(default_factory=Counter)
    wrong: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    stopped_early: bool = False

    def add(self, other: Tally) -> None:
        self.sent.update(other.sent)
        self.right.update(other.right)
        self.wrong.update(other.wrong)
        self.errors.update(other.errors)
        self.problems.extend(other.problems)
        self.latencies.extend(other.latencies)
        self.stopped_early = self.stopped_early or other.stopped_early


def ask(connection: http.client.HTTPConnection, probe: Probe) -> tuple[int, dict[str, str], bytes]:
    headers = {"authorization": probe.authorization} if probe.authorization is not None else {}
    connection.request("GET", probe.path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body


def client(
    base: str,
    kinds: list[Kind],
    requests: int,
    rng: random.Random,
    start: threading.Barrier,
    deadline: list[float],
) -> Tally:
    """One client: `requests` requests on one keep-alive connection, each answer checked."""
    tally = Tally()
    parts = urlsplit(base)
    assert parts.hostname == LOOPBACK and parts.port is not None
    connection = http.client.HTTPConnection(LOOPBACK, parts.port, timeout=REQUEST_TIMEOUT)
    weights = [kind.weight for kind in kinds]
    try:
        connection.connect()  # before the start: a burst of connects is not the thing measured
    except OSError as error:
        tally.errors["connect"] += 1
        tally.problems.append(f"connect: {type(error).__name__}: {error}")
    start.wait()
    try:
        for _ in range(requests):
            if time.monotonic() > deadline[0]:
                tally.stopped_early = True
                break
            probe = rng.choice(rng.choices(kinds, weights)[0].probes)
            tally.sent[probe.kind] += 1
            began = time.perf_counter()
            try:
                status, headers, body = ask(connection, probe)
            except (OSError, http.client.HTTPException) as error:
                tally.errors[probe.kind] += 1
                tally.problems.append(f"{probe.kind}: {type(error).__name__}: {error}")
                connection.close()  # the next request opens a new connection
                continue
            tally.latencies.append(time.perf_counter() - began)
            problem = check(probe, status, headers, body)
            if problem is None:
                tally.right[probe.kind] += 1
            else:
                tally.wrong[probe.kind] += 1
                tally.problems.append(f"{probe.kind} GET {probe.path}: {problem}")
    finally:
        connection.close()
    return tally


def run_clients(
    base: str, kinds: list[Kind], clients: int, requests: int, seed: int, time_limit: float
) -> tuple[Tally, float]:
    """All clients at once (released together by a barrier); the merged tally and wall time."""
    start = threading.Barrier(clients + 1, timeout=READY_TIMEOUT)
    deadline = [float("inf")]  # set when the clients are released
    results: list[Tally] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        rng = random.Random(f"{seed}/{index}")
        try:
            tally = client(base, kinds, requests, rng, start, deadline)
        except Exception as error:  # a bug in the client itself: count it, never hang
            start.abort()  # nobody waits for a client that will never arrive
            tally = Tally(problems=[f"client {index}: {type(error).__name__}: {error}"])
            tally.errors["client"] += 1
        with lock:
            results.append(tally)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    deadline[0] = time.monotonic() + time_limit
    began = time.perf_counter()
    with contextlib.suppress(threading.BrokenBarrierError):  # a client failed: reported below
        start.wait()
    for thread in threads:
        thread.join(time_limit + REQUEST_TIMEOUT)
    elapsed = time.perf_counter() - began
    merged = Tally()
    for tally in results:
        merged.add(tally)
    if len(results) != clients:
        merged.stopped_early = True
        merged.problems.append(f"{clients - len(results)} client(s) did not finish")
    return merged, elapsed


class ServeProcess:
    """scripts/serve as a child process in its own session; its output drained, tail kept."""

    def __init__(self, issuer: FakeIssuer) -> None:
        env = {
            **os.environ,
            "AUTHPI_ISSUER_URL": issuer.url,
            "AUTHPI_AUDIENCE": issuer.audience,
            "AUTHPI_CLOCK_TOLERANCE": "0",  # whatever .dev.vars says
        }
        self.output: deque[str] = deque(maxlen=SERVER_TAIL)
        self._ready: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(  # noqa: S603 - our own script, no shell
            [str(PROJECT / "scripts" / "serve"), "--host", LOOPBACK, "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # a Ctrl-C on the terminal is ours to handle, not its
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        announced = False
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip()
            self.output.append(line)
            found = READY.match(line)
            if found and not announced:
                announced = True
                self._ready.put(found.group(1))
        self._ready.put(None)  # the output ended: the process exited

    def wait_ready(self) -> str:
        try:
            url = self._ready.get(timeout=READY_TIMEOUT)
        except queue.Empty:
            raise LoadError(f"scripts/serve did not start within {READY_TIMEOUT:g} s") from None
        if url is None:
            raise LoadError(f"scripts/serve exited before it was ready:\n{self.tail()}")
        return url

    def tail(self) -> str:
        return "\n".join(f"  | {line}" for line in self.output)

    def stop(self) -> None:
        """SIGINT (scripts/serve execs Python: it stops cleanly), SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(STOP_TIMEOUT)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextlib.contextmanager
def serve(issuer: FakeIssuer, in_process: bool) -> Iterator[tuple[str, Callable[[], str]]]:
    """The Worker's base URL on loopback, and a function giving its recent output."""
    if not in_process:
        process = ServeProcess(issuer)
        try:
            yield process.wait_ready(), process.tail
        finally:
            process.stop()
        return
    from authpi_worker.config import AUDIENCE_VAR, ISSUER_VAR
    from scripts.local_worker import LocalWorker, make_server

    worker = LocalWorker({ISSUER_VAR: issuer.url, AUDIENCE_VAR: issuer.audience})
    server = make_server(worker, 0, LOOPBACK)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        # make_server prints one line per request, and the Worker logs one per refusal: not
        # thousands of them on the terminal.
        with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), logged():
            yield f"http://{LOOPBACK}:{server.server_address[1]}", lambda: ""
    finally:
        server.shutdown()
        server.server_close()
        worker.loop.call_soon_threadsafe(worker.loop.stop)


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def report(
    kinds: list[Kind],
    tally: Tally,
    elapsed: float,
    fetches: int,
    allowed_fetches: int,
    burst_ok: bool = True,
) -> bool:
    """Print the table and the verdict (the cold burst's included); True when everything was
    right."""
    paths = {kind.name: kind.probes[0] for kind in kinds}
    width = max(len(kind.name) for kind in kinds)
    print(f"{'kind':<{width}}  {'request':<13} {'answer':>6} {'sent':>7} {'right':>7} {'wrong':>6}")
    for kind in kinds:
        probe = paths[kind.name]
        sent, right = tally.sent[kind.name], tally.right[kind.name]
        print(
            f"{kind.name:<{width}}  GET {probe.path:<9} {probe.status:>6} {sent:>7} {right:>7}"
            f" {sent - right:>6}"
        )
    sent, right = sum(tally.sent.values()), sum(tally.right.values())
    errors = sum(tally.errors.values())
    print(f"{'total':<{width}}  {'':<13} {'':>6} {sent:>7} {right:>7} {sent - right:>6}")
    latencies = sorted(tally.latencies)
    ms = {p: percentile(latencies, p) * 1000 for p in (0.5, 0.95, 0.99, 1.0)}
    print(
        f"{sent} requests in {elapsed:.2f} s: {sent / elapsed if elapsed else 0:.0f} req/s;"
        f" latency p50 {ms[0.5]:.1f} ms, p95 {ms[0.95]:.1f} ms, p99 {ms[0.99]:.1f} ms,"
        f" max {ms[1.0]:.1f} ms"
    )
    print(f"JWKS fetches by the Worker: {fetches} (at most {allowed_fetches} allowed)")
    ok = burst_ok
    if tally.problems:
        ok = False
        wrong = sum(tally.wrong.values())
        print(f"\n{wrong} wrong answer(s), {errors} transport error(s); the first ones:")
        for problem in tally.problems[:SHOWN_PROBLEMS]:
            print(f"  {problem}")
    if tally.stopped_early:
        ok = False
        print("\nthe time limit ran out before every client finished")
    if fetches > allowed_fetches:
        ok = False
        print(f"\n{fetches} JWKS fetches: more than the cache policy allows ({allowed_fetches})")
    print("\nOK: every answer exactly right" if ok else "\nFAILED")
    return ok


def report_burst(tally: Tally, elapsed: float, fetches: int) -> bool:
    """Print the cold burst's line; True when every answer was right and it cost no more
    fetches than COLD_BURST_FETCHES."""
    sent, right = sum(tally.sent.values()), sum(tally.right.values())
    print(
        f"cold burst: {sent} concurrent requests on a fresh Worker: {fetches} JWKS fetch(es)"
        f" (at most {COLD_BURST_FETCHES} allowed); {right}/{sent} right in {elapsed:.2f} s",
        flush=True,
    )
    for problem in tally.problems[:SHOWN_PROBLEMS]:
        print(f"  {problem}")
    ok = not tally.problems and not tally.stopped_early and fetches <= COLD_BURST_FETCHES
    print("" if ok else "the cold burst FAILED\n")
    return ok


def bounded(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts.load", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--clients", type=bounded(int, 1, MAX_CLIENTS), default=16)
    parser.add_argument(
        "--requests", type=bounded(int, 1, MAX_REQUESTS), default=250, help="per client"
    )
    parser.add_argument("--pool", type=bounded(int, 1, 1000), default=24, help="tokens per kind")
    parser.add_argument(
        "--burst",
        type=bounded(int, 1, MAX_CLIENTS),
        default=200,
        help="clients of the cold burst, one request each",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--time-limit", type=bounded(float, 1, MAX_TIME_LIMIT), default=120.0, help="seconds"
    )
    parser.add_argument(
        "--in-process", action="store_true", help="run scripts/serve's server in this process"
    )
    args = parser.parse_args(argv)

    # The issuer's keys, one per algorithm; the token kinds cycle through them.
    issuer = FakeIssuer(keys=[make_key(alg) for alg in ("EdDSA", "RS256", "ES256")])
    with running(issuer):
        kinds = build_kinds(issuer, args.pool)
        where = "in this process" if args.in_process else "scripts/serve"
        print(
            f"load: a cold burst of {args.burst}, then {args.clients} clients x"
            f" {args.requests} requests through {where},"
            f" fake issuer at {issuer.url}, seed {args.seed}",
            flush=True,
        )
        try:
            with serve(issuer, args.in_process) as (base, server_output):
                began = time.monotonic()  # from before the first JWKS fetch: see `allowed`
                # The cold burst: the Worker's first requests, all at once, all needing keys.
                burst, burst_elapsed = run_clients(
                    base, kinds[:1], args.burst, 1, args.seed, args.time_limit
                )
                burst_fetches = issuer.jwks_hits
                tally, elapsed = run_clients(
                    base, kinds, args.clients, args.requests, args.seed, args.time_limit
                )
                span = time.monotonic() - began
                last_lines = server_output()
        except LoadError as error:
            print(f"load: {error}", file=sys.stderr)
            return 2
    # One fetch for the cold burst; then unknown kids may refetch once per cooldown, and the
    # set is refreshed when its max-age (the fake issuer's 600 s) runs out.
    allowed = COLD_BURST_FETCHES + int(span // COOLDOWN) + int(span // JWKS_MAX_AGE)
    burst_ok = report_burst(burst, burst_elapsed, burst_fetches)
    if report(kinds, tally, elapsed, issuer.jwks_hits, allowed, burst_ok):
        return 0
    if last_lines:
        print(f"the server's last lines:\n{last_lines}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
