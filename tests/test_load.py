"""scripts/load.py works: tiny counts through the real scripts/serve, and it fails loudly on a
wrong answer. (The load itself is `make load`: a benchmark-style check, not a timed test.)"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from scripts import load
from tests.support.issuer import FakeIssuer


def _total(output: str) -> tuple[int, int, int]:
    found = re.search(r"^total\s+(\d+)\s+(\d+)\s+(\d+)$", output, re.MULTILINE)
    assert found, output
    sent, right, wrong = found.groups()
    return int(sent), int(right), int(wrong)


def test_four_clients_through_scripts_serve_get_every_answer_right(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert load.main(["--clients", "4", "--requests", "25", "--pool", "4", "--burst", "16"]) == 0
    output = capsys.readouterr().out
    assert _total(output) == (100, 100, 0)
    # The cold burst: 16 requests at once on the fresh Worker, one fetch for them all.
    assert re.search(
        r"^cold burst: 16 concurrent requests on a fresh Worker: 1 JWKS fetch", output, re.M
    )
    assert "16/16 right" in output
    assert "JWKS fetches by the Worker: 1 " in output
    assert "OK: every answer exactly right" in output
    for kind in ("valid /me", "expired", "forged: other key, real kid", "no token"):
        assert re.search(rf"^{re.escape(kind)}\s+GET", output, re.MULTILINE), kind


def test_a_wrong_answer_fails_the_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Expect 200 for expired tokens: the Worker (rightly) says 401, so the load must fail."""
    build = load.build_kinds

    def wrong_expectation(issuer: FakeIssuer, pool: int) -> list[load.Kind]:
        kinds = build(issuer, pool)
        expired = next(kind for kind in kinds if kind.name == "expired")
        expired.probes[:] = [dataclasses.replace(p, status=200) for p in expired.probes]
        return kinds

    monkeypatch.setattr(load, "build_kinds", wrong_expectation)
    args = ["--clients", "2", "--requests", "40", "--pool", "2", "--in-process", "--seed", "3"]
    args += ["--burst", "4"]
    assert load.main(args) == 1
    output = capsys.readouterr().out
    sent, right, wrong = _total(output)
    assert wrong > 0 and right + wrong == sent == 80
    assert "expired GET /me: status 401, expected 200" in output
    assert "FAILED" in output


def test_a_burst_costing_more_fetches_than_allowed_fails_the_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Allow the cold burst no fetch at all: its one fetch must then fail the run."""
    monkeypatch.setattr(load, "COLD_BURST_FETCHES", 0)
    args = ["--clients", "1", "--requests", "1", "--burst", "4", "--in-process"]
    assert load.main(args) == 1
    output = capsys.readouterr().out
    assert "4 concurrent requests on a fresh Worker: 1 JWKS fetch(es) (at most 0 allowed)" in output
    assert "the cold burst FAILED" in output
    assert output.rstrip().endswith("FAILED")


PROBE = load.Probe("valid /me", "/me", "Bearer t", 200, b'{"sub":"a"}')
RIGHT: dict[str, Any] = {
    "status": 200,
    "headers": {"content-type": "application/json"},
    "body": b'{"sub":"a"}',
}


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"status": 401}, "status 401, expected 200"),
        (
            {"body": b'{"sub": "a"}'},
            "body",
        ),  # same JSON, other bytes: not what Response.json writes
        ({"headers": {"content-type": "text/plain"}}, "content-type"),
        ({"headers": {**RIGHT["headers"], "www-authenticate": "Bearer"}}, "WWW-Authenticate"),
        ({"headers": {**RIGHT["headers"], "retry-after": "5"}}, "Retry-After"),
    ],
)
def test_check_names_what_is_wrong(change: dict[str, Any], complaint: str) -> None:
    assert load.check(PROBE, **RIGHT) is None
    problem = load.check(PROBE, **{**RIGHT, **change})
    assert problem is not None and complaint in problem
