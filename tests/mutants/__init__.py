"""Wrong implementations injected into the solution notebooks (the mutation suite).

Each module `tests/mutants/<assignment>.py` defines ``MUTANTS``, a list of `Mutant`s.
A mutant replaces the text `old`, which must occur exactly once in the code cells of
`solutions/<assignment>/<assignment>.ipynb`, with `new`. Autograded through the real
nbgrader pipeline, every mutant must lose points; if `diagnostic` is given, the feedback
must contain it (case-insensitive) so the learner is told which mistake they made.
"""

from typing import NamedTuple


class Mutant(NamedTuple):
    name: str
    old: str
    new: str
    diagnostic: str | None
