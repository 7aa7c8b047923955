"""scripts/local_issuer.py: persisted keys, rotation with a grace period, retirement, and the
running issuer noticing what another process changed."""

from __future__ import annotations

import json
import signal
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from authpi_worker.testing.tokens import header_of, payload_of
from scripts.local_issuer import KeyStore, LocalIssuer, load_clients, main
from tests.conftest import Clock
from tests.support.issuer import FakeIssuer

PROJECT = Path(__file__).resolve().parent.parent


def kids(issuer: FakeIssuer) -> list[str]:
    response = httpx.get(f"{issuer.url}/jwks.json", timeout=5)
    return [k["kid"] for k in response.json()["keys"]]


def token_kid(issuer: FakeIssuer) -> str:
    response = httpx.post(
        f"{issuer.url}/token",
        data={"grant_type": "client_credentials"},
        auth=("c_demo_reports", "demo-reports-secret"),
        timeout=5,
    )
    return str(header_of(response.json()["access_token"])["kid"])


def test_the_first_start_makes_one_es256_key_and_a_restart_keeps_it(tmp_path: Path) -> None:
    first = KeyStore(tmp_path / "keys").ensure()
    assert [k.alg for k in first.keys] == ["ES256"]
    again = KeyStore(tmp_path / "keys").ensure()
    assert [k.kid for k in again.keys] == [k.kid for k in first.keys]
    assert again.keys[0].pem() == first.keys[0].pem()


def test_the_key_directory_is_private(tmp_path: Path) -> None:
    KeyStore(tmp_path / "keys").ensure()
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700


def test_rotate_publishes_a_new_signer_and_retires_the_old_after_the_grace(
    tmp_path: Path,
) -> None:
    clock = Clock()
    store = KeyStore(tmp_path, clock)
    old = store.ensure().keys[0]
    new, state = store.rotate(grace=300)
    assert [k.kid for k in state.keys] == [old.kid, new.kid]
    assert state.signer == new
    assert [k.kid for k in state.published(clock())] == [old.kid, new.kid]
    clock.advance(299)
    assert len(store.load().published(clock())) == 2
    clock.advance(1)
    assert [k.kid for k in store.load().published(clock())] == [new.kid]
    store.ensure()  # the next start (or command) drops it from disk too
    assert not (tmp_path / f"{old.kid}.pem").exists()
    assert [k.kid for k in store.load().keys] == [new.kid]


def test_a_second_rotation_keeps_the_first_keys_retirement_time(tmp_path: Path) -> None:
    clock = Clock()
    store = KeyStore(tmp_path, clock)
    first = store.ensure().keys[0]
    second, _ = store.rotate(grace=300)
    clock.advance(100)
    third, state = store.rotate(grace=300)
    assert state.retire_at[first.kid] == pytest.approx(clock() + 200)
    assert state.retire_at[second.kid] == pytest.approx(clock() + 300)
    assert state.signer == third


def test_retire_removes_a_key_now_but_never_the_signer(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    old = store.ensure().keys[0]
    new, _ = store.rotate()
    with pytest.raises(ValueError, match="rotate"):
        store.retire(new.kid)
    with pytest.raises(LookupError):
        store.retire("no-such-kid")
    assert [k.kid for k in store.retire(old.kid).keys] == [new.kid]
    assert sorted(p.name for p in tmp_path.glob("*.pem")) == [f"{new.kid}.pem"]


def test_a_running_issuer_sees_a_rotation_made_by_another_process(tmp_path: Path) -> None:
    issuer = LocalIssuer(KeyStore(tmp_path)).start()
    try:
        (old,) = kids(issuer)
        assert token_kid(issuer) == old
        new, _ = KeyStore(tmp_path).rotate()  # as `scripts/issuer rotate` would
        assert kids(issuer) == [old, new.kid]
        assert token_kid(issuer) == new.kid
        KeyStore(tmp_path).retire(old)
        assert kids(issuer) == [new.kid]
    finally:
        issuer.stop()


def test_the_issuer_drops_a_key_by_itself_when_its_grace_runs_out(tmp_path: Path) -> None:
    clock = Clock()
    store = KeyStore(tmp_path, clock)
    issuer = LocalIssuer(store).start()
    try:
        (old,) = kids(issuer)
        new, _ = store.rotate(grace=60)
        assert kids(issuer) == [old, new.kid]
        clock.advance(61)
        assert kids(issuer) == [new.kid]
    finally:
        issuer.stop()


def test_clients_come_from_a_json_file(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    path.write_text(json.dumps({"svc": {"secret": "s3", "scopes": ["read:reports", "x"]}}))
    issuer = LocalIssuer(KeyStore(tmp_path / "keys"), clients=load_clients(path)).start()
    try:
        response = httpx.post(
            f"{issuer.url}/token",
            data={"grant_type": "client_credentials", "scope": "read:reports"},
            auth=("svc", "s3"),
            timeout=5,
        )
        assert payload_of(response.json()["access_token"])["sub"] == "svc"
        refused = httpx.post(
            f"{issuer.url}/token",
            data={"grant_type": "client_credentials"},
            auth=("c_demo_reports", "demo-reports-secret"),
            timeout=5,
        )
        assert refused.status_code == 401
    finally:
        issuer.stop()


def test_cli_rotate_retire_and_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    keys = ["--keys", str(tmp_path)]
    assert main(["keys", *keys]) == 0
    assert "no keys" in capsys.readouterr().out
    old = KeyStore(tmp_path).ensure().keys[0].kid
    assert main(["rotate", "--grace", "60", *keys]) == 0
    out = capsys.readouterr().out
    assert "new signing key" in out and f"{old}  ES256  published, retires in 60 s" in out
    new = KeyStore(tmp_path).load().keys[-1].kid
    assert main(["retire", new, *keys]) == 1
    assert "rotate" in capsys.readouterr().err
    assert main(["retire", old, *keys]) == 0
    assert capsys.readouterr().out.splitlines() == [f"retired {old}", f"  {new}  ES256  signing"]


def test_scripts_issuer_prints_its_url_first_and_keeps_its_key_across_restarts(
    tmp_path: Path,
) -> None:
    def start_and_stop() -> tuple[str, list[str]]:
        process = subprocess.Popen(  # noqa: S603 - our own scripts
            [PROJECT / "scripts" / "issuer", "--port", "0", "--keys", tmp_path, "--quiet"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("fake AuthPI issuer on http://127.0.0.1:")
            url = first.split()[-1]
            assert url.endswith("/iss_local")
            published = [k["kid"] for k in httpx.get(f"{url}/jwks.json", timeout=5).json()["keys"]]
        finally:
            process.send_signal(signal.SIGTERM)
            assert process.wait(5) == 0
            assert process.stdout is not None
            process.stdout.close()
        return url, published

    _, first = start_and_stop()
    _, again = start_and_stop()
    assert first == again and len(first) == 1


def test_an_agent_from_the_clients_file_carries_its_memberships(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    agent = {"secret": "s", "scopes": [], "organizations": [{"id": "org_a", "scopes": ["x:read"]}]}
    path.write_text(json.dumps({"agt_bot": agent}))
    issuer = LocalIssuer(KeyStore(tmp_path / "keys"), clients=load_clients(path)).start()
    try:
        response = httpx.post(
            f"{issuer.url}/token",
            data={"grant_type": "client_credentials"},
            auth=("agt_bot", "s"),
            timeout=5,
        )
        claims = payload_of(response.json()["access_token"])
        assert claims["dat"] == {"type": "agent"}
        assert [(o["id"], o["scopes"]) for o in claims["organizations"]] == [("org_a", ["x:read"])]
    finally:
        issuer.stop()
    path.write_text(json.dumps({"c_svc": agent}))  # only an agent holds organizations
    with pytest.raises(ValueError, match="no agent"):
        load_clients(path)
