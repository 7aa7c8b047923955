"""The fixtures of authpi_worker.testing (authpi_issuer, authpi_dpop_key), by name."""

from authpi_worker.testing.fixtures import authpi_dpop_key, authpi_issuer

__all__ = ["authpi_dpop_key", "authpi_issuer"]
