"""The CPython side of tests/pyodide/host.mjs: what it mounts, the Node that runs it, and
what a request through it got.

Shared by the Pyodide stage (tests/pyodide/pyodide_stage.py) and `make bench`
(scripts/bench_pyodide.py). The manifest holds the Worker's modules as workerd mounts them, the
exact workers-runtime-sdk and PyJWT that requirements-dev.lock pins (from the venv, checked
against their RECORD), and the host's own Python modules, off the Worker's path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pyjson5

from app import ROUTES
from authpi_worker import Isolate, Request, dispatch
from authpi_worker.config import Lookup
from tests.support.logs import logged
from tests.support.node import NoNode, find_node, package_versions

PROJECT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
HOST = HERE / "workerd_host.py"  # workerd's own Python side: every manifest mounts it
HOST_DIR = "/stage"  # where host.mjs puts the host modules: off the Worker's path
WORKER_DIR = "/session/metadata"  # where workerd mounts the Worker's modules
# What pywrangler vendors into python_modules/ beside the Worker, less cryptography (no
# Pyodide build offline); the SDK because the compatibility_date selects the external SDK.
VENDORED = ("workers-runtime-sdk", "pyjwt")
# JSPI (WebAssembly stack switching), which workerd always has: on by default in newer Node,
# behind one of these flags in Node 20 to 24.
MIN_NODE = 20  # JSPI behind a flag from Node 20; the Makefile's is 24, where it is on
BODILESS = ("GET", "HEAD")  # src/entry.py's: methods whose Content-Length it does not read
JSPI_FLAGS: tuple[list[str], ...] = (
    [],
    ["--experimental-wasm-jspi"],
    ["--experimental-wasm-stack-switching"],
)


@dataclass(frozen=True)
class Outcome:
    """What a request got: everything the two runtimes must agree on."""

    status: int
    headers: dict[str, str]
    body: str
    events: list[dict[str, Any]]  # the authpi_worker log lines, parsed


def outcome(response: dict[str, Any], output: Sequence[str]) -> Outcome:
    """The Outcome of host.mjs's describeResponse() and the Python output lines it caused
    (the authpi_worker log lines among them; the rest, warnings if any, are left out)."""
    assert response["isResponse"], f"fetch returned {response['type']}, not a JS Response"
    events = [json.loads(line) for line in output if line.startswith('{"event":')]
    return Outcome(response["status"], dict(response["headers"]), response["body"], events)


def request(
    method: str, url: str, fields: Sequence[tuple[str, str]], body: bytes | None = None
) -> Request:
    """The Request src/entry.py makes of a JS Request with these header fields and body: the
    headers it reads, a repeated one joined with ", " as the Fetch standard's Headers.get
    does, and the body's bytes when read."""
    joined: dict[str, str] = {}
    for name, value in fields:
        name = name.lower()
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    data = body or b""

    async def read() -> bytes:
        return data

    return Request(
        method,
        url,
        authorization=joined.get("authorization"),
        dpop=joined.get("dpop"),
        origin=joined.get("origin"),
        access_control_request_method=joined.get("access-control-request-method"),
        body=read,
        content_length=None if method in BODILESS else joined.get("content-length"),
    )


async def core_outcome(request: Request, isolate: Isolate, var: Lookup) -> Outcome:
    """What the core answers under CPython to the same request: dispatch(), as src/entry.py
    calls it once past the FFI."""
    with logged() as events:
        reply = await dispatch(ROUTES, request, isolate, var)
    return Outcome(reply.status, reply.headers, reply.body, events)


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_version(name: str, lock: Path = PROJECT / "requirements-dev.lock") -> str:
    """The version requirements-dev.lock pins for a package."""
    for line in lock.read_text().splitlines():
        pinned, sep, version = line.partition("==")
        if sep and _normalized(pinned.strip()) == _normalized(name):
            return version.split()[0].rstrip("\\;")
    raise AssertionError(f"{name} is not pinned in {lock.name}")


def vendored_files(name: str) -> list[tuple[str, Path]]:
    """(target, source) for a package's installed files, checked against the lock's version
    and against the installer's RECORD hashes: exactly the pinned release, unedited."""
    dist = metadata.distribution(name)
    assert dist.version == locked_version(name), f"the venv's {name} is not the locked one"
    files = []
    for record in dist.files or []:
        if "__pycache__" in record.parts or ".." in record.parts:
            continue
        source = Path(str(record.locate()))
        if record.hash is not None:
            digest = hashlib.new(record.hash.mode, source.read_bytes()).digest()
            encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            assert encoded == record.hash.value, f"{source} differs from its RECORD"
        files.append((f"{WORKER_DIR}/python_modules/{record.as_posix()}", source))
    return files


def wrangler_config() -> dict[str, Any]:
    config: dict[str, Any] = pyjson5.decode((PROJECT / "wrangler.jsonc").read_text())
    return config


def manifest(host_modules: Sequence[Path] = ()) -> dict[str, Any]:
    """What host.mjs mounts, and the Worker's compatibility settings, from wrangler.jsonc.
    host_modules: the caller's own Python for inside Pyodide, beside workerd_host.py."""
    config = wrangler_config()
    main = PROJECT / config["main"]
    worker = [
        (f"{WORKER_DIR}/{path.relative_to(main.parent).as_posix()}", path)
        for path in sorted(main.parent.rglob("*.py"))
        if "__pycache__" not in path.parts
    ]
    host = [(f"{HOST_DIR}/{path.name}", path) for path in (HOST, *host_modules)]
    vendored = [pair for name in VENDORED for pair in vendored_files(name)]
    return {
        "files": [(target, str(source)) for target, source in worker + vendored + host],
        "workerDir": WORKER_DIR,
        "hostDir": HOST_DIR,
        "mainModule": main.stem,
        "compatibilityDate": config["compatibility_date"],
        "compatibilityFlags": config.get("compatibility_flags", []),
    }


# The ASGI stage: its Worker (a Starlette app through workers.asgi) and the pure-Python
# packages Starlette needs, from the venv as the lock pins them (anyio needs typing_extensions
# below Python 3.15, and idna).
ASGI_WORKER = (HERE / "asgi_worker.py", HERE / "asgi_app.py")
ASGI_VENDORED = (*VENDORED, "starlette", "anyio", "idna", "typing-extensions")
CORE = PROJECT / "src" / "authpi_worker"


def asgi_manifest(host_modules: Sequence[Path] = ()) -> dict[str, Any]:
    """What host.mjs mounts for the ASGI stage: authpi_worker and the stage's Worker as workerd
    mounts a Worker's modules, the vendored packages, the host's modules beside; the
    compatibility settings of wrangler.jsonc; host_modules[0] is the stage's probes module."""
    config = wrangler_config()
    core = [
        (f"{WORKER_DIR}/{path.relative_to(CORE.parent).as_posix()}", path)
        for path in sorted(CORE.rglob("*.py"))
        if "__pycache__" not in path.parts
    ]
    worker = [(f"{WORKER_DIR}/{path.name}", path) for path in ASGI_WORKER]
    host = [(f"{HOST_DIR}/{path.name}", path) for path in (HOST, *host_modules)]
    vendored = [pair for name in ASGI_VENDORED for pair in vendored_files(name)]
    return {
        "files": [(target, str(source)) for target, source in core + worker + vendored + host],
        "workerDir": WORKER_DIR,
        "hostDir": HOST_DIR,
        "mainModule": ASGI_WORKER[0].stem,
        "probesModule": host_modules[0].stem if host_modules else "probes",
        "compatibilityDate": config["compatibility_date"],
        "compatibilityFlags": config.get("compatibility_flags", []),
    }


def node_command(node: str | None = None) -> list[str]:
    """node (default: the Makefile's, as tests/support/node.py finds it), with JSPI on."""
    found = shutil.which(node) if node else find_node(MIN_NODE, "Pyodide 314 (JSPI)")
    if found is None:
        raise NoNode(f"{node} is not installed: Pyodide runs in Node (`make install`)")
    package_versions("pyodide")
    check = "process.exit('Suspending' in WebAssembly || 'Suspender' in WebAssembly ? 0 : 1)"
    for flags in JSPI_FLAGS:
        argv = [found, *flags, "-e", check]
        probe = subprocess.run(argv, capture_output=True, check=False)  # noqa: S603 - a fixed argv
        if probe.returncode == 0:
            return [found, *flags]
    raise NoNode(f"{found} has no JSPI (WebAssembly stack switching), which workerd always has")
