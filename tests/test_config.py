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
        ("AUTHPI_AUDIENCE", None, "is missing"),
        ("AUTHPI_AUDIENCE", "   ", "is missing"),
        ("AUTHPI_CLOCK_TOLERANCE", "-1", "whole seconds"),
        ("AUTHPI_CLOCK_TOLERANCE", "1.5", "whole seconds"),
        ("AUTHPI_CLOCK_TOLERANCE", "²", "whole seconds"),
        ("AUTHPI_CLOCK_TOLERANCE", str(MAX_CLOCK_TOLERANCE + 1), "whole seconds"),
    ],
)
def test_unusable_variables_name_themselves(name: str, value: str | None, problem: str) -> None:
    env = {**GOOD, name: value}
    with pytest.raises(ServerMisconfigured) as caught:
        load_settings(env.get)
    assert caught.value.variable == name
    assert problem in caught.value.description


def test_a_non_string_var_is_missing() -> None:
    env: dict[str, object] = {**GOOD, "AUTHPI_AUDIENCE": 42}
    with pytest.raises(ServerMisconfigured) as caught:
        load_settings(env.get)
    assert caught.value.variable == "AUTHPI_AUDIENCE"
