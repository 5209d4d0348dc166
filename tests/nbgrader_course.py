"""A throw-away nbgrader course built from this repository, graded through the real CLI.

`graded_course()` copies the nbgrader configuration and every `solutions/<assignment>/`
notebook into a temporary course folder, generates the student versions, submits a set of
students per assignment and autogrades each assignment once (one nbgrader call grades all
of its students, which amortises the start-up cost), then exports the grades. The students:

* ``solution``: the student version with the reference answers filled in;
* ``untouched``: the student version as released;
* ``mutantNN``: the answers of one mutant from ``tests/mutants/<assignment>.py``.

The course is built once per test session and shared by the pipeline and mutation tests.
"""

from __future__ import annotations

import atexit
import csv
import functools
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from tests.mutants import Mutant

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"
EXERCISES = REPO / "exercises"
CONFIG = REPO / "autograder" / "nbgrader_config.py"
BIN = Path(sys.executable).parent
MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
AUTOGRADE_PROCESSES = 2


def assignments() -> list[str]:
    """Assignment ids: the folders `solutions/<id>/` that hold `<id>.ipynb`."""
    return sorted(p.parent.name for p in SOLUTIONS.glob("*/*.ipynb") if p.stem == p.parent.name)


def notebook_path(folder: Path, assignment: str) -> Path:
    return folder / assignment / f"{assignment}.ipynb"


def mutants(assignment: str) -> list[Mutant]:
    """The mutants of `tests/mutants/<assignment>.py`, or none if the file does not exist."""
    if not (REPO / "tests" / "mutants" / f"{assignment}.py").exists():
        return []
    return list(importlib.import_module(f"tests.mutants.{assignment}").MUTANTS)


def is_locked(cell) -> bool:
    grade = cell.metadata.get("nbgrader", {})
    return bool(grade.get("locked") or grade.get("grade"))


def strip_markers(source: str) -> str:
    return "\n".join(line for line in source.split("\n") if line.strip() not in MARKERS)


def apply_mutant(solution, mutant: Mutant):
    """A copy of the solution notebook with `mutant.old` replaced by `mutant.new`."""
    mutated = nbformat.from_dict(solution)
    code = [cell for cell in mutated.cells if cell.cell_type == "code"]
    count = sum(cell.source.count(mutant.old) for cell in code)
    assert count == 1, f"mutant {mutant.name!r}: `old` occurs {count} times, expected once"
    for cell in code:
        cell.source = cell.source.replace(mutant.old, mutant.new)
    return mutated


def fill_in(exercise, solution):
    """The student version with every editable cell taken from `solution`.

    Locked cells (given code, visible and hidden tests) stay as released, as they would in
    a learner's copy; editable cells get the solution's source without the nbgrader markers.
    """
    filled = nbformat.from_dict(exercise)
    assert len(filled.cells) == len(solution.cells), "exercise and solution differ in cells"
    for cell, source_cell in zip(filled.cells, solution.cells, strict=True):
        assert cell.get("id") == source_cell.get("id"), "exercise and solution cells differ"
        if cell.cell_type == "code" and not is_locked(cell):
            cell.source = strip_markers(source_cell.source)
    return filled


def error_text(cell) -> str:
    """The error name, message and traceback a cell printed, without colour codes."""
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "error":
            parts += [output.ename, output.evalue, *output.traceback]
        elif output.output_type == "stream":
            parts.append(output.text)
    return ANSI.sub("", "\n".join(parts))


@dataclass
class Course:
    """A temporary nbgrader course folder and the nbgrader CLI run on it."""

    root: Path
    mutant_students: dict[str, dict[str, Mutant]] = field(default_factory=dict)

    def nbgrader(self, *args: str) -> subprocess.CompletedProcess:
        env = dict(os.environ)
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # nbgrader runs alembic
        env["PYTHONPATH"] = str(REPO)  # hidden tests import autograder.checks
        config = self.root / "autograder" / "nbgrader_config"
        result = subprocess.run(
            [str(BIN / "nbgrader"), *args, f"--NbGrader.config_file={config}"],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stderr}"
        return result

    def submit(self, student: str, assignment: str, nb) -> None:
        """Place a notebook where `nbgrader collect` puts a student's submission."""
        folder = self.root / "grading" / "submitted" / student / assignment
        folder.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, folder / f"{assignment}.ipynb")

    def released(self, assignment: str):
        return nbformat.read(notebook_path(self.root / "exercises", assignment), as_version=4)

    def autograded(self, student: str, assignment: str):
        path = notebook_path(self.root / "grading" / "autograded" / student, assignment)
        return nbformat.read(path, as_version=4)

    def grades(self, assignment: str, student: str) -> dict[str, tuple[float, float]]:
        """(score, max_score) of every graded cell of a student's autograded notebook."""
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{self.root / 'grading' / 'gradebook.db'}") as gradebook:
            notebook = gradebook.find_submission_notebook(assignment, assignment, student)
            return {grade.name: (grade.score, grade.max_score) for grade in notebook.grades}

    def feedback_text(self, assignment: str, student: str) -> str:
        """The error output of every graded cell that lost points."""
        grades = self.grades(assignment, student)
        texts = []
        for cell in self.autograded(student, assignment).cells:
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id in grades and grades[grade_id][0] < grades[grade_id][1]:
                texts.append(error_text(cell))
        return "\n".join(texts)

    def exported(self) -> list[dict[str, str]]:
        path = self.root / "grading" / "grades.csv"
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle))


def new_course(root: Path) -> Course:
    """A course at `root` with this repository's configuration and solutions/, and the
    student versions generated from them by nbgrader."""
    (root / "autograder").mkdir(parents=True)
    shutil.copy(CONFIG, root / "autograder" / "nbgrader_config.py")
    for assignment in assignments():
        shutil.copytree(SOLUTIONS / assignment, root / "solutions" / assignment)
    course = Course(root)
    course.nbgrader("generate_assignment", "*", "--force")
    return course


def _build(root: Path) -> Course:
    course = new_course(root)
    for assignment in assignments():
        solution = nbformat.read(notebook_path(SOLUTIONS, assignment), as_version=4)
        released = course.released(assignment)
        course.submit("solution", assignment, fill_in(released, solution))
        course.submit("untouched", assignment, released)
        course.mutant_students[assignment] = {}
        for number, mutant in enumerate(mutants(assignment)):
            student = f"mutant{number:02d}"
            course.submit(student, assignment, fill_in(released, apply_mutant(solution, mutant)))
            course.mutant_students[assignment][student] = mutant
    # One autograde call per assignment, two at a time (one per core): nbgrader grades
    # sequentially, and separate processes share the SQLite gradebook without trouble.
    with ThreadPoolExecutor(max_workers=AUTOGRADE_PROCESSES) as pool:
        list(pool.map(lambda assignment: course.nbgrader("autograde", assignment), assignments()))
    course.nbgrader("export")
    return course


@functools.cache
def graded_course() -> Course:
    """The course, built and graded on first use and shared by every test of the session."""
    folder = Path(tempfile.mkdtemp(prefix="nbgrader-course-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return _build(folder / "course")
