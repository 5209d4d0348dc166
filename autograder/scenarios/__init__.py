"""Scenarios: the part of each hidden test that runs next to learner code.

A scenario builds a test's inputs from fixed seeds, calls the learner's functions or
classes, and returns a transcript of what came back, as plain data. It judges nothing:
the verdicts in `autograder.checks` regenerate the same inputs and compare the transcript
with `autograder.reference`. Under `python -m autograder grade` scenarios run in the
grading sandbox and verdicts on the host, so code in a submission cannot change how it is
judged; under plain nbgrader both run in the notebook's kernel.

Modules here import only the standard library, numpy, torch and each other: the sandbox
holds this folder and nothing else of the course.
"""
