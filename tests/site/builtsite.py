"""The built book (_build/html) as a learner meets it: its pages, a local server, a browser.

Used by the browser tests in this folder and by `make screenshots` (screenshots.py).
Pages are discovered from _toc.yml, so the tests follow the book as chapters are added.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "_build" / "html"
TOC = REPO / "_toc.yml"
AXE_JS = REPO / "tests" / "site" / "node_modules" / "axe-core" / "axe.min.js"

CHROMIUM = Path("/usr/bin/chromium")
# Flags that keep Debian's chromium quiet, offline and working as root in a container.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass(frozen=True)
class Page:
    """One page of the table of contents whose source file exists in the working tree."""

    docname: str  # path without suffix, relative to the repository root: "book/notation"
    source: Path  # the .md or .ipynb file the page is built from

    @property
    def html(self) -> str:
        """The page's path inside _build/html."""
        return f"{self.docname}.html"

    @property
    def is_notebook(self) -> bool:
        return self.source.suffix == ".ipynb"

    @property
    def is_chapter(self) -> bool:
        """A notebook under book/: it gets a launch button."""
        return self.is_notebook and self.docname.startswith("book/")

    @property
    def is_exercise(self) -> bool:
        """A released exercise notebook, exercises/<assignment>/<notebook>.ipynb."""
        return self.is_notebook and self.docname.startswith("exercises/")


def toc_docnames(toc_path: Path = TOC) -> list[str]:
    """Every document named in the TOC, in reading order (root first), built or not."""
    toc = yaml.safe_load(toc_path.read_text())
    names = [toc["root"]]

    def walk(entries: list[dict]) -> None:
        for entry in entries:
            if "file" in entry:
                names.append(entry["file"])
            for key in ("sections", "chapters"):
                walk(entry.get(key, []))
            for part in entry.get("parts", []):
                walk(part.get("chapters", []))

    for part in toc.get("parts", []):
        walk(part.get("chapters", []))
    walk(toc.get("chapters", []))
    return [name.removesuffix(".md").removesuffix(".ipynb") for name in names]


def source_of(docname: str) -> Path | None:
    """The .ipynb or .md file a document is built from, or None when it does not exist yet."""
    for suffix in (".ipynb", ".md"):
        path = REPO / f"{docname}{suffix}"
        if path.is_file():
            return path
    return None


def toc_pages() -> list[Page]:
    """The TOC's pages whose source exists, in reading order."""
    pages = []
    for name in toc_docnames():
        source = source_of(name)
        if source is not None:
            pages.append(Page(name, source))
    return pages


def first_page(predicate) -> Page | None:
    """The first TOC page that satisfies `predicate`, or None."""
    return next((page for page in toc_pages() if predicate(page)), None)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (signature of the base class)
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve `directory` over HTTP on 127.0.0.1 at a free port; yield its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def launch_chromium(playwright):
    """Debian's chromium, headless, with a fresh profile (Playwright makes a new one)."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )


# Resolves once MathJax has typeset the page, or at once on a page without math (the build
# includes MathJax only on pages that have math).
WAIT_FOR_MATHJAX = """async () => {
    const script = document.querySelector('script[src*="mathjax"]');
    if (!script) return false;
    const ready = () => window.MathJax && MathJax.startup && MathJax.startup.promise;
    for (let i = 0; i < 200 && !ready(); i++) {
        await new Promise(resolve => setTimeout(resolve, 50));
    }
    if (!ready()) return false;
    await MathJax.startup.promise;
    return true;
}"""


# axe-core's violations within `context` (an axe context object: include / exclude lists of
# selectors), in a form that prints well in a failure message. Needs AXE_JS injected first.
RUN_AXE = """context => axe.run(context, {resultTypes: ['violations']}).then(result =>
    result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
        targets: v.nodes.slice(0, 5).map(n => n.target.join(' '))})))"""
# What axe leaves out on every page: MathJax's generated markup (MathJax's own business),
# and code cells and their outputs, whose markup repeats from page to page and doubles
# axe's time; test_accessibility checks those on one chapter.
AXE_EXCLUDE = [["mjx-container"], [".highlight"], [".cell_output"]]
