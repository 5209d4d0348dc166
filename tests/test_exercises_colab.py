"""Each exercise, answers filled in, runs top to bottom and passes its visible tests where
the course package cannot be imported, as on Colab."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests.nbgrader_course import EXERCISES, SOLUTIONS, assignments, error_text, fill_in
from tests.nbgrader_course import notebook_path as path_of

pytestmark = pytest.mark.slow

PROBE = (
    "import importlib.util\n"
    "print('autograder importable:', importlib.util.find_spec('autograder') is not None)"
)


@pytest.mark.parametrize("assignment", assignments())
def test_filled_in_exercise_runs_without_the_course_package(assignment, tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.chdir(tmp_path)
    exercise = nbformat.read(path_of(EXERCISES, assignment), as_version=4)
    solution = nbformat.read(path_of(SOLUTIONS, assignment), as_version=4)
    nb = fill_in(exercise, solution)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    NotebookClient(
        nb, timeout=120, allow_errors=True, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    failed = {
        cell.get("id"): error_text(cell)
        for cell in nb.cells
        if any(output.output_type == "error" for output in cell.get("outputs", []))
    }
    assert not failed, f"cells that raised: {failed}"
    assert "autograder importable: False" in error_text(nb.cells[-1])
