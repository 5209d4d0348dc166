"""Math is typeset by MathJax, served with the site, also from disk without a network."""

from __future__ import annotations

import re

import pytest
from builtsite import BUILD, WAIT_FOR_MATHJAX, Page, toc_pages

PAGES = toc_pages()
IDS = [page.docname for page in PAGES]

# TeX delimiters and commands that must not be left as text once MathJax has run.
RAW_TEX = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\$\\[A-Za-z]|\\(frac|sum|mathcal|hat|sqrt)\b")
MATHJAX_SCRIPT = re.compile(r'<script[^>]+src="([^"]*mathjax[^"]*)"')


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_math_is_typeset(visit_page, page: Page):
    dom = visit_page(page).dom
    assert dom["mathTypeset"] == dom["mathElements"], (
        f"{page.html}: {dom['mathElements']} formulas, {dom['mathTypeset']} typeset by MathJax"
    )
    assert dom["mathErrors"] == 0, f"{page.html}: {dom['mathErrors']} TeX errors shown by MathJax"
    raw = sorted({match.group(0) for match in RAW_TEX.finditer(dom["prose"])})
    assert not raw, f"raw TeX left in the text of {page.html}: {raw}"


def _pages_with_math() -> list[str]:
    return sorted(
        path.relative_to(BUILD).as_posix()
        for path in BUILD.rglob("*.html")
        if 'class="math' in path.read_text(errors="replace")
    )


def test_mathjax_is_served_with_the_site(site_dir):
    """One local MathJax script on every page with math, and the file is in the build."""
    pages = _pages_with_math()
    assert pages, "no page of the book has math"
    for name in pages:
        html = (site_dir / name).read_text()
        sources = MATHJAX_SCRIPT.findall(html)
        assert len(sources) == 1, f"{name} loads MathJax {len(sources)} times: {sources}"
        src = sources[0].split("?")[0]
        assert "://" not in src and not src.startswith("//"), f"{name} loads MathJax from {src}"
        assert ((site_dir / name).parent / src).resolve().is_file(), f"{name}: {src} missing"


def test_math_is_typeset_from_disk_without_network(browser, site_dir):
    """A person opening _build/html from disk (file://), offline, sees typeset math."""
    name = _pages_with_math()[0]
    context = browser.new_context()
    context.set_offline(True)
    tab = context.new_page()
    try:
        tab.goto((site_dir / name).as_uri(), wait_until="load")
        assert tab.evaluate(WAIT_FOR_MATHJAX), f"MathJax did not start on {name} from disk"
        counts = tab.evaluate(
            """() => [document.querySelectorAll('span.math, div.math').length,
                      document.querySelectorAll('mjx-container').length,
                      document.querySelectorAll('mjx-merror').length]"""
        )
        # MathJax's own web fonts must load too, or the formulas render as tofu.
        fonts = tab.evaluate(
            """async () => { await document.fonts.ready;
                return Array.from(document.fonts).filter(f => f.family.startsWith('MJX'))
                    .map(f => [f.family, f.status]); }"""
        )
    finally:
        context.close()
    formulas, typeset, errors = counts
    assert formulas > 0 and typeset >= formulas and errors == 0, (name, counts)
    loaded = [family for family, status in fonts if status == "loaded"]
    failed = [family for family, status in fonts if status == "error"]
    assert "MJXTEX" in loaded and not failed, f"MathJax fonts from disk: {fonts}"
