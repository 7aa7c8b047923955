"""Reading a JSON request body within a size limit, strictly (RFC 8259 as interoperable
parsers read it), for `await request.json(max_bytes=...)`.

Whatever the bytes, the outcome is the parsed value, InvalidRequest (400) or PayloadTooLarge
(413): bad UTF-8, a BOM, NaN or Infinity, a number too large for a float, a duplicated key
and nesting deeper than MAX_DEPTH are all a 400, never a 500.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from authpi_worker import strict_json
from authpi_worker.errors import InvalidRequest, PayloadTooLarge

# Deeper nesting is refused before parsing: an API's JSON is a few levels deep, and a body of
# "[[[[…" must never reach the recursion limit (a RecursionError under CPython, and under
# Pyodide the wasm stack, which a RecursionError might not guard).
MAX_DEPTH = 64
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
    """The value of a strict JSON text (authpi_worker.strict_json), at most MAX_DEPTH deep, or
    InvalidRequest naming what is wrong with it (body_not_utf8, body_too_deep,
    body_duplicate_name, body_not_json)."""
    try:
        return strict_json.loads(raw, MAX_DEPTH)
    except strict_json.InvalidJson as problem:
        raise InvalidRequest(f"body_{problem.reason}") from None
