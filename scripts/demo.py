"""`make demo` and `make dev`: the local loop with real processes.

`make demo` starts the fake issuer (scripts/issuer) and the Worker (scripts/serve, allowing
CORS from DEMO_ORIGIN) on free ports, mints with scripts/get-token two clients' tokens, a
DPoP-bound one, a person's (a member of DEMO_ORG with reports:read and reports:write) and an
agent's, runs scripts/curl-matrix against the Worker (with its organization, preflight and
DPoP rows), stops both servers and exits with the matrix's status.

`make demo-fastapi` (--fastapi) runs the same matrix against the FastAPI example instead
(examples/fastapi, served by uvicorn): the same contract from the same checks.

`make dev` (--dev) starts the same two servers in the foreground (8787 and 9400 by default),
prints ready-to-paste `export TOKEN=...` lines and curl commands, and streams both logs until
Ctrl-C.

The servers run in their own process groups and are stopped in a `finally`, on Ctrl-C,
SIGTERM and SIGHUP alike; on Linux they also die if this process is killed outright.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType

from authpi_worker.testing.tokens import AUDIENCE
from scripts.local_issuer import DEFAULT_PORT as ISSUER_PORT
from scripts.local_issuer import KEYS_DIR
from tests.support.issuer import DEMO_ORG, OTHER_ORG, TOKEN_LIFETIME, default_clients

PROJECT = Path(__file__).resolve().parent.parent
SCRIPTS = PROJECT / "scripts"
READY = re.compile(rb" on (https?://\S+)")  # the first line of scripts/issuer and scripts/serve
READY_TIMEOUT = 120.0  # seconds; a fresh clone's scripts/serve may install .venv first
STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL
LOG_TAIL = 40  # lines of each server's output kept to explain a failure
SCOPED, UNSCOPED = "c_demo_reports", "c_demo_basic"  # tests.support.issuer.default_clients()
AGENT = "agt_demo_reader"  # the default agent: a member of DEMO_ORG
PERSON_ORG = f"{DEMO_ORG}=reports:read,reports:write"  # the person's membership, for --org
# The Worker's variables (as authpi_worker.config names them).
ISSUER_VAR, AUDIENCE_VAR, CORS_VAR = "AUTHPI_ISSUER_URL", "AUTHPI_AUDIENCE", "CORS_ALLOWED_ORIGINS"
# The demo's Worker takes these at their defaults, not from a developer's .dev.vars.
OTHER_VARS = ("AUTHPI_DPOP", "AUTHPI_RESOURCE", "AUTHPI_CLOCK_TOLERANCE")
WORKER_PORT = 8787  # scripts/serve's default, like wrangler dev
DEMO_ORIGIN = "http://localhost:5173"  # a browser app's origin (Vite's dev server) the demo allows
DPOP_KEY = PROJECT / ".local" / "dpop-key.pem"  # the demo client's DPoP key (gitignored)
FASTAPI_APP = PROJECT / "examples" / "fastapi" / "src"  # --fastapi: its api:app under uvicorn


class DemoError(Exception):
    """The demo could not get as far as running the matrix."""


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the demo dies, even by SIGKILL (Linux only)."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Service:
    """A server as a child process in its own process group, its output kept and drained."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        echo: Callable[[str], None] | None = None,
        stdin: int = subprocess.DEVNULL,  # subprocess.PIPE to send it commands
    ) -> None:
        self.name = name
        self.output: deque[str] = deque(maxlen=LOG_TAIL)
        self.url = ""
        self._pending = b""
        self._echo = echo  # every line of output, prefixed with the name (make dev)
        self._drain: threading.Thread | None = None
        # Started before any thread exists in this process: preexec_fn is safe then.
        self.process = subprocess.Popen(  # noqa: S603 - our own scripts, no shell
            list(argv),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,  # its own process group: Ctrl-C reaches us, and we stop it
            preexec_fn=_die_with_parent,
        )

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> str:
        """Read output until the line that announces the URL; the server listens by then."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while True:
            *lines, self._pending = self._pending.split(b"\n")
            for index, line in enumerate(lines):
                self._keep(line)
                found = READY.search(line)
                if found:
                    self._pending = b"\n".join([*lines[index + 1 :], self._pending])
                    self.url = found.group(1).decode()
                    return self.url
            left = deadline - time.monotonic()
            if left <= 0:
                raise DemoError(f"{self.name} did not start within {timeout:g} s")
            readable, _, _ = select.select([fd], [], [], left)
            chunk = os.read(fd, 65536) if readable else b""
            if readable and not chunk:
                raise DemoError(f"{self.name} exited before it was ready ({self.exit_text()})")
            self._pending += chunk

    def follow(self) -> None:
        """Keep reading the output in a thread (a full pipe would block the server)."""
        for line in self._pending.split(b"\n"):
            if line:
                self._keep(line)
        self._pending = b""
        self._drain = threading.Thread(target=self._read_all, daemon=True)
        self._drain.start()

    def _read_all(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._keep(line.rstrip(b"\n"))

    def _keep(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip("\r")
        self.output.append(line)
        if self._echo is not None:
            self._echo(f"{self.name:>6} | {line}")

    def exit_text(self) -> str:
        code = self.process.wait()
        return f"signal {-code}" if code < 0 else f"exit {code}"

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL if it lingers; always reaped."""
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, None)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break  # the group is empty
            try:
                self.process.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        self.process.wait()
        if self._drain is not None:
            self._drain.join(1)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def tail(self) -> str:
        return "\n".join(f"  {line}" for line in self.output)


def get_token(
    issuer: str,
    client_id: str | None,
    scope: str | None,
    dpop: Path | None = None,
    flags: Sequence[str] = (),
) -> str:
    """A token through scripts/get-token, exactly as a user would mint one; with dpop, a
    token bound to the key in that file; flags such as --agent, or --person (no client)."""
    env = {**os.environ, ISSUER_VAR: issuer}
    for name in ("SCOPE", "CLIENT_ID", "CLIENT_SECRET"):
        env.pop(name, None)
    if client_id is not None:
        env |= {"CLIENT_ID": client_id, "CLIENT_SECRET": default_clients()[client_id].secret}
    argv = [str(SCRIPTS / "get-token"), *(["--scope", scope] if scope else []), *flags]
    argv += ["--dpop", str(dpop)] if dpop is not None else []
    done = subprocess.run(  # noqa: S603
        argv, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        who = client_id or " ".join(flags)
        raise DemoError(f"scripts/get-token for {who} failed: {done.stderr.strip()}")
    return done.stdout.strip()


_OUTPUT = threading.Lock()  # make dev: the echo threads and the main thread write whole lines


def _say(text: str) -> None:
    """Print whole lines; under make dev another thread may be echoing a server's log."""
    with _OUTPUT:
        print(text, flush=True)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    # Ctrl-C raises KeyboardInterrupt even when started with SIGINT ignored (a background job);
    # SIGTERM and SIGHUP do the same. Every way out goes through the finally below.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    echo = _say if args.dev else None
    services: list[Service] = []
    try:
        issuer = Service(
            "issuer",
            [
                str(SCRIPTS / "issuer"),
                "serve",
                "--port",
                str(args.issuer_port),
                "--keys",
                str(args.keys),
                "--audience",
                AUDIENCE,
            ],
            os.environ,
            echo,
        )
        services.append(issuer)
        issuer_url = issuer.wait_ready()
        audience = args.audience or AUDIENCE
        worker_env = {
            **os.environ,
            **dict.fromkeys(OTHER_VARS, ""),  # empty: the default, whatever .dev.vars says
            ISSUER_VAR: issuer_url,
            AUDIENCE_VAR: audience,
            CORS_VAR: DEMO_ORIGIN,
        }
        serve = worker_command(args)
        worker = Service("worker", serve, worker_env, echo)
        services.append(worker)
        base_url = worker.wait_ready()
        for service in services:
            service.follow()

        _say(f"fake AuthPI issuer  {issuer_url}  (keys in {args.keys})")
        _say(f"worker              {base_url}  ({AUDIENCE_VAR}={audience})")
        token = get_token(issuer_url, SCOPED, "read:reports")
        token_no_scope = get_token(issuer_url, UNSCOPED, None)
        dpop_token = get_token(issuer_url, SCOPED, "read:reports", args.dpop_key)
        person = get_token(issuer_url, None, None, flags=("--person", "--org", PERSON_ORG))
        agent = get_token(issuer_url, AGENT, None, flags=("--agent",))
        _say(f"tokens              {SCOPED} (read:reports), {UNSCOPED} (without): get-token")
        _say(f"DPoP                {SCOPED}'s token bound to {args.dpop_key}: get-token --dpop")
        _say(f"person, agent       usr_demo and {AGENT} in {DEMO_ORG}: get-token --person, --agent")

        if args.dev:
            print_dev_help(issuer_url, base_url, token, token_no_scope, person, agent, args)
            while all(s.running for s in services):
                time.sleep(0.2)
            stopped = next(s for s in services if not s.running)
            print(f"{stopped.name} stopped ({stopped.exit_text()})", file=sys.stderr)
            return 1

        matrix_env = {
            **os.environ,
            "TOKEN": token,
            "TOKEN_NO_SCOPE": token_no_scope,
            "DPOP_TOKEN": dpop_token,
            "PERSON_TOKEN": person,
            "AGENT_TOKEN": agent,
            "ORG_ID": DEMO_ORG,
            "OTHER_ORG_ID": OTHER_ORG,
        }
        matrix = [str(SCRIPTS / "curl-matrix"), base_url, "--origin", DEMO_ORIGIN]
        matrix += ["--dpop", str(args.dpop_key)]
        done = subprocess.run(matrix, env=matrix_env, check=False)  # noqa: S603
        if done.returncode != 0:
            print(f"\nThe matrix failed. The worker's last lines:\n{worker.tail()}")
        return done.returncode
    except DemoError as error:
        print(f"demo: {error}", file=sys.stderr)
        for service in services:
            if service.output:
                print(f"{service.name} said:\n{service.tail()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: interrupted; stopping the servers", file=sys.stderr)
        return 130
    finally:
        # No second Ctrl-C may cut the cleanup short and leave a server behind.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for service in reversed(services):
            service.stop()


def worker_command(args: argparse.Namespace) -> list[str]:
    """scripts/serve, or with --fastapi the example's app under uvicorn (it prints the same
    ready line: "... running on http://127.0.0.1:PORT")."""
    if not args.fastapi:
        return [str(SCRIPTS / "serve"), "--port", str(args.port)]
    return [
        *(sys.executable, "-m", "uvicorn", "api:app", "--app-dir", str(FASTAPI_APP)),
        *("--host", "127.0.0.1", "--port", str(args.port)),
    ]


def print_dev_help(
    issuer_url: str,
    base_url: str,
    token: str,
    token_no_scope: str,
    person: str,
    agent: str,
    args: argparse.Namespace,
) -> None:
    clients = default_clients()
    keys_flag = "" if args.keys == KEYS_DIR else f" --keys {shlex.quote(str(args.keys))}"
    key = shlex.quote(str(args.dpop_key))
    proof = f"TOKEN=$DPOP_TOKEN scripts/dpop-proof --key {key} --url {base_url}/me"
    dpop_curl = f'curl -i {base_url}/me -H "Authorization: DPoP $DPOP_TOKEN" -H "DPoP: $({proof})"'
    mint = (
        f"CLIENT_ID={SCOPED} CLIENT_SECRET={clients[SCOPED].secret} "
        f"scripts/get-token --issuer {issuer_url} --scope read:reports"
    )
    mint_no_scope = (
        f"CLIENT_ID={UNSCOPED} CLIENT_SECRET={clients[UNSCOPED].secret} "
        f"scripts/get-token --issuer {issuer_url}"
    )
    bearer = '-H "Authorization: Bearer $TOKEN"'
    mint_person = f"scripts/get-token --issuer {issuer_url} --person --org {PERSON_ORG}"
    mint_agent = (
        f"CLIENT_ID={AGENT} CLIENT_SECRET={clients[AGENT].secret} "
        f"scripts/get-token --issuer {issuer_url} --agent"
    )
    orgs = f"{base_url}/orgs/$ORG_ID/reports"
    as_person, as_agent = (
        '-H "Authorization: Bearer $PERSON_TOKEN"',
        '-H "Authorization: Bearer $AGENT_TOKEN"',
    )
    report = """-H 'Content-Type: application/json' -d '{"title":"Q3"}'"""
    _say(
        f"""
Paste into another shell (from the project directory):

export AUTHPI_ISSUER_URL={issuer_url}
export TOKEN={token}
export TOKEN_NO_SCOPE={token_no_scope}
export PERSON_TOKEN={person}
export AGENT_TOKEN={agent}
export ORG_ID={DEMO_ORG} OTHER_ORG_ID={OTHER_ORG}

curl -i {base_url}/
curl -i {base_url}/me
curl -i {base_url}/me {bearer}
curl -i {base_url}/reports {bearer}
curl -i {base_url}/reports -H "Authorization: Bearer $TOKEN_NO_SCOPE"
curl -i {base_url}/.well-known/oauth-protected-resource
curl -i {orgs} {as_person}
curl -i {orgs} {as_agent}
curl -i {base_url}/orgs/$OTHER_ORG_ID/reports {as_person}
curl -i -X POST {orgs} {as_agent} {report}
curl -i -X POST {orgs} {as_person} {report}
curl -i -X OPTIONS {base_url}/me -H "Origin: {DEMO_ORIGIN}" -H "Access-Control-Request-Method: GET"
scripts/curl-matrix {base_url} --origin {DEMO_ORIGIN}

A DPoP-bound token, and a fresh proof for each request:
export DPOP_TOKEN=$({mint} --dpop {key})
{dpop_curl}

Tokens last {TOKEN_LIFETIME} s; fresh ones:
export TOKEN=$({mint})
export TOKEN_NO_SCOPE=$({mint_no_scope})
export PERSON_TOKEN=$({mint_person})
export AGENT_TOKEN=$({mint_agent})

Rotate the signing key: scripts/issuer rotate{keys_flag}
Ctrl-C stops both servers.
"""
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.demo",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dev", action="store_true", help="keep both servers in the foreground")
    parser.add_argument(
        "--fastapi", action="store_true", help="serve examples/fastapi with uvicorn instead"
    )
    parser.add_argument("--port", type=int, help="the worker's port (demo: free, dev: 8787)")
    parser.add_argument("--issuer-port", type=int, help="the issuer's port (demo: free, dev: 9400)")
    parser.add_argument("--keys", type=Path, default=KEYS_DIR, help="the issuer's key directory")
    parser.add_argument(
        "--dpop-key", type=Path, default=DPOP_KEY, help="the demo client's DPoP key file"
    )
    parser.add_argument(
        "--audience",
        default=os.environ.get("DEMO_AUDIENCE"),
        help="the worker's AUTHPI_AUDIENCE (default: the tokens' aud); another fails the matrix",
    )
    args = parser.parse_args(argv)
    if args.port is None:
        args.port = WORKER_PORT if args.dev else 0
    if args.issuer_port is None:
        args.issuer_port = ISSUER_PORT if args.dev else 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
