"""Requests to an ASGI app in-process (httpx.ASGITransport) and to the core (`dispatch`), and
what both answered, for the tests that hold the Starlette and FastAPI integrations to the core."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from authpi_worker import Reply
from tests.conftest import WORKER, Call
from tests.support.issuer import FakeIssuer
from tests.support.logs import logged


@dataclass(frozen=True)
class Answer:
    """What both sides must agree on: all but Content-Length, which the core leaves to the
    runtime."""

    status: int
    body: str
    headers: dict[str, str]
    events: list[dict[str, Any]]


def of_reply(reply: Reply, events: list[dict[str, Any]]) -> Answer:
    return Answer(reply.status, reply.body, reply.headers, events)


def of_response(response: httpx.Response, events: list[dict[str, Any]]) -> Answer:
    headers = {k: v for k, v in response.headers.items() if k != "content-length"}
    return Answer(response.status_code, response.text, headers, events)


async def asgi_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client calling app in-process, at the Worker's own origin; a bug in the app
    is its answer (500), not an exception here."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=WORKER) as client:
        yield client


class Both:
    """One request to an ASGI app and to the core; both answers."""

    def __init__(self, call: Call, client: httpx.AsyncClient) -> None:
        self.call, self.client = call, client

    async def __call__(
        self,
        path: str,
        token: str | None = None,
        *,
        authorization: str | None = None,
        method: str = "GET",
        dpop: str | None = None,
        origin: str | None = None,
        preflight: str | None = None,
    ) -> tuple[Answer, Answer]:
        header = authorization if authorization is not None else token and f"Bearer {token}"
        fields = {
            "authorization": header,
            "dpop": dpop,
            "origin": origin,
            "access-control-request-method": preflight,
        }
        headers = {k: v for k, v in fields.items() if v is not None}
        with logged() as events:
            response = await self.client.request(method, path, headers=headers)
        ours = of_response(response, events)
        with logged() as events:
            reply = await self.call(
                path,
                token,
                authorization=authorization,
                method=method,
                dpop=dpop,
                origin=origin,
                preflight=preflight,
            )
        return ours, of_reply(reply, events)


def matrix(issuer: FakeIssuer) -> dict[str, tuple[str, dict[str, Any]]]:
    """The requests whose answers an integration must give exactly as the core: path and
    Both's keywords, by name."""
    valid, unscoped = issuer.mint(sub="client_a"), issuer.mint(scope="read:profile")
    return {
        "root": ("/", {}),
        "root HEAD": ("/", {"method": "HEAD"}),
        "root POST is 405": ("/", {"method": "POST"}),
        "me without a token": ("/me", {}),
        "me with Basic": ("/me", {"authorization": "Basic ZGVtbzpzZWNyZXQ="}),
        "me with an empty Bearer": ("/me", {"authorization": "Bearer"}),
        "me with two tokens": ("/me", {"authorization": f"Bearer {valid}, Bearer {valid}"}),
        "me": ("/me", {"token": valid}),
        "me HEAD": ("/me", {"token": valid, "method": "HEAD"}),
        "me without a scope claim": ("/me", {"token": issuer.mint(scope=None)}),
        "me with a list scope": ("/me", {"token": issuer.mint(scope=["read:reports"])}),
        "reports": ("/reports", {"token": valid}),
        "reports without the scope": ("/reports", {"token": unscoped}),
        "reports with an expired unscoped token": ("/reports", {"token": issuer.mint(exp=1)}),
        "unknown path without a token": ("/admin", {}),
        "unknown path": ("/admin", {"token": valid}),
        "DELETE me without a token": ("/me", {"method": "DELETE"}),
        "DELETE me": ("/me", {"token": valid, "method": "DELETE"}),
        "OPTIONS me without CORS": ("/me", {"method": "OPTIONS", "preflight": "GET"}),
        "metadata": ("/.well-known/oauth-protected-resource", {}),
        "metadata POST": ("/.well-known/oauth-protected-resource", {"method": "POST"}),
        "metadata path-suffixed, not ours": ("/.well-known/oauth-protected-resource/x", {}),
    }


MATRIX = list(matrix(FakeIssuer()))  # the names, for parametrize
