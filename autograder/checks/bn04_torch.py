"""Checks for bn04_torch: a batch-norm autograd Function and a drop-in BatchNorm2d module.

The Function is judged against `autograder.reference` (values and gradients) and
`torch.autograd.gradcheck`; the module against PyTorch's own `torch.nn.BatchNorm2d` run
side by side on the same inputs. When a result is wrong, a NumPy simulation of the
module with one known mistake at a time names the mistake.
"""

from __future__ import annotations

import contextlib
import re

import numpy as np
import torch

from autograder import reference
from autograder.checks.core import (
    Failure,
    KnownMistake,
    call_learner,
    check_close,
    learner_check,
)

EPS = 1e-5
CHANNELS = 3
IMAGE_AXES = (0, 2, 3)
# float32 results are compared with float64 references on the same (rounded) inputs.
F32_TOL = {"rtol": 1e-4, "atol": 1e-4}
F64_TOL = {"rtol": 1e-7, "atol": 1e-8}
WHERE_FORWARD = "Look at how forward computes the per-channel mean and variance."
WHERE_BACKWARD = "Look at the reductions in backward."
WHERE_UPDATE = "Look at the running-statistics update in forward."


# ------------------------------------------------------------------------------ inputs


def _images(seed: int, n: int = 2, offset: float = 1e4, shape_hw=(4, 5)) -> np.ndarray:
    """(n, 3, H, W) float64 images: channel 0 has std 1e-3 (variance near eps), channel 1
    sits at `offset`, channel 2 is wide and shifted. H != W != C so that wrong axes show."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, CHANNELS, *shape_hw))
    x[:, 0] = 1e-3 * x[:, 0] + 0.5
    x[:, 1] = x[:, 1] + offset
    x[:, 2] = 3.0 * x[:, 2] - 2.0
    return x


def _affine(seed: int, channels: int = CHANNELS) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gamma = rng.uniform(0.5, 2.0, channels) * rng.choice([-1.0, 1.0], channels)
    return gamma, rng.standard_normal(channels)


def _non_contiguous(x: torch.Tensor) -> torch.Tensor:
    """The same values as `x` (N, C, H, W) in a non-contiguous tensor."""
    return x.transpose(2, 3).contiguous().transpose(2, 3)


def _tensor(a: np.ndarray, dtype=torch.float64, grad: bool = False) -> torch.Tensor:
    return torch.tensor(a, dtype=dtype, requires_grad=grad)


# ------------------------------------------------------- wrong variants, for diagnosis


def _stats(x: np.ndarray, axes, ddof: int = 0):
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, ddof=ddof, keepdims=True)
    return mu, var


def _view(p: np.ndarray, ndim: int) -> np.ndarray:
    return p.reshape((1, -1) + (1,) * (ndim - 2))


def _forward_variant(x, gamma, beta, axes, ddof=0, eps_outside=False) -> np.ndarray:
    mu, var = _stats(x, axes, ddof)
    std = np.sqrt(var) + EPS if eps_outside else np.sqrt(var + EPS)
    return _view(gamma, x.ndim) * (x - mu) / std + _view(beta, x.ndim)


def _forward_mistakes(x, gamma, beta) -> list[KnownMistake]:
    channel_axes = (0,) + tuple(range(2, x.ndim))
    mistakes = [
        KnownMistake(
            "the unbiased variance (divided by m - 1) in the normalization",
            _forward_variant(x, gamma, beta, channel_axes, ddof=1),
            "Normalization uses the biased variance (divide by m); only running_var "
            "stores the unbiased one. " + WHERE_FORWARD,
        ),
        KnownMistake(
            "eps added outside the square root",
            _forward_variant(x, gamma, beta, channel_axes, eps_outside=True),
            "Divide by sqrt(var + eps), not sqrt(var) + eps: it matters when a channel's "
            "variance is close to eps. " + WHERE_FORWARD,
        ),
    ]
    if x.ndim == 4:
        for axes, what in [
            ((0,), "over the batch axis only (wrong reduction axes)"),
            ((2, 3), "over H and W of each example (wrong reduction axes)"),
            ((0, 1, 2, 3), "over all axes at once (wrong reduction axes)"),
        ]:
            mistakes.append(
                KnownMistake(
                    f"statistics computed {what}",
                    _forward_variant(x, gamma, beta, axes),
                    "Per channel, the statistics are over N, H and W: axes (0, 2, 3). "
                    + WHERE_FORWARD,
                )
            )
    return mistakes


def _dx_wrong_axes(dy, x, gamma, axes) -> np.ndarray:
    """dx with the correct x_hat but the mean terms of the closed form taken over `axes`."""
    channel_axes = (0,) + tuple(range(2, x.ndim))
    mu, var = _stats(x, channel_axes)
    inv_std = 1.0 / np.sqrt(var + EPS)
    x_hat = (x - mu) * inv_std
    dx_hat = dy * _view(gamma, x.ndim)
    return inv_std * (
        dx_hat
        - dx_hat.mean(axis=axes, keepdims=True)
        - x_hat * (dx_hat * x_hat).mean(axis=axes, keepdims=True)
    )


# ----------------------------------------------------------------- learner's Function


@contextlib.contextmanager
def _forbidden_calls():
    """Make torch's own batch norm and autograd entry points raise while active."""

    class ForbiddenCall(Exception):
        pass

    targets = [
        (torch.nn.functional, "batch_norm", "torch.nn.functional.batch_norm"),
        (torch, "batch_norm", "torch.batch_norm"),
        (torch, "native_batch_norm", "torch.native_batch_norm"),
        (torch.autograd, "grad", "torch.autograd.grad"),
        (torch.autograd, "backward", "torch.autograd.backward"),
        (torch.Tensor, "backward", "Tensor.backward"),
    ]
    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in targets]

    def refuse(label):
        def call(*args, **kwargs):
            raise ForbiddenCall(f"calls {label}")

        return call

    for owner, attr, label in targets:
        setattr(owner, attr, refuse(label))
    try:
        yield saved[3][2]  # the real torch.autograd.grad, for the check itself
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)


def _forbidden_message(err: Failure) -> Failure:
    text = str(err)
    match = re.search(r"ForbiddenCall: calls ([\w.]+)", text)
    if not match:
        return err
    called = match.group(1)
    if "batch_norm" in called:
        return Failure(
            f"Your code calls {called}: the point of the exercise is to compute batch "
            "normalization yourself, with basic tensor operations."
        )
    return Failure(
        f"Your code calls {called}: backward must compute the gradients by hand from the "
        "tensors saved in forward, without autograd."
    )


_INDEX_NAMES = {"0": "dx", "1": "dgamma", "2": "dbeta"}


def _shape_message(err: Failure) -> Failure:
    """Turn autograd's 'invalid gradient at index i' into a message about that gradient."""
    match = re.search(r"invalid gradient at index (\d) - got \[([\d, ]*)\]", str(err))
    if not match or match.group(1) not in _INDEX_NAMES:
        return err
    name = _INDEX_NAMES[match.group(1)]
    if name == "dx":
        return Failure(
            f"BatchNormFunction.backward returned dx of shape ({match.group(2)}): it must "
            "have the shape of x."
        )
    return Failure(
        f"BatchNormFunction.backward returned {name} of shape ({match.group(2)}): it must "
        f"have shape (C,), so {name} must be summed over every axis but the channel axis "
        "(N, H and W for images)."
    )


def _run_function(fn, x, gamma, beta, dy=None):
    """Forward (and backward if dy is given) through the learner's Function.

    Returns y, or (y, dx, dgamma, dbeta). torch's batch norm and autograd calls are
    forbidden inside the learner's code.
    """
    what = "BatchNormFunction.apply"
    with _forbidden_calls() as real_grad:
        try:
            y = call_learner(fn.apply, x, gamma, beta, EPS, what=what)
            if not isinstance(y, torch.Tensor):
                raise Failure(f"{what} should return a tensor, got a {type(y).__name__}.")
            if dy is None:
                return y
            if y.grad_fn is None or getattr(y.grad_fn, "_forward_cls", None) is not fn:
                raise Failure(
                    "The output of BatchNormFunction.apply is not produced by "
                    "BatchNormFunction: forward must return a tensor it computed itself."
                )
            grads = call_learner(
                real_grad,
                y,
                (x, gamma, beta),
                dy,
                allow_unused=True,
                what="the backward pass of BatchNormFunction",
            )
        except Failure as err:
            raise _shape_message(_forbidden_message(err)) from None
    for grad, name in zip(grads, ("dx", "dgamma", "dbeta"), strict=True):
        if grad is None:
            raise Failure(f"BatchNormFunction.backward returned None for {name}.")
    return (y, *grads)


def _function_case(seed: int, dtype, four_d: bool = True):
    if four_d:
        x = _images(seed, offset=1e4 if dtype == torch.float64 else 20.0)
    else:
        x = _images(seed, offset=1e4 if dtype == torch.float64 else 20.0)[:, :, 0, 0]
    x = np.asarray(_tensor(x, dtype).double())  # the values the learner sees, rounded
    gamma, beta = _affine(seed + 1)
    gamma = np.asarray(_tensor(gamma, dtype).double())
    beta = np.asarray(_tensor(beta, dtype).double())
    return x, gamma, beta


@learner_check
def check_function_forward(fn) -> None:
    """Values of BatchNormFunction.apply on NCHW and (N, C) float64 input, N = 2."""
    for seed, four_d in [(0, True), (1, False)]:
        x, gamma, beta = _function_case(seed, torch.float64, four_d)
        xt = _tensor(x)
        if four_d:
            xt = _non_contiguous(xt)
        before = xt.clone()
        y = _run_function(fn, xt, _tensor(gamma), _tensor(beta))
        layout = "(N, C, H, W)" if four_d else "(N, C)"
        expected = (
            reference.spatial_batchnorm_forward(x, gamma, beta, EPS)
            if four_d
            else reference.batchnorm_forward(x, gamma, beta, EPS)
        )
        check_close(
            y,
            expected,
            f"The output of BatchNormFunction for {layout} input",
            **F64_TOL,
            mistakes=_forward_mistakes(x, gamma, beta),
        )
        if not torch.equal(xt, before):
            raise Failure("BatchNormFunction.forward modified its input x in place.")


@learner_check
def check_function_float32(fn) -> None:
    """float32 input gives a float32 output with the right values."""
    x, gamma, beta = _function_case(2, torch.float32)
    y = _run_function(
        fn,
        _tensor(x, torch.float32),
        _tensor(gamma, torch.float32),
        _tensor(beta, torch.float32),
    )
    if y.dtype != torch.float32:
        raise Failure(f"For float32 input, BatchNormFunction returned {y.dtype}, not float32.")
    check_close(
        y,
        reference.spatial_batchnorm_forward(x, gamma, beta, EPS),
        "The output of BatchNormFunction for float32 input",
        **F32_TOL,
        mistakes=_forward_mistakes(x, gamma, beta),
    )


@learner_check
def check_function_backward(fn) -> None:
    """dx, dgamma, dbeta against the reference, NCHW (N = 2) and (N, C), float64."""
    for seed, four_d in [(3, True), (4, False)]:
        x, gamma, beta = _function_case(seed, torch.float64, four_d)
        dy = np.random.default_rng(seed + 10).standard_normal(x.shape)
        _, dx, dgamma, dbeta = _run_function(
            fn,
            _tensor(x, grad=True),
            _tensor(gamma, grad=True),
            _tensor(beta, grad=True),
            _tensor(dy),
        )
        axes = IMAGE_AXES if four_d else (0,)
        backward = reference.spatial_batchnorm_backward if four_d else reference.batchnorm_backward
        dx_ref, dgamma_ref, dbeta_ref = backward(dy, x, gamma, EPS)
        dx_mistakes = []
        if four_d:
            dx_mistakes = [
                KnownMistake(
                    "backward reduced over the batch axis only",
                    _dx_wrong_axes(dy, x, gamma, (0,)),
                    "The means in dx are over N, H and W, as in forward. " + WHERE_BACKWARD,
                ),
                KnownMistake(
                    "backward reduced over H and W only",
                    _dx_wrong_axes(dy, x, gamma, (2, 3)),
                    "The means in dx are over N, H and W, as in forward. " + WHERE_BACKWARD,
                ),
            ]
        dx_mistakes.append(
            KnownMistake(
                "dx without the terms that come through mu and var",
                dy * _view(gamma, x.ndim) / np.sqrt(_stats(x, axes)[1] + EPS),
                "mu and var depend on x too: subtract their contributions. " + WHERE_BACKWARD,
            )
        )
        check_close(dx, dx_ref, "dx", **F64_TOL, mistakes=dx_mistakes)
        x_hat_ref = (x - _stats(x, axes)[0]) / np.sqrt(_stats(x, axes)[1] + EPS)
        check_close(
            dgamma,
            dgamma_ref,
            "dgamma",
            **F64_TOL,
            mistakes=[
                KnownMistake(
                    "dgamma computed from x instead of x_hat",
                    (dy * x).sum(axis=axes),
                    "dgamma is the sum of dy * x_hat. " + WHERE_BACKWARD,
                ),
                KnownMistake(
                    "dgamma and dbeta swapped",
                    dbeta_ref,
                    "dgamma = sum(dy * x_hat), dbeta = sum(dy). " + WHERE_BACKWARD,
                ),
            ],
        )
        check_close(
            dbeta,
            dbeta_ref,
            "dbeta",
            **F64_TOL,
            mistakes=[
                KnownMistake(
                    "dgamma and dbeta swapped",
                    (dy * x_hat_ref).sum(axis=axes),
                    "dgamma = sum(dy * x_hat), dbeta = sum(dy). " + WHERE_BACKWARD,
                )
            ],
        )


@learner_check
def check_function_gradcheck(fn) -> None:
    """torch.autograd.gradcheck in float64 on a small NCHW input."""
    rng = np.random.default_rng(5)
    x = _tensor(rng.standard_normal((2, 3, 2, 3)) * 2 + 1, grad=True)
    gamma = _tensor(rng.uniform(0.5, 1.5, 3), grad=True)
    beta = _tensor(rng.standard_normal(3), grad=True)
    _run_function(fn, x, gamma, beta, torch.ones_like(x))  # clear messages first

    def apply(x, gamma, beta):
        return fn.apply(x, gamma, beta, EPS)

    try:
        ok = call_learner(
            torch.autograd.gradcheck,
            apply,
            (x, gamma, beta),
            eps=1e-6,
            atol=1e-5,
            raise_exception=False,
            what="torch.autograd.gradcheck on BatchNormFunction",
        )
    except Failure as err:
        raise _shape_message(err) from None
    if not ok:
        raise Failure(
            "torch.autograd.gradcheck fails: the gradients from backward differ from "
            "numerical derivatives of forward. " + WHERE_BACKWARD
        )


# ------------------------------------------------------------------- learner's module


def _make(cls, *args, **kwargs):
    shown = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
    module = call_learner(cls, *args, what=f"BatchNorm2d({shown})", **kwargs)
    if not isinstance(module, torch.nn.Module):
        raise Failure("BatchNorm2d must be a subclass of torch.nn.Module.")
    return module


def _call(module, x, what="BatchNorm2d.forward"):
    y = call_learner(module, x, what=what)
    if not isinstance(y, torch.Tensor):
        raise Failure(f"{what} should return a tensor, got a {type(y).__name__}.")
    return y


def _set_affine(module, gamma, beta) -> None:
    with torch.no_grad():
        for name, value in [("weight", gamma), ("bias", beta)]:
            param = getattr(module, name, None)
            if not isinstance(param, torch.Tensor):
                raise Failure(f"BatchNorm2d has no tensor attribute {name} (gamma/beta).")
            if tuple(param.shape) != (len(value),):
                raise Failure(
                    f"BatchNorm2d's {name} has shape {tuple(param.shape)}, expected "
                    f"(num_features,) = ({len(value)},)."
                )
            param.copy_(torch.as_tensor(value))


def _pair(cls, seed: int, **kwargs):
    """The learner's module and torch.nn.BatchNorm2d with the same random gamma, beta."""
    mine = _make(cls, CHANNELS, **kwargs)
    theirs = torch.nn.BatchNorm2d(CHANNELS, **kwargs)
    if kwargs.get("affine", True):
        gamma, beta = _affine(seed)
        _set_affine(mine, gamma, beta)
        _set_affine(theirs, gamma, beta)
    return mine, theirs


def _buffer(module, name: str):
    value = getattr(module, name, None)
    if not isinstance(value, torch.Tensor):
        raise Failure(f"BatchNorm2d has no tensor attribute {name}.")
    return value


def _simulate(steps, gamma, beta, momentum, mistake=None):
    """NumPy model of BatchNorm2d over (training, x) steps, optionally with one mistake.

    Returns, after each step, (y, running_mean, running_var). Correct behaviour is
    mistake=None; the others are what a learner with that mistake computes.
    """
    rm, rv, count = np.zeros(CHANNELS), np.ones(CHANNELS), 0
    results = []
    for training, x in steps:
        update = (training and mistake != "no update") or mistake in _EVAL_UPDATES
        if update and mistake == "update in eval":  # the buffers are updated first
            rm, rv, count = _update(rm, rv, count, x, momentum, mistake)
        if training or mistake == "batch stats in eval":
            y = reference.spatial_batchnorm_forward(x, gamma, beta, EPS)
        else:
            y = reference.batchnorm_inference(x, gamma, beta, rm, rv, EPS)
        if update and mistake != "update in eval":
            rm, rv, count = _update(rm, rv, count, x, momentum, mistake)
        results.append((y, rm.copy(), rv.copy()))
    return results


_EVAL_UPDATES = ("update in eval", "update in eval after normalizing")


def _update(rm, rv, count, x, momentum, mistake):
    """One update of the simulated running statistics, with `mistake` if it is one."""
    count += 1
    factor = 1.0 / count if momentum is None else momentum
    if mistake == "momentum None ignored" and momentum is None:
        factor = 0.1
    mean = x.mean(axis=IMAGE_AXES)
    var = x.var(axis=IMAGE_AXES, ddof=0 if mistake == "biased" else 1)
    if mistake == "std":
        var = np.sqrt(var)
    if mistake == "flipped":
        return factor * rm + (1 - factor) * mean, factor * rv + (1 - factor) * var, count
    return (1 - factor) * rm + factor * mean, (1 - factor) * rv + factor * var, count


_MISTAKES = {
    "flipped": (
        "the momentum convention flipped (momentum weighting the old value)",
        "In PyTorch, running = (1 - momentum) * running + momentum * batch_statistic. "
        + WHERE_UPDATE,
    ),
    "biased": (
        "running_var updated with the biased batch variance",
        "running_var stores the unbiased variance (divide by m - 1). " + WHERE_UPDATE,
    ),
    "std": (
        "the standard deviation stored in running_var instead of the variance",
        "running_var holds a variance, not its square root. " + WHERE_UPDATE,
    ),
    "no update": (
        "running statistics that are never updated",
        "In training mode, forward must update running_mean and running_var in place. "
        + WHERE_UPDATE,
    ),
    "update in eval": (
        "running statistics updated in eval mode too",
        "Update the running statistics only when self.training is True.",
    ),
    "update in eval after normalizing": (
        "running statistics updated in eval mode too",
        "Update the running statistics only when self.training is True.",
    ),
    "batch stats in eval": (
        "batch statistics used in eval mode",
        "In eval mode, normalize with running_mean and running_var.",
    ),
    "momentum None ignored": (
        "momentum=None treated as a fixed momentum",
        "With momentum=None, the factor is 1 / num_batches_tracked (a cumulative average).",
    ),
}


def _mistakes(steps, gamma, beta, momentum, index: int, part: int, names):
    found = []
    for key in names:
        wrong = _simulate(steps, gamma, beta, momentum, key)[index][part]
        name, hint = _MISTAKES[key]
        found.append(KnownMistake(name, wrong, hint))
    return found


def _run_sequence(cls, steps, momentum=0.1, seed=0, names=tuple(_MISTAKES)) -> None:
    """Run the learner's module and torch's on the same (training, x) steps and compare
    outputs and buffers after every step (float32, as the modules are created)."""
    kwargs = {} if momentum == 0.1 else {"momentum": momentum}
    mine, theirs = _pair(cls, seed, **kwargs)
    gamma = theirs.weight.detach().double().numpy()
    beta = theirs.bias.detach().double().numpy()
    steps = [
        (training, np.asarray(torch.tensor(x, dtype=torch.float32).double()))
        for training, x in steps
    ]
    trained = 0
    for index, (training, x) in enumerate(steps):
        mine.train(training)
        theirs.train(training)
        mode = "training" if training else "eval"
        xt = torch.tensor(x, dtype=torch.float32)
        with torch.no_grad():
            expected = theirs(xt)
        given = _non_contiguous(xt)
        y = _call(mine, given)
        if not torch.equal(given, xt):
            raise Failure(f"BatchNorm2d modified its input in place at {mode} step {index + 1}.")
        trained += training
        step = f"step {index + 1} ({mode} mode)"
        check_close(
            y,
            expected,
            f"The output at {step}",
            **F32_TOL,
            mistakes=_mistakes(steps, gamma, beta, momentum, index, 0, names),
        )
        for part, name in [(1, "running_mean"), (2, "running_var")]:
            check_close(
                _buffer(mine, name),
                getattr(theirs, name),
                f"{name} after {step}",
                **F32_TOL,
                mistakes=_mistakes(steps, gamma, beta, momentum, index, part, names),
            )
        count = _buffer(mine, "num_batches_tracked")
        if count.numel() != 1 or int(count) != trained:
            raise Failure(
                f"num_batches_tracked is {count.tolist()} after {step}, expected {trained}: "
                "it counts the training-mode forward passes (add 1 in each)."
            )


@learner_check
def check_module_parameters_and_buffers(cls) -> None:
    """Names, shapes, dtypes and initial values; buffers registered; state_dict keys."""
    module = _make(cls, 4)
    if not isinstance(module, torch.nn.Module):
        raise Failure("BatchNorm2d must be a subclass of torch.nn.Module.")
    params = dict(module.named_parameters())
    if set(params) != {"weight", "bias"}:
        raise Failure(
            f"BatchNorm2d's parameters are {sorted(params)}; expected exactly 'weight' "
            "(gamma) and 'bias' (beta), as in torch.nn.BatchNorm2d."
        )
    for name, fill in [("weight", 1.0), ("bias", 0.0)]:
        p = params[name]
        if p.shape != (4,) or p.dtype != torch.float32 or not torch.all(p == fill):
            raise Failure(
                f"{name} should start as a float32 tensor of shape (num_features,) filled "
                f"with {fill:g}, got shape {tuple(p.shape)}, {p.dtype}."
            )
    buffers = dict(module.named_buffers())
    for name, fill, dtype in [
        ("running_mean", 0.0, torch.float32),
        ("running_var", 1.0, torch.float32),
        ("num_batches_tracked", 0, torch.long),
    ]:
        if name not in buffers:
            plain = " It is a plain attribute:" if hasattr(module, name) else ""
            raise Failure(
                f"{name} is not a registered buffer.{plain} use self.register_buffer("
                f"'{name}', ...) so that it is saved in state_dict and moved by .to()."
            )
        b = buffers[name]
        shape = () if name == "num_batches_tracked" else (4,)
        if tuple(b.shape) != shape or b.dtype != dtype or not torch.all(b == fill):
            raise Failure(
                f"{name} should start as a {dtype} tensor of shape {shape} filled with "
                f"{fill}, got shape {tuple(b.shape)}, {b.dtype}."
            )
    expected_keys = set(torch.nn.BatchNorm2d(4).state_dict())
    keys = set(module.state_dict())
    if keys != expected_keys:
        raise Failure(f"state_dict has keys {sorted(keys)}, expected {sorted(expected_keys)}.")
    custom = _make(cls, 4, eps=1e-3, momentum=0.3)
    for name, value in [("num_features", 4), ("eps", 1e-3), ("momentum", 0.3)]:
        if getattr(custom, name, None) != value:
            raise Failure(
                f"BatchNorm2d(4, eps=1e-3, momentum=0.3) should store {name} = {value} as "
                f"an attribute, as torch.nn.BatchNorm2d does."
            )


@learner_check
def check_module_state_dict_round_trip(cls) -> None:
    """torch's state_dict loads into the learner's module and the other way round."""
    theirs = torch.nn.BatchNorm2d(CHANNELS)
    gamma, beta = _affine(20)
    _set_affine(theirs, gamma, beta)
    with torch.no_grad():
        for seed in (21, 22):
            theirs(torch.tensor(_images(seed, offset=3.0), dtype=torch.float32))
    mine = _make(cls, CHANNELS)
    call_learner(
        mine.load_state_dict, theirs.state_dict(), what="load_state_dict(torch's state_dict)"
    )
    mine.eval()
    theirs.eval()
    x = torch.tensor(_images(23, offset=3.0), dtype=torch.float32)
    with torch.no_grad():
        check_close(
            _call(mine, x),
            theirs(x),
            "The eval-mode output after loading torch.nn.BatchNorm2d's state_dict",
            **F32_TOL,
        )
    mine.train()
    for seed in (24, 25):
        with torch.no_grad():
            _call(mine, torch.tensor(_images(seed, offset=-1.0), dtype=torch.float32))
    fresh = torch.nn.BatchNorm2d(CHANNELS)
    try:
        fresh.load_state_dict(mine.state_dict())
    except (RuntimeError, KeyError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise Failure(
            "torch.nn.BatchNorm2d cannot load your module's state_dict: " + first
        ) from None
    for name, value in mine.state_dict().items():
        if not torch.equal(fresh.state_dict()[name], value):
            raise Failure(f"state_dict entry {name} did not survive a round trip.")


@learner_check
def check_module_training_steps(cls) -> None:
    """Outputs and buffers over three training steps, compared with torch."""
    steps = [(True, _images(s, n=2, offset=20.0)) for s in (30, 31, 32)]
    _run_sequence(cls, steps, seed=33)


@learner_check
def check_module_train_eval_sequence(cls) -> None:
    """Alternating train and eval steps, including an eval batch of one image."""
    steps = [
        (True, _images(40, n=2, offset=20.0)),
        (False, _images(41, n=3, offset=21.0)),
        (True, _images(42, n=4, offset=19.0)),
        (False, _images(43, n=1, offset=20.0)),
        (False, _images(44, n=2, offset=20.0)),
    ]
    _run_sequence(cls, steps, seed=45)


@learner_check
def check_module_momentum_none(cls) -> None:
    """momentum=None: running statistics are the cumulative average of the batches."""
    steps = [(True, _images(s, n=2, offset=float(s - 50))) for s in (50, 51, 52, 53)]
    _run_sequence(cls, steps, momentum=None, seed=54)


@learner_check
def check_module_mode_follows_training_flag(cls) -> None:
    """The mode comes from self.training, whatever the grad mode."""
    x = _images(60, n=2, offset=5.0)
    hint = (
        "Choose batch or running statistics with self.training, which .train() and "
        ".eval() set; gradients can be off during training and on in eval."
    )
    name = "the mode chosen by the grad mode (torch.is_grad_enabled()) rather than self.training"
    for training, grad in [(True, False), (False, True)]:
        mine, theirs = _pair(cls, 61)
        with torch.no_grad():  # non-trivial running statistics in both
            theirs(torch.tensor(_images(62, offset=1.0), dtype=torch.float32))
        call_learner(mine.load_state_dict, theirs.state_dict(), what="load_state_dict")
        loaded = [theirs.running_mean.double().numpy(), theirs.running_var.double().numpy()]
        mine.train(training)
        theirs.train(training)
        xt = torch.tensor(x, dtype=torch.float32, requires_grad=grad)
        with torch.no_grad():
            expected = theirs(xt)
        with torch.set_grad_enabled(grad):
            y = _call(mine, xt)
        gamma = theirs.weight.detach().double().numpy()
        beta = theirs.bias.detach().double().numpy()
        xd = np.asarray(xt.detach().double())
        if training:
            setting = "in training mode under torch.no_grad()"
            updated = [
                np.asarray(_buffer(mine, key).double()) for key in ("running_mean", "running_var")
            ]
            wrong = [
                reference.batchnorm_inference(xd, gamma, beta, *stats, EPS)
                for stats in (loaded, updated)
            ]
        else:
            setting = "in eval mode with gradients enabled"
            wrong = [reference.spatial_batchnorm_forward(xd, gamma, beta, EPS)]
        check_close(
            y,
            expected,
            f"The output {setting}",
            **F32_TOL,
            mistakes=[KnownMistake(name, values, hint) for values in wrong],
        )
        check_close(
            _buffer(mine, "running_mean"),
            theirs.running_mean,
            f"running_mean after a forward pass {setting}",
            **F32_TOL,
        )


@learner_check
def check_module_rejects_one_value_per_channel(cls) -> None:
    """Training with one value per channel raises ValueError; N = 1 with H*W > 1 works."""
    mine, theirs = _pair(cls, 70)
    mine.train()
    single = torch.tensor(_images(71, n=1, offset=20.0, shape_hw=(1, 1)), dtype=torch.float32)
    try:
        mine(single)
    except ValueError:
        pass
    except Exception as err:  # noqa: BLE001 (any other error is the learner's)
        raise Failure(
            "In training mode, a batch with one value per channel should raise ValueError, "
            f"but BatchNorm2d raised {type(err).__name__}."
        ) from None
    else:
        raise Failure(
            "In training mode, BatchNorm2d accepted a batch with one value per channel "
            "(N = 1, H = W = 1): the batch variance of one value is 0, so raise ValueError "
            "as torch.nn.BatchNorm2d does (batch of one not rejected)."
        )
    mine, theirs = _pair(cls, 72)
    for training, x in [
        (True, _images(73, n=1, offset=20.0, shape_hw=(2, 3))),
        (False, _images(74, n=1, offset=20.0, shape_hw=(1, 1))),
    ]:
        mine.train(training)
        theirs.train(training)
        xt = torch.tensor(x, dtype=torch.float32)
        with torch.no_grad():
            expected = theirs(xt)
        shape = "N = 1, H = W = 1, eval mode" if not training else "N = 1, H*W = 6, training"
        check_close(_call(mine, xt), expected, f"The output for a batch with {shape}", **F32_TOL)


@learner_check
def check_module_built_on_function(cls, function) -> None:
    """Training mode goes through BatchNormFunction; gradients match torch's."""
    mine, theirs = _pair(cls, 80)
    x = _images(81, n=2, offset=4.0)
    xt_mine = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    xt_theirs = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    dy = torch.tensor(np.random.default_rng(82).standard_normal(x.shape), dtype=torch.float32)
    with _forbidden_calls() as real_grad:
        try:
            y = _call(mine, xt_mine)
        except Failure as err:
            raise _forbidden_message(err) from None
        if not _graph_contains(y.grad_fn, function):
            raise Failure(
                "In training mode, BatchNorm2d's output does not come from "
                "BatchNormFunction: build the module on BatchNormFunction.apply."
            )
        grads = call_learner(
            real_grad,
            y,
            (xt_mine, mine.weight, mine.bias),
            dy,
            allow_unused=True,
            what="the backward pass through BatchNorm2d",
        )
    expected = torch.autograd.grad(theirs(xt_theirs), (xt_theirs, theirs.weight, theirs.bias), dy)
    for grad, ref, name in zip(grads, expected, ("x", "weight", "bias"), strict=True):
        if grad is None:
            raise Failure(f"No gradient reaches {name} through BatchNorm2d.")
        check_close(grad, ref, f"The gradient for {name} through BatchNorm2d", **F32_TOL)


def _graph_contains(node, function, depth: int = 6) -> bool:
    if node is None or depth < 0:
        return False
    if getattr(node, "_forward_cls", None) is function:
        return True
    return any(_graph_contains(n, function, depth - 1) for n, _ in node.next_functions)


@learner_check
def check_module_options(cls) -> None:
    """affine=False and track_running_stats=False behave as in torch."""
    for kwargs in [{"affine": False}, {"track_running_stats": False}]:
        shown = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        mine, theirs = _pair(cls, 90, **kwargs)
        keys, expected_keys = set(mine.state_dict()), set(theirs.state_dict())
        if keys != expected_keys:
            raise Failure(
                f"With {shown}, state_dict has keys {sorted(keys)}, expected "
                f"{sorted(expected_keys)}."
            )
        for training, seed in [(True, 91), (True, 92), (False, 93)]:
            mine.train(training)
            theirs.train(training)
            xt = torch.tensor(_images(seed, n=2, offset=7.0), dtype=torch.float32)
            with torch.no_grad():
                expected = theirs(xt)
                y = _call(mine, xt)
            mode = "training" if training else "eval"
            check_close(y, expected, f"The output with {shown} in {mode} mode", **F32_TOL)
