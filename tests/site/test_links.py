"""No broken internal link in the built site: files by linkchecker, anchors by a parser.

External links are not checked here (no network in CI); `make linkcheck-external` does.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

LINKCHECKER = Path(sys.executable).with_name("linkchecker")


def linkchecker(start: Path) -> list[dict]:
    """Every URL linkchecker checked from `start`, internal links only, as CSV rows.

    Run as root, linkchecker switches to the user nobody: the site must be world-readable.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".ini") as config:  # not the user's config
        config.write("[filtering]\n")
        config.flush()
        result = subprocess.run(
            [str(LINKCHECKER), "-f", config.name, "--no-status", "-v", "-o", "csv", str(start)],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode in (0, 1), f"linkchecker failed: {result.stderr[-2000:]}"
    lines = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines)), delimiter=";"))


def broken(rows: list[dict]) -> list[str]:
    return [
        f"{row['urlname']} in {row['parentname']}: {row['result']}"
        for row in rows
        if row["valid"] == "False"
    ]


def test_no_broken_internal_link(site_dir):
    rows = linkchecker(site_dir / "index.html")
    pages = {row["url"] for row in rows if row["url"].endswith(".html")}
    assert len(pages) >= 3, f"linkchecker reached only {sorted(pages)}"
    problems = broken(rows)
    assert not problems, "\n".join(problems)


class _Anchors(HTMLParser):
    """Collects the ids (and <a name>s) of a page and its links with a fragment."""

    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for key in ("id", "name") if tag == "a" else ("id",):
            if attributes.get(key):
                self.ids.add(attributes[key])
        href = attributes.get("href") if tag == "a" else None
        if href and "#" in href and not urlsplit(href).scheme and href != "#":
            self.links.append(href)


def broken_anchors(site: Path) -> list[str]:
    """Internal links whose #fragment names no element of the target page."""
    parsed = {}
    for path in site.rglob("*.html"):
        if path.relative_to(site).parts[0] != "_static":
            parser = _Anchors()
            parser.feed(path.read_text(errors="replace"))
            parsed[path.resolve()] = parser
    problems = []
    for path, parser in parsed.items():
        for href in parser.links:
            target, _, fragment = href.partition("#")
            target_path = (path.parent / unquote(target)).resolve() if target else path
            if target_path.suffix != ".html" or not fragment:
                continue
            page = parsed.get(target_path)
            if page is None or unquote(fragment) not in page.ids:
                problems.append(f"{href} in {path.relative_to(site.resolve())}")
    return sorted(set(problems))


def test_no_broken_anchor(site_dir):
    problems = broken_anchors(site_dir)
    assert not problems, "links to missing anchors:\n" + "\n".join(problems)


def test_the_link_checks_find_planted_broken_links():
    site = Path(tempfile.mkdtemp(prefix="site-links-"))
    try:
        os.chmod(site, 0o755)  # readable by nobody, see `linkchecker`
        (site / "index.html").write_text(
            '<a href="b.html">b</a> <a href="c.html">c</a> <a id="top" href="#nope">n</a>'
            ' <a href="b.html#there">t</a> <a href="b.html#gone">g</a>'
            ' <a href="https://example.org/">external, not checked</a>'
        )
        (site / "b.html").write_text('<p id="there">b</p> <a href="index.html#top">up</a>')
        for path in site.iterdir():
            os.chmod(path, 0o644)
        problems = broken(linkchecker(site / "index.html"))
        assert len(problems) == 1 and problems[0].startswith("c.html"), problems
        assert broken_anchors(site) == ["#nope in index.html", "b.html#gone in index.html"]
    finally:
        shutil.rmtree(site)
