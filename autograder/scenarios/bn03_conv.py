"""Scenarios for bn03_conv: batch norm for images (NCHW) and group norm.

Each `*_inputs` builder makes a check's inputs from a fixed seed, in shapes where the usual
wrong axes, wrong reshapes and wrong broadcasts give different numbers; each scenario calls
the learner's function on them and records what it returned and what its array arguments
hold afterwards (`observe`, shared with bn01_forward). The verdicts in
`autograder.checks.bn03_conv` call the same builders again. A scenario that calls the
learner more than once builds fresh arrays for every call.
"""

from __future__ import annotations

import numpy as np

from autograder.scenarios.bn01_forward import EPS, observe, params
from autograder.scenarios.common import call


def images(rng, shape, channel_scales=None, channel_offsets=None) -> np.ndarray:
    """(N, C, H, W) float64 images; channel c has std scales[c] and mean offsets[c]."""
    x = rng.standard_normal(shape)
    c = shape[1]
    scales = np.ones(c) if channel_scales is None else np.asarray(channel_scales, np.float64)
    offsets = np.zeros(c) if channel_offsets is None else np.asarray(channel_offsets, np.float64)
    return x * scales.reshape(1, c, 1, 1) + offsets.reshape(1, c, 1, 1)


# ------------------------------------------------------------ spatial forward


def _spatial_forward(spatial_batchnorm_forward, inputs) -> dict:
    return observe(spatial_batchnorm_forward, "spatial_batchnorm_forward", inputs, EPS)


def spatial_forward_basic_inputs():
    """(x, gamma, beta): N=4, C=3, H=5, W=3 (W equal to C)."""
    rng = np.random.default_rng(501)
    x = images(rng, (4, 3, 5, 3), [1.0, 2.0, 0.5], [0.0, 3.0, -1.0])
    return (x, *params(rng, 3))


def spatial_forward_basic(spatial_batchnorm_forward):
    return _spatial_forward(spatial_batchnorm_forward, spatial_forward_basic_inputs())


def spatial_forward_small_and_near_constant_inputs():
    """[(x, gamma, beta)]: N = 1 with 2x2 images, then N = 2 with std 1e-3 and offsets 1e4."""
    rng = np.random.default_rng(502)
    x = images(rng, (1, 2, 2, 2), [1.0, 3.0], [1.0, -2.0])
    small = (x, *params(rng, 2))
    x = images(rng, (2, 4, 3, 2), [1e-3, 1e-3, 1.0, 1e-2], [0.0, 1e4, 1e4, -1e4])
    return [small, (x, *params(rng, 4))]


def spatial_forward_small_and_near_constant(spatial_batchnorm_forward):
    return [
        _spatial_forward(spatial_batchnorm_forward, inputs)
        for inputs in spatial_forward_small_and_near_constant_inputs()
    ]


def spatial_forward_float32_and_layout_inputs():
    """[(x, gamma, beta)]: float32 arrays, then a channels-last array viewed as NCHW."""
    rng = np.random.default_rng(503)
    x = images(rng, (3, 2, 4, 4), [1.0, 2.0], [1.0, -3.0]).astype(np.float32)
    gamma, beta = (p.astype(np.float32) for p in params(rng, 2))
    nhwc = rng.standard_normal((2, 3, 4, 5)) * 2.0 + 1.0
    return [(x, gamma, beta), (nhwc.transpose(0, 3, 1, 2), *params(rng, 5))]


def spatial_forward_float32_and_layout(spatial_batchnorm_forward):
    return [
        _spatial_forward(spatial_batchnorm_forward, inputs)
        for inputs in spatial_forward_float32_and_layout_inputs()
    ]


# ----------------------------------------------------------- spatial backward


def _spatial_backward(spatial_batchnorm_backward, inputs) -> dict:
    return observe(spatial_batchnorm_backward, "spatial_batchnorm_backward", inputs, EPS)


def spatial_backward_parameters_inputs():
    """(dy, x, gamma) with N=3, C=4, H=5, W=2."""
    rng = np.random.default_rng(601)
    x = images(rng, (3, 4, 5, 2), [1.0, 2.0, 0.5, 1.0], [0.0, 3.0, -1.0, 2.0])
    dy = rng.standard_normal(x.shape)
    return dy, x, params(rng, 4)[0]


def spatial_backward_parameters(spatial_batchnorm_backward):
    return call(
        spatial_batchnorm_backward,
        *spatial_backward_parameters_inputs(),
        EPS,
        what="spatial_batchnorm_backward",
    )


def spatial_backward_dx_inputs():
    """[(dy, x, gamma)]: N = 3 with a channel of std 1e-3 and offset 1e4, then N = 1."""
    rng = np.random.default_rng(602)
    calls = []
    for shape, scales, offsets in [
        ((3, 4, 5, 2), [1.0, 2.0, 1e-3, 1.0], [0.0, 3.0, 1e4, 2.0]),
        ((1, 2, 3, 3), [1.0, 2.0], [0.0, 1.0]),
    ]:
        x = images(rng, shape, scales, offsets)
        dy = rng.standard_normal(x.shape)
        calls.append((dy, x, params(rng, shape[1])[0]))
    return calls


def spatial_backward_dx(spatial_batchnorm_backward):
    return [
        _spatial_backward(spatial_batchnorm_backward, inputs)
        for inputs in spatial_backward_dx_inputs()
    ]


def spatial_backward_float32_and_layout_inputs():
    """[(dy, x, gamma)]: float32 arrays, then channels-last arrays viewed as NCHW."""
    rng = np.random.default_rng(603)
    x = images(rng, (2, 3, 4, 4), [1.0, 2.0, 0.5], [1.0, -3.0, 0.0]).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    float32 = (dy, x, params(rng, 3)[0].astype(np.float32))
    x = rng.standard_normal((2, 4, 3, 6)).transpose(0, 3, 1, 2)
    dy = rng.standard_normal((2, 4, 3, 6)).transpose(0, 3, 1, 2)
    return [float32, (dy, x, params(rng, 6)[0])]


def spatial_backward_float32_and_layout(spatial_batchnorm_backward):
    return [
        _spatial_backward(spatial_batchnorm_backward, inputs)
        for inputs in spatial_backward_float32_and_layout_inputs()
    ]


# ---------------------------------------------------------------- group norm


def _groupnorm(groupnorm_forward, case) -> dict:
    inputs, num_groups = case
    return observe(groupnorm_forward, "groupnorm_forward", inputs, num_groups, EPS)


def groupnorm_basic_inputs():
    """((x, gamma, beta), num_groups): N=3, C=6 in 2 groups, W = C."""
    rng = np.random.default_rng(701)
    x = images(rng, (3, 6, 4, 6), [1.0, 2.0, 0.5, 3.0, 1.0, 0.2], [0, 4, -2, 1, 8, -3])
    return (x, *params(rng, 6)), 2


def groupnorm_basic(groupnorm_forward):
    return _groupnorm(groupnorm_forward, groupnorm_basic_inputs())


def groupnorm_extremes_inputs():
    """[((x, gamma, beta), num_groups)]: G = 1, G = C, then one nearly constant example."""
    rng = np.random.default_rng(702)
    x = images(rng, (2, 4, 3, 3), [1.0, 2.0, 0.5, 3.0], [0.0, 4.0, -2.0, 1.0])
    gamma, beta = params(rng, 4)
    constant = images(rng, (1, 4, 3, 2), [1e-3, 1e-3, 1e-3, 1e-3], [1e4, 1e4, 1e4, 1e4])
    calls = [(x, 1), (x, 4), (constant, 2)]
    return [((a.copy(), gamma.copy(), beta.copy()), g) for a, g in calls]


def groupnorm_extremes(groupnorm_forward):
    return [_groupnorm(groupnorm_forward, case) for case in groupnorm_extremes_inputs()]


def groupnorm_float32_and_layout_inputs():
    """[((x, gamma, beta), num_groups)]: float32, then channels-last viewed as NCHW."""
    rng = np.random.default_rng(703)
    x = images(rng, (2, 4, 3, 3), [1.0, 2.0, 0.5, 3.0], [1.0, -3.0, 0.0, 2.0])
    float32 = tuple(a.astype(np.float32) for a in (x, *params(rng, 4)))
    nhwc = rng.standard_normal((2, 3, 2, 6)) * 2.0 + 1.0
    return [(float32, 2), ((nhwc.transpose(0, 3, 1, 2), *params(rng, 6)), 3)]


def groupnorm_float32_and_layout(groupnorm_forward):
    return [_groupnorm(groupnorm_forward, case) for case in groupnorm_float32_and_layout_inputs()]
