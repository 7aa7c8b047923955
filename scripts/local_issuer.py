"""A fake AuthPI issuer for local use: the test suite's FakeIssuer (tests/support/issuer.py)
with its signing keys kept on disk, so a restart keeps them and another process can rotate them.

    scripts/issuer [serve] [--port 9400]   {url}/jwks.json and {url}/token (client_credentials,
                                           and the local-only person grant)
    scripts/issuer rotate [--grace 300]    publish a new signing key; the old one stays published
                                           for the grace period (tokens it signed still verify),
                                           then retires by itself
    scripts/issuer retire KID              unpublish a key now (not the one that signs)
    scripts/issuer keys                    list the keys: which signs, which retire when

Keys live in .local/issuer (gitignored) unless --keys says otherwise. A running issuer notices
a rotation at its next request. The default clients are c_demo_reports (allowed read:reports),
c_demo_basic (not) and the agent agt_demo_reader (read:reports; a member of org_acme); --clients
FILE takes {"id": {"secret": "...", "scopes": ["..."], "organizations": [...]}} (an agt_ ID is
an agent, and only an agent holds organizations: [{"id": "org_…", "scopes": ["reports:read"]}]).
A person's token comes from the grant urn:authpi-worker:local:person (scripts/get-token
--person), which stands in for a login at AuthPI.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from authpi_worker.testing.keys import SigningKey, make_key
from authpi_worker.testing.tokens import AUDIENCE, organization, payload_of
from scripts.keyfiles import load_keys, save_keys
from tests.support.issuer import (
    AGENT_PREFIX,
    PERSON_GRANT,
    TOKEN_LIFETIME,
    Client,
    FakeIssuer,
    default_clients,
)

PROJECT = Path(__file__).resolve().parent.parent
KEYS_DIR = PROJECT / ".local" / "issuer"
DEFAULT_PORT = 9400
ISSUER_ID = "iss_local"
SIGNING_ALG = "ES256"  # what AuthPI signs with
# A retired key must outlive every token it signed: the grace is the tokens' lifetime.
DEFAULT_GRACE = TOKEN_LIFETIME
RETIRING = "retiring.json"  # {kid: unix time when it stops being published}
INDEX = "keys.json"  # written by authpi_worker.testing.keys.save_keys


@dataclass(frozen=True)
class KeySet:
    """The keys on disk, oldest first: the last one signs."""

    keys: list[SigningKey]
    retire_at: dict[str, float] = field(default_factory=dict)

    @property
    def signer(self) -> SigningKey | None:
        return self.keys[-1] if self.keys else None

    def published(self, now: float) -> list[SigningKey]:
        """What the JWKS shows now: every key whose grace has not run out (the signer always)."""
        return [
            k for k in self.keys if k is self.signer or self.retire_at.get(k.kid, math.inf) > now
        ]


class KeyStore:
    """Signing keys in a directory, shared by the running issuer and the rotate/retire commands.

    Writers hold an exclusive lock; the index is replaced atomically (save_keys)."""

    def __init__(self, directory: Path = KEYS_DIR, clock: Callable[[], float] = time.time) -> None:
        self.directory = directory
        self.clock = clock

    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        with (self.directory / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield

    def version(self) -> tuple[int, ...]:
        """Changes whenever a writer saves: what the running issuer polls, one stat per file."""
        stamp: list[int] = []
        for name in (INDEX, RETIRING):
            try:
                info = (self.directory / name).stat()
            except FileNotFoundError:
                stamp += [0, 0, 0]
            else:
                stamp += [info.st_ino, info.st_mtime_ns, info.st_size]
        return tuple(stamp)

    def load(self) -> KeySet:
        with self._locked(exclusive=False):
            return self._read()

    def ensure(self) -> KeySet:
        """The keys, after dropping those whose grace is over; a first key if there is none."""
        with self._locked(exclusive=True):
            current = self._read()
            keys = current.published(self.clock()) or [make_key(SIGNING_ALG)]
            return self._write(KeySet(keys, current.retire_at))

    def rotate(self, grace: float = DEFAULT_GRACE) -> tuple[SigningKey, KeySet]:
        """A new signing key; the keys before it retire `grace` seconds from now."""
        with self._locked(exclusive=True):
            current = self._read()
            now = self.clock()
            keys = current.published(now)
            retire_at = dict(current.retire_at)
            for key in keys:
                retire_at.setdefault(key.kid, now + grace)
            new = make_key(SIGNING_ALG)
            return new, self._write(KeySet([*keys, new], retire_at))

    def retire(self, kid: str) -> KeySet:
        """Unpublish a key at once. The signing key cannot go: rotate first."""
        with self._locked(exclusive=True):
            current = self._read()
            if kid not in {k.kid for k in current.keys}:
                raise LookupError(f"no key {kid!r} in {self.directory}")
            if current.signer is not None and current.signer.kid == kid:
                raise ValueError(f"{kid} signs the tokens: run `scripts/issuer rotate` first")
            keys = [k for k in current.keys if k.kid != kid]
            return self._write(KeySet(keys, current.retire_at))

    def _read(self) -> KeySet:
        keys = load_keys(self.directory)
        try:
            retire_at = json.loads((self.directory / RETIRING).read_text())
        except FileNotFoundError:
            retire_at = {}
        return KeySet(keys, {str(k): float(v) for k, v in retire_at.items()})

    def _write(self, state: KeySet) -> KeySet:
        kids = {k.kid for k in state.keys}
        retire_at = {kid: t for kid, t in state.retire_at.items() if kid in kids}
        save_keys(state.keys, self.directory)
        staging = self.directory / f"{RETIRING}.tmp"
        staging.write_text(json.dumps(retire_at, indent=2))
        staging.replace(self.directory / RETIRING)
        for pem in self.directory.glob("*.pem"):  # a retired private key does not linger
            if pem.stem not in kids:
                pem.unlink()
        return KeySet(state.keys, retire_at)


class LocalIssuer(FakeIssuer):
    """FakeIssuer whose keys come from a KeyStore, re-read when another process changes them.

    Automatic retirement happens here too: a key past its grace drops out of the JWKS."""

    def __init__(
        self, store: KeyStore, log: Callable[[str], None] | None = None, **options: Any
    ) -> None:
        self.store = store
        self._log = log
        self._reload = threading.Lock()
        self._keyset = store.ensure()
        self._version = store.version()
        super().__init__(keys=self._keyset.published(store.clock()), **options)

    def refresh(self) -> None:
        with self._reload:
            version = self.store.version()
            if version != self._version:
                try:
                    self._keyset = self.store.load()
                    self._version = version
                except (OSError, ValueError) as error:  # keep serving the last good set
                    self._say(f"could not reload the keys ({error}); keeping the previous set")
            published = self._keyset.published(self.store.clock())
            if published:
                self.keys = published

    def jwks(self) -> dict[str, Any]:
        self.refresh()
        document = super().jwks()
        self._say(f"GET jwks.json -> {', '.join(k['kid'] for k in document['keys'])}")
        return document

    def issue(
        self, form: dict[str, list[str]], authorization: str | None, dpop: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        self.refresh()
        status, body = super().issue(form, authorization, dpop)
        if status == 200:
            claims = payload_of(body["access_token"])
            kind = "DPoP-bound " if body["token_type"] == "DPoP" else ""
            orgs = [entry["id"] for entry in claims.get("organizations", [])]
            member = f", member of {', '.join(orgs)}" if orgs else ""
            self._say(
                f"POST token -> 200, {kind}for {claims['sub']}, scope {body['scope']!r}"
                f"{member}, kid {self.signer.kid}"
            )
        else:
            self._say(f"POST token -> {status} {body['error']}: {body['error_description']}")
        return status, body

    def _say(self, line: str) -> None:
        if self._log is not None:
            self._log(line)


def load_clients(path: Path) -> dict[str, Client]:
    """{"client_id": {"secret": "...", "scopes": ["read:reports"], "organizations": [...]}}:
    organizations, [{"id": "org_…", "scopes": ["reports:read"]}], for an agent (agt_) only."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object of clients")
    clients = {}
    for client_id, entry in data.items():
        memberships = tuple(
            organization(str(org["id"]), *map(str, org.get("scopes", [])))
            for org in entry.get("organizations", [])
        )
        if memberships and not str(client_id).startswith(AGENT_PREFIX):
            raise ValueError(f"{path}: {client_id} is no agent (agt_…): it holds no organizations")
        scopes = frozenset(map(str, entry.get("scopes", [])))
        clients[str(client_id)] = Client(str(entry["secret"]), scopes, memberships)
    return clients


def describe(state: KeySet, now: float) -> list[str]:
    lines = []
    for key in state.keys:
        if key is state.signer:
            status = "signing"
        elif key.kid in state.retire_at:
            left = state.retire_at[key.kid] - now
            status = f"published, retires in {max(0, round(left))} s" if left > 0 else "retired"
        else:
            status = "published"
        lines.append(f"{key.kid}  {key.alg}  {status}")
    return lines


def _log_line(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def _stop(signum: int, frame: object) -> NoReturn:
    raise SystemExit(0)


def serve(args: argparse.Namespace) -> int:
    store = KeyStore(args.keys)
    clients = load_clients(args.clients) if args.clients else default_clients()
    try:
        issuer = LocalIssuer(
            store,
            log=None if args.quiet else _log_line,
            issuer_id=args.issuer_id,
            audience=args.audience,
            clients=clients,
            host=args.host,
            port=args.port,
        ).start()
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            print(
                f"issuer: port {args.port} is in use: pass --port N (0 picks a free one)",
                file=sys.stderr,
            )
            return 1
        raise
    signal.signal(signal.SIGTERM, _stop)
    # The first line is the contract: scripts/demo.py and humans read the URL from it.
    print(f"fake AuthPI issuer on {issuer.url}", flush=True)
    print(f"  jwks   {issuer.url}/jwks.json", flush=True)
    print(f"  token  {issuer.url}/token  (client_credentials, HTTP Basic)", flush=True)
    print(f"  person {issuer.url}/token  (grant_type={PERSON_GRANT}: local only)", flush=True)
    print(f"  aud    {issuer.audience}", flush=True)
    for client_id, client in clients.items():
        scopes = " ".join(sorted(client.scopes)) or "-"
        kind = "agent " if client_id.startswith(AGENT_PREFIX) else "client"
        orgs = "; ".join(f"{o['id']}: {' '.join(o['scopes'])}" for o in client.organizations)
        member = f"  member of {orgs}" if orgs else ""
        print(f"  {kind} {client_id} / {client.secret}  allowed: {scopes}{member}", flush=True)
    for line in describe(store.load(), store.clock()):
        print(f"  key    {line}  ({args.keys})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        issuer.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "serve")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--keys", type=Path, default=KEYS_DIR, help="key directory")
    parser = argparse.ArgumentParser(
        prog="scripts/issuer",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", parents=[common], help="serve the issuer (the default)")
    run.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--issuer-id", default=ISSUER_ID, help="the URL's last segment")
    run.add_argument("--audience", default=AUDIENCE, help="the aud of the tokens issued")
    run.add_argument("--clients", type=Path, help="a JSON file of clients")
    run.add_argument("--quiet", action="store_true", help="no line per request")
    rotate = commands.add_parser("rotate", parents=[common], help="publish a new signing key")
    rotate.add_argument(
        "--grace", type=float, default=DEFAULT_GRACE, help="seconds before the old key retires"
    )
    retire = commands.add_parser("retire", parents=[common], help="unpublish a key now")
    retire.add_argument("kid")
    commands.add_parser("keys", parents=[common], help="list the keys")
    args = parser.parse_args(argv)

    if args.command == "serve":
        return serve(args)
    store = KeyStore(args.keys)
    try:
        if args.command == "rotate":
            new, state = store.rotate(args.grace)
            print(f"new signing key {new.kid}; the previous keys retire in {args.grace:g} s")
        elif args.command == "retire":
            state = store.retire(args.kid)
            print(f"retired {args.kid}")
        else:
            state = store.load()
            if not state.keys:
                print(f"no keys in {args.keys} yet: the issuer makes one when it first starts")
    except (LookupError, ValueError) as error:
        print(f"issuer: {error.args[0]}", file=sys.stderr)
        return 1
    for line in describe(state, store.clock()):
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
