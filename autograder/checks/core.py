"""Comparison and diagnosis shared by every assignment's checks."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from autograder.scenarios.common import Opaque, Transcript, decode, encode


class Failure(AssertionError):
    """A failed check; its message is shown to the learner in feedback."""


@dataclass(frozen=True)
class KnownMistake:
    """A wrong variant of a result: what a learner who made `name` would return.

    `expected` is that wrong result, computed on the same inputs; `hint` says where to look.
    """

    name: str
    expected: object
    hint: str


def learner_type(value) -> str:
    """The type name of a value as the learner's code had it, also after a transcript's
    round trip (an `Opaque` keeps only its type name; a dict comes back as a `Transcript`).
    """
    if isinstance(value, Opaque):
        return value.type_name
    if isinstance(value, Transcript):
        return "dict"
    return type(value).__name__


def as_array(value, what: str) -> np.ndarray:
    """Turn a learner's return value (ndarray, torch tensor, list) into a float64 array."""
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise Failure(
            f"{what} should be an array of numbers, but got a {learner_type(value)}."
        ) from None
    return arr


def _close(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> bool:
    return actual.shape == expected.shape and bool(
        np.allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=False)
    )


def check_close(
    actual,
    expected,
    what: str,
    *,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    mistakes: Iterable[KnownMistake] = (),
) -> None:
    """Raise `Failure` unless `actual` matches `expected` (both array-like).

    On a mismatch, the first of `mistakes` whose wrong result `actual` matches names the
    mistake; otherwise the message gives the size of the error, never the values.
    """
    actual = as_array(actual, what)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise Failure(f"{what} has shape {actual.shape}, expected shape {expected.shape}.")
    if not np.all(np.isfinite(actual)):
        raise Failure(f"{what} contains NaN or infinite values.")
    if _close(actual, expected, rtol, atol):
        return
    for mistake in mistakes:
        wrong = np.asarray(mistake.expected, dtype=np.float64)
        if _close(actual, wrong, rtol, atol):
            raise Failure(f"{what} is wrong: it looks like {mistake.name}. {mistake.hint}")
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-12)
    error = float(np.abs(actual - expected).max())
    raise Failure(
        f"{what} is wrong: the largest difference from the correct result is {error:.3g} "
        f"(relative to the largest value: {error / scale:.3g})."
    )


def learner_check(check):
    """Decorate a hidden-test check so a failure shows its message, not the check's code.

    The `Failure` is raised again from the wrapper with its traceback dropped, so the
    feedback shows the test cell's one line and the message. Any other exception is a
    bug in the check itself and is reported as such, still without the check's code.
    """

    @functools.wraps(check)
    def run(*args, **kwargs):
        try:
            check(*args, **kwargs)
        except Failure as failure:
            message = str(failure)
        except Exception as err:
            message = (
                f"the check {check.__name__} itself failed ({type(err).__name__}); "
                "please tell your instructor."
            )
        else:
            return
        raise Failure(message) from None

    return run


def unpack(result, names: tuple[str, ...], what: str) -> tuple:
    """Check that a learner's function returned a tuple with one item per name."""
    if not isinstance(result, tuple | list) or len(result) != len(names):
        raise Failure(
            f"{what} should return a tuple ({', '.join(names)}), "
            f"but returned a {learner_type(result)}"
            + (f" of length {len(result)}." if isinstance(result, tuple | list) else ".")
        )
    return tuple(result)


def check_unchanged(what: str, originals: dict, arrays: dict) -> None:
    """Raise `Failure` if a learner's function changed one of its input arrays in place.

    `originals` maps argument names to copies taken before the call, `arrays` to the
    arrays that were passed.
    """
    for name, original in originals.items():
        if not np.array_equal(original, arrays[name]):
            raise Failure(
                f"{what} modified its input {name} in place. Compute new arrays instead "
                f"(for example `{name} - mu` rather than `{name} -= mu`)."
            )


def check_dtype(actual, dtype, what: str) -> None:
    """Raise `Failure` unless the learner's array has `dtype` (the dtype of the inputs)."""
    actual_dtype = getattr(actual, "dtype", None)
    if actual_dtype != np.dtype(dtype):
        raise Failure(
            f"{what} has dtype {actual_dtype} for {np.dtype(dtype)} inputs: return the "
            "input's dtype (avoid astype(np.float64) and float64 arrays created inside)."
        )


# ----------------------------------------------------- scenarios and verdicts


class Unreadable(Failure):
    """A transcript not in the form its verdict expects; the grader flags the submission."""

    def __init__(self, detail: str = ""):
        self.detail = detail
        super().__init__(
            "The results of this test were not in the expected form, so it scores 0. Code "
            "that changes numpy, torch or the grader's own functions causes this; your "
            "instructor will review the submission."
        )


def roundtrip(transcript):
    """`transcript` as a verdict receives it in the grader: encoded to JSON and decoded."""
    return decode(json.loads(json.dumps(encode(transcript))))


def judge(verdict, transcript) -> None:
    """Run `verdict` on a decoded transcript; raise `Failure`, or `Unreadable` if the
    transcript is malformed in any way the verdict trips over."""
    try:
        verdict(transcript)
    except Failure:
        raise
    except Exception as err:  # noqa: BLE001 (a malformed transcript can break anything)
        raise Unreadable(f"{type(err).__name__}: {err}") from None


def returned(outcome):
    """The value a learner's call returned, from an outcome recorded by
    `autograder.scenarios.common.call`; raise `Failure` with the learner's error if it raised.
    """
    if "raised" in outcome:
        message = outcome["raised"]
        raise Failure(message if isinstance(message, str) else "The call raised an error.")
    return outcome["value"]


def graded(scenario):
    """Decorate a verdict to make the hidden-test check that hidden test cells call.

    The check, called with the learner's objects, runs `scenario` on them (which records
    what they return), sends the transcript through the same encoding the grader uses, and
    judges it with the decorated verdict, which raises `Failure` with a message for the
    learner. The check keeps the verdict's name and has `.scenario` and `.verdict`, which
    the grader uses to run the two in separate processes.
    """

    def decorate(verdict):
        @functools.wraps(verdict)
        def check(*learner_objects):
            judge(verdict, roundtrip(scenario(*learner_objects)))

        wrapped = learner_check(check)
        wrapped.scenario = scenario
        wrapped.verdict = verdict
        return wrapped

    return decorate
