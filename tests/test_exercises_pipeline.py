"""The real nbgrader pipeline: solutions score full marks, untouched exercises score zero.

One temporary course (see `tests/nbgrader_course.py`) is generated, submitted,
autograded and exported; the scores are read per graded cell from the gradebook.
"""

from __future__ import annotations

import pytest

from tests.nbgrader_course import assignments, graded_course

pytestmark = pytest.mark.slow

ASSIGNMENTS = assignments()


@pytest.fixture(scope="module")
def course():
    return graded_course()


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_scores_full_marks_in_every_graded_cell(course, assignment):
    grades = course.grades(assignment, "solution")
    assert len(grades) >= 2, "an assignment needs several graded cells for partial credit"
    assert all(max_score > 0 for _, max_score in grades.values())
    lost = {cell: score for cell, score in grades.items() if score[0] != score[1]}
    assert not lost, f"{lost}\n{course.feedback_text(assignment, 'solution')}"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_exercise_scores_zero_in_every_graded_cell(course, assignment):
    grades = course.grades(assignment, "untouched")
    assert grades
    scored = {cell: score for cell, score in grades.items() if score[0] != 0}
    assert not scored, f"an untouched notebook earns points: {scored}"
    feedback = course.feedback_text(assignment, "untouched")
    assert "NotImplementedError" in feedback


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_feedback_shows_no_check_code(course, assignment):
    """A failing hidden test shows its message, not the code or inputs of the check."""
    students = ["untouched", *course.mutant_students[assignment]]
    for student in students:
        feedback = course.feedback_text(assignment, student)
        assert feedback, f"{student} lost points without any feedback"
        assert f"checks/{assignment}.py" not in feedback, f"{student}: check code in feedback"
        assert "default_rng" not in feedback, f"{student}: test inputs in feedback"


def test_export_has_full_and_zero_totals(course):
    rows = {(row["assignment"], row["student_id"]): row for row in course.exported()}
    for assignment in ASSIGNMENTS:
        solution = rows[(assignment, "solution")]
        untouched = rows[(assignment, "untouched")]
        assert float(solution["max_score"]) > 0
        assert float(solution["score"]) == float(solution["max_score"])
        assert float(untouched["score"]) == 0.0
