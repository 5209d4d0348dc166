"""Every TOC page loads cleanly in a browser, shows its figures, and can be navigated."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import pytest
from builtsite import BUILD, Page, toc_docnames, toc_pages
from leaks import readable_text

PAGES = toc_pages()
IDS = [page.docname for page in PAGES]
ALLOWED_EXTERNAL = ("https://colab.research.google.com/assets/colab-badge.svg",)


def test_every_toc_page_is_built(site_dir):
    """Each TOC entry whose source exists is a page of the site (make book to rebuild)."""
    missing = [page.html for page in PAGES if not (site_dir / page.html).is_file()]
    assert not missing, f"in the TOC with a source, but not in the build: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_page_loads_without_errors(visit_page, page: Page):
    errors, failed = visit_page(page).console_errors, visit_page(page).failed_local
    assert not errors, f"console errors on {page.html}: {errors}"
    assert not failed, f"failed requests on {page.html}: {failed}"


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_page_requests_no_other_host(visit_page, page: Page):
    """Everything a page needs is in _build/html, so the site works offline.

    The one exception is Colab's "Open in Colab" badge: the link it decorates needs the
    network anyway, and offline its alt text stands in for it.
    """
    external = [url for url in visit_page(page).external_requests if url not in ALLOWED_EXTERNAL]
    assert not external, f"{page.html} requests {external}"


@pytest.mark.parametrize("page", PAGES, ids=IDS)
def test_images_are_loaded_and_described(visit_page, page: Page):
    images = visit_page(page).dom["images"]
    # The tests' browser reaches no other host: test_page_requests_no_other_host covers those.
    local = [img for img in images if "://" not in (img["src"] or "")]
    broken = [img["src"] for img in local if not img["complete"] or img["naturalWidth"] == 0]
    assert not broken, f"images that did not load on {page.html}: {broken}"
    # Notebook outputs get their file name as alt text unless the author gives one.
    undescribed = [
        img["src"]
        for img in images
        if not (img["alt"] or "").strip()
        or re.search(r"\.(png|jpe?g|svg|gif)$", img["alt"].strip(), re.IGNORECASE)
    ]
    assert not undescribed, f"images without a real alt text on {page.html}: {undescribed}"


def test_every_built_content_page_is_in_the_toc(site_dir):
    """Nothing outside the TOC is published (only_build_toc_files)."""
    toc = {f"{name}.html" for name in toc_docnames()}
    sphinx_pages = {"index.html", "genindex.html", "search.html"}
    built = {
        path.relative_to(site_dir).as_posix()
        for path in site_dir.rglob("*.html")
        if not path.relative_to(site_dir).parts[0].startswith("_")
    }
    extra = built - sphinx_pages - toc
    assert not extra, f"pages not in _toc.yml: {sorted(extra)}"


def test_previous_and_next_links_follow_the_toc(visit_page, base_url, built_pages):
    assert len(built_pages) >= 2, "the site has fewer than two pages"
    urls = [urljoin(base_url, page.html) for page in built_pages]
    for index, page in enumerate(built_pages):
        dom = visit_page(page).dom
        expected_next = urls[index + 1 : index + 2]
        expected_prev = urls[index - 1 : index] if index else []
        next_links = [href.split("#")[0] for href in dom["next"]]
        prev_links = [href.split("#")[0] for href in dom["prev"]]
        assert next_links == expected_next, f"next link on {page.html}"
        assert prev_links == expected_prev, f"previous link on {page.html}"


def test_sidebar_links_every_page(visit_page, base_url, built_pages):
    sidebar = {href.split("#")[0] for href in visit_page(built_pages[0]).dom["sidebar"]}
    expected = {urljoin(base_url, page.html) for page in built_pages}
    assert expected <= sidebar, f"pages missing from the sidebar: {sorted(expected - sidebar)}"


def test_clicking_next_and_a_sidebar_entry_navigates(tab, base_url, built_pages):
    assert len(built_pages) >= 2, "the site has fewer than two pages"
    tab.goto(urljoin(base_url, built_pages[0].html))
    tab.click("a.right-next")
    tab.wait_for_load_state("load")
    assert tab.url.split("#")[0] == urljoin(base_url, built_pages[1].html)
    last = built_pages[-1]
    tab.click(f'nav.bd-docs-nav a[href$="{last.html.rsplit("/", 1)[-1]}"]')
    tab.wait_for_load_state("load")
    assert tab.url.split("#")[0] == urljoin(base_url, last.html)


def _pages_containing(word: str) -> set[str]:
    """Built pages whose text (executed outputs included) contains `word`."""
    return {
        page.html
        for page in PAGES
        if (BUILD / page.html).is_file()
        and word.lower() in readable_text(BUILD / page.html).lower()
    }


def test_search_finds_a_word_from_the_book(tab, base_url):
    word = "momentum"  # a term of the notation page, used throughout the course
    expected = _pages_containing(word)
    assert "book/notation.html" in expected, f"the notation page no longer says {word!r}"
    tab.goto(urljoin(base_url, f"search.html?q={word}"))
    # Sphinx lists results one by one, then says how many it found.
    finished = "/found \\d+ page|did not match/"
    tab.wait_for_function(
        f"() => {finished}.test(document.querySelector('#search-results')?.textContent)",
        timeout=15_000,
    )
    found = {
        href.removeprefix(base_url).split("#")[0].split("?")[0]
        for href in tab.eval_on_selector_all(
            "#search-results ul.search li a", "links => links.map(a => a.href)"
        )
    }
    assert found <= expected, f"results for {word!r} without the word: {found - expected}"
    assert expected <= found, f"pages with {word!r} not found by search: {expected - found}"
