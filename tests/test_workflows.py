"""`make lint`'s workflow check: jactionlint (from .venv, offline, with .venv's shellcheck) passes
the project's workflows and fails a broken one, for each of the mistakes it is there to catch."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

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


# --- release.yml: what a release may do, read from jactionlint's own parse ------------------

RELEASE = PROJECT / ".github" / "workflows" / "release.yml"
TAG_PATTERN = "v*.*.*"
VERSION_COMMENT = re.compile(r"@[0-9a-f]{40} # v\d+(\.\d+){1,2}$")  # a full SHA, its release named
TAG_CHECK = 'scripts/check_release.py "$GITHUB_REF_NAME" dist'


def workflow_facts(workflow: Path) -> dict[str, Any]:
    """jactionlint's parse of one workflow (--export-facts): events, permissions, jobs, steps."""
    done = jactionlint("--export-facts", str(workflow), cwd=workflow.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    (facts,) = json.loads(done.stdout)["workflows"]
    assert facts["parsed"], facts
    return cast(dict[str, Any], facts)


def job_sources(text: str, facts: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    """Each job as written: job id -> (the job's source, the source of each of its steps), cut
    at the lines where the parse says each job and each step begins."""
    lines = text.splitlines()
    job_starts = sorted(job["location"]["line"] for job in facts["jobs"])
    sources: dict[str, tuple[str, list[str]]] = {}
    for job in facts["jobs"]:
        begin = job["location"]["line"]
        end = next((line for line in job_starts if line > begin), len(lines) + 1)
        starts = [step["location"]["line"] for step in job.get("steps", [])]
        stops = [*starts[1:], end] if starts else []
        steps = ["\n".join(lines[a - 1 : b - 1]) for a, b in zip(starts, stops, strict=True)]
        sources[job["id"]] = ("\n".join(lines[begin - 1 : end - 1]), steps)
    return sources


def needed(jobs: dict[str, dict[str, Any]], job_id: str) -> set[str]:
    """Every job that job_id waits for, directly or through another."""
    found: set[str] = set()
    waiting = list(jobs[job_id].get("needs", []))
    while waiting:
        need = waiting.pop()
        if need not in found:
            found.add(need)
            waiting.extend(jobs[need].get("needs", []))
    return found


def release_problems(workflow: Path) -> list[str]:
    """What is wrong with a release workflow, one line each; empty when nothing is."""
    text = workflow.read_text("utf-8")
    facts = workflow_facts(workflow)
    jobs = {job["id"]: job for job in facts["jobs"]}
    sources = {job_id: steps for job_id, (_, steps) in job_sources(text, facts).items()}
    problems = []

    events = [(event["name"], event.get("filters")) for event in facts["events"]]
    if events != [("push", {"tags": [TAG_PATTERN]})]:
        problems.append(f"trigger: {events}, not only a push of a {TAG_PATTERN} tag")

    top = facts["permissions"]
    if not top["declared"] or set(top["scopes"].values()) - {"read", "none"}:
        problems.append(f"top-level permissions: {top['scopes']}, not read-only")
    for job_id, job in jobs.items():
        scopes = job["effective_permissions"]["scopes"]
        writes = {scope for scope, level in scopes.items() if level == "write"}
        allowed = {"id-token"} if job_id == "publish" else set()
        if writes - allowed or scopes.get("*") == "write":
            problems.append(f"job {job_id}: writes {sorted(writes)}, id-token only in publish")

    for line_number, line in enumerate(text.splitlines(), 1):
        uses = re.match(r"\s*(?:- )?uses:\s*(\S+)(.*)$", line)
        if uses and not uses.group(1).startswith("./") and not VERSION_COMMENT.search(line):
            problems.append(f"line {line_number}: {uses.group(1)} is not pinned by SHA # vX.Y.Z")

    publish = jobs.get("publish")
    if publish is None:
        return [*problems, "no publish job"]
    publish_steps = sources["publish"]
    if publish["effective_permissions"]["scopes"].get("id-token") != "write":
        problems.append("publish: no id-token: write, so no trusted publishing")
    if (publish.get("environment") or {}).get("value") != "pypi":
        problems.append(f"publish: environment {publish.get('environment')}, not pypi")
    if "github.ref_type == 'tag'" not in publish.get("if", ""):
        problems.append(f"publish: if {publish.get('if')!r} does not limit it to tags")
    uploads = [i for i, step in enumerate(publish_steps) if "uv publish" in step]
    checks = [i for i, step in enumerate(publish_steps) if TAG_CHECK in step]
    if len(uploads) != 1 or not checks or min(checks) > uploads[0]:
        problems.append(
            "publish: the tag/version check (check_release.py) must run before uv publish"
        )
    for job_id, steps in sources.items():
        if job_id != "publish" and any("uv publish" in step for step in steps):
            problems.append(f"job {job_id} publishes: only the publish job may")

    testers = {i for i, steps in sources.items() if any("check_wheel.py" in s for s in steps)}
    builders = {i for i, steps in sources.items() if any("make dist" in s for s in steps)}
    if not testers & needed(jobs, "publish"):
        problems.append("publish: does not need the job that tests the wheel (check_wheel.py)")
    for tester in testers:
        matrix = re.findall(r"python: \[(.*)\]", job_sources(text, facts)[tester][0])
        if not builders & needed(jobs, tester) or matrix != ['"3.11", "3.14"']:
            problems.append(f"job {tester}: does not test the built wheel on 3.11 and 3.14")
    return problems


def test_the_release_workflow_keeps_its_rules() -> None:
    assert release_problems(RELEASE) == []


def test_the_release_publishes_the_files_it_built_and_tested() -> None:
    facts = workflow_facts(RELEASE)
    sources = {job: steps for job, (_, steps) in job_sources(RELEASE.read_text(), facts).items()}
    uploads = [step for step in sources["build"] if "actions/upload-artifact@" in step]
    downloads = [
        step for job in ("wheel", "publish") for step in sources[job] if "download" in step
    ]
    assert len(uploads) == 1 and "name: dist" in uploads[0]
    assert len(downloads) == 2 and all("name: dist" in step for step in downloads)
    assert "uv publish --trusted-publishing always dist/*" in "\n".join(sources["publish"])


# Each mistake the rules exist to stop, made in a copy of release.yml: (old, new, problem).
RELEASE_MISTAKES = {
    "branch trigger": (f'tags: ["{TAG_PATTERN}"]', "branches: [main]", "trigger"),
    "write at the top": ("permissions:\n  contents: read", "permissions: write-all", "top-level"),
    "id-token in build": (
        "    name: Build the sdist and the wheel\n",
        "    name: Build\n    permissions:\n      id-token: write\n",
        "job build: writes ['id-token']",
    ),
    "a tag, not a SHA": (
        "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f # v7.0.0",
        "actions/upload-artifact@v7",
        "actions/upload-artifact@v7 is not pinned",
    ),
    "no version comment": (
        "@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f # v7.0.0",
        "@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f",
        "is not pinned by SHA",
    ),
    "no tag check": (
        f"      - run: python3 {TAG_CHECK}\n      - uses: astral",
        "      - uses: astral",
        "tag/version check",
    ),
    "one Python": ('python: ["3.11", "3.14"]', 'python: ["3.14"]', "on 3.11 and 3.14"),
    "not the built wheel": ("    needs: build\n", "", "does not test the built wheel"),
    "untested wheel": ("needs: [wheel, test]", "needs: [test]", "does not need the job that tests"),
    "no environment": ("    environment: pypi\n", "", "environment None"),
    "any ref": (
        "    if: github.event_name == 'push' && github.ref_type == 'tag'\n",
        "",
        "limit it to tags",
    ),
}


@pytest.mark.parametrize("mistake", RELEASE_MISTAKES)
def test_the_release_rules_find_each_mistake(mistake: str, tmp_path: Path) -> None:
    old, new, problem = RELEASE_MISTAKES[mistake]
    text = RELEASE.read_text("utf-8")
    assert text.count(old) >= 1, old
    workflow = tmp_path / ".github" / "workflows" / "release.yml"
    workflow.parent.mkdir(parents=True)
    workflow.write_text(text.replace(old, new))
    problems = release_problems(workflow)
    assert any(problem in found for found in problems), problems
