"""Feedback for a learner: their notebook with outputs, points and messages, as HTML.

The page is the learner's own notebook: their code, what each cell printed and the
last line of any error, and under each hidden test its points and, when points were
lost, the message naming the mistake. Hidden tests' code, inputs and tracebacks are
never part of it (the grader never has them in the learner's notebook to begin with);
review flags are for the instructor and are not shown.
"""

from __future__ import annotations

import html

import nbformat
from nbconvert import HTMLExporter

from autograder.grading import Submission, SubmissionResult
from autograder.plan import grade_id


def _stream(text: str, name: str = "stdout"):
    return nbformat.v4.new_output("stream", name=name, text=text)


def _test_text(test) -> str:
    points = f"{test.points:g} / {test.max_points:g} points"
    if test.message is None:
        return f"Hidden test {test.grade_id}: passed, {points}.\n"
    return f"Hidden test {test.grade_id}: {points}.\n{test.message}\n"


def feedback_notebook(submission: Submission, result: SubmissionResult):
    """The learner's notebook annotated with the result of grading it."""
    notebook = nbformat.reads(submission.notebook, as_version=4)
    tests = {test.grade_id: test for test in result.tests}
    shown = set()
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        name = grade_id(cell)
        if name in tests and name not in shown:
            shown.add(name)
            cell.outputs.append(_stream(_test_text(tests[name])))
            continue
        if index < len(result.cells):
            outcome = result.cells[index]
            if outcome.get("output"):
                cell.outputs.append(_stream(outcome["output"]))
            if outcome.get("error"):
                cell.outputs.append(_stream(outcome["error"] + "\n", "stderr"))
    missing = [test for test in result.tests if test.grade_id not in shown]
    if missing:
        lines = "".join(f"- {html.escape(_test_text(test).strip())}\n" for test in missing)
        notebook.cells.append(
            nbformat.v4.new_markdown_cell(
                "## Hidden tests whose cells are missing from the notebook\n\n" + lines
            )
        )
    summary = [
        f"# Feedback on {result.assignment} for {result.student}",
        "",
        f"**Score: {result.score:g} / {result.max_score:g}**",
    ]
    if result.problem:
        summary += ["", f"The notebook did not run to the end: {html.escape(result.problem)}."]
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell("\n".join(summary)))
    return notebook


def feedback_html(submission: Submission, result: SubmissionResult) -> str:
    exporter = HTMLExporter(template_name="lab")
    body, _ = exporter.from_notebook_node(feedback_notebook(submission, result))
    return body
