"""Running statistics and inference-mode batch normalization.

A sequence of training steps through nn.BatchNorm1d/2d is compared, step by step, with
update_running_stats applied in a chain; then the eval() outputs are compared with
batchnorm_inference fed the chained statistics.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from autograder import reference as ref


def as_tensor(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def training_batches(rng, adversarial, shapes):
    """Batches of different sizes and distributions: unit, offset, near-eps variance."""
    kinds = [
        ("unit", "shifted", "tiny"),
        ("offset", "unit", "constant"),
        ("tiny", "negative_offset", "shifted"),
        ("shifted", "tiny", "offset"),
    ]
    return [adversarial.array(rng, shape, kinds[i % len(kinds)]) for i, shape in enumerate(shapes)]


def module_with_affine(module_cls, channels, momentum, rng):
    bn = module_cls(channels, momentum=momentum, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(as_tensor(rng.standard_normal(channels)))
        bn.bias.copy_(as_tensor(rng.standard_normal(channels)))
    return bn


SEQUENCES = {
    "BatchNorm1d": (torch.nn.BatchNorm1d, [(2, 3), (5, 3), (3, 3), (8, 3)]),
    "BatchNorm2d": (torch.nn.BatchNorm2d, [(2, 3, 2, 2), (1, 3, 3, 2), (4, 3, 1, 3), (3, 3, 2, 1)]),
}


@pytest.mark.parametrize("momentum", [0.1, 0.01, 0.5])
@pytest.mark.parametrize("layer", sorted(SEQUENCES))
def test_training_steps_then_eval_match_torch(rng, adversarial, check, layer, momentum):
    module_cls, shapes = SEQUENCES[layer]
    bn = module_with_affine(module_cls, 3, momentum, rng)
    gamma, beta = bn.weight.detach().numpy().copy(), bn.bias.detach().numpy().copy()
    forward = ref.batchnorm_forward if len(shapes[0]) == 2 else ref.spatial_batchnorm_forward
    running_mean, running_var = np.zeros(3), np.ones(3)
    for step, x in enumerate(training_batches(rng, adversarial, shapes), start=1):
        y = bn(as_tensor(x)).detach().numpy()
        check(forward(x, gamma, beta), y, what=f"training output, step {step}")
        running_mean, running_var = ref.update_running_stats(
            running_mean, running_var, x, momentum=momentum
        )
        check(running_mean, bn.running_mean.numpy(), what=f"running_mean after step {step}")
        check(running_var, bn.running_var.numpy(), what=f"running_var after step {step}")
    assert int(bn.num_batches_tracked) == len(shapes)

    bn.eval()
    for shape in [(1,) + shapes[0][1:], shapes[0], (6,) + shapes[0][1:]]:
        x = 2 * rng.standard_normal(shape) + 1
        expected = bn(as_tensor(x)).detach().numpy()
        actual = ref.batchnorm_inference(x, gamma, beta, running_mean, running_var)
        check(actual, expected, what=f"eval output for shape {shape}")


def test_cumulative_average_is_a_chain_with_momentum_one_over_t(rng, adversarial, check):
    """momentum=None in PyTorch averages all batches: the t-th update uses momentum 1/t."""
    bn = torch.nn.BatchNorm1d(3, momentum=None, dtype=torch.float64)
    running_mean, running_var = np.zeros(3), np.ones(3)
    for t, x in enumerate(training_batches(rng, adversarial, [(4, 3)] * 5), start=1):
        bn(as_tensor(x))
        running_mean, running_var = ref.update_running_stats(
            running_mean, running_var, x, momentum=1 / t
        )
        check(running_mean, bn.running_mean.numpy())
        check(running_var, bn.running_var.numpy())


@pytest.mark.parametrize("shape", [(2, 4), (7, 4), (1, 4, 3, 2), (3, 4, 2, 2)])
def test_functional_batch_norm_updates_running_stats_like_reference(rng, check, shape):
    x = 3 * rng.standard_normal(shape) - 2
    running_mean, running_var = rng.standard_normal(4), rng.uniform(0.5, 2.0, 4)
    rm_t, rv_t = as_tensor(running_mean), as_tensor(running_var)
    F.batch_norm(as_tensor(x), rm_t, rv_t, training=True, momentum=0.2)
    mean, var = ref.update_running_stats(running_mean, running_var, x, momentum=0.2)
    check(mean, rm_t.numpy())
    check(var, rv_t.numpy())


@pytest.mark.parametrize("shape", [(1, 3), (5, 3), (1, 3, 1, 1), (2, 3, 4, 4)])
def test_functional_batch_norm_in_eval_mode_matches_inference(rng, check, shape):
    x = rng.standard_normal(shape) * 4
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    running_mean, running_var = rng.standard_normal(3), np.array([1e-6, 0.5, 30.0])
    expected = F.batch_norm(
        as_tensor(x),
        as_tensor(running_mean),
        as_tensor(running_var),
        as_tensor(gamma),
        as_tensor(beta),
        training=False,
        eps=1e-5,
    ).numpy()
    check(ref.batchnorm_inference(x, gamma, beta, running_mean, running_var), expected)


# ---------------------------------------------------------------- worked by hand


def test_one_update_by_hand():
    """x = [1, 3]: batch mean 2, unbiased batch variance 2.

    mean = 0.9 * 0 + 0.1 * 2 = 0.2;  var = 0.9 * 1 + 0.1 * 2 = 1.1.
    """
    mean, var = ref.update_running_stats(np.zeros(1), np.ones(1), [[1.0], [3.0]])
    np.testing.assert_allclose(mean, [0.2], rtol=1e-15)
    np.testing.assert_allclose(var, [1.1], rtol=1e-15)


def test_momentum_zero_keeps_and_momentum_one_replaces(rng):
    x = rng.standard_normal((5, 2, 3, 3))
    running_mean, running_var = np.array([1.0, -1.0]), np.array([2.0, 3.0])
    kept = ref.update_running_stats(running_mean, running_var, x, momentum=0.0)
    np.testing.assert_array_equal(kept[0], running_mean)
    np.testing.assert_array_equal(kept[1], running_var)
    mean, var = ref.update_running_stats(running_mean, running_var, x, momentum=1.0)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-14)
    np.testing.assert_allclose(var, x.var(axis=(0, 2, 3), ddof=1), rtol=1e-14)


def test_inference_by_hand():
    """x = 5, running mean 1, running var 3, eps 1: y = 2 * (5 - 1) / sqrt(4) + 1 = 5."""
    y = ref.batchnorm_inference([[5.0]], [2.0], [1.0], [1.0], [3.0], eps=1.0)
    np.testing.assert_array_equal(y, [[5.0]])


def test_inference_is_one_affine_map_per_channel(rng, check):
    """Algorithm 2: y = gamma / sqrt(var + eps) * x + (beta - gamma * mean / sqrt(var + eps))."""
    x = rng.standard_normal((2, 3, 4, 4))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    mean, var = rng.standard_normal(3), rng.uniform(0.1, 3.0, 3)
    scale = gamma / np.sqrt(var + 1e-5)
    shift = beta - mean * scale
    expected = scale[:, None, None] * x + shift[:, None, None]
    check(ref.batchnorm_inference(x, gamma, beta, mean, var), expected)


# ------------------------------------------------------------------ properties


@given(
    n=st.integers(2, 6),
    channels=st.integers(1, 4),
    spatial=st.sampled_from([None, (1, 1), (1, 3), (2, 2), (3, 2)]),
    momentum=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_property_update_matches_torch(
    adversarial, check, n, channels, spatial, momentum, seed, data
):
    rng = np.random.default_rng(seed)
    shape = (n, channels) if spatial is None else (n, channels, *spatial)
    kinds = data.draw(
        st.lists(st.sampled_from(adversarial.kinds), min_size=channels, max_size=channels)
    )
    x = adversarial.array(rng, shape, kinds)
    running_mean, running_var = rng.standard_normal(channels), rng.uniform(0.0, 5.0, channels)
    rm_t, rv_t = as_tensor(running_mean), as_tensor(running_var)
    F.batch_norm(as_tensor(x), rm_t, rv_t, training=True, momentum=momentum)
    mean, var = ref.update_running_stats(running_mean, running_var, x, momentum=momentum)
    check(mean, rm_t.numpy())
    check(var, rv_t.numpy())
