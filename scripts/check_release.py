"""The release's guard: the pushed tag is `v` + the version of pyproject.toml, and the dist
directory holds exactly that version's sdist and wheel, nothing else. The release workflow
runs it after the build and again just before publishing; it refuses (exit 1, a GitHub error
annotation) otherwise. Standard library only: the publish job has no venv.

    python3 scripts/check_release.py TAG [DIST] [--pyproject PATH]
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


class Refused(Exception):
    """Why this tag, or this dist directory, must not be published."""


def project_version(pyproject: Path) -> tuple[str, str]:
    """pyproject.toml's [project] name and static version."""
    project = tomllib.loads(pyproject.read_text("utf-8")).get("project", {})
    name, version = project.get("name"), project.get("version")
    if not isinstance(name, str) or not isinstance(version, str):
        raise Refused(f"{pyproject.name} has no static [project] name and version")
    return name, version


def expected_files(name: str, version: str) -> set[str]:
    """The sdist and the wheel `uv build` makes (the name normalised as both file names do)."""
    stem = f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}"
    return {f"{stem}.tar.gz", f"{stem}-py3-none-any.whl"}


def check(tag: str, pyproject: Path, dist: Path | None) -> str:
    """What is released, or Refused saying why not."""
    name, version = project_version(pyproject)
    if tag != f"v{version}":
        raise Refused(
            f"the tag {tag!r} is not the version of pyproject.toml ({version!r}): "
            f"tag v{version}, or set version = {tag.removeprefix('v')!r} and tag again"
        )
    if dist is None:
        return f"{name} {version}"
    # Hidden files are never published: `uv build` writes a .gitignore into its out-dir, and
    # neither the artifact nor `uv publish dist/*` takes it.
    names = [path.name for path in dist.iterdir()] if dist.is_dir() else []
    found = {name for name in names if not name.startswith(".")}
    wanted = expected_files(name, version)
    if found != wanted:
        missing, extra = sorted(wanted - found), sorted(found - wanted)
        raise Refused(
            f"{dist} must hold exactly {sorted(wanted)}: missing {missing}, extra {extra}"
        )
    return f"{name} {version}: {', '.join(sorted(found))}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Refuse a tag that is not pyproject's version.")
    parser.add_argument("tag", help="the pushed tag, e.g. v0.3.0 (GITHUB_REF_NAME)")
    parser.add_argument("dist", nargs="?", type=Path, help="the directory to publish")
    parser.add_argument("--pyproject", type=Path, default=PYPROJECT)
    args = parser.parse_args(argv)
    try:
        released = check(args.tag, args.pyproject, args.dist)
    except Refused as refused:
        print(f"::error title=Release refused::{refused}")
        return 1
    print(f"Release {args.tag}: {released}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
