"""Reference kernels for batch, layer and group normalization, in NumPy.

These are the functions the autograder judges learners against, so they favour clarity
and accuracy over speed:

* every computation runs in float64, whatever the input dtype, and every returned array
  is a new float64 array (inputs are never modified);
* symbols follow Ioffe & Szegedy (2015): x, x_hat, mu, var, gamma, beta, eps;
* statistics in the normalization use the *biased* variance with eps inside the square
  root; running statistics follow PyTorch (``momentum`` weights the new batch and
  ``running_var`` stores the *unbiased* batch variance);
* arrays are (N, D) for fully connected layers and (N, C, H, W) for images.

Bad input raises ``ValueError`` with a message that says what is wrong.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

__all__ = [
    "batchnorm_forward",
    "batchnorm_backward",
    "update_running_stats",
    "batchnorm_inference",
    "spatial_batchnorm_forward",
    "spatial_batchnorm_backward",
    "layernorm_forward",
    "layernorm_backward",
    "groupnorm_forward",
    "groupnorm_backward",
    "fold_batchnorm",
]


# ---------------------------------------------------------------------------- checks


def _array(value, name: str) -> np.ndarray:
    """Return `value` as a new float64 array, rejecting non-numeric or non-finite data.

    Complex values are rejected too: casting would silently drop their imaginary part.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", np.exceptions.ComplexWarning)
            arr = np.array(value, dtype=np.float64, copy=True)
    except (TypeError, ValueError, np.exceptions.ComplexWarning) as err:
        raise ValueError(f"{name} must be an array of real numbers ({err})") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, int | float | np.floating | np.integer):
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite number, got {eps!r}")
    return float(eps)


def _check_ndim(x: np.ndarray, ndims: Sequence[int], name: str, layout: str) -> None:
    if x.ndim not in ndims:
        raise ValueError(f"{name} must have shape {layout}, got an array of shape {x.shape}")


def _check_param(p: np.ndarray, shape: tuple[int, ...], name: str, what: str) -> None:
    if p.shape != shape:
        raise ValueError(f"{name} must have shape {shape} ({what}), got {p.shape}")


def _check_same_shape(dy: np.ndarray, x: np.ndarray) -> None:
    if dy.shape != x.shape:
        raise ValueError(f"dy must have the shape of x {x.shape}, got {dy.shape}")


def _check_batch_size(count: int, what: str) -> None:
    if count < 2:
        raise ValueError(
            f"batch normalization in training mode needs more than 1 value per {what}, "
            f"got {count}: the batch variance of a single value is 0"
        )


# ------------------------------------------------------------- shared normalization


def _normalize(x: np.ndarray, axes: tuple[int, ...], eps: float):
    """Normalize `x` over `axes` with the biased variance; return (x_hat, inv_std)."""
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    return (x - mu) * inv_std, inv_std


def _normalize_backward(dx_hat, x_hat, inv_std, axes: tuple[int, ...]) -> np.ndarray:
    """Gradient through x_hat = (x - mu) / sqrt(var + eps), statistics taken over `axes`.

    Closed form: dx = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)).
    """
    mean_dx_hat = dx_hat.mean(axis=axes, keepdims=True)
    mean_dx_hat_x_hat = (dx_hat * x_hat).mean(axis=axes, keepdims=True)
    return inv_std * (dx_hat - mean_dx_hat - x_hat * mean_dx_hat_x_hat)


def _channel_view(p: np.ndarray, ndim: int) -> np.ndarray:
    """Reshape a per-channel vector (C,) to broadcast against (N, C, ...) of `ndim` axes."""
    return p.reshape((1, -1) + (1,) * (ndim - 2))


def _reduction_axes(ndim: int) -> tuple[int, ...]:
    """All axes but the channel axis 1: (0,) for (N, D), (0, 2, 3) for NCHW."""
    return (0,) + tuple(range(2, ndim))


# --------------------------------------------------------------- batch norm (N, D)


def _bn_inputs(x, gamma, beta, eps, ndims, layout):
    x = _array(x, "x")
    _check_ndim(x, ndims, "x", layout)
    channels = x.shape[1]
    gamma = _array(gamma, "gamma")
    _check_param(gamma, (channels,), "gamma", "one value per feature/channel of x")
    if beta is not None:
        beta = _array(beta, "beta")
        _check_param(beta, (channels,), "beta", "one value per feature/channel of x")
    eps = _check_eps(eps)
    count = x.size // channels if channels else 0
    _check_batch_size(count, "feature" if x.ndim == 2 else "channel")
    return x, gamma, beta, eps


def batchnorm_forward(x, gamma, beta, eps=1e-5) -> np.ndarray:
    """Training-mode batch normalization (Algorithm 1 of the paper).

    x: (N, D) with N >= 2; gamma, beta: (D,). Returns y of shape (N, D), float64:
    y = gamma * (x - mu) / sqrt(var + eps) + beta, mu and (biased) var per feature.
    """
    x, gamma, beta, eps = _bn_inputs(x, gamma, beta, eps, (2,), "(N, D)")
    x_hat, _ = _normalize(x, (0,), eps)
    return gamma * x_hat + beta


def batchnorm_backward(dy, x, gamma, eps=1e-5):
    """Gradients of training-mode batch normalization.

    dy, x: (N, D); gamma: (D,). Returns (dx, dgamma, dbeta) with shapes (N, D), (D,), (D,).
    The forward pass is recomputed from x, so no cache is needed.
    """
    x, gamma, _, eps = _bn_inputs(x, gamma, None, eps, (2,), "(N, D)")
    dy = _array(dy, "dy")
    _check_same_shape(dy, x)
    x_hat, inv_std = _normalize(x, (0,), eps)
    dx = _normalize_backward(dy * gamma, x_hat, inv_std, (0,))
    return dx, (dy * x_hat).sum(axis=0), dy.sum(axis=0)


def update_running_stats(running_mean, running_var, x, momentum=0.1):
    """One update of the running statistics, PyTorch's convention.

    x: (N, D) or (N, C, H, W), statistics per feature/channel over all other axes;
    running_mean, running_var: (D,) or (C,). Returns new arrays (mean, var):
        mean = (1 - momentum) * running_mean + momentum * batch_mean
        var  = (1 - momentum) * running_var  + momentum * unbiased_batch_var
    The inputs are not modified.
    """
    x = _array(x, "x")
    _check_ndim(x, (2, 4), "x", "(N, D) or (N, C, H, W)")
    channels = x.shape[1]
    running_mean = _array(running_mean, "running_mean")
    running_var = _array(running_var, "running_var")
    _check_param(running_mean, (channels,), "running_mean", "one value per feature of x")
    _check_param(running_var, (channels,), "running_var", "one value per feature of x")
    if np.any(running_var < 0):
        raise ValueError("running_var must be non-negative")
    if isinstance(momentum, bool) or not isinstance(momentum, int | float | np.floating):
        raise ValueError(f"momentum must be a number in [0, 1], got {momentum!r}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1] (weight of the new batch), got {momentum}")
    axes = _reduction_axes(x.ndim)
    count = x.size // channels if channels else 0
    _check_batch_size(count, "feature" if x.ndim == 2 else "channel")
    batch_mean = x.mean(axis=axes)
    batch_var = x.var(axis=axes, ddof=1)
    mean = (1.0 - momentum) * running_mean + momentum * batch_mean
    var = (1.0 - momentum) * running_var + momentum * batch_var
    return mean, var


def batchnorm_inference(x, gamma, beta, running_mean, running_var, eps=1e-5) -> np.ndarray:
    """Inference-mode batch normalization with the running statistics (Algorithm 2).

    x: (N, D) or (N, C, H, W), any N >= 1; all other arguments (D,) or (C,).
    Returns gamma * (x - running_mean) / sqrt(running_var + eps) + beta, float64.
    """
    x = _array(x, "x")
    _check_ndim(x, (2, 4), "x", "(N, D) or (N, C, H, W)")
    channels = (x.shape[1],)
    params = {}
    for name, value in [
        ("gamma", gamma),
        ("beta", beta),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ]:
        params[name] = _array(value, name)
        _check_param(params[name], channels, name, "one value per feature/channel of x")
    if np.any(params["running_var"] < 0):
        raise ValueError("running_var must be non-negative")
    eps = _check_eps(eps)
    view = {name: _channel_view(p, x.ndim) for name, p in params.items()}
    x_hat = (x - view["running_mean"]) / np.sqrt(view["running_var"] + eps)
    return view["gamma"] * x_hat + view["beta"]


# ------------------------------------------------------------- batch norm, NCHW


def spatial_batchnorm_forward(x, gamma, beta, eps=1e-5) -> np.ndarray:
    """Training-mode batch normalization of images, per channel.

    x: (N, C, H, W) with N*H*W >= 2; gamma, beta: (C,). Statistics are over the
    N*H*W values of each channel (axes 0, 2, 3). Returns y of shape (N, C, H, W).
    """
    x, gamma, beta, eps = _bn_inputs(x, gamma, beta, eps, (4,), "(N, C, H, W)")
    x_hat, _ = _normalize(x, (0, 2, 3), eps)
    return _channel_view(gamma, 4) * x_hat + _channel_view(beta, 4)


def spatial_batchnorm_backward(dy, x, gamma, eps=1e-5):
    """Gradients of spatial batch normalization.

    dy, x: (N, C, H, W); gamma: (C,). Returns (dx, dgamma, dbeta) with shapes
    (N, C, H, W), (C,), (C,); dgamma and dbeta are summed over N, H and W.
    """
    x, gamma, _, eps = _bn_inputs(x, gamma, None, eps, (4,), "(N, C, H, W)")
    dy = _array(dy, "dy")
    _check_same_shape(dy, x)
    axes = (0, 2, 3)
    x_hat, inv_std = _normalize(x, axes, eps)
    dx = _normalize_backward(dy * _channel_view(gamma, 4), x_hat, inv_std, axes)
    return dx, (dy * x_hat).sum(axis=axes), dy.sum(axis=axes)


# ------------------------------------------------------------------- layer norm


def _ln_inputs(x, gamma, beta, eps):
    x = _array(x, "x")
    if x.ndim < 2:
        raise ValueError(f"x must have shape (N, ...) with at least 2 axes, got {x.shape}")
    normalized_shape = x.shape[1:]
    gamma = _array(gamma, "gamma")
    _check_param(gamma, normalized_shape, "gamma", "the shape of one example of x")
    if beta is not None:
        beta = _array(beta, "beta")
        _check_param(beta, normalized_shape, "beta", "the shape of one example of x")
    return x, gamma, beta, _check_eps(eps), tuple(range(1, x.ndim))


def layernorm_forward(x, gamma, beta, eps=1e-5) -> np.ndarray:
    """Layer normalization: each example normalized over all its features.

    x: (N, ...) such as (N, D) or (N, C, H, W); gamma, beta: x.shape[1:] (as
    torch.nn.LayerNorm(x.shape[1:])). Same computation at training and inference.
    """
    x, gamma, beta, eps, axes = _ln_inputs(x, gamma, beta, eps)
    x_hat, _ = _normalize(x, axes, eps)
    return gamma * x_hat + beta


def layernorm_backward(dy, x, gamma, eps=1e-5):
    """Gradients of layer normalization: (dx, dgamma, dbeta), dgamma/dbeta summed over N."""
    x, gamma, _, eps, axes = _ln_inputs(x, gamma, None, eps)
    dy = _array(dy, "dy")
    _check_same_shape(dy, x)
    x_hat, inv_std = _normalize(x, axes, eps)
    dx = _normalize_backward(dy * gamma, x_hat, inv_std, axes)
    return dx, (dy * x_hat).sum(axis=0), dy.sum(axis=0)


# ------------------------------------------------------------------- group norm


def _gn_inputs(x, gamma, beta, num_groups, eps):
    x = _array(x, "x")
    _check_ndim(x, (4,), "x", "(N, C, H, W)")
    channels = x.shape[1]
    if isinstance(num_groups, bool) or not isinstance(num_groups, int | np.integer):
        raise ValueError(f"num_groups must be a positive integer, got {num_groups!r}")
    if num_groups < 1 or channels % num_groups:
        raise ValueError(
            f"num_groups must be a positive divisor of the {channels} channels, got {num_groups}"
        )
    gamma = _array(gamma, "gamma")
    _check_param(gamma, (channels,), "gamma", "one value per channel of x")
    if beta is not None:
        beta = _array(beta, "beta")
        _check_param(beta, (channels,), "beta", "one value per channel of x")
    return x, gamma, beta, int(num_groups), _check_eps(eps)


def _grouped(a: np.ndarray, num_groups: int) -> np.ndarray:
    """View (N, C, H, W) as (N, G, C/G * H * W): one row per example and group."""
    return a.reshape(a.shape[0], num_groups, -1)


def groupnorm_forward(x, gamma, beta, num_groups, eps=1e-5) -> np.ndarray:
    """Group normalization (Wu & He, 2018) of images.

    x: (N, C, H, W); C divisible by num_groups; gamma, beta: (C,). Each example's group
    of C/G channels is normalized over its (C/G)*H*W values. G = 1 is layer norm over
    (C, H, W); G = C is instance norm.
    """
    x, gamma, beta, num_groups, eps = _gn_inputs(x, gamma, beta, num_groups, eps)
    x_hat, _ = _normalize(_grouped(x, num_groups), (2,), eps)
    return _channel_view(gamma, 4) * x_hat.reshape(x.shape) + _channel_view(beta, 4)


def groupnorm_backward(dy, x, gamma, num_groups, eps=1e-5):
    """Gradients of group normalization: (dx, dgamma, dbeta), shapes (N, C, H, W), (C,), (C,)."""
    x, gamma, _, num_groups, eps = _gn_inputs(x, gamma, None, num_groups, eps)
    dy = _array(dy, "dy")
    _check_same_shape(dy, x)
    x_hat, inv_std = _normalize(_grouped(x, num_groups), (2,), eps)
    dx_hat = _grouped(dy * _channel_view(gamma, 4), num_groups)
    dx = _normalize_backward(dx_hat, x_hat, inv_std, (2,)).reshape(x.shape)
    x_hat = x_hat.reshape(x.shape)
    return dx, (dy * x_hat).sum(axis=(0, 2, 3)), dy.sum(axis=(0, 2, 3))


# ---------------------------------------------------------------------- folding


def fold_batchnorm(weight, bias, gamma, beta, running_mean, running_var, eps=1e-5):
    """Fold an inference-mode batch norm into the linear or conv layer before it.

    weight: (out, in) for a linear layer or (out, in, kh, kw) for a convolution;
    bias: (out,) or None; the batch-norm arguments: (out,). Returns (weight, bias) of a
    layer computing bn(layer(x)) in eval mode, as torch.nn.utils.fusion does:
        weight' = weight * gamma / sqrt(running_var + eps)   (per output channel)
        bias'   = (bias - running_mean) * gamma / sqrt(running_var + eps) + beta
    """
    weight = _array(weight, "weight")
    if weight.ndim < 2:
        raise ValueError(
            f"weight must have shape (out, in) or (out, in, kh, kw), got {weight.shape}"
        )
    out = (weight.shape[0],)
    bias = np.zeros(out) if bias is None else _array(bias, "bias")
    _check_param(bias, out, "bias", "one value per output channel of weight")
    params = {}
    for name, value in [
        ("gamma", gamma),
        ("beta", beta),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ]:
        params[name] = _array(value, name)
        _check_param(params[name], out, name, "one value per output channel of weight")
    if np.any(params["running_var"] < 0):
        raise ValueError("running_var must be non-negative")
    scale = params["gamma"] / np.sqrt(params["running_var"] + _check_eps(eps))
    folded_weight = weight * scale.reshape((-1,) + (1,) * (weight.ndim - 1))
    folded_bias = (bias - params["running_mean"]) * scale + params["beta"]
    return folded_weight, folded_bias
