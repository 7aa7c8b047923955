"""What importing the core loads: the deploy snapshot is taken after the entry's top-level
imports, so whatever a request needs must be loaded by then, and nothing else need be."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def modules_after(statement: str) -> set[str]:
    """sys.modules after `statement`, in a fresh interpreter with src/ on the path."""
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(  # noqa: S603 - this interpreter, our own code
        [sys.executable, "-c", code],
        cwd=PROJECT,
        env={"PYTHONPATH": str(PROJECT / "src")},
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(done.stdout))


def test_importing_the_core_loads_cryptography_so_the_snapshot_holds_it() -> None:
    """PyJWT's jwt.algorithms imports cryptography at its top level when it is installed (as
    it is in production): no request pays for loading OpenSSL's bindings."""
    loaded = modules_after("import app, authpi_worker")
    for module in (
        "cryptography.hazmat.primitives.asymmetric.ec",
        "cryptography.hazmat.primitives.asymmetric.ed25519",
        "cryptography.hazmat.primitives.asymmetric.rsa",
        "jwt.algorithms",
    ):
        assert module in loaded, module


def test_the_core_adds_no_module_beyond_pyjwt_and_the_standard_library() -> None:
    """Everything the core imports that PyJWT does not is its own or the standard library's
    (asyncio, which the Workers SDK imports anyway): no third-party package, no HTTP client."""
    ours = modules_after("import app, authpi_worker") - modules_after("import jwt")
    foreign = {
        name
        for name in ours
        if not name.startswith(("authpi_worker", "app"))
        and name.split(".")[0] not in sys.stdlib_module_names
    }
    assert foreign == set()
    assert not {"httpx", "urllib.request", "http.client"} & ours
