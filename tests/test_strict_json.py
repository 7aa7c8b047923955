"""Strict JSON (authpi_worker.strict_json): one parser for tokens, proofs, the JWKS and request
bodies. Each rule with the text it refuses; the depth rule gives one answer whatever the stack."""

from __future__ import annotations

import sys

import pytest

from authpi_worker.keys import InvalidKeySet, parse_jwks
from authpi_worker.strict_json import MAX_DEPTH, InvalidJson, loads, too_deep


def nested(depth: int) -> bytes:
    return b'{"keys":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b'{"a": "\xff"}', "not_utf8"),
        (b"\xef\xbb\xbf{}", "not_json"),  # a BOM
        (b'{"a": 1, "a": 2}', "duplicate_name"),
        (b'{"a": {"b": 1, "b": 1}}', "duplicate_name"),
        (b'{"a": NaN}', "not_json"),
        (b'{"a": -Infinity}', "not_json"),
        (b'{"a": 1e400}', "not_json"),
        (b'{"a": ' + b"9" * 5000 + b"}", "not_json"),
        (b'{"a": 1', "not_json"),
        (nested(MAX_DEPTH + 1), "too_deep"),
        (nested(sys.getrecursionlimit() * 2), "too_deep"),
    ],
)
def test_what_strict_json_refuses(text: bytes, reason: str) -> None:
    with pytest.raises(InvalidJson) as refused:
        loads(text)
    assert refused.value.reason == reason


def test_nesting_up_to_the_limit_and_brackets_inside_strings_are_fine() -> None:
    assert list(loads(nested(MAX_DEPTH))) == ["keys"]
    assert not too_deep(nested(MAX_DEPTH)) and too_deep(nested(MAX_DEPTH + 1))
    assert not too_deep(b'{"a": "' + b"[" * 10_000 + b'"}')
    assert not too_deep(b'{"a": "\\"' + b"[" * 10_000 + b'"}')  # an escaped quote stays inside


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 900, 5_000])
def test_a_jwks_nested_too_deep_is_no_document_whatever_the_stack(depth: int) -> None:
    """Below the recursion limit json.loads would parse it or not depending on how deep the
    caller's stack was: a refresh's outcome must not depend on that."""

    def at_depth(frames: int) -> None:
        if frames:
            return at_depth(frames - 1)
        with pytest.raises(InvalidKeySet, match="too_deep"):
            parse_jwks(nested(depth))
        return None

    at_depth(0)
    at_depth(200)
