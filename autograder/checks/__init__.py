"""Checks that hidden tests call: one module per assignment, sharing `core`.

A hidden test cell is a one-line call such as ``check_forward_small_batch(batchnorm_forward)``.
The check builds its inputs, compares the learner's result with `autograder.reference`,
and on failure raises `core.Failure` with a message that names the mistake when the result
matches a known wrong variant. Messages never show the inputs or the reference code.
"""
