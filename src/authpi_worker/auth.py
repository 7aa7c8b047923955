"""From the Authorization (and DPoP) headers to verified claims: the token rules and the
proof rules, applied with the isolate's key cache, verified-token cache and replay cache."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from authpi_worker.authorization import Entitlements, Requirement
from authpi_worker.config import (
    VARS,
    Lookup,
    Settings,
    jwks_url,
    load_cors_origins,
    load_settings,
)
from authpi_worker.cors import Cors
from authpi_worker.dpop import ProofChecker
from authpi_worker.errors import (
    Denied,
    InvalidToken,
    MissingToken,
    Scheme,
    ServerMisconfigured,
)
from authpi_worker.jwks import Fetcher, KeyCache
from authpi_worker.logs import log_event
from authpi_worker.metadata import metadata_url, resource_of
from authpi_worker.responses import Challenge, Reply, refusal
from authpi_worker.token_cache import TokenCache
from authpi_worker.tokens import (
    Parsed,
    check_claims,
    confirmation,
    credentials,
    parse,
    verify_signature,
)

Claims = Mapping[str, Any]
# Challenges kept per resource: one, or one per hostname the Worker answers at (workers.dev and
# custom domains); beyond this many, a Host header varied at will builds each one afresh.
MAX_CHALLENGES = 16
# Which Authorization schemes each AUTHPI_DPOP mode accepts (RFC 6750, RFC 9449 §7).
SCHEMES: dict[str, tuple[Scheme, ...]] = {
    "allowed": ("Bearer", "DPoP"),
    "required": ("DPoP",),
    "disabled": ("Bearer",),
}


@dataclass(slots=True)  # not frozen: one per request, and a frozen init costs more
class Caller:
    """Who is calling: the token's verified claims with what they grant, and the scheme it
    came under."""

    entitled: Entitlements  # kept with the token in the verified-token cache
    scheme: Scheme

    @property
    def claims(self) -> Claims:
        return self.entitled.claims

    def require(self, requirement: Requirement, params: Mapping[str, str] | None = None) -> None:
        """Authenticated is not authorized: 403 unless the token meets the requirement."""
        try:
            requirement.check_entitlements(self.entitled, params)
        except Denied as denied:
            denied.scheme = self.scheme  # the challenge answers in the scheme used
            raise


class Verifier:
    """Verifies access tokens, and DPoP proofs, for its issuers and audiences."""

    def __init__(
        self, settings: Settings, fetch: Fetcher, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.schemes = SCHEMES[settings.dpop]
        # One key cache per issuer (its own set, fetch policy and cooldown): a token's iss
        # picks the only keys that may verify it, and a flood naming one fetches no other's.
        self.issuers = {
            issuer: KeyCache(jwks_url(issuer), fetch, clock) for issuer in settings.issuers
        }
        self.tokens: TokenCache[Entitlements] = TokenCache()
        self.proofs = ProofChecker(clock)
        self._challenges: dict[str | None, Challenge] = {}
        self._clock = clock

    @property
    def keys(self) -> KeyCache:
        """The first issuer's key cache: the only one unless AUTHPI_ISSUER_URL lists several."""
        return self.issuers[self.settings.issuers[0]]

    async def authenticate(
        self,
        authorization: str | None,
        *,
        method: str,
        url: str,
        dpop: str | None = None,
    ) -> Caller:
        """The caller of a valid token (with a valid proof when DPoP-bound), or a Denied
        saying why not (401, or 503 without keys)."""
        scheme, token = credentials(authorization, self.tokens)  # a cached token: no scan
        if scheme not in self.schemes:
            raise MissingToken("dpop_required" if scheme == "Bearer" else "unsupported_scheme")
        try:
            # From the verified-token cache while its issuer's key set is fresh and unchanged
            # and the token inside its lifetime; else verified in full, and cached.
            entitled = self.tokens.get(token, self._clock())
            if entitled is None:
                entitled = await self._verify(token)
            jkt = confirmation(entitled.claims)
            if scheme == "DPoP":
                if jkt is None:  # nothing binds it: a proof would confirm nothing
                    raise InvalidToken("token_not_bound", "token is not DPoP-bound")
                self.proofs.check(dpop, method=method, url=url, token=token, jkt=jkt)
            elif jkt is not None:  # a stolen bound token must not work without the key
                raise InvalidToken("dpop_bound_token", "token is bound to a DPoP key")
        except Denied as denied:
            denied.scheme = scheme
            raise
        return Caller(entitled, scheme)

    def challenge(self, url: str) -> Challenge:
        """The schemes we accept and where our metadata is, for a 401 or 403 to this URL:
        made once per resource (the configured one, or each origin the Worker is called at)."""
        resource = resource_of(self.settings, url)
        challenge = self._challenges.get(resource)
        if challenge is None:
            challenge = Challenge(self.schemes, metadata_url(resource) if resource else None)
            if len(self._challenges) < MAX_CHALLENGES:
                self._challenges[resource] = challenge
        return challenge

    async def _verify(self, token: str) -> Entitlements:
        """The claims of a token not in the cache, with what they grant: verified in full
        (with the keys of the issuer its iss names, and no other's), then cached."""
        parsed = parse(token)
        try:
            keys = self._keys_of(parsed)
            key = await keys.key_for(parsed.kid, parsed.alg)
            verify_signature(parsed, key.key)
            window = check_claims(parsed.claims, self.settings, self._clock())
        except Denied as denied:
            denied.kid = parsed.kid
            raise
        entitled = Entitlements(parsed.claims)
        self.tokens.put(token, entitled, *window, keys)
        return entitled

    def _keys_of(self, parsed: Parsed) -> KeyCache:
        """The key cache of the issuer the token names: an iss we don't list is refused
        before any key set is fetched."""
        iss = parsed.claims.get("iss")
        keys = self.issuers.get(iss) if isinstance(iss, str) else None
        if keys is None:
            raise InvalidToken("wrong_issuer", "unexpected issuer")
        return keys


@dataclass(frozen=True, slots=True)
class Site:
    """What one set of variables makes of the Worker: its Verifier and its CORS policy, or
    for each, why the variables do not allow it (CORS then stays off)."""

    verifier: Verifier | ServerMisconfigured  # or why the variables allow none
    cors: Cors
    cors_misconfigured: ServerMisconfigured | None  # why CORS is off though configured

    def checked(self) -> Verifier:
        """The Verifier for a protected route or the metadata, which answer 500 when any
        variable is unusable (CORS's too: a browser app must not half work)."""
        if self.cors_misconfigured is not None:
            raise self.cors_misconfigured
        if isinstance(self.verifier, ServerMisconfigured):
            raise self.verifier
        return self.verifier


class Isolate:
    """What one Workers isolate keeps between requests: the Site (Verifier and CORS policy)
    of the current variables.

    Built empty at import (no I/O, no randomness, no JS objects: the deploy snapshot);
    the Verifier and its caches are made inside the first request that needs them."""

    def __init__(self, fetch: Fetcher, clock: Callable[[], float] = time.time) -> None:
        self._fetch = fetch
        self._clock = clock
        self._vars: tuple[object, ...] | None = None
        self._site: Site | None = None

    def site(self, var: Lookup) -> Site:
        """The Site for these variables, made again only when one of them changes (in
        production never: a deploy starts new isolates)."""
        current = tuple(map(var, VARS))
        site = self._site
        if site is None or current != self._vars:
            site = self._site = self._load(var)
            self._vars = current
        return site

    def verifier(self, var: Lookup) -> Verifier:
        """The Verifier for these variables; raises ServerMisconfigured if they are unusable."""
        verifier = self.site(var).verifier
        if isinstance(verifier, ServerMisconfigured):
            raise verifier
        return verifier

    def _load(self, var: Lookup) -> Site:
        verifier: Verifier | ServerMisconfigured
        try:
            verifier = Verifier(load_settings(var), self._fetch, self._clock)
        except ServerMisconfigured as problem:
            verifier = problem
        try:
            return Site(verifier, Cors(load_cors_origins(var)), None)
        except ServerMisconfigured as problem:
            return Site(verifier, Cors(frozenset()), problem)

    async def authenticate(
        self,
        var: Lookup,
        authorization: str | None,
        *,
        method: str,
        url: str,
        dpop: str | None = None,
        scope: str | None = None,
        requirement: Requirement | None = None,
        params: Mapping[str, str] | None = None,
    ) -> Claims | Reply:
        """The one call an existing Worker needs: the claims of a valid token (with a valid
        DPoP proof when the token is bound to one, `scope` when given, and what `requirement`
        asks, with `params` naming the organization), or the ready refusal (401, 403, 500 or
        503, with its challenge, the reason logged). `method` and `url` are the request's own,
        the URL in full: DPoP proofs name both, and 401s point to the URL's metadata."""
        verifier: Verifier | None = None
        try:
            verifier = self.verifier(var)
            caller = await verifier.authenticate(authorization, method=method, url=url, dpop=dpop)
            if scope is not None:
                caller.require(_exactly(scope))
            if requirement is not None:
                caller.require(requirement, params)
            return caller.claims
        except Denied as denied:
            return rejected(denied, verifier, url, urlsplit(url).path)


@cache
def _exactly(scope: str) -> Requirement:
    """The Requirement of one exact scope, made once per scope a Worker passes (its own code's
    literals), not on every request."""
    return Requirement(scope)


def rejected(denied: Denied, verifier: Verifier | None, url: str, path: str) -> Reply:
    """The refusal for denied, logged as one JSON line with its reason (never the token)."""
    challenge = verifier.challenge(url) if verifier is not None else Challenge()
    reply = refusal(denied, challenge)
    log_event(
        "request_rejected",
        status=reply.status,
        reason=denied.reason,
        path=path,
        kid=denied.kid,
        detail=denied.variable if isinstance(denied, ServerMisconfigured) else None,
    )
    return reply
