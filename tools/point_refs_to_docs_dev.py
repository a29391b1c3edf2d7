"""Point citations of the project's former outside documents at docs/dev.

The code and docs cite ``CONTRACTS.md`` (sections), ``ARCHITECTURE.md`` (rules) and
``SEEDS.md`` (the studies), which lived outside the repository. Their content is now in
docs/dev/contracts.md, docs/dev/architecture.md and docs/dev/glossary.md, with the same section
and rule numbers. This script rewrites the citations in src/, tests/, tools/, benchmarks/,
docs/ (not docs/dev) and README.md, and prints every change as ``file:line`` with the line
before and after.

    python tools/point_refs_to_docs_dev.py --dry-run   # show what would change, write nothing
    python tools/point_refs_to_docs_dev.py             # rewrite the files in place

Rewrites (``N`` a number):

* ``CONTRACTS.md section N``, ``CONTRACTS.md N``, ``CONTRACTS N`` -> ``docs/dev/contracts.md section N``;
  any other ``CONTRACTS.md`` or ``CONTRACTS`` -> ``docs/dev/contracts.md``;
* ``ARCHITECTURE.md rule N``, ``ARCHITECTURE rule N`` -> ``docs/dev/architecture.md rule N``;
  any other ``ARCHITECTURE.md`` -> ``docs/dev/architecture.md``;
* ``../shared/SEEDS.md``, ``SEEDS.md`` -> ``docs/dev/glossary.md``.

In Markdown files the citation becomes a link (relative to the file, to the section's or the
rules' anchor), except inside code spans and fenced code blocks, where it stays plain text.
A Python line that the change takes past 120 characters is listed at the end, to be rewrapped
by hand. Exit status: 0, and 1 with ``--check`` when a citation is left to rewrite.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("src", "tests", "tools", "benchmarks", "docs")
FILES = ("README.md",)
SKIP = ("docs/dev",)
SUFFIXES = (".py", ".md", ".sh", ".yaml", ".yml", ".toml", ".txt", ".cfg")
LONG = 120

# Anchors of the numbered headings of docs/dev/contracts.md (GitHub's slugs).
SECTION_ANCHORS = {
    "1": "1-names",
    "2": "2-spectral-cube-file-hdf5",
    "3": "3-result-files-hdf5",
    "4": "4-command-line",
    "5": "5-diffraction-images-and-the-cfs-encoding",
    "6": "6-images-for-classification",
    "7": "7-model-files",
}
RULES_ANCHOR = "rules-of-the-house"
STUDIES_ANCHOR = "the-five-studies"

# One pattern, tried left to right; each alternative is a named group.
CITATION = re.compile(
    r"(?P<contracts>\bCONTRACTS(?:\.md)?(?:\s+section)?\s+(?P<section>[1-7])\b(?!\.\d))"
    r"|(?P<contracts_plain>\bCONTRACTS(?:\.md)?\b)"
    r"|(?P<architecture>\bARCHITECTURE(?:\.md)?\s+rules?\s+(?P<rule>\d+)\b)"
    r"|(?P<architecture_plain>\bARCHITECTURE\.md\b)"
    r"|(?P<seeds>(?:\.\./shared/)?\bSEEDS\.md\b)"
)


def targets(root: Path) -> list[Path]:
    """The files whose citations are rewritten, in a stable order."""
    found = []
    for folder in FOLDERS:
        for dirpath, dirnames, filenames in os.walk(root / folder):
            rel = Path(dirpath).relative_to(root).as_posix()
            dirnames[:] = sorted(
                d for d in dirnames if d != "__pycache__" and not d.startswith(".") and f"{rel}/{d}" not in SKIP
            )
            found += [Path(dirpath) / f for f in sorted(filenames) if f.endswith(SUFFIXES)]
    found += [root / f for f in FILES if (root / f).is_file()]
    # never the script itself: its docstring describes the citations it rewrites
    return [p for p in found if p.resolve() != Path(__file__).resolve()]


def _plain(m: re.Match) -> str:
    if m.group("contracts"):
        return f"docs/dev/contracts.md section {m.group('section')}"
    if m.group("contracts_plain"):
        return "docs/dev/contracts.md"
    if m.group("architecture"):
        word = "rules" if re.search(r"rules\s", m.group(0)) else "rule"
        return f"docs/dev/architecture.md {word} {m.group('rule')}"
    if m.group("architecture_plain"):
        return "docs/dev/architecture.md"
    return "docs/dev/glossary.md"


def _link(m: re.Match, md_file: Path, root: Path) -> str:
    text = _plain(m)
    if m.group("contracts") or m.group("contracts_plain"):
        page, anchor = "contracts.md", SECTION_ANCHORS.get(m.group("section") or "", "")
    elif m.group("architecture") or m.group("architecture_plain"):
        page, anchor = "architecture.md", RULES_ANCHOR if m.group("architecture") else ""
    else:
        page, anchor = "glossary.md", STUDIES_ANCHOR
    href = Path(os.path.relpath(root / "docs" / "dev" / page, md_file.parent)).as_posix()
    return f"[{text}]({href}{'#' + anchor if anchor else ''})"


def _in_code_span(line: str, start: int, open_ticks: int = 0) -> bool:
    """Whether ``start`` is inside a code span; ``open_ticks`` counts the backticks of the
    paragraph's earlier lines (a span may run over a line break)."""
    return (open_ticks + line.count("`", 0, start)) % 2 == 1


def _inside_link_target(line: str, start: int) -> bool:
    """Whether ``start`` lies in the ``(...)`` of a Markdown link, or in a link's text."""
    before = line[:start]
    return before.rfind("](") > before.rfind(")") or before.rfind("[") > before.rfind("]")


def rewrite_line(line: str, *, markdown: bool, in_fence: bool, path: Path, root: Path, open_ticks: int = 0) -> str:
    """The line with every citation rewritten (links in Markdown prose)."""

    def repl(m: re.Match) -> str:
        plain = (
            not markdown
            or in_fence
            or _in_code_span(line, m.start(), open_ticks)
            or _inside_link_target(line, m.start())
        )
        return _plain(m) if plain else _link(m, path, root)

    return CITATION.sub(repl, line)


def rewrite_file(path: Path, root: Path) -> list[tuple[int, str, str]]:
    """(line number, old, new) for each line of ``path`` that changes; the file is not written."""
    markdown = path.suffix == ".md"
    in_fence = False
    open_ticks = 0  # backticks so far in the current Markdown paragraph
    changes = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(keepends=True), 1):
        if markdown and line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        if not line.strip():
            open_ticks = 0
        new = rewrite_line(line, markdown=markdown, in_fence=in_fence, path=path, root=root, open_ticks=open_ticks)
        if markdown and not in_fence:
            open_ticks += line.count("`")
        if new != line:
            changes.append((number, line, new))
    return changes


def apply(path: Path, changes: list[tuple[int, str, str]]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for number, old, new in changes:
        assert lines[number - 1] == old, (path, number)
        lines[number - 1] = new
    tmp = path.with_name(f".{path.name}.refs-tmp")
    tmp.write_text("".join(lines), encoding="utf-8")
    os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="print the changes, write nothing")
    ap.add_argument("--check", action="store_true", help="like --dry-run; exit 1 when anything would change")
    ap.add_argument("--root", type=Path, default=ROOT, help="the repository to rewrite (default: this one)")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    write = not (args.dry_run or args.check)
    total, files, long_lines = 0, 0, []
    for path in targets(root):
        changes = rewrite_file(path, root)
        if not changes:
            continue
        files += 1
        rel = path.relative_to(root).as_posix()
        for number, old, new in changes:
            total += 1
            print(f"{rel}:{number}\n  - {old.rstrip()}\n  + {new.rstrip()}")
            if path.suffix == ".py" and len(new.rstrip("\n")) > LONG >= len(old.rstrip("\n")):
                long_lines.append(f"{rel}:{number} ({len(new.rstrip())} characters)")
        if write:
            apply(path, changes)
    verb = "rewrote" if write else "would rewrite"
    print(f"{verb} {total} lines in {files} files")
    if long_lines:
        print(f"lines now over {LONG} characters (rewrap by hand):")
        for item in long_lines:
            print(f"  {item}")
    return 1 if args.check and total else 0


if __name__ == "__main__":
    sys.exit(main())
