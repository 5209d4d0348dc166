"""Shared fixtures for the test suite: comparisons, numeric gradients, adversarial inputs.

Hypothesis profiles: ``ci`` (selected when the CI environment variable is set) is
deterministic, has no deadline and runs a modest number of examples; ``dev`` (the default)
draws fresh examples on every run.

Helpers are exposed as session-scoped fixtures, so that Hypothesis tests can use them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=25,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=25,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# Agreement required between the reference kernels and PyTorch, in float64: used as both
# the relative and the absolute tolerance.
TOL = 1e-10
# Agreement required between an analytic gradient and central finite differences, whose
# own error (truncation ~h**2, rounding ~1e-16/h with h = 1e-6) is far above TOL.
FD_TOL = 1e-7


def float64_tolerance(x: np.ndarray, axes: tuple[int, ...], eps: float) -> float:
    """TOL, or more when float64 itself cannot resolve the normalized values to TOL.

    x_hat = (x - mu) / sqrt(var + eps) amplifies the rounding of x (relative size 2**-53)
    by kappa = max |x| / sqrt(var + eps) over each group normalized together (`axes`).
    Two correct float64 implementations then differ by a small multiple of 2**-53 * kappa:
    about 1e-9 for an offset of 1e4 with a variance near eps, which a random batch of two
    close values can also produce. Up to kappa ~ 7e3 the tolerance stays TOL.
    """
    var = x.var(axis=axes, keepdims=True)
    kappa = float((np.abs(x).max(axis=axes, keepdims=True) / np.sqrt(var + eps)).max())
    return max(TOL, 64 * np.finfo(np.float64).eps * kappa)


def is_close(actual, expected, tol: float = TOL) -> bool:
    """True when both arrays have the same shape and agree to `tol` (relative and absolute).

    This is the comparison every agreement test uses; the mistake-detection tests assert
    that it rejects wrong variants of the kernels.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return actual.shape == expected.shape and bool(
        np.allclose(actual, expected, rtol=tol, atol=tol, equal_nan=False)
    )


def assert_close(actual, expected, tol: float = TOL, what: str = "result") -> None:
    """Assert `is_close`, with a message giving the shapes or the size of the error."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if not is_close(actual, expected, tol):
        error = np.abs(actual - expected)
        raise AssertionError(
            f"{what}: max abs error {np.nanmax(error):.3g}, tolerance {tol:g} "
            f"(largest expected value {np.abs(expected).max(initial=0.0):.3g})"
        )


def numeric_gradient(
    f: Callable[..., np.ndarray],
    args: Sequence[np.ndarray],
    wrt: int,
    dy: np.ndarray,
    h: float = 1e-6,
) -> np.ndarray:
    """Central finite-difference gradient of L = sum(dy * f(*args)) with respect to args[wrt].

    Every entry of args[wrt] is perturbed by +h and -h in turn; the other arguments are
    passed unchanged. Suited to well-scaled inputs (standard deviations of order 1).
    """
    args = [np.array(a, dtype=np.float64) for a in args]
    target = args[wrt]
    grad = np.zeros_like(target)
    for index in np.ndindex(target.shape):
        saved = target[index]
        target[index] = saved + h
        plus = np.sum(dy * f(*args))
        target[index] = saved - h
        minus = np.sum(dy * f(*args))
        target[index] = saved
        grad[index] = (plus - minus) / (2 * h)
    return grad


# Kinds of channel (or example) the adversarial inputs mix, as (offset, standard deviation).
# "tiny" has a variance of 1e-6, below the default eps = 1e-5: there, eps dominates the
# denominator and the eps mistakes give errors of order 1. "constant" has variance 0.
CHANNEL_KINDS = {
    "unit": (0.0, 1.0),
    "shifted": (3.0, 5.0),
    "offset": (1e4, 1.0),
    "negative_offset": (-1e4, 2.0),
    "tiny": (0.0, 1e-3),
    "constant": (0.7, 0.0),
}


def adversarial_array(
    rng: np.random.Generator, shape: tuple[int, ...], kinds: Sequence[str], axis: int = 1
) -> np.ndarray:
    """A float64 array of `shape` whose slices along `axis` follow `kinds` (CHANNEL_KINDS).

    `kinds` has one entry per index of `axis`. Offsets of 1e4 are combined only with
    standard deviations of order 1: with a standard deviation of 1e-3 as well, float64
    itself cannot resolve the normalized values to 1e-10 (see the conditioning test).
    """
    assert len(kinds) == shape[axis]
    x = rng.standard_normal(shape)
    view = [1] * len(shape)
    view[axis] = -1
    offset = np.array([CHANNEL_KINDS[k][0] for k in kinds]).reshape(view)
    std = np.array([CHANNEL_KINDS[k][1] for k in kinds]).reshape(view)
    return offset + std * x


class Adversarial:
    """Adversarial inputs for property tests: `kinds` names, `array` builds the data."""

    kinds = tuple(CHANNEL_KINDS)
    array = staticmethod(adversarial_array)


@pytest.fixture(scope="session")
def close() -> Callable[..., bool]:
    """The comparison of every agreement test, as a predicate (see `is_close`)."""
    return is_close


@pytest.fixture(scope="session")
def check() -> Callable[..., None]:
    """The comparison of every agreement test, as an assertion (see `assert_close`)."""
    return assert_close


@pytest.fixture(scope="session")
def tolerance_for() -> Callable[..., float]:
    """The agreement tolerance for a given input (see `float64_tolerance`)."""
    return float64_tolerance


@pytest.fixture(scope="session")
def check_gradient() -> Callable[..., None]:
    """Assert that `analytic` matches central finite differences of L = sum(dy * f(*args)).

    Call as ``check_gradient(analytic, f, args, wrt, dy)``; `wrt` indexes `args`.
    """

    def check(analytic, f, args, wrt, dy) -> None:
        numeric = numeric_gradient(f, args, wrt, dy)
        assert_close(analytic, numeric, tol=FD_TOL, what=f"gradient w.r.t. argument {wrt}")

    return check


@pytest.fixture(scope="session")
def adversarial() -> Adversarial:
    """Arrays mixing unit, offset, near-eps-variance and constant channels."""
    return Adversarial()


@pytest.fixture
def rng() -> np.random.Generator:
    """A generator with a fixed seed: every test sees the same data on every run."""
    return np.random.default_rng(20150211)
