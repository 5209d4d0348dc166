"""Bad input raises a ValueError that names the problem; no function modifies its inputs."""

import numpy as np
import pytest
import torch

from autograder import reference as ref

X = np.arange(12.0).reshape(4, 3)
IMAGES = np.arange(48.0).reshape(2, 3, 4, 2)
C3 = np.ones(3)


# ------------------------------------------------------------------ shapes


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: ref.batchnorm_forward(np.ones(4), np.ones(1), np.ones(1)), r"\(N, D\)"),
        (lambda: ref.batchnorm_forward(IMAGES, C3, C3), r"\(N, D\)"),
        (lambda: ref.batchnorm_backward(np.ones(4), np.ones(4), np.ones(1)), r"\(N, D\)"),
        (lambda: ref.spatial_batchnorm_forward(X, C3, C3), r"\(N, C, H, W\)"),
        (lambda: ref.spatial_batchnorm_backward(X, X, C3), r"\(N, C, H, W\)"),
        (lambda: ref.update_running_stats(C3, C3, np.ones((2, 3, 4))), r"\(N, C, H, W\)"),
        (lambda: ref.batchnorm_inference(np.ones(3), C3, C3, C3, C3), r"\(N, D\)"),
        (lambda: ref.layernorm_forward(np.ones(3), C3, C3), "at least 2 axes"),
        (lambda: ref.layernorm_backward(np.ones(3), np.ones(3), C3), "at least 2 axes"),
        (lambda: ref.groupnorm_forward(X, C3, C3, 1), r"\(N, C, H, W\)"),
        (lambda: ref.groupnorm_backward(X, X, C3, 1), r"\(N, C, H, W\)"),
        (lambda: ref.fold_batchnorm(C3, None, C3, C3, C3, C3), r"\(out, in\)"),
    ],
)
def test_wrong_number_of_axes(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: ref.batchnorm_forward(X, np.ones(2), C3), "gamma"),
        (lambda: ref.batchnorm_forward(X, C3, np.ones(4)), "beta"),
        (lambda: ref.batchnorm_forward(X, np.ones((1, 3)), C3), "gamma"),
        (lambda: ref.batchnorm_backward(X, X, np.ones(4)), "gamma"),
        (lambda: ref.spatial_batchnorm_forward(IMAGES, np.ones(2), C3), "gamma"),
        (lambda: ref.spatial_batchnorm_forward(IMAGES, C3, np.ones(4)), "beta"),
        (lambda: ref.spatial_batchnorm_backward(IMAGES, IMAGES, np.ones(4)), "gamma"),
        (lambda: ref.update_running_stats(np.ones(2), C3, X), "running_mean"),
        (lambda: ref.update_running_stats(C3, np.ones(4), X), "running_var"),
        (lambda: ref.batchnorm_inference(X, np.ones(2), C3, C3, C3), "gamma"),
        (lambda: ref.batchnorm_inference(X, C3, C3, np.ones(4), C3), "running_mean"),
        (lambda: ref.batchnorm_inference(IMAGES, C3, C3, C3, np.ones(2)), "running_var"),
        (lambda: ref.layernorm_forward(X, C3[:2], C3), "gamma"),
        (lambda: ref.layernorm_forward(IMAGES, C3, np.ones((3, 4, 2))), "gamma"),
        (lambda: ref.layernorm_forward(IMAGES, np.ones((3, 4, 2)), C3), "beta"),
        (lambda: ref.layernorm_backward(X, X, np.ones(4)), "gamma"),
        (lambda: ref.groupnorm_forward(IMAGES, np.ones(2), C3, 3), "gamma"),
        (lambda: ref.groupnorm_forward(IMAGES, C3, np.ones(4), 3), "beta"),
        (lambda: ref.groupnorm_backward(IMAGES, IMAGES, np.ones(4), 1), "gamma"),
        (lambda: ref.fold_batchnorm(X, np.ones(3), C3[:4], C3[:4], C3[:4], C3[:4]), "bias"),
        (lambda: ref.fold_batchnorm(X, None, C3, np.ones(4), np.ones(4), np.ones(4)), "gamma"),
        (lambda: ref.fold_batchnorm(X, None, np.ones(4), np.ones(4), np.ones(4), C3), "running"),
    ],
)
def test_parameter_shape_mismatch_names_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: ref.batchnorm_backward(np.ones((4, 2)), X, C3),
        lambda: ref.batchnorm_backward(X.T, X, C3),
        lambda: ref.spatial_batchnorm_backward(IMAGES[:1], IMAGES, C3),
        lambda: ref.layernorm_backward(X[:, :2], X, C3),
        lambda: ref.groupnorm_backward(IMAGES[..., :1], IMAGES, C3, 3),
    ],
)
def test_dy_shape_mismatch(call):
    with pytest.raises(ValueError, match="dy must have the shape of x"):
        call()


# ------------------------------------------------------------ one value per channel


@pytest.mark.parametrize(
    "call",
    [
        lambda: ref.batchnorm_forward(np.ones((1, 3)), C3, C3),
        lambda: ref.batchnorm_backward(np.ones((1, 3)), np.ones((1, 3)), C3),
        lambda: ref.spatial_batchnorm_forward(np.ones((1, 3, 1, 1)), C3, C3),
        lambda: ref.spatial_batchnorm_backward(np.ones((1, 3, 1, 1)), np.ones((1, 3, 1, 1)), C3),
        lambda: ref.update_running_stats(np.zeros(3), C3, np.ones((1, 3))),
        lambda: ref.update_running_stats(np.zeros(3), C3, np.ones((1, 3, 1, 1))),
    ],
)
def test_one_value_per_channel_in_training_mode(call):
    with pytest.raises(ValueError, match="more than 1 value per"):
        call()


@pytest.mark.parametrize(
    ("shape", "rejected"),
    [((1, 3), True), ((2, 3), False), ((1, 3, 1, 1), True), ((1, 3, 2, 1), False)],
)
def test_batch_of_one_rejected_exactly_when_torch_rejects_it(shape, rejected):
    """Torch counts N * H * W values per channel: one image with H * W > 1 trains fine."""
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    module = torch.nn.BatchNorm1d(3) if len(shape) == 2 else torch.nn.BatchNorm2d(3)
    forward = ref.batchnorm_forward if len(shape) == 2 else ref.spatial_batchnorm_forward
    if rejected:
        with pytest.raises(ValueError, match="more than 1 value per channel"):
            module(torch.tensor(x, dtype=torch.float32))
        with pytest.raises(ValueError, match="more than 1 value per"):
            forward(x, C3, C3)
    else:
        module(torch.tensor(x, dtype=torch.float32))
        assert forward(x, C3, C3).shape == shape


def test_inference_accepts_a_batch_of_one():
    y = ref.batchnorm_inference(np.ones((1, 3)), C3, C3, np.zeros(3), C3)
    assert y.shape == (1, 3)


# ------------------------------------------------------------------ values


EPS_CALLS = {
    "batchnorm_forward": lambda eps: ref.batchnorm_forward(X, C3, C3, eps=eps),
    "batchnorm_backward": lambda eps: ref.batchnorm_backward(X, X, C3, eps=eps),
    "batchnorm_inference": lambda eps: ref.batchnorm_inference(X, C3, C3, C3, C3, eps=eps),
    "spatial_forward": lambda eps: ref.spatial_batchnorm_forward(IMAGES, C3, C3, eps=eps),
    "spatial_backward": lambda eps: ref.spatial_batchnorm_backward(IMAGES, IMAGES, C3, eps=eps),
    "layernorm_forward": lambda eps: ref.layernorm_forward(X, C3, C3, eps=eps),
    "layernorm_backward": lambda eps: ref.layernorm_backward(X, X, C3, eps=eps),
    "groupnorm_forward": lambda eps: ref.groupnorm_forward(IMAGES, C3, C3, 3, eps=eps),
    "groupnorm_backward": lambda eps: ref.groupnorm_backward(IMAGES, IMAGES, C3, 3, eps=eps),
    "fold_batchnorm": lambda eps: ref.fold_batchnorm(X, None, *[np.ones(4)] * 4, eps=eps),
}


@pytest.mark.parametrize("eps", [0, 0.0, -1e-5, float("nan"), float("inf"), True, "1e-5", None])
@pytest.mark.parametrize("function", sorted(EPS_CALLS))
def test_eps_must_be_positive_and_finite(function, eps):
    with pytest.raises(ValueError, match="eps must be a positive"):
        EPS_CALLS[function](eps)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda v: ref.batchnorm_forward(np.where(X == 5, v, X), C3, C3), "x"),
        (lambda v: ref.batchnorm_forward(X, np.array([1.0, v, 1.0]), C3), "gamma"),
        (lambda v: ref.batchnorm_backward(np.where(X == 0, v, X), X, C3), "dy"),
        (lambda v: ref.spatial_batchnorm_forward(np.where(IMAGES == 7, v, IMAGES), C3, C3), "x"),
        (lambda v: ref.update_running_stats(np.array([0.0, v, 0.0]), C3, X), "running_mean"),
        (lambda v: ref.batchnorm_inference(X, C3, np.array([v, 0, 0]), C3, C3), "beta"),
        (lambda v: ref.layernorm_forward(np.where(X == 1, v, X), C3, C3), "x"),
        (lambda v: ref.groupnorm_backward(IMAGES, IMAGES, np.array([1, 1, v]), 3), "gamma"),
        (lambda v: ref.fold_batchnorm(np.where(X.T == 2, v, X.T), None, *[np.ones(3)] * 4), "w"),
    ],
)
def test_non_finite_input_is_rejected(call, name, bad):
    with pytest.raises(ValueError, match=f"{name}.* contains NaN or infinite values"):
        call(bad)


@pytest.mark.parametrize(
    "value",
    ["abc", [[1.0, "x"], [2.0, 3.0]], [[1.0], [2.0, 3.0]], {}, [[1j], [2.0]], np.ones((2, 1)) * 1j],
)
def test_non_numeric_or_complex_input_is_rejected(value):
    """Complex input must not lose its imaginary part silently."""
    with pytest.raises(ValueError, match="x must be an array of real numbers"):
        ref.batchnorm_forward(value, np.ones(1), np.ones(1))


@pytest.mark.parametrize(
    "call",
    [
        lambda: ref.batchnorm_inference(X, C3, C3, C3, np.array([1.0, -1e-12, 1.0])),
        lambda: ref.update_running_stats(C3, np.array([-1.0, 1.0, 1.0]), X),
        lambda: ref.fold_batchnorm(np.ones((3, 2)), None, C3, C3, C3, -C3),
    ],
)
def test_negative_running_var_is_rejected(call):
    with pytest.raises(ValueError, match="running_var must be non-negative"):
        call()


@pytest.mark.parametrize("momentum", [-0.1, 1.5, float("nan"), True, "0.1", None])
def test_momentum_must_be_in_unit_interval(momentum):
    with pytest.raises(ValueError, match="momentum must be"):
        ref.update_running_stats(np.zeros(3), C3, X, momentum=momentum)


@pytest.mark.parametrize("groups", [0, -1, 2, 4, 6, 1.0, 3.0, True, None, "3"])
def test_bad_num_groups_is_rejected(groups):
    with pytest.raises(ValueError, match="num_groups must be a positive"):
        ref.groupnorm_forward(IMAGES, C3, C3, groups)
    with pytest.raises(ValueError, match="num_groups must be a positive"):
        ref.groupnorm_backward(IMAGES, IMAGES, C3, groups)


def test_num_groups_as_numpy_integer_is_accepted():
    a = ref.groupnorm_forward(IMAGES, C3, C3, np.int64(3))
    b = ref.groupnorm_forward(IMAGES, C3, C3, 3)
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------ inputs left alone


def snapshot_call(function, *args):
    """Call `function`; assert its array arguments are unchanged and not aliased by results."""
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    before = [a.copy() for a in arrays]
    results = function(*args)
    results = results if isinstance(results, tuple) else (results,)
    for original, saved in zip(arrays, before, strict=True):
        np.testing.assert_array_equal(original, saved)
        for result in results:
            assert not np.shares_memory(result, original)
            assert result.dtype == np.float64
    return results


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_no_function_modifies_or_aliases_its_inputs(rng, dtype):
    def arr(*shape):
        return rng.standard_normal(shape).astype(dtype)

    x, dy, images, dimages = arr(5, 3), arr(5, 3), arr(2, 4, 3, 3), arr(2, 4, 3, 3)
    g3, b3, g4, b4 = arr(3), arr(3), arr(4), arr(4)
    rv3 = np.abs(arr(3))
    snapshot_call(ref.batchnorm_forward, x, g3, b3)
    snapshot_call(ref.batchnorm_backward, dy, x, g3)
    snapshot_call(ref.update_running_stats, b3, rv3, x)
    snapshot_call(ref.update_running_stats, b4, np.abs(g4), images, 0.0)
    snapshot_call(ref.batchnorm_inference, x, g3, b3, b3, rv3)
    snapshot_call(ref.spatial_batchnorm_forward, images, g4, b4)
    snapshot_call(ref.spatial_batchnorm_backward, dimages, images, g4)
    snapshot_call(ref.layernorm_forward, x, g3, b3)
    snapshot_call(ref.layernorm_backward, dy, x, g3)
    snapshot_call(ref.groupnorm_forward, images, g4, b4, 2)
    snapshot_call(ref.groupnorm_backward, dimages, images, g4, 2)
    snapshot_call(ref.fold_batchnorm, arr(4, 3, 2, 2), b4, g4, b4, g4, np.abs(b4))
    snapshot_call(ref.fold_batchnorm, arr(3, 5), None, g3, b3, b3, rv3)


def test_update_running_stats_returns_new_arrays_even_with_momentum_zero():
    running_mean, running_var = np.zeros(3), np.ones(3)
    mean, var = ref.update_running_stats(running_mean, running_var, X, momentum=0.0)
    mean += 1
    var += 1
    np.testing.assert_array_equal(running_mean, 0.0)
    np.testing.assert_array_equal(running_var, 1.0)
