"""The fenced code blocks of README.md and docs/*.md, for tests/test_docs.py.

A ```python block may be followed (blank lines between at most) by a ```text block: that block is
what the Python block prints. A page's blocks share one namespace, in page order, as a reader
running them one after another would.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(\s*)```(\S*)(?:\s+.*)?$")  # an info string may follow the language


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # the opening fence's line, 1-based
    language: str
    code: str
    prints: str | None  # the ```text block that follows a python block, if any

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def fenced(path: Path) -> list[Block]:
    """Every fenced block of one page, python blocks with the output shown after them."""
    lines = path.read_text().split("\n")
    raw: list[tuple[int, int, str, str]] = []  # (open line, close line, language, code)
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if FENCE.match(lines[j]) and not FENCE.match(lines[j]).group(2))
        code = textwrap.dedent("\n".join(lines[i + 1 : end])) + "\n"
        raw.append((i + 1, end + 1, opening.group(2), code))
        i = end + 1
    page = str(path.relative_to(ROOT))
    blocks = []
    for k, (start, close, language, code) in enumerate(raw):
        prints = None
        if language == "python" and k + 1 < len(raw):
            next_start, _, next_language, next_code = raw[k + 1]
            between = lines[close : next_start - 1]
            if next_language == "text" and not any(line.strip() for line in between):
                prints = next_code
        blocks.append(Block(page, start, language, code, prints))
    return blocks


def python_blocks() -> list[Block]:
    return [b for path in pages() for b in fenced(path) if b.language == "python"]
