"""Unit tests of `autograder.scan.suspicious_code`: review flags for learner code."""

from __future__ import annotations

import nbformat
import pytest

from autograder.scan import suspicious_code
from tests.grading_class import exercise, solved
from tests.nbgrader_course import assignments


def notebook(*sources: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    return nb


FLAGGED = {
    "np.allclose": (
        "import numpy as np\nnp.allclose = lambda *a, **k: True",
        "replaces np.allclose",
    ),
    "numpy.testing": (
        "import numpy\nnumpy.testing.assert_allclose = print",
        "replaces numpy.testing.assert_allclose",
    ),
    "torch.allclose": ("torch.allclose = lambda *a, **k: True", "replaces torch.allclose"),
    "F.batch_norm": ("F.batch_norm = my_batch_norm", "replaces F.batch_norm"),
    "builtins": ("import builtins\nbuiltins.isinstance = f", "replaces builtins.isinstance"),
    "augmented": ("np.pi += 1", "replaces np.pi"),
    "annotated": ("np.allclose: object = f", "replaces np.allclose"),
    "deleted": ("del torch.allclose", "replaces torch.allclose"),
    "setattr": (
        "setattr(np, 'allclose', f)",
        "calls setattr (sets attributes dynamically)",
    ),
    "sys.modules": (
        "import sys\nsys.modules['numpy'] = fake",
        "uses sys.modules",
    ),
    "gc.get_objects": (
        "import gc\nobjects = gc.get_objects()",
        "calls gc.get_objects (walks the interpreter's objects)",
    ),
    "import autograder": (
        "import autograder.checks.core",
        "imports autograder.checks.core (imports the course's grading package)",
    ),
    "from autograder": (
        "from autograder.scenarios import common",
        "imports autograder.scenarios (imports the course's grading package)",
    ),
    "ctypes": ("import ctypes", "imports ctypes (loads native code)"),
    "socket": ("import socket", "imports socket (opens network connections)"),
    "subprocess": (
        "from subprocess import run",
        "imports subprocess (runs other programs)",
    ),
    "/etc/passwd": ("text = open('/etc/passwd').read()", "opens '/etc/passwd'"),
    "numpy under another name": (
        "import numpy as m\nm.allclose = lambda *a, **k: True",
        "replaces m.allclose",
    ),
    "testing imported from numpy": (
        "from numpy import testing as t\nt.assert_allclose = print",
        "replaces t.assert_allclose",
    ),
    "kill imported from os": (
        "from os import kill\nkill(1, 9)",
        "calls kill (signals processes)",
    ),
    "importlib": (
        "import importlib\nimportlib.import_module('autograder.reference')",
        "imports autograder.reference (imports the course's grading package)",
    ),
    "solutions/": (
        "nb = open('../solutions/bn01_forward/bn01_forward.ipynb').read()",
        "opens '../solutions/bn01_forward/bn01_forward.ipynb'",
    ),
    "relative solutions/": (
        "from pathlib import Path\nPath('solutions/x.ipynb').read_text()",
        "opens 'solutions/x.ipynb'",
    ),
    "os.kill": ("import os\nos.kill(os.getppid(), 9)", "calls os.kill (signals processes)"),
    "sys.exit": ("import sys\nsys.exit(0)", "calls sys.exit (ends the process)"),
    "__builtins__": ("__builtins__['len'] = f", "uses __builtins__"),
    "__code__": ("f.__code__ = g.__code__", "uses f.__code__"),
}


@pytest.mark.parametrize(("source", "flag"), FLAGGED.values(), ids=FLAGGED.keys())
def test_each_documented_construct_is_flagged(source, flag):
    assert flag in [f.removeprefix("cell 2 ") for f in suspicious_code(notebook("x = 1", source))]


def test_flags_name_the_cell_by_number_and_grade_id():
    submission = solved("bn01_forward")
    submission.cells[3].source += "\nnp.allclose = lambda *a, **k: True\n"
    submission.cells.insert(2, nbformat.v4.new_code_cell("import socket"))
    assert suspicious_code(submission) == [
        "cell 3 imports socket (opens network connections)",
        "cell 5 (batchnorm_forward) replaces np.allclose",
    ]


def test_a_construct_repeated_in_a_cell_is_flagged_once_per_cell():
    flags = suspicious_code(notebook("np.allclose = f\nnp.allclose = g", "np.allclose = h"))
    assert flags == ["cell 1 replaces np.allclose", "cell 2 replaces np.allclose"]


def test_a_cell_with_a_syntax_error_is_skipped():
    flags = suspicious_code(notebook("def broken(:\n    import socket", "import ctypes"))
    assert flags == ["cell 2 imports ctypes (loads native code)"]


def test_markdown_and_list_sources():
    nb = notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("import autograder"),
        nbformat.v4.new_code_cell(""),
    ]
    nb.cells[1].source = ["import ", "subprocess\n"]
    assert suspicious_code(nb) == ["cell 2 imports subprocess (runs other programs)"]


@pytest.mark.parametrize("assignment", assignments())
def test_honest_notebooks_are_not_flagged(assignment):
    assert suspicious_code(solved(assignment)) == []
    assert suspicious_code(exercise(assignment)) == []


HONEST = [
    "import numpy as np\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn",
    "x_hat = (x - mu) / np.sqrt(var + eps)\nout = np.allclose(x_hat, 0)",
    "self.weight = torch.nn.Parameter(torch.ones(3))\nself.running_mean.mul_(0.9)",
    "import matplotlib.pyplot as plt\nplt.plot([1, 2])",
    "with open('results.csv', 'w') as f:\n    f.write('1')",
    "cache = {}\ncache['x'] = x\nlayer.eval()\nmodel.training = False",
    "np.random.seed(0)\ntorch.manual_seed(0)\nnp.set_printoptions(precision=3)",
    "import os\npath = os.path.join('data', 'x.npy')",
    "%matplotlib inline",
]


@pytest.mark.parametrize("source", HONEST)
def test_honest_snippets_are_not_flagged(source):
    assert suspicious_code(notebook(source)) == []


def test_a_magic_line_does_not_hide_the_rest_of_the_cell():
    flags = suspicious_code(notebook("%matplotlib inline\nimport autograder"))
    assert flags == ["cell 1 imports autograder (imports the course's grading package)"]


def test_replacing_through_tuple_assignment_is_flagged():
    flags = suspicious_code(notebook("np.allclose, torch.allclose = f, f"))
    assert flags == ["cell 1 replaces np.allclose", "cell 1 replaces torch.allclose"]


def test_nbgrader_metadata_that_is_not_a_dict_is_ignored():
    nb = notebook("import socket")
    nb.cells[0].metadata["nbgrader"] = "not a dict"
    assert suspicious_code(nb) == ["cell 1 imports socket (opens network connections)"]


def test_a_deeply_nested_expression_is_skipped():
    assert suspicious_code(notebook("-" * 10_000 + "1", "import ctypes")) == [
        "cell 2 imports ctypes (loads native code)"
    ]


def test_an_alias_bound_in_one_cell_counts_in_another():
    flags = suspicious_code(notebook("import torch as tt", "tt.allclose = lambda *a: True"))
    assert flags == ["cell 2 replaces tt.allclose"]


def test_rebinding_an_imported_name_replaces_nothing_in_the_module():
    assert suspicious_code(notebook("from numpy import allclose\nallclose = 1")) == []
