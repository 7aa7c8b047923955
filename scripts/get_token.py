"""Mint an access token with the client_credentials grant (RFC 6749 §4.4) from any issuer:
AuthPI, or the local fake issuer (scripts/issuer). Prints only the token, so that
`TOKEN=$(scripts/get-token --scope read:reports)` works; errors go to stderr in plain words.

Inputs, flag or environment: --issuer / AUTHPI_ISSUER_URL, --client-id / CLIENT_ID,
--client-secret / CLIENT_SECRET (prefer the environment: flags show in `ps`), --scope / SCOPE.
The token endpoint is {issuer}/token unless --token-url / AUTHPI_TOKEN_URL says otherwise.

Who calls (AuthPI's caller kinds): --client (the default kind: an M2M client, c_…) and --agent
(an agent, agt_…: a client_credentials client of its own, with memberships) use the client's
credentials. --person [usr_…] asks the local fake issuer for a person's token: at AuthPI a
person's token comes from a login in a browser, never from this script. --org ORG=PERM,PERM
(repeatable) asks the local fake issuer for these memberships (a person's, or an agent's
instead of its own); at AuthPI, memberships are managed in the console, not asked for.

--dpop KEYFILE asks for a DPoP-bound token (RFC 9449): the request carries a proof of the key
in KEYFILE (a PEM private key, made as ES256 if it does not exist), and the issuer must answer
token_type DPoP. Use the token with scripts/dpop-proof and the same KEYFILE.
"""

from __future__ import annotations

import argparse
import base64
import ipaddress
import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from authpi_worker.testing.dpop import proof
from authpi_worker.testing.keys import SigningKey
from scripts.keyfiles import load_or_make_key
from tests.support.issuer import AGENT_PREFIX, CLIENT_PREFIX, PERSON_GRANT, PERSON_PREFIX

TIMEOUT = 15.0  # seconds for the whole token request
LOGIN_FLOW = (
    "a person's access token comes from a login: the person signs in at AuthPI in a browser "
    "(authorization code with PKCE) through your app, which receives the token. get-token "
    "--person mints one only from the local fake issuer (scripts/issuer), which stands in for "
    "that login"
)
MEMBERSHIPS_AT_THE_ISSUER = (
    "AuthPI puts a person's or an agent's active memberships in its token: they are managed "
    "in the AuthPI console (or its API), not asked for in a token request. --org asks only the "
    "local fake issuer (scripts/issuer)"
)

# What each RFC 6749 §5.2 error means for the person running this script.
EXPLANATIONS = {
    "invalid_client": (
        "the issuer did not accept the client credentials: check CLIENT_ID and CLIENT_SECRET, "
        "and that the client belongs to this issuer"
    ),
    "invalid_scope": (
        "the client is not allowed the scope it asked for ({scope}): add it to the client's "
        "allowed scopes at the issuer, or ask for less"
    ),
    "unauthorized_client": (
        "this client may not use the client_credentials grant: it must be a machine-to-machine "
        "(M2M) client"
    ),
    "unsupported_grant_type": "the issuer does not offer the client_credentials grant here",
    "invalid_request": "the issuer rejected the token request as malformed",
    "invalid_grant": "the issuer refused the grant",
    "access_denied": "the issuer denied the request",
    "server_error": "the issuer failed while answering",
    "temporarily_unavailable": "the issuer is temporarily unavailable: try again shortly",
}


class TokenError(Exception):
    """Why no token was issued, in plain words; `code` is the RFC 6749 error when there is one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Credentials go to the URL given and nowhere else: a redirect is an error."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def token_endpoint(issuer: str) -> str:
    """{issuer}/token; of an AUTHPI_ISSUER_URL listing several issuers, the first's."""
    first = re.split(r"[,\s]+", issuer.strip())[0]
    return f"{first.rstrip('/')}/token"


def request_token(
    issuer: str,
    client_id: str | None,
    client_secret: str | None,
    scope: str | None = None,
    *,
    token_url: str | None = None,
    params: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
    dpop_key: SigningKey | None = None,
) -> str:
    """The access token, or TokenError. The client authenticates with HTTP Basic (none
    without a client_id: the local person grant); params add to the form, or replace its
    grant_type; with dpop_key, the token is bound to that key (RFC 9449 §5)."""
    url = token_url or token_endpoint(issuer)
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise TokenError(f"the token endpoint {url!r} is not an http(s) URL")
    form = {"grant_type": "client_credentials", **(params or {})}
    if scope:
        form["scope"] = scope
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "accept": "application/json",
    }
    if client_id is not None:
        basic = base64.b64encode(f"{client_id}:{client_secret or ''}".encode()).decode("ascii")
        headers["authorization"] = f"Basic {basic}"
    if dpop_key is not None:
        headers["dpop"] = proof(dpop_key, "POST", url)
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=urlencode(form).encode(), method="POST", headers=headers
    )
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
        if 300 <= status < 400:
            where = error.headers.get("location", "elsewhere")
            raise TokenError(
                f"the token endpoint {url} redirects (HTTP {status}) to {where}: "
                "give the issuer URL exactly as the issuer publishes it"
            ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise TokenError(f"cannot reach the token endpoint {url}: {reason}") from None
    body = _json_object(raw)
    if status != 200:
        raise _grant_error(status, body, url, scope)
    token = body.get("access_token") if body else None
    if not isinstance(token, str) or not token:
        raise TokenError(f"the token endpoint {url} answered 200 without an access_token")
    token_type = body.get("token_type") if body else None
    wanted = "dpop" if dpop_key is not None else "bearer"
    if not isinstance(token_type, str) or token_type.lower() != wanted:
        hint = " (does the issuer support DPoP?)" if dpop_key is not None else ""
        raise TokenError(
            f"the token endpoint {url} issued a {token_type!r} token, not "
            f"{'DPoP' if dpop_key is not None else 'Bearer'}{hint}"
        )
    return token


def request_person_token(
    issuer: str,
    sub: str | None = None,
    organizations: Sequence[Mapping[str, Any]] | None = None,
    scope: str | None = None,
    *,
    token_url: str | None = None,
    timeout: float = TIMEOUT,
    dpop_key: SigningKey | None = None,
) -> str:
    """A person's token from the local fake issuer's stand-in for a login (PERSON_GRANT); a
    TokenError explaining the login flow from any other issuer."""
    url = token_url or token_endpoint(issuer)
    if not is_local(url):
        raise TokenError(f"{url} is not the local fake issuer: {LOGIN_FLOW}")
    params = {"grant_type": PERSON_GRANT}
    if sub:
        params["sub"] = sub
    if organizations is not None:
        params["organizations"] = json.dumps(list(organizations))
    try:
        return request_token(
            issuer,
            None,
            None,
            scope,
            token_url=token_url,
            params=params,
            timeout=timeout,
            dpop_key=dpop_key,
        )
    except TokenError as error:
        if error.code == "unsupported_grant_type":
            raise TokenError(
                f"this issuer mints no person tokens: {LOGIN_FLOW}", error.code
            ) from None
        raise


def memberships(values: Sequence[str]) -> list[dict[str, Any]]:
    """--org ORG=PERM,PERM values as AuthPI's organizations entries; ValueError if malformed."""
    found: list[dict[str, Any]] = []
    for value in values:
        org_id, sep, scopes = value.partition("=")
        granted = [scope for scope in scopes.split(",") if scope]
        if not sep or not org_id or not granted:
            raise ValueError(f"--org {value!r}: expected ORG_ID=PERMISSION[,PERMISSION...]")
        found.append({"id": org_id, "scopes": granted})
    return found


def is_local(url: str) -> bool:
    """True for a URL on this machine (loopback): the local fake issuer, never AuthPI."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _json_object(raw: bytes) -> dict[str, Any] | None:
    try:
        decoded = json.loads(raw)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _grant_error(
    status: int, body: dict[str, Any] | None, url: str, scope: str | None
) -> TokenError:
    code = body.get("error") if body else None
    if status == 404:
        return TokenError(f"no token endpoint at {url} (HTTP 404): is the issuer URL right?")
    if not isinstance(code, str):
        return TokenError(f"the token endpoint {url} answered HTTP {status}, not an OAuth error")
    explanation = EXPLANATIONS.get(code, "the issuer refused to issue a token")
    explanation = explanation.format(scope=scope or "its default scopes")
    description = body.get("error_description") if body else None
    detail = f"{code}: {description}" if isinstance(description, str) and description else code
    return TokenError(f"{explanation} ({detail}; HTTP {status})", code)


def _plain_http_to_remote(url: str) -> bool:
    """True when a secret would cross the network unencrypted (http to a non-loopback host)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    if parts.hostname == "localhost":
        return False
    try:
        return not ipaddress.ip_address(parts.hostname).is_loopback
    except ValueError:
        return True


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/get-token",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--issuer", default=environ.get("AUTHPI_ISSUER_URL"), help="issuer URL")
    parser.add_argument("--client-id", default=environ.get("CLIENT_ID"))
    parser.add_argument("--client-secret", default=environ.get("CLIENT_SECRET"))
    parser.add_argument(
        "--scope",
        default=environ.get("SCOPE"),
        help="space-separated scopes; omit for the client's default scopes",
    )
    parser.add_argument("--token-url", default=environ.get("AUTHPI_TOKEN_URL"))
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra form parameter, e.g. resource=https://api.example.com (repeatable)",
    )
    parser.add_argument("--timeout", type=float, default=TIMEOUT)
    parser.add_argument(
        "--dpop",
        type=Path,
        metavar="KEYFILE",
        help="a DPoP-bound token, proven with the key in KEYFILE (made if it does not exist)",
    )
    kinds = parser.add_mutually_exclusive_group()
    kinds.add_argument(
        "--person",
        nargs="?",
        const="",
        metavar="usr_ID",
        help="a person's token, from the local fake issuer only (default person: usr_demo)",
    )
    kinds.add_argument("--agent", action="store_true", help="CLIENT_ID is an agent (agt_…)")
    kinds.add_argument("--client", action="store_true", help="CLIENT_ID is an M2M client (c_…)")
    parser.add_argument(
        "--org",
        action="append",
        default=[],
        metavar="ORG_ID=PERM,PERM",
        help="a membership to ask the local fake issuer for (repeatable), with --person or --agent",
    )
    args = parser.parse_args(argv)

    try:
        organizations = memberships(args.org) if args.org else None
    except ValueError as error:
        print(f"get-token: {error}", file=sys.stderr)
        return 2
    if organizations is not None and args.person is None and not args.agent:
        print(
            "get-token: --org is for --person or --agent: an M2M client holds no memberships",
            file=sys.stderr,
        )
        return 2
    needed = [(args.issuer or args.token_url, "--issuer", "AUTHPI_ISSUER_URL")]
    if args.person is None:  # a person's token needs no client credentials
        needed += [
            (args.client_id, "--client-id", "CLIENT_ID"),
            (args.client_secret, "--client-secret", "CLIENT_SECRET"),
        ]
    missing = [f"{flag} (or {var})" for value, flag, var in needed if not value]
    if missing:
        print(f"get-token: missing {', '.join(missing)}", file=sys.stderr)
        return 2
    url = args.token_url or token_endpoint(args.issuer)
    if args.person is not None:
        if args.person and not args.person.startswith(PERSON_PREFIX):
            print(f"get-token: a person's ID starts with {PERSON_PREFIX}", file=sys.stderr)
            return 2
        if not is_local(url):
            print(f"get-token: {url} is not the local fake issuer: {LOGIN_FLOW}.", file=sys.stderr)
            return 2
    else:
        for wanted, prefix, name in (
            (args.agent, AGENT_PREFIX, "an agent"),
            (args.client, CLIENT_PREFIX, "an M2M client"),
        ):
            if wanted and not args.client_id.startswith(prefix):
                print(
                    f"get-token: {name}'s ID starts with {prefix} (AuthPI's IDs): "
                    f"CLIENT_ID is {args.client_id!r}",
                    file=sys.stderr,
                )
                return 2
        if organizations is not None and not is_local(url):
            print(f"get-token: {MEMBERSHIPS_AT_THE_ISSUER}.", file=sys.stderr)
            return 2
    params = dict(p.partition("=")[::2] for p in args.param)
    if organizations is not None and args.person is None:
        params["organizations"] = json.dumps(organizations)
    if args.person is None and _plain_http_to_remote(url):
        print(
            f"get-token: warning: sending the client secret over plain http to {url}",
            file=sys.stderr,
        )
    try:
        dpop_key = load_or_make_key(args.dpop) if args.dpop is not None else None
    except (OSError, ValueError) as error:
        print(f"get-token: cannot use the DPoP key {args.dpop}: {error}", file=sys.stderr)
        return 2
    try:
        if args.person is not None:
            token = request_person_token(
                args.issuer or "",
                args.person or None,
                organizations,
                args.scope,
                token_url=args.token_url,
                timeout=args.timeout,
                dpop_key=dpop_key,
            )
        else:
            token = request_token(
                args.issuer or "",
                args.client_id,
                args.client_secret,
                args.scope,
                token_url=args.token_url,
                params=params,
                timeout=args.timeout,
                dpop_key=dpop_key,
            )
    except TokenError as error:
        print(f"get-token: {error}", file=sys.stderr)
        return 1
    print(token)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
