"""scripts/check_release.py, the release's guard, run as the workflow runs it (a process, the
standard library only): a tag that is not pyproject.toml's version, or a dist directory that
is not exactly that version's sdist and wheel, is refused with a GitHub error annotation."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
SCRIPT = PROJECT / "scripts" / "check_release.py"
PYPROJECT = '[project]\nname = "authpi-worker"\nversion = "0.3.0"\n'
SDIST, WHEEL = "authpi_worker-0.3.0.tar.gz", "authpi_worker-0.3.0-py3-none-any.whl"


def check(*args: str | Path, pyproject: Path | None = None) -> subprocess.CompletedProcess[str]:
    options = ["--pyproject", str(pyproject)] if pyproject else []
    return subprocess.run(  # noqa: S603 - this interpreter, the project's script
        [sys.executable, "-I", str(SCRIPT), *map(str, args), *options],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    dist = tmp_path / "dist"
    dist.mkdir()
    for name in (SDIST, WHEEL, ".gitignore"):  # uv build writes the .gitignore
        (dist / name).write_bytes(b"")
    return tmp_path


def test_the_tag_of_pyprojects_version_and_its_two_files_pass(project: Path) -> None:
    done = check("v0.3.0", project / "dist", pyproject=project / "pyproject.toml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"Release v0.3.0: authpi-worker 0.3.0: {WHEEL}, {SDIST}"


@pytest.mark.parametrize("tag", ["v0.3.1", "v0.2.0", "0.3.0", "v0.3", "v0.3.0rc1", "v0.3.0 "])
def test_a_tag_that_is_not_the_version_is_refused(project: Path, tag: str) -> None:
    done = check(tag, project / "dist", pyproject=project / "pyproject.toml")
    assert done.returncode == 1
    assert done.stdout.startswith("::error title=Release refused::")
    assert f"the tag {tag!r} is not the version of pyproject.toml ('0.3.0')" in done.stdout


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ("authpi_worker-0.2.0-py3-none-any.whl", "extra ['authpi_worker-0.2.0-py3-none-any.whl']"),
        ("-" + SDIST, f"missing ['{SDIST}']"),
        ("-" + WHEEL, f"missing ['{WHEEL}']"),
        ("authpi_worker-0.3.0-cp311-cp311-linux_x86_64.whl", "extra ['authpi_worker-0.3.0-cp311"),
    ],
)
def test_a_dist_that_is_not_exactly_the_versions_files_is_refused(
    project: Path, change: str, named: str
) -> None:
    dist = project / "dist"
    if change.startswith("-"):
        (dist / change[1:]).unlink()
    else:
        (dist / change).write_bytes(b"")
    done = check("v0.3.0", dist, pyproject=project / "pyproject.toml")
    assert done.returncode == 1
    assert done.stdout.startswith("::error title=Release refused::")
    assert named in done.stdout


def test_no_dist_directory_is_refused(project: Path) -> None:
    done = check("v0.3.0", project / "nothing", pyproject=project / "pyproject.toml")
    assert done.returncode == 1
    assert f"missing ['{WHEEL}', '{SDIST}']" in done.stdout


def test_a_dynamic_version_is_refused(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "authpi-worker"\ndynamic = ["version"]\n')
    done = check("v0.3.0", pyproject=pyproject)
    assert done.returncode == 1
    assert "no static [project] name and version" in done.stdout


def test_the_projects_own_tag_is_its_version() -> None:
    """Without --pyproject, the script reads this project's pyproject.toml."""
    version = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["version"]
    assert check(f"v{version}").returncode == 0
    assert check(f"v{version}.1").returncode == 1
