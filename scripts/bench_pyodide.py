"""The Pyodide rows of `make bench`: src/entry.py in the npm `pyodide` (Python 3.14, the
production runtime's), booted and called exactly as the Pyodide stage does (tests/pyodide/
host.mjs: real JS Request, Headers and Response, Default.fetch through workerd's
wrapper_func), timed by bench/pyodide-bench.mjs.

No cryptography here either (no Pyodide build offline), so no signature is verified: `/me`
and `/orgs/{org_id}/reports` answer from the verified-token cache, which
tests/pyodide/bench_probes.py fills beforehand.
Each request's first answer must equal the CPython core's, which does verify the signature.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from authpi_worker import Isolate
from authpi_worker.config import AUDIENCE_VAR, CORS_VAR, ISSUER_VAR
from authpi_worker.testing.tokens import AUDIENCE, caller, organization
from scripts.bench_child import BenchError, NodeChild, Timing
from tests.pyodide import host

SCRIPT = host.PROJECT / "bench" / "pyodide-bench.mjs"
PROBES = host.HERE / "bench_probes.py"
ORIGIN = "https://authpi-worker.example"  # the Worker's own URL, as in the stage

Header = tuple[str, str]
APP_ORIGIN = "https://app.example.com"  # the browser app's origin, allowed by CORS
ACCEPT: Header = ("accept", "application/json")
# What a browser sends to a cross-origin JSON API besides Authorization: 13 + 1 = 14 headers.
BROWSER_HEADERS: tuple[Header, ...] = (
    ("host", "authpi-worker.example"),
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/136.0.0.0 Safari/537.36",
    ),
    ("accept", "application/json, text/plain, */*"),
    ("accept-language", "en-US,en;q=0.9"),
    ("accept-encoding", "gzip, deflate, br, zstd"),
    ("origin", APP_ORIGIN),
    ("referer", "https://app.example.com/"),
    ("sec-ch-ua", '"Chromium";v="136", "Google Chrome";v="136", "Not.A/Brand";v="99"'),
    ("sec-ch-ua-mobile", "?0"),
    ("sec-ch-ua-platform", '"Linux"'),
    ("sec-fetch-dest", "empty"),
    ("sec-fetch-mode", "cors"),
    ("sec-fetch-site", "cross-site"),
)

# A person's token as AuthPI issues one to a member of many organizations: MEMBERSHIPS
# entries, the one the request names last (every entry is looked at).
MEMBERSHIPS = 20
ORG = f"org_bench_{MEMBERSHIPS - 1:02d}"
ORG_PATH = f"/orgs/{ORG}/reports"

# The timed requests: results.json field → path; headers: the cached token with 2 headers
# (accept, authorization) or 14 (a browser's), the cached person's token with 2, or only
# accept; the status it must get.
REQUESTS: dict[str, tuple[str, str, int]] = {
    "pyodide_root_us": ("/", "accept", 200),
    "pyodide_me_cached_us": ("/me", "token", 200),
    "pyodide_me_cached_14h_us": ("/me", "browser", 200),
    "pyodide_unauthorized_us": ("/me", "accept", 401),  # and one log line
    "pyodide_org_reports_cached_us": (ORG_PATH, "person", 200),  # a parameter, 20 memberships
    # The same person's token on /me: what the token's size costs, apart from the route's work.
    "pyodide_me_person_cached_us": ("/me", "person", 200),
}
CORE = "pyodide_core_fresh_us"  # bench_probes.core: a fresh token's rules, no signature
TIMED = (*REQUESTS, CORE)
# Imports, each in a fresh interpreter: field → the modules imported, the clock running for
# the last. The target's measure of what the entry adds, entry - jwt - workers, counts twice
# what jwt and workers share (http.client, email...): the last field measures it directly.
IMPORTS = {
    "pyodide_import_entry_ms": "entry",
    "pyodide_import_jwt_ms": "jwt",
    "pyodide_import_workers_ms": "workers",
    "pyodide_import_entry_after_deps_ms": "jwt,workers,entry",
}
FIELDS = (*TIMED, *IMPORTS)

REQUEST_BATCH = 100  # requests per measurement per round: about 0.1 s each under Pyodide here
CORE_BATCH = 1000  # the rules alone are ~25x shorter than a request: a similar window
FRESH_TOKENS = 200  # distinct tokens the core measurement cycles through
IMPORT_SAMPLES = 5  # fresh interpreters per module (each boots Pyodide: ~1.5 s here)

# A cached /me, a refused /me and a cached org route may cost at most 10% more than `/`.
MAX_OVER_ROOT = 1.10
MAX_OWN_IMPORT_MS = 60  # what the entry's import adds to PyJWT's and the SDK's, in ms


def person_claims() -> dict[str, Any]:
    """The claims that make a person who may read ORG's reports among MEMBERSHIPS orgs."""
    orgs = [
        organization(f"org_bench_{i:02d}", "member", "projects:read", "reports:read")
        for i in range(MEMBERSHIPS)
    ]
    return {**caller("person", "bench"), "organizations": orgs}


def headers(kind: str, token: str, person: str = "") -> list[Header]:
    bearer = ("authorization", f"Bearer {token}")
    if kind == "person":
        return [ACCEPT, ("authorization", f"Bearer {person}")]
    if kind == "token":
        return [ACCEPT, bearer]
    if kind == "browser":
        return [*BROWSER_HEADERS[:5], bearer, *BROWSER_HEADERS[5:]]
    return [ACCEPT]


def worker_env(issuer: str) -> dict[str, str]:
    """The Worker's vars: a browser app's origin allowed, as an API called from one has it."""
    return {ISSUER_VAR: issuer, AUDIENCE_VAR: AUDIENCE, CORS_VAR: APP_ORIGIN}


class PyodideBench:
    """bench/pyodide-bench.mjs with the Worker booted and its caches primed.

    tokens: valid tokens of one key the CPython verifier knows; the first is the cached one,
    the others are the fresh tokens of the core measurement. person: a valid token with
    person_claims(), cached too."""

    def __init__(
        self, node: Sequence[str], issuer: str, tokens: Sequence[str], person: str, scratch: Path
    ) -> None:
        cached, *fresh = tokens
        self.env = worker_env(issuer)
        self.requests = {
            field: (path, headers(kind, cached, person))
            for field, (path, kind, _) in REQUESTS.items()
        }
        cases = {
            "origin": ORIGIN,
            "env": worker_env(issuer),
            "cached_tokens": [cached, person],
            "fresh": [f"Bearer {token}" for token in fresh],
            "requests": {
                field: {"path": path, "headers": pairs}
                for field, (path, pairs) in self.requests.items()
            },
        }
        (scratch / "pyodide-cases.json").write_text(json.dumps(cases))
        (scratch / "pyodide-manifest.json").write_text(json.dumps(host.manifest([PROBES])))
        self.node = node
        self._child = NodeChild(
            node, SCRIPT, scratch / "pyodide-manifest.json", scratch / "pyodide-cases.json"
        )
        self.ready = self._child.ready

    async def check(self, isolate: Isolate) -> None:
        """Each request's first answer in Pyodide (status, headers, body, log lines) must be
        what the CPython core answers, with isolate checking the token's signature."""
        for field, (path, pairs) in self.requests.items():
            answer = self.ready["answers"][field]
            in_pyodide = host.outcome(answer["response"], answer["output"])
            request = host.request("GET", ORIGIN + path, pairs)
            expected = await host.core_outcome(request, isolate, self.env.get)
            if expected.status != REQUESTS[field][2]:
                raise BenchError(f"{field}: CPython answered {expected}")
            if in_pyodide != expected:
                raise BenchError(f"{field}: Pyodide answered {in_pyodide}, CPython {expected}")

    def measure(self, field: str) -> Timing:
        if field in REQUESTS:
            return self._child.time("FETCH", field, REQUEST_BATCH)
        if field == CORE:
            return self._child.time("CORE", "-", CORE_BATCH)
        return self._child.time("IMPORT", IMPORTS[field], 1)

    def info(self) -> dict[str, Any]:
        return self._child.ask("INFO")

    def close(self) -> None:
        self._child.close()


def round_fields(number: int) -> tuple[str, ...]:
    """What round `number` measures: every timed field, and an import of each kind in the
    first IMPORT_SAMPLES rounds (a fresh interpreter is too slow to boot every round)."""
    return FIELDS if number < IMPORT_SAMPLES else TIMED


def _shown(field: str, microseconds: float) -> float:
    return microseconds / 1000 if field.endswith("_ms") else microseconds


def results(medians: dict[str, float]) -> dict[str, float]:
    """results.json's "pyodide": µs per request, ms per import."""
    return {field: round(_shown(field, medians[field]), 2) for field in FIELDS}


def own_import_ms(medians: dict[str, float]) -> float:
    """The target's measure of what the entry's import adds: entry - jwt - workers."""
    ms = {field: _shown(field, medians[field]) for field in IMPORTS}
    entry, jwt, workers = (
        ms["pyodide_import_entry_ms"],
        ms["pyodide_import_jwt_ms"],
        ms["pyodide_import_workers_ms"],
    )
    return entry - jwt - workers


TITLES = {
    "pyodide_root_us": "GET / (1 header)",
    "pyodide_me_cached_us": "GET /me, cached token, 2 headers",
    "pyodide_me_cached_14h_us": "GET /me, cached token, 14 headers",
    "pyodide_unauthorized_us": "GET /me, no token: 401 + log line",
    "pyodide_org_reports_cached_us": f"GET /orgs/{{org_id}}/reports, {MEMBERSHIPS} orgs",
    "pyodide_me_person_cached_us": f"GET /me, the token of {MEMBERSHIPS} orgs",
    CORE: "core rules, fresh token, no signature",
    "pyodide_import_entry_ms": "import entry",
    "pyodide_import_jwt_ms": "import jwt",
    "pyodide_import_workers_ms": "import workers",
    "pyodide_import_entry_after_deps_ms": "import entry after jwt and workers",
}


def table(
    wall: dict[str, float],
    cpu: dict[str, float],
    env: dict[str, Any],
    rounds: int,
    fields: Sequence[str] = FIELDS,
) -> list[str]:
    """The Pyodide rows (fields of them), wall / CPU (the Node process's, all its threads)."""
    lines = [
        f"Pyodide {env['pyodide']} (Python {env['pyodide_python']}) in node {env['node']} "
        f"({env['node_binary']}), src/entry.py called as the Pyodide stage calls it;",
        f"medians of {rounds} rounds ({REQUEST_BATCH} requests, or {CORE_BATCH} tokens, each), "
        "wall / CPU of the Node process:",
    ]
    for field in fields:
        if field == "pyodide_import_entry_ms":
            samples = min(rounds, IMPORT_SAMPLES)
            lines.append(f"  each in a fresh interpreter, median of {samples}, ms:")
        unit = "ms" if field.endswith("_ms") else "µs"
        cells = f"{_shown(field, wall[field]):9.1f} /{_shown(field, cpu[field]):9.1f} {unit}"
        lines.append(f"  {TITLES[field]:42}{cells}")
    return lines


Target = tuple[str, str, Callable[[float], bool], float, float]  # name, bound, ok, wall, cpu


def targets(wall: dict[str, float], cpu: dict[str, float]) -> list[Target]:
    """Issue 10's targets for the Worker under Pyodide, on both clocks."""
    return request_targets(wall, cpu) + import_targets(wall, cpu)


def request_targets(wall: dict[str, float], cpu: dict[str, float]) -> list[Target]:
    """The requests' targets (issues 10 and 15): each at most MAX_OVER_ROOT times `GET /`."""
    over_root = f"≤ {MAX_OVER_ROOT:.2f}"
    rows: list[Target] = []
    for field in (
        "pyodide_me_cached_14h_us",
        "pyodide_unauthorized_us",
        "pyodide_org_reports_cached_us",
    ):
        name = f"pyodide {field.removeprefix('pyodide_').removesuffix('_us')} / root"
        rows.append(
            (
                name,
                over_root,
                lambda ratio: ratio <= MAX_OVER_ROOT,
                wall[field] / wall["pyodide_root_us"],
                cpu[field] / cpu["pyodide_root_us"],
            )
        )
    return rows


def import_targets(wall: dict[str, float], cpu: dict[str, float]) -> list[Target]:
    """Issue 10's import targets, in ms."""
    after_deps = "pyodide_import_entry_after_deps_ms"
    return [
        (name, f"≤ {MAX_OWN_IMPORT_MS}", lambda ms: ms <= MAX_OWN_IMPORT_MS, on_wall, on_cpu)
        for name, on_wall, on_cpu in (
            ("pyodide import entry - jwt - workers, ms", own_import_ms(wall), own_import_ms(cpu)),
            (
                "pyodide import entry after jwt+workers, ms",
                _shown(after_deps, wall[after_deps]),
                _shown(after_deps, cpu[after_deps]),
            ),
        )
    ]
