"""Colab buttons open the page's own notebook in the repository; downloads serve the source."""

from __future__ import annotations

import json
import urllib.request

import pytest
import yaml
from builtsite import REPO, Page, toc_pages

PAGES = toc_pages()
CHAPTERS = [page for page in PAGES if page.is_chapter]
EXERCISES = [page for page in PAGES if page.is_exercise]


def _colab_prefix() -> str:
    """Colab's URL for a file of this repository's branch, from _config.yml."""
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    repo_url = config["repository"]["url"].rstrip("/")
    owner_and_name = repo_url.removeprefix("https://github.com/")
    branch = config["repository"].get("branch", "main")
    return f"https://colab.research.google.com/github/{owner_and_name}/blob/{branch}/"


COLAB = _colab_prefix()


def _repo_path(href: str) -> str:
    """The repository path a Colab link opens, checked to be an existing notebook."""
    assert href.startswith(COLAB), f"Colab link outside {COLAB}: {href}"
    path = href.removeprefix(COLAB).split("?")[0].split("#")[0]
    assert path.endswith(".ipynb"), f"Colab cannot open {path} (not a notebook): {href}"
    assert not path.startswith("solutions/"), f"Colab link to a solution notebook: {href}"
    assert (REPO / path).is_file(), f"Colab link to {path}, which is not in the repository"
    return path


def _source_path(page: Page) -> str:
    return page.source.relative_to(REPO).as_posix()


@pytest.mark.parametrize("page", CHAPTERS, ids=[page.docname for page in CHAPTERS])
def test_chapter_has_a_colab_launch_button_for_itself(visit_page, page: Page):
    links = [link["href"] for link in visit_page(page).dom["colabLinks"] if link["launchButton"]]
    assert links, f"{page.html} has no Colab launch button"
    assert {_repo_path(href) for href in links} == {_source_path(page)}


@pytest.mark.parametrize("page", EXERCISES, ids=[page.docname for page in EXERCISES])
def test_exercise_opens_in_colab_as_released(visit_page, page: Page):
    links = [link["href"] for link in visit_page(page).dom["colabLinks"]]
    assert links, f"{page.html} has no Open in Colab link"
    assert {_repo_path(href) for href in links} == {_source_path(page)}


@pytest.mark.parametrize("page", PAGES, ids=[page.docname for page in PAGES])
def test_every_colab_link_opens_a_notebook_of_the_repository(visit_page, page: Page):
    for link in visit_page(page).dom["colabLinks"]:
        _repo_path(link["href"])


def _cell_sources(notebook: dict) -> list[str]:
    return [
        "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        for cell in notebook["cells"]
    ]


@pytest.mark.parametrize("page", PAGES, ids=[page.docname for page in PAGES])
def test_download_button_serves_the_page_source(visit_page, page: Page):
    downloads = visit_page(page).dom["downloads"]
    sources = [href for href in downloads if href.split("?")[0].endswith((".ipynb", ".md"))]
    assert sources, f"{page.html} offers no .ipynb or .md download: {downloads}"
    for href in sources:
        with urllib.request.urlopen(href, timeout=10) as response:
            assert response.status == 200, f"{href}: HTTP {response.status}"
            body = response.read().decode()
        expected = page.source.read_text()
        if page.is_notebook:
            same = _cell_sources(json.loads(body)) == _cell_sources(json.loads(expected))
        else:
            same = body == expected
        assert same, f"{href} differs from {_source_path(page)} (rebuild with `make book`)"
