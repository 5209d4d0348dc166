"""Accessibility: axe-core finds no serious or critical problem; headings are in order."""

from __future__ import annotations

from urllib.parse import urljoin

import pytest
from builtsite import AXE_JS, RUN_AXE, WAIT_FOR_MATHJAX, Page, toc_pages

PAGES = toc_pages()
IDS = [page.docname for page in PAGES]
BLOCKING = ("serious", "critical")


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_no_serious_axe_violation(visit_page, page: Page):
    violations = [v for v in visit_page(page).axe_violations if v["impact"] in BLOCKING]
    report = [f"{v['impact']} {v['id']}: {v['help']} at {v['targets']}" for v in violations]
    assert not report, f"axe-core on {page.html}:\n" + "\n".join(report)


def test_code_cells_and_outputs_pass_axe(tab, base_url, built_pages):
    """Code cells and outputs, left out of the per-page run, checked on the first chapter."""
    chapter = next((page for page in built_pages if page.is_chapter), None)
    if chapter is None:
        pytest.skip("no chapter notebook is built yet")
    tab.goto(urljoin(base_url, chapter.html), wait_until="load")
    tab.evaluate(WAIT_FOR_MATHJAX)
    assert tab.locator(".highlight").count() > 0, f"{chapter.html} shows no code"
    tab.add_script_tag(path=str(AXE_JS))
    context = {"include": [[".highlight"], [".cell_output"]], "exclude": [["mjx-container"]]}
    violations = [v for v in tab.evaluate(RUN_AXE, context) if v["impact"] in BLOCKING]
    report = [f"{v['impact']} {v['id']}: {v['help']} at {v['targets']}" for v in violations]
    assert not report, f"axe-core on the code of {chapter.html}:\n" + "\n".join(report)


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_headings_are_in_order(visit_page, page: Page):
    """One visible h1, and no level skipped on the way down (h2 -> h4)."""
    headings = visit_page(page).dom["headings"]
    h1 = [text for level, text in headings if level == 1]
    assert len(h1) == 1, f"{page.html} has {len(h1)} visible h1: {h1}"
    assert headings[0][0] == 1, f"{page.html} starts with h{headings[0][0]}, not h1"
    for (before, _), (level, text) in zip(headings, headings[1:], strict=False):
        assert level <= before + 1, f"{page.html}: h{level} {text!r} follows an h{before}"
