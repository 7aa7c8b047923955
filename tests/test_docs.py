"""The documentation holds together: every relative link in README.md and docs/*.md leads to a
file of the repository, every #anchor to a heading of that file (GitHub's slugs), every page
of docs/ is linked from the README, and the README stays one screen long and shows the two
commands."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

PROJECT = Path(__file__).resolve().parent.parent
README = PROJECT / "README.md"
DOCS = PROJECT / "docs"
MAX_README_LINES = 150

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target), the target optionally in <...> and followed by a "title".
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(?:<([^<>]*)>|([^\s()]*))(?:\s+\"[^\"]*\")?\s*\)"
)
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
_HTML_ANCHOR = re.compile(r"<a\s[^>]*(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@dataclass(frozen=True)
class Link:
    line: int
    target: str


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code spans blanked out."""
    lines: list[tuple[int, str]] = []
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        opened = _FENCE.match(line)
        if fence is not None:
            if opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
                fence = None
            continue
        if opened:
            fence = opened.group(1)
            continue
        lines.append((number, _CODE_SPAN.sub("code", line)))
    return lines


def code_lines(text: str) -> list[str]:
    """The lines inside fenced code blocks."""
    prose = {number for number, _ in prose_lines(text)}
    return [
        line
        for number, line in enumerate(text.splitlines(), 1)
        if number not in prose and not _FENCE.match(line)
    ]


def links(text: str) -> list[Link]:
    found = []
    for number, line in prose_lines(text):
        for match in _INLINE_LINK.finditer(line):
            found.append(Link(number, match.group(1) or match.group(2) or ""))
        reference = _REFERENCE.match(line)
        if reference:
            found.append(Link(number, reference.group(1)))
    return found


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text in lower case, every character but
    letters, digits, spaces, hyphens and underscores dropped, spaces made hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    kept = "".join(c for c in text.strip().lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def heading_text_lines(text: str) -> list[str]:
    """Headings with their code spans intact (prose_lines blanks them for link finding)."""
    prose = {number for number, _ in prose_lines(text)}
    return [
        line
        for number, line in enumerate(text.splitlines(), 1)
        if number in prose and _HEADING.match(line)
    ]


def offered_anchors(text: str) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in heading_text_lines(text):
        heading = _HEADING.match(line)
        assert heading is not None
        base = slug(heading.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    for _, line in prose_lines(text):
        found.update(_HTML_ANCHOR.findall(line))
    return found


def repository_files(root: Path) -> set[str] | None:
    """The files git would commit (tracked, or new and not ignored), relative to root; None
    outside a git work tree, where existence on disk is all that can be checked."""
    git = shutil.which("git")
    if git is None:
        return None
    done = subprocess.run(  # noqa: S603 - a fixed argv; no shell
        [git, "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        return None
    return {name for name in done.stdout.decode("utf-8").split("\0") if name}


def broken_links(page: Path, root: Path, files: set[str] | None) -> list[str]:
    """What is wrong with page's relative links, one line each; empty when nothing is."""
    problems = []
    for link in links(page.read_text("utf-8")):
        target = link.target
        where = f"{page.relative_to(root).as_posix()}:{link.line}: {target or '(empty)'}"
        if _SCHEME.match(target) or target.startswith("//"):
            continue  # an absolute URL: not ours to resolve offline
        path_part, _, anchor = target.partition("#")
        if not path_part and not anchor:
            problems.append(f"{where}: an empty link")
            continue
        resolved = (page.parent / unquote(path_part)).resolve() if path_part else page.resolve()
        try:
            relative = resolved.relative_to(root.resolve()).as_posix()
        except ValueError:
            problems.append(f"{where}: points outside the repository")
            continue
        is_file = resolved.is_file()
        is_dir = resolved.is_dir()
        if not (is_file or is_dir):
            problems.append(f"{where}: no such file")
            continue
        if files is not None:
            committed = (
                relative in files
                if is_file
                else any(name.startswith(relative + "/") for name in files)
            )
            if not committed:
                problems.append(f"{where}: not in the repository (ignored by git?)")
                continue
        if anchor:
            if resolved.suffix.lower() != ".md":
                problems.append(f"{where}: an anchor into a file that is not Markdown")
            elif unquote(anchor) not in offered_anchors(resolved.read_text("utf-8")):
                problems.append(f"{where}: no heading with the anchor #{anchor}")
    return problems


PAGES = [README, PROJECT / "CHANGELOG.md", *sorted(DOCS.glob("*.md"))]


@pytest.fixture(scope="module")
def files() -> set[str] | None:
    return repository_files(PROJECT)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(PROJECT).as_posix())
def test_every_relative_link_resolves(page: Path, files: set[str] | None) -> None:
    assert broken_links(page, PROJECT, files) == []


def test_every_page_of_docs_is_linked_from_the_readme() -> None:
    linked = {
        (README.parent / link.target.partition("#")[0]).resolve()
        for link in links(README.read_text("utf-8"))
        if not _SCHEME.match(link.target)
    }
    assert [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked] == []


def test_the_readme_is_one_screen_to_a_working_deploy() -> None:
    lines = README.read_text("utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"


def test_the_readme_shows_the_two_commands() -> None:
    commands = [line.split("#")[0].split() for line in code_lines(README.read_text("utf-8"))]
    assert ["make", "demo"] in commands
    assert ["make", "test"] in commands


# --- The checker itself: it must be able to fail --------------------------------------------


def _site(tmp_path: Path, readme: str) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "topic.md").write_text(
        "# Topic\n\n## The `make demo` loop\n\n## Caches, and limits\n\n## Caches, and limits\n"
    )
    (tmp_path / "README.md").write_text(readme)
    return tmp_path / "README.md"


def test_the_checker_finds_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    readme = _site(
        tmp_path,
        "[ok](docs/topic.md) [ok](docs/topic.md#the-make-demo-loop) [ok](#title)\n"
        "# Title\n"
        "[gone](docs/nothing.md) [wrong](docs/topic.md#no-such-heading)\n"
        "[second](docs/topic.md#caches-and-limits-1) [third](docs/topic.md#caches-and-limits-2)\n",
    )
    assert broken_links(readme, tmp_path, None) == [
        "README.md:3: docs/nothing.md: no such file",
        "README.md:3: docs/topic.md#no-such-heading: no heading with the anchor #no-such-heading",
        "README.md:4: docs/topic.md#caches-and-limits-2: "
        "no heading with the anchor #caches-and-limits-2",
    ]


def test_the_checker_ignores_code_and_absolute_urls_but_not_untracked_files(
    tmp_path: Path,
) -> None:
    readme = _site(
        tmp_path,
        "```\n[in a fence](nowhere.md)\n```\n`[in code](nowhere.md)`\n"
        "[web](https://example.com/x.md) [ignored](.dev.vars) [outside](../elsewhere.md)\n",
    )
    (tmp_path / ".dev.vars").write_text("X=1\n")
    files = {"README.md", "docs/topic.md"}  # what git would commit: .dev.vars is ignored
    assert broken_links(readme, tmp_path, files) == [
        "README.md:5: .dev.vars: not in the repository (ignored by git?)",
        "README.md:5: ../elsewhere.md: points outside the repository",
    ]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Two commands on a fresh clone", "two-commands-on-a-fresh-clone"),
        ("Configure: `wrangler.jsonc` vars", "configure-wranglerjsonc-vars"),
        ("curl-matrix, against all three targets", "curl-matrix-against-all-three-targets"),
        ("RFC 9728 metadata", "rfc-9728-metadata"),
        ("CPython against jose", "cpython-against-jose"),
        ("Use it in [your Worker](x.md)", "use-it-in-your-worker"),
        ("token_cache.py and **more**", "token_cachepy-and-more"),
    ],
)
def test_slugs_follow_githubs_rules(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor
