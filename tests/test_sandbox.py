"""The grading sandbox contains hostile learner code and keeps working afterwards."""

import os
import subprocess
import time
from pathlib import Path

import pytest

from autograder.sandbox import Limits, Probe, Sandbox, check_support

REPO = Path(__file__).resolve().parents[1]

UNSUPPORTED = check_support()
# CI installs bubblewrap, so there a missing sandbox is a failure, not a skip.
pytestmark = pytest.mark.skipif(
    UNSUPPORTED is not None and not os.environ.get("CI"),
    reason=f"sandbox unavailable: {UNSUPPORTED}",
)

LIMITS = Limits(
    wall_seconds=4, cpu_seconds=3, memory_bytes=512 * 2**20, processes=16, output_bytes=4096
)


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(preload=["numpy"], limits=LIMITS) as box:
        yield box


def test_runs_cells_in_one_namespace_and_returns_the_probe_result(sandbox):
    result = sandbox.run(
        ["import numpy as np\nx = np.arange(4.0)", "print('mean', x.mean())"],
        probe="RESULT = {'sum': float(LEARNER['x'].sum())}",
    )
    assert result.problem is None
    assert result.cell_errors == [None, None]
    assert result.probe_result == {"sum": 6.0}
    assert result.output == "mean 1.5\n"


def test_probes_see_the_namespace_as_it_is_at_their_position(sandbox):
    read_a = Probe("RESULT = LEARNER['a']")
    result = sandbox.run(["a = 1", read_a, "a = 2", read_a, "del a", read_a])
    assert result.probe_results[:2] == [(1, None), (2, None)]
    assert result.probe_results[2] == (None, "KeyError: 'a'")
    assert result.cell_errors == [None, None, None]


def test_each_cell_reports_what_it_printed(sandbox):
    result = sandbox.run(["print('one')", Probe("print('probe'); RESULT = 0"), "print('two')"])
    assert result.cell_outputs == ["one\n", "two\n"]
    assert result.output == "one\ntwo\n"


def test_probes_import_the_scenarios_and_nothing_else_of_the_course(sandbox):
    scenarios = "import autograder.scenarios.common\nRESULT = 'imported'"
    reference = "import autograder.reference"
    result = sandbox.run([Probe(scenarios), Probe(reference)])
    assert result.probe_results[0] == ("imported", None)
    assert result.probe_results[1][1].startswith("ModuleNotFoundError")


def test_an_error_in_one_cell_does_not_stop_the_next(sandbox):
    cells = ["1 / 0", "import sys; sys.exit(3)", "a = 1"]
    result = sandbox.run(cells, probe="RESULT = LEARNER['a']")
    assert result.cell_errors == ["ZeroDivisionError: division by zero", "SystemExit: 3", None]
    assert result.probe_result == 1
    assert result.problem is None


def test_an_infinite_loop_is_stopped_at_the_cpu_limit(sandbox):
    result = sandbox.run(["while True:\n    pass"])
    # On a loaded machine the wall clock may run out first; either limit must stop it.
    assert result.problem in {
        "stopped: the CPU-time limit was reached",
        "stopped: the time limit was reached",
    }


def test_a_sleeping_job_is_stopped_at_the_wall_clock_limit(sandbox):
    started = time.monotonic()
    result = sandbox.run(["import time\ntime.sleep(60)"])
    assert result.timed_out
    assert result.problem == "stopped: the time limit was reached"
    assert time.monotonic() - started < LIMITS.wall_seconds + 3
    assert time.monotonic() - started < LIMITS.wall_seconds + 3


def test_a_memory_bomb_gets_a_memory_error(sandbox):
    result = sandbox.run(["blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))"])
    assert result.cell_errors == ["MemoryError"]


def test_a_fork_bomb_is_capped_by_the_process_limit(sandbox):
    code = (
        "import os, time\n"
        "started = 0\n"
        "for _ in range(200):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    started += 1\n"
    )
    result = sandbox.run([code], probe="RESULT = LEARNER['started']")
    assert 0 < result.probe_result < LIMITS.processes


def test_processes_started_by_a_job_end_with_it(sandbox):
    marker = "4711.25"
    sandbox.run([f"import subprocess\nsubprocess.Popen(['sleep', '{marker}'])"])
    time.sleep(0.5)
    survivors = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True)
    assert survivors.stdout == b""


def test_huge_output_is_truncated(sandbox):
    result = sandbox.run(["for _ in range(10_000):\n    print('x' * 100)"])
    assert result.output_truncated
    assert len(result.output) <= LIMITS.output_bytes
    assert result.cell_errors == [None]


def test_os_exit_is_reported_and_the_sandbox_survives(sandbox):
    result = sandbox.run(["import os\nos._exit(0)", "a = 1"])
    assert not result.finished
    assert "ended early" in result.problem
    assert sandbox.run(["b = 2"], probe="RESULT = LEARNER['b']").probe_result == 2


def test_signalling_everything_visible_harms_only_the_job(sandbox):
    sandbox.run(["import os, signal\nos.kill(-1, signal.SIGKILL)"])
    sandbox.run(["import os, signal\nos.kill(0, signal.SIGKILL)"])
    assert sandbox.run(["c = 3"], probe="RESULT = LEARNER['c']").probe_result == 3


@pytest.mark.parametrize(
    "path",
    [
        REPO / "autograder" / "reference.py",
        REPO / "solutions",
        REPO / "README.md",
        Path.home() / ".bashrc",
    ],
)
def test_course_files_are_invisible(sandbox, path):
    result = sandbox.run([f"import os\nprint(os.path.exists({str(path)!r}))"])
    assert result.output == "False\n"


def test_only_the_jobs_own_folder_is_writable(sandbox):
    result = sandbox.run(
        [
            f"open({str(REPO / 'pwned.txt')!r}, 'w')",
            "open('/usr/pwned.txt', 'w')",
            "open('/pwned.txt', 'w')",
            "import os, tempfile\n"
            "open(os.path.join(tempfile.gettempdir(), 'mine.txt'), 'w').write('ok')",
            "open('mine.txt', 'w').write('ok')",
        ]
    )
    assert all(
        error.startswith(("FileNotFoundError", "PermissionError", "OSError"))
        for error in result.cell_errors[:3]
    ), result.cell_errors
    assert result.cell_errors[3:] == [None, None]
    assert not (REPO / "pwned.txt").exists()


def test_each_job_gets_a_fresh_folder(sandbox):
    sandbox.run(
        [
            "import os, tempfile\n"
            "open(os.path.join(tempfile.gettempdir(), 'left-behind.txt'), 'w').write('secret')\n"
            "open('left-behind.txt', 'w').write('secret')"
        ]
    )
    result = sandbox.run(
        [
            "import os, tempfile\n"
            "print(os.path.exists(os.path.join(tempfile.gettempdir(), 'left-behind.txt')),"
            " os.path.exists('left-behind.txt'))"
        ]
    )
    assert result.output == "False False\n"


def test_there_is_no_network(sandbox):
    result = sandbox.run(["import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=2)"])
    assert result.cell_errors[0].startswith("OSError: [Errno 101] Network is unreachable")
