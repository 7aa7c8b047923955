"""The route table and dispatch: methods, HEAD, the 401/403/404/405 split, Allow, cache and
content-type headers, a bug's 500, and adding a route the way the README shows."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app import ROUTES, me, reports
from authpi_worker import (
    Claims,
    Isolate,
    Reply,
    Request,
    Requirement,
    Route,
    Routes,
    dispatch,
    json_reply,
    requirement,
)
from authpi_worker.errors import InvalidRequest, PayloadTooLarge
from authpi_worker.routes import MATCHED_PATHS
from authpi_worker.testing.tokens import caller, organization
from tests.conftest import WORKER, Call, body
from tests.support.issuer import FakeIssuer
from tests.support.logs import logged

NOSNIFF = {"x-content-type-options": "nosniff"}


# --- Methods ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"])
async def test_any_other_method_on_the_public_route_is_405_with_allow(
    call: Call, method: str
) -> None:
    reply = await call("/", method=method)
    assert (reply.status, reply.body) == (405, '{"error":"method_not_allowed"}')
    assert reply.headers["allow"] == "GET, HEAD"
    assert "cache-control" not in reply.headers  # depends on no credentials


@pytest.mark.parametrize("path", ["/me", "/reports"])
@pytest.mark.parametrize("method", ["POST", "DELETE", "OPTIONS"])
async def test_a_protected_route_authenticates_before_it_says_405(
    call: Call, issuer: FakeIssuer, path: str, method: str
) -> None:
    anonymous = await call(path, method=method)
    assert anonymous.status == 401  # an anonymous caller learns nothing about routes
    assert "allow" not in anonymous.headers
    no_scope = await call(path, issuer.mint(scope="read:profile"), method=method)
    assert (no_scope.status, no_scope.headers["allow"]) == (405, "GET, HEAD")  # whatever scopes
    assert body(no_scope) == {"error": "method_not_allowed"}
    assert no_scope.headers["cache-control"] == "no-store"


async def test_an_options_request_without_origin_is_not_a_preflight(call: Call) -> None:
    """Only OPTIONS with Origin and Access-Control-Request-Method is answered before auth."""
    assert (await call("/me", method="OPTIONS", preflight="GET")).status == 401
    assert (await call("/me", method="OPTIONS", origin="https://app.example")).status == 401


@pytest.mark.parametrize("path", ["/", "/me", "/reports", "/no-such-route"])
async def test_head_gets_the_get_status_and_headers_without_a_body(
    call: Call, issuer: FakeIssuer, path: str
) -> None:
    token = issuer.mint()
    get, head = await call(path, token), await call(path, token, method="HEAD")
    assert (head.status, head.headers, head.body) == (get.status, get.headers, "")
    assert get.body  # GET itself has one


async def test_head_without_a_token_is_a_bodiless_401(call: Call) -> None:
    reply = await call("/me", method="HEAD")
    assert (reply.status, reply.body) == (401, "")
    assert reply.headers["www-authenticate"].startswith("Bearer ")


# --- Response headers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "scope", "status"),
    [
        ("/me", None, 401),
        ("/me", "read:reports", 200),
        ("/reports", "read:profile", 403),
        ("/reports", "read:reports", 200),
        ("/no-such-route", "read:reports", 404),
        ("/no-such-route", None, 401),
    ],
)
async def test_every_answer_that_depends_on_authorization_is_no_store(
    call: Call, issuer: FakeIssuer, path: str, scope: str | None, status: int
) -> None:
    reply = await call(path, issuer.mint(scope=scope) if scope else None)
    assert reply.status == status
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["x-content-type-options"] == "nosniff"


async def test_the_public_route_keeps_no_cache_header(call: Call) -> None:
    reply = await call("/")
    assert reply.headers == {"content-type": "application/json", **NOSNIFF}


async def test_a_503_and_a_500_on_protected_routes_are_no_store_too(
    call: Call, issuer: FakeIssuer, env: dict[str, object]
) -> None:
    issuer.faults.status = 500
    unavailable = await call("/me", issuer.mint())
    assert (unavailable.status, unavailable.headers["cache-control"]) == (503, "no-store")
    env["AUTHPI_DPOP"] = "sometimes"
    broken = await call("/me", issuer.mint())
    assert (broken.status, broken.headers["cache-control"]) == (500, "no-store")


# --- The table ---------------------------------------------------------------------------


def test_the_template_routes_and_what_each_needs() -> None:
    table = [(r.path, r.methods, r.public, r.requirement, r.params) for r in ROUTES.routes]
    assert table == [
        ("/", ("GET", "HEAD"), True, Requirement(), ()),
        ("/me", ("GET", "HEAD"), False, Requirement(), ()),
        ("/reports", ("GET", "HEAD"), False, Requirement("read:reports"), ()),
        (
            "/orgs/{org_id}/reports",
            ("GET", "HEAD"),
            False,
            requirement(org=("org_id", "reports:read"), callers=("person", "agent")),
            ("org_id",),
        ),
        (
            "/orgs/{org_id}/reports",
            ("POST",),
            False,
            requirement(org=("org_id", "reports:write"), callers=("person",)),
            ("org_id",),
        ),
    ]
    # Organization permissions are no token scopes: the metadata names read:reports alone.
    assert ROUTES.scopes == ("read:reports",)
    assert ROUTES.methods == "GET, HEAD, POST"


def test_a_method_declared_twice_for_a_path_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        Routes(Route("/me", me), Route("/me", reports, methods=("GET",)))


async def create_report(request: Request, claims: Claims) -> Reply:
    """The README's example: an async handler that reads the JSON body it is sent."""
    report = await request.json(max_bytes=64 * 1024)  # 413 beyond, 400 unless strict JSON
    title = report.get("title") if isinstance(report, dict) else None
    return json_reply({"created": title, "by": claims["sub"]}, 201)


# The README's example, word for word: one entry and one handler.
WITH_WRITES = Routes(
    *ROUTES.routes,
    Route("/reports", create_report, methods=("POST",), scope="write:reports"),
)


@pytest.fixture
def write(isolate: Isolate, env: dict[str, object]) -> Call:
    async def call(method: str, token: str | None = None, payload: bytes = b"") -> Reply:
        async def body() -> bytes:
            return payload

        authorization = f"Bearer {token}" if token else None
        request = Request(method, f"{WORKER}/reports", authorization, body=body)
        return await dispatch(WITH_WRITES, request, isolate, env.get)

    return call


async def test_adding_a_protected_route_is_one_entry_and_one_handler(
    write: Call, issuer: FakeIssuer
) -> None:
    token = issuer.mint(sub="writer", scope="write:reports")
    created = await write("POST", token, b'{"title": "Q3"}')
    assert (created.status, body(created)) == (201, {"created": "Q3", "by": "writer"})
    assert created.headers["cache-control"] == "no-store"
    listed = await write("POST", token, b'["Q3"]')  # JSON, but no object: no title
    assert (listed.status, body(listed)) == (201, {"created": None, "by": "writer"})
    assert (await write("POST", token, b"not json")).status == 400
    readonly = await write("POST", issuer.mint(scope="read:reports"))
    assert readonly.status == 403
    assert 'scope="write:reports"' in readonly.headers["www-authenticate"]
    assert (await write("POST")).status == 401
    # The existing GET is untouched, and Allow, the scopes and CORS methods follow the table.
    assert (await write("GET", issuer.mint(scope="read:reports"))).status == 200
    deleted = await write("DELETE", issuer.mint(scope="write:reports"))
    assert (deleted.status, deleted.headers["allow"]) == (405, "GET, HEAD, POST")
    assert WITH_WRITES.scopes == ("read:reports", "write:reports")
    assert WITH_WRITES.methods == "GET, HEAD, POST"


async def test_a_public_method_beside_a_protected_one_needs_no_token(
    isolate: Isolate, env: dict[str, object]
) -> None:
    """GET public, POST protected on one path: anonymous GET is 200, anonymous POST 401."""
    table = Routes(
        Route("/items", lambda request, claims: json_reply({"items": []}), public=True),
        Route("/items", create_report, methods=("POST",), scope="write:items"),
    )

    async def send(method: str) -> Reply:
        return await dispatch(table, Request(method, f"{WORKER}/items"), isolate, env.get)

    assert (await send("GET")).status == 200
    assert (await send("POST")).status == 401
    assert (await send("PUT")).status == 401  # a token first, as the path has a protected route


async def test_a_bug_in_a_handler_is_a_json_500_that_never_logs_the_token(
    isolate: Isolate, env: dict[str, object], issuer: FakeIssuer, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(request: Request, claims: Claims) -> Reply:
        raise KeyError("boom")

    table = Routes(Route("/broken", broken))
    token = issuer.mint()
    reply = await dispatch(
        table, Request("GET", f"{WORKER}/broken", f"Bearer {token}"), isolate, env.get
    )
    assert (reply.status, reply.body) == (500, '{"error":"internal_error"}')
    assert reply.headers["cache-control"] == "no-store"
    err = capsys.readouterr().err
    events = [json.loads(line) for line in err.splitlines()]
    assert events == [{"event": "internal_error", "path": "/broken", "error": "KeyError"}]
    assert token not in err and token.split(".")[2] not in err


@pytest.mark.parametrize("path", ["/me/", "/ME", "//me", "/me/x", "/reports%2F", ""])
async def test_paths_match_exactly(call: Call, issuer: FakeIssuer, path: str) -> None:
    reply = await call(path, issuer.mint())
    assert reply.status == (200 if path == "" else 404)  # an empty path is /, as URLs have it


# --- Path parameters -------------------------------------------------------------------------


def echo(request: Request, claims: Claims) -> Reply:
    """A handler that shows what it was given: the params, as the handler reads them."""
    return json_reply({"params": dict(request.params), "sub": claims.get("sub")})


PARAMS = Routes(
    Route("/orgs/{org_id}/reports", echo),
    Route("/orgs/{org_id}/reports/{report_id}", echo),
    Route("/orgs/mine/reports", echo),  # a literal beside the parameter
    Route("/orgs/{org_id}", echo),
)


def matched(routes: Routes, path: str) -> tuple[str, dict[str, str]] | None:
    found = routes.match(path)
    return None if found is None else (found[0].path, dict(found[1]))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/orgs/org_a/reports", ("/orgs/{org_id}/reports", {"org_id": "org_a"})),
        (
            "/orgs/org_a/reports/r1",
            ("/orgs/{org_id}/reports/{report_id}", {"org_id": "org_a", "report_id": "r1"}),
        ),
        ("/orgs/org_a", ("/orgs/{org_id}", {"org_id": "org_a"})),
        # Decoded once, after the path is split: a decoded `/` is part of the value.
        ("/orgs/a%2Fb/reports", ("/orgs/{org_id}/reports", {"org_id": "a/b"})),
        ("/orgs/a%252Fb/reports", ("/orgs/{org_id}/reports", {"org_id": "a%2Fb"})),
        ("/orgs/%C3%A9t%C3%A9/reports", ("/orgs/{org_id}/reports", {"org_id": "été"})),
        ("/orgs/org%5Fa/reports", ("/orgs/{org_id}/reports", {"org_id": "org_a"})),
        ("/orgs/%20/reports", ("/orgs/{org_id}/reports", {"org_id": " "})),
        # Exactly one non-empty segment.
        ("/orgs//reports", None),
        ("/orgs/a/b/reports", None),
        ("/orgs/a/reports/", None),
        ("/orgs/", None),
        ("/orgs", None),
        ("/ORGS/a/reports", None),
        ("//orgs/a/reports", None),
        # A value that does not decode does not match.
        ("/orgs/%zz/reports", None),
        ("/orgs/%4/reports", None),
        ("/orgs/a%/reports", None),
        ("/orgs/%C3/reports", None),  # half a UTF-8 sequence
        ("/orgs/%FF/reports", None),
        ("/orgs/%ED%A0%80/reports", None),  # an encoded surrogate is no UTF-8
    ],
)
def test_a_parameter_is_one_segment_decoded_once(
    path: str, expected: tuple[str, dict[str, str]] | None
) -> None:
    assert matched(PARAMS, path) == expected
    assert matched(PARAMS, path) == expected  # again, now among the paths already matched


def test_paths_already_matched_are_kept_within_a_bound() -> None:
    """A repeated path is answered from the paths matched before (the same endpoint and
    parameters, which no one can change); past MATCHED_PATHS of them the set starts again,
    and every answer stays the walk's."""
    table = Routes(*PARAMS.routes)
    first = table.match("/orgs/org_a/reports")
    assert first is not None and table.match("/orgs/org_a/reports") is first
    with pytest.raises(TypeError):
        first[1]["org_id"] = "org_b"  # type: ignore[index]
    for number in range(2 * MATCHED_PATHS + 1):
        org_id = f"org_{number}"
        assert matched(table, f"/orgs/{org_id}/reports") == (
            "/orgs/{org_id}/reports",
            {"org_id": org_id},
        )
        assert 1 <= len(table._matched) <= MATCHED_PATHS
    assert table.match("/nowhere/x") is None and "/nowhere/x" not in table._matched
    assert matched(table, "/orgs/org_a/reports") == ("/orgs/{org_id}/reports", {"org_id": "org_a"})


def test_a_literal_segment_wins_over_a_parameter() -> None:
    assert matched(PARAMS, "/orgs/mine/reports") == ("/orgs/mine/reports", {})
    assert matched(PARAMS, "/orgs/mine") == ("/orgs/{org_id}", {"org_id": "mine"})
    # Where the literal leads nowhere, the parameter takes the segment.
    assert matched(PARAMS, "/orgs/mine/reports/r1") == (
        "/orgs/{org_id}/reports/{report_id}",
        {"org_id": "mine", "report_id": "r1"},
    )
    beside = Routes(Route("/a/{x}/{y}", echo), Route("/a/b/{y}", echo))
    assert matched(beside, "/a/b/c") == ("/a/b/{y}", {"y": "c"})
    assert matched(beside, "/a/c/c") == ("/a/{x}/{y}", {"x": "c", "y": "c"})
    deeper = Routes(Route("/a/{x}/c", echo), Route("/a/b/{y}/d", echo))
    assert matched(deeper, "/a/b/c") == ("/a/{x}/c", {"x": "b"})
    assert matched(deeper, "/a/b/z/d") == ("/a/b/{y}/d", {"y": "z"})
    # Encoded, a literal's name is a parameter's value: literals match the path as sent.
    assert matched(PARAMS, "/orgs/min%65/reports") == ("/orgs/{org_id}/reports", {"org_id": "mine"})


def test_matching_walks_a_trie_not_the_table() -> None:
    """Ten thousand parameterised routes: a path is found by its segments, and an unknown
    one stops at its first segment that nothing declares (the timing is in make bench)."""
    many = Routes(*(Route(f"/r{i}/{{a}}/items/{{b}}", echo) for i in range(10_000)))
    assert matched(many, "/r9999/x/items/y") == ("/r9999/{a}/items/{b}", {"a": "x", "b": "y"})
    assert many.match("/nope/x/items/y") is None
    root = many._root
    assert root is not None and len(root.literals) == 10_000 and root.param_node is None


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        (lambda: Route("orgs/{org_id}", echo), "starts with /"),
        (lambda: Route("/orgs/{org_id}.json", echo), "whole segment"),
        (lambda: Route("/orgs/{org-id}", echo), "whole segment"),
        (lambda: Route("/orgs/{}", echo), "whole segment"),
        (lambda: Route("/orgs/{a}/x/{a}", echo), "named twice"),
        (lambda: Route("/reports", echo, org=("org_id", "reports:read")), "org_id"),
        (lambda: Route("/orgs/{id}", echo, org=("org_id", "reports:read")), "org_id"),
        (lambda: Route("/", echo, public=True, scope="read:reports"), "public"),
        (lambda: Route("/", echo, public=True, callers=("person",)), "public"),
        (lambda: Route("/orgs/{org_id}", echo, org=("org_id", "reports:*")), "permission"),
        (
            lambda: Routes(Route("/orgs/{org_id}", echo), Route("/orgs/{id}/x", echo)),
            "another route has",
        ),
        (
            lambda: Routes(
                Route("/orgs/{a}", echo),
                Route("/orgs/{a}", echo, methods=("POST",)),
                Route("/orgs/{a}", echo, methods=("GET",)),
            ),
            "twice",
        ),
    ],
)
def test_a_table_that_cannot_work_is_refused_at_import(routes: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        routes()


async def test_the_handler_reads_params_from_a_request_that_stays_frozen(
    isolate: Isolate, env: dict[str, object], issuer: FakeIssuer
) -> None:
    seen: list[Request] = []

    def keep(request: Request, claims: Claims) -> Reply:
        seen.append(request)
        return echo(request, claims)

    table = Routes(Route("/orgs/{org_id}/reports/{report_id}", keep, methods=("POST",)))
    token = issuer.mint(sub="c_x")
    url = f"{WORKER}/orgs/org%5Fa/reports/r%2F1"

    async def payload() -> bytes:
        return b"{}"

    sent = Request("POST", url, f"Bearer {token}", None, "https://app.example", None, payload, "2")
    reply = await dispatch(table, sent, isolate, env.get)
    assert body(reply) == {"params": {"org_id": "org_a", "report_id": "r/1"}, "sub": "c_x"}
    (request,) = seen
    assert request == dataclasses.replace(sent, params=request.params)  # the rest, as sent
    assert request.url == url and request.path == "/orgs/org%5Fa/reports/r%2F1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.params = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        request.params["org_id"] = "org_b"  # type: ignore[index]
    assert Request("GET", url).params == {}  # what dispatch was given: no params yet


# Every shape of path the template's parameter route gives, right or wrong.
ORG_PATHS = [
    "/orgs/org_a/reports",  # the route
    "/orgs//reports",  # an empty parameter
    "/orgs/org_a/reports/",  # a trailing slash
    "/orgs/org_a/reports/x",  # one segment more
    "/orgs/org_a",  # one segment less
    "/orgs/%zz/reports",  # a value that does not decode
    "/orgs/a%2Fb/reports",  # a decoded slash, a value like any other
]


@pytest.mark.parametrize("path", ORG_PATHS)
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "PUT", "OPTIONS"])
async def test_an_anonymous_caller_gets_401_on_every_path_shape_and_method(
    call: Call, path: str, method: str
) -> None:
    reply = await call(path, method=method, payload=b"not json")
    assert (reply.status, reply.body) == (401, '{"error":"unauthorized"}')
    assert "allow" not in reply.headers
    assert reply.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", ORG_PATHS)
async def test_with_a_valid_token_a_path_shape_is_404_or_405(
    call: Call, issuer: FakeIssuer, path: str
) -> None:
    token = issuer.mint(**caller("person"), organizations=[organization("org_a", "*:**")])
    reply = await call(path, token, method="DELETE")
    if path in ("/orgs/org_a/reports", "/orgs/a%2Fb/reports"):
        assert (reply.status, reply.headers["allow"]) == (405, "GET, HEAD, POST")
        assert body(reply) == {"error": "method_not_allowed"}
    else:
        assert (reply.status, body(reply)) == (404, {"error": "not_found"})
    assert reply.headers["cache-control"] == "no-store"


def test_allow_cors_methods_and_scopes_supported_follow_the_table() -> None:
    table = Routes(
        Route("/", echo, public=True),
        Route("/a/{x}", echo, any_scopes=("read:a", "admin")),
        Route("/a/{x}", echo, methods=("PUT",), all_scopes=("write:a", "audit")),
        Route("/b/{org_id}", echo, methods=("DELETE",), org=("org_id", "b:delete")),
    )
    assert table.scopes == ("admin", "audit", "read:a", "write:a")  # no org permission
    assert table.methods == "GET, HEAD, PUT, DELETE"
    found = table.match("/a/1")
    assert found is not None and found[0].allow == "GET, HEAD, PUT"


async def test_any_and_all_scopes_routes_answer_403_naming_the_scopes(
    isolate: Isolate, env: dict[str, object], issuer: FakeIssuer
) -> None:
    table = Routes(
        Route("/a/{x}", echo, any_scopes=("read:a", "admin")),
        Route("/a/{x}", echo, methods=("PUT",), all_scopes=("write:a", "audit")),
    )

    async def send(method: str, scope: str) -> Reply:
        request = Request(method, f"{WORKER}/a/1", f"Bearer {issuer.mint(scope=scope)}")
        return await dispatch(table, request, isolate, env.get)

    assert (await send("GET", "admin")).status == 200
    assert (await send("GET", "read:a openid")).status == 200
    refused = await send("GET", "write:a")
    assert refused.status == 403
    assert 'scope="read:a admin"' in refused.headers["www-authenticate"]
    assert (await send("PUT", "audit write:a")).status == 200
    partial = await send("PUT", "write:a")
    assert partial.status == 403
    assert 'scope="audit"' in partial.headers["www-authenticate"]  # only what is missing


@pytest.mark.parametrize(
    ("error", "status", "answer"),
    [
        (InvalidRequest("title_missing"), 400, '{"error":"invalid_request"}'),
        (PayloadTooLarge("body_too_large"), 413, '{"error":"payload_too_large"}'),
    ],
)
async def test_a_body_a_handler_cannot_take_is_answered_and_logged(
    isolate: Isolate,
    env: dict[str, object],
    issuer: FakeIssuer,
    error: Exception,
    status: int,
    answer: str,
) -> None:
    def refuse(request: Request, claims: Claims) -> Reply:
        raise error

    table = Routes(Route("/items", refuse, methods=("POST",)), Route("/open", refuse, public=True))
    token = issuer.mint()
    with logged() as events:
        reply = await dispatch(
            table, Request("POST", f"{WORKER}/items", f"Bearer {token}"), isolate, env.get
        )
        public = await dispatch(table, Request("GET", f"{WORKER}/open"), isolate, env.get)
    assert (reply.status, reply.body, reply.headers["cache-control"]) == (
        status,
        answer,
        "no-store",
    )
    assert (public.status, public.body) == (status, answer)
    reason = "title_missing" if status == 400 else "body_too_large"
    assert [(e["status"], e["reason"], e["path"]) for e in events] == [
        (status, reason, "/items"),
        (status, reason, "/open"),
    ]


SEGMENTS = st.sampled_from(["a", "b", "{p}", "{p}"])  # parameters often: they must compete


@settings(max_examples=500, deadline=None)
@given(
    templates=st.lists(st.lists(SEGMENTS, min_size=1, max_size=3), min_size=1, max_size=10),
    path=st.lists(st.sampled_from(["a", "b", "c", ""]), min_size=1, max_size=3),
)
@example(templates=[["a", "b", "{p}"], ["a", "{p}", "{p}"]], path=["a", "b", "c"])
def test_the_trie_finds_what_a_scan_in_literal_first_order_finds(
    templates: list[list[str]], path: list[str]
) -> None:
    """Against a reference that scans every route: the match is the route whose segments
    are literal the furthest to the left (depth first, literal before parameter)."""
    shapes = {
        "/" + "/".join(f"{{p{i}}}" if s == "{p}" else s for i, s in enumerate(t)) for t in templates
    }
    table = Routes(*(Route(shape, echo) for shape in shapes))

    def fits(shape: str) -> bool:
        parts = shape[1:].split("/")
        return len(parts) == len(path) and all(
            (p.startswith("{") and s != "") or p == s for p, s in zip(parts, path, strict=True)
        )

    candidates = sorted(
        (tuple(p.startswith("{") for p in shape[1:].split("/")), shape)
        for shape in shapes
        if fits(shape)
    )
    found = table.match("/" + "/".join(path))
    assert (found[0].path if found else None) == (candidates[0][1] if candidates else None)
    assert table.match("/" + "/".join(path)) == found  # asked again: the same answer
