"""Scenarios for bn02_backward: calling the learner's backward pass of training-mode batch norm.

Each scenario takes the learner's function, the staged `batchnorm_backward` or the closed-form
`batchnorm_backward_compact`, calls it as ``fn(dy, x, gamma, EPS)`` on inputs from the
matching `*_inputs` builder (which the verdicts in `autograder.checks.bn02_backward` call
too) and records, for each call, the function's name, what the call returned and the inputs
as they were after it.
"""

from __future__ import annotations

import numpy as np

from autograder.scenarios.common import call

EPS = 1e-5
UNNAMED = "the backward function"


def _batch(rng, n: int, scales, offsets):
    """dy, x (n, D) with feature j of std scales[j] and mean offsets[j]; gamma (D,)."""
    scales = np.asarray(scales, dtype=np.float64)
    x = rng.standard_normal((n, scales.size)) * scales + np.asarray(offsets, np.float64)
    dy = rng.standard_normal(x.shape)
    gamma = 1.0 + 0.5 * rng.standard_normal(scales.size)
    return dy, x, gamma


def _backward_call(backward, dy, x, gamma) -> dict:
    """backward(dy, x, gamma, EPS): the function's name, the outcome, the inputs after it.

    The name is the function's __name__ if that is a string; messages use it.
    """
    name = call(getattr, backward, "__name__", UNNAMED).get("value")
    name = name if isinstance(name, str) else UNNAMED
    return {
        "name": name,
        "result": call(backward, dy, x, gamma, EPS, what=name),
        "inputs_after": {"dy": dy, "x": x, "gamma": gamma},
    }


def backward_parameters_inputs():
    rng = np.random.default_rng(401)
    return _batch(rng, 8, [1.0, 2.0, 0.5, 3.0, 1.0], [0.0, 5.0, -3.0, 1.0, 2.0])


def backward_parameters(backward):
    return _backward_call(backward, *backward_parameters_inputs())


def backward_dx_inputs():
    rng = np.random.default_rng(402)
    return _batch(rng, 8, [1.0, 2.0, 0.5, 3.0, 1.0], [0.0, 5.0, -3.0, 1.0, 2.0])


def backward_dx(backward):
    return _backward_call(backward, *backward_dx_inputs())


def backward_small_batch_inputs():
    """Inputs for a batch of 2 examples, then for a batch of 3."""
    rng = np.random.default_rng(403)
    return [_batch(rng, n, [1.0, 3.0, 0.2, 1.0], [0.0, 2.0, -1.0, 4.0]) for n in (2, 3)]


def backward_small_batch(backward):
    return [_backward_call(backward, *inputs) for inputs in backward_small_batch_inputs()]


def backward_near_constant_inputs():
    rng = np.random.default_rng(404)
    return _batch(rng, 6, [1e-3, 1e-3, 1.0, 1e-2], [0.0, 1e4, 1e4, -1e4])


def backward_near_constant(backward):
    return _backward_call(backward, *backward_near_constant_inputs())


def backward_float32_and_layout_inputs():
    """float32 inputs, then non-contiguous views (every other row and column) of float64 ones."""
    rng = np.random.default_rng(405)
    dy, x, gamma = _batch(rng, 10, [1.0, 2.0, 0.5], [1.0, -2.0, 3.0])
    float32 = (dy.astype(np.float32), x.astype(np.float32), gamma.astype(np.float32))
    dy, x, gamma = _batch(rng, 12, np.ones(8), np.arange(8.0))
    return [float32, (dy[::2, ::2], x[::2, ::2], gamma[::2])]


def backward_float32_and_layout(backward):
    return [_backward_call(backward, *inputs) for inputs in backward_float32_and_layout_inputs()]
