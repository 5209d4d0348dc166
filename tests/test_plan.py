"""Unit tests of `autograder.plan`: the grading plan read from the course's notebooks and
the sandbox job built from a submission.

Expected tests, points and calls are read from the notebooks' JSON here, independently of
`load_plan`; the job layouts of bn01_forward are written out by hand from its notebook.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from autograder.plan import (
    RELEASE,
    SOLUTIONS,
    PlanError,
    assignments,
    build_job,
    load_plan,
)
from autograder.sandbox import Probe
from tests.grading_class import exercise, solved

ASSIGNMENTS = sorted(p.name for p in SOLUTIONS.iterdir() if (p / f"{p.name}.ipynb").exists())
CALL_LINE = re.compile(r"^(check_\w+)\(([\w, ]*)\)$")


def _cells(folder: Path, assignment: str) -> list[dict]:
    return json.loads((folder / assignment / f"{assignment}.ipynb").read_text())["cells"]


def _meta(cell: dict) -> dict:
    return cell["metadata"].get("nbgrader", {})


def _text(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _hidden_tests(assignment: str) -> dict[str, tuple[float, list[tuple[str, tuple]]]]:
    """grade_id -> (points, [(check name, argument names)]) from the solution's JSON."""
    tests = {}
    for cell in _cells(SOLUTIONS, assignment):
        meta = _meta(cell)
        if cell["cell_type"] == "code" and meta.get("grade") and not meta.get("solution"):
            calls = []
            for line in _text(cell).splitlines():
                match = CALL_LINE.match(line.strip())
                if match:
                    args = tuple(a.strip() for a in match[2].split(",") if a.strip())
                    calls.append((match[1], args))
            tests[meta["grade_id"]] = (float(meta["points"]), calls)
    return tests


def test_assignments_are_the_solution_folders():
    assert assignments() == ASSIGNMENTS
    assert ASSIGNMENTS == [
        "bn01_forward",
        "bn02_backward",
        "bn03_conv",
        "bn04_torch",
        "bn05_inference",
    ]


def test_assignments_ignore_folders_without_their_notebook(tmp_path):
    (tmp_path / "a1").mkdir()
    (tmp_path / "a1" / "a1.ipynb").write_text("{}")
    (tmp_path / "a2").mkdir()
    (tmp_path / "a2" / "other.ipynb").write_text("{}")
    assert assignments(tmp_path) == ["a1"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_plan_tests_points_and_calls_match_the_solution_notebook(assignment):
    plan = load_plan(assignment)
    expected = _hidden_tests(assignment)
    assert list(plan.tests) == list(expected)
    for grade_id, (points, calls) in expected.items():
        test = plan.tests[grade_id]
        assert test.grade_id == grade_id and test.points == points
        assert [(c.name, c.args) for c in test.calls] == calls
        for call in test.calls:
            assert call.module == f"autograder.checks.{assignment}"
            check = call.check
            assert check.__name__ == call.name
            assert check.scenario.__module__ == f"autograder.scenarios.{assignment}"
            assert callable(check.verdict)
    assert plan.max_score == sum(points for points, _ in expected.values())


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_plan_locked_and_solution_cells_match_the_notebooks(assignment):
    plan = load_plan(assignment)
    released = _cells(RELEASE, assignment)
    locked = {
        _meta(c)["grade_id"]: _text(c)
        for c in released
        if c["cell_type"] == "code" and _meta(c).get("locked") and not _meta(c).get("grade")
    }
    assert plan.locked == locked
    solutions = {
        _meta(c)["grade_id"] for c in _cells(SOLUTIONS, assignment) if _meta(c).get("solution")
    }
    assert plan.solution_ids == solutions


def test_bn01_max_score_by_hand():
    assert load_plan("bn01_forward").max_score == 2 + 2 + 2 + 1 + 2 + 2 + 1 + 2 + 1


def test_probe_code_runs_the_scenario_against_learner():
    plan = load_plan("bn04_torch")
    (call,) = plan.tests["hidden_module_built_on_function"].calls
    namespace = {"LEARNER": {"BatchNorm2d": object}}
    exec(call.probe_code(), namespace)
    assert namespace["RESULT"] == {"missing": "BatchNormFunction"}


# ------------------------------------------------------------------ load_plan errors


def _course(tmp_path: Path, hidden_source: str) -> tuple[Path, Path]:
    """A one-assignment course 'bn01_forward' whose only hidden test is `hidden_source`."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(hidden_source)]
    notebook.cells[0].metadata["nbgrader"] = {
        "grade_id": "t1",
        "grade": True,
        "solution": False,
        "locked": True,
        "points": 1,
    }
    for folder in ("solutions", "release"):
        path = tmp_path / folder / "bn01_forward" / "bn01_forward.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(notebook, path)
    return tmp_path / "solutions", tmp_path / "release"


IMPORT = "from autograder.checks.bn01_forward import check_forward_basic, returned_unchanged\n"


def test_load_plan_reads_a_minimal_course(tmp_path):
    solutions, release = _course(tmp_path, IMPORT + "check_forward_basic(f)\n")
    plan = load_plan("bn01_forward", solutions, release)
    assert list(plan.tests) == ["t1"] and plan.tests["t1"].calls[0].args == ("f",)
    assert plan.locked == {} and plan.solution_ids == frozenset()


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("assert True\n", "calls no check"),
        (IMPORT + "check_forward_basic(f, eps=1)\n", "unsupported hidden-test call"),
        (IMPORT + "check_forward_basic(f.g)\n", "unsupported hidden-test call"),
        (IMPORT + "returned_unchanged(f)\n", "is not a graded check"),
    ],
)
def test_load_plan_refuses_unusable_hidden_tests(tmp_path, source, message):
    solutions, release = _course(tmp_path, source)
    with pytest.raises(PlanError, match=message):
        load_plan("bn01_forward", solutions, release)


def test_load_plan_needs_both_notebooks(tmp_path):
    with pytest.raises(PlanError, match="does not exist"):
        load_plan("bn01_forward", solutions=tmp_path)
    with pytest.raises(PlanError, match="does not exist"):
        load_plan("bn01_forward", release=tmp_path)


# ------------------------------------------------------------------ build_job (bn01)

A = "bn01_forward"


def probe(grade_id: str, kind: str = "probe"):
    return (kind, (grade_id, 0))


# Code cells of bn01_forward: setup 1, solution 3, visible tests 5, hidden tests 6-9,
# solution 11, visible tests 13, hidden tests 14-16, solution 18, visible tests 20,
# hidden tests 21-22 (the other cells are markdown).
BN01_ORIGINS = [
    ("locked", 1),
    ("learner", 3),
    ("locked", 5),
    probe("test-forward-basic"),
    probe("test-forward-small-batch"),
    probe("test-forward-near-constant"),
    probe("test-forward-float32"),
    ("learner", 11),
    ("locked", 13),
    probe("test-running-basic"),
    probe("test-running-momentum"),
    probe("test-running-inputs-kept"),
    ("learner", 18),
    ("locked", 20),
    probe("test-inference-basic"),
    probe("test-inference-one-example"),
]
BN01_TESTS = [origin[1][0] for origin in BN01_ORIGINS if origin[0] == "probe"]


@pytest.fixture(scope="module")
def plan():
    return load_plan(A)


def _grade_id(notebook, index: int) -> str:
    return notebook.cells[index].metadata["nbgrader"]["grade_id"]


def test_job_of_the_filled_in_exercise_follows_the_notebook(plan):
    submission = solved(A)
    job = build_job(plan, submission)
    assert job.origins == BN01_ORIGINS
    released = {_meta(c).get("grade_id"): _text(c) for c in _cells(RELEASE, A)}
    for (kind, where), item in zip(job.origins, job.items, strict=True):
        if kind == "learner":
            assert item == submission.cells[where].source
        elif kind == "locked":
            assert item == released[_grade_id(submission, where)]
        else:
            assert isinstance(item, Probe)
            namespace = {"LEARNER": {}}
            exec(item.code, namespace)
            expected_name = "batchnorm_forward"
            if "running" in where[0]:
                expected_name = "update_running_stats"
            elif "inference" in where[0]:
                expected_name = "batchnorm_inference"
            assert namespace["RESULT"] == {"missing": expected_name}


def test_edited_locked_cells_run_the_released_source(plan):
    submission = solved(A)
    released_setup = submission.cells[1].source
    released_visible = submission.cells[5].source
    submission.cells[1].source = "import numpy as np\nnp.allclose = lambda *a, **k: True"
    submission.cells[5].source = "pass  # the visible tests, deleted"
    job = build_job(plan, submission)
    assert job.origins == BN01_ORIGINS
    assert job.items[0] == released_setup and "np.allclose =" not in job.items[0]
    assert job.items[2] == released_visible


def test_hidden_test_cells_run_released_probes_whatever_they_hold(plan):
    submission = solved(A)
    submission.cells[6].source = "print('my own test')"
    job = build_job(plan, submission)
    assert job.origins == BN01_ORIGINS
    assert all("my own test" not in getattr(item, "code", item) for item in job.items)


def test_duplicated_test_and_locked_cells_count_once(plan):
    submission = solved(A)
    twin_test = nbformat.from_dict(submission.cells[6])
    twin_setup = nbformat.from_dict(submission.cells[1])
    twin_setup.source = "print('second setup')"
    submission.cells.insert(7, twin_test)  # right after test-forward-basic
    submission.cells.append(twin_setup)  # a second setup cell at the end
    job = build_job(plan, submission)
    # Every cell from index 7 on moves one down; the two twins add nothing.
    shifted = [
        (kind, where + 1 if isinstance(where, int) and where >= 7 else where)
        for kind, where in BN01_ORIGINS
    ]
    assert job.origins == shifted
    assert job.origins.count(probe("test-forward-basic")) == 1
    assert "print('second setup')" not in job.items


def test_a_duplicated_solution_cell_runs_both_copies(plan):
    submission = solved(A)
    twin = nbformat.from_dict(submission.cells[3])
    twin.source = "print('again')"
    submission.cells.insert(4, twin)
    job = build_job(plan, submission)
    assert job.origins[1:3] == [("learner", 3), ("learner", 4)]
    assert job.items[2] == "print('again')"


def test_deleted_test_cells_are_probed_after_the_last_cell(plan):
    submission = solved(A)
    del submission.cells[14]  # test-running-basic
    del submission.cells[7]  # test-forward-small-batch
    job = build_job(plan, submission)
    expected = [
        (kind, where - (where > 7) - (where > 14) if isinstance(where, int) else where)
        for kind, where in BN01_ORIGINS
        if where not in (("test-forward-small-batch", 0), ("test-running-basic", 0))
    ]
    expected += [
        probe("test-forward-small-batch", "probe-after"),
        probe("test-running-basic", "probe-after"),
    ]
    assert job.origins == expected
    assert all(isinstance(item, Probe) for item in job.items[-2:])


def test_stripped_metadata_runs_every_code_cell_as_learner_code(plan):
    submission = solved(A)
    for cell in submission.cells:
        cell.metadata.pop("nbgrader", None)
    submission.cells[1].source = "print('edited setup')"
    job = build_job(plan, submission)
    code = [i for i, c in enumerate(submission.cells) if c.cell_type == "code"]
    assert job.origins == [("learner", i) for i in code] + [
        probe(grade_id, "probe-after") for grade_id in BN01_TESTS
    ]
    assert job.items[: len(code)] == [submission.cells[i].source for i in code]
    assert job.items[0] == "print('edited setup')"


def test_markdown_and_raw_cells_produce_no_items(plan):
    notebook = nbformat.v4.new_notebook()
    markdown = nbformat.v4.new_markdown_cell("x = 1")
    markdown.metadata["nbgrader"] = {"grade_id": "test-forward-basic"}
    notebook.cells = [markdown, nbformat.v4.new_raw_cell("y = 2")]
    job = build_job(plan, notebook)
    assert job.origins == [probe(grade_id, "probe-after") for grade_id in BN01_TESTS]
    filled = solved(A)
    used = {where for kind, where in build_job(plan, filled).origins if isinstance(where, int)}
    assert all(filled.cells[i].cell_type == "code" for i in used)


def test_added_cells_and_odd_metadata_run_as_learner_code(plan):
    submission = exercise(A)
    added = nbformat.v4.new_code_cell("helper = 1")
    odd = nbformat.v4.new_code_cell("other = 2")
    odd.metadata["nbgrader"] = "not a dict"
    numeric = nbformat.v4.new_code_cell("third = 3")
    numeric.metadata["nbgrader"] = {"grade_id": 7}
    submission.cells[2:2] = [added, odd, numeric]
    job = build_job(plan, submission)
    assert job.origins[1:4] == [("learner", 2), ("learner", 3), ("learner", 4)]
    assert job.items[1:4] == ["helper = 1", "other = 2", "third = 3"]
    assert len(job.origins) == len(BN01_ORIGINS) + 3


def test_an_unhashable_grade_id_runs_as_learner_code(plan):
    submission = exercise(A)
    cell = nbformat.v4.new_code_cell("helper = 1")
    cell.metadata["nbgrader"] = {"grade_id": ["test-forward-basic"]}
    submission.cells.insert(2, cell)
    job = build_job(plan, submission)
    assert job.origins[1] == ("learner", 2)
