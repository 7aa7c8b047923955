"""tests/support/challenges.py: WWW-Authenticate values as clients read them (RFC 9110)."""

from __future__ import annotations

import pytest

from tests.support.challenges import Challenge, find_challenge, parse_challenges


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        ("Bearer", [Challenge("Bearer")]),
        (
            'Bearer error="invalid_token", error_description="a, \\"quoted\\" b"',
            [Challenge("Bearer", {"error": "invalid_token", "error_description": 'a, "quoted" b'})],
        ),
        (
            'DPoP error="invalid_dpop_proof", algs="ES256 Ed25519", Bearer realm=api',
            [
                Challenge("DPoP", {"error": "invalid_dpop_proof", "algs": "ES256 Ed25519"}),
                Challenge("Bearer", {"realm": "api"}),
            ],
        ),
        ('Bearer, DPoP algs="ES256"', [Challenge("Bearer"), Challenge("DPoP", {"algs": "ES256"})]),
        (
            "Basic dXNlcjpwYXNz==, Bearer",
            [Challenge("Basic", token68="dXNlcjpwYXNz=="), Challenge("Bearer")],
        ),
        (
            'dpop ERROR = "x" ,, scope="read:reports"',
            [Challenge("dpop", {"error": "x", "scope": "read:reports"})],
        ),
    ],
)
def test_parse_challenges(value: str | None, expected: list[Challenge]) -> None:
    assert parse_challenges(value) == expected


@pytest.mark.parametrize("value", ['Bearer error="open', "Bearer a b", "=x", 'Bearer error="x" y'])
def test_malformed_values_are_errors(value: str) -> None:
    with pytest.raises(ValueError):
        parse_challenges(value)


def test_find_challenge_is_case_insensitive_on_the_scheme() -> None:
    value = 'Bearer, DPoP error="invalid_dpop_proof"'
    found = find_challenge(value, "dpop")
    assert found is not None and found.params["error"] == "invalid_dpop_proof"
    assert find_challenge("Bearer", "DPoP") is None
