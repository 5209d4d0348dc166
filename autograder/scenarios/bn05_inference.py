"""Scenarios for bn05_inference: folding, recalibration and evaluation with batch norm.

Each scenario builds its modules and data from fixed seeds (the `*_inputs` builders, which
the verdicts in `autograder.checks.bn05_inference` call again to regenerate them), calls the
learner's function and records what came back:

* folding: what `fold_batchnorm_into_conv` returned (its type, whether it is a Conv2d, its
  settings and tensors), the output of calling it on a fixed input, the state and mode of
  conv and bn afterwards, and whether the result is conv or shares its weight's storage;
* recalibration: the running statistics of the batch-norm layers, their momenta, the
  parameters and every module's mode after the call;
* evaluation: the returned value as it is, the model's state and every module's mode
  after the call.
"""

from __future__ import annotations

import torch

from autograder.scenarios.common import call, type_name

FOLD = "fold_batchnorm_into_conv"
RECALIBRATE = "recalibrate_batchnorm"
# The modules put in training mode, in turn, before folding.
FOLD_IN_TRAINING_MODE = ("bn", "conv")
# The modes (training?) a model is given in, in turn, to check that they are restored.
RECALIBRATE_MODES = (False, True)
EVALUATE_MODES = (True, False)
_BatchNorm = torch.nn.modules.batchnorm._BatchNorm


def batchnorm_layers(model) -> list:
    """The batch-norm layers of `model`, in `model.modules()` order."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


def state(module) -> dict:
    """A copy of the module's state dict (parameters and buffers)."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ---------------------------------------------------------------------------- folding


def conv_bn(seed: int, bias: bool, dtype=torch.float64, stride=1, padding=1, dilation=1):
    """A conv (4 -> 3 channels) and a trained-looking BatchNorm2d, both in eval mode, and
    an input for them. Channel 0 of the batch norm has a running variance of 1e-6, close
    to eps."""
    gen = torch.Generator().manual_seed(seed)
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


def _tensor(module, name: str):
    value = getattr(module, name, None)
    return value.detach().clone() if isinstance(value, torch.Tensor) else value


def _fold(fold_batchnorm_into_conv, conv, bn) -> tuple[object, dict]:
    """Fold conv and bn without autograd: the result, and its record for the transcript."""
    with torch.no_grad():
        outcome = call(fold_batchnorm_into_conv, conv, bn, what=FOLD)
    fused = outcome.get("value")
    record = {
        "fold": outcome,
        "type": type_name(fused),
        "is_conv2d": isinstance(fused, torch.nn.Conv2d),
    }
    return fused, record


def _fold_and_run(fold_batchnorm_into_conv, conv, bn, x) -> dict:
    """Fold, then run the result on x and record its output, settings and tensors."""
    fused, record = _fold(fold_batchnorm_into_conv, conv, bn)
    if record["is_conv2d"]:
        with torch.no_grad():
            record["y"] = call(fused, x, what="the folded convolution")
        settings = ("stride", "padding", "dilation", "groups", "padding_mode")
        record["conv"] = {name: getattr(fused, name, None) for name in settings}
        record["conv"].update(weight=_tensor(fused, "weight"), bias=_tensor(fused, "bias"))
    return record


def fold_matches_eval_inputs():
    return conv_bn(100, bias=True)


def fold_matches_eval(fold_batchnorm_into_conv):
    return _fold_and_run(fold_batchnorm_into_conv, *fold_matches_eval_inputs())


def fold_without_conv_bias_inputs():
    return conv_bn(101, bias=False, dtype=torch.float32)


def fold_without_conv_bias(fold_batchnorm_into_conv):
    return _fold_and_run(fold_batchnorm_into_conv, *fold_without_conv_bias_inputs())


def fold_keeps_conv_settings_inputs():
    return conv_bn(102, bias=True, stride=2, padding=2, dilation=2)


def fold_keeps_conv_settings(fold_batchnorm_into_conv):
    return _fold_and_run(fold_batchnorm_into_conv, *fold_keeps_conv_settings_inputs())


def fold_leaves_inputs_unchanged_inputs():
    return conv_bn(103, bias=True)


def fold_leaves_inputs_unchanged(fold_batchnorm_into_conv):
    conv, bn, _ = fold_leaves_inputs_unchanged_inputs()
    fused, record = _fold(fold_batchnorm_into_conv, conv, bn)
    weight, conv_weight = getattr(fused, "weight", None), getattr(conv, "weight", None)
    record.update(
        conv_state=state(conv),
        bn_state=state(bn),
        conv_training=conv.training,
        bn_training=bn.training,
        # In-process observations: the result is conv itself, or its weight uses the
        # same memory as conv's.
        is_conv=fused is conv,
        shares_weight=isinstance(weight, torch.Tensor)
        and isinstance(conv_weight, torch.Tensor)
        and weight.data_ptr() == conv_weight.data_ptr(),
    )
    return record


def _folding_in_training_mode(fold_batchnorm_into_conv, conv, bn) -> dict:
    """What folding did: the type of the error it raised (None if it returned) and whether
    that error is a ValueError (an in-process observation). Like `call`, but keeping the
    error's type rather than a message."""
    try:
        fold_batchnorm_into_conv(conv, bn)
    except (Exception, SystemExit) as err:  # noqa: BLE001 (any learner error is recorded)
        return {"raised": type_name(err), "value_error": isinstance(err, ValueError)}
    return {"raised": None, "value_error": False}


def fold_rejects_training_mode(fold_batchnorm_into_conv):
    records = []
    for which in FOLD_IN_TRAINING_MODE:
        conv, bn, _ = conv_bn(104, bias=True)
        (bn if which == "bn" else conv).train()
        records.append(_folding_in_training_mode(fold_batchnorm_into_conv, conv, bn))
    return records


# ---------------------------------------------------------------------- recalibration


def small_model(seed: int) -> torch.nn.Sequential:
    """conv -> bn -> relu -> conv -> bn(momentum 0.05), with non-trivial running stats,
    in training mode."""
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


def batches(seed: int, sizes=(4, 2, 6, 3)) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 2, 6, 6, generator=gen) * 1.5 - 0.5 for n in sizes]


def _recalibrate(recalibrate_batchnorm, model, data) -> dict:
    """Recalibrate; record the running statistics of the batch-norm layers found before the
    call, then the momenta, parameters and modes of the model as it is after it."""
    layers = batchnorm_layers(model)
    outcome = call(recalibrate_batchnorm, model, data, what=RECALIBRATE)
    return {
        "call": outcome,
        "statistics": [
            {name: _tensor(layer, name) for name in ("running_mean", "running_var")}
            for layer in layers
        ],
        "momenta": [getattr(layer, "momentum", None) for layer in batchnorm_layers(model)],
        "parameters": [(name, v.detach().clone()) for name, v in model.named_parameters()],
        "modes": [(name, m.training) for name, m in model.named_modules()],
    }


def recalibrate_population_statistics_inputs():
    return small_model(200).eval(), batches(201)


def recalibrate_population_statistics(recalibrate_batchnorm):
    model, data = recalibrate_population_statistics_inputs()
    return _recalibrate(recalibrate_batchnorm, model, iter(data))


def recalibrate_restores_momentum_and_mode_inputs(training: bool):
    model = small_model(210).train(training)
    model[2].train(not training)  # a module whose mode differs from the model's
    return model, batches(211)


def recalibrate_restores_momentum_and_mode(recalibrate_batchnorm):
    records = []
    for training in RECALIBRATE_MODES:
        model, data = recalibrate_restores_momentum_and_mode_inputs(training)
        records.append(_recalibrate(recalibrate_batchnorm, model, data))
    return records


def recalibrate_leaves_parameters_inputs():
    return small_model(220).eval(), batches(221)


def recalibrate_leaves_parameters(recalibrate_batchnorm):
    return _recalibrate(recalibrate_batchnorm, *recalibrate_leaves_parameters_inputs())


# ------------------------------------------------------------------------- evaluation


def classifier(seed: int):
    """A small classifier whose running statistics differ from any batch's, and data on
    which eval-mode and training-mode predictions disagree (the model is in eval mode)."""
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


def _evaluate(evaluate, model, x, y) -> dict:
    """Evaluate; record the returned value as it is, then the model's state and modes."""
    return {
        "accuracy": call(evaluate, model, x, y, what="evaluate"),
        "state": state(model),
        "modes": [m.training for m in model.modules()],
    }


def _given_in(training: bool, seed: int):
    model, x, y = classifier(seed)
    return model.train(training), x, y


def evaluate_accuracy_inputs():
    return _given_in(False, 300)


def evaluate_accuracy(evaluate):
    return _evaluate(evaluate, *evaluate_accuracy_inputs())


def evaluate_model_in_training_mode_inputs():
    return _given_in(True, 301)


def evaluate_model_in_training_mode(evaluate):
    return _evaluate(evaluate, *evaluate_model_in_training_mode_inputs())


def evaluate_leaves_buffers_inputs():
    return _given_in(True, 302)


def evaluate_leaves_buffers(evaluate):
    return _evaluate(evaluate, *evaluate_leaves_buffers_inputs())


def evaluate_restores_mode(evaluate):
    return [_evaluate(evaluate, *_given_in(training, 303)) for training in EVALUATE_MODES]
