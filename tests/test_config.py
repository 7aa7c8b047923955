"""Configuration: what makes the Worker answer 500 server_misconfigured, and what does not."""

from __future__ import annotations

import pytest

from authpi_worker.config import (
    MAX_CLOCK_TOLERANCE,
    Settings,
    jwks_url,
    load_cors_origins,
    load_settings,
)
from authpi_worker.errors import ServerMisconfigured
from authpi_worker.metadata import WELL_KNOWN
from tests.conftest import Call, body
from tests.support.issuer import FakeIssuer
from tests.support.logs import logged

GOOD = {
    "AUTHPI_ISSUER_URL": "https://idp.authpi.com/iss_1",
    "AUTHPI_AUDIENCE": "https://api.example.com",
}


def test_good_settings() -> None:
    settings = load_settings({**GOOD, "AUTHPI_CLOCK_TOLERANCE": "30"}.get)
    assert settings == Settings(
        ("https://idp.authpi.com/iss_1",),
        ("https://api.example.com",),
        30,
        "allowed",
        "https://api.example.com",
    )
    assert jwks_url(settings.issuers[0]) == "https://idp.authpi.com/iss_1/jwks.json"


def test_the_audience_may_be_a_client_id_and_then_is_no_resource() -> None:
    settings = load_settings({**GOOD, "AUTHPI_AUDIENCE": "client_abc"}.get)
    assert (settings.audiences, settings.resource) == (("client_abc",), None)


@pytest.mark.parametrize(
    "value",
    [
        "https://api.example.com, https://api-v2.example.com",
        "https://api.example.com https://api-v2.example.com",
        "https://api.example.com,https://api-v2.example.com",
        "https://api.example.com ,\n https://api-v2.example.com",
    ],
)
def test_several_audiences_separated_by_commas_or_spaces(value: str) -> None:
    settings = load_settings({**GOOD, "AUTHPI_AUDIENCE": value}.get)
    assert settings.audiences == ("https://api.example.com", "https://api-v2.example.com")
    assert settings.resource == "https://api.example.com"  # the first, as RFC 9728's resource


@pytest.mark.parametrize(
    ("audience", "resource"),
    [
        ("https://api.example.com/v1", "https://api.example.com/v1"),
        ("http://127.0.0.1:8787", "http://127.0.0.1:8787"),
        ("http://api.example.com", None),  # http only on loopback
        ("https://api.example.com/#frag", None),
        ("https://api.example.com/?q=1", None),
        ("urn:example:api", None),
        ("client_abc https://api.example.com", None),  # only the first counts
    ],
)
def test_the_resource_defaults_to_the_first_audience_when_it_is_an_https_url(
    audience: str, resource: str | None
) -> None:
    assert load_settings({**GOOD, "AUTHPI_AUDIENCE": audience}.get).resource == resource


def test_authpi_resource_wins_over_the_audience() -> None:
    env = {**GOOD, "AUTHPI_AUDIENCE": "client_abc", "AUTHPI_RESOURCE": "https://api.example/v2"}
    assert load_settings(env.get).resource == "https://api.example/v2"


@pytest.mark.parametrize("mode", ["allowed", "required", "disabled"])
def test_dpop_modes(mode: str) -> None:
    assert load_settings({**GOOD, "AUTHPI_DPOP": mode}.get).dpop == mode


def test_dpop_defaults_to_allowed() -> None:
    assert load_settings({**GOOD, "AUTHPI_DPOP": ""}.get).dpop == "allowed"


@pytest.mark.parametrize(
    ("value", "origins"),
    [
        (None, frozenset()),
        ("", frozenset()),
        ("*", frozenset({"*"})),
        ("https://app.example.com", frozenset({"https://app.example.com"})),
        (
            "https://app.example.com, http://localhost:5173",
            frozenset({"https://app.example.com", "http://localhost:5173"}),
        ),
        ("https://App.Example.COM:443", frozenset({"https://app.example.com"})),
        (
            "HTTP://127.0.0.1:80 http://[::1]:3000",
            frozenset({"http://127.0.0.1", "http://[::1]:3000"}),
        ),
    ],
)
def test_cors_allowed_origins(value: str | None, origins: frozenset[str]) -> None:
    assert load_cors_origins({"CORS_ALLOWED_ORIGINS": value}.get) == origins


@pytest.mark.parametrize(
    "value",
    [
        "https://app.example.com/",
        "https://app.example.com/app",
        "app.example.com",
        "ftp://app.example.com",
        "https://",
        "https://user@app.example.com",
        "https://app.example.com?x=1",
        "https://app.example.com#x",
        "https://app.example.com:99999",
        "* https://app.example.com",
        "null",
        "https://app.example.com {placeholder}",
    ],
)
def test_a_malformed_cors_origin_names_the_var(value: str) -> None:
    with pytest.raises(ServerMisconfigured) as caught:
        load_cors_origins({"CORS_ALLOWED_ORIGINS": value}.get)
    assert caught.value.variable == "CORS_ALLOWED_ORIGINS"


def test_a_trailing_slash_issuer_is_kept_for_iss_but_not_doubled_in_the_jwks_url() -> None:
    settings = load_settings({**GOOD, "AUTHPI_ISSUER_URL": "https://idp.example/"}.get)
    assert (settings.issuers, jwks_url(settings.issuers[0])) == (
        ("https://idp.example/",),
        "https://idp.example/jwks.json",
    )


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("AUTHPI_ISSUER_URL", None, "is missing"),
        ("AUTHPI_ISSUER_URL", "", "is missing"),
        ("AUTHPI_ISSUER_URL", "https://idp.authpi.com/{issuer_id}", "placeholder"),
        ("AUTHPI_ISSUER_URL", "idp.authpi.com/iss_1", "http(s) URL"),
        ("AUTHPI_ISSUER_URL", "ftp://idp.authpi.com/iss_1", "http(s) URL"),
        ("AUTHPI_ISSUER_URL", "https://", "http(s) URL"),
        ("AUTHPI_ISSUER_URL", " https://idp.authpi.com/iss_1", "whitespace"),
        ("AUTHPI_ISSUER_URL", "https://[idp.authpi.com/iss_1", "http(s) URL"),
        ("AUTHPI_ISSUER_URL", "http://idp.authpi.com/iss_1", "must be https"),
        ("AUTHPI_ISSUER_URL", "http://10.0.0.5/iss_1", "must be https"),
        ("AUTHPI_AUDIENCE", None, "is missing"),
        ("AUTHPI_AUDIENCE", "   ", "is missing"),
        ("AUTHPI_CLOCK_TOLERANCE", "-1", "whole seconds"),
        ("AUTHPI_CLOCK_TOLERANCE", "1.5", "whole seconds"),
        ("AUTHPI_CLOCK_TOLERANCE", "²", "whole seconds"),
        ("AUTHPI_CLOCK_TOLERANCE", str(MAX_CLOCK_TOLERANCE + 1), "whole seconds"),
        ("AUTHPI_CLOCK_TOLERANCE", "9" * 5000, "whole seconds"),
        ("AUTHPI_AUDIENCE", "{audience}", "placeholder"),
        ("AUTHPI_DPOP", "require", "one of allowed, required, disabled"),
        ("AUTHPI_DPOP", "Allowed", "one of allowed, required, disabled"),
        ("AUTHPI_DPOP", "true", "one of allowed, required, disabled"),
        ("AUTHPI_RESOURCE", "api.example.com", "http(s) URL"),
        ("AUTHPI_RESOURCE", "http://api.example.com", "must be https"),
        ("AUTHPI_RESOURCE", "https://api.example.com/#x", "no query or fragment"),
        ("AUTHPI_RESOURCE", "https://api.example.com/?v=1", "no query or fragment"),
    ],
)
def test_unusable_variables_name_themselves(name: str, value: str | None, problem: str) -> None:
    env = {**GOOD, name: value}
    with pytest.raises(ServerMisconfigured) as caught:
        load_settings(env.get)
    assert caught.value.variable == name
    assert problem in caught.value.description


@pytest.mark.parametrize("host", ["127.0.0.1:9400", "localhost:9400", "[::1]:9400"])
def test_plain_http_is_for_an_issuer_on_this_machine_only(host: str) -> None:
    issuer = f"http://{host}/iss_local"
    assert load_settings({**GOOD, "AUTHPI_ISSUER_URL": issuer}.get).issuers == (issuer,)


def test_a_tolerance_written_as_a_json_number_counts() -> None:
    env: dict[str, object] = {**GOOD, "AUTHPI_CLOCK_TOLERANCE": 30}
    assert load_settings(env.get).clock_tolerance == 30


def test_a_non_string_var_is_refused() -> None:
    env: dict[str, object] = {**GOOD, "AUTHPI_AUDIENCE": 42}
    with pytest.raises(ServerMisconfigured) as caught:
        load_settings(env.get)
    assert caught.value.variable == "AUTHPI_AUDIENCE"
    assert caught.value.description == "AUTHPI_AUDIENCE must be a string"


# Lists (AUTHPI_ISSUER_URL, AUTHPI_AUDIENCE, CORS_ALLOWED_ORIGINS) are separated by commas or
# white space; an empty entry is a typo, never a value (issue 14: "a," made "" an audience).
EMPTY_ENTRIES = ["{a},", ",{a}", "{a},,{b}", "{a}, ,{b}", "{a} , , {b}", "{a},\n,{b}", ","]
LIST_VARS = {
    "AUTHPI_AUDIENCE": ("https://api.example.com", "client_abc"),
    "AUTHPI_ISSUER_URL": ("https://idp.authpi.com/iss_1", "https://auth.example.com/iss_1"),
    "CORS_ALLOWED_ORIGINS": ("https://app.example.com", "http://localhost:5173"),
}


def _load(name: str, value: str) -> object:
    if name == "CORS_ALLOWED_ORIGINS":
        return load_cors_origins({name: value}.get)
    return load_settings({**GOOD, name: value}.get)


@pytest.mark.parametrize("name", list(LIST_VARS))
@pytest.mark.parametrize("shape", EMPTY_ENTRIES)
def test_an_empty_entry_in_any_list_is_a_misconfiguration(name: str, shape: str) -> None:
    first, second = LIST_VARS[name]
    with pytest.raises(ServerMisconfigured) as caught:
        _load(name, shape.format(a=first, b=second))
    assert caught.value.variable == name
    assert "empty entry" in caught.value.description


@pytest.mark.parametrize("name", list(LIST_VARS))
@pytest.mark.parametrize("shape", ["{a}, {b}", "{a} {b}", "{a},{b}", "{a} ,\n {b}", "{a}\t{b}"])
def test_commas_or_white_space_separate_any_list(name: str, shape: str) -> None:
    first, second = LIST_VARS[name]
    assert _load(name, shape.format(a=first, b=second)) == _load(name, f"{first} {second}")


HOSTILE_AUDIENCES: list[object] = ["", [""], ["", "https://other.example"]]


@pytest.mark.parametrize("aud", HOSTILE_AUDIENCES)
async def test_a_trailing_comma_in_the_audience_never_makes_the_empty_audience_valid(
    call: Call, env: dict[str, object], issuer: FakeIssuer, aud: object
) -> None:
    """Issue 14: AUTHPI_AUDIENCE="https://api.example.com," accepted aud "" and [""]."""
    env["AUTHPI_AUDIENCE"] = "https://api.example.com,"
    token = issuer.mint(aud=aud)
    assert (await call("/")).status == 200
    with logged() as events:
        for path in ("/me", WELL_KNOWN):
            reply = await call(path, token)
            assert (reply.status, body(reply)) == (500, {"error": "server_misconfigured"})
    assert [event["detail"] for event in events] == ["AUTHPI_AUDIENCE"] * 2
    assert issuer.jwks_hits == 0
