"""Configuration: what makes the Worker answer 500 server_misconfigured, and what does not."""

from __future__ import annotations

import pytest

from authpi_worker.config import MAX_CLOCK_TOLERANCE, Settings, load_settings
from authpi_worker.errors import ServerMisconfigured

GOOD = {
    "AUTHPI_ISSUER_URL": "https://idp.authpi.com/iss_1",
    "AUTHPI_AUDIENCE": "https://api.example.com",
}


def test_good_settings() -> None:
    settings = load_settings({**GOOD, "AUTHPI_CLOCK_TOLERANCE": "30"}.get)
    assert settings == Settings("https://idp.authpi.com/iss_1", "https://api.example.com", 30)
    assert settings.jwks_url == "https://idp.authpi.com/iss_1/jwks.json"


def test_the_audience_may_be_a_client_id() -> None:
    assert load_settings({**GOOD, "AUTHPI_AUDIENCE": "client_abc"}.get).audience == "client_abc"


def test_a_trailing_slash_issuer_is_kept_for_iss_but_not_doubled_in_the_jwks_url() -> None:
    settings = load_settings({**GOOD, "AUTHPI_ISSUER_URL": "https://idp.example/"}.get)
    assert (settings.issuer, settings.jwks_url) == (
        "https://idp.example/",
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
    assert load_settings({**GOOD, "AUTHPI_ISSUER_URL": issuer}.get).issuer == issuer


def test_a_tolerance_written_as_a_json_number_counts() -> None:
    env: dict[str, object] = {**GOOD, "AUTHPI_CLOCK_TOLERANCE": 30}
    assert load_settings(env.get).clock_tolerance == 30


def test_a_non_string_var_is_refused() -> None:
    env: dict[str, object] = {**GOOD, "AUTHPI_AUDIENCE": 42}
    with pytest.raises(ServerMisconfigured) as caught:
        load_settings(env.get)
    assert caught.value.variable == "AUTHPI_AUDIENCE"
    assert caught.value.description == "AUTHPI_AUDIENCE must be a string"
