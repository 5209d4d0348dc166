"""Instructor-side package of the course: reference kernels and grading tools.

Learner notebooks never import it; hidden tests and the grading tools do.
"""
