"""What grading a submission runs: its cells and, in place of each hidden test, probes.

An `AssignmentPlan` is read from the course's own notebooks, never from a submission:
the hidden tests and their points from `solutions/<id>/<id>.ipynb`, the locked cells from
the released `exercises/<id>/<id>.ipynb`. `build_job` then walks a submission in order:

* a cell whose nbgrader ``grade_id`` names a solution cell runs the learner's code;
* a locked cell of the release (setup, visible tests) runs the released source, whatever
  the submission holds there;
* a hidden-test cell becomes one probe per check call, which runs the check's scenario
  against the learner's namespace as it is at that point (see `autograder.scenarios`);
* any other code cell (cells the learner added, or every cell if the metadata was
  stripped) runs as the learner's code.

Hidden tests missing from the submission (deleted, or their metadata stripped) are probed
after the last cell; a grade_id that appears twice counts once, at its first position.
"""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from IPython.core.inputtransformer2 import TransformerManager

from autograder.sandbox import Probe

REPO = Path(__file__).resolve().parents[1]
SOLUTIONS = REPO / "solutions"
RELEASE = REPO / "exercises"


class PlanError(RuntimeError):
    """The course's own notebooks cannot be turned into a grading plan."""


@dataclass(frozen=True)
class CheckCall:
    """One call in a hidden-test cell, e.g. ``check_forward_basic(batchnorm_forward)``."""

    module: str  # autograder.checks.<assignment>
    name: str  # check_forward_basic
    args: tuple[str, ...]  # the learner's names passed to it

    @property
    def check(self):
        return getattr(importlib.import_module(self.module), self.name)

    def probe_code(self) -> str:
        scenario = self.check.scenario
        return (
            "from autograder.scenarios import runner\n"
            f"RESULT = runner.run({scenario.__module__!r}, {scenario.__name__!r}, "
            f"{list(self.args)!r}, LEARNER)\n"
        )


@dataclass(frozen=True)
class HiddenTest:
    grade_id: str
    points: float
    calls: tuple[CheckCall, ...]


@dataclass(frozen=True)
class AssignmentPlan:
    assignment: str
    tests: dict[str, HiddenTest]  # in notebook order
    locked: dict[str, str]  # grade_id -> released source of a locked, ungraded cell
    solution_ids: frozenset[str]

    @property
    def max_score(self) -> float:
        return sum(test.points for test in self.tests.values())


@dataclass
class Job:
    """The items for the sandbox and, for each, where it came from."""

    items: list = field(default_factory=list)  # str (cell source) or Probe
    origins: list[tuple[str, object]] = field(default_factory=list)
    # ("learner", submission cell index) | ("locked", submission cell index)
    # | ("probe", (grade_id, call index)) | ("probe-after", (grade_id, call index))

    def add(self, item, origin) -> None:
        self.items.append(item)
        self.origins.append(origin)


def assignments(solutions: Path = SOLUTIONS) -> list[str]:
    """The assignment ids: folders of `solutions` holding ``<id>/<id>.ipynb``."""
    return sorted(p.parent.name for p in solutions.glob("*/*.ipynb") if p.stem == p.parent.name)


def _nbgrader(cell) -> dict:
    metadata = cell.get("metadata", {})
    meta = metadata.get("nbgrader", {}) if isinstance(metadata, dict) else {}
    return meta if isinstance(meta, dict) else {}


def grade_id(cell) -> str | None:
    """The cell's nbgrader grade_id, or None (also when a submission mangled it)."""
    value = _nbgrader(cell).get("grade_id")
    return value if isinstance(value, str) else None


def python_source(cell) -> str:
    """A code cell's source as Python: IPython syntax (%magics, !commands) becomes calls to
    get_ipython(), as in a Jupyter kernel."""
    source = cell.get("source", "")
    source = "".join(source) if isinstance(source, list) else str(source)
    try:
        transformed = TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001 (running or parsing it reports the error)
        return source
    return source if transformed.rstrip("\n") == source.rstrip("\n") else transformed


def _check_calls(source: str, assignment: str) -> tuple[CheckCall, ...]:
    """The check calls of a hidden-test cell of the source notebook."""
    module = f"autograder.checks.{assignment}"
    imported = set()
    calls = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == module:
            imported.update(alias.name for alias in node.names)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id not in imported:
                continue
            if node.keywords or not all(isinstance(a, ast.Name) for a in node.args):
                raise PlanError(f"{assignment}: unsupported hidden-test call {ast.unparse(node)}")
            calls.append(CheckCall(module, node.func.id, tuple(a.id for a in node.args)))
    return tuple(calls)


def load_plan(assignment: str, solutions: Path = SOLUTIONS, release: Path = RELEASE):
    """The grading plan of `assignment` from the course's notebooks."""
    source_path = solutions / assignment / f"{assignment}.ipynb"
    release_path = release / assignment / f"{assignment}.ipynb"
    for path in (source_path, release_path):
        if not path.exists():
            raise PlanError(f"{path} does not exist; run `python -m autograder release`.")
    source = nbformat.read(source_path, as_version=4)
    released = nbformat.read(release_path, as_version=4)
    tests, solution_ids = {}, set()
    for cell in source.cells:
        meta = _nbgrader(cell)
        if cell.cell_type != "code" or "grade_id" not in meta:
            continue
        if meta.get("solution"):
            solution_ids.add(meta["grade_id"])
        elif meta.get("grade"):
            calls = _check_calls(cell.source, assignment)
            if not calls:
                raise PlanError(f"{assignment}: hidden test {meta['grade_id']} calls no check")
            for call in calls:
                if not hasattr(call.check, "scenario"):
                    raise PlanError(f"{call.module}.{call.name} is not a graded check")
            tests[meta["grade_id"]] = HiddenTest(meta["grade_id"], float(meta["points"]), calls)
    locked = {
        _nbgrader(cell)["grade_id"]: cell.source
        for cell in released.cells
        if cell.cell_type == "code"
        and "grade_id" in _nbgrader(cell)
        and not _nbgrader(cell).get("solution")
        and _nbgrader(cell)["grade_id"] not in tests
    }
    return AssignmentPlan(assignment, tests, locked, frozenset(solution_ids))


def build_job(plan: AssignmentPlan, submission) -> Job:
    """The sandbox items for a submission (an nbformat notebook), in order."""
    job, seen = Job(), set()
    for index, cell in enumerate(submission.cells):
        if cell.get("cell_type") != "code":
            continue
        name = grade_id(cell)
        first = name is not None and name not in seen
        if first:
            seen.add(name)
        if first and name in plan.tests:
            for number, call in enumerate(plan.tests[name].calls):
                job.add(Probe(call.probe_code()), ("probe", (name, number)))
        elif first and name in plan.locked:
            job.add(plan.locked[name], ("locked", index))
        elif name in plan.tests or name in plan.locked:
            continue  # a duplicate of a test or locked cell runs nothing
        else:
            job.add(python_source(cell), ("learner", index))
    for name, test in plan.tests.items():
        if name not in seen:
            for number, call in enumerate(test.calls):
                job.add(Probe(call.probe_code()), ("probe-after", (name, number)))
    return job
