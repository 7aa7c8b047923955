"""`make test-bundle`: what `wrangler deploy` would upload, checked without uploading.

Runs `wrangler deploy --dry-run --outdir <tmp>` (plus `--outfile`, the multipart upload it
would send) and checks that:
- wrangler takes the config as a Python Worker: main module entry.py, the python_workers
  flag and the compatibility_date of wrangler.jsonc, every module sent as text/x-python;
- the bundle holds every module of src/ (entry.py, app.py, authpi_worker/), byte for byte,
  and no other module (vendored python_modules/, when `pywrangler sync` made one, are let through).

Usage: python -m scripts.check_bundle NODE .../wrangler.js   (the Makefile's $(WRANGLER))
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

import pyjson5

PROJECT = Path(__file__).resolve().parent.parent
CORE = "authpi_worker"  # the package every module of which must be in the bundle
PYTHON_MODULE = "text/x-python"  # the content type workerd loads as a Python module
VENDORED = "python_modules/"  # pywrangler's vendored packages: not ours to compare
DRY_RUN_TIMEOUT = 300  # seconds; a dry run takes about 2 s, the first npx start longer


@dataclass(frozen=True)
class Part:
    """One part of the multipart upload: a module, or the metadata."""

    name: str
    content_type: str
    data: bytes


def main(argv: Sequence[str] | None = None) -> int:
    wrangler = list(sys.argv[1:] if argv is None else argv)
    if not wrangler:
        print(__doc__, file=sys.stderr)
        return 2
    config = pyjson5.decode((PROJECT / "wrangler.jsonc").read_text())
    with tempfile.TemporaryDirectory(prefix="bundle-") as tmp:
        outdir, form = Path(tmp) / "bundle", Path(tmp) / "upload.form"
        log = dry_run(wrangler, outdir, form, Path(tmp) / "logs")
        if log is not None:
            print(log, file=sys.stderr)
            return 1
        problems = check_upload(read_form(form.read_bytes()), config)
        problems += check_outdir(outdir, config)
    expected = len(expected_modules(config))
    for problem in problems:
        print(f"bundle: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"bundle ok: a Python Worker of {expected} modules, every one of src/ byte for byte")
    return 0


def dry_run(
    wrangler: list[str], outdir: Path, form: Path, logs: Path, cwd: Path = PROJECT
) -> str | None:
    """Run the dry run in cwd; None when wrangler accepted it, else what it printed."""
    env = {**os.environ, "WRANGLER_SEND_METRICS": "false", "WRANGLER_LOG_PATH": str(logs)}
    command = [*wrangler, "deploy", "--dry-run", "--outdir", str(outdir), "--outfile", str(form)]
    done = subprocess.run(  # noqa: S603 - the Makefile's wrangler, fixed arguments
        command,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=DRY_RUN_TIMEOUT,
        check=False,
    )
    if done.returncode != 0 or not form.exists():
        return f"wrangler deploy --dry-run failed ({done.returncode}):\n{done.stdout}{done.stderr}"
    return None


def expected_modules(config: dict[str, Any]) -> dict[str, bytes]:
    """Bundle name → source bytes: the main module and every .py under its directory (wrangler
    uploads the tree of the main module's directory)."""
    main = PROJECT / config["main"]
    return {
        path.relative_to(main.parent).as_posix(): path.read_bytes()
        for path in sorted(main.parent.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


def read_form(raw: bytes) -> list[Part]:
    """The parts of a multipart/form-data body (wrangler's --outfile)."""
    boundary = raw.split(b"\r\n", 1)[0].removeprefix(b"--").decode("ascii")
    head = f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + raw)
    return [_part(part) for part in message.iter_parts()]


def _part(part: Message) -> Part:
    name = part.get_param("name", header="content-disposition")
    data = part.get_payload(decode=True)
    assert isinstance(name, str) and isinstance(data, bytes)
    return Part(name, part.get_content_type(), data)


def check_upload(parts: list[Part], config: dict[str, Any]) -> list[str]:
    """Problems with the upload: the metadata, then each module."""
    by_name = {part.name: part for part in parts}
    metadata_part = by_name.pop("metadata", None)
    if metadata_part is None:
        return ["the upload has no metadata part"]
    problems = check_metadata(json.loads(metadata_part.data), config)
    expected = expected_modules(config)
    for name, part in sorted(by_name.items()):
        if name.startswith(VENDORED):
            continue
        if name not in expected:
            problems.append(f"{name} is uploaded but is not a module of src/")
        elif part.content_type != PYTHON_MODULE:
            problems.append(f"{name} is uploaded as {part.content_type}, not {PYTHON_MODULE}")
        elif part.data != expected[name]:
            problems.append(f"{name} is uploaded with other bytes than src/{name}")
    problems += [f"{name} is not uploaded" for name in sorted(expected.keys() - by_name.keys())]
    return problems


def check_metadata(metadata: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """Problems with what wrangler tells the API: a Python Worker with our date and flags."""
    problems = []
    main = Path(config["main"]).name
    if metadata.get("main_module") != main:
        problems.append(f"main_module is {metadata.get('main_module')!r}, not {main!r}")
    if "python_workers" not in metadata.get("compatibility_flags", []):
        problems.append("the python_workers compatibility flag is not sent")
    if metadata.get("compatibility_date") != config["compatibility_date"]:
        problems.append(f"compatibility_date is {metadata.get('compatibility_date')!r}")
    return problems


def check_outdir(outdir: Path, config: dict[str, Any]) -> list[str]:
    """Problems with the bundle --outdir wrote: entry.py and every core module, as in src/."""
    expected = expected_modules(config)
    found = {
        path.relative_to(outdir).as_posix(): path.read_bytes()
        for path in outdir.rglob("*.py")
        if not path.relative_to(outdir).as_posix().startswith(VENDORED)
    }
    problems = [f"{name} is missing from the bundle" for name in sorted(expected - found.keys())]
    problems += [f"{name} is bundled but not in src/" for name in sorted(found - expected.keys())]
    problems += [
        f"{name} differs from src/{name}"
        for name in sorted(expected.keys() & found.keys())
        if found[name] != expected[name]
    ]
    if not any(name.startswith(f"{CORE}/") for name in found):
        problems.append(f"no module of {CORE}/ in the bundle")
    return problems


if __name__ == "__main__":
    sys.exit(main())
