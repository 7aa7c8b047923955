"""Each refusal's status, body and RFC 6750 challenge, byte for byte."""

from __future__ import annotations

import pytest

from authpi_worker.errors import (
    Denied,
    InsufficientScope,
    InvalidToken,
    JwksUnavailable,
    MissingToken,
    ServerMisconfigured,
)
from authpi_worker.responses import json_reply, refusal


@pytest.mark.parametrize(
    ("denied", "status", "body", "headers"),
    [
        (MissingToken(), 401, '{"error":"unauthorized"}', {"www-authenticate": "Bearer"}),
        (
            InvalidToken("expired", "token expired"),
            401,
            '{"error":"unauthorized"}',
            {"www-authenticate": 'Bearer error="invalid_token", error_description="token expired"'},
        ),
        (
            InsufficientScope("read:reports"),
            403,
            '{"error":"insufficient_scope"}',
            {"www-authenticate": 'Bearer error="insufficient_scope", scope="read:reports"'},
        ),
        (JwksUnavailable(7), 503, '{"error":"temporarily_unavailable"}', {"retry-after": "7"}),
        (
            ServerMisconfigured("AUTHPI_AUDIENCE", "is missing"),
            500,
            '{"error":"server_misconfigured"}',
            {},
        ),
        (Denied("other"), 500, '{"error":"internal_error"}', {}),
    ],
)
def test_refusals(denied: Denied, status: int, body: str, headers: dict[str, str]) -> None:
    reply = refusal(denied)
    assert (reply.status, reply.body) == (status, body)
    assert reply.headers == {"content-type": "application/json", **headers}


def test_bodies_are_compact_like_response_json() -> None:
    assert (
        json_reply({"reports": [], "requested_by": "a"}).body == '{"reports":[],"requested_by":"a"}'
    )


def test_a_non_finite_number_is_never_written_as_invalid_json() -> None:
    with pytest.raises(ValueError):
        json_reply({"scope": float("inf")})
