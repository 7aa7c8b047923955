"""`make demo-fastapi`: the FastAPI example (examples/fastapi) in a real uvicorn process, the
fake issuer in another, tokens from scripts/get-token, and scripts/curl-matrix's twenty rows
with real curl: the main Worker's HTTP contract, checked by the same script."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.test_demo import (
    FAILED_WITH_ANOTHER_AUDIENCE,
    PROJECT,
    ROW,
    assert_nothing_left,
    demo,
    environment,
)


def run_demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own scripts
        demo("--fastapi", "--keys", str(tmp_path), "--dpop-key", str(tmp_path / "k.pem"), *args),
        cwd=PROJECT,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_fastapi_example_under_uvicorn_passes_the_whole_curl_matrix(tmp_path: Path) -> None:
    done = run_demo(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = ROW.findall(done.stdout)
    assert [(n, outcome) for n, *_, outcome in rows] == [(str(i), "PASS") for i in range(1, 21)]
    assert "20/20 passed" in done.stdout
    assert "Uvicorn running on" not in done.stdout  # the server's log is kept, not printed
    assert_nothing_left(done.stdout, str(tmp_path))


def test_a_broken_audience_fails_the_same_rows_as_the_main_worker(tmp_path: Path) -> None:
    done = run_demo(tmp_path, "--audience", "https://not-the-tokens-audience.example")
    assert done.returncode == 1, done.stdout + done.stderr
    failed = [n for n, *_, outcome in ROW.findall(done.stdout) if outcome == "FAIL"]
    assert failed == FAILED_WITH_ANOTHER_AUDIENCE
    assert '"reason":"wrong_audience"' in done.stdout  # uvicorn's stderr: the core's log line
    assert_nothing_left(done.stdout, str(tmp_path))
