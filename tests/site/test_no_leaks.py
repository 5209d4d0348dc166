"""The site publishes no solution code, no hidden test and no grading code."""

from __future__ import annotations

import json
import re

import pytest
from builtsite import REPO
from leaks import MARKERS, leaks, published_texts, secret_blocks

SOLUTIONS = sorted((REPO / "solutions").glob("*/*.ipynb"))
GRADER_IMPORT = re.compile(r"^(from|import)\s+autograder\.checks\b", re.MULTILINE)


@pytest.fixture(scope="session")
def texts(site_dir) -> dict[str, str]:
    return published_texts(site_dir)


@pytest.mark.parametrize("notebook", SOLUTIONS, ids=[path.stem for path in SOLUTIONS])
def test_no_solution_or_hidden_test_is_published(texts, notebook):
    blocks = secret_blocks(notebook)
    assert blocks, f"{notebook.relative_to(REPO)} has no solution or hidden-test block"
    found = leaks(blocks, texts)
    assert not found, "\n".join(found)


def test_no_published_notebook_has_an_nbgrader_marker(texts):
    """Released notebooks have their marked blocks removed (pages may explain the markers)."""
    markers = [marker for pair in MARKERS.values() for marker in pair]
    notebooks = {name: text for name, text in texts.items() if name.endswith(".ipynb")}
    assert notebooks, "the site offers no notebook for download"
    found = [(name, m) for name, text in notebooks.items() for m in markers if m in text]
    assert not found, f"nbgrader markers in published notebooks: {found}"


def test_no_grading_code_is_imported_in_the_site(texts):
    found = [name for name, text in texts.items() if GRADER_IMPORT.search(text)]
    assert not found, f"`autograder.checks` imported in: {found}"


def test_no_page_is_built_from_solutions(site_dir):
    built = [
        path.relative_to(site_dir).as_posix()
        for path in site_dir.rglob("*")
        if "solutions" in path.relative_to(site_dir).parts
    ]
    assert not built, f"files from solutions/ in the site: {built}"


def test_the_leak_check_finds_a_planted_solution(tmp_path):
    """The check sees through HTML markup and notebook JSON, and passes a clean site."""
    solution = {
        "cells": [
            {
                "cell_type": "code",
                "source": [
                    "def f(x, eps=1e-5):\n",
                    "    ### BEGIN SOLUTION\n",
                    "    mu = x.mean(axis=0)\n",
                    "    return (x - mu) / np.sqrt(x.var(axis=0) + eps)\n",
                    "    ### END SOLUTION\n",
                ],
            },
            {
                "cell_type": "code",
                "source": "### BEGIN HIDDEN TESTS\nassert abs(f(x)).max() < 10\n"
                "### END HIDDEN TESTS",
            },
        ]
    }
    notebook = tmp_path / "solution.ipynb"
    notebook.write_text(json.dumps(solution))
    blocks = secret_blocks(notebook)
    assert [kind for kind, _ in blocks] == ["solution", "hidden tests"]

    site = tmp_path / "site"
    (site / "book").mkdir(parents=True)
    (site / "book" / "clean.html").write_text("<p>mu is the mean</p>")
    assert leaks(blocks, published_texts(site)) == []

    (site / "book" / "page.html").write_text(
        '<pre><span class="n">mu</span> = x.mean(axis=0)\n'
        "        <span>return</span> (x - mu) / np.sqrt(x.var(axis=0) + eps)</pre>"
    )
    (site / "_sources").mkdir()
    (site / "_sources" / "nb2.ipynb").write_text(
        json.dumps({"cells": [{"source": ["x = 1\n", "assert abs(f(x)).max() < 10\n"]}]})
    )
    found = leaks(blocks, published_texts(site))
    assert len(found) == 2, found
    assert "book/page.html" in found[0] and "_sources/nb2.ipynb" in found[1]
