"""Classroom deployment: the scripts behind the GitHub workflows, runnable (and tested) locally.

Instructor side (`.github/workflows/grade.yml`, `publish-solutions.yml`):

* `roster`     the class list, and fetching each student's repository at a commit
* `grading`    grading fetched submissions, sandboxed as an unprivileged user without network
* `sanitize`   the student-facing copy of a report (no seed, no hidden test ids, no leaked source)
* `github`     the few GitHub REST calls we make (commit statuses and comments, dispatches)
* `gitops`     keeping reports on a branch, publishing the solutions branch
* `notebooks`  handing committed notebooks to nbgrader for autograding

Student side (`autograder/templates/student/.github/workflows/classroom.yml`):

* `student`    the job summary and Classroom output of the public tests; the grading request

Everything is reachable as ``python -m autograder.classroom COMMAND`` (see ``--help``), and nothing
here imports torch: the publishing jobs run without it.
"""
