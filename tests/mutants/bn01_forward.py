"""Wrong answers to bn01_forward: the forward pass, running statistics and inference."""

from tests.mutants import Mutant

MUTANTS = [
    Mutant(
        "unbiased variance in the normalization",
        "var = ((x - mu) ** 2).mean(axis=0)",
        "var = x.var(axis=0, ddof=1)",
        "unbiased variance",
    ),
    Mutant(
        "eps outside the square root",
        "x_hat = (x - mu) / np.sqrt(var + eps)",
        "x_hat = (x - mu) / (np.sqrt(var) + eps)",
        "eps added outside the square root",
    ),
    Mutant(
        "eps missing",
        "x_hat = (x - mu) / np.sqrt(var + eps)",
        "x_hat = (x - mu) / np.sqrt(var)",
        "eps left out",
    ),
    Mutant(
        "statistics per example instead of per feature",
        "mu = x.mean(axis=0)\n    var = ((x - mu) ** 2).mean(axis=0)",
        "mu = x.mean(axis=1, keepdims=True)\n    var = ((x - mu) ** 2).mean(axis=1, keepdims=True)",
        "wrong axis",
    ),
    Mutant(
        "beta forgotten",
        "x_hat = (x - mu) / np.sqrt(var + eps)\n    return gamma * x_hat + beta",
        "x_hat = (x - mu) / np.sqrt(var + eps)\n    return gamma * x_hat",
        "beta forgotten",
    ),
    Mutant(
        "input centred in place",
        "mu = x.mean(axis=0)\n    var = ((x - mu) ** 2).mean(axis=0)\n"
        "    x_hat = (x - mu) / np.sqrt(var + eps)",
        "mu = x.mean(axis=0)\n    x -= mu\n    var = (x**2).mean(axis=0)\n"
        "    x_hat = x / np.sqrt(var + eps)",
        "modified its input x in place",
    ),
    Mutant(
        "momentum convention flipped (Keras)",
        "mean = (1 - momentum) * running_mean + momentum * mu\n"
        "    var = (1 - momentum) * running_var + momentum * unbiased_var",
        "mean = momentum * running_mean + (1 - momentum) * mu\n"
        "    var = momentum * running_var + (1 - momentum) * unbiased_var",
        "momentum convention flipped",
    ),
    Mutant(
        "biased variance in running_var",
        "unbiased_var = ((x - mu) ** 2).sum(axis=0) / (m - 1)",
        "unbiased_var = ((x - mu) ** 2).sum(axis=0) / m",
        "biased batch variance stored",
    ),
    Mutant(
        "standard deviation in running_var",
        "var = (1 - momentum) * running_var + momentum * unbiased_var",
        "var = (1 - momentum) * running_var + momentum * np.sqrt(unbiased_var)",
        "standard deviation stored",
    ),
    Mutant(
        "batch statistics at inference",
        "x_hat = (x - running_mean) / np.sqrt(running_var + eps)",
        "x_hat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps)",
        "batch statistics used at inference",
    ),
]
