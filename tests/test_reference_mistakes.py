"""The comparison the agreement tests use rejects the mistakes learners make.

Each function below is a plausible wrong implementation. On adversarial inputs (batches of
2 to 4, a channel whose variance 1e-6 is below eps, channels offset by 1e4) the reference
passes the comparison with PyTorch, and every wrong variant fails that same comparison by
a wide margin (more than MARGIN, a million times the tolerance). The eps mistakes only
show up clearly on a channel with variance near eps, the unbiased-variance mistake on a
small batch: a unit-variance batch of 256 would hide them from a loose tolerance.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from autograder import reference as ref

EPS = 1e-5
MARGIN = 1e-4
KINDS = ("tiny", "offset", "shifted")


def as_tensor(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def channel(p, ndim):
    return np.reshape(p, (1, -1) + (1,) * (ndim - 2))


def axes_of(x):
    return (0,) + tuple(range(2, x.ndim))


def assert_rejected(close, wrong, expected):
    assert not close(wrong, expected)
    wrong, expected = np.asarray(wrong), np.asarray(expected)
    if wrong.shape == expected.shape:
        assert np.abs(wrong - expected).max() > MARGIN


# ---------------------------------------------------------------- forward mistakes


def normalized(x, mu, denominator, gamma, beta):
    return channel(gamma, x.ndim) * (x - mu) / denominator + channel(beta, x.ndim)


def unbiased_variance(x, gamma, beta):
    axes = axes_of(x)
    mu, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, ddof=1, keepdims=True)
    return normalized(x, mu, np.sqrt(var + EPS), gamma, beta)


def eps_outside_sqrt(x, gamma, beta):
    axes = axes_of(x)
    mu, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    return normalized(x, mu, np.sqrt(var) + EPS, gamma, beta)


def missing_eps(x, gamma, beta):
    axes = axes_of(x)
    mu, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    return normalized(x, mu, np.sqrt(var), gamma, beta)


def statistics_over(axes):
    def forward(x, gamma, beta):
        mu, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
        return normalized(x, mu, np.sqrt(var + EPS), gamma, beta)

    return forward


FORWARD_MISTAKES = {
    "unbiased variance in the normalization": unbiased_variance,
    "eps outside the square root": eps_outside_sqrt,
    "eps missing": missing_eps,
}
SPATIAL_AXES_MISTAKES = {
    "statistics over N only, axis (0,)": statistics_over((0,)),
    "statistics over H and W only, axes (2, 3)": statistics_over((2, 3)),
    "statistics over N and H only, axes (0, 2)": statistics_over((0, 2)),
}


def torch_train_forward(x, gamma, beta):
    return F.batch_norm(
        as_tensor(x), None, None, as_tensor(gamma), as_tensor(beta), training=True, eps=EPS
    ).numpy()


def forward_reference(x, gamma, beta):
    forward = ref.batchnorm_forward if x.ndim == 2 else ref.spatial_batchnorm_forward
    return forward(x, gamma, beta, EPS)


INPUT_SHAPES = [(2, 3), (4, 3), (2, 3, 2, 2), (1, 3, 2, 1), (3, 3, 1, 2)]


@pytest.mark.parametrize("shape", INPUT_SHAPES)
@pytest.mark.parametrize("mistake", sorted(FORWARD_MISTAKES))
def test_forward_mistakes_are_rejected(rng, adversarial, close, shape, mistake):
    x = adversarial.array(rng, shape, KINDS)
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    expected = torch_train_forward(x, gamma, beta)
    assert close(forward_reference(x, gamma, beta), expected)
    assert_rejected(close, FORWARD_MISTAKES[mistake](x, gamma, beta), expected)


@pytest.mark.parametrize("mistake", sorted(FORWARD_MISTAKES))
def test_forward_mistakes_are_rejected_even_on_a_large_unit_batch(rng, close, mistake):
    """Tolerance 1e-10 is tight enough for the easy case too (errors of 1e-5 and more)."""
    x = rng.standard_normal((256, 3))
    gamma, beta = np.ones(3), np.zeros(3)
    expected = torch_train_forward(x, gamma, beta)
    assert close(forward_reference(x, gamma, beta), expected)
    assert not close(FORWARD_MISTAKES[mistake](x, gamma, beta), expected)


@pytest.mark.parametrize("shape", [(2, 3, 2, 2), (3, 3, 2, 3), (2, 3, 3, 2)])
@pytest.mark.parametrize("mistake", sorted(SPATIAL_AXES_MISTAKES))
def test_wrong_reduction_axes_for_images_are_rejected(rng, adversarial, close, shape, mistake):
    """N, H and W all above 1: with W = 1, say, axes (0, 2) are the right axes."""
    x = adversarial.array(rng, shape, KINDS)
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    expected = torch_train_forward(x, gamma, beta)
    assert close(ref.spatial_batchnorm_forward(x, gamma, beta), expected)
    assert_rejected(close, SPATIAL_AXES_MISTAKES[mistake](x, gamma, beta), expected)


# --------------------------------------------------------------- backward mistakes


def closed_form(dy, x, gamma, inv_std):
    """dx of batch norm given 1/sqrt(var + eps) (right or wrong) and the rest right."""
    axes = axes_of(x)
    mu = x.mean(axis=axes, keepdims=True)
    x_hat = (x - mu) * inv_std
    g = dy * channel(gamma, x.ndim)
    return inv_std * (
        g - g.mean(axis=axes, keepdims=True) - x_hat * (g * x_hat).mean(axis=axes, keepdims=True)
    )


def parts(x):
    axes = axes_of(x)
    mu, var = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    inv_std = 1 / np.sqrt(var + EPS)
    return axes, (x - mu) * inv_std, inv_std


def dx_statistics_as_constants(dy, x, gamma):
    _, _, inv_std = parts(x)
    return dy * channel(gamma, x.ndim) * inv_std


def dx_without_variance_path(dy, x, gamma):
    axes, _, inv_std = parts(x)
    g = dy * channel(gamma, x.ndim)
    return inv_std * (g - g.mean(axis=axes, keepdims=True))


def dx_eps_outside_sqrt(dy, x, gamma):
    axes = axes_of(x)
    return closed_form(dy, x, gamma, 1 / (x.std(axis=axes, keepdims=True) + EPS))


def dx_unbiased_variance(dy, x, gamma):
    axes = axes_of(x)
    return closed_form(dy, x, gamma, 1 / np.sqrt(x.var(axis=axes, ddof=1, keepdims=True) + EPS))


DX_MISTAKES = {
    "mean and variance treated as constants": dx_statistics_as_constants,
    "gradient through the variance missing": dx_without_variance_path,
    "eps outside the square root": dx_eps_outside_sqrt,
    "unbiased variance": dx_unbiased_variance,
}


def dgamma_dbeta_over_n_only(dy, x):
    _, x_hat, _ = parts(x)
    return (dy * x_hat).sum(axis=0), dy.sum(axis=0)


def dgamma_dbeta_over_n_and_h(dy, x):
    _, x_hat, _ = parts(x)
    return (dy * x_hat).sum(axis=(0, 2)), dy.sum(axis=(0, 2))


def dgamma_dbeta_first_image_only(dy, x):
    _, x_hat, _ = parts(x)
    return (dy * x_hat)[0].sum(axis=(1, 2)), dy[0].sum(axis=(1, 2))


def dgamma_dbeta_averaged(dy, x):
    axes, x_hat, _ = parts(x)
    return (dy * x_hat).mean(axis=axes), dy.mean(axis=axes)


def dgamma_dbeta_over_features(dy, x):
    _, x_hat, _ = parts(x)
    return (dy * x_hat).sum(axis=1), dy.sum(axis=1)


SPATIAL_PARAM_MISTAKES = {
    "summed over N only": dgamma_dbeta_over_n_only,
    "summed over N and H, not W": dgamma_dbeta_over_n_and_h,
    "summed over H and W of the first image only": dgamma_dbeta_first_image_only,
    "averaged instead of summed": dgamma_dbeta_averaged,
}
DENSE_PARAM_MISTAKES = {
    "summed over the feature axis": dgamma_dbeta_over_features,
    "averaged instead of summed": dgamma_dbeta_averaged,
}


def torch_gradients(dy, x, gamma):
    xt, gt = (torch.tensor(a, requires_grad=True) for a in (x, gamma))
    bt = torch.zeros_like(gt, requires_grad=True)
    F.batch_norm(xt, None, None, gt, bt, training=True, eps=EPS).backward(as_tensor(dy))
    return xt.grad.numpy(), gt.grad.numpy(), bt.grad.numpy()


def backward_reference(dy, x, gamma):
    backward = ref.batchnorm_backward if x.ndim == 2 else ref.spatial_batchnorm_backward
    return backward(dy, x, gamma, EPS)


@pytest.mark.parametrize("shape", INPUT_SHAPES)
@pytest.mark.parametrize("mistake", sorted(DX_MISTAKES))
def test_dx_mistakes_are_rejected(rng, adversarial, close, shape, mistake):
    x = adversarial.array(rng, shape, KINDS)
    gamma, dy = rng.standard_normal(3), rng.standard_normal(shape)
    expected = torch_gradients(dy, x, gamma)[0]
    assert close(backward_reference(dy, x, gamma)[0], expected)
    assert_rejected(close, DX_MISTAKES[mistake](dy, x, gamma), expected)


@pytest.mark.parametrize("shape", [(3, 2), (2, 2, 2, 1)])
@pytest.mark.parametrize("mistake", sorted(DX_MISTAKES))
def test_dx_mistakes_fail_the_finite_difference_check(rng, check_gradient, shape, mistake):
    """The numeric-gradient check is discriminating too, even on unit-variance inputs."""
    x = rng.standard_normal(shape)
    gamma, dy = rng.standard_normal(shape[1]), rng.standard_normal(shape)
    forward = ref.batchnorm_forward if x.ndim == 2 else ref.spatial_batchnorm_forward
    args = (x, gamma, np.zeros(shape[1]))
    check_gradient(backward_reference(dy, x, gamma)[0], forward, args, 0, dy)
    with pytest.raises(AssertionError):
        check_gradient(DX_MISTAKES[mistake](dy, x, gamma), forward, args, 0, dy)


@pytest.mark.parametrize("shape", [(2, 3, 2, 2), (3, 3, 2, 3), (2, 3, 3, 3)])
@pytest.mark.parametrize("mistake", sorted(SPATIAL_PARAM_MISTAKES))
def test_spatial_parameter_gradient_mistakes_are_rejected(rng, adversarial, close, shape, mistake):
    x = adversarial.array(rng, shape, KINDS)
    gamma, dy = rng.standard_normal(3), rng.standard_normal(shape)
    _, dgamma, dbeta = torch_gradients(dy, x, gamma)
    _, ref_dgamma, ref_dbeta = backward_reference(dy, x, gamma)
    assert close(ref_dgamma, dgamma) and close(ref_dbeta, dbeta)
    wrong_dgamma, wrong_dbeta = SPATIAL_PARAM_MISTAKES[mistake](dy, x)
    assert_rejected(close, wrong_dgamma, dgamma)
    assert_rejected(close, wrong_dbeta, dbeta)


@pytest.mark.parametrize("shape", [(2, 3), (4, 3)])
@pytest.mark.parametrize("mistake", sorted(DENSE_PARAM_MISTAKES))
def test_dense_parameter_gradient_mistakes_are_rejected(rng, adversarial, close, shape, mistake):
    x = adversarial.array(rng, shape, KINDS)
    gamma, dy = rng.standard_normal(3), rng.standard_normal(shape)
    _, dgamma, dbeta = torch_gradients(dy, x, gamma)
    wrong_dgamma, wrong_dbeta = DENSE_PARAM_MISTAKES[mistake](dy, x)
    assert_rejected(close, wrong_dgamma, dgamma)
    assert_rejected(close, wrong_dbeta, dbeta)


# ---------------------------------------------------- running statistics and inference


def batch_statistics(x, ddof):
    axes = axes_of(x)
    return x.mean(axis=axes), x.var(axis=axes, ddof=ddof)


def moving_average(old, new, momentum):
    return (1 - momentum) * old + momentum * new


def flipped_momentum(running_mean, running_var, x, momentum):
    mean, var = batch_statistics(x, ddof=1)
    return moving_average(mean, running_mean, momentum), moving_average(var, running_var, momentum)


def biased_running_variance(running_mean, running_var, x, momentum):
    mean, var = batch_statistics(x, ddof=0)
    return moving_average(running_mean, mean, momentum), moving_average(running_var, var, momentum)


def std_stored_as_variance(running_mean, running_var, x, momentum):
    mean, var = batch_statistics(x, ddof=1)
    return (
        moving_average(running_mean, mean, momentum),
        moving_average(running_var, np.sqrt(var), momentum),
    )


def not_updated(running_mean, running_var, x, momentum):
    return running_mean.copy(), running_var.copy()


RUNNING_MISTAKES = {
    "momentum convention flipped": flipped_momentum,
    "biased running variance": biased_running_variance,
    "standard deviation stored instead of variance": std_stored_as_variance,
    "running statistics not updated": not_updated,
}


@pytest.mark.parametrize("shapes", [[(2, 3)] * 3, [(1, 3, 2, 1), (2, 3, 2, 2), (3, 3, 1, 1)]])
@pytest.mark.parametrize("mistake", sorted(RUNNING_MISTAKES))
def test_running_statistics_mistakes_are_rejected(rng, adversarial, close, shapes, mistake):
    bn_cls = torch.nn.BatchNorm1d if len(shapes[0]) == 2 else torch.nn.BatchNorm2d
    bn = bn_cls(3, dtype=torch.float64)
    right = wrong = (np.zeros(3), np.ones(3))
    for shape in shapes:
        x = adversarial.array(rng, shape, KINDS)
        bn(as_tensor(x))
        right = ref.update_running_stats(*right, x, momentum=0.1)
        wrong = RUNNING_MISTAKES[mistake](*wrong, x, 0.1)
    assert close(right[0], bn.running_mean.numpy()) and close(right[1], bn.running_var.numpy())
    rejected_mean = not close(wrong[0], bn.running_mean.numpy())
    rejected_var = not close(wrong[1], bn.running_var.numpy())
    assert rejected_mean or rejected_var


def batch_statistics_at_inference(x, gamma, beta, running_mean, running_var):
    return forward_reference(x, gamma, beta)


def inference_without_eps(x, gamma, beta, running_mean, running_var):
    scale = channel(gamma / np.sqrt(running_var), x.ndim)
    return scale * (x - channel(running_mean, x.ndim)) + channel(beta, x.ndim)


def inference_dividing_by_variance(x, gamma, beta, running_mean, running_var):
    scale = channel(gamma / (running_var + EPS), x.ndim)
    return scale * (x - channel(running_mean, x.ndim)) + channel(beta, x.ndim)


INFERENCE_MISTAKES = {
    "batch statistics at inference": batch_statistics_at_inference,
    "eps missing at inference": inference_without_eps,
    "running variance used as a standard deviation": inference_dividing_by_variance,
}


@pytest.mark.parametrize("shape", [(2, 3), (5, 3), (2, 3, 2, 2)])
@pytest.mark.parametrize("mistake", sorted(INFERENCE_MISTAKES))
def test_inference_mistakes_are_rejected(rng, adversarial, close, shape, mistake):
    x = adversarial.array(rng, shape, KINDS)
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    running_mean, running_var = np.array([0.0, 1e4, 3.0]), np.array([1e-6, 1.0, 25.0])
    expected = F.batch_norm(
        as_tensor(x),
        as_tensor(running_mean),
        as_tensor(running_var),
        as_tensor(gamma),
        as_tensor(beta),
        training=False,
        eps=EPS,
    ).numpy()
    args = (x, gamma, beta, running_mean, running_var)
    assert close(ref.batchnorm_inference(*args), expected)
    assert_rejected(close, INFERENCE_MISTAKES[mistake](*args), expected)
