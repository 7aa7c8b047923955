"""The release's check of the built wheel, run by a fresh venv's Python in isolated mode, so
that nothing of the checkout is on sys.path:

    venv/bin/python -I scripts/check_wheel.py [VERSION]

authpi_worker comes from that venv's site-packages (at VERSION when given); a request without
a token is refused with 401 and the Bearer challenge; authpi_worker.testing imports, and a
token it mints is verified (PyJWT and cryptography at work). Exit 1, saying what failed."""

from __future__ import annotations

import asyncio
import json
import sys
import sysconfig
from importlib.metadata import version as installed_version
from pathlib import Path

import authpi_worker
import authpi_worker.testing
from authpi_worker import Claims, Edge, Fetched, Isolate, Reply

ISSUER = "https://issuer.example/authpi"  # any https issuer: nothing is fetched over a network
VARS = {"AUTHPI_ISSUER_URL": ISSUER, "AUTHPI_AUDIENCE": authpi_worker.testing.AUDIENCE}
URL = "https://api.example/me"


class Failed(Exception):
    """One expectation of the installed wheel that does not hold."""


def expect(ok: bool, what: str) -> None:
    if not ok:
        raise Failed(what)


async def requests() -> tuple[Claims | Reply, Claims | Reply]:
    """A request without a token, and one with a token the testing helpers mint."""
    key = authpi_worker.testing.make_key("ES256")
    jwks = json.dumps({"keys": [key.jwk()]}).encode()

    async def fetch(url: str, edge: Edge) -> Fetched:
        return Fetched(200, jwks)

    isolate = Isolate(fetch)
    token = authpi_worker.testing.mint(key, ISSUER)
    refused = await isolate.authenticate(VARS.get, None, method="GET", url=URL)
    accepted = await isolate.authenticate(VARS.get, f"Bearer {token}", method="GET", url=URL)
    return refused, accepted


def check(expected_version: str | None) -> str:
    site_packages = Path(sysconfig.get_path("purelib")).resolve()
    module = Path(authpi_worker.__file__).resolve()
    expect(
        module == site_packages / "authpi_worker" / "__init__.py",
        f"authpi_worker was imported from {module}, not from {site_packages}: run me with -I",
    )
    found = installed_version("authpi-worker")
    if expected_version is not None:
        expect(found == expected_version, f"installed {found}, expected {expected_version}")
    refused, accepted = asyncio.run(requests())
    if not isinstance(refused, Reply):
        raise Failed(f"no token: expected a refusal, got the claims {dict(refused)!r}")
    challenge = refused.headers.get("www-authenticate", "")
    expect(refused.status == 401, f"no token: status {refused.status}, expected 401")
    expect(challenge.startswith("Bearer "), f"no token: challenge {challenge!r}")
    if isinstance(accepted, Reply):
        raise Failed(f"a minted token was refused: {accepted.status} {accepted.body}")
    expect(accepted.get("iss") == ISSUER, f"a minted token's claims: {dict(accepted)!r}")
    return f"authpi-worker {found} from {site_packages}, Python {sys.version.split()[0]}"


def main(argv: list[str]) -> int:
    try:
        checked = check(argv[0] if argv else None)
    except Failed as failed:
        print(f"::error title=Wheel check failed::{failed}")
        return 1
    print(f"Wheel checked: {checked}: no token 401, a minted token verified, testing imports")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
