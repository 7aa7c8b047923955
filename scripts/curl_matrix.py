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

It prints one row per request (PASS/FAIL, coloured on a terminal) and exits 0 only when
every row passes; 1 when one fails or cannot run; 2 when it cannot start.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app import REPORTS_SCOPE
from scripts.get_token import TokenError, request_token
from tests.support.tokens import edit_signature, payload_of, with_payload

UNKNOWN_PATH = "/no-such-route"
CURL_TIMEOUT = 20  # seconds per request: a cold workers.dev isolate fetches the JWKS first
GOT_WIDTH = 60  # the "got" column is cut to this many characters
CHALLENGE_PARAM = re.compile(r'([a-z_]+)="([^"]*)"')  # RFC 6750 §3 auth-params


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

    @property
    def request(self) -> str:
        return f"GET {self.path} ({self.credential})"


@dataclass(frozen=True)
class Result:
    row: Row
    response: Response | None
    outcome: str  # PASS, FAIL or SKIP
    got: str


def curl(base_url: str, path: str, token: str | None, timeout: int = CURL_TIMEOUT) -> Response:
    """One GET with the curl binary. The URL and the token go through curl's config on stdin,
    so the token never shows in the process list."""
    config = [f"url = {_quoted(base_url.rstrip('/') + path)}"]
    if token is not None:
        config.append(f"header = {_quoted('Authorization: Bearer ' + token)}")
    with tempfile.TemporaryDirectory(prefix="curl-matrix-") as tmp:
        headers_file, body_file = Path(tmp, "headers"), Path(tmp, "body")
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
    """The quickstart's eight requests and what each must answer."""

    def status(code: int) -> Callable[[Response], bool]:
        return lambda r: r.status == code

    def challenged(r: Response) -> bool:
        return r.status == 401 and r.headers.get("www-authenticate", "").lower().startswith(
            "bearer"
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
        Row("/me", "no token", "401 + WWW-Authenticate", None, challenged),
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
    ]


def describe(response: Response, path: str) -> str:
    """The "got" column: the status and what explains it (the RFC 6750 error and description)."""
    parts = [str(response.status)] if response.status else ["no answer:", response.error]
    body = response.json()
    challenge = response.headers.get("www-authenticate")
    params = dict(CHALLENGE_PARAM.findall(challenge or ""))
    if path == "/me" and response.status == 200:
        parts.append(f"sub={body.get('sub')} scope={body.get('scope', '-')}")
    elif "error" in params:
        parts.append(params["error"])
        if params.get("error_description"):
            parts.append(f"({params['error_description']})")
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
        response = curl(base_url, row.path, row.token, timeout)
        outcome = "PASS" if row.check(response) else "FAIL"
        results.append(Result(row, response, outcome, describe(response, row.path)))
    return results


COLOURS = {"PASS": "\033[32m", "FAIL": "\033[31m", "SKIP": "\033[33m"}


def render(results: list[Result], colour: bool) -> str:
    header = ("#", "request", "token", "expected", "got", "")
    cells = [
        (str(i), f"GET {r.row.path}", r.row.credential, r.row.expected, r.got, r.outcome)
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


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/curl-matrix",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("base_url", metavar="BASE_URL")
    parser.add_argument("--timeout", type=int, default=CURL_TIMEOUT, help="seconds per request")
    parser.add_argument("-v", "--verbose", action="store_true", help="show every response")
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

    print(f"curl-matrix against {base_url}" + (f" ({'; '.join(notes)})" if notes else ""))
    for warning in _scope_warnings(token, token_no_scope):
        print(f"warning: {warning}")
    results = run(base_url, rows(token, token_no_scope, skip_token, skip_no), args.timeout)
    print(render(results, use_colour(sys.stdout, environ)))
    if args.verbose:
        for i, result in enumerate(results, 1):
            if result.response is not None:
                headers = "".join(f"\n    {k}: {v}" for k, v in result.response.headers.items())
                print(f"\n[{i}] {result.row.request}{headers}\n    {result.response.body}")
    passed = sum(r.outcome == "PASS" for r in results)
    failed = sum(r.outcome == "FAIL" for r in results)
    skipped = sum(r.outcome == "SKIP" for r in results)
    summary = f"{passed}/{len(results)} passed"
    summary += f", {failed} failed" if failed else ""
    summary += f", {skipped} skipped" if skipped else ""
    print(summary)
    if skipped:
        print("Set TOKEN and TOKEN_NO_SCOPE, or client credentials: scripts/curl-matrix --help")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
