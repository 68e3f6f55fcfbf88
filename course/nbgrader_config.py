# nbgrader configuration for the course's notebooks. Run nbgrader from this folder (`cd course`).
#
# Layout: each assignment is a folder of `course/` holding its source notebook(s):
#   course/w01_attention/w01_attention.ipynb   (one per coded week)
#   course/review/review.ipynb                 (written answers, graded by hand)
# so the source directory is `course/` itself. nbgrader's working folders (release/, submitted/,
# autograded/, feedback/) and gradebook.db are created here and are git-ignored.
#
# `course release` runs `nbgrader generate_assignment` with this file for every assignment and
# ships the released notebooks in the student template.
import os

c = get_config()  # noqa: F821 - provided by nbgrader when it loads this file

c.CourseDirectory.course_id = "transformer-deep-dive"
c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.source_directory = "."
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db")

# What students see where a solution was.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Autograding. A grade cell fails only by raising (an assert, an exception): nbgrader would also
# give 0 to a cell that merely wrote to stderr, so a correct cell that emits a warning (PyTorch's
# UserWarnings, a tqdm progress bar, logging) would lose its points. Stderr is dropped before
# grading; errors are `error` outputs and still cost the cell's points.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"[\s\S]*"
c.Execute.timeout = 300  # seconds per cell; the notebooks run top to bottom in < 60 s on the reference
