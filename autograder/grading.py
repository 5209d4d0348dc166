"""Grade submissions: run each in the sandbox, judge the probes' transcripts on the host.

`grade_all` runs jobs on several sandboxes at once (one per worker, each a preloaded
zygote) and returns one `SubmissionResult` per submission, in the order given; the result
of a submission depends only on the submission, so any number of workers gives the same.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import nbformat

from autograder.checks.core import Failure, Unreadable, judge
from autograder.plan import AssignmentPlan, Job, build_job
from autograder.sandbox import Limits, Sandbox, SandboxError
from autograder.scan import suspicious_code
from autograder.scenarios.common import decode

PRELOAD = ["numpy", "torch", "autograder.scenarios.common", "autograder.scenarios.runner"]
# IPython syntax (%magics, !commands) in a learner's cell becomes calls to get_ipython(),
# which the sandbox answers by doing nothing.
PRELUDE = """\
class _NoIPython:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def get_ipython():
    return _NoIPython()
"""


@dataclass(frozen=True)
class Submission:
    student: str
    assignment: str
    notebook: str  # the notebook's JSON text


@dataclass
class TestResult:
    grade_id: str
    points: float
    max_points: float
    message: str | None = None  # why points were lost, shown to the learner


@dataclass
class SubmissionResult:
    student: str
    assignment: str
    tests: list[TestResult] = field(default_factory=list)
    cells: list[dict] = field(default_factory=list)  # per submission cell: error, output
    problem: str | None = None  # the job ended abnormally, or the notebook was unreadable
    flags: list[str] = field(default_factory=list)  # for the instructor's review
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return sum(test.points for test in self.tests)

    @property
    def max_score(self) -> float:
        return sum(test.max_points for test in self.tests)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> SubmissionResult:
        tests = [TestResult(**test) for test in data.pop("tests")]
        return cls(tests=tests, **data)


def prepare(plan: AssignmentPlan, submission: Submission):
    """(notebook, job) for a submission, or (None, problem) if it cannot be read."""
    try:
        notebook = nbformat.reads(submission.notebook, as_version=4)
    except Exception as err:  # noqa: BLE001 (any unreadable file is reported, not raised)
        return None, f"the notebook could not be read ({type(err).__name__})"
    job = build_job(plan, notebook)
    job.items = [PRELUDE, *job.items]
    job.origins = [("prelude", None), *job.origins]
    return notebook, job


def verdict(call, probe) -> tuple[str | None, str | None]:
    """Judge one probe's RESULT on the host: (failure message or None, flag or None)."""
    result, error = probe
    if error is not None:
        return "The test could not run.", f"a probe failed inside the sandbox: {error}"
    if not isinstance(result, dict) or len(result) != 1:
        return "The test could not run.", "a probe returned malformed data"
    ((kind, body),) = result.items()
    if kind == "missing" and isinstance(body, str):
        return f"NameError: name '{body}' is not defined.", None
    if kind == "crashed" and isinstance(body, str):
        return f"The test could not run on what your code returned ({body[:300]}).", None
    if kind != "transcript":
        return "The test could not run.", "a probe returned malformed data"
    try:
        transcript = decode(body)  # raises ValueError on anything malformed
        judge(call.check.verdict, transcript)
    except Unreadable as failure:
        return str(failure), f"{call.name}: unreadable transcript ({failure.detail[:200]})"
    except ValueError as err:
        failure = Unreadable(str(err))
        return str(failure), f"{call.name}: unreadable transcript ({err})"
    except Failure as failure:
        return str(failure), None
    return None, None


def judge_job(plan: AssignmentPlan, submission: Submission, notebook, job: Job, outcome):
    """The `SubmissionResult` of a job's outcome (a `JobResult`)."""
    result = SubmissionResult(submission.student, submission.assignment)
    result.problem = outcome.problem
    result.seconds = outcome.wall_seconds
    cells = {index: {"error": None, "output": ""} for index in range(len(notebook.cells))}
    probes: dict[tuple[str, int], tuple] = {}
    cell_number = probe_number = 0
    for (kind, where), item in zip(job.origins, job.items, strict=True):
        if isinstance(item, str):
            if kind in ("learner", "locked") and cell_number < len(outcome.cell_errors):
                cells[where] = {
                    "error": outcome.cell_errors[cell_number],
                    "output": outcome.cell_outputs[cell_number],
                }
            cell_number += 1
        else:
            if probe_number < len(outcome.probe_results):
                probes[where] = outcome.probe_results[probe_number]
            probe_number += 1
    result.cells = [cells[index] for index in range(len(notebook.cells))]
    for grade_id, test in plan.tests.items():
        message = None
        for number, call in enumerate(test.calls):
            if (grade_id, number) not in probes:
                message = "Not run: " + (result.problem or "the notebook stopped earlier") + "."
                break
            message, flag = verdict(call, probes[grade_id, number])
            if flag:
                result.flags.append(flag)
            if message:
                break
        points = 0.0 if message else test.points
        result.tests.append(TestResult(grade_id, points, test.points, message))
    result.flags += suspicious_code(notebook)
    return result


def _unreadable(submission: Submission, plan: AssignmentPlan, problem: str) -> SubmissionResult:
    result = SubmissionResult(submission.student, submission.assignment, problem=problem)
    result.tests = [
        TestResult(t.grade_id, 0.0, t.points, f"Not run: {problem}.") for t in plan.tests.values()
    ]
    return result


def grade_all(
    submissions: list[Submission],
    plans: dict[str, AssignmentPlan],
    *,
    workers: int = 2,
    limits: Limits | None = None,
    isolated: bool = True,
    on_result: Callable[[SubmissionResult], None] | None = None,
) -> list[SubmissionResult]:
    """Grade `submissions` on `workers` sandboxes; results in the order of `submissions`.

    `on_result` is called (from the calling thread) as each result arrives, for progress
    and for saving results as soon as they exist. A sandbox that fails is replaced, and
    the submission it was grading is reported with the failure rather than retried; so is
    a submission the grader fails on in any other way, flagged for review.
    """
    results: list[SubmissionResult | None] = [None] * len(submissions)
    todo: queue.Queue = queue.Queue()
    done: queue.Queue = queue.Queue()
    for index in range(len(submissions)):
        todo.put(index)

    def work() -> None:
        box = None
        try:
            while True:
                try:
                    index = todo.get_nowait()
                except queue.Empty:
                    return
                if box is None:
                    box = Sandbox(preload=PRELOAD, limits=limits, isolated=isolated)
                try:
                    result = _grade_one(box, submissions[index], plans)
                except Exception as err:  # noqa: BLE001 (one notebook never stops a class)
                    if isinstance(err, SandboxError):
                        box.close()
                        box = None
                    plan = plans[submissions[index].assignment]
                    problem = f"the grader could not grade it ({type(err).__name__}: {err})"
                    result = _unreadable(submissions[index], plan, problem)
                    result.flags.append(problem)
                done.put(("result", index, result))
        except BaseException as err:  # noqa: BLE001 (handed to the calling thread)
            done.put(("error", None, err))
        finally:
            if box is not None:
                box.close()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, workers))]
    for thread in threads:
        thread.start()
    received = 0
    while received < len(submissions):
        kind, index, value = done.get()
        if kind == "error":
            raise GradingError(f"a grading worker failed: {value}") from value
        results[index] = value
        received += 1
        if on_result is not None:
            on_result(value)
    for thread in threads:
        thread.join()
    return results


class GradingError(RuntimeError):
    """The grader itself could not go on (the sandbox does not start, for instance)."""


def _grade_one(box: Sandbox, submission: Submission, plans) -> SubmissionResult:
    plan = plans[submission.assignment]
    started = time.monotonic()
    notebook, job = prepare(plan, submission)
    if notebook is None:
        return _unreadable(submission, plan, job)
    outcome = box.run(job.items)
    result = judge_job(plan, submission, notebook, job, outcome)
    result.seconds = round(time.monotonic() - started, 3)
    return result
