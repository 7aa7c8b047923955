"""`make bench`: the side-by-side benchmark of issues 5 and 10. A benchmark, not a test.

Per algorithm, in µs per request, all in one run: cryptography's verify alone (the floor),
bare jwt.decode, the project's whole request handling with a fresh token and with a repeated
one, and the quickstart's jose jwtVerify in Node (bench/jose-bench.mjs). Beside them, the
Worker under Pyodide (scripts/bench_pyodide.py): requests through src/entry.py as the Pyodide
stage makes them, the token rules alone, and the imports in fresh interpreters. Beside those,
the route table's cost (TableShare): a cached GET /orgs/{org_id}/reports through the
template's table and through one of 50 routes. Then the JWKS fetch counts. Every round takes
each measurement once, in alternating order, and the tables report medians over rounds: the
drift of a noisy machine falls on all measurements alike. Each measurement reads two clocks:
wall (results.json) and the process's CPU time (what Workers bills, and steadier when other
work shares the machine).

Prints the tables and the targets; writes bench/results.json (generated, not tracked).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cryptography
import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from jwt.types import Options

from app import ROUTES
from authpi_worker import Claims, Isolate, Reply, Request, Route, Routes, dispatch, json_reply
from authpi_worker.config import AUDIENCE_VAR, ISSUER_VAR
from authpi_worker.jwks import COOLDOWN, Edge, Fetched
from authpi_worker.keys import parse_jwk, thumbprint
from authpi_worker.testing.dpop import jkt, proof, proof_claims, public_jwk
from authpi_worker.testing.keys import SigningKey, make_key
from authpi_worker.testing.tokens import (
    AUDIENCE,
    b64url,
    caller,
    encode_part,
    header,
    mint,
    organization,
    unb64url,
)
from authpi_worker.tokens import MAX_TOKEN_BYTES
from scripts import bench_asgi, bench_pyodide
from scripts.bench_child import BenchError, NodeChild, Timing
from scripts.bench_pyodide import PyodideBench
from tests.pyodide import host
from tests.support.logs import logged
from tests.support.node import NoNode

PROJECT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT / "bench" / "results.json"
JOSE_SCRIPT = PROJECT / "bench" / "jose-bench.mjs"

ALGS = ("ES256", "EdDSA", "RS256")
ISSUER = "https://idp.authpi.com/iss_bench"  # never contacted: the key set is served from memory
PATH = "/reports"  # the route with the most work: a valid token, then the read:reports scope
TYP = "at+jwt"
# Every decoder must find these; iss and aud are required by their own options.
REQUIRED_CLAIMS = ("exp", "iat", "sub")
TOKEN_LIFETIME = 3600  # seconds: every token minted here outlives the run
JWKS_CACHE_CONTROL = "public, max-age=86400"  # the key set stays fresh for the whole run

ROUNDS = 31  # alternating rounds; odd, so the median is one round's value
BATCH = 300  # requests per measurement per round: long enough to time, short enough to alternate
CACHED_BATCH = 3000  # the cached path is over 10x shorter: 10x the requests, a similar window
JOSE_TOKENS = 200  # distinct tokens per algorithm for Node; jose keeps no verified-token cache
SEQUENTIAL = 10_000  # requests under one kid for the fetch count
FLOOD = 1_000  # unknown-kid tokens within one cooldown
PROOF_KEYS = 20  # distinct proof jwks per algorithm for proof_key_us (each read anew: no cache)
# Issue 14: a proof whose jwk is a 3,072-bit RSA key with a 3,072-bit exponent, and a junk
# signature, beside a valid ES256 proof. Its own rounds: before the fix one cost ~6 ms.
HOSTILE_RSA_BITS = 3072
HOSTILE_ROUNDS = 11
HOSTILE_BATCH = 100

BUSY_CORES = 0.25  # other work, in cores on average, above which the run is flagged as shared

MAX_FULL_OVER_PYJWT = 1.15  # the whole request may cost at most 15% more than bare jwt.decode
MIN_JOSE_OVER_FULL = 1.0  # the quickstart's stack must not be faster than ours
# A repeated DPoP-bound token with a new proof costs about one signature check, not two.
MAX_DPOP_CACHED_OVER_FULL = 1.2
# A hostile proof is refused before any RSA work: it may not cost more than a valid proof.
MAX_HOSTILE_OVER_VALID_PROOF = 1.0

# results.json fields per algorithm, in the issues' order.
RESULT_FIELDS = (
    "raw_verify_us",
    "pyjwt_decode_us",
    "full_path_us",
    "cached_path_us",
    "jose_us",
    "dpop_path_us",  # a fresh DPoP-bound token and its proof: two signatures
    "dpop_cached_token_us",  # the same token again, a new proof each time: one signature
    "proof_key_us",  # reading a proof's jwk into a key and its thumbprint: what a hit saves
)
# Printed only: where jose's time goes (WebCrypto verify alone, and Node's synchronous verify).
NODE_FIELDS = ("webcrypto_verify_us", "node_sync_verify_us")
FIELDS = RESULT_FIELDS + NODE_FIELDS

PYODIDE = "pyodide"  # the Pyodide rows' key in Samples and Medians, beside the algorithms
TABLES = "routes"  # the route-table rows' key, likewise
TABLE_FIELDS = ("routes_template_us", "routes_50_us")
TABLE_ROUTES = 50  # the larger table: the template's routes and more, half with parameters
MAX_TABLE_OVER_TEMPLATE = 1.05  # matching must not grow noticeably with the number of routes

# Token size (issue 15): AuthPI's tokens carry every membership of the person. GET /me, ES256,
# fresh and cached, for a person's token without memberships, with 100, and at the size cap.
SIZES = "sizes"  # the token-size rows' key in Samples and Medians
SIZE_ALG = "ES256"
MEMBERSHIPS = 100
TOKEN_KINDS = ("plain", "members", "max")
SIZE_FIELDS = tuple(f"me_{kind}_{path}_us" for kind in TOKEN_KINDS for path in ("full", "cached"))
# A cached request's header is a new string each time, as a request's is (a string that was
# hashed before would make the hit look cheaper): 1,000 of them, ~32 MB at the cap.
SIZE_CACHED_BATCH = 1000
ME_URL = "https://authpi-worker.example/me"

Medians = dict[str, dict[str, float]]  # alg (or PYODIDE) → field → µs per request
RawVerify = Callable[[bytes, bytes], None]  # (signature, signed bytes) → None, or raises


class Stopwatch:
    """The wall clock and this process's CPU clock, started together."""

    def __init__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def per(self, count: int) -> Timing:
        wall, cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu
        return Timing(wall / count * 1e6, cpu / count * 1e6)


Samples = dict[str, dict[str, list[Timing]]]  # alg (or PYODIDE) → field → one Timing per round


@dataclass
class MemoryIssuer:
    """A JWKS fetcher serving the document from memory, counting its calls."""

    document: bytes
    calls: int = 0

    async def __call__(self, url: str, edge: Edge) -> Fetched:
        self.calls += 1
        await asyncio.sleep(0)  # a real fetch yields to the event loop; so does this one
        return Fetched(200, self.document, JWKS_CACHE_CONTROL)


class ManualClock:
    """A clock the flood count moves by hand, to stand just past a cooldown."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Case:
    """One algorithm's signing key, its public key as the decoders receive it, and a DPoP
    client's key of the same algorithm."""

    alg: str
    key: SigningKey
    public: Any
    client: SigningKey
    client_jwks: tuple[dict[str, Any], ...]  # other clients' proof keys, made once (RSA is slow)

    def mint(self, count: int, *, bound: bool = False) -> list[str]:
        """count distinct, valid tokens (each has its own jti) from the token factory; bound:
        to the client's DPoP key (cnf.jkt)."""
        exp = int(time.time()) + TOKEN_LIFETIME
        cnf = {"jkt": jkt(self.client)} if bound else None
        tokens = [mint(self.key, ISSUER, AUDIENCE, exp=exp, cnf=cnf) for _ in range(count)]
        if len(set(tokens)) != count:
            raise BenchError(f"{self.alg}: the factory minted a token twice")
        return tokens

    def person(self, count: int, memberships: int) -> list[str]:
        """count distinct tokens of a person in that many organizations, as AuthPI issues
        them: each membership with an org id, a title, scopes and when it was joined."""
        exp = int(time.time()) + TOKEN_LIFETIME
        orgs = [
            organization(f"org_{n:025d}", "reports:read", "members:read", title=f"Organization {n}")
            for n in range(memberships)
        ]
        return [
            mint(self.key, ISSUER, AUDIENCE, exp=exp, **caller("person"), organizations=orgs)
            for _ in range(count)
        ]

    def proven(self, tokens: Sequence[str]) -> list[tuple[str, str]]:
        """Each token with a fresh proof (its own jti) for one request to URL."""
        return [(token, proof(self.client, "GET", URL, token)) for token in tokens]


def make_cases() -> dict[str, Case]:
    cases = {}
    for alg in ALGS:
        key = make_key(alg, f"{alg.lower()}-bench")
        clients = tuple(public_jwk(make_key(alg)) for _ in range(PROOF_KEYS))
        cases[alg] = Case(alg, key, key.private.public_key(), make_key(alg, "client"), clients)
    return cases


def jwks_document(cases: dict[str, Case]) -> bytes:
    return json.dumps({"keys": [case.key.jwk() for case in cases.values()]}).encode()


ENV = {ISSUER_VAR: ISSUER, AUDIENCE_VAR: AUDIENCE}  # the Worker's vars
URL = f"https://authpi-worker.example{PATH}"  # the request URL the Worker sees


def _other(request: Request, claims: Claims) -> Reply:
    return json_reply({"ok": True})


def big_table(size: int = TABLE_ROUTES) -> Routes:
    """The template's routes and more, up to size, half of them (in all) with parameters, some
    beside the template's own /orgs/{org_id}/... (the trie's busiest node)."""
    routes = list(ROUTES.routes)
    with_params = sum(bool(route.params) for route in routes)
    index = 0
    while len(routes) < size:
        if with_params < size // 2:
            template = (
                f"/orgs/{{org_id}}/things{index}" if index % 2 else f"/v1/items{index}/{{item_id}}"
            )
            routes.append(
                Route(template, _other, org=("org_id", "things:read"))
                if "org_id" in template
                else Route(template, _other)
            )
            with_params += 1
        else:
            routes.append(Route(f"/v1/static{index}", _other))
        index += 1
    return Routes(*routes)


class TableShare:
    """The route-table share of a round: one cached person's request, GET /orgs/{org}/reports,
    through the template's table and through the larger one, on one isolate."""

    def __init__(self, isolate: Isolate, person: str, batch: int) -> None:
        self.isolate, self.batch = isolate, batch
        self.authorization = f"Bearer {person}"
        self.url = f"https://authpi-worker.example{bench_pyodide.ORG_PATH}"
        self.tables = {"routes_template_us": ROUTES, "routes_50_us": big_table()}

    async def measure(self, field: str) -> Timing:
        routes = self.tables[field]
        await self._requests(routes, 1)  # verified and cached, if not yet
        with no_gc():
            return await self._requests(routes, self.batch)

    async def _requests(self, routes: Routes, count: int) -> Timing:
        refused = 0
        watch = Stopwatch()
        for _ in range(count):
            request = Request("GET", self.url, self.authorization)
            reply = await dispatch(routes, request, self.isolate, ENV.get)
            refused += reply.status != 200
        timing = watch.per(count)
        if refused:
            raise BenchError(f"{refused} of {count} org requests were refused")
        return timing


async def handle(isolate: Isolate, authorization: str, url: str = URL) -> Reply:
    """One request as entry.py hands it to the core: GET PATH with this Authorization."""
    return await dispatch(ROUTES, Request("GET", url, authorization), isolate, ENV.get)


def write_jose_cases(path: Path, cases: dict[str, Case]) -> None:
    """The keys, tokens and options Node verifies with: the same as the Python side's."""
    spec = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "algorithms": list(ALGS),
        "typ": TYP,
        "required_claims": list(REQUIRED_CLAIMS),
        "jwks": json.loads(jwks_document(cases)),
        "tokens": {alg: case.mint(JOSE_TOKENS) for alg, case in cases.items()},
    }
    path.write_text(json.dumps(spec))


# --- the measurements, each per request --------------------------------------------------------


def raw_verifier(public: Any) -> RawVerify:
    """cryptography's verify for this key, with everything but the call prepared."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        ecdsa = ec.ECDSA(hashes.SHA256())
        return lambda signature, data: public.verify(signature, data, ecdsa)
    if isinstance(public, ed25519.Ed25519PublicKey):
        return lambda signature, data: public.verify(signature, data)
    if isinstance(public, rsa.RSAPublicKey):
        pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()
        return lambda signature, data: public.verify(signature, data, pkcs1, sha256)
    raise BenchError(f"no raw verifier for {type(public).__name__}")


def raw_inputs(alg: str, tokens: Sequence[str]) -> list[tuple[bytes, bytes]]:
    """(signature, signed bytes) per token, decoded ahead: ES256's r‖s becomes DER here."""
    inputs = []
    for token in tokens:
        signed, _, encoded = token.rpartition(".")
        signature = unb64url(encoded)
        if alg == "ES256":
            r, s = signature[:32], signature[32:]
            signature = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
        inputs.append((signature, signed.encode("ascii")))
    return inputs


def time_raw(verify: RawVerify, inputs: Sequence[tuple[bytes, bytes]]) -> Timing:
    watch = Stopwatch()
    for signature, data in inputs:
        verify(signature, data)
    return watch.per(len(inputs))


def time_pyjwt(public: Any, tokens: Sequence[str]) -> Timing:
    """Bare jwt.decode with a ready key and the options our rules imply."""
    algorithms, options = list(ALGS), Options(require=list(REQUIRED_CLAIMS))
    watch = Stopwatch()
    for token in tokens:
        jwt.decode(
            token, public, algorithms=algorithms, audience=AUDIENCE, issuer=ISSUER, options=options
        )
    return watch.per(len(tokens))


async def time_dpop(
    isolate: Isolate, requests: Sequence[tuple[str, str]], status: int = 200
) -> Timing:
    """The whole request with a DPoP-bound token and its proof, as for time_requests; each
    must be answered with status."""
    wrong = 0
    watch = Stopwatch()
    for token, proof_value in requests:
        request = Request("GET", URL, f"DPoP {token}", proof_value)
        reply = await dispatch(ROUTES, request, isolate, ENV.get)
        wrong += reply.status != status
    timing = watch.per(len(requests))
    if wrong:
        raise BenchError(f"{wrong} of {len(requests)} DPoP requests were not {status}")
    return timing


def time_proof_keys(jwks: Sequence[dict[str, Any]]) -> Timing:
    """What the proof-key cache spares per request: a proof's jwk read into a key (PyJWT,
    with cryptography's point validation) and its RFC 7638 thumbprint."""
    watch = Stopwatch()
    for jwk in jwks:
        thumbprint(parse_jwk(jwk))
    return watch.per(len(jwks))


async def time_requests(isolate: Isolate, authorizations: Sequence[str], url: str = URL) -> Timing:
    """The whole request: Authorization header → verdict → JSON Reply, no HTTP server."""
    refused = 0
    watch = Stopwatch()
    for authorization in authorizations:
        reply = await handle(isolate, authorization, url)
        refused += reply.status != 200
    timing = watch.per(len(authorizations))
    if refused:
        raise BenchError(f"{refused} of {len(authorizations)} requests were refused")
    return timing


@contextmanager
def no_gc() -> Iterator[None]:
    """Collect first, then keep the collector out of the timed section (as timeit does)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class HostileProof:
    """Issue 14, item 5: valid ES256 proof requests beside requests whose proof carries a
    3,072-bit RSA jwk with a 3,072-bit exponent and a junk signature, the token bound to
    another key (the ES256 client's) or to that very jwk. Both are refused (401) before any
    RSA work: the first at the binding, the second at the key's bounds."""

    FIELDS = ("valid_es256_us", "hostile_rsa_us", "hostile_rsa_bound_us")

    def __init__(self, cases: dict[str, Case]) -> None:
        self.case = cases["ES256"]
        self.isolate = Isolate(MemoryIssuer(jwks_document(cases)))
        self.token = self.case.mint(1, bound=True)[0]
        public = make_key("RS256", bits=HOSTILE_RSA_BITS).private.public_key()
        n = public.public_numbers().n  # type: ignore[union-attr]
        e = (1 << (HOSTILE_RSA_BITS - 1)) | 1
        self.jwk = {"kty": "RSA", "n": _b64_int(n), "e": _b64_int(e)}
        exp = int(time.time()) + TOKEN_LIFETIME
        self.bound_to_it = mint(
            self.case.key, ISSUER, AUDIENCE, exp=exp, cnf={"jkt": jkt(self.jwk)}
        )

    def hostile(self, token: str, count: int) -> list[tuple[str, str]]:
        head = encode_part({"typ": "dpop+jwt", "alg": "RS256", "jwk": self.jwk})
        junk = b64url(bytes(HOSTILE_RSA_BITS // 8))
        return [
            (token, f"{head}.{encode_part(proof_claims('GET', URL, token))}.{junk}")
            for _ in range(count)
        ]

    async def measure(self, field: str, batch: int) -> Timing:
        if field == "valid_es256_us":
            requests = self.case.proven([self.token] * batch)
        else:
            token = self.token if field == "hostile_rsa_us" else self.bound_to_it
            requests = self.hostile(token, batch)
        status = 200 if field == "valid_es256_us" else 401
        with logged():  # the refusals' log lines are deliberate: they stay here
            await time_dpop(self.isolate, requests[:1], status)  # the token is cached after it
            with no_gc():
                return await time_dpop(self.isolate, requests[1:], status)


def _b64_int(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


async def hostile_proof(cases: dict[str, Case], rounds: int, batch: int) -> Medians:
    """Each of HostileProof's measurements once per round, the order reversed every other
    round: medians (µs per request), wall under "wall", process CPU under "cpu"."""
    bench = HostileProof(cases)
    samples: dict[str, list[Timing]] = {field: [] for field in HostileProof.FIELDS}
    for number in range(rounds):
        fields = HostileProof.FIELDS if number % 2 == 0 else HostileProof.FIELDS[::-1]
        for field in fields:
            samples[field].append(await bench.measure(field, batch + 1))
    return {
        clock: {
            field: round(statistics.median(t.cpu if clock == "cpu" else t.wall for t in timings), 2)
            for field, timings in samples.items()
        }
        for clock in ("wall", "cpu")
    }


def hostile_lines(medians: Medians) -> list[str]:
    """The hostile-proof row: µs per request on both clocks, and the ratios to a valid proof."""
    wall, cpu = medians["wall"], medians["cpu"]
    lines = [
        "DPoP proofs, µs per request (wall / CPU), issue 14:",
        f"{'valid ES256 proof':>30}{'hostile RSA, unbound':>24}{'hostile RSA, bound':>22}",
        "".join(
            f"{f'{wall[field]:9.1f} /{cpu[field]:8.1f}':>{width}}"
            for field, width in zip(HostileProof.FIELDS, (30, 24, 22), strict=True)
        ),
    ]
    for field, name in (("hostile_rsa_us", "unbound"), ("hostile_rsa_bound_us", "bound")):
        on_wall = wall[field] / wall["valid_es256_us"]
        on_cpu = cpu[field] / cpu["valid_es256_us"]
        ok = on_wall <= MAX_HOSTILE_OVER_VALID_PROOF
        lines.append(
            f"  {f'hostile RSA proof ({name}) / valid ES256':42}{on_wall:8.2f}{on_cpu:8.2f}   "
            f"{f'≤ {MAX_HOSTILE_OVER_VALID_PROOF}':8} {verdict(ok)} "
            f"{verdict(on_cpu <= MAX_HOSTILE_OVER_VALID_PROOF)}"
        )
    return lines


# --- the run ---------------------------------------------------------------------------------


# The Node commands behind the Node measurements.
NODE_COMMANDS = {"jose_us": "JOSE", "webcrypto_verify_us": "SUBTLE", "node_sync_verify_us": "SYNC"}


class Round:
    """One algorithm's share of a round: its fresh tokens, minted and decoded ahead."""

    def __init__(self, case: Case, isolate: Isolate, jose: NodeChild, batch: int) -> None:
        self.case, self.isolate, self.jose, self.batch = case, isolate, jose, batch
        self.tokens = case.mint(batch)  # fresh: never seen by the verified-token cache
        self.fresh = [f"Bearer {token}" for token in self.tokens]
        self.repeated = f"Bearer {case.mint(1)[0]}"
        self.inputs = raw_inputs(case.alg, self.tokens)
        self.verify = raw_verifier(case.public)
        self.dpop_fresh = case.proven(case.mint(batch, bound=True))
        bound = case.mint(1, bound=True)
        self.dpop_repeated = case.proven(bound * (batch + 1))
        self.jwks = [case.client_jwks[i % len(case.client_jwks)] for i in range(batch)]

    async def measure(self, field: str) -> Timing:
        if field == "cached_path_us":  # its first request verifies the token and caches it
            await time_requests(self.isolate, [self.repeated])
        if field == "dpop_cached_token_us":  # likewise: the token is cached, not its proofs
            await time_dpop(self.isolate, self.dpop_repeated[:1])
        with no_gc():
            if field == "raw_verify_us":
                return time_raw(self.verify, self.inputs)
            if field == "pyjwt_decode_us":
                return time_pyjwt(self.case.public, self.tokens)
            if field == "full_path_us":
                return await time_requests(self.isolate, self.fresh)
            if field == "cached_path_us":
                return await time_requests(self.isolate, [self.repeated] * CACHED_BATCH)
            if field == "dpop_path_us":
                return await time_dpop(self.isolate, self.dpop_fresh)
            if field == "dpop_cached_token_us":
                return await time_dpop(self.isolate, self.dpop_repeated[1:])
            if field == "proof_key_us":
                return time_proof_keys(self.jwks)
            return self.jose.time(NODE_COMMANDS[field], self.case.alg, self.batch)


def size_counts(case: Case) -> dict[str, int]:
    """The memberships of each kind of token: none, MEMBERSHIPS, and the most a token may
    carry under MAX_TOKEN_BYTES."""
    most = MEMBERSHIPS
    while len(case.person(1, most + 1)[0]) <= MAX_TOKEN_BYTES:
        most += 1
    return {"plain": 0, "members": MEMBERSHIPS, "max": most}


class SizeRound:
    """The token-size share of a round: fresh tokens of each kind, and one cached of each."""

    def __init__(self, case: Case, isolate: Isolate, batch: int, counts: dict[str, int]) -> None:
        self.isolate = isolate
        self.fresh = {
            kind: [f"Bearer {token}" for token in case.person(batch, count)]
            for kind, count in counts.items()
        }
        self.repeated = {kind: case.person(1, count)[0] for kind, count in counts.items()}

    async def measure(self, field: str) -> Timing:
        kind, path = field.split("_")[1:3]
        if path == "full":
            with no_gc():
                return await time_requests(self.isolate, self.fresh[kind], ME_URL)
        token = self.repeated[kind]
        headers = ["Bearer " + token for _ in range(SIZE_CACHED_BATCH)]  # distinct strings
        await time_requests(self.isolate, headers[:1], ME_URL)  # verified once, then cached
        with no_gc():
            return await time_requests(self.isolate, headers, ME_URL)


async def run_rounds(
    cases: dict[str, Case],
    isolate: Isolate,
    jose: NodeChild,
    pyodide: PyodideBench,
    tables: TableShare,
    rounds: int,
    batch: int,
) -> Samples:
    """Every measurement once per round; the order reverses every other round, and the
    algorithms and the Pyodide share rotate, so no measurement always runs first, last or
    next to the same one. The imports (each in a fresh interpreter) take the first rounds."""
    samples: Samples = {alg: {field: [] for field in FIELDS} for alg in ALGS}
    samples[PYODIDE] = {field: [] for field in bench_pyodide.FIELDS}
    samples[SIZES] = {field: [] for field in SIZE_FIELDS}
    samples[TABLES] = {field: [] for field in TABLE_FIELDS}
    counts = size_counts(cases[SIZE_ALG])
    shares = (*ALGS, PYODIDE, SIZES, TABLES)
    for number in range(rounds):
        shift = number % len(shares)
        for name in shares[shift:] + shares[:shift]:
            if name == SIZES:
                sizes = SizeRound(cases[SIZE_ALG], isolate, batch, counts)
                for field in SIZE_FIELDS if number % 2 == 0 else SIZE_FIELDS[::-1]:
                    samples[SIZES][field].append(await sizes.measure(field))
                continue
            if name == TABLES:
                for field in TABLE_FIELDS if number % 2 == 0 else TABLE_FIELDS[::-1]:
                    samples[TABLES][field].append(await tables.measure(field))
                continue
            if name == PYODIDE:
                fields = bench_pyodide.round_fields(number)
                for field in fields if number % 2 == 0 else fields[::-1]:
                    samples[PYODIDE][field].append(pyodide.measure(field))
                continue
            share = Round(cases[name], isolate, jose, batch)
            for field in FIELDS if number % 2 == 0 else FIELDS[::-1]:
                samples[name][field].append(await share.measure(field))
        print(f"  round {number + 1}/{rounds}", end="\r", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return samples


async def count_sequential(cases: dict[str, Case], count: int) -> int:
    """JWKS fetches for count sequential requests under one kid, each with a fresh token."""
    issuer = MemoryIssuer(jwks_document(cases))
    isolate = Isolate(issuer)
    await time_requests(isolate, [f"Bearer {token}" for token in cases["ES256"].mint(count)])
    return issuer.calls


async def count_flood(cases: dict[str, Case], count: int) -> int:
    """Refetches caused by count unknown-kid tokens arriving together, within one cooldown.

    The set is fetched, then the clock moves just past the cooldown, so the flood may refetch
    (once) and is not merely held back by the first fetch."""
    issuer = MemoryIssuer(jwks_document(cases))
    clock = ManualClock()
    isolate = Isolate(issuer, clock)
    await time_requests(isolate, [f"Bearer {cases['ES256'].mint(1)[0]}"])
    clock.now += COOLDOWN + 1
    attacker = make_key("ES256")  # signs well, but under kids the issuer never published
    tokens = [
        mint(attacker, ISSUER, AUDIENCE, head=header(attacker, kid=f"unknown-{index}"))
        for index in range(count)
    ]
    before = issuer.calls
    with logged() as events:  # the 1,000 refusals are deliberate: their log lines stay here
        replies = await asyncio.gather(*(handle(isolate, f"Bearer {token}") for token in tokens))
    if any(reply.status != 401 for reply in replies) or len(events) != count:
        raise BenchError("an unknown-kid token was not refused with 401 and a log line")
    return issuer.calls - before


def summarize(samples: Samples, *, cpu: bool = False) -> Medians:
    """The median over rounds of each measurement, wall clock or (cpu=True) process CPU."""
    return {
        alg: {
            field: round(statistics.median(t.cpu if cpu else t.wall for t in timings), 2)
            for field, timings in fields.items()
        }
        for alg, fields in samples.items()
    }


def token_sizes(case: Case) -> dict[str, int]:
    """Each kind's memberships and token length, as SizeRound mints them."""
    counts = size_counts(case)
    return {
        **{f"{kind}_memberships": count for kind, count in counts.items()},
        **{f"{kind}_bytes": len(case.person(1, count)[0]) for kind, count in counts.items()},
    }


def results_document(
    medians: Medians,
    sequential: int,
    flood: int,
    node: dict[str, Any],
    pyodide: PyodideBench,
    hostile: Medians,
    sizes: dict[str, int],
) -> dict[str, Any]:
    """bench/results.json, in the shape issues 5 and 10 give (and issue 14's hostile proof,
    issue 15's token sizes)."""
    return {
        "algs": {alg: {field: medians[alg][field] for field in RESULT_FIELDS} for alg in ALGS},
        "dpop_hostile_proof": hostile["wall"],
        "pyodide": bench_pyodide.results(medians[PYODIDE]),
        "token_size": {"alg": SIZE_ALG, "path": "/me", **sizes, **medians[SIZES]},
        "routes": medians[TABLES],
        "jwks_fetches": {"sequential_10000": sequential, "unknown_kid_flood_1000": flood},
        "env": {
            "python": platform.python_version(),
            "pyjwt": jwt.__version__,
            "cryptography": cryptography.__version__,
            "node": str(node["node"]).removeprefix("v"),
            "node_binary": pyodide.node[0],
            "jose": str(node["jose"]),
            "pyodide": str(pyodide.ready["pyodide"]),
            "pyodide_python": str(pyodide.ready["python"]),
        },
    }


# --- the report ------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


COLUMNS = (
    ("raw verify", "raw_verify_us"),
    ("pyjwt decode", "pyjwt_decode_us"),
    ("full path", "full_path_us"),
    ("cached path", "cached_path_us"),
    ("jose (node)", "jose_us"),
    ("dpop fresh", "dpop_path_us"),
    ("dpop cached", "dpop_cached_token_us"),
    ("proof key", "proof_key_us"),
)


def table(medians: Medians) -> list[str]:
    lines = [f"{'':7}" + "".join(f"{title:>14}" for title, _ in COLUMNS)]
    for alg in ALGS:
        lines.append(f"{alg:7}" + "".join(f"{medians[alg][key]:14.1f}" for _, key in COLUMNS))
    return lines


def ratios(row: dict[str, float]) -> tuple[float, float, float]:
    """full / pyjwt, jose / full, DPoP cached token / full: the per-algorithm targets."""
    full = row["full_path_us"]
    return full / row["pyjwt_decode_us"], row["jose_us"] / full, row["dpop_cached_token_us"] / full


def targets(wall: Medians, cpu: Medians, sequential: int, flood: int) -> list[str]:
    """Each target on both clocks: wall (results.json) and CPU (steadier under other load)."""
    checks: tuple[tuple[str, str, Callable[[float], bool]], ...] = (
        ("full / pyjwt", f"≤ {MAX_FULL_OVER_PYJWT}", lambda ratio: ratio <= MAX_FULL_OVER_PYJWT),
        ("jose / full", f"≥ {MIN_JOSE_OVER_FULL}", lambda ratio: ratio >= MIN_JOSE_OVER_FULL),
        (
            "dpop cached token / full",
            f"≤ {MAX_DPOP_CACHED_OVER_FULL}",
            lambda ratio: ratio <= MAX_DPOP_CACHED_OVER_FULL,
        ),
    )
    rows = [
        (f"{alg} {name}", bound, ok, on_wall, on_cpu)
        for alg in ALGS
        for (name, bound, ok), on_wall, on_cpu in zip(
            checks, ratios(wall[alg]), ratios(cpu[alg]), strict=True
        )
    ]
    rows += bench_pyodide.targets(wall[PYODIDE], cpu[PYODIDE])
    rows.append(
        (
            f"{TABLE_ROUTES} routes / template's, cached org GET",
            f"≤ {MAX_TABLE_OVER_TEMPLATE}",
            lambda ratio: ratio <= MAX_TABLE_OVER_TEMPLATE,
            wall[TABLES]["routes_50_us"] / wall[TABLES]["routes_template_us"],
            cpu[TABLES]["routes_50_us"] / cpu[TABLES]["routes_template_us"],
        )
    )
    lines = target_lines(rows)
    counts = (
        (f"JWKS fetches, {SEQUENTIAL:,} requests", sequential, "= 1", sequential == 1),
        (f"refetches, {FLOOD:,} unknown kids", flood, "≤ 1", flood <= 1),
    )
    for name, count, bound, met in counts:
        lines.append(f"  {name:42}{count:8}{'':8}   {bound:8} {verdict(met)}")
    return lines


def target_lines(rows: Sequence[bench_pyodide.Target]) -> list[str]:
    """Each target's ratio (or ms) on both clocks, and whether it is met on each."""
    lines = [f"{'targets':44}{'wall':>8}{'cpu':>8}   {'target':8} wall cpu"]
    for name, bound, ok, on_wall, on_cpu in rows:
        lines.append(
            f"  {name:42}{on_wall:8.2f}{on_cpu:8.2f}   {bound:8} "
            f"{verdict(ok(on_wall))} {verdict(ok(on_cpu))}"
        )
    return lines


def size_table(wall: dict[str, float], cpu: dict[str, float], sizes: dict[str, Any]) -> list[str]:
    """GET /me by token size: fresh (verified in full) and cached, wall / CPU, and the ratio
    of each to the plain token's."""
    lines = [
        f"token size, GET /me, {SIZE_ALG}, a person's token "
        "(µs, wall / CPU; x the plain token's, wall):",
        f"{'':26}{'fresh':>22}{'cached':>22}",
    ]
    for kind in TOKEN_KINDS:
        name = f"{sizes[f'{kind}_memberships']} memberships, {sizes[f'{kind}_bytes']:,} B"
        cells = []
        for path in ("full", "cached"):
            field, plain = f"me_{kind}_{path}_us", f"me_plain_{path}_us"
            ratio = wall[field] / wall[plain]
            cells.append(f"{wall[field]:7.1f} /{cpu[field]:6.1f} x{ratio:4.2f}")
        lines.append(f"  {name:24}" + "".join(f"{cell:>22}" for cell in cells))
    return lines


def report(
    wall: Medians,
    cpu: Medians,
    results: dict[str, Any],
    rounds: int,
    batch: int,
    hostile: Medians,
) -> str:
    fetches = results["jwks_fetches"]
    lines = [
        f"µs per request, medians of {rounds} alternating rounds "
        f"({batch} fresh tokens per round; cached path {CACHED_BATCH} requests)",
        "",
        "wall clock (results.json):",
        *table(wall),
        "",
        "CPU time of the measuring process, all its threads (what Workers bills):",
        *table(cpu),
        "",
        "where Node's time goes, same keys and bytes (wall / CPU):",
        f"{'':7}{'WebCrypto verify':>20}{'node:crypto sync':>20}{'jose jwtVerify':>20}",
    ]
    for alg in ALGS:
        cells = [
            f"{wall[alg][key]:9.1f} /{cpu[alg][key]:6.1f}"
            for key in ("webcrypto_verify_us", "node_sync_verify_us", "jose_us")
        ]
        lines.append(f"{alg:7}" + "".join(f"{cell:>20}" for cell in cells))
    lines += [
        "",
        *size_table(wall[SIZES], cpu[SIZES], results["token_size"]),
        "",
        *bench_pyodide.table(wall[PYODIDE], cpu[PYODIDE], results["env"], rounds),
        "",
        f"the route table, a cached GET {bench_pyodide.ORG_PATH} (a person, "
        f"{bench_pyodide.MEMBERSHIPS} orgs), {CACHED_BATCH} requests, wall / CPU:",
        *(
            f"  {title:42}{wall[TABLES][key]:9.1f} /{cpu[TABLES][key]:9.1f} µs"
            for title, key in (
                (f"the template's table ({len(ROUTES.routes)} routes)", "routes_template_us"),
                (f"{TABLE_ROUTES} routes, half with parameters", "routes_50_us"),
            )
        ),
        "",
        *targets(wall, cpu, fetches["sequential_10000"], fetches["unknown_kid_flood_1000"]),
        "",
        *hostile_lines(hostile),
        "",
        "env: " + ", ".join(f"{name} {version}" for name, version in results["env"].items()),
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds so far: the machine's busy and stolen time (Linux /proc/stat; None
    elsewhere), and this run's own (this process and its finished children: Node)."""

    busy: float | None
    steal: float | None
    ours: float
    wall: float

    @classmethod
    def now(cls) -> CpuUse:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        ours = time.process_time() + children.ru_utime + children.ru_stime
        try:
            first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        except OSError:
            return cls(None, None, ours, time.perf_counter())
        # user nice system idle iowait irq softirq steal, in clock ticks
        ticks = [int(field) / os.sysconf("SC_CLK_TCK") for field in first[1:9]]
        busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6]
        return cls(busy, ticks[7], ours, time.perf_counter())


def machine_note(start: CpuUse, end: CpuUse) -> str:
    """How much other work shared the machine during the run, in cores on average."""
    cores = os.cpu_count() or 1
    if start.busy is None or end.busy is None or start.steal is None or end.steal is None:
        return f"machine: {cores} cores; other work during the run unknown (no /proc/stat)"
    wall = end.wall - start.wall
    others = max(0.0, (end.busy - start.busy) - (end.ours - start.ours)) / wall
    steal = (end.steal - start.steal) / wall
    note = (
        f"machine: {cores} cores; during the run other processes used {others:.2f} of them "
        f"and the hypervisor stole {steal:.2f}, on average"
    )
    if others + steal > BUSY_CORES:
        note += "\n  the numbers move with other work: quote a run on a quiet machine"
    return note


async def bench(node: str, rounds: int, batch: int) -> tuple[Samples, dict[str, Any], Medians]:
    """Every measurement and count: (per-round samples, results.json, the hostile proof)."""
    cases = make_cases()
    issuer = MemoryIssuer(jwks_document(cases))
    isolate = Isolate(issuer)
    for case in cases.values():  # fills the key cache: the single fetch of the timed run
        await time_requests(isolate, [f"Bearer {case.mint(1)[0]}"])
    exp = int(time.time()) + TOKEN_LIFETIME
    person = mint(cases["ES256"].key, ISSUER, AUDIENCE, exp=exp, **bench_pyodide.person_claims())
    try:
        node_argv = host.node_command(node)
    except NoNode as missing:
        raise BenchError(str(missing)) from None
    with tempfile.TemporaryDirectory() as scratch:
        jose_cases = Path(scratch) / "cases.json"
        write_jose_cases(jose_cases, cases)
        jose = NodeChild(node_argv, JOSE_SCRIPT, jose_cases)
        pyodide: PyodideBench | None = None
        try:
            print(
                f"node {jose.ready['node']} ({node_argv[0]}), jose {jose.ready['jose']} ready",
                file=sys.stderr,
            )
            tokens = cases["ES256"].mint(1 + bench_pyodide.FRESH_TOKENS)
            pyodide = PyodideBench(node_argv, ISSUER, tokens, person, Path(scratch))
            await pyodide.check(Isolate(MemoryIssuer(jwks_document(cases))))  # its own vars
            print(f"pyodide {pyodide.ready['pyodide']} ready", file=sys.stderr)
            tables = TableShare(isolate, person, CACHED_BATCH)
            samples = await run_rounds(cases, isolate, jose, pyodide, tables, rounds, batch)
            node_info, pyodide_info = jose.ask("INFO"), pyodide.info()
        finally:
            jose.close()
            if pyodide is not None:
                pyodide.close()
    if issuer.calls != 1 or node_info["jwks_fetches"] != 1 or pyodide_info["fetches"]:
        raise BenchError(
            f"the key set was refetched during the timed run (ours {issuer.calls}, "
            f"jose {node_info['jwks_fetches']}, under Pyodide {pyodide_info['fetches']})"
        )
    sequential = await count_sequential(cases, SEQUENTIAL)
    flood = await count_flood(cases, FLOOD)
    hostile = await hostile_proof(cases, HOSTILE_ROUNDS, HOSTILE_BATCH)
    medians = summarize(samples)
    sizes = token_sizes(cases[SIZE_ALG])
    results = results_document(medians, sequential, flood, node_info, pyodide, hostile, sizes)
    return samples, results, hostile


async def pyodide_only(node: str, rounds: int) -> list[str]:
    """Only the Pyodide request rows and the core's (no imports, no CPython or jose rows):
    each once per round, the order reversed every other round. The report's lines."""
    key = make_key(SIZE_ALG, "es256-bench")
    document = json.dumps({"keys": [key.jwk()]}).encode()
    exp = int(time.time()) + TOKEN_LIFETIME
    tokens = [mint(key, ISSUER, AUDIENCE, exp=exp) for _ in range(1 + bench_pyodide.FRESH_TOKENS)]
    person = mint(key, ISSUER, AUDIENCE, exp=exp, **bench_pyodide.person_claims())
    try:
        node_argv = host.node_command(node)
    except NoNode as missing:
        raise BenchError(str(missing)) from None
    fields = bench_pyodide.TIMED
    samples: dict[str, list[Timing]] = {field: [] for field in fields}
    with tempfile.TemporaryDirectory() as scratch:
        pyodide = PyodideBench(node_argv, ISSUER, tokens, person, Path(scratch))
        try:
            await pyodide.check(Isolate(MemoryIssuer(document)))
            for number in range(rounds):
                for field in fields if number % 2 == 0 else fields[::-1]:
                    samples[field].append(pyodide.measure(field))
                print(f"  round {number + 1}/{rounds}", end="\r", file=sys.stderr, flush=True)
        finally:
            pyodide.close()
    print(file=sys.stderr)
    wall, cpu = (
        {
            field: statistics.median(t.cpu if clock else t.wall for t in timings)
            for field, timings in samples.items()
        }
        for clock in (False, True)
    )
    env = {
        "pyodide": pyodide.ready["pyodide"],
        "pyodide_python": pyodide.ready["python"],
        "node": str(pyodide.ready["node"]).removeprefix("v"),
        "node_binary": node_argv[0],
    }
    return [
        *bench_pyodide.table(wall, cpu, env, rounds, fields),
        "",
        *target_lines(bench_pyodide.request_targets(wall, cpu)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument(
        "--node", default=os.environ.get("NODE", "node"), help="default: $NODE, or node"
    )
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--batch", type=int, default=BATCH, help="fresh tokens per round")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--hostile-proof-only",
        action="store_true",
        help="only the hostile DPoP proof row (issue 14): a few seconds, no Node",
    )
    parser.add_argument(
        "--pyodide-only",
        action="store_true",
        help="only the Pyodide request rows and targets (no imports): about a minute",
    )
    args = parser.parse_args(argv)
    start = CpuUse.now()
    if args.pyodide_only:
        try:
            print("\n".join(asyncio.run(pyodide_only(args.node, args.rounds))))
        except BenchError as error:
            print(f"bench: {error}", file=sys.stderr)
            return 1
        print(machine_note(start, CpuUse.now()))
        return 0
    if args.hostile_proof_only:
        hostile = asyncio.run(hostile_proof(make_cases(), HOSTILE_ROUNDS, HOSTILE_BATCH))
        print("\n".join(hostile_lines(hostile)))
        print(machine_note(start, CpuUse.now()))
        return 0
    try:
        samples, results, hostile = asyncio.run(bench(args.node, args.rounds, args.batch))
        asgi = bench_asgi.rows(args.node, args.rounds)  # issue 16's rows, after the others
        results["asgi"] = {"wall_us": asgi["wall"], "cpu_us": asgi["cpu"]}
    except BenchError as error:
        print(f"bench: {error}", file=sys.stderr)
        return 1
    out: Path = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    wall, cpu = summarize(samples), summarize(samples, cpu=True)
    print(report(wall, cpu, results, args.rounds, args.batch, hostile))
    print("\n" + "\n".join(bench_asgi.report(asgi, args.rounds)))
    print(machine_note(start, CpuUse.now()))
    shown = out.relative_to(PROJECT) if out.is_relative_to(PROJECT) else out
    print(f"\nwrote {shown} in {time.perf_counter() - start.wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
