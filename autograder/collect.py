"""Collect student notebooks from an LMS download or a folder into nbgrader's `submitted/`.

`scan` reads a folder (recursively) or a ``.zip`` file (in memory, never extracted) and maps
every notebook to a (student id, assignment id) pair; `store` writes the result where
nbgrader expects it. Neither stops on a bad file: each one becomes a `Skipped` with a
short reason for the instructor's report.

Layouts
-------
Each notebook is placed by its own path inside the source (``/``-separated), trying these
rules in order; the first that fits gives the student:

1. Moodle "Download all submissions": ``<Full Name>_<participant id>_assignsubmission_file_``
   as a folder anywhere above the notebook (the nearest one counts), or as the prefix of a
   flat file name. Student id: ``<slug of the full name>_<participant id>``, or
   ``participant_<participant id>`` when nothing of the name survives slugging (Moodle's own
   word in blind-marking downloads). The participant id is all digits and follows the last
   ``_`` of the id, so the id gives back the participant id: two participants can never get
   the same id, whatever their names. Moodle's participant ids are per assignment.
2. Canvas "Download submissions": a file named
   ``<loginname>_[LATE_]<userid>_<submissionid>_<original name>`` (``LATE`` in any case;
   Canvas may append ``-1``, ``-2`` to the original name on resubmission). Student id: the
   login name.
3. nbgrader: ``.../<student>/<assignment id>/<anything>.ipynb``: a folder named exactly after
   a known assignment, inside the student's folder (folders above it are ignored, so
   nbgrader's own ``submitted/`` may be included).
4. nbgrader student folder: ``<student>/<anything>.ipynb`` and
   ``<student>/<assignment folder>/<anything>.ipynb`` (exactly one or two folders). A single
   folder named exactly after an assignment is not a student: its files are read with rule 5.
5. Flat: ``<student>.ipynb``, ``<student>_<assignment>.ipynb`` or
   ``<assignment>_<student>.ipynb`` (``_`` or ``-`` between the two; the assignment id in any
   case). A file named only after an assignment is skipped: it names no student.

Anything nested deeper without a Moodle or nbgrader assignment folder is skipped
("unrecognised layout").

Student ids
-----------
Ids are letters, digits, ``_``, ``.`` and ``-``; an id that is already so is kept as it is
(case included). Otherwise it is slugged: accents are dropped (NFKD, ASCII), every run of
other characters becomes ``-``, and ``-`` and ``.`` are stripped from both ends (so no id
starts with a dot). An empty id, or one longer than `MAX_STUDENT_ID` characters, is skipped.
If different names in one source give the same id (ignoring case, for case-insensitive file
systems), none of their notebooks is collected: they are all skipped, so that no two
students are ever merged.

Assignments
-----------
From the notebook's nbgrader ``grade_id``s: the assignment whose source notebook shares the
most grade_ids with it. On a tie, or with no grade_id in common (for instance when a student
stripped the nbgrader metadata), from the names: the file name (the original name for Canvas
and Moodle) and an nbgrader assignment folder must contain exactly one assignment id
(ignoring case, with ``-`` and spaces read as ``_``). When `scan` is given an assignment, a
notebook detected as another one is skipped ("wrong assignment") and an undetectable one is
taken as the given one.

Skipped and ignored
-------------------
Silently ignored (neither collected nor reported): directories, anything under
``__MACOSX/``, any file or folder whose name starts with ``.`` (dotfiles,
``.ipynb_checkpoints/``, the temporary files `store` writes), and nbgrader's
``timestamp.txt`` files (read for the times of the notebooks beside them). Everything else
that is not collected is reported: not a ``.ipynb`` file; symbolic links and other
non-regular files (never followed); zip entries with an absolute path or a ``..``
component; encrypted or corrupt zip entries; larger than `MAX_NOTEBOOK_BYTES` (declared
size, then the bytes actually read, which stops a zip bomb whose header lies); beyond
`MAX_TOTAL_BYTES` read from one source in all; not UTF-8 JSON; JSON that is not an
nbformat-4 notebook. Validation uses nbformat's schema with the notebook's and the cells'
metadata emptied first: metadata a student edited never rejects a notebook (the original
bytes are collected unchanged).

Times: a notebook's time is the one in the nbgrader ``timestamp.txt`` of its folder when
that is readable (UTC, or a zone-less time read as UTC), else the zip entry's time (its
extended-timestamp field when present, else its date_time read as UTC) or the file's mtime.
Duplicates: several notebooks for one (student, assignment) keep the newest; on equal times,
the one whose origin sorts last. Each other one is skipped as a duplicate of the one kept.

Storing
-------
`store` writes ``<submitted_dir>/<student>/<assignment>/<assignment>.ipynb`` and
``timestamp.txt`` (nbgrader's format, `TIMESTAMP_FORMAT`) atomically (a temporary file in the
same folder, then `os.replace`). A notebook already stored there that is newer than the
submission is kept (the submission is skipped), as is an identical one; otherwise it is
first copied to ``<submitted_dir>/../superseded/<student>/<assignment>/<old time>.ipynb``,
the old time in ISO 8601 basic format (`SUPERSEDED_FORMAT`, safe on every file system,
``-1``, ``-2``, ... appended rather than overwrite), then replaced. A student's work is never
deleted.
"""

from __future__ import annotations

import copy
import csv
import json
import lzma
import os
import re
import stat
import struct
import unicodedata
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import nbformat

from autograder.files import write_atomic

MAX_NOTEBOOK_BYTES = 50 * 2**20
"""A notebook larger than this (declared or read) is skipped."""
MAX_TOTAL_BYTES = 2 * 2**30
"""Total bytes of notebooks read from one source; notebooks past it are skipped."""
MAX_STUDENT_ID = 100
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f %Z"
"""nbgrader's timestamp.txt format; with a UTC time it ends in ``UTC``."""
SUPERSEDED_FORMAT = "%Y%m%dT%H%M%S.%fZ"
"""File name (without .ipynb) of a superseded notebook: its stored time, in UTC."""
TIMESTAMP_FILE = "timestamp.txt"

IGNORED_FOLDERS = frozenset({"__MACOSX"})
_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]+")
_MOODLE_FOLDER = re.compile(r"(?P<name>.+?)_(?P<pid>\d+)_assignsubmission_file_?")
_MOODLE_FILE = re.compile(r"(?P<name>.+?)_(?P<pid>\d+)_assignsubmission_file_(?P<rest>.+)")
_CANVAS_FILE = re.compile(r"(?P<login>.+?)_(?:late_)?\d+_\d+_(?P<rest>.+)", re.IGNORECASE)
_EXTENDED_TIMESTAMP = 0x5455
_ZIP_ENCRYPTED = 0x1
_ZIP_UTF8_NAME = 0x800
# What reading a file or a corrupt, encrypted or exotic zip entry may raise.
_READ_ERRORS = (
    OSError,  # also bz2's errors
    EOFError,
    RuntimeError,
    NotImplementedError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
)


class CollectError(Exception):
    """The source itself is unusable (missing, not a folder or zip, unreadable zip)."""


@dataclass(frozen=True)
class Submission:
    """One student's notebook for one assignment: the original bytes, never re-serialised.

    `timestamp` is seconds since the epoch (UTC); `origin` is the notebook's path inside the
    source, ``/``-separated (a zip entry's name as stored).
    """

    student: str
    assignment: str
    notebook: bytes
    timestamp: float
    origin: str


@dataclass(frozen=True)
class Skipped:
    """A file that was not collected (or stored), and why, in one short sentence."""

    origin: str
    reason: str


class _Skip(Exception):
    """Internal: the file being examined is skipped for the reason given."""


@dataclass(frozen=True)
class _Entry:
    """A file of the source: its path parts, declared size, time and a bounded reader."""

    origin: str
    parts: tuple[str, ...]
    size: int
    timestamp: float
    read: Callable[[int], bytes]  # reads at most n bytes


@dataclass
class _Budget:
    remaining: int


@dataclass(frozen=True)
class _Candidate:
    submission: Submission
    raw_student: str  # the name the id was made from, to detect ids shared by two names


@dataclass(frozen=True)
class _Placement:
    raw_student: str
    student: str
    hint: str  # names that may contain the assignment id


# --- public API ----------------------------------------------------------------------------


def known_assignments(source_dir: Path) -> dict[str, frozenset[str]]:
    """Assignment id -> grade_ids of its source notebook ``<source_dir>/<id>/<id>.ipynb``."""
    source_dir = Path(source_dir)
    if not source_dir.is_dir():
        raise CollectError(f"{source_dir}: no such folder of source notebooks")
    found: dict[str, frozenset[str]] = {}
    for folder in sorted(p for p in source_dir.iterdir() if p.is_dir()):
        path = folder / f"{folder.name}.ipynb"
        if not path.is_file():
            continue
        try:
            notebook = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            raise CollectError(f"{path}: unreadable source notebook ({_one_line(error)})") from None
        found[folder.name] = frozenset(_grade_ids(notebook))
    if not found:
        raise CollectError(f"{source_dir}: no source notebooks <id>/<id>.ipynb in it")
    return found


def scan(
    source: Path, assignments: dict[str, frozenset[str]], assignment: str | None = None
) -> tuple[list[Submission], list[Skipped]]:
    """Every notebook of a folder or zip, placed by student and assignment (see module doc).

    Returns the submissions sorted by (student, assignment) and the skipped files in the
    order they were met (files sorted by path), then id clashes, then duplicates.
    """
    if assignment is not None and assignment not in assignments:
        known = ", ".join(sorted(assignments))
        raise CollectError(f"unknown assignment {assignment!r} (known: {known})")
    candidates: list[_Candidate] = []
    skipped: list[Skipped] = []
    budget = _Budget(MAX_TOTAL_BYTES)
    with _source_entries(Path(source)) as items:
        times = _submission_times(items)
        for item in items:
            if isinstance(item, Skipped):
                skipped.append(item)
            elif item.parts[-1] != TIMESTAMP_FILE:
                item = replace(item, timestamp=times.get(item.parts[:-1], item.timestamp))
                try:
                    candidates.append(_examine(item, assignments, assignment, budget))
                except _Skip as skip:
                    skipped.append(Skipped(item.origin, str(skip)))
    candidates, clashes = _drop_shared_ids(candidates)
    kept, duplicates = _drop_duplicates([c.submission for c in candidates])
    return kept, skipped + clashes + duplicates


def read_roster(path: Path) -> dict[str, str]:
    """A roster: a CSV file with the columns ``collected`` (an id as `scan` makes it, such as
    Moodle's ``Jane-Doe_4711``) and ``student`` (the id to use instead)."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise CollectError(f"cannot read the roster {path}: {_one_line(error)}") from None
    if not rows or not {"collected", "student"} <= set(rows[0]):
        raise CollectError(f"the roster {path} needs the columns 'collected' and 'student'")
    roster = {}
    for number, row in enumerate(rows, start=2):
        collected, student = ((row.get(k) or "").strip() for k in ("collected", "student"))
        if not _SAFE_ID.fullmatch(student) or student.startswith("."):
            raise CollectError(
                f"the roster {path}, line {number}: {student!r} is not a usable student id "
                "(letters, digits, '_', '.', '-')"
            )
        if roster.get(collected, student) != student:
            raise CollectError(f"the roster {path}, line {number}: {collected!r} is listed twice")
        roster[collected] = student
    return roster


def rename(
    submissions: list[Submission], roster: dict[str, str]
) -> tuple[list[Submission], list[Skipped]]:
    """Submissions with their student ids replaced as `roster` says (ids it does not list
    stay); if two then belong to one student and assignment, the newest is kept."""
    renamed = [replace(s, student=roster.get(s.student, s.student)) for s in submissions]
    return _drop_duplicates(renamed)


def store(submissions: list[Submission], submitted_dir: Path) -> list[Skipped]:
    """Write submissions into nbgrader's submitted folder; return those not written, and why."""
    skipped = []
    for submission in submissions:
        try:
            reason = _store_one(submission, Path(submitted_dir))
        except OSError as error:
            reason = f"could not store it: {_one_line(error)}"
        if reason is not None:
            skipped.append(Skipped(submission.origin, reason))
    return skipped


# --- reading a source ----------------------------------------------------------------------


@contextmanager
def _source_entries(source: Path) -> Iterator[list[_Entry | Skipped]]:
    """The files of a folder or zip, sorted by path; a zip stays open while in use."""
    if source.is_dir():
        yield list(_folder_entries(source))
    elif source.is_file():
        try:
            archive = zipfile.ZipFile(source)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
            message = f"{source}: not a readable zip file ({_one_line(error)})"
            raise CollectError(message) from None
        with archive:
            yield list(_zip_entries(archive))
    else:
        raise CollectError(f"{source}: no such file or folder")


def _submission_times(items: list[_Entry | Skipped]) -> dict[tuple[str, ...], float]:
    """Folder path -> the time its nbgrader timestamp.txt gives, where one is readable."""
    times = {}
    for item in items:
        if isinstance(item, _Entry) and item.parts[-1] == TIMESTAMP_FILE:
            try:
                text = item.read(256).decode("utf-8")
            except (*_READ_ERRORS, UnicodeDecodeError):
                continue
            parsed = parse_timestamp(text)
            if parsed is not None:
                times[item.parts[:-1]] = parsed
    return times


def _ignored(parts: tuple[str, ...]) -> bool:
    return any(part.startswith(".") or part in IGNORED_FOLDERS for part in parts)


def _folder_entries(root: Path) -> Iterator[_Entry | Skipped]:
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames.sort()
        for name in list(dirnames):
            if _ignored((name,)):
                dirnames.remove(name)
            elif (here / name).is_symlink():
                yield Skipped(_relative(here / name, root), "symbolic link, not followed")
        for name in sorted(filenames):
            path = here / name
            parts = path.relative_to(root).parts
            if not _ignored(parts):
                yield _file_entry(path, parts)


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _file_entry(path: Path, parts: tuple[str, ...]) -> _Entry | Skipped:
    origin = "/".join(parts)
    try:
        info = path.lstat()
    except OSError as error:
        return Skipped(origin, f"could not read it: {_one_line(error)}")
    if stat.S_ISLNK(info.st_mode):
        return Skipped(origin, "symbolic link, not followed")
    if not stat.S_ISREG(info.st_mode):
        return Skipped(origin, "not a regular file")

    def read(limit: int) -> bytes:
        with path.open("rb") as handle:
            return handle.read(limit)

    return _Entry(origin, parts, info.st_size, info.st_mtime, read)


def _zip_entries(archive: zipfile.ZipFile) -> Iterator[_Entry | Skipped]:
    seen: dict[str, int] = {}
    for info in sorted(archive.infolist(), key=lambda i: i.filename):
        seen[info.filename] = seen.get(info.filename, 0) + 1
        origin = info.filename
        if seen[origin] > 1:  # the same name stored twice in one zip
            origin = f"{origin} (copy {seen[origin]})"
        entry = _zip_entry(archive, info, origin)
        if entry is not None:
            yield entry


def _zip_entry(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, origin: str
) -> _Entry | Skipped | None:
    """The entry for one zip member, a Skipped, or None for a directory or ignored file."""
    name = _zip_name(info).replace("\\", "/")
    if name.startswith("/") or re.match(r"[A-Za-z]:", name) or ".." in name.split("/"):
        return Skipped(origin, "unsafe path in the zip (absolute or with '..')")
    if name.endswith("/"):
        return None
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if not parts or _ignored(parts):
        return None
    if info.flag_bits & _ZIP_ENCRYPTED:
        return Skipped(origin, "encrypted (password-protected) zip entry")

    def read(limit: int) -> bytes:
        with archive.open(info) as handle:
            return handle.read(limit)

    return _Entry(origin, parts, info.file_size, _zip_time(info), read)


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The entry's name; UTF-8 names stored without the UTF-8 flag are decoded as UTF-8."""
    if info.flag_bits & _ZIP_UTF8_NAME:
        return info.filename
    try:
        return info.filename.encode("cp437").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return info.filename


def _zip_time(info: zipfile.ZipInfo) -> float:
    """The extended-timestamp mtime (UTC) if present, else date_time read as UTC."""
    extra = info.extra
    while len(extra) >= 4:
        field, size = struct.unpack("<HH", extra[:4])
        data = extra[4 : 4 + size]
        if field == _EXTENDED_TIMESTAMP and len(data) >= 5 and data[0] & 1:
            return float(struct.unpack("<i", data[1:5])[0])
        extra = extra[4 + size :]
    try:
        return datetime(*info.date_time, tzinfo=UTC).timestamp()
    except ValueError:
        return 0.0


# --- examining one file --------------------------------------------------------------------


def _examine(
    entry: _Entry,
    assignments: dict[str, frozenset[str]],
    forced: str | None,
    budget: _Budget,
) -> _Candidate:
    if not entry.parts[-1].lower().endswith(".ipynb"):
        raise _Skip("not a Jupyter notebook (.ipynb) file")
    placement = _place(entry.parts, sorted(assignments, key=len, reverse=True))
    data = _read_bounded(entry, budget)
    notebook = _parse_notebook(data)
    found = _detect_assignment(notebook, placement.hint, assignments)
    if forced is not None:
        if found not in (None, forced):
            raise _Skip(f"wrong assignment: this is {found}, not {forced}")
        found = forced
    if found is None:
        raise _Skip(
            "no recognisable assignment: no nbgrader grade_ids match one assignment "
            "and the file name names none"
        )
    submission = Submission(placement.student, found, data, entry.timestamp, entry.origin)
    return _Candidate(submission, placement.raw_student)


def _read_bounded(entry: _Entry, budget: _Budget) -> bytes:
    if entry.size > MAX_NOTEBOOK_BYTES:
        raise _Skip(f"larger than {_size(MAX_NOTEBOOK_BYTES)} ({_size(entry.size)})")
    if entry.size > budget.remaining:
        raise _Skip(f"past the {_size(MAX_TOTAL_BYTES)} limit on all notebooks of one source")
    try:
        data = entry.read(min(MAX_NOTEBOOK_BYTES, budget.remaining) + 1)
    except _READ_ERRORS as error:
        raise _Skip(f"could not read it: {_one_line(error)}") from None
    if len(data) > MAX_NOTEBOOK_BYTES:
        raise _Skip(
            f"larger than {_size(MAX_NOTEBOOK_BYTES)} when read, though it declares "
            f"{_size(entry.size)} (a zip bomb?)"
        )
    if len(data) > budget.remaining:
        raise _Skip(f"past the {_size(MAX_TOTAL_BYTES)} limit on all notebooks of one source")
    budget.remaining -= len(data)
    return data


def _parse_notebook(data: bytes) -> dict:
    """The notebook as JSON data, if it is an nbformat-4 notebook up to its metadata."""
    try:
        notebook = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise _Skip("not valid JSON (not UTF-8 text)") from None
    except (ValueError, RecursionError) as error:
        raise _Skip(f"not valid JSON ({_one_line(error)})") from None
    if not isinstance(notebook, dict) or "nbformat" not in notebook:
        raise _Skip("JSON but not a Jupyter notebook")
    if notebook["nbformat"] != 4:
        raise _Skip(f"not an nbformat 4 notebook (nbformat {notebook['nbformat']!r})")
    checked = copy.deepcopy(notebook)
    checked["metadata"] = {}
    for cell in checked.get("cells") or []:
        if isinstance(cell, dict):
            cell["metadata"] = {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # missing or duplicate cell ids are repaired
            nbformat.validate(nbformat.from_dict(checked))
    except nbformat.ValidationError as error:
        message = _one_line(getattr(error, "message", error))
        raise _Skip(f"invalid nbformat 4 notebook ({message})") from None
    return notebook


def _grade_ids(notebook: object) -> set[str]:
    cells = notebook.get("cells") if isinstance(notebook, dict) else None
    found = set()
    for cell in cells if isinstance(cells, list) else []:
        metadata = cell.get("metadata") if isinstance(cell, dict) else None
        nbgrader = metadata.get("nbgrader") if isinstance(metadata, dict) else None
        grade_id = nbgrader.get("grade_id") if isinstance(nbgrader, dict) else None
        if isinstance(grade_id, str):
            found.add(grade_id)
    return found


def _detect_assignment(
    notebook: dict, hint: str, assignments: dict[str, frozenset[str]]
) -> str | None:
    """By shared grade_ids (a unique best above zero), else by the one id the names contain."""
    grade_ids = _grade_ids(notebook)
    overlap = {name: len(grade_ids & ids) for name, ids in assignments.items()}
    best = max(overlap.values(), default=0)
    leaders = [name for name, count in overlap.items() if count == best]
    if best > 0 and len(leaders) == 1:
        return leaders[0]
    named = [name for name in assignments if _fold(name) in _fold(hint)]
    return named[0] if len(named) == 1 else None


def _fold(text: str) -> str:
    return re.sub(r"[\s-]", "_", text.lower())


# --- placing a file: student id ------------------------------------------------------------


def _place(parts: tuple[str, ...], ids: list[str]) -> _Placement:
    """The student a path belongs to, by the layouts of the module docstring, in order."""
    *folders, filename = parts
    for folder in reversed(folders):
        match = _MOODLE_FOLDER.fullmatch(folder)
        if match:
            return _moodle(match, filename)
    match = _MOODLE_FILE.fullmatch(filename)
    if match:
        return _moodle(match, match["rest"])
    match = _CANVAS_FILE.fullmatch(filename)
    if match:
        return _placement(match["login"], match["rest"])
    if len(folders) >= 2 and folders[-1] in ids:
        return _placement(folders[-2], f"{folders[-1]}/{filename}")
    if len(folders) == 2:
        return _placement(folders[0], f"{folders[1]}/{filename}")
    if len(folders) == 1 and folders[0] not in ids:
        return _placement(folders[0], filename)
    if len(folders) > 2:
        raise _Skip("unrecognised layout: nested too deep to tell which folder is the student")
    return _flat(filename, ids, folders[0] if folders else "")


def _flat(filename: str, ids: list[str], folder: str) -> _Placement:
    stem = filename[: -len(".ipynb")]
    hint = f"{folder}/{filename}"
    for assignment in ids:  # longest first
        size = len(assignment)
        if stem.lower() == assignment.lower():
            raise _Skip("the file name names the assignment but no student")
        if stem[-size - 1 :].lower() in (f"_{assignment}", f"-{assignment}"):
            return _placement(stem[: -size - 1], hint)
        if stem[: size + 1].lower() in (f"{assignment}_", f"{assignment}-"):
            return _placement(stem[size + 1 :], hint)
    return _placement(stem, hint)


def _moodle(match: re.Match[str], hint: str) -> _Placement:
    name = _slug(match["name"]) or "participant"
    student = f"{name}_{match['pid']}"
    return _Placement(f"{match['name']}_{match['pid']}", _check_id(student), hint)


def _placement(raw: str, hint: str) -> _Placement:
    return _Placement(raw, _check_id(_slug(raw)), hint)


def _slug(text: str) -> str:
    """`text` if it is a safe id, else ASCII, other runs as ``-``, no ``-``/``.`` at the ends."""
    if _SAFE_ID.fullmatch(text) and not text.startswith("."):
        return text
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", ascii_text).strip("-.")


def _check_id(student: str) -> str:
    if not student:
        raise _Skip("no usable student id in the name")
    if len(student) > MAX_STUDENT_ID:
        raise _Skip(f"student id longer than {MAX_STUDENT_ID} characters")
    return student


def _drop_shared_ids(candidates: list[_Candidate]) -> tuple[list[_Candidate], list[Skipped]]:
    """Skip every notebook whose student id was made from more than one distinct name."""
    names: dict[str, set[str]] = {}
    for candidate in candidates:
        names.setdefault(candidate.submission.student.casefold(), set()).add(candidate.raw_student)
    kept, skipped = [], []
    for candidate in candidates:
        sources = names[candidate.submission.student.casefold()]
        if len(sources) == 1:
            kept.append(candidate)
            continue
        listed = ", ".join(repr(name) for name in sorted(sources))
        reason = (
            f"student id {candidate.submission.student!r} would stand for several names "
            f"({listed}); rename them apart"
        )
        skipped.append(Skipped(candidate.submission.origin, reason))
    return kept, skipped


def _drop_duplicates(submissions: list[Submission]) -> tuple[list[Submission], list[Skipped]]:
    """Keep the newest notebook per (student, assignment); ties go to the last origin."""
    groups: dict[tuple[str, str], list[Submission]] = {}
    for submission in submissions:
        groups.setdefault((submission.student, submission.assignment), []).append(submission)
    kept, skipped = [], []
    for key in sorted(groups):
        ordered = sorted(groups[key], key=lambda s: (s.timestamp, s.origin))
        newest = ordered[-1]
        kept.append(newest)
        for other in ordered[:-1]:
            if other.timestamp < newest.timestamp:
                reason = f"duplicate of {newest.origin} (older)"
            else:
                reason = f"duplicate of {newest.origin} (same time; the later name is kept)"
            skipped.append(Skipped(other.origin, reason))
    return kept, skipped


# --- storing -------------------------------------------------------------------------------


def _store_one(submission: Submission, submitted_dir: Path) -> str | None:
    """Store one submission; the reason it was not stored, or None."""
    for name in (submission.student, submission.assignment):
        if not _SAFE_ID.fullmatch(name) or name.startswith("."):
            return f"unsafe folder name {name!r}"
    folder = submitted_dir / submission.student / submission.assignment
    target = folder / f"{submission.assignment}.ipynb"
    if target.exists():
        old = target.read_bytes()
        old_time = _stored_time(folder, target)
        if old == submission.notebook:
            return "already stored (identical notebook)"
        if _micros(old_time) > _micros(submission.timestamp):
            return (
                f"older than the submission already stored ({format_timestamp(old_time)}); "
                "kept that one"
            )
        write_atomic(_superseded_path(submitted_dir, submission, old_time), old)
    write_atomic(target, submission.notebook)
    write_atomic(folder / TIMESTAMP_FILE, format_timestamp(submission.timestamp).encode())
    return None


def format_timestamp(timestamp: float) -> str:
    """nbgrader's timestamp.txt text for a time, e.g. ``2024-03-02 10:00:00.000000 UTC``."""
    return datetime.fromtimestamp(timestamp, UTC).strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> float | None:
    """The time of a timestamp.txt in UTC (or without a zone, read as UTC), else None."""
    text = text.strip()
    for suffix in (" UTC", " GMT", "Z"):
        text = text.removesuffix(suffix)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _stored_time(folder: Path, notebook: Path) -> float:
    try:
        parsed = parse_timestamp((folder / TIMESTAMP_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        parsed = None
    return parsed if parsed is not None else notebook.stat().st_mtime


def _micros(timestamp: float) -> int:
    return round(timestamp * 1_000_000)


def _superseded_path(submitted_dir: Path, submission: Submission, old_time: float) -> Path:
    folder = submitted_dir.resolve().parent / "superseded" / submission.student
    folder = folder / submission.assignment
    stem = datetime.fromtimestamp(old_time, UTC).strftime(SUPERSEDED_FORMAT)
    path = folder / f"{stem}.ipynb"
    number = 0
    while path.exists():
        number += 1
        path = folder / f"{stem}-{number}.ipynb"
    return path


# --- helpers -------------------------------------------------------------------------------


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _size(count: int) -> str:
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 else f"{count} bytes"
