"""Hidden-test checks for bn01_forward: the forward pass, running statistics, inference.

Each check builds its own inputs (small batches, nearly constant features, large offsets,
float32, non-contiguous arrays), compares the learner's result with
`autograder.reference`, and names the mistake when the result matches a known wrong
variant from section 5 of the course's list of learner mistakes.
"""

from __future__ import annotations

import numpy as np

from autograder import reference
from autograder.checks.core import (
    Failure,
    KnownMistake,
    call_learner,
    check_close,
    check_dtype,
    check_unchanged,
    learner_check,
    unpack,
)

__all__ = [
    "check_forward_basic",
    "check_forward_small_batch",
    "check_forward_near_constant",
    "check_forward_float32_and_layout",
    "check_running_stats_basic",
    "check_running_stats_momentum",
    "check_running_stats_inputs_kept",
    "check_inference_basic",
    "check_inference_one_example",
]

EPS = 1e-5


def _features(rng, n: int, scales, offsets) -> np.ndarray:
    """(n, D) float64 input whose feature j has std scales[j] and mean offsets[j]."""
    scales = np.asarray(scales, dtype=np.float64)
    return rng.standard_normal((n, scales.size)) * scales + np.asarray(offsets, np.float64)


def _params(rng, d: int):
    return 1.0 + 0.5 * rng.standard_normal(d), rng.standard_normal(d)


# ------------------------------------------------------------------ forward pass


def _forward_mistakes(x, gamma, beta, eps=EPS) -> list[KnownMistake]:
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    unbiased = x.var(axis=0, ddof=1)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return [
        KnownMistake(
            "the unbiased variance (ddof=1, np.std with ddof=1 or torch's default)",
            gamma * (x - mu) / np.sqrt(unbiased + eps) + beta,
            "Normalization uses the biased batch variance: the mean of (x - mu)**2.",
        ),
        KnownMistake(
            "eps added outside the square root",
            gamma * (x - mu) / (np.sqrt(var) + eps) + beta,
            "The paper divides by sqrt(var + eps).",
        ),
        KnownMistake(
            "statistics over the wrong axis (per example instead of per feature)",
            gamma
            * (x - x.mean(axis=1, keepdims=True))
            / np.sqrt(x.var(axis=1, keepdims=True) + eps)
            + beta,
            "Each feature is normalized over the batch: reduce over axis 0.",
        ),
        KnownMistake(
            "eps left out",
            gamma * (x - mu) / np.sqrt(var) + beta,
            "Add eps to the variance inside the square root: sqrt(var + eps).",
        ),
        KnownMistake("beta forgotten", gamma * x_hat, "The output is gamma * x_hat + beta."),
        KnownMistake("gamma forgotten", x_hat + beta, "The output is gamma * x_hat + beta."),
        KnownMistake(
            "the standard deviation used where the variance belongs",
            gamma * (x - mu) / np.sqrt(np.sqrt(var) + eps) + beta,
            "x_hat = (x - mu) / sqrt(var + eps), with var the variance (not its root).",
        ),
    ]


def _run_forward(fn, x, gamma, beta, *, rtol=1e-7, atol=1e-9, what="y"):
    originals = {"x": x.copy(), "gamma": gamma.copy(), "beta": beta.copy()}
    y = call_learner(fn, x, gamma, beta, EPS, what="batchnorm_forward")
    check_unchanged("batchnorm_forward", originals, {"x": x, "gamma": gamma, "beta": beta})
    x64, gamma64, beta64 = (a.astype(np.float64) for a in (x, gamma, beta))
    check_close(
        y,
        reference.batchnorm_forward(x64, gamma64, beta64, EPS),
        what,
        rtol=rtol,
        atol=atol,
        mistakes=_forward_mistakes(x64, gamma64, beta64),
    )
    return y


@learner_check
def check_forward_basic(batchnorm_forward):
    """A batch of 16 examples with 6 features of different means and scales."""
    rng = np.random.default_rng(101)
    x = _features(rng, 16, [1.0, 2.0, 0.5, 3.0, 1.0, 0.1], [0.0, 5.0, -3.0, 1.0, 10.0, -2.0])
    gamma, beta = _params(rng, 6)
    _run_forward(batchnorm_forward, x, gamma, beta)


@learner_check
def check_forward_small_batch(batchnorm_forward):
    """Batches of 2 and 3 examples, where biased and unbiased variance differ most."""
    rng = np.random.default_rng(102)
    for n in (2, 3):
        x = _features(rng, n, [1.0, 3.0, 0.2, 1.0], [0.0, 2.0, -1.0, 4.0])
        gamma, beta = _params(rng, 4)
        _run_forward(batchnorm_forward, x, gamma, beta, what=f"y for a batch of {n}")


@learner_check
def check_forward_near_constant(batchnorm_forward):
    """Features with std 1e-3 (variance below eps) and with offsets of 1e4."""
    rng = np.random.default_rng(103)
    x = _features(rng, 8, [1e-3, 1e-3, 1.0, 1e-2], [0.0, 1e4, 1e4, -1e4])
    gamma, beta = _params(rng, 4)
    _run_forward(batchnorm_forward, x, gamma, beta, rtol=1e-6, atol=1e-8)


@learner_check
def check_forward_float32_and_layout(batchnorm_forward):
    """float32 inputs keep their dtype; a non-contiguous view gives the same result."""
    rng = np.random.default_rng(104)
    x = _features(rng, 10, [1.0, 2.0, 0.5], [1.0, -2.0, 3.0]).astype(np.float32)
    gamma, beta = (p.astype(np.float32) for p in _params(rng, 3))
    y = _run_forward(batchnorm_forward, x, gamma, beta, rtol=1e-4, atol=1e-4, what="y (float32)")
    check_dtype(y, np.float32, "y")
    wide = _features(rng, 12, np.ones(10), np.arange(10.0))
    view = wide[::2, ::3]  # (6, 4), strided in both axes
    gamma, beta = _params(rng, 4)
    _run_forward(batchnorm_forward, view, gamma, beta, what="y for a non-contiguous x")


# ------------------------------------------------------------- running statistics


def _running_mistakes(running_mean, running_var, x, momentum) -> list[tuple]:
    """Wrong (mean, var) pairs as (name, mean, var, hint)."""
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    unbiased = x.var(axis=0, ddof=1)

    def update(old, new, m=momentum):
        return (1 - m) * old + m * new

    return [
        (
            "the momentum convention flipped (momentum weighting the old value, as in Keras)",
            update(running_mean, mu, 1 - momentum),
            update(running_var, unbiased, 1 - momentum),
            "In PyTorch's convention momentum weights the NEW batch statistic.",
        ),
        (
            "the biased batch variance stored in running_var",
            update(running_mean, mu),
            update(running_var, var),
            "running_var stores the unbiased batch variance (ddof=1), as PyTorch does.",
        ),
        (
            "the standard deviation stored instead of the variance",
            update(running_mean, mu),
            update(running_var, np.sqrt(unbiased)),
            "running_var averages the (unbiased) batch variance, not its square root.",
        ),
        (
            "the running statistics not updated",
            running_mean,
            running_var,
            "Return the updated statistics: (1 - momentum) * old + momentum * batch.",
        ),
    ]


def _check_running(fn, running_mean, running_var, x, momentum, what=""):
    originals = {"running_mean": running_mean.copy(), "running_var": running_var.copy()}
    originals["x"] = x.copy()
    result = call_learner(fn, running_mean, running_var, x, momentum, what="update_running_stats")
    check_unchanged(
        "update_running_stats",
        originals,
        {"running_mean": running_mean, "running_var": running_var, "x": x},
    )
    mean, var = unpack(result, ("mean", "var"), "update_running_stats")
    n, d = x.shape
    if n != d and (np.shape(mean) == (n,) or np.shape(var) == (n,)):
        raise Failure(
            f"The running statistics{what} have one value per example: it looks like "
            "statistics over the wrong axis. Reduce over the batch, axis 0."
        )
    good_mean, good_var = reference.update_running_stats(running_mean, running_var, x, momentum)
    for name, wrong_mean, wrong_var, hint in _running_mistakes(
        originals["running_mean"], originals["running_var"], originals["x"], momentum
    ):
        if (
            _matches(mean, wrong_mean)
            and _matches(var, wrong_var)
            and not (_matches(mean, good_mean) and _matches(var, good_var))
        ):
            raise Failure(f"The running statistics{what} look like {name}. {hint}")
    check_close(mean, good_mean, f"The running mean{what}")
    check_close(var, good_var, f"The running variance{what}")


def _matches(actual, wrong) -> bool:
    try:
        actual = np.asarray(actual, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return actual.shape == np.shape(wrong) and bool(np.allclose(actual, wrong, 1e-7, 1e-9))


@learner_check
def check_running_stats_basic(update_running_stats):
    """One update with the default momentum 0.1 from PyTorch's initial buffers (0 and 1)."""
    rng = np.random.default_rng(201)
    x = _features(rng, 5, [2.0, 0.5, 3.0], [1.0, -4.0, 10.0])
    _check_running(update_running_stats, np.zeros(3), np.ones(3), x, 0.1)


@learner_check
def check_running_stats_momentum(update_running_stats):
    """Other momenta (0.3, 0 and 1), non-trivial buffers and a batch of 2."""
    rng = np.random.default_rng(202)
    running_mean, running_var = rng.standard_normal(4), rng.uniform(0.5, 2.0, 4)
    x = _features(rng, 6, [1.0, 2.0, 0.1, 5.0], [0.0, 3.0, -2.0, 7.0])
    _check_running(update_running_stats, running_mean, running_var, x, 0.3, " with momentum 0.3")
    _check_running(update_running_stats, running_mean, running_var, x, 0.0, " with momentum 0")
    _check_running(update_running_stats, running_mean, running_var, x, 1.0, " with momentum 1")
    pair = _features(rng, 2, [1.0, 2.0, 0.5, 1.0], [0.0, 1.0, 2.0, 3.0])
    _check_running(update_running_stats, running_mean, running_var, pair, 0.1, " for N = 2")


@learner_check
def check_running_stats_inputs_kept(update_running_stats):
    """The buffers passed in stay as they were; the function returns new arrays."""
    rng = np.random.default_rng(203)
    running_mean, running_var = rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)
    x = _features(rng, 7, [1.0, 1.0, 1.0], [0.0, 0.0, 0.0])[:, ::-1]
    _check_running(update_running_stats, running_mean, running_var, x, 0.1)


# ---------------------------------------------------------------------- inference


def _inference_mistakes(x, gamma, beta, running_mean, running_var) -> list[KnownMistake]:
    return [
        KnownMistake(
            "the batch statistics used at inference",
            reference.batchnorm_forward(x, gamma, beta, EPS) if x.shape[0] > 1 else np.nan,
            "At inference, normalize with running_mean and running_var, not the batch.",
        ),
        KnownMistake(
            "eps added outside the square root",
            gamma * (x - running_mean) / (np.sqrt(running_var) + EPS) + beta,
            "Divide by sqrt(running_var + eps).",
        ),
        KnownMistake(
            "running_var used as a standard deviation",
            gamma * (x - running_mean) / (running_var + EPS) + beta,
            "running_var is a variance: divide by its square root.",
        ),
        KnownMistake(
            "beta forgotten",
            gamma * (x - running_mean) / np.sqrt(running_var + EPS),
            "The output is gamma * x_hat + beta.",
        ),
    ]


def _check_inference(fn, x, gamma, beta, running_mean, running_var, what="y at inference"):
    args = {
        "x": x,
        "gamma": gamma,
        "beta": beta,
        "running_mean": running_mean,
        "running_var": running_var,
    }
    originals = {name: value.copy() for name, value in args.items()}
    y = call_learner(fn, *args.values(), EPS, what="batchnorm_inference")
    check_unchanged("batchnorm_inference", originals, args)
    check_close(
        y,
        reference.batchnorm_inference(*originals.values(), EPS),
        what,
        mistakes=_inference_mistakes(*originals.values()),
    )
    return y


@learner_check
def check_inference_basic(batchnorm_inference):
    """Running statistics far from the batch's own, including a variance below eps."""
    rng = np.random.default_rng(301)
    x = _features(rng, 6, [1.0, 2.0, 0.5, 1.0], [0.0, 3.0, -2.0, 1e4])
    gamma, beta = _params(rng, 4)
    running_mean = np.array([0.5, 1.0, -1.0, 1e4 + 2.0])
    running_var = np.array([2.0, 0.3, 1e-6, 4.0])
    _check_inference(batchnorm_inference, x, gamma, beta, running_mean, running_var)


@learner_check
def check_inference_one_example(batchnorm_inference):
    """A single example (N = 1) and float32 inputs, which inference must handle."""
    rng = np.random.default_rng(302)
    gamma, beta = _params(rng, 3)
    running_mean, running_var = rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)
    x = rng.standard_normal((1, 3))
    _check_inference(
        batchnorm_inference, x, gamma, beta, running_mean, running_var, "y for one example"
    )
    args32 = [a.astype(np.float32) for a in (x, gamma, beta, running_mean, running_var)]
    y = call_learner(batchnorm_inference, *args32, EPS, what="batchnorm_inference")
    check_close(
        y,
        reference.batchnorm_inference(*args32, EPS),
        "y (float32)",
        rtol=1e-5,
        atol=1e-5,
    )
    check_dtype(y, np.float32, "y")
