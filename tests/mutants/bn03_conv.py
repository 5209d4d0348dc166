"""Wrong answers to bn03_conv: spatial batch norm forward and backward, group norm."""

from tests.mutants import Mutant

_FORWARD_AXES = "axes = (0, 2, 3)\n    mu = x.mean(axis=axes, keepdims=True)\n    var"

MUTANTS = [
    Mutant(
        "spatial: statistics over the batch axis only",
        _FORWARD_AXES,
        _FORWARD_AXES.replace("(0, 2, 3)", "(0,)"),
        "batch axis only",
    ),
    Mutant(
        "spatial: statistics per example (instance norm)",
        _FORWARD_AXES,
        _FORWARD_AXES.replace("(0, 2, 3)", "(2, 3)"),
        "instance norm",
    ),
    Mutant(
        "spatial: gamma and beta not reshaped",
        "x_hat = (x - mu) / np.sqrt(var + eps)\n"
        "    return gamma.reshape(1, -1, 1, 1) * x_hat + beta.reshape(1, -1, 1, 1)",
        "x_hat = (x - mu) / np.sqrt(var + eps)\n    return gamma * x_hat + beta",
        "broadcast along the last axis",
    ),
    Mutant(
        "spatial: reshape to (-1, C) without a transpose",
        _FORWARD_AXES,
        "flat = x.reshape(-1, x.shape[1])\n    mu = flat.mean(axis=0)\n"
        "    x_hat = (flat - mu) / np.sqrt(flat.var(axis=0) + eps)\n"
        "    return (gamma * x_hat + beta).reshape(x.shape)\n    var",
        "without moving the channels last",
    ),
    Mutant(
        "spatial backward: dbeta summed over N only",
        "return dx, dgamma, dbeta",
        "return dx, dgamma, dy.sum(axis=0)",
        "not summed over all of",
    ),
    Mutant(
        "spatial backward: m = N",
        "m = x.shape[0] * x.shape[2] * x.shape[3]",
        "m = x.shape[0]",
        "m taken as N",
    ),
    Mutant(
        "groupnorm: interleaved channels in a group",
        "groups = x.reshape(n, num_groups, -1)\n    mu = groups.mean(axis=2, keepdims=True)\n"
        "    var = ((groups - mu) ** 2).mean(axis=2, keepdims=True)",
        "groups = x.reshape(n, c // num_groups, num_groups, h, w)\n"
        "    mu = groups.mean(axis=(1, 3, 4), keepdims=True)\n"
        "    var = ((groups - mu) ** 2).mean(axis=(1, 3, 4), keepdims=True)",
        "interleaved channels",
    ),
    Mutant(
        "groupnorm: num_groups read as channels per group",
        "groups = x.reshape(n, num_groups, -1)",
        "groups = x.reshape(n, c // num_groups, -1)",
        "number of channels per group",
    ),
    Mutant(
        "groupnorm: statistics shared across the batch",
        "mu = groups.mean(axis=2, keepdims=True)\n"
        "    var = ((groups - mu) ** 2).mean(axis=2, keepdims=True)",
        "mu = groups.mean(axis=(0, 2), keepdims=True)\n"
        "    var = ((groups - mu) ** 2).mean(axis=(0, 2), keepdims=True)",
        "shared across the batch",
    ),
]
