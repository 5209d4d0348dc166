"""Verdicts for bn03_conv: batch norm for images (NCHW) and group norm.

Statistics of spatial batch norm are per channel over N*H*W values; group norm takes them
per example over each group of C/G consecutive channels. Each check is split in two (see
`autograder.checks.core.graded`): the scenario of the same name in
`autograder.scenarios.bn03_conv` calls the learner's function on inputs in shapes where the
usual wrong axes, wrong reshapes and wrong broadcasts give different numbers, and records
what came back; the verdict here rebuilds those inputs with the scenario module's builders
and compares the recorded results with `autograder.reference`. The forward passes are
judged like bn01_forward's, by `check_forward_call`.
"""

from __future__ import annotations

import numpy as np

from autograder import reference
from autograder.checks.bn01_forward import check_forward_call, returned_unchanged
from autograder.checks.core import (
    Failure,
    KnownMistake,
    check_close,
    check_dtype,
    graded,
    returned,
    unpack,
)
from autograder.scenarios import bn03_conv as scenarios
from autograder.scenarios.bn01_forward import EPS

__all__ = [
    "check_spatial_forward_basic",
    "check_spatial_forward_small_and_near_constant",
    "check_spatial_forward_float32_and_layout",
    "check_spatial_backward_parameters",
    "check_spatial_backward_dx",
    "check_spatial_backward_float32_and_layout",
    "check_groupnorm_basic",
    "check_groupnorm_extremes",
    "check_groupnorm_float32_and_layout",
]


def _ch(p: np.ndarray) -> np.ndarray:
    return p.reshape(1, -1, 1, 1)


def _normalized(x, axes, eps=EPS, ddof=0):
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).sum(axis=axes, keepdims=True) / (
        np.prod([x.shape[a] for a in axes]) - ddof
    )
    return (x - mu) / np.sqrt(var + eps)


def _eps_outside(x, axes):
    mu = x.mean(axis=axes, keepdims=True)
    return (x - mu) / (np.sqrt(((x - mu) ** 2).mean(axis=axes, keepdims=True)) + EPS)


# ------------------------------------------------------------ spatial forward


def _spatial_forward_mistakes(x, gamma, beta) -> list[KnownMistake]:
    n, c, h, w = x.shape
    flat = x.reshape(-1, c)  # a reshape without moving the channel axis last
    channels_last = (gamma * _normalized(flat, (0,)) + beta).reshape(x.shape)
    mistakes = [
        KnownMistake(
            "statistics over the batch axis only (one mean per channel AND position)",
            _ch(gamma) * _normalized(x, (0,)) + _ch(beta),
            "Average over N, H and W together: axis=(0, 2, 3).",
        ),
        KnownMistake(
            "statistics per example and channel (instance norm), without the batch",
            _ch(gamma) * _normalized(x, (2, 3)) + _ch(beta),
            "Average over N, H and W together: axis=(0, 2, 3).",
        ),
        KnownMistake(
            "the unbiased variance (ddof=1)",
            _ch(gamma) * _normalized(x, (0, 2, 3), ddof=1) + _ch(beta),
            "Normalization uses the biased variance over the N*H*W values of a channel.",
        ),
        KnownMistake(
            "x reshaped to (-1, C) without moving the channels last",
            channels_last,
            "x.reshape(-1, C) mixes channels; transpose to (N, H, W, C) first, or reduce "
            "over axis=(0, 2, 3) directly.",
        ),
    ]
    if w == c:
        mistakes.append(
            KnownMistake(
                "gamma and beta broadcast along the last axis (W) instead of the channels",
                gamma * _normalized(x, (0, 2, 3)) + beta,
                "Reshape gamma and beta to (1, C, 1, 1) before multiplying.",
            )
        )
    mistakes.append(
        KnownMistake(
            "eps added outside the square root",
            _ch(gamma) * _eps_outside(x, (0, 2, 3)) + _ch(beta),
            "Divide by sqrt(var + eps).",
        )
    )
    return mistakes


def _check_spatial_forward(record, inputs, **judging):
    return check_forward_call(
        record,
        "spatial_batchnorm_forward",
        inputs,
        expected=reference.spatial_batchnorm_forward,
        mistakes=_spatial_forward_mistakes,
        **judging,
    )


@graded(scenarios.spatial_forward_basic)
def check_spatial_forward_basic(t):
    """N=4, C=3, H=5, W=3 (W equal to C, so a wrong broadcast does not raise)."""
    _check_spatial_forward(t, scenarios.spatial_forward_basic_inputs())


@graded(scenarios.spatial_forward_small_and_near_constant)
def check_spatial_forward_small_and_near_constant(t):
    """N = 1 with 2x2 images, N = 2, channels of std 1e-3 and offsets of 1e4."""
    small, near_constant = scenarios.spatial_forward_small_and_near_constant_inputs()
    small_record, near_constant_record = t
    _check_spatial_forward(small_record, small, what="y for N = 1")
    _check_spatial_forward(near_constant_record, near_constant, rtol=1e-6, atol=1e-8)


@graded(scenarios.spatial_forward_float32_and_layout)
def check_spatial_forward_float32_and_layout(t):
    """float32 keeps its dtype; a channels-last array viewed as NCHW works too."""
    float32, layout = scenarios.spatial_forward_float32_and_layout_inputs()
    float32_record, layout_record = t
    y = _check_spatial_forward(float32_record, float32, what="y (float32)", rtol=1e-4, atol=1e-4)
    check_dtype(y, np.float32, "y")
    _check_spatial_forward(layout_record, layout, what="y for a non-contiguous x")


# ----------------------------------------------------------- spatial backward


def _spatial_dx_mistakes(dy, x, gamma) -> list[KnownMistake]:
    n, c, h, w = x.shape
    axes = (0, 2, 3)
    mu = x.mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(x.var(axis=axes, keepdims=True) + EPS)
    x_hat = (x - mu) * inv_std
    dx_hat = dy * _ch(gamma)
    dbeta = dy.sum(axis=axes, keepdims=True)
    dgamma = (dy * x_hat).sum(axis=axes, keepdims=True)
    mistakes = []
    if n > 1:
        per_position = reference.batchnorm_backward(
            dy.transpose(0, 2, 3, 1).reshape(n, -1),
            x.transpose(0, 2, 3, 1).reshape(n, -1),
            np.tile(gamma, h * w),
            EPS,
        )[0]
        mistakes.append(
            KnownMistake(
                "gradients of statistics over the batch axis only",
                per_position.reshape(n, h, w, c).transpose(0, 3, 1, 2),
                "Average and sum over N, H and W together: axis=(0, 2, 3).",
            )
        )
    return mistakes + [
        KnownMistake(
            "m taken as N instead of N*H*W",
            _ch(gamma) * inv_std / n * (n * dy - dbeta - x_hat * dgamma),
            "Each channel's statistics are over m = N*H*W values.",
        ),
        KnownMistake(
            "only the direct path through x_hat (the paths through mu and var ignored)",
            dx_hat * inv_std,
            "Back-propagate through all three paths from x: via x_hat, mu and var.",
        ),
    ]


def _check_channel_grad_shape(value, name: str, x_shape) -> None:
    n, c, h, w = x_shape
    shape = np.shape(value)
    if shape in {(n, c, h, w), (c, h, w), (n, c)} and shape != (c,):
        raise Failure(
            f"{name} has shape {shape}: it looks like {name} was not summed over all of "
            "N, H and W. gamma and beta have one value per channel, shape (C,)."
        )


def _check_channel_grad_shape(value, name: str, x_shape) -> None:
    n, c, h, w = x_shape
    shape = np.shape(value)
    if shape in {(n, c, h, w), (c, h, w), (n, c)} and shape != (c,):
        raise Failure(
            f"{name} has shape {shape}: it looks like {name} was not summed over all of "
            "N, H and W. gamma and beta have one value per channel, shape (C,)."
        )


def _check_spatial_backward(record, inputs, *, what="", rtol=1e-7, atol=1e-9, dtype=None):
    name = "spatial_batchnorm_backward"
    originals = dict(zip(("dy", "x", "gamma"), inputs, strict=True))
    grads = unpack(returned_unchanged(record, name, originals), ("dx", "dgamma", "dbeta"), name)
    dy64, x64, gamma64 = (a.astype(np.float64) for a in inputs)
    expected = reference.spatial_batchnorm_backward(dy64, x64, gamma64, EPS)
    x_hat = _normalized(x64, (0, 2, 3))
    mistakes = {
        "dx": _spatial_dx_mistakes(dy64, x64, gamma64),
        "dgamma": [
            KnownMistake(
                "the sum of dy without the factor x_hat",
                dy64.sum(axis=(0, 2, 3)),
                "dgamma sums dy * x_hat over N, H and W.",
            )
        ],
        "dbeta": [
            KnownMistake(
                "dgamma and dbeta swapped",
                (dy64 * x_hat).sum(axis=(0, 2, 3)),
                "dbeta sums dy over N, H and W.",
            )
        ],
    }
    for label, actual, good in zip(("dx", "dgamma", "dbeta"), grads, expected, strict=True):
        if label != "dx":
            _check_channel_grad_shape(actual, label, x64.shape)
        scale = max(1.0, float(np.abs(good).max()))
        check_close(
            actual, good, label + what, rtol=rtol, atol=atol * scale, mistakes=mistakes[label]
        )
        if dtype is not None:
            check_dtype(actual, dtype, label)


@graded(scenarios.spatial_backward_parameters)
def check_spatial_backward_parameters(t):
    """dgamma and dbeta: sums over N, H and W."""
    dy, x, gamma = scenarios.spatial_backward_parameters_inputs()
    name = "spatial_batchnorm_backward"
    _, dgamma, dbeta = unpack(returned(t), ("dx", "dgamma", "dbeta"), name)
    _, good_dgamma, good_dbeta = reference.spatial_batchnorm_backward(dy, x, gamma, EPS)
    for label, actual, good in [("dgamma", dgamma, good_dgamma), ("dbeta", dbeta, good_dbeta)]:
        _check_channel_grad_shape(actual, label, x.shape)
        check_close(actual, good, label)


@graded(scenarios.spatial_backward_dx)
def check_spatial_backward_dx(t):
    """dx for N = 3 and N = 1, including a channel of std 1e-3 with an offset of 1e4."""
    three, one = scenarios.spatial_backward_dx_inputs()
    three_record, one_record = t
    _check_spatial_backward(three_record, three, rtol=1e-6, atol=1e-8)
    _check_spatial_backward(one_record, one, what=" for N = 1")


@graded(scenarios.spatial_backward_float32_and_layout)
def check_spatial_backward_float32_and_layout(t):
    """float32 keeps its dtype; non-contiguous views give the same result."""
    float32, layout = scenarios.spatial_backward_float32_and_layout_inputs()
    float32_record, layout_record = t
    _check_spatial_backward(
        float32_record, float32, what=" (float32)", rtol=1e-4, atol=1e-4, dtype=np.float32
    )
    _check_spatial_backward(layout_record, layout, what=" for non-contiguous inputs")


# ---------------------------------------------------------------- group norm


def _groupnorm_mistakes(x, gamma, beta, num_groups) -> list[KnownMistake]:
    n, c, h, w = x.shape
    g = num_groups

    def affine(x_hat):
        return _ch(gamma) * x_hat + _ch(beta)

    interleaved = _normalized(x.reshape(n, c // g, g, h, w), (1, 3, 4)).reshape(x.shape)
    mistakes = [
        KnownMistake(
            "groups of interleaved channels (x.reshape(N, C // G, G, H, W))",
            affine(interleaved),
            "A group is C/G consecutive channels: x.reshape(N, G, C // G, H, W).",
        ),
        KnownMistake(
            "num_groups taken as the number of channels per group",
            affine(_normalized(x.reshape(n, c // g, -1), (2,)).reshape(x.shape)),
            "num_groups is G, the number of groups; each has C/G channels.",
        ),
        KnownMistake(
            "statistics shared across the batch",
            affine(_normalized(x.reshape(n, g, -1), (0, 2)).reshape(x.shape)),
            "Group norm normalizes each example on its own: never reduce over axis 0.",
        ),
        KnownMistake(
            "the unbiased variance (ddof=1)",
            affine(_normalized(x.reshape(n, g, -1), (2,), ddof=1).reshape(x.shape)),
            "Normalization uses the biased variance.",
        ),
        KnownMistake(
            "eps added outside the square root",
            affine(_eps_outside(x.reshape(n, g, -1), (2,)).reshape(x.shape)),
            "Divide by sqrt(var + eps).",
        ),
        KnownMistake(
            "batch norm statistics (over N, H and W per channel)",
            affine(_normalized(x, (0, 2, 3))),
            "Group norm's statistics are per example and group, over (C/G)*H*W values.",
        ),
    ]
    if w == c:
        mistakes.append(
            KnownMistake(
                "gamma and beta broadcast along the last axis (W) instead of the channels",
                gamma * _normalized(x.reshape(n, g, -1), (2,)).reshape(x.shape) + beta,
                "Reshape gamma and beta to (1, C, 1, 1) before multiplying.",
            )
        )
    return mistakes


def _check_groupnorm(record, case, **judging):
    inputs, num_groups = case
    return check_forward_call(
        record,
        "groupnorm_forward",
        inputs,
        num_groups,
        expected=reference.groupnorm_forward,
        mistakes=_groupnorm_mistakes,
        **judging,
    )


@graded(scenarios.groupnorm_basic)
def check_groupnorm_basic(t):
    """N=3, C=6 in 2 groups of 3 channels, W = C, channels of different scales."""
    _check_groupnorm(t, scenarios.groupnorm_basic_inputs())


@graded(scenarios.groupnorm_extremes)
def check_groupnorm_extremes(t):
    """G = 1 (layer norm), G = C (instance norm), N = 1, std 1e-3 and offsets of 1e4."""
    one_group, instance, constant = scenarios.groupnorm_extremes_inputs()
    one_group_record, instance_record, constant_record = t
    _check_groupnorm(one_group_record, one_group, what="y for G = 1")
    _check_groupnorm(instance_record, instance, what="y for G = C")
    _check_groupnorm(
        constant_record,
        constant,
        what="y for one nearly constant example",
        rtol=1e-6,
        atol=1e-8,
    )


@graded(scenarios.groupnorm_float32_and_layout)
def check_groupnorm_float32_and_layout(t):
    """float32 keeps its dtype; a channels-last array viewed as NCHW works too."""
    float32, layout = scenarios.groupnorm_float32_and_layout_inputs()
    float32_record, layout_record = t
    y = _check_groupnorm(float32_record, float32, what="y (float32)", rtol=1e-4, atol=1e-4)
    check_dtype(y, np.float32, "y")
    _check_groupnorm(layout_record, layout, what="y for a non-contiguous x")
