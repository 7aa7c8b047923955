"""authpi_worker.testing for users: the in-process Issuer (its fetcher, its tokens, serve), the
pytest fixtures, and docs/fastapi.md's test snippet, run exactly as printed so the page cannot
rot."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from authpi_worker import Isolate, Reply
from authpi_worker.authorization import caller_kind, membership_scopes
from authpi_worker.jwks import COOLDOWN, Edge
from authpi_worker.starlette import AuthPI
from authpi_worker.testing import Issuer, jkt, make_key, organization, payload_of
from tests.conftest import Clock

PROJECT = Path(__file__).resolve().parent.parent
DOC = PROJECT / "docs" / "fastapi.md"
SNIPPET_HEADING = "## Testing your API"
TIMEOUT = 120  # seconds for a pytest child


def snippet(text: str, heading: str = SNIPPET_HEADING) -> str:
    """The first ```python block after the heading, as printed."""
    after = text.split(f"\n{heading}\n", 1)[1]
    found = re.search(r"^```python\n(.*?)^```$", after, re.MULTILINE | re.DOTALL)
    assert found is not None, f"no python block under {heading}"
    return found.group(1)


def run_pytest(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in a child, in directory (none of this project's settings), with src/ and the
    example's modules importable as an installed package and app would be."""
    paths = [str(PROJECT / "src"), str(PROJECT / "examples" / "fastapi" / "src")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    return subprocess.run(  # noqa: S603 - this interpreter's pytest, our files
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def test_the_docs_test_snippet_passes_as_printed(tmp_path: Path) -> None:
    code = snippet(DOC.read_text("utf-8"))
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    (tmp_path / "test_snippet.py").write_text(code)
    done = run_pytest(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_the_snippet_check_can_fail(tmp_path: Path) -> None:
    """The same snippet, expecting 200 where the example answers 403: the child fails."""
    code = snippet(DOC.read_text("utf-8")).replace("== 403", "== 200")
    (tmp_path / "test_snippet.py").write_text(code)
    done = run_pytest(tmp_path)
    assert done.returncode == 1 and "1 failed" in done.stdout


def test_the_fixtures_load_as_a_plugin(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["authpi_worker.testing.fixtures"]\n')
    (tmp_path / "test_fixtures.py").write_text(
        "def test_fixtures(authpi_issuer, authpi_dpop_key):\n"
        "    headers = authpi_issuer.dpop(authpi_dpop_key, 'GET', 'https://api.example.com/me')\n"
        "    assert headers['authorization'].startswith('DPoP ') and headers['dpop']\n"
    )
    done = run_pytest(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_the_fetcher_serves_the_key_set_at_the_issuers_jwks_url() -> None:
    issuer = Issuer()
    fetched = await issuer.fetch(f"{issuer.url}/jwks.json", Edge(600))
    assert (fetched.status, json.loads(fetched.body)) == (200, issuer.jwks())
    assert fetched.cache_control == "public, max-age=600"
    assert (await issuer.fetch("https://elsewhere.test/jwks.json", Edge(None))).status == 404
    issuer.status = 503
    assert (await issuer.fetch(f"{issuer.url}/jwks.json", Edge(None))).status == 503
    assert issuer.fetches == 3


def test_tokens_carry_the_caller_kind_memberships_and_binding() -> None:
    issuer = Issuer()
    key = make_key("ES256")
    person = payload_of(
        issuer.token(
            caller_kind="person",
            organizations=[organization("org_1", "reports:read")],
            dpop_key=key,
            scope=None,
            tenant="t1",
        )
    )
    assert caller_kind(person) == "person"
    assert membership_scopes(person, "org_1") == ("reports:read",)
    assert person["cnf"] == {"jkt": jkt(key)} and "scope" not in person
    assert person["tenant"] == "t1"
    assert (person["iss"], person["aud"]) == (issuer.url, issuer.audience)
    assert caller_kind(payload_of(issuer.token(caller_kind="agent"))) == "agent"
    assert caller_kind(payload_of(issuer.token())) == "client"


async def test_its_tokens_verify_for_real_and_a_rotation_is_followed() -> None:
    issuer = Issuer()
    clock = Clock()
    isolate = Isolate(issuer.fetch, clock)
    env = issuer.env()

    async def status(token: str) -> int:
        result = await isolate.authenticate(
            env.get, f"Bearer {token}", method="GET", url="https://api.example.com/me"
        )
        return result.status if isinstance(result, Reply) else 200

    assert await status(issuer.token()) == 200
    other = Issuer(keys=[make_key("ES256", issuer.signer.kid)])  # same kid, another key
    assert await status(other.token()) == 401
    issuer.rotate()
    clock.advance(COOLDOWN)
    assert await status(issuer.token()) == 200  # an unknown kid refetches the set
    assert issuer.fetches == 2


def test_serve_swaps_the_variables_and_caches_then_restores_them() -> None:
    auth = AuthPI(env={"AUTHPI_ISSUER_URL": "https://x.test/i", "AUTHPI_AUDIENCE": "a"})
    before = auth.env, auth.isolate
    issuer = Issuer()
    with issuer.serve(auth, CORS_ALLOWED_ORIGINS="https://app.example.com"):
        assert auth.env == {**issuer.env(), "CORS_ALLOWED_ORIGINS": "https://app.example.com"}
        assert auth.isolate is not before[1]
    assert (auth.env, auth.isolate) == before


def test_a_failure_inside_serve_restores_too() -> None:
    auth = AuthPI()
    before = auth.isolate
    with pytest.raises(RuntimeError), Issuer().serve(auth):
        raise RuntimeError("a failed test")
    assert (auth.env, auth.isolate) == (None, before)


def test_a_fresh_isolate_fetches_once_for_many_tokens() -> None:
    issuer = Issuer()
    isolate = Isolate(issuer.fetch)

    async def many() -> None:
        for _ in range(5):
            await isolate.authenticate(
                issuer.env().get, f"Bearer {issuer.token()}", method="GET", url="https://a.b/me"
            )

    asyncio.run(many())
    assert issuer.fetches == 1
