from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from authpi_worker.app import handle
from authpi_worker.auth import Verifier
from authpi_worker.config import Settings
from authpi_worker.responses import Reply
from scripts.local_worker import httpx_fetcher
from tests.support.issuer import FakeIssuer, running
from tests.support.keys import SigningKey, make_key
from tests.support.tokens import AUDIENCE


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
def settings(issuer: FakeIssuer) -> Settings:
    return Settings(issuer=issuer.url, audience=AUDIENCE)


@pytest.fixture
def verifier(settings: Settings, clock: Clock) -> Verifier:
    return Verifier(settings, httpx_fetcher, clock)


@pytest.fixture
def call(verifier: Verifier) -> Call:
    """Drive the full request path: (path, token or authorization) → Reply."""

    async def call(
        path: str, token: str | None = None, *, authorization: str | None = None
    ) -> Reply:
        header = (
            authorization
            if authorization is not None
            else (f"Bearer {token}" if token is not None else None)
        )
        return await handle(path, header, lambda: verifier)

    return call


def body(reply: Reply) -> Any:
    assert reply.headers["content-type"] == "application/json"
    return json.loads(reply.body)
