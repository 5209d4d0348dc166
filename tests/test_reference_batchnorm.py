"""Training-mode batch normalization, (N, D) and NCHW: values and gradients.

References: torch.nn.functional.batch_norm and nn.BatchNorm1d/2d with autograd, central
finite differences, and values worked out by hand. All comparisons in float64.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from autograder import reference as ref

EPS = 1e-5


def torch_batchnorm_train(x, gamma, beta, dy, eps=EPS):
    """y, dx, dgamma, dbeta of training-mode batch norm, computed by PyTorch."""
    xt, gt, bt = (
        torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, gamma, beta)
    )
    y = F.batch_norm(xt, None, None, gt, bt, training=True, eps=eps)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return y.detach().numpy(), xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy()


def forward_and_backward(x, gamma, beta, dy, eps=EPS):
    """The reference's y, dx, dgamma, dbeta for (N, D) or NCHW input."""
    if x.ndim == 2:
        y = ref.batchnorm_forward(x, gamma, beta, eps)
        return (y, *ref.batchnorm_backward(dy, x, gamma, eps))
    y = ref.spatial_batchnorm_forward(x, gamma, beta, eps)
    return (y, *ref.spatial_batchnorm_backward(dy, x, gamma, eps))


def random_problem(rng, shape):
    channels = shape[1]
    x = 5 * rng.standard_normal(shape) + 12
    gamma = rng.standard_normal(channels)
    beta = rng.standard_normal(channels)
    dy = rng.standard_normal(shape)
    return x, gamma, beta, dy


# ------------------------------------------------------------------ against PyTorch


@pytest.mark.parametrize(
    "shape", [(2, 3), (4, 5), (16, 7), (2, 3, 1, 1), (2, 3, 4, 5), (5, 2, 3, 3)]
)
def test_forward_and_gradients_match_torch(rng, check, shape):
    x, gamma, beta, dy = random_problem(rng, shape)
    expected = torch_batchnorm_train(x, gamma, beta, dy)
    for name, actual, want in zip(
        ("y", "dx", "dgamma", "dbeta"),
        forward_and_backward(x, gamma, beta, dy),
        expected,
        strict=True,
    ):
        check(actual, want, what=name)


def test_batchnorm1d_module_in_training_mode(rng, check):
    x, gamma, beta, dy = random_problem(rng, (6, 4))
    bn = torch.nn.BatchNorm1d(4, eps=1e-3, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma))
        bn.bias.copy_(torch.tensor(beta))
    xt = torch.tensor(x, requires_grad=True)
    y = bn(xt)
    y.backward(torch.tensor(dy))
    check(ref.batchnorm_forward(x, gamma, beta, eps=1e-3), y.detach().numpy(), what="y")
    dx, dgamma, dbeta = ref.batchnorm_backward(dy, x, gamma, eps=1e-3)
    check(dx, xt.grad.numpy(), what="dx")
    check(dgamma, bn.weight.grad.numpy(), what="dgamma")
    check(dbeta, bn.bias.grad.numpy(), what="dbeta")


def test_batchnorm2d_module_in_training_mode(rng, check):
    x, gamma, beta, dy = random_problem(rng, (3, 4, 5, 2))
    bn = torch.nn.BatchNorm2d(4, dtype=torch.float64)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor(gamma))
        bn.bias.copy_(torch.tensor(beta))
    xt = torch.tensor(x, requires_grad=True)
    y = bn(xt)
    y.backward(torch.tensor(dy))
    check(ref.spatial_batchnorm_forward(x, gamma, beta), y.detach().numpy(), what="y")
    dx, dgamma, dbeta = ref.spatial_batchnorm_backward(dy, x, gamma)
    check(dx, xt.grad.numpy(), what="dx")
    check(dgamma, bn.weight.grad.numpy(), what="dgamma")
    check(dbeta, bn.bias.grad.numpy(), what="dbeta")


@pytest.mark.parametrize("shape", [(1, 3, 2, 1), (1, 2, 3, 3)])
def test_spatial_batch_of_one_image_is_allowed_like_torch(rng, check, shape):
    """N = 1 is fine for images when H * W > 1: the statistics use N * H * W values."""
    x, gamma, beta, dy = random_problem(rng, shape)
    expected = torch_batchnorm_train(x, gamma, beta, dy)
    for actual, want in zip(forward_and_backward(x, gamma, beta, dy), expected, strict=True):
        check(actual, want)


# ------------------------------------------------------------ finite differences


@pytest.mark.parametrize("shape", [(2, 3), (5, 4), (2, 3, 2, 2), (1, 2, 3, 1)])
def test_gradients_match_finite_differences(rng, check_gradient, shape):
    x, gamma, beta, dy = random_problem(rng, shape)
    x = (x - 12) / 5  # unit scale, where central differences are accurate
    forward = ref.batchnorm_forward if x.ndim == 2 else ref.spatial_batchnorm_forward
    _, dx, dgamma, dbeta = forward_and_backward(x, gamma, beta, dy)
    args = (x, gamma, beta)
    check_gradient(dx, forward, args, 0, dy)
    check_gradient(dgamma, forward, args, 1, dy)
    check_gradient(dbeta, forward, args, 2, dy)


# ---------------------------------------------------------------- worked by hand


def test_two_values_normalize_to_plus_minus_one():
    """x = [1, 3]: mu = 2, var = 1, so x_hat = [-1, 1] / sqrt(1 + eps)."""
    y = ref.batchnorm_forward([[1.0], [3.0]], [2.0], [0.5], eps=EPS)
    s = 1 / np.sqrt(1 + EPS)
    np.testing.assert_allclose(y, [[0.5 - 2 * s], [0.5 + 2 * s]], rtol=1e-14)
    assert y.dtype == np.float64


def test_two_values_gradients_by_hand():
    """x = [1, 3], dy = [1, 0], gamma = 1, s = 1/sqrt(1 + eps), x_hat = [-s, s].

    dx = s * (dy - mean(dy) - x_hat * mean(dy * x_hat))
       = s * ([1/2, -1/2] - [s**2/2, -s**2/2]) = s * eps / (2 (1 + eps)) * [1, -1],
    which vanishes as eps -> 0: for N = 2, x_hat = [-1, 1] whatever x is.
    dgamma = sum(dy * x_hat) = -s, dbeta = sum(dy) = 1.
    """
    dx, dgamma, dbeta = ref.batchnorm_backward([[1.0], [0.0]], [[1.0], [3.0]], [1.0], eps=EPS)
    s = 1 / np.sqrt(1 + EPS)
    np.testing.assert_allclose(dx, s * EPS / (2 * (1 + EPS)) * np.array([[1.0], [-1.0]]), rtol=1e-9)
    np.testing.assert_allclose(dgamma, [-s], rtol=1e-14)
    np.testing.assert_allclose(dbeta, [1.0], rtol=1e-14)


def test_spatial_two_pixels_by_hand():
    """One image, one channel, pixels [1, 3]: the same numbers as the (N, D) example."""
    x = np.array([1.0, 3.0]).reshape(1, 1, 2, 1)
    y = ref.spatial_batchnorm_forward(x, [2.0], [0.5], eps=EPS)
    s = 1 / np.sqrt(1 + EPS)
    np.testing.assert_allclose(y.ravel(), [0.5 - 2 * s, 0.5 + 2 * s], rtol=1e-14)


def test_gamma_std_and_beta_mean_recover_the_input(rng, check):
    """gamma = sqrt(var + eps), beta = mu undo the normalization exactly."""
    x = 3 * rng.standard_normal((7, 4)) + np.array([0.0, -5.0, 1e4, 2.0])
    gamma = np.sqrt(x.var(axis=0) + EPS)
    check(ref.batchnorm_forward(x, gamma, x.mean(axis=0)), x, tol=1e-9)
    images = rng.standard_normal((3, 2, 4, 4)) + 7
    gamma = np.sqrt(images.var(axis=(0, 2, 3)) + EPS)
    check(ref.spatial_batchnorm_forward(images, gamma, images.mean(axis=(0, 2, 3))), images)


def test_output_statistics_per_feature(rng):
    """With gamma = 1, beta = 0 each feature has mean 0 and variance var / (var + eps)."""
    x = rng.standard_normal((9, 3)) * np.array([1.0, 1e-3, 10.0])
    y = ref.batchnorm_forward(x, np.ones(3), np.zeros(3))
    var = x.var(axis=0)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-14)
    np.testing.assert_allclose(y.var(axis=0), var / (var + EPS), rtol=1e-12)


def test_constant_feature_gives_beta_and_finite_gradients(rng):
    x = np.column_stack([np.full(5, 4.2), rng.standard_normal(5)])
    gamma, beta, dy = np.array([3.0, 1.0]), np.array([-0.25, 0.0]), rng.standard_normal((5, 2))
    y = ref.batchnorm_forward(x, gamma, beta)
    np.testing.assert_allclose(y[:, 0], beta[0], atol=1e-10)
    dx, dgamma, dbeta = ref.batchnorm_backward(dy, x, gamma)
    assert np.all(np.isfinite(dx)) and np.all(np.isfinite(dgamma))
    # x_hat is 0 on a constant feature: dx = gamma * (dy - mean(dy)) / sqrt(eps).
    np.testing.assert_allclose(
        dx[:, 0], 3.0 * (dy[:, 0] - dy[:, 0].mean()) / np.sqrt(EPS), rtol=1e-9
    )


def test_dx_is_orthogonal_to_ones_and_to_x_hat(rng):
    """Shifting a feature does not change y, so sum(dx) = 0 per feature.

    Scaling a feature by a changes y only through eps: sum(dx * x_hat) equals
    inv_std * eps / (var + eps) * sum(gamma * dy * x_hat), which is 0 in the limit eps -> 0.
    """
    x = rng.standard_normal((6, 3)) * 2 + 1
    gamma, dy = rng.standard_normal(3), rng.standard_normal((6, 3))
    mu, var = x.mean(axis=0), x.var(axis=0)
    x_hat = (x - mu) / np.sqrt(var + EPS)
    dx, _, _ = ref.batchnorm_backward(dy, x, gamma, eps=EPS)
    np.testing.assert_allclose(dx.sum(axis=0), 0.0, atol=1e-13)
    expected = EPS / (var + EPS) / np.sqrt(var + EPS) * (gamma * dy * x_hat).sum(axis=0)
    np.testing.assert_allclose((dx * x_hat).sum(axis=0), expected, rtol=1e-8, atol=1e-15)
    dx_tiny_eps, _, _ = ref.batchnorm_backward(dy, x, gamma, eps=1e-14)
    np.testing.assert_allclose((dx_tiny_eps * x_hat).sum(axis=0), 0.0, atol=1e-12)


def test_parameter_gradients_are_sums_over_the_batch(rng):
    x, gamma, _, dy = random_problem(rng, (4, 3, 2, 5))
    _, dgamma, dbeta = ref.spatial_batchnorm_backward(dy, x, gamma)
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    x_hat = (x - mu) / np.sqrt(var + EPS)
    np.testing.assert_allclose(dbeta, dy.sum(axis=(0, 2, 3)), rtol=1e-14)
    np.testing.assert_allclose(dgamma, (dy * x_hat).sum(axis=(0, 2, 3)), rtol=1e-12)


def test_spatial_equals_batchnorm_on_pixels_as_rows(rng, check):
    """Spatial BN of (N, C, H, W) is BN of the (N*H*W, C) matrix of pixels."""
    x, gamma, beta, dy = random_problem(rng, (3, 4, 2, 5))

    def rows(a):
        return a.transpose(0, 2, 3, 1).reshape(-1, a.shape[1])

    def images(a):
        return a.reshape(3, 2, 5, 4).transpose(0, 3, 1, 2)

    check(
        ref.spatial_batchnorm_forward(x, gamma, beta),
        images(ref.batchnorm_forward(rows(x), gamma, beta)),
    )
    dx, dgamma, dbeta = ref.spatial_batchnorm_backward(dy, x, gamma)
    dx_rows, dgamma_rows, dbeta_rows = ref.batchnorm_backward(rows(dy), rows(x), gamma)
    check(dx, images(dx_rows))
    check(dgamma, dgamma_rows)
    check(dbeta, dbeta_rows)


# ------------------------------------------------------------------ properties


@st.composite
def bn_shapes(draw):
    """(N, D) with N >= 2, or NCHW with N >= 1 and N*H*W >= 2 (small H, W)."""
    channels = draw(st.integers(1, 5))
    if draw(st.booleans()):
        return (draw(st.integers(2, 8)), channels)
    h, w = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    n = draw(st.integers(1 if h * w > 1 else 2, 4))
    return (n, channels, h, w)


@given(shape=bn_shapes(), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_property_adversarial_inputs_match_torch(
    adversarial, check, tolerance_for, shape, seed, data
):
    rng = np.random.default_rng(seed)
    kinds = data.draw(
        st.lists(st.sampled_from(adversarial.kinds), min_size=shape[1], max_size=shape[1])
    )
    x = adversarial.array(rng, shape, kinds)
    gamma, beta = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    dy = rng.standard_normal(shape)
    tol = tolerance_for(x, (0,) + tuple(range(2, x.ndim)), EPS)
    actual = forward_and_backward(x, gamma, beta, dy)
    for name, got, want in zip(
        ("y", "dx", "dgamma", "dbeta"),
        actual,
        torch_batchnorm_train(x, gamma, beta, dy),
        strict=True,
    ):
        assert np.all(np.isfinite(got)), name
        check(got, want, tol=tol, what=name)
    for c, kind in enumerate(kinds):
        if kind == "constant":  # x_hat = 0, so y = beta
            np.testing.assert_allclose(actual[0][:, c], beta[c], atol=1e-10)


@given(shape=bn_shapes(), seed=st.integers(0, 2**32 - 1))
def test_property_float32_input_gives_float64_result_of_upcast(check, shape, seed):
    rng = np.random.default_rng(seed)
    x32 = (3 * rng.standard_normal(shape) + 1).astype(np.float32)
    gamma32 = rng.standard_normal(shape[1]).astype(np.float32)
    beta32 = rng.standard_normal(shape[1]).astype(np.float32)
    dy32 = rng.standard_normal(shape).astype(np.float32)
    results32 = forward_and_backward(x32, gamma32, beta32, dy32)
    up = [a.astype(np.float64) for a in (x32, gamma32, beta32, dy32)]
    for got, want in zip(results32, torch_batchnorm_train(*up), strict=True):
        assert got.dtype == np.float64
        check(got, want)


@given(shape=bn_shapes(), seed=st.integers(0, 2**32 - 1))
def test_property_gradient_identities(shape, seed):
    """sum(dx) = 0 per channel and dbeta = sum(dy), for any shape."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    gamma, dy = rng.standard_normal(shape[1]), rng.standard_normal(shape)
    _, dx, _, dbeta = forward_and_backward(x, gamma, np.zeros(shape[1]), dy)
    axes = (0,) + tuple(range(2, x.ndim))
    scale = np.abs(dx).max(initial=1.0)
    np.testing.assert_allclose(dx.sum(axis=axes), 0.0, atol=1e-13 * scale * x.size)
    np.testing.assert_allclose(dbeta, dy.sum(axis=axes), rtol=1e-13, atol=1e-13)


# ------------------------------------------------------------------ conditioning


def test_offset_and_tiny_variance_together_within_float64_conditioning(rng, tolerance_for):
    """Offset 1e4 with standard deviation 1e-3: x - mu loses ~7 of float64's 16 digits.

    No float64 implementation can match another to 1e-10 here: the rounding of x itself is
    amplified by |x| / sqrt(var + eps), about 3e6. The reference and PyTorch are both
    within the conditioning-aware tolerance of the property tests of an extended-precision
    computation (long double), and that tolerance is still below 1e-7.
    """
    x = 1e4 + 1e-3 * rng.standard_normal((4, 3))
    gamma, beta = rng.uniform(-1, 1, 3), rng.standard_normal(3)
    xl = x.astype(np.longdouble)
    mu = xl.mean(axis=0)
    var = ((xl - mu) ** 2).mean(axis=0)
    exact = (gamma * (xl - mu) / np.sqrt(var + np.longdouble(EPS)) + beta).astype(np.float64)
    tol = tolerance_for(x, (0,), EPS)
    assert 1e-10 < tol < 1e-7
    reference = ref.batchnorm_forward(x, gamma, beta)
    torch_y = torch_batchnorm_train(x, gamma, beta, np.zeros_like(x))[0]
    assert np.abs(reference - exact).max() < tol
    assert np.abs(torch_y - exact).max() < tol
