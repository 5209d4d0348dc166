"""Book chapters are self-contained notebooks that run as on Colab.

Each chapter is committed without outputs, imports nothing but the standard library and
the packages Colab ships (numpy, torch, matplotlib, scikit-learn, tqdm, torchvision; myst_nb only
behind an ImportError fallback), and executes top to bottom in a temporary folder where
the course package cannot be imported. `make chapter-times` prints how long each takes.
"""

from __future__ import annotations

import ast
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(BOOK.glob("[0-9][0-9]_*.ipynb"))
# torchvision only for chapter 1's optional MNIST run (off by default; Colab has it).
COLAB_PACKAGES = {"numpy", "torch", "torchvision", "matplotlib", "sklearn", "tqdm"}
PROBE = (
    "import importlib.util\n"
    "print('autograder importable:', importlib.util.find_spec('autograder') is not None)"
)


def _code(nb) -> str:
    """The chapter's Python code, IPython magics (lines starting with %) removed."""
    lines = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            lines += [line for line in cell.source.splitlines() if not line.startswith("%")]
            lines.append("")
    return "\n".join(lines)


def _unguarded_imports(tree: ast.AST) -> set[str]:
    """Top-level module names imported outside a `try` block."""
    guarded = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.Try)
        for stmt in block.body
        for node in ast.walk(stmt)
    }
    names = set()
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_there_are_six_chapters():
    assert [p.stem[:2] for p in CHAPTERS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_is_committed_without_outputs(chapter):
    nb = nbformat.read(chapter, as_version=4)
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert not [cell.id for cell in code_cells if cell.outputs]
    assert not [cell.id for cell in code_cells if cell.execution_count is not None]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_imports_only_what_colab_has(chapter):
    tree = ast.parse(_code(nbformat.read(chapter, as_version=4)))
    foreign = _unguarded_imports(tree) - COLAB_PACKAGES - set(sys.stdlib_module_names)
    assert not foreign, f"{chapter.name} imports {sorted(foreign)}, which Colab does not have"


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_runs_without_the_course_package(chapter, tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.chdir(tmp_path)
    nb = nbformat.read(chapter, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    started = time.perf_counter()
    # Cells tagged raises-exception may raise; any other error fails the run.
    NotebookClient(nb, timeout=300, resources={"metadata": {"path": str(tmp_path)}}).execute()
    seconds = time.perf_counter() - started
    print(f"\n{chapter.stem}: executed in {seconds:.1f} s")
    assert nb.cells[-1].outputs[0]["text"] == "autograder importable: False\n"
