"""Grade one synthetic class twice, with plain nbgrader and with the course's grader.

    python -m tests.benchmark_grading [--students 60] [--workers 2]   (make benchmark-grading)

The class has every assignment for every student, mixing correct answers, wrong ones (the
mutants of tests/mutants/) and broken notebooks (untouched, a syntax error, a name error).
Plain nbgrader grades it sequentially, one `nbgrader autograde` per assignment; then
`python -m autograder grade` grades the same notebooks. Printed: seconds per notebook for
each (wall-clock time over the whole class, and the median time of one notebook), the
speed-up, and whether every graded part got the same score from both.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nbformat

from tests.grading_class import autograder, exercise, reports, solved
from tests.nbgrader_course import assignments, mutants, new_course

BROKEN = {
    "untouched": None,
    "syntax error": "def oops(:\n",
    "name error": "undefined_name_in_a_cell\n",
}


def synthesize(students: int) -> dict[tuple[str, str], object]:
    """(student, assignment) -> notebook: 60% correct, 30% a mutant, 10% broken."""
    notebooks = {}
    for assignment in assignments():
        wrong = mutants(assignment)
        for number in range(students):
            student = f"student{number:03d}"
            kind = number % 10
            if kind < 6:
                notebook = solved(assignment)
            elif kind < 9:
                notebook = solved(assignment, wrong[(number * 7 + kind) % len(wrong)])
            else:
                broken = list(BROKEN.values())[number // 10 % len(BROKEN)]
                notebook = exercise(assignment)
                if broken is not None:
                    notebook.cells.insert(2, nbformat.v4.new_code_cell(broken))
            notebooks[student, assignment] = notebook
    return notebooks


def nbgrader_scores(course) -> dict[tuple[str, str, str], float]:
    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook(f"sqlite:///{course.root / 'grading' / 'gradebook.db'}") as gradebook:
        for assignment in assignments():
            for submission in gradebook.assignment_submissions(assignment):
                for grade in submission.notebooks[0].grades:
                    scores[submission.student.id, assignment, grade.name] = grade.score
    return scores


def notebook_times(course) -> list[float]:
    """Seconds between consecutive autograded notebooks written by nbgrader, per assignment."""
    gaps = []
    for assignment in assignments():
        written = sorted(
            p.stat().st_mtime
            for p in (course.root / "grading" / "autograded").glob(f"*/{assignment}/*.ipynb")
        )
        gaps += [b - a for a, b in zip(written, written[1:], strict=False)]
    return gaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="grading-benchmark-"))
    try:
        notebooks = synthesize(args.students)
        count = len(notebooks)
        print(f"class: {args.students} students x {len(assignments())} assignments = {count}")

        course = new_course(root / "nbgrader")
        for (student, assignment), notebook in notebooks.items():
            course.submit(student, assignment, notebook)
        started = time.monotonic()
        for assignment in assignments():
            course.nbgrader("autograde", assignment)
        nbgrader_wall = time.monotonic() - started
        nbgrader_median = statistics.median(notebook_times(course))
        expected = nbgrader_scores(course)

        grading = root / "cli"
        incoming = root / "incoming"
        shutil.copytree(course.root / "grading" / "submitted", incoming)
        assert autograder(grading, "collect", str(incoming)).returncode == 0
        started = time.monotonic()
        run = autograder(grading, "grade", "--workers", str(args.workers), "--quiet")
        cli_wall = time.monotonic() - started
        assert run.returncode == 0, run.stderr
        results = reports(grading)
        cli_median = statistics.median(r["seconds"] for r in results.values())
        got = {
            (student, assignment, test["grade_id"]): test["points"]
            for (student, assignment), report in results.items()
            for test in report["tests"]
        }
        differences = sorted(
            k for k in expected.keys() | got.keys() if expected.get(k) != got.get(k)
        )

        print(f"{'':34}{'plain nbgrader':>16}{'autograder':>14}")
        print(f"{'wall-clock seconds, whole class':34}{nbgrader_wall:16.1f}{cli_wall:14.1f}")
        print(
            f"{'seconds per notebook (wall/count)':34}"
            f"{nbgrader_wall / count:16.3f}{cli_wall / count:14.3f}"
        )
        print(f"{'median seconds of one notebook':34}{nbgrader_median:16.3f}{cli_median:14.3f}")
        print(f"speed-up (wall-clock): {nbgrader_wall / cli_wall:.1f}x with {args.workers} workers")
        print(f"graded parts compared: {len(expected)}; different scores: {len(differences)}")
        for key in differences[:20]:
            print(f"  {key}: nbgrader {expected.get(key)}, autograder {got.get(key)}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
