"""Wrong implementations of bn05_inference: each must lose points and be named in feedback."""

from tests.mutants import Mutant

MUTANTS = [
    Mutant(
        "evaluate forgets model.eval()",
        "    model.eval()\n    try:",
        "    try:",
        "forgot model.eval()",
    ),
    Mutant(
        "evaluate does not restore the mode",
        "model.train(was_training)",
        "pass",
        "restore the mode",
    ),
    Mutant(
        "folding with eps outside the square root",
        "scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)",
        "scale = bn.weight / (torch.sqrt(bn.running_var) + bn.eps)",
        "eps added outside the square root",
    ),
    Mutant(
        "folding drops the convolution's bias",
        "conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)",
        "conv_bias = torch.zeros_like(bn.running_mean)",
        "the convolution's bias dropped",
    ),
    Mutant(
        "folding forgets beta",
        "(conv_bias - bn.running_mean) * scale + bn.bias)",
        "(conv_bias - bn.running_mean) * scale)",
        "beta (bn.bias) left out",
    ),
    Mutant(
        "folding accepts modules in training mode",
        "if conv.training or bn.training:",
        "if False:",
        "accepted bn in training mode",
    ),
    Mutant(
        "folding modifies the convolution in place",
        "fused = copy.deepcopy(conv)",
        "fused = conv",
        "modified conv or bn",
    ),
    Mutant(
        "recalibration with the moving average instead of a cumulative one",
        "layer.momentum = None",
        "pass",
        "exponential moving average",
    ),
    Mutant(
        "recalibration continues the old statistics",
        "layer.reset_running_stats()",
        "pass",
        "continues the old statistics",
    ),
    Mutant(
        "recalibration does not restore momentum",
        "layer.momentum = momentum",
        "pass",
        "did not restore momentum",
    ),
    Mutant(
        "recalibration does not restore the modes",
        "module.training = training",
        "pass",
        "did not restore the mode",
    ),
    Mutant(
        "recalibration runs the model in eval mode",
        "    model.train()\n",
        "    pass\n",
        "not updated",
    ),
]
