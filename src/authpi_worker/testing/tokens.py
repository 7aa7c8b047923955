"""The one token factory: every test (ours and our users') and script mints and forges
tokens here."""

from __future__ import annotations

import base64
import json
import secrets
import time
from typing import Any

from jwt.algorithms import get_default_algorithms

from authpi_worker.testing.keys import SigningKey

ISSUER = "http://127.0.0.1/issuer"  # replaced by the fake issuer's real URL in tests
AUDIENCE = "https://api.example.com"
_ALGS = get_default_algorithms()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def claims(issuer: str, audience: str = AUDIENCE, **overrides: Any) -> dict[str, Any]:
    """AuthPI-shaped access-token claims; an override of None drops the claim."""
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": "c_demo",  # an M2M client's token, as AuthPI's client_credentials grant issues
        "client_id": "c_demo",
        "iat": now,
        "exp": now + 300,
        "jti": secrets.token_hex(8),
        "scope": "read:reports",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def caller(kind: str, name: str = "demo", client_id: str = "c_app") -> dict[str, Any]:
    """The claims that say who calls, as AuthPI sets them: a person (`usr_` sub, `dat` identity,
    a session, the app's client_id), an agent (`agt_`, `dat` agent) or an M2M client (`c_`, no
    `dat`). Merge into claims(): `mint(key, iss, **caller("person"))`."""
    if kind == "person":
        return {
            "sub": f"usr_{name}",
            "client_id": client_id,
            "dat": {"type": "identity"},
            "sid": f"s_{name}",
        }
    if kind == "agent":
        return {"sub": f"agt_{name}", "client_id": f"agt_{name}", "dat": {"type": "agent"}}
    if kind == "client":
        return {"sub": f"c_{name}", "client_id": f"c_{name}"}
    raise ValueError(f"a caller is a person, an agent or a client, not {kind!r}")


def organization(
    org_id: str, *scopes: str, title: str | None = None, joined_at: int = 1767312000
) -> dict[str, Any]:
    """One membership of AuthPI's `organizations` claim: its scopes in `resource:action` form."""
    return {"id": org_id, "title": title, "scopes": list(scopes), "joined_at": joined_at}


def header(key: SigningKey, **overrides: Any) -> dict[str, Any]:
    """The at+jwt header for key; an override of None drops the member."""
    base: dict[str, Any] = {"alg": key.alg, "typ": "at+jwt", "kid": key.kid}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def encode_part(part: dict[str, Any] | bytes) -> str:
    return b64url(part if isinstance(part, bytes) else json.dumps(part).encode())


def sign(
    key: SigningKey,
    head: dict[str, Any] | bytes,
    payload: dict[str, Any] | bytes,
    alg: str | None = None,
) -> str:
    """A compact JWS over any header and payload (bytes are used verbatim), signed by key
    with alg (default: the key's own); PyJWT's algorithm objects produce the signature."""
    signing_input = f"{encode_part(head)}.{encode_part(payload)}"
    algorithm = _ALGS[alg or key.alg]
    signature = algorithm.sign(signing_input.encode(), key.private)
    return f"{signing_input}.{b64url(signature)}"


def mint(
    key: SigningKey,
    issuer: str,
    audience: str = AUDIENCE,
    *,
    head: dict[str, Any] | None = None,
    **claim_overrides: Any,
) -> str:
    """A valid access token unless the overrides make it otherwise."""
    return sign(
        key, head if head is not None else header(key), claims(issuer, audience, **claim_overrides)
    )


def segments(token: str) -> list[str]:
    return token.split(".")


def unb64url(segment: str) -> bytes:
    """The bytes of an unpadded base64url segment (lenient: for tests and tools, not checks)."""
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def header_of(token: str) -> dict[str, Any]:
    """The decoded header of a compact JWS, unverified."""
    return _part(token, 0, "header")


def payload_of(token: str) -> dict[str, Any]:
    """The decoded payload of a compact JWS, unverified: for editing, never for trusting."""
    return _part(token, 1, "payload")


def _part(token: str, index: int, name: str) -> dict[str, Any]:
    parts = segments(token)
    if len(parts) != 3:
        raise ValueError("not a compact JWS")
    decoded = json.loads(unb64url(parts[index]))
    if not isinstance(decoded, dict):
        raise ValueError(f"the token's {name} is not a JSON object")
    return decoded


def with_payload(token: str, payload: dict[str, Any]) -> str:
    """Swap the payload, keep the old signature: the classic tampering attempt."""
    head, _, signature = token.split(".")
    return f"{head}.{encode_part(payload)}.{signature}"


def edit_signature(token: str, position: int = 5) -> str:
    """Change one character of the signature, to another that changes the decoded bytes."""
    head, payload, signature = token.split(".")
    index = position % (len(signature) - 1)  # never the last char: its low bits may be unused
    replacement = "A" if signature[index] != "A" else "B"
    signature = signature[:index] + replacement + signature[index + 1 :]
    return f"{head}.{payload}.{signature}"
