"""Hidden-test checks for bn02_backward: the gradients of training-mode batch norm.

The same checks grade both graded functions, the staged `batchnorm_backward` and the
closed-form `batchnorm_backward_compact`: each takes the learner's function, which is
called as ``fn(dy, x, gamma, eps)`` and must return ``(dx, dgamma, dbeta)``.

Each check is a verdict on a transcript: its scenario in `autograder.scenarios.bn02_backward`
calls the learner's function and records what it returned (in the grader, inside the
sandbox), and the verdict here regenerates the scenario's inputs, computes the expected
gradients with `autograder.reference` and judges the recorded ones.
"""

from __future__ import annotations

import numpy as np

from autograder import reference
from autograder.checks.core import (
    Failure,
    KnownMistake,
    Unreadable,
    check_close,
    check_dtype,
    check_unchanged,
    graded,
    returned,
    unpack,
)
from autograder.scenarios import bn02_backward as scenarios
from autograder.scenarios.bn02_backward import EPS

__all__ = [
    "check_backward_parameters",
    "check_backward_dx",
    "check_backward_small_batch",
    "check_backward_near_constant",
    "check_backward_float32_and_layout",
]


def _dx_mistakes(dy, x, gamma, eps=EPS) -> list[KnownMistake]:
    """What dx would be after the usual mistakes in the backward pass."""
    m = x.shape[0]
    mu = x.mean(axis=0)
    inv_std = 1.0 / np.sqrt(x.var(axis=0) + eps)
    x_hat = (x - mu) * inv_std
    dx_hat = dy * gamma
    mean_dx_hat = dx_hat.mean(axis=0)
    mean_dx_hat_x_hat = (dx_hat * x_hat).mean(axis=0)
    inv_std_u = 1.0 / np.sqrt(x.var(axis=0, ddof=1) + eps)
    x_hat_u = (x - mu) * inv_std_u
    graph_hint = "Back-propagate through all three paths from x: via x_hat, mu and var."
    return [
        KnownMistake(
            "only the direct path through x_hat (the paths through mu and var ignored)",
            dx_hat * inv_std,
            graph_hint,
        ),
        KnownMistake(
            "the path through the variance ignored",
            inv_std * (dx_hat - mean_dx_hat),
            graph_hint + " The variance depends on x too.",
        ),
        KnownMistake(
            "the path through the mean ignored",
            inv_std * (dx_hat - x_hat * mean_dx_hat_x_hat),
            graph_hint + " The mean depends on every x_i.",
        ),
        KnownMistake(
            "gamma left out of dx",
            inv_std * (dy - dy.mean(axis=0) - x_hat * (dy * x_hat).mean(axis=0)),
            "dL/dx_hat = dy * gamma.",
        ),
        KnownMistake(
            "a sign error in the term with x_hat",
            inv_std * (dx_hat - mean_dx_hat + x_hat * mean_dx_hat_x_hat),
            "Check the sign of d(inv_std)/d(var) = -1/2 (var + eps)^(-3/2).",
        ),
        KnownMistake(
            "the gradient of a forward pass with the unbiased variance",
            inv_std_u * (dx_hat - mean_dx_hat - x_hat_u * (dx_hat * x_hat_u).sum(axis=0) / (m - 1)),
            "The forward pass uses the biased variance, (1/m) sum (x - mu)**2.",
        ),
        KnownMistake(
            "1/m factors missing from the paths through mu and var",
            inv_std * (dx_hat - m * mean_dx_hat - x_hat * m * mean_dx_hat_x_hat),
            "mu and var are means over the batch: d mu / d x_i = 1/m.",
        ),
    ]


def _param_mistakes(dy, x, eps=EPS) -> dict[str, list[KnownMistake]]:
    x_hat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps)
    return {
        "dgamma": [
            KnownMistake(
                "the sum of dy without the factor x_hat",
                dy.sum(axis=0),
                "y = gamma * x_hat + beta, so dgamma = sum over the batch of dy * x_hat.",
            ),
            KnownMistake(
                "the sum of dy * x instead of dy * x_hat",
                (dy * x).sum(axis=0),
                "gamma multiplies x_hat, not x.",
            ),
            KnownMistake(
                "x_hat computed with the unbiased variance",
                (dy * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0, ddof=1) + eps)).sum(axis=0),
                "The forward pass uses the biased variance, (1/m) sum (x - mu)**2.",
            ),
            KnownMistake(
                "a mean over the batch instead of a sum",
                (dy * x_hat).mean(axis=0),
                "gamma is shared by every example: add up their contributions.",
            ),
        ],
        "dbeta": [
            KnownMistake(
                "dgamma and dbeta swapped",
                (dy * x_hat).sum(axis=0),
                "dbeta = sum over the batch of dy.",
            ),
            KnownMistake(
                "a mean over the batch instead of a sum",
                dy.mean(axis=0),
                "beta is shared by every example: add up their contributions.",
            ),
        ],
    }


def _check_param_shape(value, name: str, x_shape) -> None:
    """Name the usual reduction mistakes when a parameter gradient has the wrong shape."""
    n, d = x_shape
    shape = np.shape(value)
    if shape == (n, d) and n != d:
        raise Failure(
            f"{name} has shape {shape}, one value per example: it looks like {name} was "
            "not summed over the batch. gamma and beta have shape (D,), so do their gradients."
        )
    if shape == (n,) and n != d:
        raise Failure(
            f"{name} has shape {shape}: it looks like {name} was summed over the wrong "
            "axis. Sum over the batch, axis 0."
        )


def _name(record) -> str:
    """The name of the learner's function, as the scenario recorded it for messages."""
    name = record["name"]
    if not isinstance(name, str):
        raise Unreadable("the function's name is not a string")
    return name


def _gradients(result, name: str) -> tuple:
    """(dx, dgamma, dbeta) from what the learner's function returned."""
    return unpack(result, ("dx", "dgamma", "dbeta"), name)


def _judge(record, dy, x, gamma, *, what="", rtol=1e-7, atol_scale=1e-9, dtype=None):
    """Judge the record of fn(dy, x, gamma, EPS): the inputs left unchanged, and (dx, dgamma,
    dbeta) those of the reference."""
    name = _name(record)
    result = returned(record["result"])
    check_unchanged(name, {"dy": dy, "x": x, "gamma": gamma}, record["inputs_after"])
    grads = _gradients(result, name)
    dy64, x64, gamma64 = (a.astype(np.float64) for a in (dy, x, gamma))
    expected = reference.batchnorm_backward(dy64, x64, gamma64, EPS)
    param_mistakes = _param_mistakes(dy64, x64)
    # The parameter gradients first: a wrong x_hat shows there before it spoils dx.
    order = [
        (label, grads[i], expected[i]) for i, label in ((1, "dgamma"), (2, "dbeta"), (0, "dx"))
    ]
    for label, actual, good in order:
        if label != "dx":
            _check_param_shape(actual, label, x.shape)
        check_close(
            actual,
            good,
            label + what,
            rtol=rtol,
            atol=atol_scale * max(1.0, float(np.abs(good).max())),
            mistakes=_dx_mistakes(dy64, x64, gamma64) if label == "dx" else param_mistakes[label],
        )
        if dtype is not None:
            check_dtype(actual, dtype, label)


@graded(scenarios.backward_parameters)
def check_backward_parameters(t):
    """dgamma and dbeta for a batch of 8 with 5 features."""
    dy, x, gamma = scenarios.backward_parameters_inputs()
    name = _name(t)
    _, dgamma, dbeta = _gradients(returned(t["result"]), name)
    _, good_dgamma, good_dbeta = reference.batchnorm_backward(dy, x, gamma, EPS)
    mistakes = _param_mistakes(dy, x)
    for label, actual, good in [("dgamma", dgamma, good_dgamma), ("dbeta", dbeta, good_dbeta)]:
        _check_param_shape(actual, label, x.shape)
        check_close(actual, good, label, mistakes=mistakes[label])


@graded(scenarios.backward_dx)
def check_backward_dx(t):
    """dx, dgamma and dbeta for a batch of 8 with 5 features of various scales."""
    _judge(t, *scenarios.backward_dx_inputs())


@graded(scenarios.backward_small_batch)
def check_backward_small_batch(t):
    """Batches of 2 and 3 examples."""
    for i, (dy, x, gamma) in enumerate(scenarios.backward_small_batch_inputs()):
        _judge(t[i], dy, x, gamma, what=f" for a batch of {len(x)}")


@graded(scenarios.backward_near_constant)
def check_backward_near_constant(t):
    """Features with std 1e-3 (variance below eps) and offsets of 1e4."""
    _judge(t, *scenarios.backward_near_constant_inputs(), rtol=1e-6, atol_scale=1e-8)


@graded(scenarios.backward_float32_and_layout)
def check_backward_float32_and_layout(t):
    """float32 inputs keep their dtype; non-contiguous views give the same result."""
    float32, views = scenarios.backward_float32_and_layout_inputs()
    _judge(t[0], *float32, what=" (float32)", rtol=1e-4, atol_scale=1e-4, dtype=np.float32)
    _judge(t[1], *views, what=" for non-contiguous inputs")
