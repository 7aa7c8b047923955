"""`make test-bundle`, for the FastAPI example: what `wrangler deploy` would upload from
examples/fastapi, checked without uploading, offline.

`pywrangler sync` would vendor the example's dependencies into python_modules/ with Pyodide's
own builds; it cannot run here. So a copy of the example gets a python_modules/ made as it
would be, from what can be had offline: every pure-Python distribution the dependencies
require (for Pyodide's Python 3.14), from the venv as the lock pins it, checked against its
RECORD, and authpi_worker from src/ (the wheel holds exactly that package). The distributions
with compiled code (pydantic-core, cryptography, cffi) need Pyodide builds: they are named, not
vendored. `wrangler deploy --dry-run --outfile` must then take the copy as a Python Worker
(main module worker.py, the python_workers flag, the compatibility_date), upload its modules
byte for byte as Python, and every vendored file under python_modules/.

Usage: python -m scripts.check_example_bundle NODE .../wrangler.js   (the Makefile's $(WRANGLER))
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

import pyjson5
from packaging.markers import default_environment
from packaging.requirements import Requirement

from scripts.check_bundle import PYTHON_MODULE, Part, check_metadata, dry_run, read_form
from tests.pyodide.host import vendored_files

PROJECT = Path(__file__).resolve().parent.parent
EXAMPLE = PROJECT / "examples" / "fastapi"
CORE = PROJECT / "src" / "authpi_worker"
VENDORED = "python_modules/"
OURS = "authpi-worker"  # the path dependency: vendored from src/, as its wheel holds it
SDK = "workers-runtime-sdk"  # pywrangler adds it to every Worker's requirements (resolve.py)
# Pyodide's Python in production (Python Workers since compatibility_date 2026-09-08).
PYODIDE: dict[str, str] = {
    **{name: str(value) for name, value in default_environment().items()},
    "python_version": "3.14",
    "python_full_version": "3.14.2",
    "sys_platform": "emscripten",
    "platform_system": "Emscripten",
    "platform_machine": "wasm32",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
COMPILED = re.compile(r"\.(so|pyd|dylib)$")  # a distribution with these needs a Pyodide build


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(requirements: Iterable[str]) -> dict[str, set[str]]:
    """Every distribution the requirements need under Pyodide, with the extras asked of it."""
    needed: dict[str, set[str]] = {}
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        name = _name(requirement.name)
        extras = set(requirement.extras)
        if name in needed and extras <= needed[name]:
            continue
        needed.setdefault(name, set()).update(extras)
        sources = _ours_requirements() if name == OURS else metadata.requires(name)
        for text in sources or ():
            child = Requirement(text)
            if child.marker is None or any(
                child.marker.evaluate({**PYODIDE, "extra": extra})
                for extra in (needed[name] or {""})
            ):
                pending.append(child)
    return needed


def _ours_requirements() -> list[str]:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return [
        *project["dependencies"],
        *(f"{text} ; extra == '{extra}'" for extra, texts in extras.items() for text in texts),
    ]


def vendor(target: Path, names: Iterable[str]) -> tuple[list[str], list[str]]:
    """Fill target/python_modules: (vendored, needing a Pyodide build)."""
    vendored, compiled = [], []
    modules = target / "python_modules"
    for name in sorted(names):
        if name == OURS:
            for path in CORE.rglob("*.py"):
                if "__pycache__" not in path.parts:
                    _copy(path, modules / path.relative_to(CORE.parent))
            vendored.append(name)
            continue
        files = vendored_files(name)  # the locked version, unedited (RECORD)
        if any(COMPILED.search(source.name) for _, source in files):
            compiled.append(name)
            continue
        for destination, source in files:
            relative = destination.split("/python_modules/", 1)[1]
            _copy(source, modules / relative)
        vendored.append(name)
    return vendored, compiled


def _copy(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, destination)


def check(parts: list[Part], config: dict[str, object], example: Path) -> list[str]:
    """Problems with the upload: the metadata, the example's modules, python_modules/."""
    by_name = {part.name: part for part in parts}
    metadata_part = by_name.pop("metadata", None)
    if metadata_part is None:
        return ["the upload has no metadata part"]
    problems = check_metadata(json.loads(metadata_part.data), config)
    main = example / str(config["main"])
    expected = {
        p.relative_to(main.parent).as_posix(): p.read_bytes() for p in main.parent.glob("*.py")
    }
    for name, data in sorted(expected.items()):
        part = by_name.pop(name, None)
        if part is None:
            problems.append(f"{name} is not uploaded")
        elif (part.content_type, part.data) != (PYTHON_MODULE, data):
            problems.append(f"{name} is not uploaded as Python, byte for byte")
    vendored_files_ = {
        f"{VENDORED}{p.relative_to(example / 'python_modules').as_posix()}": p.read_bytes()
        for p in (example / "python_modules").rglob("*")
        if p.is_file()
    }
    for name, data in sorted(vendored_files_.items()):
        part = by_name.pop(name, None)
        if part is None or part.data != data:
            problems.append(f"{name} is not uploaded as vendored")
    problems += [f"{name} is uploaded but is nothing of the example's" for name in sorted(by_name)]
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    wrangler = list(sys.argv[1:] if argv is None else argv)
    if not wrangler:
        print(__doc__, file=sys.stderr)
        return 2
    # It runs in a copy of the example elsewhere: relative paths (node_modules/...) made absolute.
    wrangler = [str(Path(part).resolve()) if Path(part).exists() else part for part in wrangler]
    config = pyjson5.decode((EXAMPLE / "wrangler.jsonc").read_text())
    example = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    with tempfile.TemporaryDirectory(prefix="example-bundle-") as tmp:
        copy = Path(tmp) / "fastapi"
        shutil.copytree(EXAMPLE / "src", copy / "src", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copyfile(EXAMPLE / "wrangler.jsonc", copy / "wrangler.jsonc")
        vendored, compiled = vendor(copy, closure([*example["dependencies"], SDK]))
        form = Path(tmp) / "upload.form"
        log = dry_run(wrangler, Path(tmp) / "bundle", form, Path(tmp) / "logs", cwd=copy)
        if log is not None:
            print(log, file=sys.stderr)
            return 1
        problems = check(read_form(form.read_bytes()), config, copy)
    for problem in problems:
        print(f"example bundle: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"example bundle ok: worker.py and api.py, and {len(vendored)} vendored distributions "
        f"({', '.join(vendored)}); not vendored offline, they need Pyodide builds: "
        f"{', '.join(compiled)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
