"""Run untrusted learner code in isolation: bubblewrap around a preloaded zygote.

A `Sandbox` starts one zygote process (`autograder/zygote.py`) under bubblewrap. The
zygote sees only the Python installation, read-only, and a private /sandbox: not the course, not the
gradebook, not other submissions, no network. It imports numpy and torch once; each job
then runs in a fresh forked process with its own namespaces and these limits:

* wall-clock and CPU time, address space, number of processes, file size;
* captured output is cut at `Limits.output_bytes` (the job keeps running);
* every process the job starts ends with it (it is PID 1 of its own namespace).

A job is a list of items run in order: learner cells (source strings), run in one
namespace, and `Probe`s: trusted code that reads that namespace as ``LEARNER`` and sets
``RESULT`` to plain JSON data. Probes can import the course's scenario modules
(`autograder.scenarios`), the only part of the course mounted in the sandbox. The host
treats everything that comes back as untrusted data.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from dataclasses import asdict, dataclass, field
from pathlib import Path

from autograder import zygote

ZYGOTE_DIR = "/opt/grader"
NOBODY = 65534


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create namespaces on this machine."""


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the learner's code)."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one job."""

    wall_seconds: float = 60.0
    cpu_seconds: int = 60
    memory_bytes: int = 2 * 2**30  # on top of what the preloaded modules already map
    processes: int = 64
    file_bytes: int = 64 * 2**20  # the job's private /sandbox, and any one file
    output_bytes: int = 256 * 2**10
    event_bytes: int = 64 * 2**20  # cell events and the probe's result


@dataclass(frozen=True)
class Probe:
    """Trusted code run between or after learner cells (see the module docstring)."""

    code: str


@dataclass
class JobResult:
    """What came back from one job; every field is data the learner's code could shape."""

    cell_errors: list[str | None] = field(default_factory=list)
    cell_outputs: list[str] = field(default_factory=list)
    probe_results: list[tuple[object, str | None]] = field(default_factory=list)
    finished: bool = False
    timed_out: bool = False
    exit_code: int | None = None
    output: str = ""
    output_truncated: bool = False
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    sandbox_error: str | None = None
    cpu_limit: float = float("inf")

    @property
    def probe_result(self) -> object:
        """The RESULT of the last probe that reported, or None."""
        return self.probe_results[-1][0] if self.probe_results else None

    @property
    def probe_error(self) -> str | None:
        """The error of the last probe that reported, or None."""
        return self.probe_results[-1][1] if self.probe_results else None

    @property
    def problem(self) -> str | None:
        """A one-line account of an abnormal end, or None when the job ran to completion."""
        if self.sandbox_error:
            return f"sandbox error: {self.sandbox_error}"
        if self.timed_out:
            return "stopped: the time limit was reached"
        if not self.finished:
            code = self.exit_code
            if code in (128 + signal.SIGXCPU, 128 + signal.SIGKILL) and (
                self.cpu_seconds >= self.cpu_limit
            ):
                return "stopped: the CPU-time limit was reached"
            if code is not None and code > 128:
                return f"the process was killed (signal {code - 128})"
            return f"the process ended early (exit code {code})"
        return None


def _bwrap() -> str | None:
    return shutil.which("bwrap")


def check_support() -> str | None:
    """Return None if sandboxed execution works here, else the reason it does not."""
    bwrap = _bwrap()
    if bwrap is None:
        return (
            "bubblewrap (bwrap) is not installed; on Debian/Ubuntu: sudo apt-get install bubblewrap"
        )
    probe = subprocess.run(
        [bwrap, "--ro-bind", "/", "/", "--unshare-all", "true"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if probe.returncode != 0:
        return f"bubblewrap cannot create namespaces here: {probe.stderr.strip()}"
    return None


def _read_only_paths() -> list[str]:
    """What the zygote may see: system libraries and this Python with its packages."""
    paths = ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc/ld.so.cache"]
    paths += [sys.base_prefix, sys.prefix, sysconfig.get_paths()["purelib"]]
    return sorted({p for p in paths if os.path.exists(p)})


def _namespace_options() -> list[str]:
    """bubblewrap's isolation flags, which depend on whether the grader runs as root.

    Linux exempts root's processes from the process-count limit, so jobs must run as an
    ordinary user. A non-root grader is one already: bubblewrap maps it into a new user
    namespace. A root grader runs bubblewrap in its privileged mode instead, keeping only
    the capability to change user, and the zygote switches each job to `nobody`.
    """
    common = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
    if os.geteuid() != 0:
        return ["--unshare-user", *common, "--unshare-cgroup-try"]
    return [*common, "--unshare-cgroup-try", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]


def job_user() -> int | None:
    """The user id a job switches to before it runs, or None to keep the sandbox's."""
    return NOBODY if os.geteuid() == 0 else None


def bwrap_command(preload: list[str]) -> list[str]:
    """The command that starts a zygote under bubblewrap."""
    bwrap = _bwrap()
    if bwrap is None:
        raise SandboxUnavailable(check_support())
    cmd = [bwrap, *_namespace_options(), "--die-with-parent", "--new-session", "--clearenv"]
    paths = _read_only_paths()
    # Parents of the mount points must be searchable by the job's user.
    parents = {str(parent) for path in paths for parent in Path(path).parents}
    for parent in sorted(parents - {"/"}):
        cmd += ["--perms", "0755", "--dir", parent]
    for path in paths:
        cmd += ["--ro-bind", path, path]
    for folder in ("/opt", ZYGOTE_DIR, zygote.PACKAGES, f"{zygote.PACKAGES}/autograder"):
        cmd += ["--perms", "0755", "--dir", folder]
    package = Path(zygote.__file__).resolve().parent
    cmd += ["--ro-bind", str(package / "zygote.py"), f"{ZYGOTE_DIR}/zygote.py"]
    cmd += ["--ro-bind", str(package / "__init__.py"), f"{zygote.PACKAGES}/autograder/__init__.py"]
    cmd += ["--ro-bind", str(package / "scenarios"), f"{zygote.PACKAGES}/autograder/scenarios"]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", zygote.JOB_ROOT, "--chdir", "/"]
    env = {
        "HOME": zygote.JOB_ROOT,
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": zygote.JOB_ROOT,
        "TMPDIR": zygote.JOB_ROOT,
        "OMP_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
    }
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    cmd += [sys.executable, "-I", f"{ZYGOTE_DIR}/zygote.py", json.dumps(preload)]
    return cmd


def unisolated_command(preload: list[str]) -> list[str]:
    """The command that starts a zygote without bubblewrap: resource limits only.

    Learner code then runs as the grader's user and can read the course and the gradebook;
    only for an instructor who has accepted that (``--no-sandbox``).
    """
    course_root = str(Path(zygote.__file__).resolve().parents[1])
    return [
        sys.executable,
        "-I",
        str(Path(zygote.__file__).resolve()),
        json.dumps(preload),
        course_root,
    ]


class Sandbox:
    """One preloaded zygote under bubblewrap; runs jobs one at a time.

    Use as a context manager. `preload` names modules imported once in the zygote.
    `isolated=False` runs the zygote without bubblewrap (see `unisolated_command`).
    """

    def __init__(
        self,
        preload: list[str] | None = None,
        limits: Limits | None = None,
        isolated: bool = True,
    ):
        self.limits = limits or Limits()
        self.isolated = isolated
        command = bwrap_command(preload or []) if isolated else unisolated_command(preload or [])
        self._proc = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        ready = self._read()
        if not ready or ready.get("event") != "ready":
            raise SandboxError(f"the sandbox did not start: {self._stderr()}")

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def _read(self):
        try:
            return zygote.read_frame(self._proc.stdout.fileno())
        except (OSError, ValueError):
            return None

    def _stderr(self) -> str:
        if self._proc.poll() is None:
            self._proc.kill()
        return self._proc.stderr.read().decode(errors="replace").strip()[-2000:]

    def run(self, items: list[str | Probe], probe: str | None = None) -> JobResult:
        """Run `items` (cell sources and `Probe`s) in order, then `probe` if given.

        Never raises for anything the learner's code does.
        """
        items = [*items, *([Probe(probe)] if probe is not None else [])]
        job = {
            "items": [
                {"probe": item.code} if isinstance(item, Probe) else {"code": item}
                for item in items
            ],
            "limits": asdict(self.limits),
            "user": job_user(),
            "isolated": self.isolated,
        }
        try:
            zygote.write_frame(self._proc.stdin.fileno(), job)
        except OSError as err:
            raise SandboxError(f"the sandbox has stopped: {err}; {self._stderr()}") from None
        reply = self._read()
        if reply is None:
            raise SandboxError(f"the sandbox has stopped: {self._stderr()}")
        result = _job_result(reply, sum(not isinstance(item, Probe) for item in items))
        result.cpu_limit = self.limits.cpu_seconds
        return result


def _job_result(reply: dict, n_cells: int) -> JobResult:
    result = JobResult(
        timed_out=bool(reply["timed_out"]),
        exit_code=reply["exit_code"],
        output=reply["output"],
        output_truncated=bool(reply["output_truncated"]),
        wall_seconds=float(reply["wall_seconds"]),
        cpu_seconds=float(reply["cpu_seconds"]),
    )
    for event in reply["events"]:
        if not isinstance(event, dict):
            break
        kind = event.get("event")
        if kind == "cell" and event.get("index") == len(result.cell_errors):
            error, output = event.get("error"), event.get("output")
            result.cell_errors.append(error if isinstance(error, str) or error is None else "?")
            result.cell_outputs.append(output if isinstance(output, str) else "")
        elif kind == "probe" and event.get("index") == len(result.probe_results):
            error = event.get("error")
            error = error if isinstance(error, str) or error is None else "?"
            result.probe_results.append((event.get("result"), error))
        elif kind == "done":
            result.finished = len(result.cell_errors) == n_cells
        elif kind == "sandbox-error":
            result.sandbox_error = str(event.get("error"))
    return result
