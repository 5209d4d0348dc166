"""Unit tests of `autograder.feedback`: the learner's notebook annotated with their result,
and the HTML page made of it, which must not reveal the hidden tests' code."""

from __future__ import annotations

import html
import json
import re

import nbformat
import pytest

from autograder.feedback import feedback_html, feedback_notebook
from autograder.grading import Submission, SubmissionResult
from autograder.grading import TestResult as Outcome
from autograder.plan import SOLUTIONS
from tests.grading_class import solved

A = "bn01_forward"
PROBLEM = "the process ended early (exit code 1)"
FLAG = "cell 4 (batchnorm_forward) imports autograder (imports the course's grading package)"
TESTS = [
    Outcome("test-forward-basic", 2.0, 2.0),
    Outcome("test-forward-small-batch", 0.0, 2.0, "batchnorm_forward returned a tuple."),
    Outcome("test-forward-near-constant", 2.0, 2.0),
    Outcome("test-forward-float32", 0.0, 1.0, "y has dtype float64 for float32 inputs."),
    Outcome("test-running-basic", 2.0, 2.0),
    Outcome("test-running-momentum", 2.0, 2.0),
    Outcome("test-running-inputs-kept", 1.0, 1.0),
    Outcome("test-inference-basic", 0.0, 2.0, f"Not run: {PROBLEM}."),
    Outcome(
        "test-inference-one-example",
        0.0,
        1.0,
        "NameError: name 'batchnorm_inference' is not defined.",
    ),
]
EMPTY = {"error": None, "output": ""}


def _submission():
    """bn01 filled in, with stale outputs, and without its last hidden test cell (22)."""
    notebook = solved(A)
    del notebook.cells[22]
    stale = nbformat.v4.new_output("stream", name="stdout", text="stale: all tests passed\n")
    for index in (3, 6, 7):
        notebook.cells[index].outputs = [stale]
        notebook.cells[index].execution_count = 4
    return Submission("ada", A, nbformat.writes(notebook)), notebook


def _result(cells: int, **changes) -> SubmissionResult:
    result = SubmissionResult("ada", A, tests=list(TESTS), problem=PROBLEM, flags=[FLAG])
    result.cells = [dict(EMPTY) for _ in range(cells)]
    result.cells[3] = {"error": "ValueError: shapes do not match", "output": "debug print\n"}
    result.cells[5] = {"error": None, "output": "visible tests passed\n"}
    for key, value in changes.items():
        setattr(result, key, value)
    return result


def _streams(cell) -> list[tuple[str, str]]:
    return [(output.name, output.text) for output in cell.outputs]


def test_feedback_notebook_header_and_score():
    submission, notebook = _submission()
    feedback = feedback_notebook(submission, _result(len(notebook.cells)))
    header = feedback.cells[0]
    assert header.cell_type == "markdown"
    assert header.source == (
        "# Feedback on bn01_forward for ada\n\n**Score: 9 / 15**\n\n"
        "The notebook did not run to the end: the process ended early (exit code 1)."
    )
    assert len(feedback.cells) == len(notebook.cells) + 2


def test_feedback_notebook_without_a_problem_has_no_problem_line():
    submission, notebook = _submission()
    feedback = feedback_notebook(submission, _result(len(notebook.cells), problem=None))
    assert feedback.cells[0].source.endswith("**Score: 9 / 15**")


def test_feedback_notebook_puts_each_test_under_its_cell():
    submission, notebook = _submission()
    cells = feedback_notebook(submission, _result(len(notebook.cells))).cells[1:]
    assert _streams(cells[6]) == [
        ("stdout", "Hidden test test-forward-basic: passed, 2 / 2 points.\n")
    ]
    assert _streams(cells[7]) == [
        (
            "stdout",
            "Hidden test test-forward-small-batch: 0 / 2 points.\n"
            "batchnorm_forward returned a tuple.\n",
        )
    ]
    assert _streams(cells[9]) == [
        (
            "stdout",
            "Hidden test test-forward-float32: 0 / 1 points.\n"
            "y has dtype float64 for float32 inputs.\n",
        )
    ]
    assert _streams(cells[21]) == [
        ("stdout", f"Hidden test test-inference-basic: 0 / 2 points.\nNot run: {PROBLEM}.\n")
    ]


def test_feedback_notebook_shows_each_cells_output_and_error_only():
    submission, notebook = _submission()
    cells = feedback_notebook(submission, _result(len(notebook.cells))).cells[1:]
    assert _streams(cells[3]) == [
        ("stdout", "debug print\n"),
        ("stderr", "ValueError: shapes do not match\n"),
    ]
    assert _streams(cells[5]) == [("stdout", "visible tests passed\n")]
    assert _streams(cells[1]) == [] and _streams(cells[11]) == []
    for cell, original in zip(cells, notebook.cells, strict=False):
        assert cell.source == original.source
        if cell.cell_type == "code":
            assert cell.execution_count is None


def test_feedback_notebook_lists_hidden_tests_missing_from_the_notebook():
    submission, notebook = _submission()
    last = feedback_notebook(submission, _result(len(notebook.cells))).cells[-1]
    assert last.cell_type == "markdown"
    assert html.unescape(last.source) == (
        "## Hidden tests whose cells are missing from the notebook\n\n"
        "- Hidden test test-inference-one-example: 0 / 1 points.\n"
        "NameError: name 'batchnorm_inference' is not defined.\n"
    )


def test_feedback_notebook_without_missing_tests_adds_only_the_header():
    notebook = solved(A)
    result = SubmissionResult("ada", A, tests=list(TESTS))
    result.cells = [dict(EMPTY) for _ in notebook.cells]
    feedback = feedback_notebook(Submission("ada", A, nbformat.writes(notebook)), result)
    assert len(feedback.cells) == len(notebook.cells) + 1
    assert "missing" not in feedback.cells[-1].source


def test_a_duplicated_test_cell_shows_the_result_once():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("") for _ in range(2)]
    for cell in notebook.cells:
        cell.metadata["nbgrader"] = {"grade_id": "t1"}
    result = SubmissionResult("bo", "tiny", tests=[Outcome("t1", 0.5, 1.5, "Wrong.")])
    result.cells = [dict(EMPTY), {"error": None, "output": "from the copy\n"}]
    feedback = feedback_notebook(Submission("bo", "tiny", nbformat.writes(notebook)), result)
    assert feedback.cells[0].source == "# Feedback on tiny for bo\n\n**Score: 0.5 / 1.5**"
    assert _streams(feedback.cells[1]) == [
        ("stdout", "Hidden test t1: 0.5 / 1.5 points.\nWrong.\n")
    ]
    assert _streams(feedback.cells[2]) == [("stdout", "from the copy\n")]


def test_nbgrader_metadata_that_is_not_a_dict_is_ignored():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("x = 1")]
    notebook.cells[0].metadata["nbgrader"] = "not a dict"
    result = SubmissionResult("bo", "tiny", cells=[{"error": None, "output": "1\n"}])
    feedback = feedback_notebook(Submission("bo", "tiny", nbformat.writes(notebook)), result)
    assert _streams(feedback.cells[1]) == [("stdout", "1\n")]


# ------------------------------------------------------------------ HTML


def _visible_text(page: str) -> str:
    """The page's text as a reader sees it: tags removed (code is split into highlighted
    spans), entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def _hidden_test_lines() -> list[str]:
    cells = json.loads((SOLUTIONS / A / f"{A}.ipynb").read_text())["cells"]
    lines = []
    for cell in cells:
        meta = cell["metadata"].get("nbgrader", {})
        if meta.get("grade") and not meta.get("solution"):
            source = "".join(cell["source"])
            lines += [line.strip() for line in source.splitlines() if line.strip()]
    assert len(lines) >= 9 * 3  # marker, import and call of each of the nine tests
    return lines


@pytest.fixture(scope="module")
def page():
    submission, notebook = _submission()
    return feedback_html(submission, _result(len(notebook.cells)))


def test_feedback_html_shows_scores_messages_and_outputs(page):
    text = _visible_text(page)
    for expected in [
        "Feedback on bn01_forward for ada",
        "Score: 9 / 15",
        f"The notebook did not run to the end: {PROBLEM}.",
        "Hidden test test-forward-basic: passed, 2 / 2 points.",
        "Hidden test test-forward-small-batch: 0 / 2 points.",
        "batchnorm_forward returned a tuple.",
        "y has dtype float64 for float32 inputs.",
        "debug print",
        "ValueError: shapes do not match",
        "visible tests passed",
        "Hidden tests whose cells are missing from the notebook",
        "Hidden test test-inference-one-example: 0 / 1 points.",
        "NameError: name 'batchnorm_inference' is not defined.",
        "def batchnorm_forward(x, gamma, beta, eps=1e-5):",
    ]:
        assert expected in text, expected


def test_feedback_html_hides_flags_and_stale_outputs(page):
    text = _visible_text(page)
    assert FLAG not in text and "imports autograder" not in page
    assert "stale: all tests passed" not in text


def test_feedback_html_holds_no_line_of_the_hidden_tests(page):
    text = _visible_text(page)
    for line in _hidden_test_lines():
        assert line not in text and line not in page, line


def test_the_hidden_line_check_would_see_leaked_code():
    """A control: hidden-test code in a learner cell is found by the same search."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("\n".join(_hidden_test_lines()[:3]))]
    result = SubmissionResult("ada", A, cells=[dict(EMPTY)])
    text = _visible_text(feedback_html(Submission("ada", A, nbformat.writes(notebook)), result))
    assert all(line in text for line in _hidden_test_lines()[:3])
