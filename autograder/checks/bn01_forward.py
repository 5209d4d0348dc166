"""Verdicts for bn01_forward: the forward pass, running statistics, inference.

Each check is split in two (see `autograder.checks.core.graded`): the scenario of the same
name in `autograder.scenarios.bn01_forward` calls the learner's function on inputs it
builds from fixed seeds (small batches, nearly constant features, large offsets, float32,
non-contiguous arrays) and records what came back; the verdict here rebuilds those inputs
with the scenario module's builders, compares the recorded results with
`autograder.reference`, and names the mistake when a result matches a known wrong variant
from section 5 of the course's list of learner mistakes.

`returned_unchanged` and `check_forward_call` serve bn03_conv's verdicts too.
"""

from __future__ import annotations

import numpy as np

from autograder import reference
from autograder.checks.core import (
    Failure,
    KnownMistake,
    as_array,
    check_close,
    check_dtype,
    check_unchanged,
    graded,
    returned,
    unpack,
)
from autograder.scenarios import bn01_forward as scenarios
from autograder.scenarios.bn01_forward import EPS

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


def returned_unchanged(record, name: str, originals: dict):
    """What the call `record` describes (see `autograder.scenarios.bn01_forward.observe`)
    returned, once it is known that `name` neither raised nor changed its array arguments
    in place; `originals` holds the arguments as built, by name and in order."""
    result = returned(record["result"])
    check_unchanged(name, originals, dict(zip(originals, record["inputs_after"], strict=True)))
    return result


def check_forward_call(
    record, name, inputs, *extra, expected, mistakes, what="y", rtol=1e-7, atol=1e-9
):
    """Judge the call ``name(x, gamma, beta, *extra, EPS)`` of a normalization's forward pass
    that `record` describes, with `inputs` = (x, gamma, beta), and return its result.

    The result must match ``expected(x, gamma, beta, *extra, EPS)`` computed in float64; a
    mismatch is named after the first of ``mistakes(x, gamma, beta, *extra)`` it matches.
    """
    y = returned_unchanged(record, name, dict(zip(("x", "gamma", "beta"), inputs, strict=True)))
    x, gamma, beta = (a.astype(np.float64) for a in inputs)
    check_close(
        y,
        expected(x, gamma, beta, *extra, EPS),
        what,
        rtol=rtol,
        atol=atol,
        mistakes=mistakes(x, gamma, beta, *extra),
    )
    return y


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


def _check_forward(record, inputs, **judging):
    return check_forward_call(
        record,
        "batchnorm_forward",
        inputs,
        expected=reference.batchnorm_forward,
        mistakes=_forward_mistakes,
        **judging,
    )


@graded(scenarios.forward_basic)
def check_forward_basic(t):
    """A batch of 16 examples with 6 features of different means and scales."""
    _check_forward(t, scenarios.forward_basic_inputs())


@graded(scenarios.forward_small_batch)
def check_forward_small_batch(t):
    """Batches of 2 and 3 examples, where biased and unbiased variance differ most."""
    for n, record, inputs in zip((2, 3), t, scenarios.forward_small_batch_inputs(), strict=True):
        _check_forward(record, inputs, what=f"y for a batch of {n}")


@graded(scenarios.forward_near_constant)
def check_forward_near_constant(t):
    """Features with std 1e-3 (variance below eps) and with offsets of 1e4."""
    _check_forward(t, scenarios.forward_near_constant_inputs(), rtol=1e-6, atol=1e-8)


@graded(scenarios.forward_float32_and_layout)
def check_forward_float32_and_layout(t):
    """float32 inputs keep their dtype; a non-contiguous view gives the same result."""
    float32, layout = scenarios.forward_float32_and_layout_inputs()
    float32_record, layout_record = t
    y = _check_forward(float32_record, float32, rtol=1e-4, atol=1e-4, what="y (float32)")
    check_dtype(y, np.float32, "y")
    _check_forward(layout_record, layout, what="y for a non-contiguous x")


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


def _check_running(record, running_mean, running_var, x, momentum, what=""):
    originals = {"running_mean": running_mean, "running_var": running_var, "x": x}
    result = returned_unchanged(record, "update_running_stats", originals)
    mean, var = unpack(result, ("mean", "var"), "update_running_stats")
    n, d = x.shape
    if n != d and (np.shape(mean) == (n,) or np.shape(var) == (n,)):
        raise Failure(
            f"The running statistics{what} have one value per example: it looks like "
            "statistics over the wrong axis. Reduce over the batch, axis 0."
        )
    good_mean, good_var = reference.update_running_stats(running_mean, running_var, x, momentum)
    for name, wrong_mean, wrong_var, hint in _running_mistakes(
        running_mean, running_var, x, momentum
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
        actual = as_array(actual, "")
    except Failure:
        return False
    return actual.shape == np.shape(wrong) and bool(np.allclose(actual, wrong, 1e-7, 1e-9))


@graded(scenarios.running_stats_basic)
def check_running_stats_basic(t):
    """One update with the default momentum 0.1 from PyTorch's initial buffers (0 and 1)."""
    _check_running(t, *scenarios.running_stats_basic_inputs())


@graded(scenarios.running_stats_momentum)
def check_running_stats_momentum(t):
    """Other momenta (0.3, 0 and 1), non-trivial buffers and a batch of 2."""
    whats = [" with momentum 0.3", " with momentum 0", " with momentum 1", " for N = 2"]
    inputs = scenarios.running_stats_momentum_inputs()
    for record, args, what in zip(t, inputs, whats, strict=True):
        _check_running(record, *args, what)


@graded(scenarios.running_stats_inputs_kept)
def check_running_stats_inputs_kept(t):
    """The buffers passed in stay as they were; the function returns new arrays."""
    _check_running(t, *scenarios.running_stats_inputs_kept_inputs())


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


def _check_inference(record, inputs, what="y at inference"):
    names = ("x", "gamma", "beta", "running_mean", "running_var")
    originals = dict(zip(names, inputs, strict=True))
    y = returned_unchanged(record, "batchnorm_inference", originals)
    check_close(
        y,
        reference.batchnorm_inference(*inputs, EPS),
        what,
        mistakes=_inference_mistakes(*inputs),
    )


@graded(scenarios.inference_basic)
def check_inference_basic(t):
    """Running statistics far from the batch's own, including a variance below eps."""
    _check_inference(t, scenarios.inference_basic_inputs())


@graded(scenarios.inference_one_example)
def check_inference_one_example(t):
    """A single example (N = 1) and float32 inputs, which inference must handle."""
    args, args32 = scenarios.inference_one_example_inputs()
    _check_inference(t["float64"], args, "y for one example")
    y = returned(t["float32"])
    check_close(
        y,
        reference.batchnorm_inference(*args32, EPS),
        "y (float32)",
        rtol=1e-5,
        atol=1e-5,
    )
    check_dtype(y, np.float32, "y")
