"""The quickstart's 401/403/200 matrix against a running Worker, with real curl.

    scripts/curl-matrix BASE_URL

BASE_URL is scripts/serve (http://127.0.0.1:8787), `uv run pywrangler dev`
(http://localhost:8787) or a deployed Worker (https://authpi-worker.<you>.workers.dev).

Tokens come from the environment:
  TOKEN            a valid token carrying read:reports
  TOKEN_NO_SCOPE   a valid token without read:reports
or are minted through scripts/get-token when client credentials are given instead:
  AUTHPI_ISSUER_URL, CLIENT_ID, CLIENT_SECRET                      for TOKEN (scope read:reports)
  CLIENT_ID_NO_SCOPE, CLIENT_SECRET_NO_SCOPE [, SCOPE_NO_SCOPE]    for TOKEN_NO_SCOPE
    (without SCOPE_NO_SCOPE, the second client gets its default scopes)

Beside the quickstart's rows, it fetches the RFC 9728 metadata, then asks
/orgs/{org_id}/reports as a person and as an agent (AuthPI's organizations) with:
  PERSON_TOKEN     a person's token (usr_…), a member of ORG_ID with reports:read and
                   reports:write: it comes from a login at AuthPI (make demo mints one locally)
  AGENT_TOKEN      an agent's token (agt_…), a member of ORG_ID with reports:read
  ORG_ID           the organization; OTHER_ORG_ID (optional) one the person is not a member of
Without them those rows are skipped, and do not fail the run. Two groups are opt-in, for
what the Worker is configured to do:
  --origin ORIGIN   a CORS preflight from ORIGIN, which CORS_ALLOWED_ORIGINS must allow
  --dpop KEYFILE    DPoP (RFC 9449): DPOP_TOKEN bound to the key in KEYFILE, or one minted
                    with `scripts/get-token --dpop KEYFILE` from the client credentials above

It prints one row per request (PASS/FAIL, coloured on a terminal) and exits 0 only when
every row passes; 1 when one fails or cannot run; 2 when it cannot start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app import READ_PERMISSION, REPORTS_SCOPE, WRITE_PERMISSION
from authpi_worker.authorization import caller_kind, has_permission
from authpi_worker.testing.dpop import proof
from authpi_worker.testing.keys import SigningKey
from authpi_worker.testing.tokens import edit_signature, payload_of, with_payload
from scripts.get_token import TokenError, request_token
from scripts.keyfiles import load_or_make_key
from tests.support.challenges import Challenge, parse_challenges

UNKNOWN_PATH = "/no-such-route"
OTHER_ORG = "org_curl_matrix_other"  # OTHER_ORG_ID's default: an org no token is a member of
REPORT = b'{"title":"curl-matrix"}'  # the report the person's POST creates
JSON_BODY = {"Content-Type": "application/json"}
METADATA_PATH = "/.well-known/oauth-protected-resource"  # RFC 9728 §3
CURL_TIMEOUT = 20  # seconds per request: a cold workers.dev isolate fetches the JWKS first
GOT_WIDTH = 60  # the "got" column is cut to this many characters


@dataclass(frozen=True)
class Response:
    status: int  # 0 when curl itself failed
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    body: str = ""
    error: str = ""  # curl's own message when it failed

    def json(self) -> dict[str, Any]:
        try:
            decoded = json.loads(self.body)
        except ValueError:
            return {}
        return decoded if isinstance(decoded, dict) else {}


@dataclass(frozen=True)
class Row:
    path: str
    credential: str  # what the request carries, in words
    expected: str
    token: str | None  # sent as a Bearer token; None sends no Authorization header
    check: Callable[[Response], bool]
    skip: str = ""  # why the row cannot run, when it cannot
    method: str = "GET"
    # Other request headers; a callable is called just before the request (a fresh proof).
    headers: Mapping[str, str | Callable[[], str]] = field(default_factory=dict)
    data: bytes | None = None  # the request body
    optional: bool = False  # skipped, it does not fail the run (its tokens may not exist)

    @property
    def request(self) -> str:
        return f"{self.method} {self.path} ({self.credential})"


@dataclass(frozen=True)
class Result:
    row: Row
    response: Response | None
    outcome: str  # PASS, FAIL or SKIP
    got: str


def curl(
    base_url: str,
    path: str,
    token: str | None,
    timeout: int = CURL_TIMEOUT,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    data: bytes | None = None,
) -> Response:
    """One request with the curl binary. The URL and the headers go through curl's config on
    stdin, so no token or proof shows in the process list; a body goes in a file."""
    config = [f"url = {_quoted(base_url.rstrip('/') + path)}", f"request = {_quoted(method)}"]
    fields = dict(headers or {})
    if token is not None:
        fields.setdefault("Authorization", f"Bearer {token}")
    config.extend(f"header = {_quoted(f'{name}: {value}')}" for name, value in fields.items())
    with tempfile.TemporaryDirectory(prefix="curl-matrix-") as tmp:
        headers_file, body_file = Path(tmp, "headers"), Path(tmp, "body")
        if data is not None:
            Path(tmp, "data").write_bytes(data)
            config.append(f"data-binary = {_quoted('@' + str(Path(tmp, 'data')))}")
        command = [
            "curl",
            "--silent",
            "--show-error",
            "--globoff",
            "--proto",
            "=http,https",
            "--connect-timeout",
            "5",
            "--max-time",
            str(timeout),
            "--dump-header",
            str(headers_file),
            "--output",
            str(body_file),
            "--write-out",
            "%{http_code}",
            "--config",
            "-",
        ]
        done = subprocess.run(  # noqa: S603 - a fixed argv; no shell
            command, input="\n".join(config) + "\n", capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            return Response(0, error=done.stderr.strip() or f"curl exited {done.returncode}")
        raw_headers = headers_file.read_text("latin-1") if headers_file.exists() else ""
        body = body_file.read_text("utf-8", "replace") if body_file.exists() else ""
        return Response(int(done.stdout.strip() or 0), _last_header_block(raw_headers), body)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _last_header_block(raw: str) -> dict[str, str]:
    """Header names (lower-case) and values of the final response (after any 100 Continue)."""
    blocks = [b for b in raw.replace("\r\n", "\n").split("\n\n") if b.strip()]
    headers: dict[str, str] = {}
    for line in blocks[-1].splitlines()[1:] if blocks else []:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def rows(token: str | None, token_no_scope: str | None, skip_token: str, skip_no: str) -> list[Row]:
    """The quickstart's eight requests and what each must answer, and the metadata."""

    def status(code: int) -> Callable[[Response], bool]:
        return lambda r: r.status == code

    def challenged(r: Response) -> bool:
        """401 with a Bearer challenge that points to the RFC 9728 metadata (§5.1)."""
        bearer = [c for c in _challenges(r) if c.scheme.lower() == "bearer"]
        return r.status == 401 and any(
            METADATA_PATH in c.params.get("resource_metadata", "") for c in bearer
        )

    def metadata(r: Response) -> bool:
        """RFC 9728 §2: the resource, and the authorization server to ask for tokens."""
        document = r.json()
        servers = document.get("authorization_servers")
        return (
            r.status == 200
            and isinstance(document.get("resource"), str)
            and isinstance(servers, list)
            and bool(servers)
            and document.get("bearer_methods_supported") == ["header"]
        )

    def shows_sub(r: Response) -> bool:
        return r.status == 200 and isinstance(r.json().get("sub"), str)

    def insufficient_scope(r: Response) -> bool:
        return r.status == 403 and (
            r.json().get("error") == "insufficient_scope"
            or 'error="insufficient_scope"' in r.headers.get("www-authenticate", "")
        )

    edited = forged = None
    try:
        edited = edit_signature(token) if token else None
    except ValueError:
        skip_token = "TOKEN is not a JWT"
    try:
        if token_no_scope:
            claims = payload_of(token_no_scope)
            scope = claims.get("scope")
            claims["scope"] = (
                f"{scope} {REPORTS_SCOPE}" if isinstance(scope, str) else REPORTS_SCOPE
            )
            forged = with_payload(token_no_scope, claims)
    except ValueError:
        skip_no = "TOKEN_NO_SCOPE is not a JWT"
    return [
        Row("/", "no token", "200", None, status(200)),
        Row("/me", "no token", "401 + resource_metadata", None, challenged),
        Row("/me", "valid token", "200 with sub and scope", token, shows_sub, skip_token),
        Row("/reports", "token with read:reports", "200", token, status(200), skip_token),
        Row(
            "/reports",
            "token without read:reports",
            "403 insufficient_scope",
            token_no_scope,
            insufficient_scope,
            skip_no,
        ),
        Row("/me", "signature: one character edited", "401", edited, status(401), skip_token),
        Row(
            "/reports",
            "payload edited: +read:reports, old signature",
            "401",
            forged,
            status(401),
            skip_no,
        ),
        Row(UNKNOWN_PATH, "valid token", "404", token, status(404), skip_token),
        Row(METADATA_PATH, "no token", "200 RFC 9728 metadata", None, metadata),
    ]


def org_rows(
    person: str | None, agent: str | None, org: str | None, other: str = OTHER_ORG
) -> list[Row]:
    """/orgs/{org_id}/reports as AuthPI's callers: a person and an agent read, only the person
    writes, another organization's reports are refused, and a bad body is a 400. Optional:
    a deployment checked with M2M credentials alone has no person or agent token."""
    path, elsewhere = f"/orgs/{org}/reports", f"/orgs/{other}/reports"

    def missing(token: str | None, name: str) -> str:
        absent = [what for what, value in ((name, token), ("ORG_ID", org)) if not value]
        return f"no {' or '.join(absent)}" if absent else ""

    skip_person, skip_agent = missing(person, "PERSON_TOKEN"), missing(agent, "AGENT_TOKEN")

    def listed(r: Response) -> bool:
        return r.status == 200 and r.json().get("org") == org

    def created(r: Response) -> bool:
        body = r.json()
        return r.status == 201 and body.get("org") == org and body.get("title") == "curl-matrix"

    def refused(r: Response) -> bool:
        return r.status == 403 and r.json().get("error") == "insufficient_scope"

    def invalid(r: Response) -> bool:
        return r.status == 400 and r.json().get("error") == "invalid_request"

    def row(
        path: str,
        who: str,
        expected: str,
        token: str | None,
        check: Callable[[Response], bool],
        skip: str,
        data: bytes | None = None,
    ) -> Row:
        method, headers = ("POST", JSON_BODY) if data is not None else ("GET", {})
        return Row(path, who, expected, token, check, skip, method, headers, data, optional=True)

    forbidden = "403 insufficient_scope"
    return [
        row(path, "person, member: reports:read", "200", person, listed, skip_person),
        row(path, "agent, member: reports:read", "200", agent, listed, skip_agent),
        row(elsewhere, "person, not a member of it", forbidden, person, refused, skip_person),
        row(path, "agent: may read, not write", forbidden, agent, refused, skip_agent, REPORT),
        row(path, "person, member: reports:write", "201", person, created, skip_person, REPORT),
        row(
            path,
            "person, a body not JSON",
            "400 invalid_request",
            person,
            invalid,
            skip_person,
            b"not json",
        ),
    ]


def preflight_rows(origin: str) -> list[Row]:
    """A browser app's CORS preflight from an origin the Worker allows: answered before any
    authentication, and allowing exactly that origin (or any)."""

    def allowed(r: Response) -> bool:
        return r.status == 204 and r.headers.get("access-control-allow-origin") in (origin, "*")

    headers = {"Origin": origin, "Access-Control-Request-Method": "GET"}
    headers["Access-Control-Request-Headers"] = "authorization"
    return [
        Row(
            "/me",
            f"preflight from {origin}",
            "204 + Allow-Origin",
            None,
            allowed,
            "",
            "OPTIONS",
            headers,
        )
    ]


def dpop_rows(base_url: str, token: str | None, key: SigningKey | None, skip: str) -> list[Row]:
    """A DPoP-bound token (RFC 9449): good with a fresh proof, and nothing without one."""
    me, reports = f"{base_url}/me", f"{base_url}/reports"
    fresh: list[str] = []  # the first row's proof, which the replay row sends again

    def proven(url: str, keep: bool = False) -> Callable[[], str]:
        def make() -> str:
            assert key is not None and token is not None
            value = proof(key, "GET", url, token)
            if keep:
                fresh.append(value)
            return value

        return make

    def refused_proof(r: Response) -> bool:
        return r.status == 401 and 'error="invalid_dpop_proof"' in r.headers.get(
            "www-authenticate", ""
        )

    def ok(r: Response) -> bool:
        return r.status == 200

    bound = f"DPoP {token}" if token else ""
    return [
        Row(
            "/me",
            "DPoP token, fresh proof",
            "200",
            None,
            ok,
            skip,
            "GET",
            {"Authorization": bound, "DPoP": proven(me, keep=True)},
        ),
        Row("/me", "the DPoP token as Bearer", "401", token, lambda r: r.status == 401, skip),
        Row(
            "/me",
            "DPoP token, replayed proof",
            "401 invalid_dpop_proof",
            None,
            refused_proof,
            skip,
            "GET",
            {"Authorization": bound, "DPoP": lambda: fresh[0] if fresh else ""},
        ),
        Row(
            "/me",
            "DPoP token, proof for /reports",
            "401 invalid_dpop_proof",
            None,
            refused_proof,
            skip,
            "GET",
            {"Authorization": bound, "DPoP": proven(reports)},
        ),
    ]


def _challenges(response: Response) -> list[Challenge]:
    """The WWW-Authenticate challenges, as a client reads them (none if malformed)."""
    try:
        return parse_challenges(response.headers.get("www-authenticate"))
    except ValueError:
        return []


def describe(response: Response, path: str) -> str:
    """The "got" column: the status and what explains it (the RFC 6750 error and description,
    the schemes offered, the metadata's resource, the origin a preflight allows)."""
    parts = [str(response.status)] if response.status else ["no answer:", response.error]
    body = response.json()
    challenge = response.headers.get("www-authenticate")
    challenges = _challenges(response)
    errors = [c.params for c in challenges if "error" in c.params]
    if response.status == 200 and path == "/me":
        parts.append(f"sub={body.get('sub')} scope={body.get('scope', '-')}")
    elif response.status == 200 and path == METADATA_PATH:
        parts.append(f"resource={body.get('resource')}")
    elif response.status in (200, 201) and "org" in body:
        by = body.get("requested_by", body.get("created_by"))
        parts.append(f"org={body.get('org')} by={by}")
    elif response.status == 204:
        parts.append(f"Allow-Origin: {response.headers.get('access-control-allow-origin')}")
    elif errors:
        parts.append(errors[0]["error"])
        if errors[0].get("error_description"):
            parts.append(f"({errors[0]['error_description']})")
    elif challenges:
        parts.append(" + ".join(c.scheme for c in challenges))
        metadata = all("resource_metadata" in c.params for c in challenges)
        parts.append("challenge, resource_metadata" if metadata else "challenge")
    elif challenge is not None:
        parts.append(f"WWW-Authenticate: {challenge}")
    elif isinstance(body.get("error"), str):
        parts.append(body["error"])
    got = " ".join(parts)
    return got if len(got) <= GOT_WIDTH else got[: GOT_WIDTH - 1] + "…"


def run(base_url: str, table: list[Row], timeout: int = CURL_TIMEOUT) -> list[Result]:
    results = []
    for row in table:
        if row.skip:
            results.append(Result(row, None, "SKIP", row.skip))
            continue
        headers = {k: v() if callable(v) else v for k, v in row.headers.items()}
        response = curl(
            base_url,
            row.path,
            row.token,
            timeout,
            method=row.method,
            headers=headers,
            data=row.data,
        )
        outcome = "PASS" if row.check(response) else "FAIL"
        results.append(Result(row, response, outcome, describe(response, row.path)))
    return results


COLOURS = {"PASS": "\033[32m", "FAIL": "\033[31m", "SKIP": "\033[33m"}


def render(results: list[Result], colour: bool) -> str:
    header = ("#", "request", "token", "expected", "got", "")
    cells = [
        (str(i), f"{r.row.method} {r.row.path}", r.row.credential, r.row.expected, r.got, r.outcome)
        for i, r in enumerate(results, 1)
    ]
    widths = [max(len(line[c]) for line in [header, *cells]) for c in range(len(header) - 1)]
    lines = []
    for line in [header, *cells]:
        text = "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        outcome = line[-1]
        if colour and outcome in COLOURS:
            outcome = f"{COLOURS[outcome]}{outcome}\033[0m"
        lines.append(f"{text}  {outcome}".rstrip())
    return "\n".join(lines)


def use_colour(stream: Any, environ: Mapping[str, str]) -> bool:
    return bool(stream.isatty()) and "NO_COLOR" not in environ and environ.get("TERM") != "dumb"


def tokens_from(environ: Mapping[str, str]) -> tuple[str | None, str | None, list[str]]:
    """(TOKEN, TOKEN_NO_SCOPE, notes): from the environment, else minted with get-token."""
    notes: list[str] = []
    token = _token(environ, "", environ.get("SCOPE") or REPORTS_SCOPE, notes)
    token_no_scope = _token(environ, "_NO_SCOPE", environ.get("SCOPE_NO_SCOPE") or None, notes)
    return token, token_no_scope, notes


def _token(
    environ: Mapping[str, str], suffix: str, scope: str | None, notes: list[str]
) -> str | None:
    """TOKEN{suffix} from the environment, or minted for CLIENT_ID{suffix}/CLIENT_SECRET{suffix}."""
    name, client_id, secret = f"TOKEN{suffix}", f"CLIENT_ID{suffix}", f"CLIENT_SECRET{suffix}"
    issuer = environ.get("AUTHPI_ISSUER_URL", "")
    if environ.get(name):
        notes.append(f"{name} from the environment")
        return environ[name]
    if not (environ.get(client_id) and environ.get(secret) and issuer):
        return None
    token = request_token(
        issuer,
        environ[client_id],
        environ[secret],
        scope,
        token_url=environ.get("AUTHPI_TOKEN_URL"),
    )
    notes.append(f"{name} minted for {environ[client_id]} at {issuer}")
    return token


def dpop_token_from(
    keyfile: Path, environ: Mapping[str, str], notes: list[str]
) -> tuple[SigningKey, str | None]:
    """The DPoP key, and DPOP_TOKEN from the environment, else one minted with get-token
    --dpop from the client credentials (None when there are none)."""
    key = load_or_make_key(keyfile)
    if environ.get("DPOP_TOKEN"):
        notes.append("DPOP_TOKEN from the environment")
        return key, environ["DPOP_TOKEN"]
    issuer, client_id = environ.get("AUTHPI_ISSUER_URL", ""), environ.get("CLIENT_ID")
    if not (issuer and client_id and environ.get("CLIENT_SECRET")):
        return key, None
    token = request_token(
        issuer,
        client_id,
        environ["CLIENT_SECRET"],
        environ.get("SCOPE") or REPORTS_SCOPE,
        token_url=environ.get("AUTHPI_TOKEN_URL"),
        dpop_key=key,
    )
    notes.append(f"DPOP_TOKEN minted for {client_id}, bound to {keyfile}")
    return key, token


def _scope_warnings(token: str | None, token_no_scope: str | None) -> list[str]:
    """Tokens that cannot make their rows pass, said before the table instead of guessed at."""
    warnings = []
    for name, value, wanted in (("TOKEN", token, True), ("TOKEN_NO_SCOPE", token_no_scope, False)):
        if value is None:
            continue
        try:
            scope = payload_of(value).get("scope")
        except (ValueError, IndexError):
            warnings.append(f"{name} is not a JWT")
            continue
        has = isinstance(scope, str) and REPORTS_SCOPE in scope.split()
        if has != wanted:
            should = "should carry" if wanted else "should not carry"
            warnings.append(f"{name} {should} {REPORTS_SCOPE} (its scope: {scope!r})")
    return warnings


def _org_warnings(person: str | None, agent: str | None, org: str | None, other: str) -> list[str]:
    """Person and agent tokens that cannot make their rows pass, read (unverified) ahead."""
    if not org:
        return []
    warnings = []
    wanted = (
        ("PERSON_TOKEN", person, "person", (READ_PERMISSION, WRITE_PERMISSION)),
        ("AGENT_TOKEN", agent, "agent", (READ_PERMISSION,)),
    )
    for name, token, kind, permissions in wanted:
        if token is None:
            continue
        try:
            claims = payload_of(token)
        except (ValueError, IndexError):
            warnings.append(f"{name} is not a JWT")
            continue
        if caller_kind(claims) != kind:
            article = "an" if kind == "agent" else "a"
            warnings.append(f"{name} is not {article} {kind}'s token (sub {claims.get('sub')!r})")
        lacking = [p for p in permissions if not has_permission(claims, org, p)]
        if lacking:
            warnings.append(f"{name}'s membership in {org} does not grant {' '.join(lacking)}")
        if name == "PERSON_TOKEN" and has_permission(claims, other, READ_PERMISSION):
            warnings.append(f"PERSON_TOKEN may read {other}'s reports: set OTHER_ORG_ID")
    return warnings


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/curl-matrix",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("base_url", metavar="BASE_URL")
    parser.add_argument("--timeout", type=int, default=CURL_TIMEOUT, help="seconds per request")
    parser.add_argument("-v", "--verbose", action="store_true", help="show every response")
    parser.add_argument("--origin", help="add a CORS preflight from this (allowed) origin")
    parser.add_argument(
        "--dpop", type=Path, metavar="KEYFILE", help="add the DPoP rows, with this key"
    )
    args = parser.parse_args(argv)
    base_url = args.base_url.rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        print(f"curl-matrix: {args.base_url!r} is not an http(s) URL", file=sys.stderr)
        return 2
    if shutil.which("curl") is None:
        print("curl-matrix: curl is not installed", file=sys.stderr)
        return 2
    try:
        token, token_no_scope, notes = tokens_from(environ)
    except TokenError as error:
        print(f"curl-matrix: cannot mint a token: {error}", file=sys.stderr)
        return 2
    skip_token = "" if token else "no TOKEN"
    skip_no = "" if token_no_scope else "no TOKEN_NO_SCOPE"
    table = rows(token, token_no_scope, skip_token, skip_no)
    person, agent = environ.get("PERSON_TOKEN") or None, environ.get("AGENT_TOKEN") or None
    org, other = environ.get("ORG_ID") or None, environ.get("OTHER_ORG_ID") or OTHER_ORG
    table += org_rows(person, agent, org, other)
    notes += [
        f"{name} from the environment"
        for name in ("PERSON_TOKEN", "AGENT_TOKEN")
        if environ.get(name)
    ]
    if args.origin:
        table += preflight_rows(args.origin)
    if args.dpop is not None:
        try:
            key, dpop_token = dpop_token_from(args.dpop, environ, notes)
        except (TokenError, OSError, ValueError) as error:
            print(f"curl-matrix: cannot get a DPoP-bound token: {error}", file=sys.stderr)
            return 2
        table += dpop_rows(base_url, dpop_token, key, "" if dpop_token else "no DPOP_TOKEN")

    print(f"curl-matrix against {base_url}" + (f" ({'; '.join(notes)})" if notes else ""))
    for warning in _scope_warnings(token, token_no_scope) + _org_warnings(
        person, agent, org, other
    ):
        print(f"warning: {warning}")
    results = run(base_url, table, args.timeout)
    print(render(results, use_colour(sys.stdout, environ)))
    if args.verbose:
        for i, result in enumerate(results, 1):
            if result.response is not None:
                headers = "".join(f"\n    {k}: {v}" for k, v in result.response.headers.items())
                print(f"\n[{i}] {result.row.request}{headers}\n    {result.response.body}")
    # Optional rows skipped (no person or agent token) are left out of the count.
    counted = [r for r in results if not (r.outcome == "SKIP" and r.row.optional)]
    passed = sum(r.outcome == "PASS" for r in counted)
    failed = sum(r.outcome == "FAIL" for r in counted)
    skipped = sum(r.outcome == "SKIP" for r in counted)
    summary = f"{passed}/{len(counted)} passed"
    summary += f", {failed} failed" if failed else ""
    summary += f", {skipped} skipped" if skipped else ""
    print(summary)
    if skipped:
        print("Set the tokens, or client credentials: scripts/curl-matrix --help")
    if len(counted) < len(results):
        print(
            f"{len(results) - len(counted)} organization rows skipped: they need PERSON_TOKEN "
            "(a person's token comes from a login at AuthPI), AGENT_TOKEN and ORG_ID "
            "(scripts/curl-matrix --help)"
        )
    return 0 if passed == len(counted) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
