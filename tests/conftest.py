from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from app import ROUTES
from authpi_worker import Isolate, Reply, Request, dispatch
from authpi_worker.auth import Verifier
from authpi_worker.config import AUDIENCE_VAR, ISSUER_VAR, Settings
from authpi_worker.testing.keys import SigningKey, make_key
from authpi_worker.testing.tokens import AUDIENCE
from scripts.local_worker import httpx_fetcher
from tests.support.issuer import FakeIssuer, running


class Clock:
    """An injectable clock: tests move time instead of sleeping."""

    def __init__(self) -> None:
        # A whole second ahead of real time: tokens minted later in the test take their iat
        # from the real clock, and must not look issued in the future.
        self.now = float(int(time.time()) + 2)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Call = Callable[..., Awaitable[Reply]]
DECLARED = "(the payload's length)"  # call()'s default Content-Length: the body's own
WORKER = "https://authpi-worker.example"  # the Worker's own origin in the tests' request URLs


@pytest.fixture(scope="session")
def keys() -> dict[str, SigningKey]:
    """One key per supported algorithm, made once per test session."""
    return {alg: make_key(alg, f"{alg.lower()}-1") for alg in ("RS256", "EdDSA", "ES256")}


@pytest.fixture
def issuer(keys: dict[str, SigningKey]) -> Iterator[FakeIssuer]:
    """A fake issuer on 127.0.0.1 publishing the three keys; ES256 signs by default."""
    with running(FakeIssuer(keys=list(keys.values()))) as server:
        yield server


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def env(issuer: FakeIssuer) -> dict[str, object]:
    """The Worker's variables: a test may change them before its first request."""
    return {ISSUER_VAR: issuer.url, AUDIENCE_VAR: AUDIENCE}


@pytest.fixture
def isolate(clock: Clock) -> Isolate:
    """One isolate's state, as entry.py keeps it at module level, on the test's clock."""
    return Isolate(httpx_fetcher, clock)


@pytest.fixture
def verifier(isolate: Isolate, env: dict[str, object]) -> Verifier:
    """The Verifier the isolate uses for env: its caches are the ones requests fill."""
    return isolate.verifier(env.get)


@pytest.fixture
def settings(verifier: Verifier) -> Settings:
    return verifier.settings


@pytest.fixture
def call(isolate: Isolate, env: dict[str, object]) -> Call:
    """Drive the full request path: (path, token or authorization, …) → Reply."""

    async def call(
        path: str,
        token: str | None = None,
        *,
        authorization: str | None = None,
        method: str = "GET",
        dpop: str | None = None,
        origin: str | None = None,
        preflight: str | None = None,
        payload: bytes | None = None,
        content_length: str | None = DECLARED,
    ) -> Reply:
        """payload: the request body, its length declared unless content_length says
        otherwise (None: no Content-Length, as a chunked body has none)."""
        header = (
            authorization
            if authorization is not None
            else (f"Bearer {token}" if token is not None else None)
        )
        data = payload or b""

        async def body() -> bytes:
            return data

        if content_length is DECLARED:
            content_length = str(len(data)) if payload is not None else None
        request = Request(
            method, WORKER + path, header, dpop, origin, preflight, body, content_length
        )
        return await dispatch(ROUTES, request, isolate, env.get)

    return call


def body(reply: Reply) -> Any:
    assert reply.headers["content-type"] == "application/json"
    return json.loads(reply.body)
