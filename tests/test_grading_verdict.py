"""Unit tests of `autograder.grading.verdict` and `judge_job` on hand-made probe results
(no sandbox): what a probe's RESULT becomes for the learner and for the instructor."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import nbformat
import pytest

from autograder.checks.core import Failure, Unreadable
from autograder.grading import Submission, judge_job, prepare, verdict
from autograder.plan import AssignmentPlan, HiddenTest, Job, load_plan
from autograder.sandbox import JobResult, Probe
from tests.grading_class import solved

NOT_RUN = "The test could not run."
MALFORMED = "a probe returned malformed data"
UNREADABLE = str(Unreadable())


@dataclass(frozen=True)
class StandIn:
    """What `verdict` and `judge_job` use of a `plan.CheckCall`: its name and check."""

    verdict_fn: object
    name: str = "check_thing"

    @property
    def check(self):
        return SimpleNamespace(verdict=self.verdict_fn)


def needs_ok(transcript):
    if transcript["ok"] is not True:
        raise Failure("The layer is not ok.")


def key_error(transcript):
    return {}["x"]


def type_error(transcript):
    return transcript + 1


def asks_for_absent(transcript):
    return transcript["absent"]


def unreadable(transcript):
    raise Unreadable("d" * 300)


def accept(transcript):
    return None


OK = {"transcript": {"di": {"ok": True}}}
NOT_OK = {"transcript": {"di": {"ok": False}}}


def test_unreadable_message_tells_the_learner_it_scores_zero():
    assert UNREADABLE.startswith("The results of this test were not in the expected form")


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        (
            (None, "Traceback: boom"),
            (NOT_RUN, "a probe failed inside the sandbox: Traceback: boom"),
        ),
        ((OK, "late error"), (NOT_RUN, "a probe failed inside the sandbox: late error")),
        (([1], None), (NOT_RUN, MALFORMED)),
        (("transcript", None), (NOT_RUN, MALFORMED)),
        (({}, None), (NOT_RUN, MALFORMED)),
        (({"transcript": {"di": {}}, "missing": "f"}, None), (NOT_RUN, MALFORMED)),
        (({"surprise": 1}, None), (NOT_RUN, MALFORMED)),
        (({"missing": ["f"]}, None), (NOT_RUN, MALFORMED)),
        (({"crashed": 3}, None), (NOT_RUN, MALFORMED)),
        (({"missing": "f"}, None), ("NameError: name 'f' is not defined.", None)),
        (
            ({"crashed": "TypeError: bad operand"}, None),
            ("The test could not run on what your code returned (TypeError: bad operand).", None),
        ),
        (
            ({"crashed": "x" * 500}, None),
            (f"The test could not run on what your code returned ({'x' * 300}).", None),
        ),
        ((OK, None), (None, None)),
        ((NOT_OK, None), ("The layer is not ok.", None)),
    ],
    ids=[
        "probe error",
        "probe error with a result",
        "list",
        "string",
        "empty dict",
        "two keys",
        "unknown kind",
        "missing not a string",
        "crashed not a string",
        "missing",
        "crashed",
        "crashed, long",
        "passed",
        "failure",
    ],
)
def test_verdict_of_probe_results(probe, expected):
    assert verdict(StandIn(needs_ok), probe) == expected


def test_a_transcript_that_does_not_decode_is_unreadable_and_flagged():
    message, flag = verdict(StandIn(accept), ({"transcript": {"zz": 1}}, None))
    assert message == UNREADABLE
    assert flag == "check_thing: unreadable transcript (unknown tag 'zz')"


@pytest.mark.parametrize(
    ("verdict_fn", "detail"),
    [
        (key_error, "KeyError: 'x'"),
        (type_error, "TypeError: unsupported operand type(s) for +: 'Transcript' and 'int'"),
        (asks_for_absent, "IncompleteTranscript: absent"),  # a LookupError: no quotes
        (unreadable, "d" * 200),
    ],
    ids=["KeyError", "TypeError", "missing key", "Unreadable"],
)
def test_a_verdict_that_trips_over_the_transcript_is_unreadable_and_flagged(verdict_fn, detail):
    message, flag = verdict(StandIn(verdict_fn, name="check_layer"), (OK, None))
    assert message == UNREADABLE
    assert flag == f"check_layer: unreadable transcript ({detail})"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"nd": ["<f8", [10**400], "", False]}, id="huge shape"),
        pytest.param({"nd": [",", [0], "", False]}, id="dtype ','"),
        pytest.param(
            {"t": [{"nd": ["<i8", [0], "", False]}, "torch.int64", True, True]},
            id="int Parameter requiring grad",
        ),
    ],
)
def test_any_malformed_transcript_is_unreadable_and_flagged(body):
    message, flag = verdict(StandIn(accept), ({"transcript": body}, None))
    assert message == UNREADABLE and flag.startswith("check_thing: unreadable transcript (")


# ------------------------------------------------------------------ judge_job


def _tiny_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title"),
        nbformat.v4.new_code_cell("def f(x):\n    return x"),
        nbformat.v4.new_code_cell(""),
        nbformat.v4.new_code_cell("import socket"),
        nbformat.v4.new_code_cell(""),
    ]
    return nb


def _tiny_case():
    """A plan of three tests (t1: two calls), its job for `_tiny_notebook` and submission."""
    plan = AssignmentPlan(
        "tiny",
        {
            "t1": HiddenTest("t1", 2.0, (StandIn(needs_ok, "check_a"), StandIn(needs_ok))),
            "t2": HiddenTest("t2", 1.5, (StandIn(needs_ok, "check_b"), StandIn(needs_ok))),
            "t3": HiddenTest("t3", 1.0, (StandIn(key_error, "check_c"),)),
        },
        locked={},
        solution_ids=frozenset(),
    )
    job = Job()
    job.add("def f(x):\n    return x", ("learner", 1))
    job.add(Probe("t1, call 0"), ("probe", ("t1", 0)))
    job.add(Probe("t1, call 1"), ("probe", ("t1", 1)))
    job.add("import socket", ("learner", 3))
    job.add(Probe("t2, call 0"), ("probe", ("t2", 0)))
    job.add(Probe("t2, call 1"), ("probe", ("t2", 1)))
    job.add(Probe("t3, call 0"), ("probe-after", ("t3", 0)))
    submission = Submission("ada", "tiny", nbformat.writes(_tiny_notebook()))
    return plan, submission, job


def test_judge_job_scores_messages_cells_and_flags():
    plan, submission, job = _tiny_case()
    outcome = JobResult(
        cell_errors=[None, "ModuleNotFoundError: No module named 'socket'"],
        cell_outputs=["defined\n", ""],
        probe_results=[(OK, None), (OK, None), (NOT_OK, None), (OK, None), (OK, None)],
        finished=True,
        wall_seconds=1.25,
    )
    result = judge_job(plan, submission, _tiny_notebook(), job, outcome)
    assert (result.student, result.assignment, result.problem) == ("ada", "tiny", None)
    assert result.seconds == 1.25
    assert [(t.grade_id, t.points, t.max_points, t.message) for t in result.tests] == [
        ("t1", 2.0, 2.0, None),
        ("t2", 0.0, 1.5, "The layer is not ok."),
        ("t3", 0.0, 1.0, UNREADABLE),
    ]
    assert result.score == 2.0 and result.max_score == 4.5
    empty = {"error": None, "output": ""}
    assert result.cells == [
        empty,
        {"error": None, "output": "defined\n"},
        empty,
        {"error": "ModuleNotFoundError: No module named 'socket'", "output": ""},
        empty,
    ]
    assert result.flags == [
        "check_c: unreadable transcript (KeyError: 'x')",
        "cell 4 imports socket (opens network connections)",
    ]


def test_judge_job_of_a_job_that_died_marks_later_tests_not_run():
    plan, submission, job = _tiny_case()
    outcome = JobResult(
        cell_errors=[None],
        cell_outputs=["defined\n"],
        probe_results=[({"missing": "f"}, None)],
        finished=False,
        exit_code=137,
    )
    result = judge_job(plan, submission, _tiny_notebook(), job, outcome)
    assert result.problem == "the process was killed (signal 9)"
    assert [(t.points, t.message) for t in result.tests] == [
        (0.0, "NameError: name 'f' is not defined."),
        (0.0, "Not run: the process was killed (signal 9)."),
        (0.0, "Not run: the process was killed (signal 9)."),
    ]
    assert result.cells[3] == {"error": None, "output": ""}
    assert result.flags == ["cell 4 imports socket (opens network connections)"]


def test_judge_job_stops_at_a_test_whose_second_call_never_ran():
    plan, submission, job = _tiny_case()
    outcome = JobResult(
        cell_errors=[None], cell_outputs=[""], probe_results=[(OK, None)], timed_out=True
    )
    result = judge_job(plan, submission, _tiny_notebook(), job, outcome)
    assert result.tests[0].message == "Not run: stopped: the time limit was reached."


def test_judge_job_without_a_problem_says_the_notebook_stopped_earlier():
    plan, submission, job = _tiny_case()
    outcome = JobResult(cell_errors=[None, None], cell_outputs=["", ""], finished=True)
    result = judge_job(plan, submission, _tiny_notebook(), job, outcome)
    assert {t.message for t in result.tests} == {"Not run: the notebook stopped earlier."}
    assert result.score == 0.0


def test_judge_job_of_a_real_plan_that_died_after_two_probes():
    plan = load_plan("bn01_forward")
    notebook_text = nbformat.writes(solved("bn01_forward"))
    submission = Submission("bob", "bn01_forward", notebook_text)
    notebook, job = prepare(plan, submission)
    # The prelude, setup (cell 1), the learner's cell 3, visible tests (cell 5), then the
    # probes of cells 6 and 7; the process died in the probe of cell 8.
    outcome = JobResult(
        cell_errors=[None, None, "NotImplementedError", None],
        cell_outputs=["", "", "", "visible tests passed\n"],
        probe_results=[({"missing": "batchnorm_forward"}, None), ({"crashed": "E: x"}, None)],
        finished=False,
        exit_code=1,
    )
    result = judge_job(plan, submission, notebook, job, outcome)
    not_run = "Not run: the process ended early (exit code 1)."
    assert [(t.grade_id, t.points, t.message) for t in result.tests] == [
        ("test-forward-basic", 0.0, "NameError: name 'batchnorm_forward' is not defined."),
        (
            "test-forward-small-batch",
            0.0,
            "The test could not run on what your code returned (E: x).",
        ),
        ("test-forward-near-constant", 0.0, not_run),
        ("test-forward-float32", 0.0, not_run),
        ("test-running-basic", 0.0, not_run),
        ("test-running-momentum", 0.0, not_run),
        ("test-running-inputs-kept", 0.0, not_run),
        ("test-inference-basic", 0.0, not_run),
        ("test-inference-one-example", 0.0, not_run),
    ]
    assert result.max_score == 15.0
    assert result.cells[3] == {"error": "NotImplementedError", "output": ""}
    assert result.cells[5] == {"error": None, "output": "visible tests passed\n"}
    assert result.cells[11] == {"error": None, "output": ""}
    assert len(result.cells) == len(notebook.cells) and result.flags == []


def test_prepare_reports_an_unreadable_notebook():
    plan = load_plan("bn01_forward")
    notebook, problem = prepare(plan, Submission("cy", "bn01_forward", "{not json"))
    assert notebook is None and problem.startswith("the notebook could not be read (")
