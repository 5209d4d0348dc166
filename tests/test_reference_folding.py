"""Folding an inference-mode batch norm into the linear or conv layer before it."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from sklearn.datasets import load_digits
from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

from autograder import reference as ref


def as_tensor(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def bn_statistics(rng, channels):
    """gamma, beta, running_mean, running_var; one variance near eps when channels > 1."""
    running_var = rng.uniform(0.2, 4.0, channels)
    running_var[0] = 1e-6
    return (
        rng.standard_normal(channels),
        rng.standard_normal(channels),
        rng.standard_normal(channels) * 3,
        running_var,
    )


@pytest.fixture(scope="module")
def digits():
    """The 8x8 handwritten digits bundled with scikit-learn, as (N, 1, 8, 8) in [0, 1]."""
    return load_digits().images[:, None, :, :].astype(np.float64) / 16


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("kernel", [(1, 1), (3, 3), (3, 2)])
def test_conv_folding_matches_fuse_conv_bn_weights(rng, check, with_bias, kernel):
    weight = rng.standard_normal((4, 3, *kernel))
    bias = rng.standard_normal(4) if with_bias else None
    gamma, beta, mean, var = bn_statistics(rng, 4)
    expected_w, expected_b = fuse_conv_bn_weights(
        as_tensor(weight),
        None if bias is None else as_tensor(bias),
        as_tensor(mean),
        as_tensor(var),
        1e-5,
        as_tensor(gamma),
        as_tensor(beta),
    )
    folded_w, folded_b = ref.fold_batchnorm(weight, bias, gamma, beta, mean, var)
    check(folded_w, expected_w.detach().numpy(), what="weight")
    check(folded_b, expected_b.detach().numpy(), what="bias")


@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_folding_matches_fuse_linear_bn_weights(rng, check, with_bias):
    weight = rng.standard_normal((5, 7))
    bias = rng.standard_normal(5) if with_bias else None
    gamma, beta, mean, var = bn_statistics(rng, 5)
    expected_w, expected_b = fuse_linear_bn_weights(
        as_tensor(weight),
        None if bias is None else as_tensor(bias),
        as_tensor(mean),
        as_tensor(var),
        1e-3,
        as_tensor(gamma),
        as_tensor(beta),
    )
    folded_w, folded_b = ref.fold_batchnorm(weight, bias, gamma, beta, mean, var, eps=1e-3)
    check(folded_w, expected_w.detach().numpy(), what="weight")
    check(folded_b, expected_b.detach().numpy(), what="bias")


def trained_in_train_mode(bn, layer, inputs, steps=4):
    """Run a few training-mode batches so that the running statistics are not the defaults."""
    bn.train()
    with torch.no_grad():
        for batch in torch.chunk(inputs, steps):
            bn(layer(batch))
    bn.eval()


@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_then_batchnorm_equals_folded_conv_on_digits(rng, check, digits, with_bias):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 6, 3, padding=1, bias=with_bias, dtype=torch.float64)
    bn = torch.nn.BatchNorm2d(6, momentum=0.3, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(as_tensor(rng.standard_normal(6)))
        bn.bias.copy_(as_tensor(rng.standard_normal(6)))
    trained_in_train_mode(bn, conv, torch.tensor(digits[:400]))
    assert not torch.allclose(bn.running_var, torch.ones(6, dtype=torch.float64))

    x = torch.tensor(digits[400:600])
    with torch.no_grad():
        expected = bn(conv(x)).numpy()
    folded_w, folded_b = ref.fold_batchnorm(
        conv.weight.detach().numpy(),
        None if conv.bias is None else conv.bias.detach().numpy(),
        bn.weight.detach().numpy(),
        bn.bias.detach().numpy(),
        bn.running_mean.numpy(),
        bn.running_var.numpy(),
        eps=bn.eps,
    )
    folded = F.conv2d(x, as_tensor(folded_w), as_tensor(folded_b), padding=1).numpy()
    check(folded, expected, what="folded conv output")


def test_linear_then_batchnorm_equals_folded_linear_on_digits(rng, check, digits):
    torch.manual_seed(1)
    linear = torch.nn.Linear(64, 10, dtype=torch.float64)
    bn = torch.nn.BatchNorm1d(10, dtype=torch.float64)
    flat = torch.tensor(digits.reshape(len(digits), -1))
    trained_in_train_mode(bn, linear, flat[:300], steps=3)
    x = flat[300:500]
    with torch.no_grad():
        expected = bn(linear(x)).numpy()
    folded_w, folded_b = ref.fold_batchnorm(
        linear.weight.detach().numpy(),
        linear.bias.detach().numpy(),
        bn.weight.detach().numpy(),
        bn.bias.detach().numpy(),
        bn.running_mean.numpy(),
        bn.running_var.numpy(),
    )
    check(x.numpy() @ folded_w.T + folded_b, expected, what="folded linear output")


def test_folding_equals_inference_after_the_layer(rng, check):
    """bn_inference(x @ W.T + b) == x @ W'.T + b', checked with NumPy only."""
    x = rng.standard_normal((6, 4))
    weight, bias = rng.standard_normal((3, 4)), rng.standard_normal(3)
    gamma, beta, mean, var = bn_statistics(rng, 3)
    expected = ref.batchnorm_inference(x @ weight.T + bias, gamma, beta, mean, var)
    folded_w, folded_b = ref.fold_batchnorm(weight, bias, gamma, beta, mean, var)
    check(x @ folded_w.T + folded_b, expected, tol=1e-9)


def test_folding_by_hand():
    """running_var + eps = 4 and gamma = 2 make the scale 1: W' = W, b' = (1 - 0.5) + 3."""
    folded_w, folded_b = ref.fold_batchnorm(
        [[1.0, 2.0]], [1.0], [2.0], [3.0], [0.5], [3.0], eps=1.0
    )
    np.testing.assert_array_equal(folded_w, [[1.0, 2.0]])
    np.testing.assert_array_equal(folded_b, [3.5])


@given(
    out_channels=st.integers(1, 5),
    tail=st.sampled_from([(3,), (1,), (2, 1, 1), (2, 3, 3), (1, 2, 1)]),
    with_bias=st.booleans(),
    eps=st.sampled_from([1e-5, 1e-3, 0.1]),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_folding_matches_torch(check, out_channels, tail, with_bias, eps, seed):
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((out_channels, *tail))
    bias = rng.standard_normal(out_channels) if with_bias else None
    gamma, beta, mean, var = bn_statistics(rng, out_channels)
    fuse = fuse_linear_bn_weights if len(tail) == 1 else fuse_conv_bn_weights
    expected_w, expected_b = fuse(
        as_tensor(weight),
        None if bias is None else as_tensor(bias),
        as_tensor(mean),
        as_tensor(var),
        eps,
        as_tensor(gamma),
        as_tensor(beta),
    )
    folded_w, folded_b = ref.fold_batchnorm(weight, bias, gamma, beta, mean, var, eps=eps)
    check(folded_w, expected_w.detach().numpy())
    check(folded_b, expected_b.detach().numpy())
