"""`python -m scripts.bench_ab OLD [NEW]`: what a change does to the Pyodide rows of make bench.

The Worker of two git revisions (NEW: the working tree unless given), each under the npm
`pyodide` as the Pyodide stage runs it, side by side in one Node process (bench/pyodide-ab.mjs),
their requests alternating round by round. Two runs of make bench, one per revision, differ by
±0.05 in their Pyodide ratios on a shared machine; here the drift falls on both alike. Reports,
per request kind, the median CPU µs of each, the median over rounds of its ratio to `GET /`,
and the median of the per-round differences NEW - OLD. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

from authpi_worker.testing.keys import make_key
from authpi_worker.testing.tokens import AUDIENCE, mint
from scripts import bench_pyodide
from scripts.bench_child import BenchError
from tests.pyodide import host
from tests.support.node import NoNode

PROJECT = Path(__file__).resolve().parent.parent
SCRIPT = PROJECT / "bench" / "pyodide-ab.mjs"
ISSUER = "https://idp.authpi.com/iss_bench"  # never contacted: the caches are primed
ROUNDS = 151  # more than make bench's 31: the differences sought are a few µs
BATCH = 50  # requests per kind, side and round: ~20 ms, short enough to alternate often
ROOT = "pyodide_root_us"
# How a revision's manifest is made: by its own tests/pyodide/host.py, in its own tree.
MANIFEST = (
    "import json; from scripts import bench_pyodide; from tests.pyodide import host; "
    "print(json.dumps(host.manifest([bench_pyodide.PROBES])))"
)

Samples = dict[str, dict[str, dict[str, list[float]]]]  # side → request → clock → per round


def tree(revision: str | None, scratch: Path) -> Path:
    """The working tree (None), or the files of a git revision unpacked under scratch."""
    if revision is None:
        return PROJECT
    archive = subprocess.run(  # noqa: S603 - git, with a revision the user named
        ["git", "archive", "--format=tar", revision],  # noqa: S607
        cwd=PROJECT,
        capture_output=True,
        check=True,
    ).stdout
    target = scratch / revision.replace("/", "_")
    with tarfile.open(fileobj=BytesIO(archive)) as files:
        files.extractall(target, filter="data")
    return target


def manifest(root: Path, scratch: Path, side: str) -> Path:
    """The Pyodide stage's manifest of the tree at root, written to scratch."""
    env = {**os.environ, "PYTHONPATH": f"{root / 'src'}{os.pathsep}{root}"}
    text = subprocess.run(  # noqa: S603 - this interpreter, a fixed program
        [sys.executable, "-c", MANIFEST], cwd=root, env=env, capture_output=True, check=True
    ).stdout
    path = scratch / f"manifest-{side}.json"
    path.write_bytes(text)
    return path


def cases(scratch: Path) -> Path:
    """make bench's request kinds, with a cached token of each kind it uses."""
    key = make_key("ES256", "es256-bench")
    exp = int(time.time()) + 3600
    token = mint(key, ISSUER, AUDIENCE, exp=exp)
    person = mint(key, ISSUER, AUDIENCE, exp=exp, **bench_pyodide.person_claims())
    requests = {
        field: {"path": path, "headers": bench_pyodide.headers(kind, token, person), "status": code}
        for field, (path, kind, code) in bench_pyodide.REQUESTS.items()
    }
    document = {
        "origin": bench_pyodide.ORIGIN,
        "env": bench_pyodide.worker_env(ISSUER),
        "cached_tokens": [token, person],
        "requests": requests,
    }
    path = scratch / "ab-cases.json"
    path.write_text(json.dumps(document))
    return path


def run(node: Sequence[str], manifests: tuple[Path, Path], case_file: Path, rounds: int) -> Samples:
    argv = [*node, str(SCRIPT), *map(str, manifests), str(case_file), str(rounds), str(BATCH)]
    done = subprocess.run(argv, cwd=PROJECT, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise BenchError(f"pyodide-ab.mjs failed: {done.stderr.strip()[-2000:]}")
    samples: Samples = json.loads(done.stdout)
    return samples


def report(samples: Samples, old: str, new: str) -> list[str]:
    a, b = samples["A"], samples["B"]
    lines = [
        f"OLD {old}, NEW {new}: CPU µs of the Node process per request, medians of "
        f"{len(a[ROOT]['cpu_us'])} rounds of {BATCH}",
        f"{'':44}{'OLD':>8}{'NEW':>8}{'OLD/root':>10}{'NEW/root':>10}{'NEW-OLD':>9}",
    ]
    for field in a:
        old_cpu, new_cpu = a[field]["cpu_us"], b[field]["cpu_us"]
        ratios = [
            statistics.median(
                cpu / root
                for cpu, root in zip(side[field]["cpu_us"], side[ROOT]["cpu_us"], strict=True)
            )
            for side in (a, b)
        ]
        diff = statistics.median(n - o for n, o in zip(new_cpu, old_cpu, strict=True))
        lines.append(
            f"  {bench_pyodide.TITLES[field]:42}{statistics.median(old_cpu):8.1f}"
            f"{statistics.median(new_cpu):8.1f}{ratios[0]:10.3f}{ratios[1]:10.3f}{diff:+9.1f}"
        )
    lines.append("(/root: the median over rounds of the request's ratio to its Worker's GET /)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_ab", description=__doc__)
    parser.add_argument("old", help="a git revision: the Worker before the change")
    parser.add_argument("new", nargs="?", help="a git revision (default: the working tree)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument(
        "--node", default=os.environ.get("NODE", "node"), help="default: $NODE, or node"
    )
    args = parser.parse_args(argv)
    try:
        node = host.node_command(args.node)
        with tempfile.TemporaryDirectory() as name:
            scratch = Path(name)
            manifests = (
                manifest(tree(args.old, scratch), scratch, "old"),
                manifest(tree(args.new, scratch), scratch, "new"),
            )
            samples = run(node, manifests, cases(scratch), args.rounds)
    except (BenchError, NoNode) as error:
        print(f"bench_ab: {error}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as error:
        print(f"bench_ab: {error.cmd[0]} failed: {error.stderr.decode().strip()}", file=sys.stderr)
        return 1
    print("\n".join(report(samples, args.old, args.new or "the working tree")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
