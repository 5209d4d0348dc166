"""nbgrader configuration of the course (nbgrader 0.9.6).

Pass it to every nbgrader command from the repository root, without the ``.py``:

    nbgrader generate_assignment bn01_forward --force --config=autograder/nbgrader_config

The course root is the folder above this file, whatever the current directory:

* ``solutions/<assignment>/<assignment>.ipynb``: the source notebooks (solutions and
  hidden tests), the only ones edited by hand;
* ``exercises/<assignment>/<assignment>.ipynb``: the student versions, generated;
* ``grading/``: git-ignored working folder with submissions, autograded copies, feedback,
  exports and the gradebook database.

Hidden tests import the ``autograder`` package, so whoever runs ``nbgrader autograde`` sets
``PYTHONPATH`` to the course root (see ``book/instructors.md``).
"""

import os

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

COURSE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRADING = "grading"

c.CourseDirectory.root = COURSE_ROOT
c.CourseDirectory.course_id = "batchnorm-hands-on"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.source_with_tests_directory = os.path.join(GRADING, "source_with_tests")
c.CourseDirectory.submitted_directory = os.path.join(GRADING, "submitted")
c.CourseDirectory.autograded_directory = os.path.join(GRADING, "autograded")
c.CourseDirectory.feedback_directory = os.path.join(GRADING, "feedback")
c.CourseDirectory.solution_directory = os.path.join(GRADING, "solution")
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(COURSE_ROOT, GRADING, "gradebook.db")

# The gradebook lives in grading/; without the folder every command fails with
# "unable to open database file".
os.makedirs(os.path.join(COURSE_ROOT, GRADING), exist_ok=True)

# Every notebook runs in well under 20 s; a cell that hangs (an endless loop in an
# answer) is interrupted after this many seconds and scores 0.
c.Execute.timeout = 60

# `nbgrader export` writes the grades here unless given --to.
c.ExportPlugin.to = os.path.join(COURSE_ROOT, GRADING, "grades.csv")
