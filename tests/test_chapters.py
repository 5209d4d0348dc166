"""Book chapters are self-contained notebooks that run as on Colab.

Each chapter is committed without outputs, imports nothing but the standard library and
the packages Colab ships (numpy, torch, matplotlib, scikit-learn, tqdm, torchvision; myst_nb only
behind an ImportError fallback), and executes top to bottom in a temporary folder where
the course package cannot be imported. `make chapter-times` prints how long each takes.
"""

from __future__ import annotations

import ast
import re
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


def _contrast_with_white(hex_colour: str) -> float:
    """WCAG 2 contrast ratio of an sRGB colour against white."""
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return 1.05 / (luminance + 0.05)


def test_contrast_formula_on_known_values():
    assert _contrast_with_white("#000000") == pytest.approx(21.0)
    assert _contrast_with_white("#ffffff") == pytest.approx(1.0)
    assert _contrast_with_white("#767676") == pytest.approx(4.54, abs=0.01)


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


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_plot_colours_stand_out_against_white(chapter):
    """Lines and markers need 3:1 contrast with the white background (WCAG 1.4.11)."""
    code = _code(nbformat.read(chapter, as_version=4))
    cycle = re.search(r'"axes\.prop_cycle": plt\.cycler\((.*?)\)', code, re.S)
    assert cycle, f"{chapter.name} does not set the course's colour cycle"
    colours = re.findall(r"#[0-9A-Fa-f]{6}", cycle.group(1))
    assert len(colours) >= 6
    weak = {c: round(_contrast_with_white(c), 2) for c in colours if _contrast_with_white(c) < 3}
    assert not weak, f"colours below 3:1 against white: {weak}"
