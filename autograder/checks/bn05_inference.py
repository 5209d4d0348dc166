"""Checks for bn05_inference: folding, recalibration and evaluation with batch norm.

Each check is a verdict on the transcript of its scenario in
`autograder.scenarios.bn05_inference`, which ran the learner's function; the verdict
regenerates the scenario's modules and data with the same builders. Folding is judged by
running PyTorch's own conv and batch-norm layers in eval mode on the same input, and the
recorded output must be what the returned conv's recorded tensors compute here;
recalibration against population statistics computed here from each layer's inputs;
evaluation against the accuracy of an eval-mode copy of the model. Known wrong variants
are computed on the same inputs to name the mistake.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from autograder.checks.core import (
    Failure,
    KnownMistake,
    Unreadable,
    check_close,
    graded,
    learner_type,
    returned,
)
from autograder.scenarios import bn05_inference as scenarios

F64_TOL = {"rtol": 1e-7, "atol": 1e-9}
F32_TOL = {"rtol": 1e-4, "atol": 1e-5}


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _flag(value) -> bool:
    """A yes/no observation of a scenario; anything but a bool is a malformed transcript."""
    if not isinstance(value, bool):
        raise Unreadable(f"expected a bool, got a {type(value).__name__}")
    return value


# ---------------------------------------------------------------------------- folding


def _variant(
    conv, bn, x, eps_outside=False, keep_bias=True, keep_beta=True, center=True, use_sqrt=True
):
    """The output of conv then bn folded with one mistake (all flags default: correct)."""
    with torch.no_grad():
        rv, eps = bn.running_var, bn.eps
        std = torch.sqrt(rv) + eps if eps_outside else torch.sqrt(rv + eps)
        if not use_sqrt:
            std = rv + eps
        scale = bn.weight / std
        weight = conv.weight * scale.reshape(-1, 1, 1, 1)
        bias = conv.bias if (conv.bias is not None and keep_bias) else torch.zeros_like(rv)
        shift = (bias - (bn.running_mean if center else 0.0)) * scale
        if keep_beta:
            shift = shift + bn.bias
        y = F.conv2d(x, weight, shift, conv.stride, conv.padding, conv.dilation, conv.groups)
    return y.double().numpy()


def _fold_mistakes(conv, bn, x) -> list[KnownMistake]:
    where = "Look at how the scale and the new bias are computed."
    mistakes = [
        KnownMistake(
            "eps added outside the square root",
            _variant(conv, bn, x, eps_outside=True),
            "The scale is gamma / sqrt(running_var + eps). " + where,
        ),
        KnownMistake(
            "a scale without the square root",
            _variant(conv, bn, x, use_sqrt=False),
            "Divide by the standard deviation sqrt(running_var + eps). " + where,
        ),
        KnownMistake(
            "beta (bn.bias) left out of the folded bias",
            _variant(conv, bn, x, keep_beta=False),
            "The folded bias is (conv_bias - running_mean) * scale + beta. " + where,
        ),
        KnownMistake(
            "running_mean left out of the folded bias",
            _variant(conv, bn, x, center=False),
            "The folded bias is (conv_bias - running_mean) * scale + beta. " + where,
        ),
    ]
    if conv.bias is not None:
        mistakes.append(
            KnownMistake(
                "the convolution's bias dropped",
                _variant(conv, bn, x, keep_bias=False),
                "The conv's own bias goes through the batch norm too: "
                "(conv_bias - running_mean) * scale + beta. " + where,
            )
        )
    return mistakes


def _folded(t) -> None:
    """Raise the failure of the folding call itself: its error, or a result not a Conv2d."""
    returned(t["fold"])
    if not _flag(t["is_conv2d"]):
        raise Failure(
            f"fold_batchnorm_into_conv should return a torch.nn.Conv2d, got a {t['type']}."
        )


def _check_recorded_conv(conv, x, y, tol) -> None:
    """`y`, the recorded output of the folded conv, must be what its recorded settings and
    tensors compute here; if not, the scenario's observations contradict each other."""
    if conv["padding_mode"] != "zeros":
        raise Unreadable(f"the folded convolution pads with {conv['padding_mode']!r}")
    with torch.no_grad():
        settings = [conv[name] for name in ("stride", "padding", "dilation", "groups")]
        computed = F.conv2d(x, conv["weight"], conv["bias"], *settings)
    try:
        check_close(y, computed, "the recorded output of the folded convolution", **tol)
    except Failure as failure:
        raise Unreadable(str(failure)) from None


def _check_fold(t, inputs, setting: str, tol) -> None:
    conv, bn, x = inputs
    with torch.no_grad():
        expected = bn(conv(x))
    _folded(t)
    y = returned(t["y"])
    check_close(
        y,
        expected,
        f"The output of the folded convolution ({setting})",
        **tol,
        mistakes=_fold_mistakes(conv, bn, x),
    )
    _check_recorded_conv(t["conv"], x, y, tol)


@graded(scenarios.fold_matches_eval)
def check_fold_matches_eval(t) -> None:
    """conv with bias, then bn: the folded conv gives the same output (float64)."""
    inputs = scenarios.fold_matches_eval_inputs()
    _check_fold(t, inputs, "float64, conv with a bias", F64_TOL)


@graded(scenarios.fold_without_conv_bias)
def check_fold_without_conv_bias(t) -> None:
    """conv without bias (as before a batch norm), float32: the folded conv needs one."""
    inputs = scenarios.fold_without_conv_bias_inputs()
    _check_fold(t, inputs, "float32, conv without a bias", F32_TOL)


@graded(scenarios.fold_keeps_conv_settings)
def check_fold_keeps_conv_settings(t) -> None:
    """stride, padding and dilation of the convolution are kept."""
    inputs = scenarios.fold_keeps_conv_settings_inputs()
    _check_fold(t, inputs, "stride 2, padding 2, dilation 2", F64_TOL)


@graded(scenarios.fold_leaves_inputs_unchanged)
def check_fold_leaves_inputs_unchanged(t) -> None:
    """conv and bn are not modified, and the result shares no parameter with conv."""
    conv, bn, _ = scenarios.fold_leaves_inputs_unchanged_inputs()
    _folded(t)
    if not (
        _same_state(t["conv_state"], scenarios.state(conv))
        and _same_state(t["bn_state"], scenarios.state(bn))
    ):
        raise Failure(
            "fold_batchnorm_into_conv modified conv or bn: build a new Conv2d (for example "
            "from copy.deepcopy(conv)) and leave the originals as they were."
        )
    if _flag(t["is_conv"]) or _flag(t["shares_weight"]):
        raise Failure(
            "fold_batchnorm_into_conv returned conv itself or a conv sharing its weight: "
            "return a new Conv2d with its own tensors."
        )
    if t["conv_training"] or t["bn_training"]:
        raise Failure("fold_batchnorm_into_conv changed the mode of conv or bn.")


@graded(scenarios.fold_rejects_training_mode)
def check_fold_rejects_training_mode(t) -> None:
    """Folding a bn or conv in training mode raises ValueError."""
    for which, record in zip(scenarios.FOLD_IN_TRAINING_MODE, t, strict=True):
        if _flag(record["value_error"]):
            continue
        if record["raised"] is not None:
            raise Failure(
                f"With {which} in training mode, fold_batchnorm_into_conv should raise "
                f"ValueError, but it raised {record['raised']}."
            )
        raise Failure(
            f"fold_batchnorm_into_conv accepted {which} in training mode: folding is only "
            "valid in eval mode, where the batch norm is a fixed affine map; raise ValueError."
        )


# ---------------------------------------------------------------------- recalibration


def _batch_statistics(model, batches):
    """Per batch-norm layer, the list of (mean, unbiased var) of its input per batch, with
    the model in training mode (earlier layers normalize with batch statistics)."""
    twin = copy.deepcopy(model).train()
    layers = scenarios.batchnorm_layers(twin)
    stats = {i: [] for i in range(len(layers))}

    def hook(index):
        def record(module, inputs, output):
            x = inputs[0].double()
            stats[index].append((x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), correction=1)))

        return record

    for i, layer in enumerate(layers):
        layer.register_forward_hook(hook(i))
    with torch.no_grad():
        for x in batches:
            twin(x)
    return [stats[i] for i in range(len(layers))]


def _averaged(batch_stats, start=None, momentum=None, start_count=0):
    """Running statistics after the batches: cumulative (momentum None) or EMA."""
    mean, var = (torch.zeros_like(batch_stats[0][0]), torch.ones_like(batch_stats[0][1]))
    if start is not None:
        mean, var = start
    for k, (m, v) in enumerate(batch_stats, start=1):
        factor = 1.0 / (start_count + k) if momentum is None else momentum
        mean, var = (1 - factor) * mean + factor * m, (1 - factor) * var + factor * v
    return mean.numpy(), var.numpy()


def _recalibration_mistakes(batch_stats, before):
    """Wrong running (mean, var) a learner could produce; `before` is the layer's
    (running_mean, running_var, num_batches_tracked, momentum) before recalibration."""
    start = (before[0].double(), before[1].double())
    count, momentum = int(before[2]), before[3]
    hint = (
        "Reset each batch-norm layer's statistics (reset_running_stats), set momentum=None "
        "for a cumulative average, and run the batches in training mode."
    )
    variants = [
        (
            "an exponential moving average instead of a cumulative one",
            _averaged(batch_stats, start, momentum),
        ),
        (
            "an exponential moving average after resetting the statistics",
            _averaged(batch_stats, None, momentum),
        ),
        (
            "a cumulative average that continues the old statistics instead of restarting",
            _averaged(batch_stats, start, None, count),
        ),
        (
            "statistics that were not updated (the batches ran in eval mode?)",
            (start[0].numpy(), start[1].numpy()),
        ),
        (
            "statistics reset and then not updated (the batches ran in eval mode?)",
            (np.zeros(len(start[0])), np.ones(len(start[1]))),
        ),
    ]
    return [
        [KnownMistake(name, values[part], hint) for name, values in variants] for part in (0, 1)
    ]


@graded(scenarios.recalibrate_population_statistics)
def check_recalibrate_population_statistics(t) -> None:
    """After recalibration every bn holds the cumulative average of its batch statistics."""
    model, batches = scenarios.recalibrate_population_statistics_inputs()
    expected = _batch_statistics(model, batches)
    before = [
        (m.running_mean, m.running_var, m.num_batches_tracked, m.momentum)
        for m in scenarios.batchnorm_layers(model)
    ]
    returned(t["call"])
    for index in range(len(before)):
        recorded = t["statistics"][index]
        mean, var = _averaged(expected[index])
        mistakes = _recalibration_mistakes(expected[index], before[index])
        for name, value, part in [("running_mean", mean, 0), ("running_var", var, 1)]:
            check_close(
                recorded[name],
                value,
                f"{name} of batch-norm layer {index + 1} after recalibration",
                **F32_TOL,
                mistakes=mistakes[part],
            )


@graded(scenarios.recalibrate_restores_momentum_and_mode)
def check_recalibrate_restores_momentum_and_mode(t) -> None:
    """momentum of every bn and the mode of every module are as before."""
    for training, record in zip(scenarios.RECALIBRATE_MODES, t, strict=True):
        model, _ = scenarios.recalibrate_restores_momentum_and_mode_inputs(training)
        modes = {name: m.training for name, m in model.named_modules()}
        momenta = [m.momentum for m in scenarios.batchnorm_layers(model)]
        returned(record["call"])
        after = record["momenta"]
        if after != momenta:
            raise Failure(
                f"recalibrate_batchnorm did not restore momentum: it was {momenta} and is "
                f"{after} afterwards. Save each layer's momentum and put it back."
            )
        changed = [name or "the model" for name, mode in record["modes"] if mode != modes[name]]
        if changed:
            mode = "training" if training else "eval"
            raise Failure(
                f"recalibrate_batchnorm did not restore the mode of the model (given in {mode} "
                f"mode): it changed {', '.join(changed)}. Save every module's mode and "
                "restore it."
            )


@graded(scenarios.recalibrate_leaves_parameters)
def check_recalibrate_leaves_parameters(t) -> None:
    """Recalibration changes buffers only: parameters keep their values."""
    model, _ = scenarios.recalibrate_leaves_parameters_inputs()
    before = {k: v.detach() for k, v in model.named_parameters()}
    returned(t["call"])
    for name, value in t["parameters"]:
        if not torch.equal(value.detach(), before[name]):
            raise Failure(
                f"recalibrate_batchnorm changed the parameter {name}: only the running "
                "statistics may change."
            )


# ------------------------------------------------------------------------- evaluation


def _accuracies(model, x, y) -> tuple[float, float]:
    twin = copy.deepcopy(model)
    with torch.no_grad():
        eval_acc = (twin.eval()(x).argmax(dim=1) == y).double().mean().item()
        train_acc = (twin.train()(x).argmax(dim=1) == y).double().mean().item()
    return eval_acc, train_acc


def _evaluate(outcome) -> float:
    """The accuracy evaluate returned, as a float; raise `Failure` if it is not one."""
    result = returned(outcome)
    if isinstance(result, torch.Tensor):
        raise Failure("evaluate returned a tensor: return a Python float (use .item()).")
    try:
        return float(result)
    except (TypeError, ValueError):
        raise Failure(f"evaluate should return a float, got a {learner_type(result)}.") from None


def _check_accuracy(t, inputs, setting: str) -> None:
    model, x, y = inputs
    eval_acc, train_acc = _accuracies(model, x, y)
    acc = _evaluate(t["accuracy"])
    mistakes = []
    if train_acc != eval_acc:
        mistakes.append(
            KnownMistake(
                "the model ran in training mode (forgot model.eval())",
                train_acc,
                "In training mode, batch norm uses the statistics of the evaluated batch and "
                "updates its running statistics.",
            )
        )
    mistakes.append(
        KnownMistake(
            "a percentage instead of a fraction",
            100 * eval_acc,
            "Return the fraction of correct predictions, between 0 and 1.",
        )
    )
    check_close(
        np.float64(acc),
        eval_acc,
        f"The accuracy of a model given in {setting}",
        rtol=0,
        atol=1e-9,
        mistakes=mistakes,
    )


@graded(scenarios.evaluate_accuracy)
def check_evaluate_accuracy(t) -> None:
    """The accuracy of a model given in eval mode."""
    _check_accuracy(t, scenarios.evaluate_accuracy_inputs(), "eval mode")


@graded(scenarios.evaluate_model_in_training_mode)
def check_evaluate_model_in_training_mode(t) -> None:
    """A model given in training mode is evaluated with its running statistics."""
    _check_accuracy(t, scenarios.evaluate_model_in_training_mode_inputs(), "training mode")


@graded(scenarios.evaluate_leaves_buffers)
def check_evaluate_leaves_buffers(t) -> None:
    """Evaluation changes no buffer (running statistics, num_batches_tracked)."""
    model, _, _ = scenarios.evaluate_leaves_buffers_inputs()
    before = scenarios.state(model)
    _evaluate(t["accuracy"])
    changed = [k for k, v in t["state"].items() if not torch.equal(v, before[k])]
    if changed:
        raise Failure(
            f"evaluate changed {', '.join(changed)}: in training mode, batch norm updates "
            "its running statistics on every forward pass. Switch to eval mode (forgot "
            "model.eval()?)."
        )


@graded(scenarios.evaluate_restores_mode)
def check_evaluate_restores_mode(t) -> None:
    """The model is in the same mode afterwards, training or eval."""
    for training, record in zip(scenarios.EVALUATE_MODES, t, strict=True):
        _evaluate(record["accuracy"])
        if set(record["modes"]) != {training}:
            given = "training" if training else "eval"
            raise Failure(
                f"After evaluate, a model given in {given} mode is no longer in {given} "
                "mode: restore the mode it had (for example with model.train(was_training))."
            )
