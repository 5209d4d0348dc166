"""Layer and group normalization: values and gradients against nn.LayerNorm, nn.GroupNorm."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given
from hypothesis import strategies as st

from autograder import reference as ref

EPS = 1e-5


def torch_module_grads(module, x, dy):
    """y, dx, dweight, dbias of a float64 torch module with affine parameters."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = module(xt)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return y.detach().numpy(), xt.grad.numpy(), module.weight.grad.numpy(), module.bias.grad.numpy()


def set_affine(module, gamma, beta):
    with torch.no_grad():
        module.weight.copy_(torch.tensor(gamma))
        module.bias.copy_(torch.tensor(beta))
    return module


def layernorm_all(x, gamma, beta, dy, eps=EPS):
    return (ref.layernorm_forward(x, gamma, beta, eps), *ref.layernorm_backward(dy, x, gamma, eps))


def groupnorm_all(x, gamma, beta, dy, groups, eps=EPS):
    return (
        ref.groupnorm_forward(x, gamma, beta, groups, eps),
        *ref.groupnorm_backward(dy, x, gamma, groups, eps),
    )


def torch_layernorm(x, gamma, beta, dy, eps=EPS):
    module = torch.nn.LayerNorm(x.shape[1:], eps=eps, dtype=torch.float64)
    return torch_module_grads(set_affine(module, gamma, beta), x, dy)


def torch_groupnorm(x, gamma, beta, dy, groups, eps=EPS):
    module = torch.nn.GroupNorm(groups, x.shape[1], eps=eps, dtype=torch.float64)
    return torch_module_grads(set_affine(module, gamma, beta), x, dy)


NAMES = ("y", "dx", "dgamma", "dbeta")


def check_all(check, actual, expected, **tolerance):
    for name, got, want in zip(NAMES, actual, expected, strict=True):
        check(got, want, what=name, **tolerance)


# ------------------------------------------------------------------ layer norm


@pytest.mark.parametrize("shape", [(1, 4), (2, 1), (3, 7), (2, 3, 4, 5), (1, 2, 1, 3)])
def test_layernorm_matches_torch(rng, check, shape):
    x = 3 * rng.standard_normal(shape) + 2
    gamma, beta = rng.standard_normal(shape[1:]), rng.standard_normal(shape[1:])
    dy = rng.standard_normal(shape)
    check_all(check, layernorm_all(x, gamma, beta, dy), torch_layernorm(x, gamma, beta, dy))


@pytest.mark.parametrize("shape", [(2, 3), (3, 2, 2, 2)])
def test_layernorm_gradients_match_finite_differences(rng, check_gradient, shape):
    x = rng.standard_normal(shape)
    gamma, beta = rng.standard_normal(shape[1:]), rng.standard_normal(shape[1:])
    dy = rng.standard_normal(shape)
    _, dx, dgamma, dbeta = layernorm_all(x, gamma, beta, dy)
    args = (x, gamma, beta)
    check_gradient(dx, ref.layernorm_forward, args, 0, dy)
    check_gradient(dgamma, ref.layernorm_forward, args, 1, dy)
    check_gradient(dbeta, ref.layernorm_forward, args, 2, dy)


def test_layernorm_by_hand():
    """One example [1, 3]: x_hat = [-1, 1] / sqrt(1 + eps); each example on its own."""
    y = ref.layernorm_forward([[1.0, 3.0], [10.0, 10.0]], [2.0, 1.0], [0.0, 0.5], eps=EPS)
    s = 1 / np.sqrt(1 + EPS)
    np.testing.assert_allclose(y, [[-2 * s, 0.5 + s], [0.0, 0.5]], rtol=1e-14, atol=1e-15)


def test_layernorm_is_batchnorm_of_the_transpose(rng, check):
    """Normalizing each example over its features is batch norm of x.T (gamma = 1, beta = 0)."""
    x = rng.standard_normal((4, 6)) * 2 - 1
    d = x.shape[1]
    expected = ref.batchnorm_forward(x.T, np.ones(4), np.zeros(4)).T
    check(ref.layernorm_forward(x, np.ones(d), np.zeros(d)), expected)


# ------------------------------------------------------------------ group norm


@pytest.mark.parametrize(
    ("shape", "groups"),
    [
        ((2, 4, 3, 3), 1),
        ((2, 4, 3, 3), 2),
        ((2, 4, 3, 3), 4),
        ((3, 6, 2, 1), 3),
        ((1, 6, 1, 1), 3),
        ((2, 3, 1, 2), 3),
        ((2, 3, 1, 1), 3),  # one value per group: y = beta
    ],
)
def test_groupnorm_matches_torch(rng, check, shape, groups):
    x = 3 * rng.standard_normal(shape) + 2
    gamma, beta = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    dy = rng.standard_normal(shape)
    check_all(
        check,
        groupnorm_all(x, gamma, beta, dy, groups),
        torch_groupnorm(x, gamma, beta, dy, groups),
    )


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_groupnorm_gradients_match_finite_differences(rng, check_gradient, groups):
    shape = (2, 4, 2, 2)
    x = rng.standard_normal(shape)
    gamma, beta, dy = rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(shape)
    _, dx, dgamma, dbeta = groupnorm_all(x, gamma, beta, dy, groups)

    def forward(x, gamma, beta):
        return ref.groupnorm_forward(x, gamma, beta, groups)

    args = (x, gamma, beta)
    check_gradient(dx, forward, args, 0, dy)
    check_gradient(dgamma, forward, args, 1, dy)
    check_gradient(dbeta, forward, args, 2, dy)


def test_groupnorm_with_one_group_is_layernorm(rng, check):
    """G = 1 normalizes each example over (C, H, W), like nn.LayerNorm((C, H, W))."""
    x = rng.standard_normal((3, 4, 2, 3))
    dy = rng.standard_normal(x.shape)
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    full_gamma = np.broadcast_to(gamma[:, None, None], x.shape[1:]).copy()
    full_beta = np.broadcast_to(beta[:, None, None], x.shape[1:]).copy()
    y, dx, _, _ = torch_layernorm(x, full_gamma, full_beta, dy)
    check(ref.groupnorm_forward(x, gamma, beta, 1), y)
    check(ref.groupnorm_backward(dy, x, gamma, 1)[0], dx)


def test_groupnorm_with_one_channel_per_group_is_instance_norm(rng, check):
    """G = C normalizes each example's channel over (H, W): torch's instance_norm."""
    x = rng.standard_normal((2, 3, 4, 2)) + 5
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    expected = F.instance_norm(
        torch.tensor(x), weight=torch.tensor(gamma), bias=torch.tensor(beta), eps=EPS
    ).numpy()
    check(ref.groupnorm_forward(x, gamma, beta, 3), expected)


def test_groupnorm_by_hand():
    """One example, two groups of one channel with pixels [1, 3] and [5, 5]."""
    x = np.array([[[[1.0, 3.0]], [[5.0, 5.0]]]])
    y = ref.groupnorm_forward(x, [1.0, 2.0], [0.0, -1.0], 2, eps=EPS)
    s = 1 / np.sqrt(1 + EPS)
    np.testing.assert_allclose(y, [[[[-s, s]], [[-1.0, -1.0]]]], rtol=1e-14)


# ------------------------------------------------------------------ properties


@given(
    n=st.integers(1, 4),
    features=st.sampled_from([(1,), (2,), (5,), (2, 1, 1), (1, 2, 2), (3, 2, 3)]),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_property_layernorm_adversarial_matches_torch(
    adversarial, check, tolerance_for, n, features, seed, data
):
    """Examples of every kind: offset 1e4, variance near eps, constant (y = beta)."""
    rng = np.random.default_rng(seed)
    kinds = data.draw(st.lists(st.sampled_from(adversarial.kinds), min_size=n, max_size=n))
    x = adversarial.array(rng, (n, *features), kinds, axis=0)
    gamma, beta = rng.standard_normal(features), rng.standard_normal(features)
    dy = rng.standard_normal(x.shape)
    actual = layernorm_all(x, gamma, beta, dy)
    tol = tolerance_for(x, tuple(range(1, x.ndim)), EPS)
    check_all(check, actual, torch_layernorm(x, gamma, beta, dy), tol=tol)
    for i, kind in enumerate(kinds):
        if kind == "constant":
            np.testing.assert_allclose(actual[0][i], beta, atol=1e-10)


@given(
    n=st.integers(1, 3),
    channels_groups=st.sampled_from([(1, 1), (2, 1), (2, 2), (4, 2), (6, 3), (6, 2), (4, 4)]),
    hw=st.sampled_from([(1, 1), (1, 2), (2, 2), (3, 1)]),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_property_groupnorm_adversarial_matches_torch(
    adversarial, check, tolerance_for, n, channels_groups, hw, seed, data
):
    channels, groups = channels_groups
    # Torch refuses training-mode group norm when N * (C / G) * H * W is 1.
    assume(n * channels // groups * hw[0] * hw[1] >= 2)
    rng = np.random.default_rng(seed)
    kinds = data.draw(
        st.lists(st.sampled_from(adversarial.kinds), min_size=channels, max_size=channels)
    )
    x = adversarial.array(rng, (n, channels, *hw), kinds)
    gamma, beta = rng.standard_normal(channels), rng.standard_normal(channels)
    dy = rng.standard_normal(x.shape)
    actual = groupnorm_all(x, gamma, beta, dy, groups)
    tol = tolerance_for(x.reshape(n, groups, -1), (2,), EPS)
    check_all(check, actual, torch_groupnorm(x, gamma, beta, dy, groups), tol=tol)
    assert all(np.all(np.isfinite(a)) for a in actual)


@given(shape=st.sampled_from([(2, 3), (3, 2, 2, 2)]), seed=st.integers(0, 2**32 - 1))
def test_property_float32_input_gives_float64_result_of_upcast(check, shape, seed):
    rng = np.random.default_rng(seed)
    x32 = (2 * rng.standard_normal(shape) + 1).astype(np.float32)
    gamma32 = rng.standard_normal(shape[1]).astype(np.float32)
    beta32 = rng.standard_normal(shape[1]).astype(np.float32)
    dy32 = rng.standard_normal(shape).astype(np.float32)
    up = [a.astype(np.float64) for a in (x32, gamma32, beta32, dy32)]
    if len(shape) == 4:
        actual = groupnorm_all(x32, gamma32, beta32, dy32, 2)
        expected = torch_groupnorm(*up, 2)
    else:
        actual = layernorm_all(x32, gamma32, beta32, dy32)
        expected = torch_layernorm(*up)
    for got, want in zip(actual, expected, strict=True):
        assert got.dtype == np.float64
        check(got, want)
