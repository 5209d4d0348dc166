"""exercises/ is exactly what nbgrader generates from solutions/, and gives nothing away."""

from __future__ import annotations

import re

import nbformat
import pytest
from nbgrader.validator import Validator

from tests.nbgrader_course import (
    EXERCISES,
    MARKERS,
    REPO,
    SOLUTIONS,
    assignments,
    new_course,
    notebook_path,
)

ASSIGNMENTS = assignments()
NOTEBOOKS = sorted(SOLUTIONS.glob("*/*.ipynb")) + sorted(EXERCISES.glob("*/*.ipynb"))
LEAKS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def solution_lines(solution) -> set[str]:
    """Lines written between the solution markers and nowhere else in the source notebook."""
    inside, outside = set(), set()
    for cell in solution.cells:
        if cell.cell_type != "code":
            continue
        in_solution = False
        for line in cell.source.split("\n"):
            stripped = line.strip()
            if stripped in MARKERS:
                in_solution = stripped == MARKERS[0]
            elif stripped:
                (inside if in_solution else outside).add(stripped)
    return {line for line in inside - outside if len(line) > 12}


def test_assignments_exist():
    assert ASSIGNMENTS, "no solutions/<id>/<id>.ipynb found"
    released = sorted(p.parent.name for p in EXERCISES.glob("*/*.ipynb"))
    assert released == ASSIGNMENTS, "exercises/ and solutions/ hold different assignments"


@pytest.mark.slow
def test_exercises_are_what_nbgrader_generates(tmp_path):
    generated = new_course(tmp_path / "course").root / "exercises"
    committed_files = sorted(p.relative_to(EXERCISES) for p in EXERCISES.rglob("*") if p.is_file())
    generated_files = sorted(p.relative_to(generated) for p in generated.rglob("*") if p.is_file())
    assert committed_files == generated_files
    stale = [
        str(path)
        for path in committed_files
        if (EXERCISES / path).read_bytes() != (generated / path).read_bytes()
    ]
    assert not stale, f"exercises/ is out of date, run `make exercises`: {stale}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: str(p.relative_to(REPO)))
def test_notebooks_have_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {cell.get('id')} has outputs"
            assert cell.execution_count is None, f"cell {cell.get('id')} has an execution count"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_exercise_contains_no_solution_or_hidden_test(assignment):
    text = notebook_path(EXERCISES, assignment).read_text()
    for marker in LEAKS:
        assert marker not in text
    assert not re.search(r"\bautograder\b", text), "the student version mentions autograder"
    exercise = nbformat.read(notebook_path(EXERCISES, assignment), as_version=4)
    released = {
        line.strip()
        for cell in exercise.cells
        if cell.cell_type == "code"
        for line in cell.source.split("\n")
    }
    solution = nbformat.read(notebook_path(SOLUTIONS, assignment), as_version=4)
    lines = solution_lines(solution)
    assert lines, "found no solution code between the markers"
    leaked = sorted(lines & released)
    assert not leaked, f"solution lines in the student version: {leaked}"


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_passes_nbgrader_validate(assignment, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the hidden tests import autograder
    results = Validator().validate(str(notebook_path(SOLUTIONS, assignment)))
    problems = [item.get("raw_error", item) for found in results.values() for item in found]
    assert results == {}, f"nbgrader validate: {sorted(results)}\n" + "\n\n".join(
        str(problem) for problem in problems
    )
