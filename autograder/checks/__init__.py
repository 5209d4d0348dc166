"""Hidden-test checks: one module per assignment, sharing `core`.

A hidden test cell is a one-line call such as ``check_forward_small_batch(batchnorm_forward)``.
Each check is a verdict paired with a scenario (`autograder.scenarios`): the scenario calls
the learner's code on inputs built from fixed seeds and records what came back; the verdict
rebuilds the inputs, compares the record with `autograder.reference` and on failure raises
`core.Failure` with a message that names the mistake when the result matches a known wrong
variant. Messages never show the inputs or the reference code. In a notebook both halves
run in the kernel; `python -m autograder grade` runs the scenario in the sandbox and the
verdict outside it.
"""
