"""The collect step: LMS downloads and folders become nbgrader submissions, nothing is lost.

Inputs are built from the course's own notebooks (`exercises/` and `solutions/`), written as
Canvas and Moodle zips, nbgrader folders and flat folders in temporary directories.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from nbgrader.utils import parse_utc

from autograder import collect
from autograder.collect import CollectError, Skipped, Submission

REPO = Path(__file__).resolve().parents[1]
IDS = ("bn01_forward", "bn02_backward", "bn03_conv", "bn04_torch", "bn05_inference")
NO_ASSIGNMENT = (
    "no recognisable assignment: no nbgrader grade_ids match one assignment "
    "and the file name names none"
)
UNSAFE_PATH = "unsafe path in the zip (absolute or with '..')"


# --- building inputs -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def assignments() -> dict[str, frozenset[str]]:
    return collect.known_assignments(REPO / "solutions")


def exercise(assignment: str) -> bytes:
    """The student version as released."""
    return (REPO / "exercises" / assignment / f"{assignment}.ipynb").read_bytes()


def solution(assignment: str) -> bytes:
    return (REPO / "solutions" / assignment / f"{assignment}.ipynb").read_bytes()


def edited(assignment: str, change) -> bytes:
    """The student version after `change(notebook)` edited its JSON in place."""
    notebook = json.loads(exercise(assignment))
    change(notebook)
    return json.dumps(notebook, indent=1).encode()


def strip_nbgrader(notebook: dict) -> None:
    for cell in notebook["cells"]:
        cell["metadata"].pop("nbgrader", None)


def stripped(assignment: str) -> bytes:
    """The student version with every cell's nbgrader metadata deleted."""
    return edited(assignment, strip_nbgrader)


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def date_time(text: str) -> tuple[int, int, int, int, int, int]:
    return datetime.fromisoformat(text).timetuple()[:6]


def write_zip(path: Path, entries: list[tuple[str, bytes, str]]) -> Path:
    """A deflated zip of (name, data, ISO date) entries, in that order."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data, when in entries:
            archive.writestr(zipfile.ZipInfo(name, date_time(when)), data, zipfile.ZIP_DEFLATED)
    return path


def write_tree(root: Path, files: dict[str, bytes | tuple[bytes, str]]) -> Path:
    """Files under root; a (data, ISO date) value also sets the file's mtime."""
    for name, value in files.items():
        data, when = value if isinstance(value, tuple) else (value, None)
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if when is not None:
            os.utime(path, (epoch(when), epoch(when)))
    return root


def patch_central_directory(path: Path, offset: int, fmt: str, change) -> None:
    """Rewrite one field of every central-directory record of a zip: value -> change(value)."""
    data = bytearray(path.read_bytes())
    start = data.find(b"PK\x01\x02")
    assert start >= 0
    while start >= 0:
        (value,) = struct.unpack_from(fmt, data, start + offset)
        struct.pack_into(fmt, data, start + offset, change(value))
        start = data.find(b"PK\x01\x02", start + 4)
    path.write_bytes(bytes(data))


def clear_utf8_flags(path: Path) -> None:
    """Clear the UTF-8 name flag in local and central headers, as some zip tools write."""
    data = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start >= 0:
            (flags,) = struct.unpack_from("<H", data, start + offset)
            struct.pack_into("<H", data, start + offset, flags & ~0x800)
            start = data.find(signature, start + 4)
    path.write_bytes(bytes(data))


def placed(submissions: list[Submission]) -> dict[str, tuple[str, str]]:
    return {s.origin: (s.student, s.assignment) for s in submissions}


def reasons(skipped: list[Skipped]) -> dict[str, str]:
    return {s.origin: s.reason for s in skipped}


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


# --- known assignments ---------------------------------------------------------------------


def test_known_assignments_reads_grade_ids_of_the_source_notebooks(assignments):
    assert sorted(assignments) == list(IDS)
    assert "batchnorm_forward" in assignments["bn01_forward"]
    assert "hidden_fold_matches_eval" in assignments["bn05_inference"]
    assert "batchnorm_forward" not in assignments["bn02_backward"]
    # Shared ids exist, which is why detection counts the overlap instead of any match.
    assert {a for a in IDS if "setup" in assignments[a]} == set(IDS[:4])


def test_known_assignments_rejects_a_missing_or_broken_source(tmp_path):
    with pytest.raises(CollectError, match="no such folder"):
        collect.known_assignments(tmp_path / "nowhere")
    write_tree(tmp_path, {"bn01_forward/bn01_forward.ipynb": b"{oops"})
    with pytest.raises(CollectError, match="unreadable source notebook") as error:
        collect.known_assignments(tmp_path)
    assert "\n" not in str(error.value)


# --- layouts -------------------------------------------------------------------------------


def test_nbgrader_folders(tmp_path, assignments):
    root = write_tree(
        tmp_path,
        {
            "alice/bn01_forward/bn01_forward.ipynb": exercise("bn01_forward"),
            "bob/bn02_backward.ipynb": solution("bn02_backward"),
            "carol/homework/mine.ipynb": exercise("bn03_conv"),
            "submitted/dave/bn04_torch/bn04_torch.ipynb": exercise("bn04_torch"),
            "bn05_inference/erin.ipynb": exercise("bn05_inference"),
        },
    )
    submissions, skipped = collect.scan(root, assignments)
    assert skipped == []
    assert placed(submissions) == {
        "alice/bn01_forward/bn01_forward.ipynb": ("alice", "bn01_forward"),
        "bob/bn02_backward.ipynb": ("bob", "bn02_backward"),
        "carol/homework/mine.ipynb": ("carol", "bn03_conv"),
        "submitted/dave/bn04_torch/bn04_torch.ipynb": ("dave", "bn04_torch"),
        "bn05_inference/erin.ipynb": ("erin", "bn05_inference"),
    }
    alice = next(s for s in submissions if s.student == "alice")
    assert alice.notebook == exercise("bn01_forward")  # the bytes, untouched


def test_canvas_zip(tmp_path, assignments):
    source = write_zip(
        tmp_path / "submissions.zip",
        [
            ("jdoe_123_456_bn01_forward.ipynb", exercise("bn01_forward"), "2024-03-01T10:00"),
            ("asmith_LATE_124_457_bn01_forward-1.ipynb", solution("bn01_forward"), "2024-03-05"),
            ("mlee_late_125_458_notebook.ipynb", exercise("bn02_backward"), "2024-03-02"),
            ("o_brien_126_459_bn05_inference.ipynb", exercise("bn05_inference"), "2024-03-02"),
        ],
    )
    submissions, skipped = collect.scan(source, assignments)
    assert skipped == []
    assert placed(submissions) == {
        "jdoe_123_456_bn01_forward.ipynb": ("jdoe", "bn01_forward"),
        "asmith_LATE_124_457_bn01_forward-1.ipynb": ("asmith", "bn01_forward"),
        "mlee_late_125_458_notebook.ipynb": ("mlee", "bn02_backward"),
        "o_brien_126_459_bn05_inference.ipynb": ("o_brien", "bn05_inference"),
    }
    jdoe = next(s for s in submissions if s.student == "jdoe")
    assert jdoe.timestamp == epoch("2024-03-01T10:00")


def test_canvas_resubmission_keeps_the_newest(tmp_path, assignments):
    source = write_zip(
        tmp_path / "submissions.zip",
        [
            ("jdoe_123_789_bn01_forward-1.ipynb", solution("bn01_forward"), "2024-03-02"),
            ("jdoe_123_456_bn01_forward.ipynb", exercise("bn01_forward"), "2024-03-01"),
            ("jdoe_123_790_bn02_backward.ipynb", exercise("bn02_backward"), "2024-02-01"),
        ],
    )
    submissions, skipped = collect.scan(source, assignments)
    assert placed(submissions) == {
        "jdoe_123_789_bn01_forward-1.ipynb": ("jdoe", "bn01_forward"),
        "jdoe_123_790_bn02_backward.ipynb": ("jdoe", "bn02_backward"),
    }
    assert submissions[0].notebook == solution("bn01_forward")
    assert skipped == [
        Skipped(
            "jdoe_123_456_bn01_forward.ipynb",
            "duplicate of jdoe_123_789_bn01_forward-1.ipynb (older)",
        )
    ]


def test_moodle_zip(tmp_path, assignments):
    source = write_zip(
        tmp_path / "moodle.zip",
        [
            (
                "Jane Doe_4711_assignsubmission_file_/bn01_forward.ipynb",
                exercise("bn01_forward"),
                "2024-03-01",
            ),
            (
                "Jane Doe_4712_assignsubmission_file_/my notebook.ipynb",
                exercise("bn02_backward"),
                "2024-03-01",
            ),
            (
                "Zoë Ångström_12_assignsubmission_file_/work/final.ipynb",
                exercise("bn03_conv"),
                "2024-03-01",
            ),
            (
                "李雷_99_assignsubmission_file_/bn04_torch.ipynb",
                exercise("bn04_torch"),
                "2024-03-01",
            ),
            (
                "Participant_7_assignsubmission_file_bn05_inference.ipynb",
                exercise("bn05_inference"),
                "2024-03-01",
            ),
            (
                "Jane Doe_4711_assignsubmission_onlinetext_onlinetext.html",
                b"<p>hi</p>",
                "2024-03-01",
            ),
        ],
    )
    submissions, skipped = collect.scan(source, assignments)
    assert {s.student: s.assignment for s in submissions} == {
        # Two students with one name stay apart: the participant id is part of the id.
        "Jane-Doe_4711": "bn01_forward",
        "Jane-Doe_4712": "bn02_backward",
        "Zoe-Angstrom_12": "bn03_conv",
        "participant_99": "bn04_torch",
        "Participant_7": "bn05_inference",
    }
    assert reasons(skipped) == {
        "Jane Doe_4711_assignsubmission_onlinetext_onlinetext.html": (
            "not a Jupyter notebook (.ipynb) file"
        )
    }


def test_zip_names_stored_as_utf8_without_the_flag(tmp_path, assignments):
    source = write_zip(
        tmp_path / "moodle.zip",
        [("Zoë Ångström_12_assignsubmission_file_/x.ipynb", exercise("bn03_conv"), "2024-03-01")],
    )
    clear_utf8_flags(source)
    with zipfile.ZipFile(source) as archive:
        assert archive.namelist()[0].startswith("Zo├½")  # what a plain reader sees
    submissions, skipped = collect.scan(source, assignments)
    assert (skipped, [s.student for s in submissions]) == ([], ["Zoe-Angstrom_12"])


def test_flat_folder(tmp_path, assignments):
    root = write_tree(
        tmp_path,
        {
            "alice.ipynb": exercise("bn01_forward"),
            "bob_bn02_backward.ipynb": exercise("bn02_backward"),
            "BN03_Conv-carol.ipynb": exercise("bn03_conv"),
            "bn04_torch.ipynb": exercise("bn04_torch"),
            "Dan Smith!.ipynb": exercise("bn05_inference"),
            "!!!.ipynb": exercise("bn01_forward"),
            "ünïcødé.ipynb": exercise("bn02_backward"),
        },
    )
    submissions, skipped = collect.scan(root, assignments)
    assert placed(submissions) == {
        "alice.ipynb": ("alice", "bn01_forward"),
        "bob_bn02_backward.ipynb": ("bob", "bn02_backward"),
        "BN03_Conv-carol.ipynb": ("carol", "bn03_conv"),
        "Dan Smith!.ipynb": ("Dan-Smith", "bn05_inference"),
        "ünïcødé.ipynb": ("unicde", "bn02_backward"),
    }
    assert reasons(skipped) == {
        "bn04_torch.ipynb": "the file name names the assignment but no student",
        "!!!.ipynb": "no usable student id in the name",
    }


def test_content_decides_over_the_file_name(tmp_path, assignments):
    root = write_tree(tmp_path, {"hank_bn01_forward.ipynb": exercise("bn02_backward")})
    submissions, _ = collect.scan(root, assignments)
    assert placed(submissions) == {"hank_bn01_forward.ipynb": ("hank", "bn02_backward")}


def test_stripped_metadata_falls_back_to_the_file_name(tmp_path, assignments):
    root = write_tree(
        tmp_path,
        {
            "erin_bn05_inference.ipynb": stripped("bn05_inference"),
            "frank.ipynb": stripped("bn01_forward"),
            "gus/bn02_backward/mine.ipynb": stripped("bn02_backward"),
        },
    )
    submissions, skipped = collect.scan(root, assignments)
    assert placed(submissions) == {
        "erin_bn05_inference.ipynb": ("erin", "bn05_inference"),
        "gus/bn02_backward/mine.ipynb": ("gus", "bn02_backward"),
    }
    assert submissions[0].notebook == stripped("bn05_inference")
    assert reasons(skipped) == {"frank.ipynb": NO_ASSIGNMENT}


def test_tied_grade_ids_fall_back_to_the_file_name(tmp_path, assignments):
    def keep_only_setup(notebook):
        for cell in notebook["cells"]:
            if cell["metadata"].get("nbgrader", {}).get("grade_id") != "setup":
                cell["metadata"].pop("nbgrader", None)

    only_setup = edited("bn03_conv", keep_only_setup)  # "setup" is in bn01 to bn04
    root = write_tree(tmp_path, {"gina_bn03_conv.ipynb": only_setup, "gina.ipynb": only_setup})
    submissions, skipped = collect.scan(root, assignments)
    assert placed(submissions) == {"gina_bn03_conv.ipynb": ("gina", "bn03_conv")}
    assert reasons(skipped) == {"gina.ipynb": NO_ASSIGNMENT}


def test_metadata_edited_by_a_student_is_tolerated(tmp_path, assignments):
    def vandalise(notebook):
        notebook["metadata"]["kernelspec"] = {"display_name": 3}
        notebook["cells"][0]["metadata"]["tags"] = "not a list"
        notebook["cells"][1]["metadata"]["nbgrader"] = {"grade_id": 42, "solution": "yes"}

    notebook = edited("bn01_forward", vandalise)
    root = write_tree(tmp_path, {"alice.ipynb": notebook})
    submissions, skipped = collect.scan(root, assignments)
    assert skipped == []
    assert placed(submissions) == {"alice.ipynb": ("alice", "bn01_forward")}
    assert submissions[0].notebook == notebook


def test_assignment_forcing(tmp_path, assignments):
    root = write_tree(
        tmp_path,
        {
            "frank.ipynb": stripped("bn01_forward"),
            "ivy.ipynb": exercise("bn02_backward"),
            "jo_bn01_forward.ipynb": exercise("bn01_forward"),
            "kim_bn03_conv.ipynb": stripped("bn03_conv"),
        },
    )
    submissions, skipped = collect.scan(root, assignments, assignment="bn01_forward")
    assert placed(submissions) == {
        "frank.ipynb": ("frank", "bn01_forward"),
        "jo_bn01_forward.ipynb": ("jo", "bn01_forward"),
    }
    assert reasons(skipped) == {
        "ivy.ipynb": "wrong assignment: this is bn02_backward, not bn01_forward",
        "kim_bn03_conv.ipynb": "wrong assignment: this is bn03_conv, not bn01_forward",
    }
    with pytest.raises(CollectError, match="unknown assignment 'bn09'"):
        collect.scan(root, assignments, assignment="bn09")


# --- skip reasons --------------------------------------------------------------------------


def test_files_that_are_not_notebooks(tmp_path, assignments):
    def drop_source(notebook):
        del notebook["cells"][1]["source"]

    version3 = {"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": []}
    root = write_tree(
        tmp_path,
        {
            "alice/notes.txt": b"my notes",
            "bob.ipynb": b"{not json",
            "carl.ipynb": b"\xff\xfe\x00junk",
            "dora.ipynb": b"[1, 2]",
            "ed.ipynb": b'{"cells": []}',
            "fay.ipynb": json.dumps(version3).encode(),
            "gus.ipynb": edited("bn01_forward", drop_source),
            "hal.ipynb": b"",
            "ida.ipynb": b"[" * 100_000,
        },
    )
    submissions, skipped = collect.scan(root, assignments)
    assert submissions == []
    found = reasons(skipped)
    assert found.pop("bob.ipynb").startswith("not valid JSON (Expecting property name")
    assert found.pop("hal.ipynb").startswith("not valid JSON (Expecting value")
    assert found.pop("ida.ipynb").startswith("not valid JSON (")
    assert found == {
        "alice/notes.txt": "not a Jupyter notebook (.ipynb) file",
        "carl.ipynb": "not valid JSON (not UTF-8 text)",
        "dora.ipynb": "JSON but not a Jupyter notebook",
        "ed.ipynb": "JSON but not a Jupyter notebook",
        "fay.ipynb": "not an nbformat 4 notebook (nbformat 3)",
        "gus.ipynb": "invalid nbformat 4 notebook ('source' is a required property)",
    }


def test_system_files_are_ignored_silently(tmp_path, assignments):
    source = write_zip(
        tmp_path / "mac.zip",
        [
            ("alice.ipynb", exercise("bn01_forward"), "2024-03-01"),
            ("__MACOSX/._alice.ipynb", b"\x00\x05\x16\x07", "2024-03-01"),
            (".ipynb_checkpoints/alice-checkpoint.ipynb", exercise("bn01_forward"), "2024-03-09"),
            ("bob/.ipynb_checkpoints/x-checkpoint.ipynb", exercise("bn02_backward"), "2024-03-09"),
            (".DS_Store", b"\x00", "2024-03-01"),
            ("folder/", b"", "2024-03-01"),
        ],
    )
    submissions, skipped = collect.scan(source, assignments)
    assert (placed(submissions), skipped) == ({"alice.ipynb": ("alice", "bn01_forward")}, [])


def test_links_and_special_files_are_not_followed(tmp_path, assignments):
    root = write_tree(tmp_path / "in", {"alice.ipynb": exercise("bn01_forward")})
    (root / "mallory.ipynb").symlink_to(REPO / "solutions/bn01_forward/bn01_forward.ipynb")
    (root / "eve").symlink_to(REPO / "solutions")
    os.mkfifo(root / "zed.ipynb")  # reading it would block forever
    submissions, skipped = collect.scan(root, assignments)
    assert placed(submissions) == {"alice.ipynb": ("alice", "bn01_forward")}
    assert reasons(skipped) == {
        "eve": "symbolic link, not followed",
        "mallory.ipynb": "symbolic link, not followed",
        "zed.ipynb": "not a regular file",
    }


def test_ids_that_would_merge_two_students_are_refused(tmp_path, assignments):
    source = write_zip(
        tmp_path / "clash.zip",
        [
            ("Jane Doe.ipynb", exercise("bn01_forward"), "2024-03-01"),
            ("Jane+Doe.ipynb", exercise("bn01_forward"), "2024-03-02"),
            ("alice.ipynb", exercise("bn01_forward"), "2024-03-01"),
            ("ALICE_bn02_backward.ipynb", exercise("bn02_backward"), "2024-03-01"),
            ("x" * 101 + ".ipynb", exercise("bn01_forward"), "2024-03-01"),
            ("a/b/c/deep.ipynb", exercise("bn01_forward"), "2024-03-01"),
        ],
    )
    submissions, skipped = collect.scan(source, assignments)
    assert submissions == []
    jane = "student id 'Jane-Doe' would stand for several names ('Jane Doe', 'Jane+Doe'); "
    assert reasons(skipped) == {
        "Jane Doe.ipynb": jane + "rename them apart",
        "Jane+Doe.ipynb": jane + "rename them apart",
        "alice.ipynb": (
            "student id 'alice' would stand for several names ('ALICE', 'alice'); rename them apart"
        ),
        "ALICE_bn02_backward.ipynb": (
            "student id 'ALICE' would stand for several names ('ALICE', 'alice'); rename them apart"
        ),
        "x" * 101 + ".ipynb": "student id longer than 100 characters",
        "a/b/c/deep.ipynb": (
            "unrecognised layout: nested too deep to tell which folder is the student"
        ),
    }


def test_traversal_names_in_a_zip(tmp_path, assignments):
    notebook = exercise("bn01_forward")
    names = [
        "../evil_bn01_forward.ipynb",
        "/abs/alice.ipynb",
        "C:/Users/x/bob.ipynb",
        "ok/../../carol.ipynb",
        "dir\\..\\..\\dave.ipynb",
    ]
    entries = [(name, notebook, "2024-03-01") for name in names]
    source = write_zip(tmp_path / "evil.zip", [*entries, ("erin.ipynb", notebook, "2024-03-01")])
    submissions, skipped = collect.scan(source, assignments)
    assert placed(submissions) == {"erin.ipynb": ("erin", "bn01_forward")}
    assert reasons(skipped) == dict.fromkeys(names, UNSAFE_PATH)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.zip"]  # nothing extracted


def test_oversize_notebook_in_a_folder(tmp_path, assignments, monkeypatch):
    monkeypatch.setattr(collect, "MAX_NOTEBOOK_BYTES", 20_000)
    big, small = exercise("bn04_torch"), exercise("bn01_forward")
    assert len(small) <= 20_000 < len(big)
    root = write_tree(tmp_path, {"alice.ipynb": small, "bob.ipynb": big})
    submissions, skipped = collect.scan(root, assignments)
    assert placed(submissions) == {"alice.ipynb": ("alice", "bn01_forward")}
    assert reasons(skipped) == {"bob.ipynb": f"larger than 20000 bytes ({len(big)} bytes)"}


def bomb(tmp_path: Path) -> Path:
    """A valid notebook behind 5 MiB of leading spaces: a tiny zip that inflates a lot."""
    padded = b" " * (5 * 2**20) + exercise("bn01_forward")
    source = write_zip(tmp_path / "bomb.zip", [("alice.ipynb", padded, "2024-03-01")])
    assert source.stat().st_size < 64 * 2**10
    return source


def test_zip_bomb_declared_size(tmp_path, assignments, monkeypatch):
    source = bomb(tmp_path)
    submissions, _ = collect.scan(source, assignments)
    assert placed(submissions) == {"alice.ipynb": ("alice", "bn01_forward")}  # under 50 MiB
    monkeypatch.setattr(collect, "MAX_NOTEBOOK_BYTES", 2**20)
    submissions, skipped = collect.scan(source, assignments)
    assert submissions == []
    assert reasons(skipped) == {"alice.ipynb": "larger than 1.0 MiB (5.0 MiB)"}


def test_zip_bomb_with_a_lying_header_stops_at_the_declared_size(tmp_path, assignments):
    source = bomb(tmp_path)
    patch_central_directory(source, 24, "<I", lambda size: 1000)  # uncompressed size
    submissions, skipped = collect.scan(source, assignments)
    assert submissions == []
    assert reasons(skipped)["alice.ipynb"].startswith("could not read it: Bad CRC-32")


def test_a_file_read_beyond_its_declared_size_is_refused(monkeypatch):
    monkeypatch.setattr(collect, "MAX_NOTEBOOK_BYTES", 1000)
    lying = collect._Entry("x.ipynb", ("x.ipynb",), 10, 0.0, lambda limit: b" " * limit)
    budget = collect._Budget(10**9)
    with pytest.raises(collect._Skip, match=r"larger than 1000 bytes when read, though it"):
        collect._read_bounded(lying, budget)
    assert budget.remaining == 10**9


def test_total_size_cap(tmp_path, assignments, monkeypatch):
    first, second = exercise("bn01_forward"), exercise("bn02_backward")
    monkeypatch.setattr(collect, "MAX_TOTAL_BYTES", len(first) + len(second) + 100)
    source = write_zip(
        tmp_path / "many.zip",
        [
            ("alice.ipynb", first, "2024-03-01"),
            ("bob.ipynb", second, "2024-03-01"),
            ("carol.ipynb", exercise("bn03_conv"), "2024-03-01"),
        ],
    )
    submissions, skipped = collect.scan(source, assignments)
    assert sorted(s.student for s in submissions) == ["alice", "bob"]
    total = len(first) + len(second) + 100
    assert reasons(skipped) == {
        "carol.ipynb": f"past the {total} bytes limit on all notebooks of one source"
    }


def test_encrypted_zip_entry(tmp_path, assignments):
    source = write_zip(
        tmp_path / "s.zip", [("alice.ipynb", exercise("bn01_forward"), "2024-03-01")]
    )
    patch_central_directory(source, 8, "<H", lambda flags: flags | 0x1)
    submissions, skipped = collect.scan(source, assignments)
    assert submissions == []
    assert reasons(skipped) == {"alice.ipynb": "encrypted (password-protected) zip entry"}


def test_bad_sources(tmp_path, assignments):
    with pytest.raises(CollectError, match="no such file or folder"):
        collect.scan(tmp_path / "missing.zip", assignments)
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(b"PK\x03\x04 this is not really a zip file")
    with pytest.raises(CollectError, match="not a readable zip file") as error:
        collect.scan(corrupt, assignments)
    assert "\n" not in str(error.value)
    truncated = write_zip(
        tmp_path / "truncated.zip", [("alice.ipynb", exercise("bn01_forward"), "2024-03-01")]
    )
    truncated.write_bytes(truncated.read_bytes()[:-30])  # lose the end-of-directory record
    with pytest.raises(CollectError, match="not a readable zip file"):
        collect.scan(truncated, assignments)


# --- duplicates and times ------------------------------------------------------------------


def test_duplicates_in_a_folder_keep_the_newest_mtime(tmp_path, assignments):
    root = write_tree(
        tmp_path,
        {
            "alice/bn01_forward/bn01_forward.ipynb": (solution("bn01_forward"), "2024-03-02"),
            "alice/bn01_forward.ipynb": (exercise("bn01_forward"), "2024-03-01"),
            "alice/old_bn01_forward.ipynb": (exercise("bn01_forward"), "2024-02-01"),
        },
    )
    submissions, skipped = collect.scan(root, assignments)
    assert placed(submissions) == {
        "alice/bn01_forward/bn01_forward.ipynb": ("alice", "bn01_forward")
    }
    assert submissions[0].timestamp == epoch("2024-03-02")
    kept = "duplicate of alice/bn01_forward/bn01_forward.ipynb (older)"
    assert reasons(skipped) == {
        "alice/bn01_forward.ipynb": kept,
        "alice/old_bn01_forward.ipynb": kept,
    }


@pytest.mark.parametrize("reverse", [False, True])
def test_duplicates_with_equal_times_are_decided_by_name(tmp_path, assignments, reverse):
    entries = [
        ("jdoe_1_2_bn01_forward.ipynb", exercise("bn01_forward"), "2024-03-01"),
        ("jdoe_1_3_bn01_forward.ipynb", solution("bn01_forward"), "2024-03-01"),
    ]
    source = write_zip(tmp_path / "s.zip", entries[::-1] if reverse else entries)
    submissions, skipped = collect.scan(source, assignments)
    assert placed(submissions) == {"jdoe_1_3_bn01_forward.ipynb": ("jdoe", "bn01_forward")}
    assert skipped == [
        Skipped(
            "jdoe_1_2_bn01_forward.ipynb",
            "duplicate of jdoe_1_3_bn01_forward.ipynb (same time; the later name is kept)",
        )
    ]


def test_one_name_twice_in_a_zip(tmp_path, assignments):
    with pytest.warns(UserWarning, match="Duplicate name"):
        source = write_zip(
            tmp_path / "twice.zip",
            [
                ("alice.ipynb", solution("bn01_forward"), "2024-03-02"),
                ("alice.ipynb", exercise("bn01_forward"), "2024-03-01"),
            ],
        )
    submissions, skipped = collect.scan(source, assignments)
    assert [s.notebook for s in submissions] == [solution("bn01_forward")]
    assert skipped == [Skipped("alice.ipynb (copy 2)", "duplicate of alice.ipynb (older)")]


def test_zip_extended_timestamp_wins_over_date_time(tmp_path, assignments):
    info = zipfile.ZipInfo("alice.ipynb", date_time("1999-01-01"))
    info.extra = struct.pack("<HHBi", 0x5455, 5, 1, 1_700_000_000)
    with zipfile.ZipFile(tmp_path / "s.zip", "w") as archive:
        archive.writestr(info, exercise("bn01_forward"))
    submissions, _ = collect.scan(tmp_path / "s.zip", assignments)
    assert [s.timestamp for s in submissions] == [1_700_000_000.0]


# --- store ---------------------------------------------------------------------------------


def submission(notebook: bytes, when: str, student: str = "alice") -> Submission:
    return Submission(student, "bn01_forward", notebook, epoch(when), f"{student}-{when}")


def test_store_writes_the_nbgrader_layout(tmp_path):
    submitted = tmp_path / "course" / "submitted"
    notebook = exercise("bn01_forward")
    assert collect.store([submission(notebook, "2024-03-02T10:00:00.25")], submitted) == []
    folder = submitted / "alice" / "bn01_forward"
    assert files_under(submitted) == {
        "alice/bn01_forward/bn01_forward.ipynb",
        "alice/bn01_forward/timestamp.txt",
    }
    assert (folder / "bn01_forward.ipynb").read_bytes() == notebook
    text = (folder / "timestamp.txt").read_text()
    assert text == "2024-03-02 10:00:00.250000 UTC"
    assert parse_utc(text) == datetime(2024, 3, 2, 10, 0, 0, 250000)  # nbgrader's reader


def test_store_keeps_a_newer_stored_submission(tmp_path):
    submitted = tmp_path / "submitted"
    newer, older = solution("bn01_forward"), exercise("bn01_forward")
    assert collect.store([submission(newer, "2024-03-02")], submitted) == []
    skipped = collect.store([submission(older, "2024-03-01")], submitted)
    assert skipped == [
        Skipped(
            "alice-2024-03-01",
            "older than the submission already stored (2024-03-02 00:00:00.000000 UTC); "
            "kept that one",
        )
    ]
    assert (submitted / "alice/bn01_forward/bn01_forward.ipynb").read_bytes() == newer
    assert not (tmp_path / "superseded").exists()


def test_store_moves_the_replaced_notebook_to_superseded(tmp_path):
    submitted = tmp_path / "submitted"
    first, second, third = exercise("bn01_forward"), solution("bn01_forward"), b"{}"
    assert collect.store([submission(first, "2024-03-01T09:30")], submitted) == []
    assert collect.store([submission(second, "2024-03-02")], submitted) == []
    # Same time as the stored one: replaced too, and its superseded name gets a suffix.
    assert collect.store([submission(third, "2024-03-02")], submitted) == []
    folder = submitted / "alice/bn01_forward"
    assert (folder / "bn01_forward.ipynb").read_bytes() == third
    assert (folder / "timestamp.txt").read_text() == "2024-03-02 00:00:00.000000 UTC"
    superseded = tmp_path / "superseded" / "alice" / "bn01_forward"
    assert files_under(superseded) == {
        "20240301T093000.000000Z.ipynb",
        "20240302T000000.000000Z.ipynb",
    }
    assert (superseded / "20240301T093000.000000Z.ipynb").read_bytes() == first
    assert (superseded / "20240302T000000.000000Z.ipynb").read_bytes() == second
    assert collect.store([submission(b"[]", "2024-03-02")], submitted) == []
    assert (superseded / "20240302T000000.000000Z-1.ipynb").read_bytes() == third


def test_store_twice_is_harmless(tmp_path):
    submitted = tmp_path / "submitted"
    same = submission(exercise("bn01_forward"), "2024-03-01")
    assert collect.store([same], submitted) == []
    assert collect.store([same], submitted) == [
        Skipped("alice-2024-03-01", "already stored (identical notebook)")
    ]
    assert not (tmp_path / "superseded").exists()


def test_store_without_timestamp_txt_uses_the_file_time(tmp_path):
    submitted = tmp_path / "submitted"
    write_tree(
        submitted,
        {
            "alice/bn01_forward/bn01_forward.ipynb": (b"old", "2024-03-01"),
            "bob/bn01_forward/bn01_forward.ipynb": (b"new", "2024-03-05"),
        },
    )
    batch = [
        submission(exercise("bn01_forward"), "2024-03-02", "alice"),
        submission(exercise("bn01_forward"), "2024-03-02", "bob"),
    ]
    skipped = collect.store(batch, submitted)
    assert [s.origin for s in skipped] == ["bob-2024-03-02"]
    assert (
        tmp_path / "superseded/alice/bn01_forward/20240301T000000.000000Z.ipynb"
    ).read_bytes() == (b"old")
    assert (submitted / "bob/bn01_forward/bn01_forward.ipynb").read_bytes() == b"new"


def test_store_is_atomic_when_the_final_rename_fails(tmp_path, monkeypatch):
    submitted = tmp_path / "submitted"
    old, new = exercise("bn01_forward"), solution("bn01_forward")
    assert collect.store([submission(old, "2024-03-01")], submitted) == []
    target = submitted / "alice/bn01_forward/bn01_forward.ipynb"
    renames = []
    real_replace = os.replace

    def failing_replace(source, destination):
        renames.append((Path(source), Path(destination)))
        if Path(destination) == target:
            raise OSError(28, "No space left on device")
        real_replace(source, destination)

    monkeypatch.setattr(collect.os, "replace", failing_replace)
    skipped = collect.store([submission(new, "2024-03-02")], submitted)
    assert skipped == [
        Skipped("alice-2024-03-02", "could not store it: [Errno 28] No space left on device")
    ]
    assert target.read_bytes() == old  # untouched, never half-written
    assert (target.parent / "timestamp.txt").read_text() == "2024-03-01 00:00:00.000000 UTC"
    # Every write went through a hidden temporary file in the destination's own folder.
    assert all(s.parent == d.parent and s.name.startswith(".") for s, d in renames)
    assert files_under(tmp_path) == {
        "submitted/alice/bn01_forward/bn01_forward.ipynb",
        "submitted/alice/bn01_forward/timestamp.txt",
        "superseded/alice/bn01_forward/20240301T000000.000000Z.ipynb",
    }


def test_store_refuses_unsafe_names(tmp_path):
    bad = Submission("../escape", "bn01_forward", b"{}", 0.0, "evil")
    skipped = collect.store([bad], tmp_path / "submitted")
    assert skipped == [Skipped("evil", "unsafe folder name '../escape'")]
    assert files_under(tmp_path) == set()


def test_collected_canvas_zip_round_trips_through_submitted(tmp_path, assignments):
    source = write_zip(
        tmp_path / "canvas.zip",
        [
            ("jdoe_1_2_bn01_forward.ipynb", exercise("bn01_forward"), "2024-03-01"),
            ("mlee_late_3_4_hw.ipynb", solution("bn02_backward"), "2024-03-02"),
        ],
    )
    submissions, _ = collect.scan(source, assignments)
    submitted = tmp_path / "submitted"
    assert collect.store(submissions, submitted) == []
    again, skipped = collect.scan(submitted, assignments)
    assert skipped == []
    # The times come back from timestamp.txt, not from the files' mtimes.
    assert {(s.student, s.assignment, s.notebook, s.timestamp) for s in again} == {
        (s.student, s.assignment, s.notebook, s.timestamp) for s in submissions
    }
    assert (submitted / "mlee/bn02_backward/timestamp.txt").read_text() == (
        "2024-03-02 00:00:00.000000 UTC"
    )


# --- rosters -------------------------------------------------------------------------------


def write_roster(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_a_roster_joins_one_students_moodle_ids_across_assignments(tmp_path, capsys):
    from autograder.cli import main

    first = write_zip(
        tmp_path / "a.zip",
        [("Jane Doe_4711_assignsubmission_file_/x.ipynb", exercise("bn01_forward"), "2024-03-01")],
    )
    second = write_zip(
        tmp_path / "b.zip",
        [("Jane Doe_9_assignsubmission_file_/y.ipynb", exercise("bn02_backward"), "2024-03-02")],
    )
    roster = write_roster(
        tmp_path / "roster.csv", "collected,student\nJane-Doe_4711,jdoe\nJane-Doe_9,jdoe\n"
    )
    grading = tmp_path / "grading"
    for source in (first, second):
        args = ["--grading-dir", str(grading), "collect", str(source), "--roster", str(roster)]
        assert main(args) == 0
    stored = sorted(p.relative_to(grading / "submitted") for p in grading.rglob("*.ipynb"))
    assert [str(p) for p in stored] == [
        "jdoe/bn01_forward/bn01_forward.ipynb",
        "jdoe/bn02_backward/bn02_backward.ipynb",
    ]


def test_rename_keeps_the_newest_when_two_ids_become_one():
    older = collect.Submission("a_1", "bn01_forward", b"{}", 1.0, "old.ipynb")
    newer = collect.Submission("a_2", "bn01_forward", b"{}", 2.0, "new.ipynb")
    other = collect.Submission("bob", "bn01_forward", b"{}", 1.0, "bob.ipynb")
    kept, skipped = collect.rename([older, newer, other], {"a_1": "ann", "a_2": "ann"})
    placed = sorted((s.student, s.origin) for s in kept)
    assert placed == [("ann", "new.ipynb"), ("bob", "bob.ipynb")]
    assert skipped == [collect.Skipped("old.ipynb", "duplicate of new.ipynb (older)")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,name\nx,y\n", "needs the columns 'collected' and 'student'"),
        ("collected,student\nx,../etc\n", "'../etc' is not a usable student id"),
        ("collected,student\nx,a\nx,b\n", "line 3: 'x' is listed twice"),
    ],
)
def test_a_bad_roster_is_one_clear_error(tmp_path, text, message):
    with pytest.raises(collect.CollectError, match=re.escape(message)):
        collect.read_roster(write_roster(tmp_path / "roster.csv", text))
