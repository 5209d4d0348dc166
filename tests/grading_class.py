"""Synthetic classes of submissions and the expected scores, for the grading CLI's tests.

Expected points come from running the hidden tests' checks in the same process as the
submission's code, as plain nbgrader does in its kernel: an independent route to the
scores the sandboxed grader must reproduce for honest submissions.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.nbgrader_course import (
    EXERCISES,
    SOLUTIONS,
    apply_mutant,
    fill_in,
    mutants,
    notebook_path,
    strip_markers,
)

REPO = Path(__file__).resolve().parents[1]


def needs_sandbox():
    """pytest mark: skip where bubblewrap cannot run, except in CI (which installs it)."""
    from autograder.sandbox import check_support

    reason = check_support()
    return pytest.mark.skipif(
        reason is not None and not os.environ.get("CI"), reason=f"sandbox unavailable: {reason}"
    )


def exercise(assignment: str):
    return nbformat.read(notebook_path(EXERCISES, assignment), as_version=4)


def solution(assignment: str):
    return nbformat.read(notebook_path(SOLUTIONS, assignment), as_version=4)


def solved(assignment: str, mutant=None):
    """The student version filled in with the solution, or with a mutant of it."""
    source = solution(assignment)
    if mutant is not None:
        source = apply_mutant(source, mutant)
    return fill_in(exercise(assignment), source)


def mutant_named(assignment: str, index: int):
    return mutants(assignment)[index]


def expected_points(assignment: str, notebook) -> dict[str, float]:
    """Points per hidden test when the checks run in the submission's own process.

    Runs the notebook's code cells in order and each hidden test of the source notebook at
    the position of its cell (matched by grade_id), the way nbgrader's autograde does.
    """
    from autograder.checks.core import Failure

    tests = {}
    for cell in solution(assignment).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            tests[meta["grade_id"]] = (strip_markers(cell.source), float(meta["points"]))
    namespace = {"__name__": "__main__"}
    points = {}
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        source = tests[grade_id][0] if grade_id in tests else cell.source
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(source, namespace)
        except (Exception, Failure):  # noqa: BLE001 (a failed cell is an outcome)
            if grade_id in tests:
                points[grade_id] = 0.0
            continue
        if grade_id in tests:
            points[grade_id] = tests[grade_id][1]
    return points


def write_submissions(folder: Path, notebooks: dict[tuple[str, str], object]) -> None:
    """nbgrader's layout: <folder>/<student>/<assignment>/<assignment>.ipynb."""
    for (student, assignment), notebook in notebooks.items():
        path = folder / student / assignment / f"{assignment}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(notebook, bytes | str):
            path.write_bytes(notebook if isinstance(notebook, bytes) else notebook.encode())
        else:
            nbformat.write(notebook, path)


def autograder(grading: Path, *args: str, env=None, timeout=900) -> subprocess.CompletedProcess:
    """Run ``python -m autograder --grading-dir GRADING ARGS``."""
    return subprocess.run(
        [sys.executable, "-m", "autograder", "--grading-dir", str(grading), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=timeout,
    )


def reports(grading: Path) -> dict[tuple[str, str], dict]:
    """(student, assignment) -> the report the grader wrote."""
    found = {}
    for path in (grading / "reports").glob("*/*.json"):
        found[path.stem, path.parent.name] = json.loads(path.read_text())
    return found
