"""Reading a JSON body (authpi_worker.body): the size limit, declared and real, and the strict
parse; every hostile body is a 400 or a 413, never another exception. Through the route table:
tests/test_app.py; over HTTP: the last test here, and curl-matrix's rows."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authpi_worker import InvalidRequest, PayloadTooLarge, Request
from authpi_worker.body import MAX_DEPTH, parse_json, read_json
from authpi_worker.testing.tokens import AUDIENCE, caller, organization
from scripts.local_worker import LocalWorker, make_server
from tests.support.issuer import FakeIssuer

LIMIT = 64


class Body:
    """A body callable that counts its reads."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.reads = 0

    async def __call__(self) -> bytes:
        self.reads += 1
        return self.data


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        (b'{"title":"Q3"}', {"title": "Q3"}),
        (b' \n{"title": "\\u00e9t\\u00e9", "n": [1, 2.5, -0, true, null]}\t', None),
        ('{"title":"été"}'.encode(), {"title": "été"}),
        (b"[]", []),
        (b'"text"', "text"),
        (b"12", 12),
        (b'{"a":{"a":{"a":1}}}', {"a": {"a": {"a": 1}}}),
        (b'{"k":"a \\" [ { not a bracket"}', {"k": 'a " [ { not a bracket'}),
        (b"1e308", 1e308),
    ],
)
def test_json_texts_parse(raw: bytes, value: Any) -> None:
    assert parse_json(raw) == (value if value is not None else json.loads(raw))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "body_not_json"),
        (b"not json", "body_not_json"),
        (b'{"title": "Q3"', "body_not_json"),
        (b'{"title": "Q3"} {}', "body_not_json"),
        (b"{'title': 'Q3'}", "body_not_json"),
        (b'{"title": "Q3",}', "body_not_json"),
        (b"NaN", "body_not_json"),
        (b'{"n": Infinity}', "body_not_json"),
        (b'{"n": -Infinity}', "body_not_json"),
        (b'{"n": 1e999}', "body_not_json"),  # beyond a float: no inf sneaks in
        (b'{"n": -1e999}', "body_not_json"),
        (b'{"n": ' + b"9" * 5000 + b"}", "body_not_json"),  # past CPython's int digits limit
        (b'{"title": "a", "title": "b"}', "body_duplicate_name"),
        (b'{"x": {"k": 1, "k": 1}}', "body_duplicate_name"),
        (b"\xef\xbb\xbf{}", "body_not_json"),  # a BOM: RFC 8259 §8.1 forbids adding one
        (b'{"title": "\xff"}', "body_not_utf8"),
        (b'{"title": "\xc3"}', "body_not_utf8"),
        (b'{"title": "\xed\xa0\x80"}', "body_not_utf8"),  # a surrogate in UTF-8
        ('{"title": "x"}'.encode("utf-16"), "body_not_utf8"),  # json.loads(bytes) would take it
        (b"[" * 100_000, "body_too_deep"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "body_too_deep"),
        (b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), "body_too_deep"),
    ],
)
def test_a_body_that_is_not_one_strict_json_text_is_invalid_request(
    raw: bytes, reason: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_json(raw)
    assert (refused.value.reason, refused.value.status, refused.value.error) == (
        reason,
        400,
        "invalid_request",
    )


def test_nesting_up_to_the_limit_parses_and_brackets_in_strings_do_not_count() -> None:
    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    many = json.dumps({"s": "[{" * 10_000}).encode()
    assert parse_json(many) == {"s": "[{" * 10_000}
    escaped = json.dumps({"s": '\\"[' * 1000}).encode()  # escaped quotes, then brackets
    assert parse_json(escaped) == {"s": '\\"[' * 1000}


async def test_a_declared_length_over_the_limit_is_413_before_anything_is_read() -> None:
    body = Body(b"{}")
    for declared in (str(LIMIT + 1), "100000000", "9" * 40, "0" * 30 + "65"):
        with pytest.raises(PayloadTooLarge) as refused:
            await read_json(body, declared, LIMIT)
        assert (refused.value.status, refused.value.error) == (413, "payload_too_large")
    assert body.reads == 0


async def test_the_real_length_is_checked_after_reading_whatever_was_declared() -> None:
    large = Body(b'{"title":"' + b"x" * LIMIT + b'"}')
    for declared in ("2", None):  # a lie, or no Content-Length (a chunked body)
        with pytest.raises(PayloadTooLarge):
            await read_json(large, declared, LIMIT)
    exact = b'{"t":"' + b"x" * (LIMIT - 8) + b'"}'
    assert len(exact) == LIMIT
    assert await read_json(Body(exact), str(LIMIT), LIMIT) == {"t": "x" * (LIMIT - 8)}
    assert await read_json(Body(b"{}"), "0002", LIMIT) == {}


@pytest.mark.parametrize("declared", ["", "abc", "-1", "1.5", "0x10", "5, 5", "²", "1 2"])
async def test_a_content_length_that_is_not_digits_is_invalid_request(declared: str) -> None:
    body = Body(b"{}")
    with pytest.raises(InvalidRequest) as refused:
        await read_json(body, declared, LIMIT)
    assert refused.value.reason == "bad_content_length" and body.reads == 0


async def test_request_json_reads_its_own_body_and_length() -> None:
    body = Body(b'{"title":"Q3"}')
    request = Request("POST", "https://w.example/x", body=body, content_length="14")
    assert await request.json(max_bytes=LIMIT) == {"title": "Q3"}
    with pytest.raises(PayloadTooLarge):
        await Request("POST", "https://w.example/x", body=body, content_length="65").json(
            max_bytes=LIMIT
        )
    assert body.reads == 1


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_any_bytes_parse_or_are_invalid_request_never_anything_else(raw: bytes) -> None:
    try:
        value = parse_json(raw)
    except InvalidRequest as refused:
        assert refused.status == 400
    else:  # accepted: exactly what the standard parser makes of the same text
        assert value == json.loads(raw.decode("utf-8"))


def test_bodies_over_real_http_through_scripts_serve(issuer: FakeIssuer) -> None:
    """scripts/serve's server on 127.0.0.1: the Content-Length it received reaches the core."""
    server = make_server(
        LocalWorker({"AUTHPI_ISSUER_URL": issuer.url, "AUTHPI_AUDIENCE": AUDIENCE}), 0
    )
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    token = issuer.mint(**caller("person"), organizations=[organization("org_a", "reports:write")])
    url = f"http://127.0.0.1:{server.server_address[1]}/orgs/org_a/reports"
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    try:
        with httpx.Client(timeout=10) as client:
            created = client.post(url, headers=headers, content=b'{"title":"Q3"}')
            assert (created.status_code, created.json()["title"]) == (201, "Q3")
            bad = client.post(url, headers=headers, content=b'{"title":"Q3","title":"Q4"}')
            assert (bad.status_code, bad.json()) == (400, {"error": "invalid_request"})
            large = client.post(url, headers=headers, content=b"x" * (64 * 1024 + 1))
            assert (large.status_code, large.json()) == (413, {"error": "payload_too_large"})
    finally:
        server.shutdown()
        server.server_close()
