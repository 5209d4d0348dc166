"""Checks for bn05_inference: folding, recalibration and evaluation with batch norm.

Folding is judged by running PyTorch's own conv and batch-norm layers in eval mode on the
same input; recalibration against population statistics computed here from each layer's
inputs; evaluation against the accuracy of an eval-mode copy of the model. Known wrong
variants are computed on the same inputs to name the mistake.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F

from autograder.checks.core import (
    Failure,
    KnownMistake,
    call_learner,
    check_close,
    learner_check,
)

F64_TOL = {"rtol": 1e-7, "atol": 1e-9}
F32_TOL = {"rtol": 1e-4, "atol": 1e-5}
_BatchNorm = torch.nn.modules.batchnorm._BatchNorm


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _state(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------------------- folding


def _conv_bn(seed: int, bias: bool, dtype=torch.float64, stride=1, padding=1, dilation=1):
    """A conv (4 -> 3 channels) and a trained-looking BatchNorm2d, both in eval mode.

    Channel 0 of the batch norm has a running variance of 1e-6, close to eps.
    """
    gen = _generator(seed)
    conv = torch.nn.Conv2d(
        4, 3, 3, stride=stride, padding=padding, dilation=dilation, bias=bias, dtype=dtype
    )
    bn = torch.nn.BatchNorm2d(3, dtype=dtype)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen, dtype=dtype))
        if bias:
            conv.bias.copy_(torch.randn(3, generator=gen, dtype=dtype) + 2.0)
        bn.weight.copy_(torch.rand(3, generator=gen, dtype=dtype) + 0.5)
        bn.bias.copy_(torch.randn(3, generator=gen, dtype=dtype))
        bn.running_mean.copy_(torch.randn(3, generator=gen, dtype=dtype) * 3.0)
        bn.running_var.copy_(torch.tensor([1e-6, 0.5, 4.0], dtype=dtype))
    conv.eval()
    bn.eval()
    x = torch.randn(2, 4, 7, 6, generator=gen, dtype=dtype)
    return conv, bn, x


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


def _fold(fn, conv, bn):
    fused = call_learner(fn, conv, bn, what="fold_batchnorm_into_conv")
    if not isinstance(fused, torch.nn.Conv2d):
        raise Failure(
            f"fold_batchnorm_into_conv should return a torch.nn.Conv2d, got a "
            f"{type(fused).__name__}."
        )
    return fused


def _check_fold(fn, conv, bn, x, setting: str, tol) -> None:
    with torch.no_grad():
        expected = bn(conv(x))
        fused = _fold(fn, conv, bn)
        y = call_learner(fused, x, what="the folded convolution")
    check_close(
        y,
        expected,
        f"The output of the folded convolution ({setting})",
        **tol,
        mistakes=_fold_mistakes(conv, bn, x),
    )


@learner_check
def check_fold_matches_eval(fn) -> None:
    """conv with bias, then bn: the folded conv gives the same output (float64)."""
    conv, bn, x = _conv_bn(100, bias=True)
    _check_fold(fn, conv, bn, x, "float64, conv with a bias", F64_TOL)


@learner_check
def check_fold_without_conv_bias(fn) -> None:
    """conv without bias (as before a batch norm), float32: the folded conv needs one."""
    conv, bn, x = _conv_bn(101, bias=False, dtype=torch.float32)
    _check_fold(fn, conv, bn, x, "float32, conv without a bias", F32_TOL)


@learner_check
def check_fold_keeps_conv_settings(fn) -> None:
    """stride, padding and dilation of the convolution are kept."""
    conv, bn, x = _conv_bn(102, bias=True, stride=2, padding=2, dilation=2)
    _check_fold(fn, conv, bn, x, "stride 2, padding 2, dilation 2", F64_TOL)


@learner_check
def check_fold_leaves_inputs_unchanged(fn) -> None:
    """conv and bn are not modified, and the result shares no parameter with conv."""
    conv, bn, x = _conv_bn(103, bias=True)
    before_conv, before_bn = _state(conv), _state(bn)
    with torch.no_grad():
        fused = _fold(fn, conv, bn)
    if not (_same_state(_state(conv), before_conv) and _same_state(_state(bn), before_bn)):
        raise Failure(
            "fold_batchnorm_into_conv modified conv or bn: build a new Conv2d (for example "
            "from copy.deepcopy(conv)) and leave the originals as they were."
        )
    if fused is conv or fused.weight.data_ptr() == conv.weight.data_ptr():
        raise Failure(
            "fold_batchnorm_into_conv returned conv itself or a conv sharing its weight: "
            "return a new Conv2d with its own tensors."
        )
    if conv.training or bn.training:
        raise Failure("fold_batchnorm_into_conv changed the mode of conv or bn.")


@learner_check
def check_fold_rejects_training_mode(fn) -> None:
    """Folding a bn or conv in training mode raises ValueError."""
    for which in ("bn", "conv"):
        conv, bn, _ = _conv_bn(104, bias=True)
        (bn if which == "bn" else conv).train()
        try:
            fn(conv, bn)
        except ValueError:
            continue
        except Exception as err:  # noqa: BLE001 (any other error is the learner's)
            raise Failure(
                f"With {which} in training mode, fold_batchnorm_into_conv should raise "
                f"ValueError, but it raised {type(err).__name__}."
            ) from None
        raise Failure(
            f"fold_batchnorm_into_conv accepted {which} in training mode: folding is only "
            "valid in eval mode, where the batch norm is a fixed affine map; raise ValueError."
        )


# ---------------------------------------------------------------------- recalibration


def _small_model(seed: int) -> torch.nn.Sequential:
    """conv -> bn -> relu -> conv -> bn(momentum 0.05), with non-trivial running stats."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = torch.nn.Sequential(
            torch.nn.Conv2d(2, 4, 3, padding=1),
            torch.nn.BatchNorm2d(4),
            torch.nn.ReLU(),
            torch.nn.Conv2d(4, 3, 3),
            torch.nn.BatchNorm2d(3, momentum=0.05),
        )
        model.train()
        with torch.no_grad():
            for _ in range(3):
                model(torch.randn(5, 2, 6, 6) * 2.0 + 1.0)
    return model


def _batches(seed: int, sizes=(4, 2, 6, 3)) -> list[torch.Tensor]:
    gen = _generator(seed)
    return [torch.randn(n, 2, 6, 6, generator=gen) * 1.5 - 0.5 for n in sizes]


def _batch_statistics(model, batches):
    """Per batch-norm layer, the list of (mean, unbiased var) of its input per batch, with
    the model in training mode (earlier layers normalize with batch statistics)."""
    twin = copy.deepcopy(model).train()
    layers = [m for m in twin.modules() if isinstance(m, _BatchNorm)]
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


def _recalibrate(fn, model, batches) -> None:
    call_learner(fn, model, iter(batches), what="recalibrate_batchnorm")


@learner_check
def check_recalibrate_population_statistics(fn) -> None:
    """After recalibration every bn holds the cumulative average of its batch statistics."""
    model = _small_model(200).eval()
    batches = _batches(201)
    expected = _batch_statistics(model, batches)
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    before = [
        (m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone(), m.momentum)
        for m in layers
    ]
    _recalibrate(fn, model, batches)
    for index, layer in enumerate(layers):
        mean, var = _averaged(expected[index])
        mistakes = _recalibration_mistakes(expected[index], before[index])
        for name, value, part in [("running_mean", mean, 0), ("running_var", var, 1)]:
            check_close(
                getattr(layer, name),
                value,
                f"{name} of batch-norm layer {index + 1} after recalibration",
                **F32_TOL,
                mistakes=mistakes[part],
            )


@learner_check
def check_recalibrate_restores_momentum_and_mode(fn) -> None:
    """momentum of every bn and the mode of every module are as before."""
    for training in (False, True):
        model = _small_model(210).train(training)
        model[2].train(not training)  # a module whose mode differs from the model's
        modes = {name: m.training for name, m in model.named_modules()}
        momenta = [m.momentum for m in model.modules() if isinstance(m, _BatchNorm)]
        _recalibrate(fn, model, _batches(211))
        after = [m.momentum for m in model.modules() if isinstance(m, _BatchNorm)]
        if after != momenta:
            raise Failure(
                f"recalibrate_batchnorm did not restore momentum: it was {momenta} and is "
                f"{after} afterwards. Save each layer's momentum and put it back."
            )
        changed = [
            name or "the model" for name, m in model.named_modules() if m.training != modes[name]
        ]
        if changed:
            mode = "training" if training else "eval"
            raise Failure(
                f"recalibrate_batchnorm did not restore the mode of the model (given in {mode} "
                f"mode): it changed {', '.join(changed)}. Save every module's mode and "
                "restore it."
            )


@learner_check
def check_recalibrate_leaves_parameters(fn) -> None:
    """Recalibration changes buffers only: parameters keep their values."""
    model = _small_model(220).eval()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    _recalibrate(fn, model, _batches(221))
    for name, value in model.named_parameters():
        if not torch.equal(value.detach(), before[name]):
            raise Failure(
                f"recalibrate_batchnorm changed the parameter {name}: only the running "
                "statistics may change."
            )


# ------------------------------------------------------------------------- evaluation


def _classifier(seed: int):
    """A small classifier whose running statistics differ from any batch's, and data on
    which eval-mode and training-mode predictions disagree."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, padding=1),
            torch.nn.BatchNorm2d(4),
            torch.nn.ReLU(),
            torch.nn.Flatten(),
            torch.nn.Linear(4 * 4 * 4, 3),
        )
        with torch.no_grad():
            model[1].running_mean.copy_(torch.randn(4) * 0.5)
            model[1].running_var.copy_(torch.rand(4) + 0.5)
            model[1].num_batches_tracked.fill_(7)
        x = torch.randn(16, 1, 4, 4) + 0.5
        model.eval()
        with torch.no_grad():
            labels = model(x).argmax(dim=1)
        y = labels.clone()
        y[:4] = (labels[:4] + 1) % 3  # eval-mode accuracy: 12 / 16
    return model, x, y


def _accuracies(model, x, y) -> tuple[float, float]:
    twin = copy.deepcopy(model)
    with torch.no_grad():
        eval_acc = (twin.eval()(x).argmax(dim=1) == y).double().mean().item()
        train_acc = (twin.train()(x).argmax(dim=1) == y).double().mean().item()
    return eval_acc, train_acc


def _evaluate(fn, model, x, y) -> float:
    result = call_learner(fn, model, x, y, what="evaluate")
    if isinstance(result, torch.Tensor):
        raise Failure("evaluate returned a tensor: return a Python float (use .item()).")
    try:
        return float(result)
    except (TypeError, ValueError):
        raise Failure(f"evaluate should return a float, got a {type(result).__name__}.") from None


def _check_accuracy(fn, model, x, y, setting: str) -> None:
    eval_acc, train_acc = _accuracies(model, x, y)
    acc = _evaluate(fn, model, x, y)
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


@learner_check
def check_evaluate_accuracy(fn) -> None:
    """The accuracy of a model given in eval mode."""
    model, x, y = _classifier(300)
    _check_accuracy(fn, model.eval(), x, y, "eval mode")


@learner_check
def check_evaluate_model_in_training_mode(fn) -> None:
    """A model given in training mode is evaluated with its running statistics."""
    model, x, y = _classifier(301)
    _check_accuracy(fn, model.train(), x, y, "training mode")


@learner_check
def check_evaluate_leaves_buffers(fn) -> None:
    """Evaluation changes no buffer (running statistics, num_batches_tracked)."""
    model, x, y = _classifier(302)
    model.train()
    before = _state(model)
    _evaluate(fn, model, x, y)
    changed = [k for k, v in _state(model).items() if not torch.equal(v, before[k])]
    if changed:
        raise Failure(
            f"evaluate changed {', '.join(changed)}: in training mode, batch norm updates "
            "its running statistics on every forward pass. Switch to eval mode (forgot "
            "model.eval()?)."
        )


@learner_check
def check_evaluate_restores_mode(fn) -> None:
    """The model is in the same mode afterwards, training or eval."""
    for training in (True, False):
        model, x, y = _classifier(303)
        model.train(training)
        _evaluate(fn, model, x, y)
        modes = {m.training for m in model.modules()}
        if modes != {training}:
            given = "training" if training else "eval"
            raise Failure(
                f"After evaluate, a model given in {given} mode is no longer in {given} "
                "mode: restore the mode it had (for example with model.train(was_training))."
            )
