"""Each refusal's status, body and RFC 6750 challenge, byte for byte."""

from __future__ import annotations

import pytest

from authpi_worker.errors import (
    Denied,
    InsufficientScope,
    InvalidDpopProof,
    InvalidToken,
    JwksUnavailable,
    MissingToken,
    Scheme,
    ServerMisconfigured,
)
from authpi_worker.responses import Challenge, json_reply, refusal

METADATA = "https://api.example.com/.well-known/oauth-protected-resource"
ALGS = 'algs="ES256 Ed25519 EdDSA RS256"'
JSON = {"content-type": "application/json", "x-content-type-options": "nosniff"}


def under(scheme: Scheme, denied: Denied) -> Denied:
    denied.scheme = scheme
    return denied


@pytest.mark.parametrize(
    ("denied", "status", "body", "headers"),
    [
        (MissingToken(), 401, '{"error":"unauthorized"}', {"www-authenticate": "Bearer"}),
        (
            InvalidDpopProof("dpop_wrong_htu", "htu does not match the request URL"),
            401,
            '{"error":"unauthorized"}',
            {
                "www-authenticate": 'DPoP error="invalid_dpop_proof", '
                f'error_description="htu does not match the request URL", {ALGS}'
            },
        ),
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
    assert reply.headers == {**JSON, **headers}


@pytest.mark.parametrize(
    ("denied", "schemes", "challenge"),
    [
        (
            MissingToken(),
            ("Bearer", "DPoP"),
            f'Bearer resource_metadata="{METADATA}", DPoP {ALGS}, resource_metadata="{METADATA}"',
        ),
        (MissingToken("dpop_required"), ("DPoP",), f'DPoP {ALGS}, resource_metadata="{METADATA}"'),
        (MissingToken(), ("Bearer",), f'Bearer resource_metadata="{METADATA}"'),
        (
            under("DPoP", InvalidToken("expired", "token expired")),
            ("Bearer", "DPoP"),
            f'DPoP error="invalid_token", error_description="token expired", {ALGS}, '
            f'resource_metadata="{METADATA}"',
        ),
        (
            InvalidDpopProof("dpop_replayed", "proof already used"),
            ("Bearer", "DPoP"),
            f'DPoP error="invalid_dpop_proof", error_description="proof already used", {ALGS}, '
            f'resource_metadata="{METADATA}"',
        ),
        (
            under("DPoP", InsufficientScope("read:reports")),
            ("DPoP",),
            'DPoP error="insufficient_scope", scope="read:reports", '
            f'resource_metadata="{METADATA}"',
        ),
    ],
)
def test_challenges_name_the_scheme_used_offer_the_accepted_ones_and_point_to_the_metadata(
    denied: Denied, schemes: tuple[Scheme, ...], challenge: str
) -> None:
    """RFC 6750 §3, RFC 9449 §7.1 (algs), RFC 9728 §5.1 (resource_metadata)."""
    reply = refusal(denied, Challenge(schemes, METADATA))
    assert reply.headers["www-authenticate"] == challenge


def test_bodies_are_compact_like_response_json() -> None:
    assert (
        json_reply({"reports": [], "requested_by": "a"}).body == '{"reports":[],"requested_by":"a"}'
    )


def test_a_non_finite_number_is_never_written_as_invalid_json() -> None:
    with pytest.raises(ValueError):
        json_reply({"scope": float("inf")})
