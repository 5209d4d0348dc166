"""Finding solution code and hidden tests in published files.

A solution notebook (nbgrader source, solutions/<assignment>/<notebook>.ipynb) marks what
learners must not see with `### BEGIN SOLUTION` / `### END SOLUTION` and
`### BEGIN HIDDEN TESTS` / `### END HIDDEN TESTS`. `secret_blocks` extracts those blocks;
`published_texts` reads every text file of a built site the way a reader would see it
(HTML without tags, notebooks as their cells and outputs), so a block is found whatever
markup the build wraps around it.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

MARKERS = {
    "solution": ("### BEGIN SOLUTION", "### END SOLUTION"),
    "hidden tests": ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"),
}
# Blocks shorter than this (without spaces) are too generic to be evidence of a leak
# ("pass", "return y").
MIN_BLOCK_CHARS = 20
TEXT_SUFFIXES = {".html", ".ipynb", ".md", ".txt", ".py", ".js", ".json"}
TAG = re.compile(r"<[^>]+>")


def normalize(text: str) -> str:
    """Lines stripped of indentation and trailing space, blank lines dropped."""
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def _cell_text(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def notebook_text(notebook: dict) -> str:
    """All cell sources and text outputs of a notebook, one after another."""
    parts = []
    for cell in notebook.get("cells", []):
        parts.append(_cell_text(cell))
        for output in cell.get("outputs", []):
            texts = [output.get("text", "")]
            texts += [value for value in output.get("data", {}).values()]
            for text in texts:
                parts.append("".join(text) if isinstance(text, list) else str(text))
    return "\n".join(parts)


def secret_blocks(notebook_path: Path) -> list[tuple[str, str]]:
    """(kind, normalized block) for every marked block of a solution notebook."""
    notebook = json.loads(notebook_path.read_text())
    blocks = []
    for cell in notebook.get("cells", []):
        lines = _cell_text(cell).splitlines()
        for kind, (begin, end) in MARKERS.items():
            inside: list[str] | None = None
            for line in lines:
                if line.strip() == begin:
                    inside = []
                elif line.strip() == end and inside is not None:
                    blocks.append((kind, normalize("\n".join(inside))))
                    inside = None
                elif inside is not None:
                    inside.append(line)
    return blocks


def readable_text(path: Path) -> str:
    """What a reader of `path` sees, normalized: tags removed from HTML, notebooks parsed."""
    raw = path.read_text(errors="replace")
    if path.suffix == ".html":
        raw = html.unescape(TAG.sub("", raw))
    elif path.suffix == ".ipynb":
        try:
            raw = notebook_text(json.loads(raw))
        except json.JSONDecodeError:
            pass  # searched as plain text
    return normalize(raw)


def published_texts(site: Path) -> dict[str, str]:
    """{path inside the site: readable text} for every text file, the theme's assets aside."""
    return {
        path.relative_to(site).as_posix(): readable_text(path)
        for path in sorted(site.rglob("*"))
        if path.is_file()
        and path.suffix in TEXT_SUFFIXES
        and path.relative_to(site).parts[0] != "_static"
    }


def leaks(blocks: list[tuple[str, str]], texts: dict[str, str]) -> list[str]:
    """Where each block long enough to be evidence appears in the published texts."""
    found = []
    for kind, block in blocks:
        if len(re.sub(r"\s", "", block)) < MIN_BLOCK_CHARS:
            continue
        for name, text in texts.items():
            if block in text:
                first_line = block.splitlines()[0]
                found.append(f"{kind} block starting {first_line!r} is in {name}")
    return found
