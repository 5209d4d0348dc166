"""Every mutant in tests/mutants/ loses points through the real nbgrader pipeline, and the
feedback names its mistake (the mutant's `diagnostic`)."""

from __future__ import annotations

import nbformat
import pytest

from tests.nbgrader_course import (
    SOLUTIONS,
    apply_mutant,
    assignments,
    graded_course,
    mutants,
    notebook_path,
)

ALL_MUTANTS = [
    pytest.param(assignment, mutant, id=f"{assignment}: {mutant.name}")
    for assignment in assignments()
    for mutant in mutants(assignment)
]


@pytest.mark.parametrize(("assignment", "mutant"), ALL_MUTANTS)
def test_mutant_applies_to_its_solution(assignment, mutant):
    solution = nbformat.read(notebook_path(SOLUTIONS, assignment), as_version=4)
    mutated = apply_mutant(solution, mutant)  # asserts that `old` occurs exactly once
    assert mutated != solution


@pytest.mark.slow
def test_every_mutant_is_caught_and_named(capsys):
    course = graded_course()
    report, survivors, unnamed = [], [], []
    for assignment in assignments():
        for student, mutant in course.mutant_students[assignment].items():
            grades = course.grades(assignment, student)
            lost = sum(max_score - score for score, max_score in grades.values())
            feedback = course.feedback_text(assignment, student)
            named = mutant.diagnostic is None or mutant.diagnostic.lower() in feedback.lower()
            if lost == 0:
                survivors.append(f"{assignment}: {mutant.name}")
            elif not named:
                unnamed.append(f"{assignment}: {mutant.name} (expected {mutant.diagnostic!r})")
            report.append(
                f"  {assignment:16} {mutant.name:66} lost {lost:4.1f} points, "
                f"diagnostic {'shown' if named else 'MISSING'}"
            )
    total = len(report)
    with capsys.disabled():
        print(f"\nmutants killed: {total - len(survivors)}/{total}")
        print("\n".join(report))
    assert total > 0
    assert not survivors, f"mutants that lost no points: {survivors}"
    assert not unnamed, f"feedback without the mutant's diagnostic: {unnamed}"
