"""Hostile submissions graded through the CLI beside honest ones.

For every attack: no unearned point, the run completes, the honest students' scores are
what their code earns, the gradebook stays intact, and the report says what happened.
Most attacks sit in a submission whose exercises are not done (so any point would be
unearned) or whose answers are wrong in a way the attack tries to hide.
"""

from __future__ import annotations

import hashlib
import socket
import sqlite3
import threading
from dataclasses import dataclass
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
    write_submissions,
)

ASSIGNMENT = "bn01_forward"
TIMEOUT = "10"  # seconds per notebook: the endless loop and the sleeper use it all

pytestmark = needs_sandbox()


def _with_cell(notebook, source: str, position: int = 2):
    """A copy with a new code cell (no nbgrader metadata) inserted at `position`."""
    copy = nbformat.from_dict(notebook)
    copy.cells.insert(position, nbformat.v4.new_code_cell(source))
    return copy


def _set_solution(notebook, grade_id: str, source: str):
    copy = nbformat.from_dict(notebook)
    for cell in copy.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = source
    return copy


def _tests(notebook) -> list:
    return [
        c
        for c in notebook.cells
        if c.metadata.get("nbgrader", {}).get("grade")
        and not c.metadata.get("nbgrader", {}).get("solution")
    ]


def _edit_tests(notebook, source: str):
    copy = nbformat.from_dict(notebook)
    for cell in _tests(copy):
        cell.source = source
    return copy


def _drop_tests(notebook):
    copy = nbformat.from_dict(notebook)
    copy.cells = [c for c in copy.cells if c not in _tests(copy)]
    return copy


def _duplicate_tests(notebook):
    copy = nbformat.from_dict(notebook)
    cells = []
    for cell in copy.cells:
        cells.append(cell)
        if cell in _tests(copy):
            for number in (1, 2):
                twin = nbformat.from_dict(cell)
                twin.id = f"{cell.id}-copy{number}"
                cells.append(twin)
    copy.cells = cells
    return copy


def _strip_metadata(notebook):
    copy = nbformat.from_dict(notebook)
    for cell in copy.cells:
        cell.metadata.pop("nbgrader", None)
        cell.pop("id", None)
    copy.nbformat_minor = 4
    return copy


# A wrong forward pass (no normalization) that tampering tries to pass off as right.
WRONG_FORWARD = """
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    return gamma * x + beta
"""


@dataclass(frozen=True)
class Attack:
    student: str
    notebook: object
    expect: str  # text the report must contain (problem, flags, messages or cell errors)
    max_points: float | None = 0.0  # None: the exact points the code earns


def _attacks(tmp: Path, port: int) -> list[Attack]:
    blank = exercise(ASSIGNMENT)
    wrong = _set_solution(blank, "batchnorm_forward", WRONG_FORWARD)
    gradebook = tmp / "grading" / "gradebook.db"
    other = tmp / "grading" / "submitted" / "honest" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    reference = REPO / "autograder" / "reference.py"
    source = REPO / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    marker = tmp / "escaped.txt"
    return [
        Attack("loop", _with_cell(blank, "while True:\n    pass"), "limit was reached"),
        Attack("sleeper", _with_cell(blank, "import time\ntime.sleep(600)"), "time limit"),
        Attack(
            "memory",
            _with_cell(blank, "blocks = []\nwhile True:\n    blocks.append(bytearray(2**28))"),
            "MemoryError",
        ),
        Attack(
            "forkbomb",
            _with_cell(blank, "import os\nwhile True:\n    os.fork()"),
            "BlockingIOError",
        ),
        Attack(
            "output",
            _with_cell(blank, "while True:\n    print('x' * 10**6)"),
            "limit was reached",
        ),
        Attack("sysexit", _with_cell(blank, "import sys\nsys.exit(0)"), "SystemExit"),
        Attack("osexit", _with_cell(blank, "import os\nos._exit(0)"), "ended early"),
        # The job is PID 1 of its namespace, where a signal to itself is ignored.
        Attack(
            "killer",
            _with_cell(blank, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"),
            "calls os.kill",
        ),
        Attack("segfault", _with_cell(blank, "import ctypes\nctypes.string_at(0)"), "signal 11"),
        Attack("syntax", _set_solution(blank, "batchnorm_forward", "def f(:\n"), "SyntaxError"),
        Attack("deleted", _drop_tests(wrong), "largest difference"),
        Attack("duplicated", _duplicate_tests(solved(ASSIGNMENT)), "", max_points=None),
        Attack(
            "edited",
            _edit_tests(wrong, "print('all tests passed')"),
            "largest difference",
        ),
        Attack("stripped", _strip_metadata(wrong), "largest difference"),
        Attack(
            "allclose",
            _with_cell(
                wrong,
                "import numpy as np, numpy.testing as npt, torch\n"
                "np.allclose = lambda *a, **k: True\n"
                "np.isclose = lambda a, b, *r, **k: np.ones(np.shape(a), bool)\n"
                "npt.assert_allclose = lambda *a, **k: None\n"
                "torch.allclose = lambda *a, **k: True",
            ),
            "replaces np.allclose",
        ),
        Attack(
            "helpers",
            _with_cell(
                wrong,
                "def check_forward_basic(*args):\n    pass\n"
                "import autograder.checks.core as core\n"
                "core.check_close = lambda *a, **k: None",
            ),
            "ModuleNotFoundError",
        ),
        Attack(
            "transcript",
            _with_cell(
                wrong,
                "import autograder.scenarios.common as common\n"
                "common.encode = lambda value, depth=0: {'di': {'y': {'di': {'value': 1}}}}",
            ),
            "not in the expected form",
        ),
        Attack(
            "reader",
            _with_cell(
                blank,
                f"text = open({str(reference)!r}).read() + open({str(source)!r}).read()",
            ),
            "FileNotFoundError",
        ),
        Attack(
            "writer",
            _with_cell(
                blank,
                f"open({str(gradebook)!r}, 'w').write('gone')\n"
                f"open({str(other)!r}, 'w').write('gone')",
            ),
            "FileNotFoundError",
        ),
        Attack(
            "escape",
            _with_cell(blank, f"open({str(marker)!r}, 'w').write('out')"),
            "FileNotFoundError",
        ),
        Attack(
            "network",
            _with_cell(
                blank,
                f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)",
            ),
            "OSError",
        ),
    ]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("adversarial")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.5)
    connections = []

    def accept():
        while listener.fileno() != -1:
            try:
                connections.append(listener.accept())
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    attacks = _attacks(tmp, listener.getsockname()[1])
    honest = {
        ("honest", ASSIGNMENT): solved(ASSIGNMENT),
        ("partial", ASSIGNMENT): solved(ASSIGNMENT, mutant_named(ASSIGNMENT, 0)),
    }
    incoming = tmp / "incoming"
    write_submissions(
        incoming, {**honest, **{(a.student, ASSIGNMENT): a.notebook for a in attacks}}
    )
    grading = tmp / "grading"
    collected = autograder(grading, "collect", str(incoming))
    assert collected.returncode == 0, collected.stderr
    other = grading / "submitted" / "honest" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    before = _digest(other)
    run = autograder(grading, "grade", "--workers", "2", "--timeout", TIMEOUT, "--quiet")
    listener.close()
    return {
        "run": run,
        "grading": grading,
        "attacks": attacks,
        "honest": honest,
        "reports": reports(grading),
        "other_unchanged": _digest(other) == before,
        "connections": connections,
        "marker": tmp / "escaped.txt",
    }


def test_the_run_completes_with_a_report_for_everyone(graded):
    assert graded["run"].returncode == 0, graded["run"].stderr[-3000:]
    students = {a.student for a in graded["attacks"]} | {"honest", "partial"}
    assert {student for student, _ in graded["reports"]} == students


def test_the_summary_table_counts_failures_and_flags(graded):
    out = graded["run"].stdout
    assert "graded" in out and "failed" in out and "flagged" in out
    assert f"failed   {ASSIGNMENT}/loop:" in out
    assert f"flagged  {ASSIGNMENT}/allclose:" in out


@pytest.mark.parametrize("index", range(21))
def test_an_attack_earns_no_point_and_is_reported(graded, index):
    attack = graded["attacks"][index]
    report = graded["reports"][attack.student, ASSIGNMENT]
    score = sum(test["points"] for test in report["tests"])
    if attack.max_points is None:
        earned = expected_points(ASSIGNMENT, solved(ASSIGNMENT))
        assert score == sum(earned.values()), f"{attack.student}: {score} points"
    else:
        assert score <= attack.max_points, f"{attack.student} earned {score} points"
    text = " ".join(
        [str(report["problem"]), *report["flags"]]
        + [t["message"] or "" for t in report["tests"]]
        + [c["error"] or "" for c in report["cells"]]
    )
    assert attack.expect in text, f"{attack.student}: {attack.expect!r} not in {text[:2000]!r}"


def test_honest_students_get_what_their_code_earns(graded):
    for (student, assignment), notebook in graded["honest"].items():
        report = graded["reports"][student, assignment]
        got = {t["grade_id"]: t["points"] for t in report["tests"]}
        assert got == expected_points(assignment, notebook), student
        assert report["problem"] is None and report["flags"] == []


def test_the_gradebook_is_intact_and_matches_the_reports(graded):
    with sqlite3.connect(graded["grading"] / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = db.execute(
            "SELECT student.id, SUM(grade.auto_score) FROM grade "
            "JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id "
            "JOIN submitted_assignment ON submitted_notebook.assignment_id = "
            "submitted_assignment.id "
            "JOIN student ON submitted_assignment.student_id = student.id GROUP BY student.id"
        ).fetchall()
    in_gradebook = dict(rows)
    for (student, _), report in graded["reports"].items():
        assert in_gradebook[student] == sum(t["points"] for t in report["tests"]), student


def test_nothing_outside_the_sandbox_was_touched(graded):
    assert graded["other_unchanged"]
    assert not graded["marker"].exists()
    assert graded["connections"] == []
