"""The project's documentation as the tests read it: README.md and every page of docs/."""

from __future__ import annotations

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(f"docs/{name}" for name in os.listdir(os.path.join(ROOT, "docs")) if name.endswith(".md"))
TEXT = {page: open(os.path.join(ROOT, page), encoding="utf-8").read() for page in PAGES}
ALL = "\n".join(TEXT.values())
"""Every page, joined: where a test asks "is it documented anywhere"."""
FENCE = re.compile(r"^```(\w*)([^\n]*)\n(.*?)^```$", re.M | re.S)


def blocks(language: str, pages=PAGES) -> list[tuple[str, int, str, str]]:
    """``(page, line, info, code)`` of every fenced block of ``language`` in ``pages``."""
    return [(page, TEXT[page].count("\n", 0, m.start()) + 1, m.group(2).strip(), m.group(3))
            for page in pages for m in FENCE.finditer(TEXT[page]) if m.group(1) == language]
