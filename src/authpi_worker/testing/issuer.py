"""An in-process fake AuthPI issuer, for tests of an API protected by authpi_worker: its signing
keys, tokens with any claims (caller kind, memberships, DPoP binding), DPoP proofs, and a JWKS
fetcher that answers without a network.

    issuer = Issuer()
    with issuer.serve(auth), TestClient(app) as client:   # auth: your AuthPI object
        client.get("/reports", headers=issuer.bearer(scope="read:reports"))

The tokens are signed for real and verified for real by the isolate: only the JWKS transport
is replaced. For a real HTTP issuer (JWKS faults, a token endpoint) see tests/support/issuer.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from authpi_worker import Edge, Fetched, Isolate
from authpi_worker.config import AUDIENCE_VAR, ISSUER_VAR
from authpi_worker.testing.dpop import jkt, proof
from authpi_worker.testing.keys import SigningKey, make_key
from authpi_worker.testing.tokens import AUDIENCE, caller, mint

# .test is reserved (RFC 6761): no name under it ever resolves, so no token of this issuer can
# be mistaken for a real one, and a fetch that escaped the fake would fail.
ISSUER_URL = "https://issuer.authpi.test/iss_test"
JWKS_CACHE_CONTROL = "public, max-age=600"  # what AuthPI's JWKS endpoint sends


class Protected(Protocol):
    """What `serve` swaps: an authpi_worker.starlette.AuthPI (or FastAPI's)."""

    env: Mapping[str, object] | None
    isolate: Isolate


@dataclass
class Issuer:
    """A fake issuer: `keys` are published (the last one signs); `status` is what its JWKS
    endpoint answers (503 to see your API answer 503 with Retry-After)."""

    url: str = ISSUER_URL
    audience: str = AUDIENCE
    keys: list[SigningKey] = field(default_factory=list)
    status: int = 200
    fetches: int = 0  # JWKS fetches so far

    def __post_init__(self) -> None:
        if not self.keys:
            self.keys.append(make_key("ES256"))

    @property
    def signer(self) -> SigningKey:
        return self.keys[-1]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.jwk() for key in self.keys]}

    def env(self, **variables: str) -> dict[str, str]:
        """The variables that make an API trust this issuer, and any others given
        (AUTHPI_DPOP="required", CORS_ALLOWED_ORIGINS=...)."""
        return {ISSUER_VAR: self.url, AUDIENCE_VAR: self.audience, **variables}

    async def fetch(self, url: str, edge: Edge) -> Fetched:
        """The Isolate's JWKS fetcher, answering in-process: the key set at {url}/jwks.json."""
        self.fetches += 1
        if url != f"{self.url.rstrip('/')}/jwks.json":
            return Fetched(404, b'{"error":"not_found"}')
        if self.status != 200:
            return Fetched(self.status, b'{"error":"unavailable"}')
        return Fetched(200, json.dumps(self.jwks()).encode(), JWKS_CACHE_CONTROL)

    def token(
        self,
        *,
        caller_kind: str = "client",
        name: str = "demo",
        scope: str | None = "read:reports",
        organizations: Sequence[Mapping[str, Any]] | None = None,
        dpop_key: SigningKey | None = None,
        key: SigningKey | None = None,
        head: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        """A signed access token: an M2M client's by default (`caller_kind` "person" or "agent"
        for the others), with `scope`, `organizations` (see testing.organization), bound to
        `dpop_key` when given; any other claim as a keyword (None drops it)."""
        fields: dict[str, Any] = {**caller(caller_kind, name), "scope": scope}
        if organizations is not None:
            fields["organizations"] = [dict(entry) for entry in organizations]
        if dpop_key is not None:
            fields["cnf"] = {"jkt": jkt(dpop_key)}
        fields.update(claims)
        return mint(key or self.signer, self.url, self.audience, head=head, **fields)

    def bearer(self, **token: Any) -> dict[str, str]:
        """Request headers carrying a new token (token()'s arguments) as a Bearer token."""
        return {"authorization": f"Bearer {self.token(**token)}"}

    def dpop(self, key: SigningKey, method: str, url: str, **token: Any) -> dict[str, str]:
        """Request headers for a DPoP request: a token bound to key, and a fresh proof for the
        method and full URL (RFC 9449)."""
        bound = self.token(dpop_key=key, **token)
        return {"authorization": f"DPoP {bound}", "dpop": proof(key, method, url, bound)}

    def rotate(self, alg: str = "ES256") -> SigningKey:
        """Publish a new key, which signs from now on (the old one stays published)."""
        key = make_key(alg)
        self.keys.append(key)
        return key

    def retire(self, kid: str) -> None:
        self.keys = [key for key in self.keys if key.kid != kid]

    @contextmanager
    def serve(self, auth: Protected, **variables: str) -> Iterator[Issuer]:
        """Inside the block, auth trusts this issuer: its variables (plus `variables`), this
        fetcher, and caches of its own. Restored afterwards."""
        saved = auth.env, auth.isolate
        auth.env = self.env(**variables)
        auth.isolate = Isolate(self.fetch)
        try:
            yield self
        finally:
            auth.env, auth.isolate = saved
