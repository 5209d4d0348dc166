"""The grading CLI from a Canvas zip to grades.csv and feedback pages, on every assignment.

The class: per assignment a correct submission, an untouched one and a wrong one (the
first mutant). Scores must equal those of running the checks in the submission's own
process (what nbgrader does); grading with one worker and with two gives identical reports.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from tests.grading_class import (
    REPO,
    autograder,
    exercise,
    expected_points,
    mutant_named,
    needs_sandbox,
    reports,
    solved,
)
from tests.nbgrader_course import assignments

pytestmark = needs_sandbox()

KINDS = {
    "right": lambda a: solved(a),
    "blank": lambda a: exercise(a),
    "wrong": lambda a: solved(a, mutant_named(a, 0)),
}
LOGINS = {"right": "ada", "blank": "bob", "wrong": "cy"}


def _canvas_zip(path: Path) -> dict[tuple[str, str], object]:
    """A Canvas "Download submissions" zip of the class; returns what it holds."""
    notebooks = {}
    with zipfile.ZipFile(path, "w") as archive:
        for number, (kind, make) in enumerate(KINDS.items()):
            for assignment in assignments():
                notebook = make(assignment)
                login = LOGINS[kind]
                name = f"{login}_{1000 + number}_{5000 + number}_{assignment}.ipynb"
                archive.writestr(name, nbformat.writes(notebook))
                notebooks[login, assignment] = notebook
    return notebooks


def _comparable(found: dict) -> dict:
    return {key: {k: v for k, v in r.items() if k != "seconds"} for key, r in found.items()}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    notebooks = _canvas_zip(tmp / "submissions.zip")
    parallel, sequential = tmp / "parallel", tmp / "sequential"
    collected = autograder(parallel, "collect", str(tmp / "submissions.zip"))
    shutil.copytree(parallel / "submitted", sequential / "submitted")
    runs = {
        "collect": collected,
        "parallel": autograder(parallel, "grade", "--workers", "2", "--quiet"),
        "sequential": autograder(sequential, "grade", "--workers", "1", "--quiet"),
        "feedback": autograder(parallel, "feedback"),
        "export": autograder(parallel, "export"),
    }
    return {"runs": runs, "dir": parallel, "sequential": sequential, "notebooks": notebooks}


def test_every_command_succeeds(graded):
    for name, run in graded["runs"].items():
        assert run.returncode == 0, f"{name}: {run.stderr[-3000:]}"
    assert "stored 15 new or newer notebooks" in graded["runs"]["collect"].stdout


def test_scores_equal_those_of_checks_run_in_the_learners_process(graded):
    found = reports(graded["dir"])
    assert set(found) == set(graded["notebooks"])
    for (student, assignment), notebook in graded["notebooks"].items():
        got = {t["grade_id"]: t["points"] for t in found[student, assignment]["tests"]}
        assert got == expected_points(assignment, notebook), (student, assignment)


def test_the_scores_span_full_partial_and_zero(graded):
    found = reports(graded["dir"])
    for assignment in assignments():
        right, blank, wrong = (found[LOGINS[k], assignment] for k in ("right", "blank", "wrong"))
        full = sum(t["max_points"] for t in right["tests"])
        assert sum(t["points"] for t in right["tests"]) == full
        assert sum(t["points"] for t in blank["tests"]) == 0
        assert 0 <= sum(t["points"] for t in wrong["tests"]) < full


def test_one_worker_and_two_give_identical_reports(graded):
    assert _comparable(reports(graded["dir"])) == _comparable(reports(graded["sequential"]))


def test_feedback_shows_messages_and_no_hidden_test(graded):
    checks = {
        line.strip()
        for path in (REPO / "autograder" / "checks").glob("*.py")
        for line in path.read_text().splitlines()
        if len(line.strip()) > 30
    }
    for (student, assignment), report in reports(graded["dir"]).items():
        page = graded["dir"] / "feedback" / student / assignment / f"{assignment}.html"
        text = page.read_text()
        for test in report["tests"]:
            assert f"Hidden test {test['grade_id']}" in text
        assert "from autograder" not in text and "BEGIN HIDDEN TESTS" not in text
        leaked = [line for line in checks if line in text]
        assert not leaked, f"{student}/{assignment} shows check code: {leaked[:3]}"


def test_feedback_names_the_mistake_of_the_wrong_submission(graded):
    for assignment in assignments():
        mutant = mutant_named(assignment, 0)
        page = graded["dir"] / "feedback" / "cy" / assignment / f"{assignment}.html"
        if mutant.diagnostic:
            assert mutant.diagnostic.lower() in page.read_text().lower(), assignment


def test_export_has_a_row_per_student_and_a_column_per_graded_part(graded):
    with (graded["dir"] / "grades.csv").open(newline="") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    found = reports(graded["dir"])
    assert set(rows) == set(LOGINS.values())
    for (student, assignment), report in found.items():
        row = rows[student]
        assert float(row[assignment]) == sum(t["points"] for t in report["tests"])
        for test in report["tests"]:
            assert float(row[f"{assignment}/{test['grade_id']}"]) == test["points"]
    for student, row in rows.items():
        total = sum(float(row[a]) for a in assignments())
        assert float(row["total"]) == total, student


@pytest.mark.parametrize("command", ["", "release", "collect", "grade", "feedback", "export"])
def test_every_command_has_help(tmp_path, command):
    run = autograder(tmp_path, *([command] if command else []), "--help")
    assert run.returncode == 0
    assert "usage: python -m autograder" in run.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["grade"], "no submissions to grade"),
        (["grade", "--assignment", "bn99"], "unknown assignment 'bn99'"),
        (["collect", "/no/such/folder"], "/no/such/folder"),
        (["feedback"], "no graded submissions"),
        (["export"], "no gradebook yet"),
        (["grade", "--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_bad_input_gets_one_clear_line(tmp_path, args, message):
    run = autograder(tmp_path / "grading", *args)
    assert run.returncode == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr


def test_without_bubblewrap_grading_is_refused_unless_asked_for(tmp_path):
    folder = tmp_path / "incoming" / "ada" / "bn01_forward"
    folder.mkdir(parents=True)
    nbformat.write(solved("bn01_forward"), folder / "bn01_forward.ipynb")
    grading = tmp_path / "grading"
    assert autograder(grading, "collect", str(tmp_path / "incoming")).returncode == 0
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # no bwrap on it
    refused = autograder(grading, "grade", env=env)
    assert refused.returncode == 2
    assert "cannot sandbox student code" in refused.stderr and "--no-sandbox" in refused.stderr
    unsafe = autograder(grading, "grade", "--no-sandbox", "--quiet", env=env)
    assert unsafe.returncode == 0, unsafe.stderr[-2000:]
    assert "WITHOUT isolation" in unsafe.stderr
    report = reports(grading)["ada", "bn01_forward"]
    assert sum(t["points"] for t in report["tests"]) == sum(
        t["max_points"] for t in report["tests"]
    )
