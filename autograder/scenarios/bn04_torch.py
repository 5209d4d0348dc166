"""Scenarios for bn04_torch: the learner's BatchNormFunction and BatchNorm2d at work.

Each scenario builds its inputs with the builders below (fixed seeds; the verdicts in
`autograder.checks.bn04_torch` call the same builders), runs the learner's Function or
module on them and records what came back: outputs, gradients, the buffers after each
step, state_dict contents, what a constructor made and what forward raised. Recorded
tensors are copies, so later learner code cannot change what was recorded. A scenario
stops where a later step needs what a failed call did not give (a module, an output), and
after the first case or step in which a learner call raised: its verdict fails there.

Three observations can only be made in the learner's process and are recorded as seen:
which of torch's batch-norm and autograd functions the learner's code called (they are
replaced by functions that raise `ForbiddenCall` while it runs), whether an output's
autograd graph holds the learner's Function, and what `torch.autograd.gradcheck` returned.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from autograder.scenarios.common import call, type_name

EPS = 1e-5
CHANNELS = 3
BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
MODE_CASES = ((True, False), (False, True))  # (training, gradients enabled)


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


def _function_case(seed: int, dtype, four_d: bool = True) -> tuple[np.ndarray, ...]:
    """(x, gamma, beta) as float64 arrays holding values of `dtype`, the values the learner's
    Function sees: x is (N, C, H, W), or (N, C) unless `four_d`."""
    x = _images(seed, offset=1e4 if dtype == torch.float64 else 20.0)
    if not four_d:
        x = x[:, :, 0, 0]
    return tuple(np.asarray(torch.tensor(a, dtype=dtype).double()) for a in (x, *_affine(seed + 1)))


def function_forward_inputs() -> list[tuple[np.ndarray, ...]]:
    """(x, gamma, beta) for an NCHW and an (N, C) case, float64."""
    return [_function_case(0, torch.float64), _function_case(1, torch.float64, four_d=False)]


def function_float32_inputs() -> tuple[np.ndarray, ...]:
    """(x, gamma, beta) holding float32 values, NCHW."""
    return _function_case(2, torch.float32)


def function_backward_inputs() -> list[tuple[np.ndarray, ...]]:
    """(x, gamma, beta, dy) for an NCHW and an (N, C) case, float64."""
    cases = []
    for seed, four_d in [(3, True), (4, False)]:
        x, gamma, beta = _function_case(seed, torch.float64, four_d)
        dy = np.random.default_rng(seed + 10).standard_normal(x.shape)
        cases.append((x, gamma, beta, dy))
    return cases


def function_gradcheck_inputs() -> tuple[torch.Tensor, ...]:
    """Small float64 (x, gamma, beta) tensors that require gradients."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 2, 3)) * 2 + 1
    gamma = rng.uniform(0.5, 1.5, 3)
    beta = rng.standard_normal(3)
    return tuple(torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, gamma, beta))


def torch_layer(seed: int, **kwargs) -> torch.nn.BatchNorm2d:
    """torch.nn.BatchNorm2d(3, **kwargs) with the gamma and beta that the learner's module
    gets from `_paired(cls, seed, **kwargs)` (none with affine=False)."""
    layer = torch.nn.BatchNorm2d(CHANNELS, **kwargs)
    if kwargs.get("affine", True):
        with torch.no_grad():
            for param, value in zip((layer.weight, layer.bias), _affine(seed), strict=True):
                param.copy_(torch.as_tensor(value))
    return layer


def trained_torch_layer(seed: int, image_seeds, offset: float) -> torch.nn.BatchNorm2d:
    """`torch_layer(seed)` after training-mode forward passes (without gradients) on the
    images of `image_seeds`: a layer with running statistics, whose state_dict the
    learner's module loads."""
    layer = torch_layer(seed)
    with torch.no_grad():
        for image_seed in image_seeds:
            layer(torch.tensor(_images(image_seed, offset=offset), dtype=torch.float32))
    return layer


def training_steps_inputs() -> tuple[list, dict, int]:
    """(steps, options, seed): three (training, x) steps, all in training mode; the modules'
    keyword arguments; the seed of their gamma and beta."""
    return [(True, _images(s, n=2, offset=20.0)) for s in (30, 31, 32)], {}, 33


def train_eval_inputs() -> tuple[list, dict, int]:
    """(steps, options, seed) as in `training_steps_inputs`: alternating modes, with an
    eval batch of one image."""
    steps = [
        (True, _images(40, n=2, offset=20.0)),
        (False, _images(41, n=3, offset=21.0)),
        (True, _images(42, n=4, offset=19.0)),
        (False, _images(43, n=1, offset=20.0)),
        (False, _images(44, n=2, offset=20.0)),
    ]
    return steps, {}, 45


def momentum_none_inputs() -> tuple[list, dict, int]:
    """(steps, options, seed) as in `training_steps_inputs`: four training steps with
    momentum=None."""
    steps = [(True, _images(s, n=2, offset=float(s - 50))) for s in (50, 51, 52, 53)]
    return steps, {"momentum": None}, 54


def state_dict_inputs() -> tuple[torch.nn.BatchNorm2d, np.ndarray, list]:
    """(source, x, training): torch's trained layer whose state_dict the learner's module
    loads, the input of the eval-mode step, the inputs of two training steps."""
    source = trained_torch_layer(20, (21, 22), offset=3.0)
    return source, _images(23, offset=3.0), [_images(s, offset=-1.0) for s in (24, 25)]


def mode_inputs() -> tuple[int, np.ndarray, torch.nn.BatchNorm2d]:
    """(seed, x, source) for each of MODE_CASES: the seed of the module's gamma and beta,
    the input, torch's trained layer whose state_dict the module then loads."""
    return 61, _images(60, n=2, offset=5.0), trained_torch_layer(61, (62,), offset=1.0)


def one_value_inputs() -> tuple[int, np.ndarray, int, list]:
    """(seed, single, seed2, steps): a first module's seed and a training batch with one
    value per channel; a second module's seed and its (training, x) steps: N = 1 with
    H*W = 6 in training mode, then N = H = W = 1 in eval mode."""
    single = _images(71, n=1, offset=20.0, shape_hw=(1, 1))
    steps = [
        (True, _images(73, n=1, offset=20.0, shape_hw=(2, 3))),
        (False, _images(74, n=1, offset=20.0, shape_hw=(1, 1))),
    ]
    return 70, single, 72, steps


def built_on_function_inputs() -> tuple[int, np.ndarray, torch.Tensor]:
    """(seed, x, dy): the module's seed, a training batch and the float32 output gradient."""
    x = _images(81, n=2, offset=4.0)
    dy = torch.tensor(np.random.default_rng(82).standard_normal(x.shape), dtype=torch.float32)
    return 80, x, dy


def options_inputs() -> tuple[int, list, list]:
    """(seed, options, steps): the modules' seed, the keyword arguments of the two modules,
    and the (training, x) steps each of them takes."""
    options = [{"affine": False}, {"track_running_stats": False}]
    steps = [(True, _images(91, n=2, offset=7.0)), (True, _images(92, n=2, offset=7.0))]
    return 90, options, [*steps, (False, _images(93, n=2, offset=7.0))]


# --------------------------------------------------------------------------- recording


def _frozen(value):
    """A copy of `value` whose tensors the learner's code can no longer change in place."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, tuple):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, list):
        return [_frozen(v) for v in value]
    if isinstance(value, dict):
        return {k: _frozen(v) for k, v in value.items()}
    return value


def _recorded(outcome: dict) -> dict:
    """An outcome of `call` as the transcript keeps it: a returned value is copied
    (`_frozen`) and the name of its type added under "type"."""
    if "value" not in outcome:
        return outcome
    value = outcome["value"]
    return {**outcome, "value": _frozen(value), "type": type_name(value)}


def _call(fn, *args, what: str, **kwargs) -> dict:
    """The recorded outcome of calling fn (see `call` and `_recorded`)."""
    return _recorded(call(fn, *args, what=what, **kwargs))


def _stopped(record: dict) -> bool:
    """Whether a learner call recorded in `record` (not in records nested in it) raised."""
    return any(isinstance(v, dict) and "raised" in v for v in record.values())


class ForbiddenCall(Exception):
    """Raised by torch's batch norm and autograd functions while `_refusing` runs."""


_REFUSED = (
    (torch.nn.functional, "batch_norm", "torch.nn.functional.batch_norm"),
    (torch, "batch_norm", "torch.batch_norm"),
    (torch, "native_batch_norm", "torch.native_batch_norm"),
    (torch.autograd, "grad", "torch.autograd.grad"),
    (torch.autograd, "backward", "torch.autograd.backward"),
    (torch.Tensor, "backward", "Tensor.backward"),
)


def _refusing(fn, *args, what: str, **kwargs) -> dict:
    """The outcome of `call`, made while torch's batch norm and autograd functions are
    replaced by ones that raise `ForbiddenCall`; it also lists, under "forbidden", those
    that were called. fn itself may be one of them, taken before they are replaced."""
    called = []

    def refuser(label: str):
        def refuse(*args, **kwargs):
            called.append(label)
            raise ForbiddenCall(f"calls {label}")

        return refuse

    saved = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in _REFUSED]
    for owner, attr, label in _REFUSED:
        setattr(owner, attr, refuser(label))
    try:
        outcome = call(fn, *args, what=what, **kwargs)
    finally:
        for owner, attr, original in saved:
            setattr(owner, attr, original)
    return {**outcome, "forbidden": list(called)}


# ----------------------------------------------------------------- learner's Function


def _run_function(fn, x, gamma, beta, dy=None) -> dict:
    """Forward, and backward if dy is given, through the learner's Function; torch's batch
    norm and autograd functions are refused inside the learner's code (`_refusing`).

    Records "y", the outcome of apply; with dy, "from_function": whether y's grad_fn
    belongs to the learner's Function, and if it does, "grads": the outcome of
    torch.autograd.grad of y for (x, gamma, beta), which runs the learner's backward.
    """
    outcome = _refusing(lambda: fn.apply(x, gamma, beta, EPS), what="BatchNormFunction.apply")
    record = {"y": _recorded(outcome)}
    y = outcome.get("value")
    if dy is None or not isinstance(y, torch.Tensor):
        return record
    record["from_function"] = getattr(y.grad_fn, "_forward_cls", None) is fn
    if record["from_function"]:
        record["grads"] = _recorded(
            _refusing(
                torch.autograd.grad,
                y,
                (x, gamma, beta),
                dy,
                allow_unused=True,
                what="the backward pass of BatchNormFunction",
            )
        )
    return record


def _non_contiguous(x: torch.Tensor) -> torch.Tensor:
    """The same values as `x` (N, C, H, W) in a non-contiguous tensor."""
    return x.transpose(2, 3).contiguous().transpose(2, 3)


def function_forward(fn) -> dict:
    """Forward of NCHW (non-contiguous) and (N, C) input; records x after each call too."""
    cases = []
    for x, gamma, beta in function_forward_inputs():
        xt = torch.tensor(x, dtype=torch.float64)
        if x.ndim == 4:
            xt = _non_contiguous(xt)
        params = (torch.tensor(a, dtype=torch.float64) for a in (gamma, beta))
        record = _run_function(fn, xt, *params)
        record["x_after"] = _frozen(xt)
        cases.append(record)
        if _stopped(record):
            break
    return {"cases": cases}


def function_float32(fn) -> dict:
    """Forward of float32 input."""
    inputs = (torch.tensor(a, dtype=torch.float32) for a in function_float32_inputs())
    return _run_function(fn, *inputs)


def function_backward(fn) -> dict:
    """Forward and backward of NCHW and (N, C) input."""
    cases = []
    for *inputs, dy in function_backward_inputs():
        tensors = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in inputs)
        record = _run_function(fn, *tensors, torch.tensor(dy, dtype=torch.float64))
        cases.append(record)
        if _stopped(record):
            break
    return {"cases": cases}


def function_gradcheck(fn) -> dict:
    """Forward and backward (for the verdict's clearer messages), then "gradcheck": the
    outcome of torch.autograd.gradcheck on the learner's Function."""
    x, gamma, beta = function_gradcheck_inputs()
    record = _run_function(fn, x, gamma, beta, torch.ones_like(x))

    def apply(x, gamma, beta):
        return fn.apply(x, gamma, beta, EPS)

    record["gradcheck"] = _call(
        torch.autograd.gradcheck,
        apply,
        (x, gamma, beta),
        eps=1e-6,
        atol=1e-5,
        raise_exception=False,
        what="torch.autograd.gradcheck on BatchNormFunction",
    )
    return record


# ------------------------------------------------------------------- learner's module


def _construct(cls, *args, **kwargs) -> tuple:
    """(module, record): the learner's module cls(*args, **kwargs), None if the call raised
    or made no torch.nn.Module, and {"made": the outcome of the call, whose value is
    whether it made a torch.nn.Module}."""
    shown = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
    outcome = call(cls, *args, what=f"BatchNorm2d({shown})", **kwargs)
    if "raised" in outcome:
        return None, {"made": outcome}
    is_module = isinstance(outcome["value"], torch.nn.Module)
    return (outcome["value"] if is_module else None), {"made": {"value": is_module}}


def _set_affine(module, gamma: np.ndarray, beta: np.ndarray) -> dict:
    """Copy gamma and beta into the module's weight and bias where those are tensors of
    their shape; return {name: its shape, or None if it is not a tensor}."""
    shapes = {}
    with torch.no_grad():
        for name, value in [("weight", gamma), ("bias", beta)]:
            param = getattr(module, name, None)
            shapes[name] = tuple(param.shape) if isinstance(param, torch.Tensor) else None
            if shapes[name] == value.shape:
                param.copy_(torch.as_tensor(value))
    return shapes


def _paired(cls, seed: int, **kwargs) -> tuple:
    """`_construct` of BatchNorm2d(3, **kwargs), given the gamma and beta of
    `torch_layer(seed, **kwargs)` unless affine=False; the record then has "affine", the
    outcome of `_set_affine`. The module is None if it cannot be used."""
    module, record = _construct(cls, CHANNELS, **kwargs)
    if module is None or not kwargs.get("affine", True):
        return module, record
    record["affine"] = _call(
        _set_affine, module, *_affine(seed), what="setting BatchNorm2d's weight and bias"
    )
    return (None if _stopped(record) else module), record


def _method(module, name: str, *args, what: str | None = None) -> dict:
    """The recorded outcome of module.name(*args)."""
    return _call(lambda: getattr(module, name)(*args), what=what or f"BatchNorm2d.{name}")


def _attributes(module, *names: str) -> dict:
    """{name: the recorded outcome of reading module.name (None if it has none)}."""
    return {name: _call(getattr, module, name, None, what=f"BatchNorm2d.{name}") for name in names}


def _state_dict_keys(module) -> list:
    return list(module.state_dict())


def _step(module, training: bool, x: torch.Tensor, grad: bool | None = None) -> dict:
    """The outcomes of module.train(training) ("train"), then of module(x) ("y"), with
    gradients enabled or not as `grad` says (None: as they are)."""
    step = {"train": _method(module, "train", training)}
    with contextlib.nullcontext() if grad is None else torch.set_grad_enabled(grad):
        step["y"] = _call(module, x, what="BatchNorm2d.forward")
    return step


def _sequence(cls, steps, options: dict, seed: int) -> dict:
    """`_paired(cls, seed, **options)` run over (training, x) steps, x given as float32 in a
    non-contiguous tensor; per step, the `_step` outcomes, x after the call ("x_after")
    and the outcomes of reading the buffers."""
    module, record = _paired(cls, seed, **options)
    if module is None:
        return record
    record["steps"] = []
    for training, x in steps:
        given = _non_contiguous(torch.tensor(x, dtype=torch.float32))
        step = _step(module, training, given)
        step["x_after"] = _frozen(given)
        step.update(_attributes(module, *BUFFERS))
        record["steps"].append(step)
        if _stopped(step):
            break
    return record


def module_parameters_and_buffers(cls) -> dict:
    """A BatchNorm2d(4): its parameters, buffers, which buffer names are attributes, its
    state_dict keys; a BatchNorm2d(4, eps=1e-3, momentum=0.3): its stored options."""
    module, record = _construct(cls, 4)
    if module is not None:
        record["parameters"] = _call(
            lambda: dict(module.named_parameters()), what="BatchNorm2d.named_parameters"
        )
        record["buffers"] = _call(
            lambda: dict(module.named_buffers()), what="BatchNorm2d.named_buffers"
        )
        record["has"] = {
            name: _call(hasattr, module, name, what=f"BatchNorm2d.{name}") for name in BUFFERS
        }
        record["keys"] = _call(_state_dict_keys, module, what="BatchNorm2d.state_dict")
    custom, record["custom"] = _construct(cls, 4, eps=1e-3, momentum=0.3)
    if custom is not None:
        record["custom"].update(_attributes(custom, "num_features", "eps", "momentum"))
    return record


def _state_dict(module) -> dict:
    """module.state_dict(): its entries, and the metadata (versions) load_state_dict reads."""
    state = module.state_dict()
    return {"entries": state, "metadata": getattr(state, "_metadata", None)}


def module_state_dict_round_trip(cls) -> dict:
    """Load torch's state_dict, an eval-mode step, two training steps, then the module's
    own state_dict."""
    source, x, batches = state_dict_inputs()
    module, record = _construct(cls, CHANNELS)
    if module is None:
        return record
    record["load"] = _method(
        module, "load_state_dict", source.state_dict(), what="load_state_dict(torch's state_dict)"
    )
    record["eval"] = _method(module, "eval")
    with torch.no_grad():
        record["y"] = _call(
            module, torch.tensor(x, dtype=torch.float32), what="BatchNorm2d.forward"
        )
    record["train"] = _method(module, "train")
    if _stopped(record):
        return record
    with torch.no_grad():
        record["training"] = [
            _call(module, torch.tensor(batch, dtype=torch.float32), what="BatchNorm2d.forward")
            for batch in batches
        ]
    record["state_dict"] = _call(_state_dict, module, what="BatchNorm2d.state_dict")
    return record


def module_training_steps(cls) -> dict:
    """Three training steps (`_sequence`)."""
    return _sequence(cls, *training_steps_inputs())


def module_train_eval_sequence(cls) -> dict:
    """Alternating train and eval steps (`_sequence`)."""
    return _sequence(cls, *train_eval_inputs())


def module_momentum_none(cls) -> dict:
    """Four training steps with momentum=None (`_sequence`)."""
    return _sequence(cls, *momentum_none_inputs())


def module_mode_follows_training_flag(cls) -> dict:
    """For each of MODE_CASES, a module that loads a trained state_dict, then one step in
    that mode and grad mode (the input requires gradients when they are enabled); the
    running statistics after it."""
    cases = []
    for training, grad in MODE_CASES:
        seed, x, source = mode_inputs()
        module, case = _paired(cls, seed)
        cases.append(case)
        if module is None:
            break
        case["load"] = _method(
            module, "load_state_dict", source.state_dict(), what="load_state_dict"
        )
        xt = torch.tensor(x, dtype=torch.float32, requires_grad=grad)
        case.update(_step(module, training, xt, grad=grad))
        case.update(_attributes(module, "running_mean", "running_var"))
        if _stopped(case):
            break
    return {"cases": cases}


def _error(fn, *args) -> dict | None:
    """None if fn(*args) returned; else the name of the type of what it raised ("type") and
    whether that is a ValueError ("value_error")."""
    try:
        fn(*args)
    except (Exception, SystemExit) as err:  # noqa: BLE001 (any learner error is recorded)
        return {"type": type_name(err), "value_error": isinstance(err, ValueError)}
    return None


def module_rejects_one_value_per_channel(cls) -> dict:
    """A training batch with one value per channel ("single": what it raised), then a
    second module's steps with N = 1."""
    seed, single, seed2, steps = one_value_inputs()
    module, first = _paired(cls, seed)
    record = {"first": first}
    if module is None:
        return record
    record["train"] = _method(module, "train")
    if _stopped(record):
        return record
    record["single"] = _error(module, torch.tensor(single, dtype=torch.float32))
    module, record["second"] = _paired(cls, seed2)
    if module is None:
        return record
    record["steps"] = []
    for training, x in steps:
        step = _step(module, training, torch.tensor(x, dtype=torch.float32))
        record["steps"].append(step)
        if _stopped(step):
            break
    return record


def _graph_contains(node, function, depth: int = 6) -> bool:
    """Whether the autograd graph of `node`, up to `depth` steps back, holds `function`."""
    if node is None or depth < 0:
        return False
    if getattr(node, "_forward_cls", None) is function:
        return True
    return any(_graph_contains(n, function, depth - 1) for n, _ in node.next_functions)


def module_built_on_function(cls, function) -> dict:
    """A training step with torch's batch norm and autograd refused ("y"); whether the
    output's graph holds the learner's Function ("from_function"); if so, "grads": the
    gradients for x, weight and bias from a backward pass through the module."""
    seed, x, dy = built_on_function_inputs()
    module, record = _paired(cls, seed)
    if module is None:
        return record
    xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    outcome = _refusing(module, xt, what="BatchNorm2d.forward")
    record["y"] = _recorded(outcome)
    y = outcome.get("value")
    if not isinstance(y, torch.Tensor):
        return record
    record["from_function"] = _graph_contains(y.grad_fn, function)
    if record["from_function"]:
        grad = torch.autograd.grad  # taken before `_refusing` replaces it

        def backward():
            return grad(y, (xt, module.weight, module.bias), dy, allow_unused=True)

        record["grads"] = _recorded(
            _refusing(backward, what="the backward pass through BatchNorm2d")
        )
    return record


def module_options(cls) -> dict:
    """For each option set, a module's state_dict keys and its steps (without gradients)."""
    seed, options, steps = options_inputs()
    cases = []
    for kwargs in options:
        module, case = _paired(cls, seed, **kwargs)
        cases.append(case)
        if module is None:
            break
        case["keys"] = _call(_state_dict_keys, module, what="BatchNorm2d.state_dict")
        case["steps"] = []
        for training, x in steps:
            step = _step(module, training, torch.tensor(x, dtype=torch.float32), grad=False)
            case["steps"].append(step)
            if _stopped(step):
                return {"cases": cases}
    return {"cases": cases}
