"""Checks for bn04_torch: a batch-norm autograd Function and a drop-in BatchNorm2d module.

Each check is split in two (see `autograder.checks.core.graded`): its scenario in
`autograder.scenarios.bn04_torch` runs the learner's Function or module and records what
came back; the verdict here judges that record on the grader's host, regenerating the
inputs with the scenario module's builders. The Function is judged against
`autograder.reference` (values and gradients); the module against PyTorch's own
`torch.nn.BatchNorm2d`, built here by the same builders and run on the same inputs. When a
result is wrong, a NumPy simulation of the module with one known mistake at a time names
the mistake.

Three observations can only be made in the learner's process and are judged as the
scenario recorded them: which of torch's batch-norm and autograd functions the learner's
code called, whether an output's autograd graph holds the learner's Function, and the
result of `torch.autograd.gradcheck`.
"""

from __future__ import annotations

import collections
import re

import numpy as np
import torch

from autograder import reference
from autograder.checks.core import Failure, KnownMistake, check_close, graded, returned
from autograder.scenarios import bn04_torch as scenarios
from autograder.scenarios.bn04_torch import CHANNELS, EPS

IMAGE_AXES = (0, 2, 3)
# float32 results are compared with float64 references on the same (rounded) inputs.
F32_TOL = {"rtol": 1e-4, "atol": 1e-4}
F64_TOL = {"rtol": 1e-7, "atol": 1e-8}
WHERE_FORWARD = "Look at how forward computes the per-channel mean and variance."
WHERE_BACKWARD = "Look at the reductions in backward."
WHERE_UPDATE = "Look at the running-statistics update in forward."


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


def _output(outcome, what: str = "BatchNorm2d.forward") -> torch.Tensor:
    """The tensor a recorded call returned; Failure if it raised or returned something else."""
    y = returned(outcome)
    if not isinstance(y, torch.Tensor):
        raise Failure(f"{what} should return a tensor, got a {outcome['type']}.")
    return y


def _check_refused(outcome) -> None:
    """Raise the Failure for a call that raised after the learner's code called one of the
    functions the scenario refuses (recorded under "forbidden")."""
    if "raised" not in outcome or not outcome["forbidden"]:
        return
    called = outcome["forbidden"][0]
    if "batch_norm" in called:
        raise Failure(
            f"Your code calls {called}: the point of the exercise is to compute batch "
            "normalization yourself, with basic tensor operations."
        )
    raise Failure(
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


def _function_results(record, backward: bool = False):
    """From a record of the scenario's `_run_function`: the output y, or with `backward`
    the gradients (dx, dgamma, dbeta). Raise the Failure for the first problem."""
    try:
        _check_refused(record["y"])
        y = _output(record["y"], "BatchNormFunction.apply")
        if not backward:
            return y
        if record["from_function"] is not True:
            raise Failure(
                "The output of BatchNormFunction.apply is not produced by "
                "BatchNormFunction: forward must return a tensor it computed itself."
            )
        _check_refused(record["grads"])
        grads = returned(record["grads"])
    except Failure as err:
        raise _shape_message(err) from None
    for grad, name in zip(grads, ("dx", "dgamma", "dbeta"), strict=True):
        if grad is None:
            raise Failure(f"BatchNormFunction.backward returned None for {name}.")
    return grads


@graded(scenarios.function_forward)
def check_function_forward(t) -> None:
    """Values of BatchNormFunction.apply on NCHW and (N, C) float64 input, N = 2."""
    for index, (x, gamma, beta) in enumerate(scenarios.function_forward_inputs()):
        record = t["cases"][index]
        y = _function_results(record)
        four_d = x.ndim == 4
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
        if not torch.equal(record["x_after"], torch.tensor(x, dtype=torch.float64)):
            raise Failure("BatchNormFunction.forward modified its input x in place.")


@graded(scenarios.function_float32)
def check_function_float32(t) -> None:
    """float32 input gives a float32 output with the right values."""
    x, gamma, beta = scenarios.function_float32_inputs()
    y = _function_results(t)
    if y.dtype != torch.float32:
        raise Failure(f"For float32 input, BatchNormFunction returned {y.dtype}, not float32.")
    check_close(
        y,
        reference.spatial_batchnorm_forward(x, gamma, beta, EPS),
        "The output of BatchNormFunction for float32 input",
        **F32_TOL,
        mistakes=_forward_mistakes(x, gamma, beta),
    )


@graded(scenarios.function_backward)
def check_function_backward(t) -> None:
    """dx, dgamma, dbeta against the reference, NCHW (N = 2) and (N, C), float64."""
    for index, (x, gamma, _, dy) in enumerate(scenarios.function_backward_inputs()):
        dx, dgamma, dbeta = _function_results(t["cases"][index], backward=True)
        four_d = x.ndim == 4
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


@graded(scenarios.function_gradcheck)
def check_function_gradcheck(t) -> None:
    """torch.autograd.gradcheck in float64 on a small NCHW input."""
    _function_results(t, backward=True)  # clear messages first
    try:
        ok = returned(t["gradcheck"])
    except Failure as err:
        raise _shape_message(err) from None
    if ok is not True:
        raise Failure(
            "torch.autograd.gradcheck fails: the gradients from backward differ from "
            "numerical derivatives of forward. " + WHERE_BACKWARD
        )


# ------------------------------------------------------------------- learner's module


def _check_made(outcome) -> None:
    """Raise Failure unless the learner's constructor made a torch.nn.Module."""
    if returned(outcome) is not True:
        raise Failure("BatchNorm2d must be a subclass of torch.nn.Module.")


def _check_module(record, affine: bool = True) -> None:
    """Raise the Failure for a module of the scenario's `_paired` that was not made, or
    whose weight and bias could not take gamma and beta."""
    _check_made(record["made"])
    if not affine:
        return
    shapes = returned(record["affine"])
    for name in ("weight", "bias"):
        shape = shapes[name]
        if shape is None:
            raise Failure(f"BatchNorm2d has no tensor attribute {name} (gamma/beta).")
        if tuple(shape) != (CHANNELS,):
            raise Failure(
                f"BatchNorm2d's {name} has shape {tuple(shape)}, expected "
                f"(num_features,) = ({CHANNELS},)."
            )


def _buffer(outcome, name: str) -> torch.Tensor:
    value = returned(outcome)
    if not isinstance(value, torch.Tensor):
        raise Failure(f"BatchNorm2d has no tensor attribute {name}.")
    return value


def _stepped(step, theirs: torch.nn.BatchNorm2d, training: bool, x: torch.Tensor) -> tuple:
    """(y, expected): the learner's output in a step of the scenario's `_step`, and that of
    torch's layer put in the same mode and run on x without gradients."""
    returned(step["train"])
    theirs.train(training)
    with torch.no_grad():
        expected = theirs(x)
    return _output(step["y"]), expected


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


def _mistakes(steps, gamma, beta, momentum, index: int, part: int):
    found = []
    for key, (name, hint) in _MISTAKES.items():
        wrong = _simulate(steps, gamma, beta, momentum, key)[index][part]
        found.append(KnownMistake(name, wrong, hint))
    return found


def _judge_sequence(t, steps, options: dict, seed: int) -> None:
    """Compare the outputs and buffers after every step of the scenario's `_sequence` with
    those of torch's layer on the same (training, x) steps (float32, as the modules are
    created)."""
    _check_module(t)
    theirs = scenarios.torch_layer(seed, **options)
    momentum = options.get("momentum", 0.1)
    gamma = theirs.weight.detach().double().numpy()
    beta = theirs.bias.detach().double().numpy()
    steps = [
        (training, np.asarray(torch.tensor(x, dtype=torch.float32).double()))
        for training, x in steps
    ]
    trained = 0
    for index, (training, x) in enumerate(steps):
        record = t["steps"][index]
        mode = "training" if training else "eval"
        xt = torch.tensor(x, dtype=torch.float32)
        y, expected = _stepped(record, theirs, training, xt)
        if not torch.equal(record["x_after"], xt):
            raise Failure(f"BatchNorm2d modified its input in place at {mode} step {index + 1}.")
        trained += training
        step = f"step {index + 1} ({mode} mode)"
        check_close(
            y,
            expected,
            f"The output at {step}",
            **F32_TOL,
            mistakes=_mistakes(steps, gamma, beta, momentum, index, 0),
        )
        for part, name in [(1, "running_mean"), (2, "running_var")]:
            check_close(
                _buffer(record[name], name),
                getattr(theirs, name),
                f"{name} after {step}",
                **F32_TOL,
                mistakes=_mistakes(steps, gamma, beta, momentum, index, part),
            )
        count = _buffer(record["num_batches_tracked"], "num_batches_tracked")
        if count.numel() != 1 or int(count) != trained:
            raise Failure(
                f"num_batches_tracked is {count.tolist()} after {step}, expected {trained}: "
                "it counts the training-mode forward passes (add 1 in each)."
            )


@graded(scenarios.module_parameters_and_buffers)
def check_module_parameters_and_buffers(t) -> None:
    """Names, shapes, dtypes and initial values; buffers registered; state_dict keys."""
    _check_made(t["made"])
    params = returned(t["parameters"])
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
    buffers = returned(t["buffers"])
    for name, fill, dtype in [
        ("running_mean", 0.0, torch.float32),
        ("running_var", 1.0, torch.float32),
        ("num_batches_tracked", 0, torch.long),
    ]:
        if name not in buffers:
            plain = " It is a plain attribute:" if returned(t["has"][name]) is True else ""
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
    keys = set(returned(t["keys"]))
    if keys != expected_keys:
        raise Failure(f"state_dict has keys {sorted(keys)}, expected {sorted(expected_keys)}.")
    _check_made(t["custom"]["made"])
    for name, value in [("num_features", 4), ("eps", 1e-3), ("momentum", 0.3)]:
        if returned(t["custom"][name]) != value:
            raise Failure(
                f"BatchNorm2d(4, eps=1e-3, momentum=0.3) should store {name} = {value} as "
                f"an attribute, as torch.nn.BatchNorm2d does."
            )


def _loadable(state):
    """The learner's recorded state_dict as load_state_dict received it: its entries, with
    the metadata (versions) it carried if it is a mapping."""
    entries = state["entries"]
    if not isinstance(entries, dict):
        return entries
    entries = collections.OrderedDict(entries)
    entries._metadata = state["metadata"]
    return entries


@graded(scenarios.module_state_dict_round_trip)
def check_module_state_dict_round_trip(t) -> None:
    """torch's state_dict loads into the learner's module and the other way round."""
    theirs, x, training = scenarios.state_dict_inputs()
    _check_made(t["made"])
    returned(t["load"])
    returned(t["eval"])
    theirs.eval()
    with torch.no_grad():
        expected = theirs(torch.tensor(x, dtype=torch.float32))
    check_close(
        _output(t["y"]),
        expected,
        "The eval-mode output after loading torch.nn.BatchNorm2d's state_dict",
        **F32_TOL,
    )
    returned(t["train"])
    for index in range(len(training)):
        _output(t["training"][index])
    state = _loadable(returned(t["state_dict"]))
    fresh = torch.nn.BatchNorm2d(CHANNELS)
    try:
        fresh.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise Failure(
            "torch.nn.BatchNorm2d cannot load your module's state_dict: " + first
        ) from None
    for name, value in state.items():
        if not torch.equal(fresh.state_dict()[name], value):
            raise Failure(f"state_dict entry {name} did not survive a round trip.")


@graded(scenarios.module_training_steps)
def check_module_training_steps(t) -> None:
    """Outputs and buffers over three training steps, compared with torch."""
    _judge_sequence(t, *scenarios.training_steps_inputs())


@graded(scenarios.module_train_eval_sequence)
def check_module_train_eval_sequence(t) -> None:
    """Alternating train and eval steps, including an eval batch of one image."""
    _judge_sequence(t, *scenarios.train_eval_inputs())


@graded(scenarios.module_momentum_none)
def check_module_momentum_none(t) -> None:
    """momentum=None: running statistics are the cumulative average of the batches."""
    _judge_sequence(t, *scenarios.momentum_none_inputs())


@graded(scenarios.module_mode_follows_training_flag)
def check_module_mode_follows_training_flag(t) -> None:
    """The mode comes from self.training, whatever the grad mode."""
    hint = (
        "Choose batch or running statistics with self.training, which .train() and "
        ".eval() set; gradients can be off during training and on in eval."
    )
    name = "the mode chosen by the grad mode (torch.is_grad_enabled()) rather than self.training"
    for index, (training, grad) in enumerate(scenarios.MODE_CASES):
        case = t["cases"][index]
        _, x, theirs = scenarios.mode_inputs()  # torch's layer, with running statistics
        _check_module(case)
        returned(case["load"])
        loaded = [theirs.running_mean.double().numpy(), theirs.running_var.double().numpy()]
        xt = torch.tensor(x, dtype=torch.float32, requires_grad=grad)
        y, expected = _stepped(case, theirs, training, xt)
        gamma = theirs.weight.detach().double().numpy()
        beta = theirs.bias.detach().double().numpy()
        xd = np.asarray(xt.detach().double())
        if training:
            setting = "in training mode under torch.no_grad()"
            updated = [
                np.asarray(_buffer(case[key], key).double())
                for key in ("running_mean", "running_var")
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
            _buffer(case["running_mean"], "running_mean"),
            theirs.running_mean,
            f"running_mean after a forward pass {setting}",
            **F32_TOL,
        )


@graded(scenarios.module_rejects_one_value_per_channel)
def check_module_rejects_one_value_per_channel(t) -> None:
    """Training with one value per channel raises ValueError; N = 1 with H*W > 1 works."""
    _, _, seed, steps = scenarios.one_value_inputs()
    _check_module(t["first"])
    returned(t["train"])
    error = t["single"]
    if error is None:
        raise Failure(
            "In training mode, BatchNorm2d accepted a batch with one value per channel "
            "(N = 1, H = W = 1): the batch variance of one value is 0, so raise ValueError "
            "as torch.nn.BatchNorm2d does (batch of one not rejected)."
        )
    if error["value_error"] is not True:
        raise Failure(
            "In training mode, a batch with one value per channel should raise ValueError, "
            f"but BatchNorm2d raised {error['type']}."
        )
    _check_module(t["second"])
    theirs = scenarios.torch_layer(seed)
    for index, (training, x) in enumerate(steps):
        xt = torch.tensor(x, dtype=torch.float32)
        y, expected = _stepped(t["steps"][index], theirs, training, xt)
        shape = "N = 1, H = W = 1, eval mode" if not training else "N = 1, H*W = 6, training"
        check_close(y, expected, f"The output for a batch with {shape}", **F32_TOL)


@graded(scenarios.module_built_on_function)
def check_module_built_on_function(t) -> None:
    """Training mode goes through BatchNormFunction; gradients match torch's."""
    seed, x, dy = scenarios.built_on_function_inputs()
    _check_module(t)
    _check_refused(t["y"])
    _output(t["y"])
    if t["from_function"] is not True:
        raise Failure(
            "In training mode, BatchNorm2d's output does not come from "
            "BatchNormFunction: build the module on BatchNormFunction.apply."
        )
    grads = returned(t["grads"])
    theirs = scenarios.torch_layer(seed)
    xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    expected = torch.autograd.grad(theirs(xt), (xt, theirs.weight, theirs.bias), dy)
    for grad, ref, name in zip(grads, expected, ("x", "weight", "bias"), strict=True):
        if grad is None:
            raise Failure(f"No gradient reaches {name} through BatchNorm2d.")
        check_close(grad, ref, f"The gradient for {name} through BatchNorm2d", **F32_TOL)


@graded(scenarios.module_options)
def check_module_options(t) -> None:
    """affine=False and track_running_stats=False behave as in torch."""
    seed, options, steps = scenarios.options_inputs()
    for index, kwargs in enumerate(options):
        shown = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        case = t["cases"][index]
        _check_module(case, affine=kwargs.get("affine", True))
        theirs = scenarios.torch_layer(seed, **kwargs)
        keys, expected_keys = set(returned(case["keys"])), set(theirs.state_dict())
        if keys != expected_keys:
            raise Failure(
                f"With {shown}, state_dict has keys {sorted(keys)}, expected "
                f"{sorted(expected_keys)}."
            )
        for step_index, (training, x) in enumerate(steps):
            xt = torch.tensor(x, dtype=torch.float32)
            y, expected = _stepped(case["steps"][step_index], theirs, training, xt)
            mode = "training" if training else "eval"
            check_close(y, expected, f"The output with {shown} in {mode} mode", **F32_TOL)
