"""Wrong implementations of bn04_torch: each must lose points and be named in feedback."""

from tests.mutants import Mutant

MUTANTS = [
    Mutant(
        "unbiased variance in the normalization",
        "var = ((x - mu) ** 2).mean(dim=axes, keepdim=True)",
        "var = x.var(dim=axes, keepdim=True, correction=1)",
        "unbiased variance",
    ),
    Mutant(
        "eps outside the square root",
        "inv_std = 1.0 / torch.sqrt(var + eps)",
        "inv_std = 1.0 / (torch.sqrt(var) + eps)",
        "eps added outside the square root",
    ),
    Mutant(
        "backward reduces over the batch axis only",
        "mean_dx_hat = dx_hat.mean(dim=axes, keepdim=True)\n"
        "        mean_dx_hat_x_hat = (dx_hat * x_hat).mean(dim=axes, keepdim=True)",
        "mean_dx_hat = dx_hat.mean(dim=0, keepdim=True)\n"
        "        mean_dx_hat_x_hat = (dx_hat * x_hat).mean(dim=0, keepdim=True)",
        "backward reduced over the batch axis only",
    ),
    Mutant(
        "dgamma summed over N only",
        "dgamma = (dy * x_hat).sum(dim=axes)",
        "dgamma = (dy * x_hat).sum(dim=0)",
        "dgamma must be summed over every axis but the channel axis",
    ),
    Mutant(
        "running statistics with the momentum convention flipped",
        "self.running_mean.mul_(1 - factor).add_(factor * batch_mean)\n"
        "                self.running_var.mul_(1 - factor).add_(factor * batch_var)",
        "self.running_mean.mul_(factor).add_((1 - factor) * batch_mean)\n"
        "                self.running_var.mul_(factor).add_((1 - factor) * batch_var)",
        "momentum convention flipped",
    ),
    Mutant(
        "biased variance stored in running_var",
        "batch_var = x.var(dim=(0, 2, 3), correction=1)",
        "batch_var = x.var(dim=(0, 2, 3), correction=0)",
        "running_var updated with the biased batch variance",
    ),
    Mutant(
        "standard deviation stored in running_var",
        "add_(factor * batch_var)",
        "add_(factor * batch_var.sqrt())",
        "standard deviation stored in running_var",
    ),
    Mutant(
        "running statistics never updated",
        "self.running_mean.mul_(1 - factor).add_(factor * batch_mean)\n"
        "                self.running_var.mul_(1 - factor).add_(factor * batch_var)",
        "pass",
        "running statistics that are never updated",
    ),
    Mutant(
        "running statistics updated in eval mode",
        "if self.training and self.track_running_stats:",
        "if self.track_running_stats:",
        "updated in eval mode",
    ),
    Mutant(
        "num_batches_tracked not counted",
        "self.num_batches_tracked += 1",
        "pass",
        "num_batches_tracked",
    ),
    Mutant(
        "momentum=None treated as 0.1",
        "factor = 1.0 / float(self.num_batches_tracked)",
        "factor = 0.1",
        "momentum=None treated as a fixed momentum",
    ),
    Mutant(
        "mode keyed on the grad mode",
        "use_batch_stats = self.training or self.running_mean is None",
        "use_batch_stats = torch.is_grad_enabled() or self.running_mean is None",
        "torch.is_grad_enabled()",
    ),
    Mutant(
        "running statistics as plain attributes",
        'self.register_buffer("running_mean", torch.zeros(num_features))',
        "self.running_mean = torch.zeros(num_features)",
        "not a registered buffer",
    ),
    Mutant(
        "batch of one not rejected",
        "if use_batch_stats and x.numel() // x.shape[1] < 2:",
        "if False:",
        "batch of one not rejected",
    ),
    Mutant(
        "module calls torch's batch_norm instead of BatchNormFunction",
        "return BatchNormFunction.apply(x, gamma, beta, self.eps)",
        "return torch.nn.functional.batch_norm(x, None, None, gamma, beta, True, 0.0, self.eps)",
        "torch.nn.functional.batch_norm",
    ),
]
