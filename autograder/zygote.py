"""The process inside the grading sandbox: it forks one isolated child per job.

Runs as a script under bubblewrap (see `autograder.sandbox`), with the standard library
only plus the modules it preloads, so that every job starts with numpy and torch already
imported. It never sees the course files: the host sends each job over stdin.

For each job the zygote forks a child that enters new user, mount, PID, IPC and network
namespaces and forks the job process, which is PID 1 of its namespace: when it ends, every
process it started ends with it. The job process mounts a private /sandbox (its home,
working folder and TMPDIR), sets resource
limits, drops all capabilities, runs the job's items (learner cells, and trusted probes
that read the learner's namespace) and streams one event per item to the zygote over a
pipe. Anything it prints goes to a second pipe, capped in size; each cell's event also
carries the text that cell printed.

Protocol (both directions): frames of an 8-byte big-endian length and a JSON body.
"""

import ctypes
import importlib
import json
import os
import resource
import select
import signal
import struct
import sys
import tempfile
import time
import traceback

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
CAP_VERSION_3 = 0x20080522
SYS_CAPSET = 126 if os.uname().machine == "x86_64" else 91

libc = ctypes.CDLL(None, use_errno=True)
# Each job's private, writable folder; the only writable place it has.
JOB_ROOT = "/sandbox"
# Where the course's scenario modules (and nothing else of the course) are mounted.
PACKAGES = "/opt/grader/packages"


# ----------------------------------------------------------------------- framing


def read_frame(fd, limit=None):
    header = _read_exact(fd, 8)
    if header is None:
        return None
    (size,) = struct.unpack(">Q", header)
    if limit is not None and size > limit:
        raise ValueError(f"frame of {size} bytes exceeds the limit of {limit}")
    body = _read_exact(fd, size)
    if body is None:
        return None
    return json.loads(body)


def _read_exact(fd, size):
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def write_frame(fd, obj):
    body = json.dumps(obj).encode()
    data = struct.pack(">Q", len(body)) + body
    while data:
        written = os.write(fd, data)
        data = data[written:]


# ----------------------------------------------------------------- job process


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _enter_namespaces(uid, gid):
    """Called in the child: new namespaces, mapping the sandbox user to root inside."""
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWNET
    _check(libc.unshare(flags), "unshare")
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")


def _drop_capabilities():
    header = (ctypes.c_uint32 * 2)(CAP_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    _check(libc.syscall(SYS_CAPSET, header, data), "capset")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")


def _isolate(limits, isolated=True):
    """Called in the job process before any learner code.

    Isolated, the job is PID 1 of its namespaces and gets a private tmpfs at JOB_ROOT.
    Otherwise (an instructor's explicit choice where bubblewrap is unavailable) it only
    gets a fresh temporary folder and the resource limits.
    """
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
    if isolated:
        os.setsid()
        size = f"size={limits['file_bytes']}".encode()
        _check(libc.mount(b"tmpfs", JOB_ROOT.encode(), b"tmpfs", 0, size), "mount " + JOB_ROOT)
        if os.path.isdir("/dev/shm"):
            _check(libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", 0, b"size=1m"), "mount /dev/shm")
        root = JOB_ROOT
    else:
        root = tempfile.mkdtemp(prefix="grading-job-")
    for name in ("work", "tmp"):
        os.mkdir(f"{root}/{name}")
    os.chdir(f"{root}/work")
    os.environ.update(HOME=f"{root}/work", TMPDIR=f"{root}/tmp", MPLCONFIGDIR=f"{root}/tmp")
    tempfile.tempdir = None  # forget a temporary folder chosen before the job started
    vm_bytes = _current_vm_bytes()
    # CPU time: SIGXCPU at the limit, SIGKILL a second later if it is ignored.
    cpu = limits["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    for name, value in [
        (resource.RLIMIT_AS, vm_bytes + limits["memory_bytes"]),
        # Unisolated, the count would include every process of the instructor's user.
        (resource.RLIMIT_NPROC, limits["processes"] if isolated else None),
        (resource.RLIMIT_FSIZE, limits["file_bytes"]),
        (resource.RLIMIT_NOFILE, 256),
        (resource.RLIMIT_CORE, 0),
    ]:
        if value is not None:
            resource.setrlimit(name, (value, value))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    _drop_capabilities()


def _current_vm_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _short_error(exc):
    """One line naming the exception, as a learner would see it at the bottom of a traceback."""
    lines = traceback.format_exception_only(type(exc), exc)
    text = "".join(lines).strip().splitlines()
    return text[-1][:500] if text else type(exc).__name__


class _CellOutput:
    """A cell's sys.stdout/sys.stderr: passes text on to the job's output pipe and keeps a
    copy for the cell's event, up to a shared budget."""

    def __init__(self, stream, budget):
        self.stream, self.budget, self.parts = stream, budget, []

    def write(self, text):
        text = str(text)
        self.stream.write(text)
        if self.budget[0] > 0:
            self.parts.append(text[: self.budget[0]])
            self.budget[0] -= len(self.parts[-1])
        return len(text)

    def flush(self):
        self.stream.flush()

    def text(self):
        return "".join(self.parts)


def _run_cell(source, index, namespace, budget):
    """Run one learner cell; return (error line or None, the text it printed)."""
    stdout, stderr = sys.stdout, sys.stderr
    capture = _CellOutput(stdout, budget)
    sys.stdout = sys.stderr = capture
    error = None
    try:
        exec(compile(source, f"<cell {index}>", "exec"), namespace)
    except BaseException as exc:  # noqa: BLE001 - learner code may raise anything
        error = _short_error(exc)
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        sys.stdout.flush()
    return error, capture.text()


def _run_probe(source, namespace):
    """Run trusted probe code with the learner's namespace as LEARNER; print nothing."""
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = open(os.devnull, "w")
    probe_namespace = {"__name__": "__probe__", "LEARNER": namespace}
    try:
        exec(compile(source, "<probe>", "exec"), probe_namespace)
        result, error = probe_namespace.get("RESULT"), None
        json.dumps(result)
    except BaseException as exc:  # noqa: BLE001
        result, error = None, _short_error(exc)
    finally:
        sys.stdout.close()
        sys.stdout, sys.stderr = stdout, stderr
    return result, error


def _run_job(job, events_fd):
    """Run the job's items in order: learner cells (``{"code": ...}``) in one namespace,
    and probes (``{"probe": ...}``) that read it; one event per item."""
    namespace = {"__name__": "__main__"}
    budget = [job["limits"]["output_bytes"]]
    cells = probes = 0
    for item in job["items"]:
        if "probe" in item:
            result, error = _run_probe(item["probe"], namespace)
            event = {"event": "probe", "index": probes, "result": result, "error": error}
            probes += 1
        else:
            error, output = _run_cell(item["code"], cells, namespace, budget)
            event = {"event": "cell", "index": cells, "error": error, "output": output}
            cells += 1
        write_frame(events_fd, event)
    write_frame(events_fd, {"event": "done"})


def _job_process(job, events_fd, output_fd):
    """PID 1 of the job's namespace. Never returns."""
    code = 0
    try:
        _isolate(job["limits"], job.get("isolated", True))
        devnull = os.open("/dev/null", os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(output_fd, 1)
        os.dup2(output_fd, 2)
        for fd in (devnull, output_fd):
            os.close(fd)
        sys.stdin = open(0, closefd=False)
        sys.stdout = open(1, "w", buffering=1, closefd=False)
        sys.stderr = open(2, "w", buffering=1, closefd=False)
        _run_job(job, events_fd)
    except BaseException as exc:  # noqa: BLE001
        try:
            write_frame(events_fd, {"event": "sandbox-error", "error": _short_error(exc)})
        except OSError:
            pass
        code = 70
    os._exit(code)


def _child(job, events_fd, output_fd, uid, gid):
    """Intermediate process: enters the namespaces and waits for the job process."""
    code = 71
    try:
        _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "pdeathsig")
        if not job.get("isolated", True):
            os.setsid()  # the job and everything it starts share this process group
        elif job.get("user") is not None:
            uid = gid = job["user"]
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            # Changing user clears "dumpable", which makes /proc/self unwritable.
            _check(libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")
        if job.get("isolated", True):
            _enter_namespaces(uid, gid)
        pid = os.fork()
        if pid == 0:
            _job_process(job, events_fd, output_fd)
        os.close(events_fd)
        os.close(output_fd)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        code = code if code >= 0 else 128 - code
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
    os._exit(code)


# ---------------------------------------------------------------------- zygote


def run_one(job, uid, gid):
    """Fork the isolated job, collect its events and output, enforce the wall clock."""
    limits = job["limits"]
    events_r, events_w = os.pipe()
    output_r, output_w = os.pipe()
    started = time.monotonic()
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pid = os.fork()
    if pid == 0:
        os.close(events_r)
        os.close(output_r)
        _child(job, events_w, output_w, uid, gid)
    os.close(events_w)
    os.close(output_w)
    deadline = started + limits["wall_seconds"]
    buffers = {events_r: bytearray(), output_r: bytearray()}
    caps = {events_r: limits["event_bytes"], output_r: limits["output_bytes"]}
    truncated = {events_r: False, output_r: False}
    open_fds = [events_r, output_r]
    timed_out = False
    while open_fds:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        ready, _, _ = select.select(open_fds, [], [], remaining)
        for fd in ready:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                open_fds.remove(fd)
                continue
            room = caps[fd] - len(buffers[fd])
            if len(chunk) > room:
                truncated[fd] = True
            buffers[fd] += chunk[: max(room, 0)]
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    if not job.get("isolated", True):
        try:  # whatever an unisolated job left running
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    _, status = os.waitpid(pid, 0)
    for fd in (events_r, output_r):
        os.close(fd)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (usage.ru_utime - usage_before.ru_utime) + (usage.ru_stime - usage_before.ru_stime)
    return {
        "timed_out": timed_out,
        "exit_code": os.waitstatus_to_exitcode(status),
        "wall_seconds": round(time.monotonic() - started, 3),
        "cpu_seconds": round(cpu, 3),
        "events": _decode_events(bytes(buffers[events_r])),
        "events_truncated": truncated[events_r],
        "output": buffers[output_r].decode("utf-8", errors="replace"),
        "output_truncated": truncated[output_r],
    }


def _decode_events(data):
    """Parse the event frames; the job may have written garbage, so stop at the first."""
    events, offset = [], 0
    while offset + 8 <= len(data):
        (size,) = struct.unpack(">Q", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + size]
        if len(body) < size:
            break
        try:
            events.append(json.loads(body))
        except ValueError:
            events.append({"event": "garbage"})
            break
        offset += 8 + size
    return events


def main():
    preload = json.loads(sys.argv[1]) if len(sys.argv) > 1 else []
    sys.path.insert(0, sys.argv[2] if len(sys.argv) > 2 else PACKAGES)
    for name in preload:
        importlib.import_module(name)
    uid, gid = os.getuid(), os.getgid()
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    write_frame(stdout, {"event": "ready", "pid": os.getpid()})
    while True:
        job = read_frame(stdin)
        if job is None:
            return
        write_frame(stdout, run_one(job, uid, gid))


if __name__ == "__main__":
    main()
