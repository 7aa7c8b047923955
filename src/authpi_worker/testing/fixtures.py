"""pytest fixtures for tests of an API protected by authpi_worker. In your conftest.py:

    pytest_plugins = ["authpi_worker.testing.fixtures"]      # the top-level conftest only

or import the fixtures by name into any conftest.py. Requires pytest (a test dependency).
"""

from __future__ import annotations

import pytest

from authpi_worker.testing.issuer import Issuer
from authpi_worker.testing.keys import SigningKey, make_key

__all__ = ["authpi_dpop_key", "authpi_issuer"]


@pytest.fixture
def authpi_issuer() -> Issuer:
    """A fresh in-process issuer (one ES256 key): `with authpi_issuer.serve(auth): ...`."""
    return Issuer()


@pytest.fixture(scope="session")
def authpi_dpop_key() -> SigningKey:
    """A client's DPoP key (ES256): `authpi_issuer.dpop(authpi_dpop_key, "GET", url)`."""
    return make_key("ES256", "client-dpop")
