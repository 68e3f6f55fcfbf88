"""The student repository's side of grading (run by its `Autograding Tests` workflow).

* `open_weeks`: the weeks open now by the course's schedule: the push feedback runs and counts
  only those, so a week-1 student is not shown 0/70 for weeks that have not started.
* `feedback`: turns the public tests' report into the job summary, labelled for what it is:
  public tests, feedback, not the grade.
* `request_grade`: asks the instructor's grader for the authoritative grade of the pushed commit
  (a ``repository_dispatch``). The request carries only the repository and the commit: the grader
  checks both against its roster and fetches the code itself.
* `await_grade`: waits (a few minutes at most) for the grader's commit status ``course/grade`` on
  the pushed commit, then adds the authoritative score to the job summary and writes the two
  ``::notice`` lines GitHub Classroom reads, so Classroom's dashboard shows that score, never
  the public tests' points. A status set by anyone but the grader's account (``GRADER_LOGIN``)
  is ignored.

The record of grades is the instructor's ``grades`` branch. A student controls their own
repository and its workflow, so what Classroom shows can be forged there; instructors export
grades from `course gradebook`, never from Classroom.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime
from pathlib import Path

from .github import GitHub, GitHubError, check_repository, check_sha

EVENT_TYPE = "grade-request"
CONTEXT = "course/grade"
SCORE = re.compile(r"(?:not authoritative: )?(?P<score>\d+(?:\.\d+)?)/(?P<max>\d+(?:\.\d+)?) points")


def open_weeks(schedule_path: Path, now: datetime) -> list[str]:
    """Ids of the weeks released by ``now`` that this repository has a module for."""
    from ..tools.schedule import load_schedule
    from ..weeks import ROOT, get_week, module_path

    released = load_schedule(schedule_path).released(now)
    return [w for w in released if module_path(ROOT / "exercises", get_week(w)) is not None]


def feedback(report: dict) -> tuple[str, list[str]]:
    """(Markdown for the job summary, workflow-command lines for GitHub Classroom).

    The summary's names and messages are cleaned by `report.to_markdown` (`autograder.messages`);
    the data of each notice is escaped for its command line by `messages.workflow_value`."""
    from ..messages import workflow_value
    from ..report import to_markdown

    body = to_markdown(report).split("\n", 1)[1]  # the engine's table, under our own heading
    weeks = ", ".join(report["weeks"]) or "none yet"
    summary = (
        f"## Public tests (not your grade): {report['score']:g} / {report['max_score']:g}\n\n"
        f"Weeks open now: {weeks}. These are the public tests of `exercises/tests/`: feedback while "
        "you work, and below full marks is expected until you finish. Your grade comes from the "
        "course's grader, which also runs the hidden tests: it appears below when it is ready, and "
        "as the commit status **course/grade** on this commit.\n" + body
    )
    points = f"Public tests (not your grade): {report['score']:g}/{report['max_score']:g} points"
    return summary, [f"::notice title=Public tests::{workflow_value(points)}"]


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


def classroom_notices(score: float, max_score: float) -> list[str]:
    """The two annotations GitHub Classroom's grading reporter writes and its dashboard reads."""
    from ..messages import workflow_value

    totals = {"totalPoints": score, "maxPoints": max_score}
    return [
        "::notice title=Autograding complete::" + workflow_value(f"Points {score:g}/{max_score:g}"),
        f"::notice title=Autograding report::{workflow_value(json.dumps(totals))}",
    ]


def grader_status(statuses: list, grader: str | None) -> dict | None:
    """The newest ``course/grade`` status set by the grader's account (any account when
    ``grader`` is unset: then the summary says it could not be verified)."""
    for status in statuses or []:  # GitHub lists the newest first
        if not isinstance(status, dict) or status.get("context") != CONTEXT:
            continue
        login = (status.get("creator") or {}).get("login")
        if grader and login != grader:
            continue
        return status
    return None


def await_grade(
    env: dict[str, str] | None = None, *, wait_s: float = 600, poll_s: float = 15, summary: Path | None = None
) -> int:
    """Wait for the authoritative grade of this commit; report it to the student and Classroom."""
    from ..messages import markdown_inline

    env = dict(os.environ if env is None else env)
    if wait_s <= 0:
        print(
            "Not waiting for the grade (GRADE_WAIT_MINUTES is 0): it will be the commit status course/grade."
        )
        return 0
    try:
        repo, sha = check_repository(env["GITHUB_REPOSITORY"]), check_sha(env["GITHUB_SHA"])
    except (KeyError, ValueError) as exc:
        print(f"::warning title=No grade to wait for::{exc}")
        return 0
    github = GitHub(env.get("GITHUB_API_URL"), env.get("GITHUB_TOKEN"))
    grader = env.get("GRADER_LOGIN") or None
    deadline = time.monotonic() + wait_s
    found = None
    while True:
        try:
            found = grader_status(
                github.request("GET", f"/repos/{repo}/commits/{sha}/statuses?per_page=100"), grader
            )
        except GitHubError as exc:
            print(f"::warning title=Could not read the grade::{exc}")
        if found and found.get("state") != "pending" or time.monotonic() >= deadline:
            break
        time.sleep(max(0.0, min(poll_s, deadline - time.monotonic())))
    lines = ["", "## Your grade (course grader)", ""]
    match = SCORE.match((found or {}).get("description") or "")
    if found is None:
        lines.append(
            f"Not graded yet (waited {wait_s / 60:.0f} min). The grade will appear as the commit status "
            "**course/grade** on this commit, with a link to the full report."
        )
    elif found.get("state") == "error" or not match:
        lines.append(
            f"The grader could not grade this commit: {markdown_inline(found.get('description') or '')}"
        )
    else:
        score, top = float(match["score"]), float(match["max"])
        lines.append(f"**{score:g} / {top:g}** — {markdown_inline(found.get('description') or '')}")
        if found.get("target_url"):
            lines.append(f"\n[The full report]({found['target_url']}) (hidden tests included).")
        if not grader:
            lines.append("\n(The grader's account is not configured here, so this could not be verified.)")
        for line in classroom_notices(score, top):
            print(line)
    if summary:
        with open(summary, "a") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0
