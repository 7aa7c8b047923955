"""Reading a JSON request body within a size limit, strictly (RFC 8259 as interoperable
parsers read it), for `await request.json(max_bytes=...)`.

Whatever the bytes, the outcome is the parsed value, InvalidRequest (400) or PayloadTooLarge
(413): bad UTF-8, a BOM, NaN or Infinity, a number too large for a float, a duplicated key
and nesting deeper than MAX_DEPTH are all a 400, never a 500.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

from authpi_worker.errors import InvalidRequest, PayloadTooLarge

# Deeper nesting is refused before parsing: an API's JSON is a few levels deep, and a body of
# "[[[[…" must never reach the recursion limit (a RecursionError under CPython, and under
# Pyodide the wasm stack, which a RecursionError might not guard).
MAX_DEPTH = 64
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # a JSON string, escapes included
_BRACKET = re.compile(rb"[\[\]{}]")
_DIGITS = re.compile(r"[0-9]+")  # RFC 9110 §8.6: Content-Length = 1*DIGIT
_HUGE = 10**18  # what a longer Content-Length counts as: more than any limit, no int() of it


async def read_json(
    body: Callable[[], Awaitable[bytes]], content_length: str | None, max_bytes: int
) -> Any:
    """The JSON value of a body of at most max_bytes: the declared Content-Length is checked
    before anything is read, the real length after."""
    if content_length is not None and declared_length(content_length) > max_bytes:
        raise PayloadTooLarge("body_too_large")
    raw = await body()
    if len(raw) > max_bytes:
        raise PayloadTooLarge("body_too_large")
    return parse_json(raw)


def declared_length(value: str) -> int:
    """A Content-Length header's value; InvalidRequest unless it is digits alone (a repeated
    header, joined with ", ", never is: the runtime refuses differing ones itself)."""
    value = value.strip()
    if not _DIGITS.fullmatch(value):
        raise InvalidRequest("bad_content_length")
    digits = value.lstrip("0") or "0"
    return int(digits) if len(digits) <= len(str(_HUGE)) else _HUGE


def parse_json(raw: bytes) -> Any:
    """The value of a UTF-8 JSON text, or InvalidRequest naming what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("body_not_utf8") from None
    if _depth(raw) > MAX_DEPTH:
        raise InvalidRequest("body_too_deep")
    try:
        return json.loads(
            text,
            parse_constant=_no_constant,
            parse_float=_finite,
            object_pairs_hook=_unique_keys,
        )
    except _DuplicateKey:
        raise InvalidRequest("body_duplicate_key") from None
    except (ValueError, RecursionError):  # JSONDecodeError, NaN, 1e999, an int of 5000 digits
        raise InvalidRequest("body_not_json") from None


def _depth(raw: bytes) -> int:
    """How deep arrays and objects nest, strings left out; an upper bound for invalid JSON.
    Counts only when there are enough brackets to go past the limit at all."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return 0
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub(b"", raw)):
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object, unless a key repeats: parsers disagree on which value wins (RFC 8259 §4)."""
    found = dict(pairs)
    if len(found) != len(pairs):
        raise _DuplicateKey
    return found


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number beyond a float's range")
    return value
