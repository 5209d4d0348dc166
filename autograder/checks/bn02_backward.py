"""Hidden-test checks for bn02_backward: the gradients of training-mode batch norm.

The same checks grade both graded functions, the staged `batchnorm_backward` and the
closed-form `batchnorm_backward_compact`: each takes the learner's function, which is
called as ``fn(dy, x, gamma, eps)`` and must return ``(dx, dgamma, dbeta)``.
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
    "check_backward_parameters",
    "check_backward_dx",
    "check_backward_small_batch",
    "check_backward_near_constant",
    "check_backward_float32_and_layout",
]

EPS = 1e-5


def _inputs(rng, n: int, scales, offsets):
    """dy, x (n, D) with feature j of std scales[j] and mean offsets[j]; gamma (D,)."""
    scales = np.asarray(scales, dtype=np.float64)
    x = rng.standard_normal((n, scales.size)) * scales + np.asarray(offsets, np.float64)
    dy = rng.standard_normal(x.shape)
    gamma = 1.0 + 0.5 * rng.standard_normal(scales.size)
    return dy, x, gamma


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


def _run(fn, dy, x, gamma, *, what="", rtol=1e-7, atol_scale=1e-9, dtype=None):
    """Call fn(dy, x, gamma, EPS) and compare (dx, dgamma, dbeta) with the reference."""
    name = getattr(fn, "__name__", "the backward function")
    arrays = {"dy": dy, "x": x, "gamma": gamma}
    originals = {key: value.copy() for key, value in arrays.items()}
    result = call_learner(fn, dy, x, gamma, EPS, what=name)
    check_unchanged(name, originals, arrays)
    grads = unpack(result, ("dx", "dgamma", "dbeta"), name)
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


@learner_check
def check_backward_parameters(backward):
    """dgamma and dbeta for a batch of 8 with 5 features."""
    rng = np.random.default_rng(401)
    dy, x, gamma = _inputs(rng, 8, [1.0, 2.0, 0.5, 3.0, 1.0], [0.0, 5.0, -3.0, 1.0, 2.0])
    name = getattr(backward, "__name__", "the backward function")
    result = call_learner(backward, dy, x, gamma, EPS, what=name)
    _, dgamma, dbeta = unpack(result, ("dx", "dgamma", "dbeta"), name)
    _, good_dgamma, good_dbeta = reference.batchnorm_backward(dy, x, gamma, EPS)
    mistakes = _param_mistakes(dy, x)
    for label, actual, good in [("dgamma", dgamma, good_dgamma), ("dbeta", dbeta, good_dbeta)]:
        _check_param_shape(actual, label, x.shape)
        check_close(actual, good, label, mistakes=mistakes[label])


@learner_check
def check_backward_dx(backward):
    """dx, dgamma and dbeta for a batch of 8 with 5 features of various scales."""
    rng = np.random.default_rng(402)
    dy, x, gamma = _inputs(rng, 8, [1.0, 2.0, 0.5, 3.0, 1.0], [0.0, 5.0, -3.0, 1.0, 2.0])
    _run(backward, dy, x, gamma)


@learner_check
def check_backward_small_batch(backward):
    """Batches of 2 and 3 examples."""
    rng = np.random.default_rng(403)
    for n in (2, 3):
        dy, x, gamma = _inputs(rng, n, [1.0, 3.0, 0.2, 1.0], [0.0, 2.0, -1.0, 4.0])
        _run(backward, dy, x, gamma, what=f" for a batch of {n}")


@learner_check
def check_backward_near_constant(backward):
    """Features with std 1e-3 (variance below eps) and offsets of 1e4."""
    rng = np.random.default_rng(404)
    dy, x, gamma = _inputs(rng, 6, [1e-3, 1e-3, 1.0, 1e-2], [0.0, 1e4, 1e4, -1e4])
    _run(backward, dy, x, gamma, rtol=1e-6, atol_scale=1e-8)


@learner_check
def check_backward_float32_and_layout(backward):
    """float32 inputs keep their dtype; non-contiguous views give the same result."""
    rng = np.random.default_rng(405)
    dy, x, gamma = _inputs(rng, 10, [1.0, 2.0, 0.5], [1.0, -2.0, 3.0])
    dy, x, gamma = (a.astype(np.float32) for a in (dy, x, gamma))
    _run(backward, dy, x, gamma, what=" (float32)", rtol=1e-4, atol_scale=1e-4, dtype=np.float32)
    dy, x, gamma = _inputs(rng, 12, np.ones(8), np.arange(8.0))
    _run(backward, dy[::2, ::2], x[::2, ::2], gamma[::2], what=" for non-contiguous inputs")
