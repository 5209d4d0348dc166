"""``python -m autograder``: from a folder of submissions to grades and feedback.

    python -m autograder release            # student versions into exercises/, gradebook
    python -m autograder collect SOURCE     # a folder or an LMS zip of notebooks
    python -m autograder grade              # every collected submission, in the sandbox
    python -m autograder feedback           # an HTML page per student and assignment
    python -m autograder export             # grades.csv: a row per student

Every command takes ``--grading-dir`` (default: ``grading/`` in the course).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import sys
import time
from pathlib import Path

from autograder.files import write_atomic
from autograder.plan import REPO, SOLUTIONS, PlanError, assignments, load_plan
from autograder.records import Records
from autograder.sandbox import Limits, check_support

DEFAULT_GRADING = REPO / "grading"


class CommandError(RuntimeError):
    """A problem the instructor must fix; printed as one line, exit status 2."""


def _known(chosen: list[str] | None) -> list[str]:
    known = assignments()
    for name in chosen or []:
        if name not in known:
            raise CommandError(f"unknown assignment {name!r}; the course has {', '.join(known)}")
    return chosen or known


# ------------------------------------------------------------------------- release


def cmd_release(args, records: Records) -> int:
    names = _known(args.assignment)
    done = records.nbgrader(
        "generate_assignment", "*" if not args.assignment else names[0], "--force"
    )
    for name in names[1:] if args.assignment else []:
        if done.returncode == 0:
            done = records.nbgrader("generate_assignment", name, "--force")
    if done.returncode != 0:
        raise CommandError(f"nbgrader generate_assignment failed:\n{done.stderr[-2000:]}")
    for name in names:
        print(f"released {name}: exercises/{name}/{name}.ipynb (registered in the gradebook)")
    return 0


def _register(records: Records, names) -> None:
    """Make sure the gradebook knows the assignments (without touching exercises/).

    One nbgrader call registers every assignment; it runs only if one is missing.
    """
    if not set(names) - records.registered():
        return
    done = records.nbgrader(
        "generate_assignment",
        "*",
        "--force",
        f"--CourseDirectory.release_directory={records.root / 'release'}",
    )
    if done.returncode != 0:
        raise CommandError(f"could not register the assignments:\n{done.stderr[-2000:]}")


# ------------------------------------------------------------------------- collect


def cmd_collect(args, records: Records) -> int:
    from autograder import collect as collecting

    if args.assignment:
        _known([args.assignment])
    try:
        known = collecting.known_assignments(SOLUTIONS)
        roster = collecting.read_roster(Path(args.roster)) if args.roster else {}
        found, skipped = collecting.scan(Path(args.source), known, assignment=args.assignment)
    except collecting.CollectError as err:
        raise CommandError(str(err)) from None
    if roster:
        found, merged = collecting.rename(found, roster)
        skipped += merged
    not_stored = collecting.store(found, records.submitted)
    unchanged = [s for s in not_stored if s.reason.startswith("already stored")]
    refused = [s for s in not_stored if s not in unchanged]
    print(f"stored {len(found) - len(not_stored)} new or newer notebooks in {records.submitted}")
    if unchanged:
        print(f"{len(unchanged)} notebooks were already stored, unchanged")
    for name in sorted({s.assignment for s in found}):
        students = sorted({s.student for s in found if s.assignment == name})
        print(f"  {name}: {len(students)} students")
    problems = skipped + refused
    if problems:
        print(f"skipped {len(problems)}:")
        for item in problems:
            print(f"  {item.origin}: {item.reason}")
    return 0


# --------------------------------------------------------------------------- grade


def _limits(args) -> Limits:
    return Limits(wall_seconds=args.timeout, cpu_seconds=int(args.timeout))


def _sandbox_or_refuse(args) -> bool:
    """True to isolate jobs; refuse (or warn loudly) when bubblewrap is unavailable."""
    reason = check_support()
    if reason is None:
        return True
    if not args.no_sandbox:
        raise CommandError(
            f"cannot sandbox student code: {reason}. Install bubblewrap, or pass "
            "--no-sandbox to run student code with your own permissions."
        )
    print(
        "WARNING: --no-sandbox: student code runs WITHOUT isolation, as your user; it can "
        "read the solutions and the gradebook, write your files and use the network.",
        file=sys.stderr,
    )
    return False


def cmd_grade(args, records: Records) -> int:
    from tqdm import tqdm

    from autograder.grading import GradingError, grade_all

    names = _known(args.assignment)
    submissions = records.submissions(names, args.student)
    if not submissions:
        raise CommandError(
            f"no submissions to grade in {records.submitted}; run `python -m autograder "
            "collect SOURCE` first"
        )
    isolated = _sandbox_or_refuse(args)
    plans = {}
    try:
        for name in sorted({s.assignment for s in submissions}):
            plans[name] = load_plan(name)
    except PlanError as err:
        raise CommandError(str(err)) from None
    _register(records, plans)
    started = time.monotonic()
    bar = tqdm(total=len(submissions), unit="notebook", desc="grading", disable=args.quiet)
    results = []
    with records.open_gradebook() as gradebook:

        def save(result):
            records.save_report(result)
            records.record_scores(gradebook, result)
            results.append(result)
            bar.update()

        try:
            grade_all(
                submissions,
                plans,
                workers=args.workers,
                limits=_limits(args),
                isolated=isolated,
                on_result=save,
            )
        except GradingError as err:
            bar.close()
            raise CommandError(f"{err}; the {len(results)} results so far are saved") from None
    bar.close()
    elapsed = time.monotonic() - started
    print(summary_table(results))
    print(
        f"{len(results)} notebooks in {elapsed:.1f} s with {args.workers} workers "
        f"(median {statistics.median(r.seconds for r in results):.2f} s per notebook)"
    )
    return 0


def summary_table(results) -> str:
    """Per assignment: graded, failed (the run ended abnormally), flagged, mean score;
    then one line per failure and flag."""
    rows = [("assignment", "graded", "failed", "flagged", "mean score")]
    for name in sorted({r.assignment for r in results}):
        group = [r for r in results if r.assignment == name]
        mean = statistics.mean(r.score for r in group)
        rows.append(
            (
                name,
                str(len(group)),
                str(sum(1 for r in group if r.problem)),
                str(sum(1 for r in group if r.flags)),
                f"{mean:.1f} / {group[0].max_score:g}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        if r.problem:
            lines.append(f"failed   {r.assignment}/{r.student}: {r.problem}")
        for flag in r.flags:
            lines.append(f"flagged  {r.assignment}/{r.student}: {flag}")
    return "\n".join(lines)


# ------------------------------------------------------------------------ feedback


def cmd_feedback(args, records: Records) -> int:
    from tqdm import tqdm

    from autograder.feedback import feedback_html

    names = _known(args.assignment)
    submissions = {(s.assignment, s.student): s for s in records.submissions(names, args.student)}
    reports = records.load_reports(names, args.student)
    if not reports:
        raise CommandError("no graded submissions; run `python -m autograder grade` first")
    written = 0
    for result in tqdm(reports, unit="page", desc="feedback", disable=None):
        submission = submissions.get((result.assignment, result.student))
        if submission is None:
            print(f"skipped {result.assignment}/{result.student}: the submission is gone")
            continue
        path = records.feedback / result.student / result.assignment / f"{result.assignment}.html"
        write_atomic(path, feedback_html(submission, result))
        written += 1
    print(f"wrote {written} feedback pages under {records.feedback}")
    return 0


# -------------------------------------------------------------------------- export


def grades_table(records: Records) -> tuple[list[str], list[dict]]:
    """A row per student: the total, each assignment's score and each graded part's,
    read from the gradebook (so manual changes made there count), and what to review."""
    from nbgrader.api import Gradebook, MissingEntry

    reports = {(r.assignment, r.student): r for r in records.load_reports()}
    header = ["student", "total", "max_total"]
    rows = []
    with Gradebook(records.db_url) as gradebook:
        names = sorted(a.name for a in gradebook.assignments)
        parts = {}
        for name in names:
            plan = load_plan(name)
            parts[name] = list(plan.tests)
            header += [name, *(f"{name}/{part}" for part in parts[name])]
        header.append("review")
        for student in sorted(s.id for s in gradebook.students):
            row = {"student": student}
            total = max_total = 0.0
            review = []
            for name in names:
                max_total += load_plan(name).max_score
                try:
                    submission = gradebook.find_submission(name, student)
                except MissingEntry:
                    continue
                notebook = submission.notebooks[0]
                scores = {grade.name: grade.score for grade in notebook.grades}
                row[name] = f"{submission.score:g}"
                total += submission.score
                for part in parts[name]:
                    row[f"{name}/{part}"] = f"{scores.get(part, 0.0):g}"
                report = reports.get((name, student))
                if report and (report.problem or report.flags):
                    review.append(
                        f"{name}: " + "; ".join(filter(None, [report.problem, *report.flags]))
                    )
            row.update(total=f"{total:g}", max_total=f"{max_total:g}", review=" | ".join(review))
            rows.append(row)
    return header, rows


def cmd_export(args, records: Records) -> int:
    if not records.gradebook.exists():
        raise CommandError("no gradebook yet; run `python -m autograder grade` first")
    header, rows = grades_table(records)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    target = Path(args.to) if args.to else records.grades_csv
    write_atomic(target, out.getvalue())
    print(f"wrote {len(rows)} students to {target}")
    return 0


# ---------------------------------------------------------------------------- main


def _command(commands, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose one-line summary is also the description its --help shows."""
    return commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:])


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="python -m autograder",
        description="Grade the course's assignments: release, collect, grade, feedback, export.",
    )
    main.add_argument(
        "--grading-dir",
        default=str(DEFAULT_GRADING),
        help="folder for submissions, reports, gradebook, feedback (default: %(default)s)",
    )
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def assignment_option(p, many=True):
        if many:
            p.add_argument(
                "--assignment", action="append", help="only this assignment (repeatable)"
            )
        p.add_argument("--student", action="append", help="only this student (repeatable)")

    release = _command(
        commands, "release", "generate the student notebooks (exercises/) and register assignments"
    )
    release.add_argument("assignment", nargs="*", help="assignment ids (default: all)")
    release.set_defaults(run=cmd_release)

    collect = _command(
        commands, "collect", "import submissions from a folder or an LMS zip (Canvas, Moodle)"
    )
    collect.add_argument("source", help="a folder of notebooks or a .zip export")
    collect.add_argument("--assignment", help="every notebook must be this assignment")
    collect.add_argument(
        "--roster",
        help="CSV with columns 'collected' (an id as collect makes it, e.g. Moodle's "
        "Jane-Doe_4711) and 'student' (the id to use instead)",
    )
    collect.set_defaults(run=cmd_collect)

    grade = _command(commands, "grade", "autograde collected submissions in the sandbox")
    assignment_option(grade)
    grade.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="notebooks graded at once (default: the number of cores, %(default)s)",
    )
    grade.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds of wall-clock and CPU time per notebook (default: %(default)s)",
    )
    grade.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run student code without isolation where bubblewrap is unavailable (unsafe)",
    )
    grade.add_argument("--quiet", action="store_true", help="no progress bar")
    grade.set_defaults(run=cmd_grade)

    feedback = _command(commands, "feedback", "write an HTML feedback page per submission")
    assignment_option(feedback)
    feedback.set_defaults(run=cmd_feedback)

    export = _command(
        commands, "export", "write a CSV with a row per student and a column per graded part"
    )
    export.add_argument("--to", help="the CSV file (default: GRADING_DIR/grades.csv)")
    export.set_defaults(run=cmd_export)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    records = Records(Path(args.grading_dir))
    # nbgrader's gradebook runs the `alembic` command installed beside this Python.
    bin_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
    try:
        return args.run(args, records)
    except CommandError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; every result saved so far is kept", file=sys.stderr)
        return 130
