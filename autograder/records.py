"""Where grading keeps its records: submissions, reports, the gradebook, feedback, grades.

All of it lives in one grading folder (by default `grading/` in the course, git-ignored):

* ``submitted/<student>/<assignment>/<assignment>.ipynb``: collected submissions (nbgrader's
  layout), with ``timestamp.txt``;
* ``reports/<assignment>/<student>.json``: the full result of grading one submission
  (points and messages per test, cell errors and outputs, problems, review flags);
* ``gradebook.db``: nbgrader's gradebook, holding the score of every graded part, so
  nbgrader's own tools (formgrader, manual grading) work on it;
* ``feedback/<student>/<assignment>/<assignment>.html`` and ``grades.csv``.

Every file is written to a temporary name and renamed, so an interrupted run never leaves
a half-written record.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from autograder.files import write_atomic
from autograder.grading import Submission, SubmissionResult
from autograder.plan import REPO

NBGRADER_CONFIG = REPO / "autograder" / "nbgrader_config"


class Records:
    """The grading folder of a course."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.submitted = self.root / "submitted"
        self.reports = self.root / "reports"
        self.feedback = self.root / "feedback"
        self.gradebook = self.root / "gradebook.db"
        self.grades_csv = self.root / "grades.csv"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.gradebook}"

    # ------------------------------------------------------------------ submissions

    def submissions(self, assignments=None, students=None) -> list[Submission]:
        """The collected submissions, sorted by assignment and student."""
        found = []
        for path in sorted(self.submitted.glob("*/*/*.ipynb")):
            student, assignment = path.parent.parent.name, path.parent.name
            if path.stem != assignment:
                continue
            if assignments and assignment not in assignments:
                continue
            if students and student not in students:
                continue
            text = path.read_bytes().decode("utf-8", errors="replace")
            found.append(Submission(student, assignment, text))
        return sorted(found, key=lambda s: (s.assignment, s.student))

    # ---------------------------------------------------------------------- reports

    def report_path(self, assignment: str, student: str) -> Path:
        return self.reports / assignment / f"{student}.json"

    def save_report(self, result: SubmissionResult) -> None:
        data = json.dumps(result.to_json(), indent=1, sort_keys=True)
        write_atomic(self.report_path(result.assignment, result.student), data)

    def load_reports(self, assignments=None, students=None) -> list[SubmissionResult]:
        results = []
        for path in sorted(self.reports.glob("*/*.json")):
            assignment, student = path.parent.name, path.stem
            if assignments and assignment not in assignments:
                continue
            if students and student not in students:
                continue
            results.append(SubmissionResult.from_json(json.loads(path.read_text())))
        return results

    # --------------------------------------------------------------------- gradebook

    def nbgrader(self, *args: str) -> subprocess.CompletedProcess:
        """Run an nbgrader command with the course's configuration and this gradebook."""
        command = [
            sys.executable,
            "-m",
            "nbgrader",
            *args,
            f"--NbGrader.config_file={NBGRADER_CONFIG}",
            f"--CourseDirectory.db_url={self.db_url}",
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        return subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env)

    def registered(self) -> set[str]:
        """The assignments the gradebook knows."""
        from nbgrader.api import Gradebook

        if not self.gradebook.exists():
            return set()
        with Gradebook(self.db_url) as gradebook:
            return {assignment.name for assignment in gradebook.assignments}

    @contextmanager
    def open_gradebook(self):
        from nbgrader.api import Gradebook

        self.root.mkdir(parents=True, exist_ok=True)
        with Gradebook(self.db_url) as gradebook:
            yield gradebook

    @staticmethod
    def record_scores(gradebook, result: SubmissionResult) -> None:
        """Store a result's automatic scores in the gradebook, in one transaction."""
        gradebook.update_or_create_student(result.student)
        gradebook.update_or_create_submission(result.assignment, result.student)
        try:
            for test in result.tests:
                grade = gradebook.find_grade(
                    test.grade_id, result.assignment, result.assignment, result.student
                )
                grade.auto_score = test.points
            gradebook.db.commit()
        except BaseException:
            gradebook.db.rollback()
            raise
