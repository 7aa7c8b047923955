"""RFC 9728 Protected Resource Metadata: the document, where it is served, which resource it
names, and the challenges that point to it."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from authpi_worker.metadata import metadata_url
from tests.conftest import Call, body
from tests.support.challenges import find_challenge
from tests.support.issuer import FakeIssuer

WELL_KNOWN = "/.well-known/oauth-protected-resource"


async def test_the_document_is_public_json_cached_for_an_hour(
    call: Call, issuer: FakeIssuer
) -> None:
    reply = await call(WELL_KNOWN)
    assert reply.status == 200
    assert reply.headers == {
        "content-type": "application/json",
        "x-content-type-options": "nosniff",
        "cache-control": "public, max-age=3600",
    }
    assert body(reply) == {
        "resource": "https://api.example.com",
        "authorization_servers": [issuer.url],
        "scopes_supported": ["read:reports"],
        "bearer_methods_supported": ["header"],
        "dpop_signing_alg_values_supported": ["ES256", "Ed25519", "EdDSA", "RS256"],
        "dpop_bound_access_tokens_required": False,
    }
    assert issuer.jwks_hits == 0  # describing the resource needs no key


@pytest.mark.parametrize(
    ("mode", "dpop"),
    [
        ("required", {"dpop_bound_access_tokens_required": True}),
        ("disabled", None),  # no DPoP support: no DPoP members
    ],
)
async def test_the_dpop_members_follow_the_mode(
    call: Call, env: dict[str, object], mode: str, dpop: dict[str, object] | None
) -> None:
    env["AUTHPI_DPOP"] = mode
    document = body(await call(WELL_KNOWN))
    if dpop is None:
        assert not [name for name in document if name.startswith("dpop_")]
    else:
        assert document.items() >= dpop.items()


@pytest.mark.parametrize(
    ("variables", "resource"),
    [
        ({}, "https://api.example.com"),  # the audience, an https URL
        ({"AUTHPI_AUDIENCE": "client_abc"}, "https://authpi-worker.example"),  # the request's
        (
            {"AUTHPI_AUDIENCE": "https://api.example.com/v1 https://api.example.com/v2"},
            "https://api.example.com/v1",  # the first of several
        ),
        (
            {"AUTHPI_AUDIENCE": "client_abc", "AUTHPI_RESOURCE": "https://api.example.com"},
            "https://api.example.com",
        ),
    ],
)
async def test_which_resource_the_document_names(
    call: Call, env: dict[str, object], variables: dict[str, str], resource: str
) -> None:
    env.update(variables)
    assert body(await call(WELL_KNOWN))["resource"] == resource


async def test_a_resource_with_a_path_is_also_served_at_the_path_suffixed_url(
    call: Call, env: dict[str, object]
) -> None:
    env["AUTHPI_RESOURCE"] = "https://api.example.com/v1"
    for path in (WELL_KNOWN, f"{WELL_KNOWN}/v1"):
        reply = await call(path)
        assert (reply.status, body(reply)["resource"]) == (200, "https://api.example.com/v1")
    challenge = find_challenge((await call("/me")).headers["www-authenticate"], "Bearer")
    assert challenge is not None
    assert challenge.params["resource_metadata"] == f"https://api.example.com{WELL_KNOWN}/v1"
    assert (await call(f"{WELL_KNOWN}/v2")).status == 401  # not ours: like any unknown path


@pytest.mark.parametrize(
    ("resource", "url"),
    [
        ("https://api.example.com", f"https://api.example.com{WELL_KNOWN}"),
        ("https://api.example.com/", f"https://api.example.com{WELL_KNOWN}"),
        ("https://api.example.com/v1", f"https://api.example.com{WELL_KNOWN}/v1"),
        ("https://api.example.com/v1/", f"https://api.example.com{WELL_KNOWN}/v1/"),
        ("http://127.0.0.1:8787", f"http://127.0.0.1:8787{WELL_KNOWN}"),
    ],
)
def test_the_well_known_url_goes_between_host_and_path(resource: str, url: str) -> None:
    """RFC 9728 §3.1, with its terminating-slash rule."""
    assert metadata_url(resource) == url


@pytest.mark.parametrize(
    "variables",
    [{}, {"AUTHPI_AUDIENCE": "client_abc"}, {"AUTHPI_RESOURCE": "https://api.example.com/v1"}],
)
async def test_every_401_points_to_the_document_it_can_be_fetched_from(
    call: Call, env: dict[str, object], issuer: FakeIssuer, variables: dict[str, str]
) -> None:
    env.update(variables)
    replies = [await call("/me"), await call("/me", "x.y.z"), await call("/me", issuer.mint(exp=1))]
    for reply in replies:
        assert reply.status == 401
        for scheme in ("Bearer", "DPoP"):
            challenge = find_challenge(reply.headers["www-authenticate"], scheme)
            if challenge is None:
                continue
            url = challenge.params["resource_metadata"]
            document = body(await call(urlsplit(url).path))
            assert url == metadata_url(document["resource"])  # RFC 9728 §3.3: they agree


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
async def test_other_methods_are_405(call: Call, method: str) -> None:
    reply = await call(WELL_KNOWN, method=method)
    assert (reply.status, reply.headers["allow"]) == (405, "GET, HEAD")
    assert body(reply) == {"error": "method_not_allowed"}


async def test_head_is_the_get_without_a_body(call: Call) -> None:
    get, head = await call(WELL_KNOWN), await call(WELL_KNOWN, method="HEAD")
    assert (head.status, head.headers, head.body) == (200, get.headers, "")


async def test_misconfiguration_makes_the_document_a_500(
    call: Call, env: dict[str, object]
) -> None:
    env["AUTHPI_RESOURCE"] = "http://api.example.com"  # not https
    reply = await call(WELL_KNOWN)
    assert (reply.status, body(reply)) == (500, {"error": "server_misconfigured"})
    assert "cache-control" not in reply.headers  # an error must not be kept for an hour
