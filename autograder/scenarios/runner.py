"""Run one scenario against a learner's namespace; used by the grading sandbox's probes."""

from __future__ import annotations

import importlib
import json

from autograder.scenarios.common import encode


def run(module: str, scenario: str, names: list[str], learner: dict):
    """The encoded transcript of `scenario` called with the learner's objects `names`.

    Returns ``{"missing": name}`` if the learner never defined one of them and
    ``{"crashed": message}`` if the scenario itself failed on what it was given.
    """
    if not module.startswith("autograder.scenarios."):
        raise ValueError(f"not a scenario module: {module}")
    function = getattr(importlib.import_module(module), scenario)
    for name in names:
        if name not in learner:
            return {"missing": name}
    try:
        transcript = function(*(learner[name] for name in names))
        data = encode(transcript)
        json.dumps(data)
    except (Exception, SystemExit) as err:  # noqa: BLE001
        return {"crashed": f"{type(err).__name__}: {str(err).strip()[:300]}"}
    return {"transcript": data}
