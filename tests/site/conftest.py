"""Fixtures for the browser tests of the built site.

The tests need a built book in _build/html (`make test` builds it from clean first). Run
outside `make test` without a build, they are skipped with a message; under CI (CI=true) a
missing build, browser or npm package is a failure.

Each TOC page is visited once per session; what the visit saw (console errors, requests,
images, math, headings, links, axe-core's findings) is kept in a `Visit`, which the tests
in this folder share.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urljoin

import pytest
from builtsite import (
    AXE_EXCLUDE,
    AXE_JS,
    BUILD,
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    RUN_AXE,
    WAIT_FOR_MATHJAX,
    Page,
    serve,
    toc_pages,
)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Chromium asks every site for /favicon.ico on its own; the book declares no icon.
IMPLICIT_REQUESTS = ("/favicon.ico",)


def missing(reason: str):
    """Fail under CI, skip elsewhere: a local run without a build is not an error."""
    if IN_CI:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@dataclass
class Visit:
    """What a browser saw while loading one page, with MathJax finished."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    failed_local: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    dom: dict = field(default_factory=dict)
    axe_violations: list[dict] = field(default_factory=list)


# Resolves when every image has loaded or failed and the web fonts are ready.
WAIT_FOR_IMAGES_AND_FONTS = """async () => {
    await Promise.all(Array.from(document.images).map(img => img.complete ? null :
        new Promise(resolve => { img.onload = img.onerror = resolve; })));
    await document.fonts.ready;
}"""

# Everything the tests read from a page's DOM, gathered in one round trip.
COLLECT_DOM = """() => {
    const article = document.querySelector('article.bd-article') || document.body;
    const visible = el => el.checkVisibility();
    const skip = 'pre, code, script, style, mjx-container, .highlight, .MathJax';
    const texts = [];
    const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        const node = walker.currentNode;
        if (!node.parentElement.closest(skip)) texts.push(node.textContent);
    }
    const hrefs = selector => Array.from(document.querySelectorAll(selector))
        .map(a => a.getAttribute('href') ? a.href : null).filter(Boolean);
    return {
        images: Array.from(article.querySelectorAll('img')).map(img => ({
            src: img.getAttribute('src'), alt: img.getAttribute('alt'),
            naturalWidth: img.naturalWidth, complete: img.complete})),
        mathElements: document.querySelectorAll('span.math, div.math').length,
        mathTypeset: document.querySelectorAll(
            'span.math mjx-container, div.math mjx-container').length,
        mathErrors: document.querySelectorAll('mjx-merror').length,
        prose: texts.join(' '),
        headings: Array.from(document.querySelectorAll('h1, h2, h3, h4, h5, h6'))
            .filter(visible)
            .map(h => [Number(h.tagName[1]), h.textContent.replace('#', '').trim()]),
        colabLinks: Array.from(document.querySelectorAll('a[href*="colab.research.google.com"]'))
            .map(a => ({href: a.href, text: a.textContent.trim(),
                        launchButton: !!a.closest('.dropdown-launch-buttons')})),
        downloads: hrefs('.dropdown-download-buttons a[href]'),
        next: hrefs('a.right-next'),
        prev: hrefs('a.left-prev'),
        sidebar: hrefs('nav.bd-docs-nav a'),
    };
}"""


def _visit(browser, base_url: str, url: str) -> Visit:
    visit = Visit(url=url)
    context = browser.new_context(viewport=DESKTOP)
    tab = context.new_page()

    def is_local(address: str) -> bool:
        return address.startswith(base_url) or address.startswith(("data:", "blob:", "about:"))

    def on_console(message) -> None:
        where = message.location.get("url", "")
        if message.type != "error" or where.endswith(IMPLICIT_REQUESTS):
            return
        if where and not is_local(where):
            return  # a blocked request to another host: reported by external_requests
        visit.console_errors.append(f"{message.text} ({where})")

    def on_request(request) -> None:
        if not is_local(request.url):
            visit.external_requests.append(request.url)

    def on_failed(request) -> None:
        if is_local(request.url) and not request.url.endswith(IMPLICIT_REQUESTS):
            visit.failed_local.append(f"{request.url}: {request.failure}")

    def on_response(response) -> None:
        if response.status >= 400 and is_local(response.url):
            if not response.url.endswith(IMPLICIT_REQUESTS):
                visit.failed_local.append(f"{response.url}: HTTP {response.status}")

    tab.on("console", on_console)
    tab.on("pageerror", lambda error: visit.console_errors.append(f"uncaught: {error}"))
    tab.on("request", on_request)
    tab.on("requestfailed", on_failed)
    tab.on("response", on_response)
    try:
        tab.goto(url, wait_until="load")
        tab.evaluate(WAIT_FOR_MATHJAX)
        tab.evaluate(WAIT_FOR_IMAGES_AND_FONTS)
        visit.dom = tab.evaluate(COLLECT_DOM)
        tab.add_script_tag(path=str(AXE_JS))
        visit.axe_violations = tab.evaluate(RUN_AXE, {"exclude": AXE_EXCLUDE})
    finally:
        context.close()
    return visit


@pytest.fixture(scope="session")
def site_dir():
    """The built site; skipped (failed under CI) when there is none."""
    if not (BUILD / "index.html").is_file():
        missing(f"no built site in {BUILD}: run `make book` first (`make test` builds it)")
    return BUILD


@pytest.fixture(scope="session")
def base_url(site_dir):
    """_build/html served over HTTP on 127.0.0.1."""
    with serve(site_dir) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    """One headless chromium for the session, unable to reach any host but 127.0.0.1."""
    if not CHROMIUM.is_file():
        missing(f"{CHROMIUM} is missing: run `make system-deps` (Debian's chromium)")
    if not AXE_JS.is_file():
        missing(f"{AXE_JS} is missing: run `make site-assets` (npm packages)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        args = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=args
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def visit_page(browser, base_url, site_dir):
    """visit_page(page) -> Visit, loading each page once per session."""
    cache: dict[str, Visit] = {}

    def visit(page: Page) -> Visit:
        if page.docname not in cache:
            if not (site_dir / page.html).is_file():
                pytest.skip(f"{page.html} was not built (test_every_toc_page_is_built fails)")
            cache[page.docname] = _visit(browser, base_url, urljoin(base_url, page.html))
        return cache[page.docname]

    return visit


@pytest.fixture(scope="session")
def built_pages(site_dir) -> list[Page]:
    """The TOC's pages that are in the build, in reading order."""
    return [page for page in toc_pages() if (site_dir / page.html).is_file()]


@pytest.fixture
def tab(browser):
    """A fresh browser tab at desktop size, for tests that click and type."""
    context = browser.new_context(viewport=DESKTOP)
    yield context.new_page()
    context.close()
