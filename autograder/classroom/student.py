"""The student repository's side of grading (run by its `Autograding Tests` workflow).

* `feedback`: turns the public tests' report into the job summary and the lines GitHub
  Classroom reads (the two ``::notice`` annotations its grading reporter writes); the base64
  grader output is the step output ``result`` that `course grade --classroom` sets.
* `request_grade`: asks the instructor's grader for the authoritative grade of the pushed commit
  (a ``repository_dispatch``). The request carries only the repository and the commit: the grader
  checks both against its roster and fetches the code itself.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .github import GitHub, GitHubError, check_repository, check_sha

EVENT_TYPE = "grade-request"


def feedback(report: dict) -> tuple[str, list[str]]:
    """(Markdown for the job summary, workflow-command lines for GitHub Classroom).

    The summary's names and messages are cleaned by `report.to_markdown` (`autograder.messages`);
    the data of each notice is escaped for its command line by `messages.workflow_value`."""
    from ..messages import workflow_value
    from ..report import to_markdown

    body = to_markdown(report).split("\n", 1)[1]  # the engine's table, under our own heading
    summary = (
        f"## Public tests: {report['score']:g} / {report['max_score']:g}\n\n"
        "These are the public tests of `exercises/tests/`: feedback, not your grade. The grade comes "
        "from the course's grader, which also runs the hidden tests, as the commit status "
        "**course/grade** on this commit.\n" + body
    )
    totals = {"totalPoints": report["score"], "maxPoints": report["max_score"]}
    notices = [
        "::notice title=Autograding complete::"
        + workflow_value(f"Points {report['score']:g}/{report['max_score']:g}"),
        f"::notice title=Autograding report::{workflow_value(json.dumps(totals))}",
    ]
    return summary, notices


def run_feedback(report_path: Path, summary_path: Path | None) -> int:
    report = json.loads(Path(report_path).read_text())
    summary, notices = feedback(report)
    if summary_path:
        with open(summary_path, "a") as fh:
            fh.write(summary)
    for line in notices:
        print(line)
    return 0


def request_grade(env: dict[str, str] | None = None) -> int:
    env = dict(os.environ if env is None else env)
    token, target = env.get("GRADING_DISPATCH_TOKEN"), env.get("GRADING_REPOSITORY")
    if not token or not target:
        print(
            "::notice title=Grading request skipped::GRADING_DISPATCH_TOKEN or GRADING_REPOSITORY is not "
            "set up; the course's grader will still grade this commit on its schedule."
        )
        return 0
    try:
        payload = {
            "repository": check_repository(env["GITHUB_REPOSITORY"]),
            "sha": check_sha(env["GITHUB_SHA"]),
        }
        GitHub(env.get("GITHUB_API_URL"), token).repository_dispatch(
            check_repository(target), EVENT_TYPE, payload
        )
    except (GitHubError, ValueError, KeyError) as exc:
        print(f"::warning title=Grading request failed::{exc}; the grader will catch up on its schedule.")
        return 0
    print(f"Asked {target} to grade {payload['repository']}@{payload['sha'][:10]}.")
    return 0
