"""`make lint`'s workflow check: jactionlint (from .venv, offline, with .venv's shellcheck) passes
the project's workflows and fails a broken one, for each of the mistakes it is there to catch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # .venv/bin: jactionlint, shellcheck and ruff
OPTIONS = ("--no-online", f"--ruff={BIN / 'ruff'}")  # as the Makefile's lint target

BROKEN = """\
name: Broken
on:
  push:
    branch: main
permissions:
  contents: read
concurrency:
  group: broken-${{ github.ref }}
  cancel-in-progress: true
jobs:
  test:
    runs-on: ubuntu-latest
    timeout-minutes: 5
    needs: build
    steps:
      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1
        with:
          persist-credential: false
      - run: cp $FILES /tmp
      - run: echo "${{ github.event.head_commit.message }}"
"""
# Rule ID → the mistake in BROKEN it names.
EXPECTED = {
    "workflow-syntax": 4,  # push: branch (for branches)
    "undefined-job-needs": 11,  # needs a job that does not exist
    "unknown-action-input": 18,  # a typo'd input of a SHA-pinned action, known by its comment
    "shellcheck": 19,  # SC2086, unquoted
    "template-injection": 20,  # an untrusted expression expanded into the script
}


def jactionlint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    program = BIN / "jactionlint"
    if not program.exists():  # never skipped: it is in the dev group
        pytest.fail(f"{program} is missing: make install")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(  # noqa: S603 - the venv's jactionlint, fixed arguments
        [str(program), *OPTIONS, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_projects_workflows_pass() -> None:
    done = jactionlint(cwd=PROJECT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_broken_workflow_fails_with_each_mistake_found(tmp_path: Path) -> None:
    workflow = tmp_path / ".github" / "workflows" / "broken.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(BROKEN)
    done = jactionlint("--format", "json", str(workflow), cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    found = {(finding["id"], finding["line"]) for finding in json.loads(done.stdout)}
    assert set(EXPECTED.items()) <= found, found
