"""A fake AuthPI issuer on 127.0.0.1: a JWKS endpoint whose faults tests can switch on,
and a token endpoint that mints tokens the way AuthPI does for each kind of caller:

- an M2M client (`c_…`) and an agent (`agt_…`) use the client_credentials grant (RFC 6749
  §4.4) with their own credentials; an agent's token carries `dat` agent and its memberships;
- a person signs in at AuthPI in a browser (authorization code with PKCE), which this fake
  cannot do: the local-only grant PERSON_GRANT stands in for that login and mints a person's
  token (`usr_…`, `dat` identity, a session, the memberships asked for). AuthPI has no such
  grant: scripts/get-token --person says so against a real issuer."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import jwt

from authpi_worker.testing.dpop import PROOF_TYPE, jkt
from authpi_worker.testing.keys import SigningKey, make_key
from authpi_worker.testing.tokens import AUDIENCE, header_of, mint, organization

TOKEN_LIFETIME = 300  # seconds, like a short-lived M2M access token
PROOF_WINDOW = 300  # seconds a DPoP proof to the token endpoint may be old (RFC 9449 §11.1)
# The local-only grant that stands in for a person's browser login: a URN of ours, which no
# real issuer offers (RFC 6749 §4.5 lets a server define grant types by absolute URI).
PERSON_GRANT = "urn:authpi-worker:local:person"
DEFAULT_PERSON = "usr_demo"  # the person minted when the request names none
DEFAULT_APP = "c_demo_app"  # the app a person's token is issued to when no client authenticates
DEMO_ORG, OTHER_ORG = "org_acme", "org_globex"  # the demo's organizations
MAX_MEMBERSHIPS = 100  # the organizations one token request may ask for
# AuthPI's ID prefixes: what a client's ID says it is, and the kind its token claims.
CLIENT_PREFIX, AGENT_PREFIX, PERSON_PREFIX = "c_", "agt_", "usr_"


@dataclass
class Client:
    """An M2M client (`c_…`) or an agent (`agt_…`), by its ID; only an agent holds
    memberships (AuthPI: set in the console; here in the client list)."""

    secret: str
    scopes: frozenset[str]
    organizations: tuple[dict[str, Any], ...] = ()


def default_clients() -> dict[str, Client]:
    """A client allowed read:reports, one that is not, and an agent that is a member of
    DEMO_ORG with reports:read and reports:write (it may still only read: a route's rule)."""
    return {
        "c_demo_reports": Client("demo-reports-secret", frozenset({"read:reports"})),
        "c_demo_basic": Client("demo-basic-secret", frozenset({"read:profile"})),
        "agt_demo_reader": Client(
            "demo-agent-secret",
            frozenset({"read:reports"}),
            (organization(DEMO_ORG, "member", "reports:read", "reports:write"),),
        ),
    }


@dataclass
class Faults:
    """What the JWKS endpoint does instead of answering well."""

    status: int = 200
    body: bytes | None = None  # served verbatim instead of the key set
    delay: float = 0.0  # seconds before answering
    reset: bool = False  # send half a body, then reset the connection
    cache_control: str | None = "public, max-age=600"


@dataclass
class FakeIssuer:
    issuer_id: str = "iss_local"
    audience: str = AUDIENCE
    keys: list[SigningKey] = field(default_factory=list)  # published; the last one signs
    extra_jwks: list[dict[str, Any]] = field(default_factory=list)  # raw JWKs to publish too
    clients: dict[str, Client] = field(default_factory=default_clients)
    faults: Faults = field(default_factory=Faults)
    jwks_hits: int = 0
    host: str = "127.0.0.1"
    port: int = 0

    def __post_init__(self) -> None:
        if not self.keys:
            self.keys.append(make_key("ES256"))
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self._proofs_seen: set[object] = set()  # jtis of DPoP proofs to the token endpoint

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/{self.issuer_id}"

    @property
    def signer(self) -> SigningKey:
        return self.keys[-1]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.keys] + self.extra_jwks}

    def mint(self, key: SigningKey | None = None, **overrides: Any) -> str:
        """A valid access token from this issuer (see authpi_worker.testing.tokens.mint)."""
        return mint(key or self.signer, self.url, self.audience, **overrides)

    def rotate(self, alg: str = "ES256") -> SigningKey:
        """Publish a new signing key beside the old one (retire the old one later)."""
        key = make_key(alg)
        with self._lock:
            self.keys.append(key)
        return key

    def retire(self, kid: str) -> None:
        with self._lock:
            self.keys = [k for k in self.keys if k.kid != kid]

    def start(self) -> FakeIssuer:
        server = _QuietServer((self.host, self.port), _handler_for(self))
        self._server = server
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def issue(
        self, form: dict[str, list[str]], authorization: str | None, dpop: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """The token endpoint's logic: (status, JSON body), RFC 6749 §4.4 and §5.2. With a
        DPoP proof (RFC 9449 §5), the token is bound to the proof's key (cnf.jkt). An agent's
        token carries its memberships, or (local only) the `organizations` the form asks for;
        PERSON_GRANT mints a person's token (see the module's docstring)."""
        client_id, secret = _basic_credentials(authorization)
        if any(len(values) > 1 for values in form.values()):
            return 400, _oauth_error("invalid_request", "repeated parameter")
        field = {name: values[0] for name, values in form.items()}
        grant = field.get("grant_type")
        if grant is None:
            return 400, _oauth_error("invalid_request", "grant_type is required")
        client = self.clients.get(client_id or "")
        authenticated = client is not None and secret is not None and secret == client.secret
        if grant == PERSON_GRANT and client_id is None:
            client_id, authenticated = DEFAULT_APP, True  # the app the person signed in to
        if not authenticated or client_id is None:
            return 401, _oauth_error("invalid_client", "client authentication failed")
        if grant not in ("client_credentials", PERSON_GRANT):
            return 400, _oauth_error("unsupported_grant_type", f"{grant} is not supported")
        try:
            organizations = _memberships(field.get("organizations"))
        except ValueError as problem:
            return 400, _oauth_error("invalid_request", str(problem))
        if grant == PERSON_GRANT:
            sub = field.get("sub", DEFAULT_PERSON)
            if not sub.startswith(PERSON_PREFIX) or len(sub) == len(PERSON_PREFIX):
                return 400, _oauth_error("invalid_request", "a person's sub starts with usr_")
            wanted = set(field.get("scope", "openid").split())  # a login asks for openid
            who: dict[str, Any] = {
                "sub": sub,
                "dat": {"type": "identity"},
                "sid": f"s_{secrets.token_hex(8)}",
                "organizations": organizations or [],
            }
        else:
            assert client is not None
            requested = field.get("scope")
            wanted = set(requested.split()) if requested is not None else set(client.scopes)
            wanted.discard("openid")  # client_credentials issues no ID token, so never openid
            refused = sorted(wanted - client.scopes)
            if refused:
                return 400, _oauth_error("invalid_scope", f"not allowed: {' '.join(refused)}")
            who = {"sub": client_id}
            if client_id.startswith(AGENT_PREFIX):
                held = list(client.organizations)
                who |= {"dat": {"type": "agent"}, "organizations": organizations or held}
            elif organizations is not None:
                return 400, _oauth_error(
                    "invalid_request", "an M2M client holds no memberships: people and agents do"
                )
        binding = None
        if dpop is not None:
            try:
                binding = self.proven_key(dpop)
            except ValueError as problem:
                return 400, _oauth_error("invalid_dpop_proof", str(problem))
        now = int(time.time())
        token = self.mint(
            **who,
            client_id=client_id,
            scope=" ".join(sorted(wanted)),
            iat=now,
            exp=now + TOKEN_LIFETIME,
            cnf={"jkt": binding} if binding else None,
        )
        return 200, {
            "access_token": token,
            "token_type": "DPoP" if binding else "Bearer",
            "expires_in": TOKEN_LIFETIME,
            "scope": " ".join(sorted(wanted)),
        }

    def proven_key(self, proof: str) -> str:
        """The thumbprint of the key a DPoP proof to the token endpoint proves, checked with
        PyJWT (RFC 9449 §4.3 as an authorization server applies it: no ath); else ValueError."""
        try:
            head = header_of(proof)
            if head.get("typ") != PROOF_TYPE or not isinstance(head.get("jwk"), dict):
                raise ValueError("not a DPoP proof")
            key = jwt.PyJWK(head["jwk"]).key
            claims = jwt.decode(
                proof, key, algorithms=["ES256", "EdDSA", "RS256"], options={"verify_aud": False}
            )
        except (jwt.PyJWTError, ValueError) as problem:
            raise ValueError(f"invalid proof: {problem}") from None
        if claims.get("htm") != "POST" or claims.get("htu") != f"{self.url}/token":
            raise ValueError("the proof is not for this token endpoint")
        if (
            not isinstance(claims.get("iat"), int)
            or abs(time.time() - claims["iat"]) > PROOF_WINDOW
        ):
            raise ValueError("the proof's iat is outside the window")
        with self._lock:
            if claims.get("jti") in self._proofs_seen:
                raise ValueError("the proof was used before")
            self._proofs_seen.add(claims.get("jti"))
        return jkt(head["jwk"])


@contextmanager
def running(issuer: FakeIssuer | None = None) -> Iterator[FakeIssuer]:
    server = (issuer or FakeIssuer()).start()
    try:
        yield server
    finally:
        server.stop()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (the Worker's fetch timeout) is expected here, not a failure.
        if not isinstance(sys.exc_info()[1], BrokenPipeError | ConnectionResetError):
            super().handle_error(request, client_address)


def _memberships(raw: str | None) -> list[dict[str, Any]] | None:
    """The `organizations` form parameter (local only): a JSON array of {"id", "scopes"}, as
    AuthPI's claim, each made whole by the token factory's organization(); ValueError if not."""
    if raw is None:
        return None
    try:
        asked = json.loads(raw)
    except ValueError:
        raise ValueError("organizations is not JSON") from None
    if not isinstance(asked, list) or len(asked) > MAX_MEMBERSHIPS:
        raise ValueError(f"organizations is a JSON array of at most {MAX_MEMBERSHIPS} entries")
    found = []
    for entry in asked:
        org_id = entry.get("id") if isinstance(entry, dict) else None
        scopes = entry.get("scopes") if isinstance(entry, dict) else None
        if not isinstance(org_id, str) or not org_id or not isinstance(scopes, list):
            raise ValueError('each organization is {"id": "org_…", "scopes": [...]}')
        if not all(isinstance(scope, str) and scope for scope in scopes):
            raise ValueError(f"{org_id}: each scope is a non-empty string")
        found.append(organization(org_id, *scopes))
    if len({entry["id"] for entry in found}) != len(found):
        raise ValueError("an organization is listed twice")
    return found


def _oauth_error(code: str, description: str) -> dict[str, Any]:
    return {"error": code, "error_description": description}


def _basic_credentials(authorization: str | None) -> tuple[str | None, str | None]:
    if not authorization or authorization[:6].lower() != "basic ":
        return None, None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else (None, None)


def _handler_for(issuer: FakeIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests and the demo print their own lines

        def do_GET(self) -> None:
            if self.path.split("?")[0] != f"/{issuer.issuer_id}/jwks.json":
                self._send(404, {"error": "not_found"})
                return
            with issuer._lock:
                issuer.jwks_hits += 1
                faults = issuer.faults
                body = (
                    faults.body if faults.body is not None else json.dumps(issuer.jwks()).encode()
                )
            if faults.delay:
                time.sleep(faults.delay)
            if faults.reset:
                self._reset_midway(body)
                return
            headers = {"cache-control": faults.cache_control} if faults.cache_control else {}
            self._send_bytes(faults.status, body, "application/json", headers)

        def do_POST(self) -> None:
            if self.path != f"/{issuer.issuer_id}/token":
                self._send(404, {"error": "not_found"})
                return
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length).decode("utf-8", "replace")
            if not (self.headers.get("content-type") or "").startswith(
                "application/x-www-form-urlencoded"
            ):
                self._send(400, _oauth_error("invalid_request", "expected a form body"))
                return
            dpop = self.headers.get_all("dpop") or []
            if len(dpop) > 1:
                status, body = 400, _oauth_error("invalid_dpop_proof", "more than one proof")
            else:
                status, body = issuer.issue(
                    parse_qs(raw), self.headers.get("authorization"), dpop[0] if dpop else None
                )
            extra = {"www-authenticate": 'Basic realm="token"'} if status == 401 else {}
            self._send(status, body, {"cache-control": "no-store", **extra})

        def _send(
            self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            self._send_bytes(status, json.dumps(body).encode(), "application/json", headers or {})

        def _send_bytes(
            self, status: int, body: bytes, ctype: str, headers: dict[str, str]
        ) -> None:
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _reset_midway(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

    return Handler
