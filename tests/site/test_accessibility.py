"""Accessibility: axe-core finds no serious or critical problem; headings are in order."""

from __future__ import annotations

import pytest
from builtsite import Page, toc_pages

PAGES = toc_pages()
IDS = [page.docname for page in PAGES]
BLOCKING = ("serious", "critical")


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_no_serious_axe_violation(visit_page, page: Page):
    violations = [v for v in visit_page(page).axe_violations if v["impact"] in BLOCKING]
    report = [f"{v['impact']} {v['id']}: {v['help']} at {v['targets']}" for v in violations]
    assert not report, f"axe-core on {page.html}:\n" + "\n".join(report)


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_headings_are_in_order(visit_page, page: Page):
    """One visible h1, and no level skipped on the way down (h2 -> h4)."""
    headings = visit_page(page).dom["headings"]
    h1 = [text for level, text in headings if level == 1]
    assert len(h1) == 1, f"{page.html} has {len(h1)} visible h1: {h1}"
    assert headings[0][0] == 1, f"{page.html} starts with h{headings[0][0]}, not h1"
    for (before, _), (level, text) in zip(headings, headings[1:], strict=False):
        assert level <= before + 1, f"{page.html}: h{level} {text!r} follows an h{before}"
