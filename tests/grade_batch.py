"""Grade many submissions in one process: ``python -m tests.grade_batch JOBS.json``.

Each job is ``{"submission", "weeks", "json", "args"}``; each runs `course grade` in this
process, one after another, so torch and the suites are imported once instead of once per job.
The known-bug corpus uses it (in-process isolation: the mutants are the reference with one
edit, not hostile code). A job that crashes the grader is recorded in its report file as an
error and the batch goes on.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

import _pytest.unraisableexception

from autograder.cli import main as course


def main(jobs_file: str) -> int:
    # pytest collects garbage several times at the end of every session to surface unraisable
    # exceptions; with torch loaded that is ~0.3 s a session, nearly half of a corpus batch of
    # one-test sessions. The mutants are the reference with one edit: nothing to surface there.
    _pytest.unraisableexception.gc_collect_harder = lambda iterations: None
    for job in json.loads(Path(jobs_file).read_text()):
        args = ["grade", "--submission", job["submission"], "--json", job["json"], "--weeks", *job["weeks"]]
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                course([*args, *job.get("args", [])])
        except BaseException as exc:  # noqa: BLE001 - recorded for the test to report
            Path(job["json"]).write_text(json.dumps({"batch_error": f"{type(exc).__name__}: {exc}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
