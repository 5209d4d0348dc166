"""Scenarios for bn01_forward: the forward pass, running statistics, inference.

Each `*_inputs` builder makes a check's inputs from a fixed seed (small batches, nearly
constant features, large offsets, float32, non-contiguous arrays); each scenario calls the
learner's function on them and records what it returned and what its array arguments hold
afterwards. The verdicts in `autograder.checks.bn01_forward` call the same builders again.
A scenario that calls the learner more than once builds fresh arrays for every call.

`observe`, `features` and `params` are shared with bn03_conv's scenarios.
"""

from __future__ import annotations

import numpy as np

from autograder.scenarios.common import call, decode, encode

EPS = 1e-5


def features(rng, n: int, scales, offsets) -> np.ndarray:
    """(n, D) float64 input whose feature j has std scales[j] and mean offsets[j]."""
    scales = np.asarray(scales, dtype=np.float64)
    return rng.standard_normal((n, scales.size)) * scales + np.asarray(offsets, np.float64)


def params(rng, d: int):
    """gamma (around 1) and beta (around 0), d values each."""
    return 1.0 + 0.5 * rng.standard_normal(d), rng.standard_normal(d)


def observe(fn, name: str, arrays, *rest) -> dict:
    """Call ``fn(*arrays, *rest)`` (`name` is the learner's name for it).

    Records the outcome of the call (see `call`) as "result" and the arrays after it as
    "inputs_after", which show whether the function changed one of them in place, both as
    they are right after the call: what a later call does to them is not recorded here.
    """
    outcome = call(fn, *arrays, *rest, what=name)
    return decode(encode({"result": outcome, "inputs_after": tuple(arrays)}))


# ------------------------------------------------------------------ forward pass


def _forward(batchnorm_forward, inputs) -> dict:
    return observe(batchnorm_forward, "batchnorm_forward", inputs, EPS)


def forward_basic_inputs():
    """(x, gamma, beta): 16 examples, 6 features of different means and scales."""
    rng = np.random.default_rng(101)
    x = features(rng, 16, [1.0, 2.0, 0.5, 3.0, 1.0, 0.1], [0.0, 5.0, -3.0, 1.0, 10.0, -2.0])
    return (x, *params(rng, 6))


def forward_basic(batchnorm_forward):
    return _forward(batchnorm_forward, forward_basic_inputs())


def forward_small_batch_inputs():
    """[(x, gamma, beta)] for batches of 2 and then 3 examples."""
    rng = np.random.default_rng(102)
    return [
        (features(rng, n, [1.0, 3.0, 0.2, 1.0], [0.0, 2.0, -1.0, 4.0]), *params(rng, 4))
        for n in (2, 3)
    ]


def forward_small_batch(batchnorm_forward):
    return [_forward(batchnorm_forward, inputs) for inputs in forward_small_batch_inputs()]


def forward_near_constant_inputs():
    """(x, gamma, beta): features with std 1e-3 and with offsets of 1e4."""
    rng = np.random.default_rng(103)
    x = features(rng, 8, [1e-3, 1e-3, 1.0, 1e-2], [0.0, 1e4, 1e4, -1e4])
    return (x, *params(rng, 4))


def forward_near_constant(batchnorm_forward):
    return _forward(batchnorm_forward, forward_near_constant_inputs())


def forward_float32_and_layout_inputs():
    """[(x, gamma, beta)]: float32 arrays, then a non-contiguous (6, 4) view as x."""
    rng = np.random.default_rng(104)
    x = features(rng, 10, [1.0, 2.0, 0.5], [1.0, -2.0, 3.0]).astype(np.float32)
    gamma, beta = (p.astype(np.float32) for p in params(rng, 3))
    wide = features(rng, 12, np.ones(10), np.arange(10.0))
    view = wide[::2, ::3]  # (6, 4), strided in both axes
    return [(x, gamma, beta), (view, *params(rng, 4))]


def forward_float32_and_layout(batchnorm_forward):
    return [_forward(batchnorm_forward, inputs) for inputs in forward_float32_and_layout_inputs()]


# ------------------------------------------------------------- running statistics


def _running(update_running_stats, inputs) -> dict:
    *arrays, momentum = inputs
    return observe(update_running_stats, "update_running_stats", arrays, momentum)


def running_stats_basic_inputs():
    """(running_mean, running_var, x, momentum): PyTorch's initial buffers, momentum 0.1."""
    rng = np.random.default_rng(201)
    x = features(rng, 5, [2.0, 0.5, 3.0], [1.0, -4.0, 10.0])
    return np.zeros(3), np.ones(3), x, 0.1


def running_stats_basic(update_running_stats):
    return _running(update_running_stats, running_stats_basic_inputs())


def running_stats_momentum_inputs():
    """[(running_mean, running_var, x, momentum)]: momenta 0.3, 0 and 1, then a batch of 2."""
    rng = np.random.default_rng(202)
    running_mean, running_var = rng.standard_normal(4), rng.uniform(0.5, 2.0, 4)
    x = features(rng, 6, [1.0, 2.0, 0.1, 5.0], [0.0, 3.0, -2.0, 7.0])
    pair = features(rng, 2, [1.0, 2.0, 0.5, 1.0], [0.0, 1.0, 2.0, 3.0])
    calls = [(x, 0.3), (x, 0.0), (x, 1.0), (pair, 0.1)]
    return [(running_mean.copy(), running_var.copy(), b.copy(), m) for b, m in calls]


def running_stats_momentum(update_running_stats):
    return [_running(update_running_stats, inputs) for inputs in running_stats_momentum_inputs()]


def running_stats_inputs_kept_inputs():
    """(running_mean, running_var, x, momentum) with x a reversed (non-contiguous) view."""
    rng = np.random.default_rng(203)
    running_mean, running_var = rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)
    x = features(rng, 7, [1.0, 1.0, 1.0], [0.0, 0.0, 0.0])[:, ::-1]
    return running_mean, running_var, x, 0.1


def running_stats_inputs_kept(update_running_stats):
    return _running(update_running_stats, running_stats_inputs_kept_inputs())


# ---------------------------------------------------------------------- inference


def inference_basic_inputs():
    """(x, gamma, beta, running_mean, running_var), running statistics far from the batch's."""
    rng = np.random.default_rng(301)
    x = features(rng, 6, [1.0, 2.0, 0.5, 1.0], [0.0, 3.0, -2.0, 1e4])
    gamma, beta = params(rng, 4)
    running_mean = np.array([0.5, 1.0, -1.0, 1e4 + 2.0])
    running_var = np.array([2.0, 0.3, 1e-6, 4.0])
    return x, gamma, beta, running_mean, running_var


def inference_basic(batchnorm_inference):
    return observe(batchnorm_inference, "batchnorm_inference", inference_basic_inputs(), EPS)


def inference_one_example_inputs():
    """[(x, gamma, beta, running_mean, running_var)] for one example: float64, then float32."""
    rng = np.random.default_rng(302)
    gamma, beta = params(rng, 3)
    running_mean, running_var = rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)
    args = (rng.standard_normal((1, 3)), gamma, beta, running_mean, running_var)
    return [args, tuple(a.astype(np.float32) for a in args)]


def inference_one_example(batchnorm_inference):
    args, args32 = inference_one_example_inputs()
    return {
        "float64": observe(batchnorm_inference, "batchnorm_inference", args, EPS),
        "float32": call(batchnorm_inference, *args32, EPS, what="batchnorm_inference"),
    }
