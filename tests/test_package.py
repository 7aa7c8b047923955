"""The distribution: `uv build` makes an sdist and, from it, a wheel of `authpi_worker` alone;
the wheel installs into a fresh venv, type-checks as a typed package (py.typed) and refuses a
request without a token there. Real processes: uv, the venv's python, mypy. About 4 s."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import pytest

import authpi_worker

PROJECT = Path(__file__).resolve().parent.parent
PACKAGE = PROJECT / "src" / "authpi_worker"
LOCK = PROJECT / "requirements-dev.lock"
CHECK_WHEEL = PROJECT / "scripts" / "check_wheel.py"  # the release workflow's check
PYPROJECT = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
NAME, VERSION = PYPROJECT["name"].replace("-", "_"), PYPROJECT["version"]
TIMEOUT = 120  # seconds per process: a cold uv cache downloads cryptography

# What a Worker of one's own would write: type-checked (strict) against the installed wheel,
# then run in the fresh venv, from outside the project and with -I (no PYTHONPATH, no cwd).
USE_IT = """\
from __future__ import annotations

import asyncio
import json
import sys
import sysconfig

import authpi_worker
from authpi_worker import Claims, Edge, Fetched, Isolate, Reply

VARS = {
    "AUTHPI_ISSUER_URL": "https://idp.authpi.com/issuer",
    "AUTHPI_AUDIENCE": "https://api.example.com",
}


async def fetch(url: str, edge: Edge) -> Fetched:
    raise AssertionError(f"no key set is needed to refuse a request without a token: {url}")


async def me(isolate: Isolate, authorization: str | None) -> Claims | Reply:
    return await isolate.authenticate(
        VARS.get, authorization, method="GET", url="https://x.example/me"
    )


reply = asyncio.run(me(Isolate(fetch), None))
assert isinstance(reply, Reply)
seen = {
    "file": authpi_worker.__file__,
    "purelib": sysconfig.get_path("purelib"),
    "version": sys.version_info[:3],
    "all": authpi_worker.__all__,
    "kinds": {name: type(getattr(authpi_worker, name)).__name__ for name in authpi_worker.__all__},
    "status": reply.status,
    "headers": reply.headers,
    "body": reply.body,
}
print(json.dumps(seen))
"""


def run(*command: str | Path, cwd: Path | None = None) -> str:
    """Run a command to completion; its stdout, or the test fails with everything it printed."""
    env = {
        k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "MYPYPATH"}
    }
    env["UV_PYTHON_DOWNLOADS"] = "never"  # the machine's Pythons only, as the Makefile
    done = subprocess.run(  # noqa: S603 - fixed commands, the test's own paths
        [str(part) for part in command],
        cwd=cwd or PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"{command} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


@pytest.fixture(scope="module")
def uv() -> str:
    found = shutil.which("uv")
    if found is None:  # never skipped: `make` installs uv, and so must any other runner
        pytest.fail("uv is not on PATH (make install puts it there: python3 -m pip install uv)")
    return found


@pytest.fixture(scope="module")
def built(uv: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`uv build`: the sdist, then the wheel built from the unpacked sdist (so the sdist is
    complete). Without build isolation: hatchling comes from the hash-pinned .venv, no index."""
    out = tmp_path_factory.mktemp("dist")
    run(uv, "build", "--no-build-isolation", "--python", sys.executable, "--out-dir", out)
    return out


def package_files() -> set[str]:
    """Every file of src/authpi_worker, as the wheel names them."""
    return {
        path.relative_to(PACKAGE.parent).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_the_wheel_holds_authpi_worker_and_nothing_else(built: Path) -> None:
    wheel = built / f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = HeaderParser().parsestr(
            archive.read(f"{NAME}-{VERSION}.dist-info/METADATA").decode()
        )
    dist_info = {name for name in names if name.startswith(f"{NAME}-{VERSION}.dist-info/")}
    assert names - dist_info == package_files()
    assert "authpi_worker/py.typed" in names
    for stray in ("entry.py", "app.py", "scripts/", "tests/", "bench/"):
        assert not any(name.startswith(stray) or f"/{stray}" in name for name in names), stray
    assert metadata["Name"] == PYPROJECT["name"] and metadata["Version"] == VERSION
    requires = sorted(metadata.get_all("Requires-Dist") or [])
    extras = PYPROJECT["optional-dependencies"]  # the framework integrations, opt-in only
    optional = [f"{req}; extra == '{extra}'" for extra, reqs in extras.items() for req in reqs]
    assert requires == sorted([*PYPROJECT["dependencies"], *optional])  # pyjwt, cryptography
    assert sorted(metadata.get_all("Provides-Extra") or []) == ["fastapi", "starlette"]


def test_the_sdist_holds_what_builds_the_wheel(built: Path) -> None:
    with tarfile.open(built / f"{NAME}-{VERSION}.tar.gz") as archive:
        names = {name.removeprefix(f"{NAME}-{VERSION}/") for name in archive.getnames()}
    package = {f"src/{name}" for name in package_files()}
    assert names - {".gitignore"} == package | {"pyproject.toml", "README.md", "PKG-INFO"}


def test_the_wheel_installs_type_checks_and_refuses_without_a_token(
    uv: str, built: Path, tmp_path: Path
) -> None:
    venv, probe = tmp_path / "venv", tmp_path / "use_it.py"
    python = venv / "bin" / "python"
    # The Python .venv was made from (the machine's python3): the one the suite runs under.
    run(uv, "venv", "--quiet", "--python", sys.executable, venv)
    # Its dependencies (pyjwt, cryptography) at the versions the rest of the suite runs.
    wheel = built / f"{NAME}-{VERSION}-py3-none-any.whl"
    run(uv, "pip", "install", "--quiet", "--python", python, "--constraint", LOCK, wheel)
    probe.write_text(USE_IT)
    config = tmp_path / "mypy.ini"  # none of the project's settings: mypy_path=src would hide it
    config.write_text("[mypy]\n")
    # The project's mypy, looking imports up in the venv: without py.typed, import-untyped.
    cache = tmp_path / ".mypy_cache"
    mypy = [sys.executable, "-m", "mypy", "--strict", "--config-file", str(config)]
    run(*mypy, "--cache-dir", cache, "--python-executable", python, probe, cwd=tmp_path)

    seen = json.loads(run(python, "-I", probe, cwd=tmp_path))
    assert seen["version"] == list(sys.version_info[:3])
    site_packages = Path(seen["purelib"])  # the venv's, not src/
    assert site_packages.is_relative_to(venv)
    assert Path(seen["file"]) == site_packages / "authpi_worker" / "__init__.py"
    assert seen["all"] == authpi_worker.__all__
    assert seen["kinds"]["Isolate"] == "type" and seen["kinds"]["dispatch"] == "function"
    assert seen["status"] == 401
    assert json.loads(seen["body"]) == {"error": "unauthorized"}
    assert seen["headers"]["www-authenticate"].startswith("Bearer resource_metadata=")


def test_the_release_check_passes_the_installed_wheel_and_refuses_the_source_tree(
    uv: str, built: Path, tmp_path: Path
) -> None:
    """scripts/check_wheel.py, which the release workflow runs in a fresh venv before it
    publishes: it passes the installed wheel, and fails when it is not what it imports."""
    venv, python = tmp_path / "venv", tmp_path / "venv" / "bin" / "python"
    run(uv, "venv", "--quiet", "--python", sys.executable, venv)
    wheel = built / f"{NAME}-{VERSION}-py3-none-any.whl"
    run(uv, "pip", "install", "--quiet", "--python", python, "--constraint", LOCK, wheel)

    out = run(python, "-I", CHECK_WHEEL, VERSION, cwd=tmp_path)
    assert out.startswith(f"Wheel checked: authpi-worker {VERSION} from {venv}")
    assert "no token 401, a minted token verified, testing imports" in out

    # The same venv with src/ first on the path: the check sees the checkout, and refuses.
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    env.pop("VIRTUAL_ENV", None)
    source = subprocess.run(  # noqa: S603 - the venv's python, the project's script
        [str(python), str(CHECK_WHEEL), VERSION],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert source.returncode == 1, source.stdout + source.stderr
    assert "::error title=Wheel check failed::authpi_worker was imported from" in source.stdout
    assert str(PACKAGE / "__init__.py") in source.stdout

    # Another version than the tag's: refused.
    other = subprocess.run(  # noqa: S603 - the venv's python, the project's script
        [str(python), "-I", str(CHECK_WHEEL), f"{VERSION}.post1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert other.returncode == 1
    assert f"installed {VERSION}, expected {VERSION}.post1" in other.stdout
