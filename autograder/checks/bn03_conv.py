"""Hidden-test checks for bn03_conv: batch norm for images (NCHW) and group norm.

Statistics of spatial batch norm are per channel over N*H*W values; group norm takes them
per example over each group of C/G consecutive channels. The checks use shapes where the
usual wrong axes, wrong reshapes and wrong broadcasts give different numbers.
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

EPS = 1e-5


def _images(rng, shape, channel_scales=None, channel_offsets=None) -> np.ndarray:
    """(N, C, H, W) float64 images; channel c has std scales[c] and mean offsets[c]."""
    x = rng.standard_normal(shape)
    c = shape[1]
    scales = np.ones(c) if channel_scales is None else np.asarray(channel_scales, np.float64)
    offsets = np.zeros(c) if channel_offsets is None else np.asarray(channel_offsets, np.float64)
    return x * scales.reshape(1, c, 1, 1) + offsets.reshape(1, c, 1, 1)


def _params(rng, c: int):
    return 1.0 + 0.5 * rng.standard_normal(c), rng.standard_normal(c)


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


def _run_spatial_forward(fn, x, gamma, beta, *, what="y", rtol=1e-7, atol=1e-9):
    arrays = {"x": x, "gamma": gamma, "beta": beta}
    originals = {key: value.copy() for key, value in arrays.items()}
    y = call_learner(fn, x, gamma, beta, EPS, what="spatial_batchnorm_forward")
    check_unchanged("spatial_batchnorm_forward", originals, arrays)
    x64, gamma64, beta64 = (a.astype(np.float64) for a in (x, gamma, beta))
    check_close(
        y,
        reference.spatial_batchnorm_forward(x64, gamma64, beta64, EPS),
        what,
        rtol=rtol,
        atol=atol,
        mistakes=_spatial_forward_mistakes(x64, gamma64, beta64),
    )
    return y


@learner_check
def check_spatial_forward_basic(spatial_batchnorm_forward):
    """N=4, C=3, H=5, W=3 (W equal to C, so a wrong broadcast does not raise)."""
    rng = np.random.default_rng(501)
    x = _images(rng, (4, 3, 5, 3), [1.0, 2.0, 0.5], [0.0, 3.0, -1.0])
    gamma, beta = _params(rng, 3)
    _run_spatial_forward(spatial_batchnorm_forward, x, gamma, beta)


@learner_check
def check_spatial_forward_small_and_near_constant(spatial_batchnorm_forward):
    """N = 1 with 2x2 images, N = 2, channels of std 1e-3 and offsets of 1e4."""
    rng = np.random.default_rng(502)
    x = _images(rng, (1, 2, 2, 2), [1.0, 3.0], [1.0, -2.0])
    gamma, beta = _params(rng, 2)
    _run_spatial_forward(spatial_batchnorm_forward, x, gamma, beta, what="y for N = 1")
    x = _images(rng, (2, 4, 3, 2), [1e-3, 1e-3, 1.0, 1e-2], [0.0, 1e4, 1e4, -1e4])
    gamma, beta = _params(rng, 4)
    _run_spatial_forward(spatial_batchnorm_forward, x, gamma, beta, rtol=1e-6, atol=1e-8)


@learner_check
def check_spatial_forward_float32_and_layout(spatial_batchnorm_forward):
    """float32 keeps its dtype; a channels-last array viewed as NCHW works too."""
    rng = np.random.default_rng(503)
    x = _images(rng, (3, 2, 4, 4), [1.0, 2.0], [1.0, -3.0]).astype(np.float32)
    gamma, beta = (p.astype(np.float32) for p in _params(rng, 2))
    y = _run_spatial_forward(
        spatial_batchnorm_forward, x, gamma, beta, what="y (float32)", rtol=1e-4, atol=1e-4
    )
    check_dtype(y, np.float32, "y")
    nhwc = rng.standard_normal((2, 3, 4, 5)) * 2.0 + 1.0
    gamma, beta = _params(rng, 5)
    _run_spatial_forward(
        spatial_batchnorm_forward,
        nhwc.transpose(0, 3, 1, 2),
        gamma,
        beta,
        what="y for a non-contiguous x",
    )


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


def _run_spatial_backward(fn, dy, x, gamma, *, what="", rtol=1e-7, atol=1e-9, dtype=None):
    name = "spatial_batchnorm_backward"
    arrays = {"dy": dy, "x": x, "gamma": gamma}
    originals = {key: value.copy() for key, value in arrays.items()}
    result = call_learner(fn, dy, x, gamma, EPS, what=name)
    check_unchanged(name, originals, arrays)
    grads = unpack(result, ("dx", "dgamma", "dbeta"), name)
    dy64, x64, gamma64 = (a.astype(np.float64) for a in (dy, x, gamma))
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
            _check_channel_grad_shape(actual, label, x.shape)
        scale = max(1.0, float(np.abs(good).max()))
        check_close(
            actual, good, label + what, rtol=rtol, atol=atol * scale, mistakes=mistakes[label]
        )
        if dtype is not None:
            check_dtype(actual, dtype, label)


@learner_check
def check_spatial_backward_parameters(spatial_batchnorm_backward):
    """dgamma and dbeta: sums over N, H and W."""
    rng = np.random.default_rng(601)
    x = _images(rng, (3, 4, 5, 2), [1.0, 2.0, 0.5, 1.0], [0.0, 3.0, -1.0, 2.0])
    dy = rng.standard_normal(x.shape)
    gamma, _ = _params(rng, 4)
    name = "spatial_batchnorm_backward"
    result = call_learner(spatial_batchnorm_backward, dy, x, gamma, EPS, what=name)
    _, dgamma, dbeta = unpack(result, ("dx", "dgamma", "dbeta"), name)
    _, good_dgamma, good_dbeta = reference.spatial_batchnorm_backward(dy, x, gamma, EPS)
    for label, actual, good in [("dgamma", dgamma, good_dgamma), ("dbeta", dbeta, good_dbeta)]:
        _check_channel_grad_shape(actual, label, x.shape)
        check_close(actual, good, label)


@learner_check
def check_spatial_backward_dx(spatial_batchnorm_backward):
    """dx for N = 3 and N = 1, including a channel of std 1e-3 with an offset of 1e4."""
    rng = np.random.default_rng(602)
    x = _images(rng, (3, 4, 5, 2), [1.0, 2.0, 1e-3, 1.0], [0.0, 3.0, 1e4, 2.0])
    dy = rng.standard_normal(x.shape)
    gamma, _ = _params(rng, 4)
    _run_spatial_backward(spatial_batchnorm_backward, dy, x, gamma, rtol=1e-6, atol=1e-8)
    x = _images(rng, (1, 2, 3, 3), [1.0, 2.0], [0.0, 1.0])
    dy = rng.standard_normal(x.shape)
    gamma, _ = _params(rng, 2)
    _run_spatial_backward(spatial_batchnorm_backward, dy, x, gamma, what=" for N = 1")


@learner_check
def check_spatial_backward_float32_and_layout(spatial_batchnorm_backward):
    """float32 keeps its dtype; non-contiguous views give the same result."""
    rng = np.random.default_rng(603)
    x = _images(rng, (2, 3, 4, 4), [1.0, 2.0, 0.5], [1.0, -3.0, 0.0]).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    gamma = _params(rng, 3)[0].astype(np.float32)
    _run_spatial_backward(
        spatial_batchnorm_backward,
        dy,
        x,
        gamma,
        what=" (float32)",
        rtol=1e-4,
        atol=1e-4,
        dtype=np.float32,
    )
    x = rng.standard_normal((2, 4, 3, 6)).transpose(0, 3, 1, 2)
    dy = rng.standard_normal((2, 4, 3, 6)).transpose(0, 3, 1, 2)
    gamma = _params(rng, 6)[0]
    _run_spatial_backward(
        spatial_batchnorm_backward, dy, x, gamma, what=" for non-contiguous inputs"
    )


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


def _run_groupnorm(fn, x, gamma, beta, num_groups, *, what="y", rtol=1e-7, atol=1e-9):
    arrays = {"x": x, "gamma": gamma, "beta": beta}
    originals = {key: value.copy() for key, value in arrays.items()}
    y = call_learner(fn, x, gamma, beta, num_groups, EPS, what="groupnorm_forward")
    check_unchanged("groupnorm_forward", originals, arrays)
    x64, gamma64, beta64 = (a.astype(np.float64) for a in (x, gamma, beta))
    check_close(
        y,
        reference.groupnorm_forward(x64, gamma64, beta64, num_groups, EPS),
        what,
        rtol=rtol,
        atol=atol,
        mistakes=_groupnorm_mistakes(x64, gamma64, beta64, num_groups),
    )
    return y


@learner_check
def check_groupnorm_basic(groupnorm_forward):
    """N=3, C=6 in 2 groups of 3 channels, W = C, channels of different scales."""
    rng = np.random.default_rng(701)
    x = _images(rng, (3, 6, 4, 6), [1.0, 2.0, 0.5, 3.0, 1.0, 0.2], [0, 4, -2, 1, 8, -3])
    gamma, beta = _params(rng, 6)
    _run_groupnorm(groupnorm_forward, x, gamma, beta, 2)


@learner_check
def check_groupnorm_extremes(groupnorm_forward):
    """G = 1 (layer norm), G = C (instance norm), N = 1, std 1e-3 and offsets of 1e4."""
    rng = np.random.default_rng(702)
    x = _images(rng, (2, 4, 3, 3), [1.0, 2.0, 0.5, 3.0], [0.0, 4.0, -2.0, 1.0])
    gamma, beta = _params(rng, 4)
    _run_groupnorm(groupnorm_forward, x, gamma, beta, 1, what="y for G = 1")
    _run_groupnorm(groupnorm_forward, x, gamma, beta, 4, what="y for G = C")
    x = _images(rng, (1, 4, 3, 2), [1e-3, 1e-3, 1e-3, 1e-3], [1e4, 1e4, 1e4, 1e4])
    _run_groupnorm(
        groupnorm_forward,
        x,
        gamma,
        beta,
        2,
        what="y for one nearly constant example",
        rtol=1e-6,
        atol=1e-8,
    )


@learner_check
def check_groupnorm_float32_and_layout(groupnorm_forward):
    """float32 keeps its dtype; a channels-last array viewed as NCHW works too."""
    rng = np.random.default_rng(703)
    x = _images(rng, (2, 4, 3, 3), [1.0, 2.0, 0.5, 3.0], [1.0, -3.0, 0.0, 2.0])
    gamma, beta = _params(rng, 4)
    y = _run_groupnorm(
        groupnorm_forward,
        x.astype(np.float32),
        gamma.astype(np.float32),
        beta.astype(np.float32),
        2,
        what="y (float32)",
        rtol=1e-4,
        atol=1e-4,
    )
    check_dtype(y, np.float32, "y")
    nhwc = rng.standard_normal((2, 3, 2, 6)) * 2.0 + 1.0
    gamma, beta = _params(rng, 6)
    _run_groupnorm(
        groupnorm_forward,
        nhwc.transpose(0, 3, 1, 2),
        gamma,
        beta,
        3,
        what="y for a non-contiguous x",
    )
