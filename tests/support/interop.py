"""The interoperability harness: independent implementations against our Worker.

panva's oidc-provider is the authorization server (tests/interop/authorization_server.mjs) and
oauth4webapi the client (tests/interop/client.mjs), both in Node; the Worker is scripts/serve.
All of them are real processes on 127.0.0.1, started with scripts.demo.Service (own process
group, output drained and kept, stopped with SIGTERM then SIGKILL).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.demo import DemoError, Service
from tests.support import node
from tests.support.node import package_versions

PROJECT = Path(__file__).resolve().parent.parent.parent
INTEROP = PROJECT / "tests" / "interop"
PACKAGES = ("oidc-provider", "oauth4webapi", "jose")
TIMEOUT = 60.0  # seconds for a client run; a few hundred milliseconds is usual


MIN_NODE = 22  # oidc-provider 9 warns "Unsupported runtime" on Node 20


class InteropError(Exception):
    """The harness cannot run: a server did not start. The tests fail with it (never skip)."""


def find_node() -> str:
    """The Makefile's Node, with oidc-provider, oauth4webapi and jose beside it (NoNode)."""
    package_versions(*PACKAGES)
    return node.find_node(MIN_NODE, "oidc-provider 9")


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str
    alg: str  # how oidc-provider signs this client's access tokens


class AuthorizationServer:
    """oidc-provider on a free port, one confidential client per token signing alg."""

    def __init__(self, node: str, algs: Sequence[str]) -> None:
        argv = [node, str(INTEROP / "authorization_server.mjs"), "--port", "0"]
        for alg in algs:
            argv += ["--alg", alg]
        self.service = Service("oidc-provider", argv, os.environ, stdin=subprocess.PIPE)
        self.issuer = self.audience = self.token_endpoint = ""
        self.clients: dict[str, Client] = {}

    def wait_ready(self) -> None:
        """Its stderr line "oidc-provider on http://…" comes after the JSON line on stdout,
        through the same pipe: the JSON is in the output by then."""
        self.service.wait_ready()
        ready = self._json_lines(lambda line: "issuer" in line)
        if not ready:
            raise DemoError("oidc-provider printed no JSON line before it was ready")
        self.issuer = ready[0]["issuer"]
        self.audience = ready[0]["audience"]
        self.token_endpoint = ready[0]["token_endpoint"]
        self.clients = {
            c["alg"]: Client(c["client_id"], c["client_secret"], c["alg"])
            for c in ready[0]["clients"]
        }

    def command(self, name: str, timeout: float = 10) -> dict[str, Any]:
        """Send a stdin command (rotate, kids) and wait for its JSON answer."""
        stdin = self.service.process.stdin
        assert stdin is not None
        seen = len(self._json_lines(lambda line: line.get("command") == name))
        stdin.write(f"{name}\n".encode())
        stdin.flush()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answers = self._json_lines(lambda line: line.get("command") == name)
            if len(answers) > seen:
                return answers[-1]
            time.sleep(0.01)
        raise TimeoutError(f"oidc-provider did not answer {name!r} within {timeout:g} s")

    def _json_lines(self, wanted: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        found = []
        for text in list(self.service.output):  # a copy: the drain thread appends meanwhile
            try:
                line = json.loads(text) if text.startswith("{") else None
            except ValueError:
                continue  # stderr shares the pipe; only stdout's lines are JSON
            if isinstance(line, dict) and wanted(line):
                found.append(line)
        return found

    def stop(self) -> None:
        if self.service.process.stdin is not None:
            self.service.process.stdin.close()
        self.service.stop()


def worker_service(issuer: str, audience: str, dpop: str | None = None) -> Service:
    """scripts/serve on a free port (not waited for), configured by its environment only;
    AUTHPI_DPOP unset when dpop is None, for the default mode."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHPI_")}
    env.update({"AUTHPI_ISSUER_URL": issuer, "AUTHPI_AUDIENCE": audience, "PYTHONPATH": ""})
    if dpop is not None:
        env["AUTHPI_DPOP"] = dpop
    return Service("worker", [str(PROJECT / "scripts" / "serve"), "--port", "0"], env)


@dataclass
class Servers:
    authorization_server: AuthorizationServer
    workers: dict[str | None, Service]  # by AUTHPI_DPOP (None: unset)

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()
        self.authorization_server.stop()


def start_servers(node: str, algs: Sequence[str], modes: Sequence[str | None]) -> Servers:
    """oidc-provider, then one scripts/serve per AUTHPI_DPOP mode (started together), all
    ready; every process is stopped if any fails. Output is drained only once all have
    started: Service's preexec_fn wants no other thread alive at fork."""
    servers = Servers(AuthorizationServer(node, algs), {})
    try:
        servers.authorization_server.wait_ready()
        auth = servers.authorization_server
        for mode in modes:
            servers.workers[mode] = worker_service(auth.issuer, auth.audience, mode)
        for worker in servers.workers.values():
            worker.wait_ready()
        for service in [auth.service, *servers.workers.values()]:
            service.follow()
    except BaseException as error:
        tails = "\n".join(
            f"{s.name} said:\n{s.tail()}"
            for s in [servers.authorization_server.service, *servers.workers.values()]
        )
        servers.stop()
        if isinstance(error, DemoError):
            raise InteropError(f"{error}\n{tails}") from None
        raise
    return servers


def run_client(
    node: str, issuer: str, client: Client, worker_url: str, proof_alg: str
) -> dict[str, Any]:
    """tests/interop/client.mjs once: its JSON document (requests described, no tokens)."""
    done = subprocess.run(  # noqa: S603 - Node and our own script
        [
            node,
            str(INTEROP / "client.mjs"),
            "--issuer",
            issuer,
            "--client-id",
            client.client_id,
            "--worker",
            worker_url,
            "--proof-alg",
            proof_alg,
        ],
        env={**os.environ, "CLIENT_SECRET": client.client_secret},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"client.mjs failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result
