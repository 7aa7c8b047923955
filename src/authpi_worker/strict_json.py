"""Strict JSON for everything the Worker parses that others wrote: a token's header and payload,
a DPoP proof, the issuer's JWKS, a request body. RFC 8259 as interoperable parsers read it:

- UTF-8 only (no BOM);
- no duplicate member names (parsers disagree on which value wins, RFC 8259 §4);
- no NaN or Infinity, nor a number that overflows a float to it (1e400), nor an integer past
  CPython's digit limit;
- nested at most `max_depth` deep, checked before the parser runs: Pyodide's wasm stack dies of
  about 10,000 nested brackets with a fatal error, not an exception, and below that the answer
  would depend on how deep the caller's own stack already is.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 512  # far beyond any real document, far below what exhausts Pyodide's stack

# A JSON string (its brackets are no nesting), unrolled so that sre runs through it in one go.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_OPENING = frozenset(b"[{")


class InvalidJson(ValueError):
    """Why bytes are not strict JSON: `reason` is not_utf8, too_deep, duplicate_name or
    not_json (syntax, NaN, Infinity, a number out of range)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def loads(data: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """The value of a strict JSON text, or InvalidJson saying why not."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidJson("not_utf8") from None
    if too_deep(data, max_depth):
        raise InvalidJson("too_deep")
    try:
        return _DECODER.decode(text)
    except _DuplicateName:
        raise InvalidJson("duplicate_name") from None
    except (ValueError, RecursionError):  # syntax, NaN, 1e999, an int of 5,000 digits
        raise InvalidJson("not_json") from None


def too_deep(data: bytes, max_depth: int = MAX_DEPTH) -> bool:
    """More than max_depth brackets open at once, outside strings. Nothing can nest deeper
    than it has brackets: only a text with more than that is scanned."""
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return False
    depth = 0
    for byte in _STRING.sub(b"", data).translate(None, _NOT_BRACKETS):
        depth += 1 if byte in _OPENING else -1
        if depth > max_depth:
            return True
    return False


class _DuplicateName(ValueError):
    pass


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _DuplicateName
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    """1e400 is valid JSON that overflows to inf: nothing may carry it (nor echo it back)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


# Built once: json.loads with hooks builds a decoder and its scanner on every call (~2 µs).
_DECODER = json.JSONDecoder(
    object_pairs_hook=_unique_members, parse_constant=_reject_constant, parse_float=_finite_float
)
