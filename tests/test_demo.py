"""The `make demo` path end to end: real processes (scripts/issuer, scripts/serve,
scripts/get-token, scripts/curl-matrix), real curl, and no process left behind."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from authpi_worker.testing.tokens import payload_of

PROJECT = Path(__file__).resolve().parent.parent
# A row of the matrix: number, method, path, what the request carries, ..., its outcome.
ROW = re.compile(
    r"^(\d+)\s+(GET|OPTIONS|POST) (\S+)\s+(.*?)\s{2}.*\s(PASS|FAIL|SKIP)$", re.MULTILINE
)
# With an AUTHPI_AUDIENCE the tokens do not name, every row that needs a token accepted fails:
# the quickstart's four, the six org rows, and the DPoP rows whose proof must be judged (a
# refused token never gets that far). Any Worker with the same contract fails the same rows.
FAILED_WITH_ANOTHER_AUDIENCE = ["3", "4", "5", "8", *map(str, range(10, 16)), "17", "19", "20"]
URLS = re.compile(r"^(?:fake AuthPI issuer|worker)\s+(http://\S+)", re.MULTILINE)


def demo(*args: str) -> list[str]:
    """What `make demo` runs once .venv is installed (with PYTHONPATH=src)."""
    return [sys.executable, "-m", "scripts.demo", *args]


def environment(marker: Path) -> dict[str, str]:
    """No stray configuration from the developer's shell; a marker every descendant inherits,
    so that a process left behind is found by its environment."""
    drop = {"AUTHPI_ISSUER_URL", "AUTHPI_AUDIENCE", "DEMO_AUDIENCE", "TOKEN", "TOKEN_NO_SCOPE"}
    drop |= {"PERSON_TOKEN", "AGENT_TOKEN", "ORG_ID", "OTHER_ORG_ID", "CLIENT_ID", "CLIENT_SECRET"}
    kept = {k: v for k, v in os.environ.items() if k not in drop}
    return {**kept, "DEMO_TEST_MARKER": str(marker), "PYTHONPATH": str(PROJECT / "src")}


def refused(url: str) -> bool:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line or environment contains text (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            mentions = any(
                text.encode() in (entry / f).read_bytes() for f in ("cmdline", "environ")
            )
            if mentions and (entry / "stat").read_text().split()[2] != "Z":  # not a zombie
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def run_demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """make demo's script, its keys and marker in tmp_path, to completion."""
    return subprocess.run(  # noqa: S603 - our own scripts
        demo("--keys", str(tmp_path), "--dpop-key", str(tmp_path / "dpop.pem"), *args),
        cwd=PROJECT,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_nothing_left(output: str, marker: str) -> None:
    urls = URLS.findall(output)
    assert len(urls) == 2, output
    assert all(refused(url) for url in urls)
    assert processes_mentioning(marker) == []


def test_make_demo_prints_the_whole_matrix_as_pass_and_stops_both_servers(
    tmp_path: Path,
) -> None:
    done = run_demo(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = ROW.findall(done.stdout)
    assert [(n, outcome) for n, *_, outcome in rows] == [(str(i), "PASS") for i in range(1, 21)]
    assert [(method, path, what) for _, method, path, what, _ in rows] == [
        ("GET", "/", "no token"),
        ("GET", "/me", "no token"),
        ("GET", "/me", "valid token"),
        ("GET", "/reports", "token with read:reports"),
        ("GET", "/reports", "token without read:reports"),
        ("GET", "/me", "signature: one character edited"),
        ("GET", "/reports", "payload edited: +read:reports, old signature"),
        ("GET", "/no-such-route", "valid token"),
        ("GET", "/.well-known/oauth-protected-resource", "no token"),
        ("GET", "/orgs/org_acme/reports", "person, member: reports:read"),
        ("GET", "/orgs/org_acme/reports", "agent, member: reports:read"),
        ("GET", "/orgs/org_globex/reports", "person, not a member of it"),
        ("POST", "/orgs/org_acme/reports", "agent: may read, not write"),
        ("POST", "/orgs/org_acme/reports", "person, member: reports:write"),
        ("POST", "/orgs/org_acme/reports", "person, a body not JSON"),
        ("OPTIONS", "/me", "preflight from http://localhost:5173"),
        ("GET", "/me", "DPoP token, fresh proof"),
        ("GET", "/me", "the DPoP token as Bearer"),
        ("GET", "/me", "DPoP token, replayed proof"),
        ("GET", "/me", "DPoP token, proof for /reports"),
    ]
    assert "20/20 passed" in done.stdout
    assert "201 org=org_acme by=usr_demo" in done.stdout
    assert_nothing_left(done.stdout, str(tmp_path))


def test_a_broken_audience_makes_the_matrix_and_the_demo_fail(tmp_path: Path) -> None:
    done = run_demo(tmp_path, "--audience", "https://not-the-tokens-audience.example")
    assert done.returncode == 1, done.stdout + done.stderr
    failed = re.findall(r"^(\d+)\s.*\sFAIL$", done.stdout, re.MULTILINE)
    assert failed == FAILED_WITH_ANOTHER_AUDIENCE
    assert "401 invalid_token (unexpected audience)" in done.stdout
    assert '"reason":"wrong_audience"' in done.stdout  # the worker's log, to explain it
    assert_nothing_left(done.stdout, str(tmp_path))


def test_a_server_that_cannot_start_fails_the_demo_and_leaves_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_demo(tmp_path, "--port", str(port))
    assert done.returncode == 1
    assert "worker exited before it was ready" in done.stderr
    assert processes_mentioning(str(tmp_path)) == []


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_make_dev_prints_pasteable_tokens_and_stops_both_servers(
    tmp_path: Path, stop: signal.Signals
) -> None:
    process = subprocess.Popen(  # noqa: S603 - our own scripts
        demo(
            "--dev",
            *("--keys", str(tmp_path), "--dpop-key", str(tmp_path / "dpop.pem")),
            *("--port", "0", "--issuer-port", "0"),
        ),
        cwd=PROJECT,
        env=environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output = ""
    try:
        deadline = time.monotonic() + 60
        while "Ctrl-C stops both servers." not in output:
            assert time.monotonic() < deadline and process.poll() is None, output
            output += process.stdout.readline()
        exports = dict(re.findall(r"^export (\w*TOKEN\w*)=(eyJ\S+)$", output, re.MULTILINE))
        assert set(exports) == {"TOKEN", "TOKEN_NO_SCOPE", "PERSON_TOKEN", "AGENT_TOKEN"}
        orgs = re.findall(r"^export ORG_ID=\S+ OTHER_ORG_ID=\S+$", output, re.MULTILINE)
        assert len(orgs) == 1
        dpop = re.findall(r"^export DPOP_TOKEN=\$\(.*\)$", output, re.MULTILINE)
        assert len(dpop) == 1
        base = re.search(r"^worker\s+(http://\S+)", output, re.MULTILINE)
        assert base is not None
        # The printed curl commands, pasted into a shell with the printed exports.
        commands = re.findall(r"^curl -i .*$", output, re.MULTILINE)
        assert len(commands) == 13
        script = "".join(f"export {k}={v}\n" for k, v in exports.items()) + orgs[0] + "\n"
        script += dpop[0] + "\n"
        script += "".join(f"{c} -s -o /dev/null -w '%{{http_code}} '\n" for c in commands)
        statuses = subprocess.run(  # noqa: S603 - our own scripts
            ["bash", "-c", script],  # noqa: S607
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
        quickstart = ["200", "401", "200", "200", "403", "200"]
        assert statuses == [*quickstart, "200", "200", "403", "403", "201", "204", "200"]
        # The printed commands that mint fresh tokens work too.
        fresh = re.findall(r"^export (PERSON_TOKEN|AGENT_TOKEN)=(\$\(.*\))$", output, re.MULTILINE)
        assert [name for name, _ in fresh] == ["PERSON_TOKEN", "AGENT_TOKEN"]
        minted = subprocess.run(  # noqa: S603 - our own scripts
            ["bash", "-c", "".join(f"echo {command}\n" for _, command in fresh)],  # noqa: S607
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()
        assert [payload_of(token)["sub"] for token in minted] == ["usr_demo", "agt_demo_reader"]
    finally:
        process.send_signal(stop)
        code = process.wait(15)
        output += process.stdout.read()
        process.stdout.close()
    assert code == 130, output
    assert "stopping the servers" in output
    assert_nothing_left(output, str(tmp_path))
