"""Wrong answers to bn02_backward: the staged and the compact backward pass."""

from tests.mutants import Mutant

MUTANTS = [
    Mutant(
        "staged: path through the variance dropped",
        "    dxc = dxc + 2 * xc * dvar / m\n",
        "",
        "path through the variance ignored",
    ),
    Mutant(
        "staged: path through the mean dropped",
        "dx = dxc + dmu / m",
        "dx = dxc",
        "path through the mean ignored",
    ),
    Mutant(
        "staged: dgamma not summed over the batch",
        "dgamma = (dy * x_hat).sum(axis=0)\n    dx_hat = dy * gamma",
        "dgamma = dy * x_hat\n    dx_hat = dy * gamma",
        "not summed over the batch",
    ),
    Mutant(
        "staged: gamma left out of dx_hat",
        "dx_hat = dy * gamma",
        "dx_hat = dy",
        "gamma left out of dx",
    ),
    Mutant(
        "staged: sign error in d(std)",
        "dstd = -(dx_hat * xc).sum(axis=0) / std**2",
        "dstd = (dx_hat * xc).sum(axis=0) / std**2",
        "sign error",
    ),
    Mutant(
        "compact: 1/m factors dropped",
        "dx = gamma / (m * std) * (m * dy - dbeta - x_hat * dgamma)",
        "dx = gamma / std * (dy - dbeta - x_hat * dgamma)",
        "1/m factors missing",
    ),
    Mutant(
        "compact: dbeta summed over the features",
        "x_hat * dgamma)\n    return dx, dgamma, dbeta",
        "x_hat * dgamma)\n    return dx, dgamma, dy.sum(axis=1)",
        "summed over the wrong axis",
    ),
    Mutant(
        "compact: unbiased variance",
        "std = np.sqrt(((x - mu) ** 2).mean(axis=0) + eps)",
        "std = np.sqrt(x.var(axis=0, ddof=1) + eps)",
        "unbiased variance",
    ),
    Mutant(
        "compact: input centred in place",
        "x_hat = (x - mu) / std\n    dbeta",
        "x -= mu\n    x_hat = x / std\n    dbeta",
        "modified its input x in place",
    ),
]
