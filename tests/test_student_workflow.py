"""The student's push, as the student sees it: the released template's `classroom.yml` run step by
step (`tests.workflow_sim`) in a clone of a student repository, against a stand-in GitHub API.

Two weeks are open; the student finished week 1 and not week 2. The push must be green (work in
progress is not a failure), the summary must count only the open weeks and call the public points
what they are, and once the grader's status is there, the summary and the lines GitHub Classroom
reads must carry the grader's score — not the public tests', and not a status the student set.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.classroom_support import FakeGitHub, git
from tests.helpers import ROOT
from tests.workflow_sim import run_job

# One worker runs this file: its module fixtures are built once (dev.sh: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_student_workflow")

TOKEN = "dispatch-token"
WORKFLOW = Path(".github") / "workflows" / "classroom.yml"
OPENED = {"release = 2027-01-11T09:00:00Z": "release = 2020-01-06T09:00:00Z"}  # week 1
OPENED["release = 2027-01-18T09:00:00Z"] = "release = 2020-01-13T09:00:00Z"  # week 2


@pytest.fixture(scope="module")
def student_repo(tmp_path_factory, student_template):
    base = tmp_path_factory.mktemp("student")
    template = student_template
    bare = base / "tdd-ada.git"
    git(base, "clone", "--quiet", "--bare", str(template), str(bare))
    work = base / "ada"
    git(base, "clone", "--quiet", str(bare), str(work))
    schedule = work / "course" / "schedule.toml"
    text = schedule.read_text()
    for old, new in OPENED.items():
        text = text.replace(old, new)
    schedule.write_text(text)
    shutil.copy2(ROOT / "solutions" / "w01_attention.py", work / "exercises" / "w01_attention.py")
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "week 1 done")
    git(work, "push", "--quiet", "origin", "HEAD:main")
    return work, git(work, "rev-parse", "HEAD")


def _run(work: Path, sha: str, github: FakeGitHub, actor: str = "ada", skip: tuple[str, ...] = ()):
    noop = lambda with_values, workdir: None  # noqa: E731 - the checkout is `work`, Python is ours
    return run_job(
        work / WORKFLOW,
        "run-autograding-tests",
        workdir=work,
        github={
            "repository": "classroom/tdd-ada",
            "sha": sha,
            "ref_name": "main",
            "actor": actor,
            "api_url": github.url,
            "event": {"repository": {"default_branch": "main"}},
            "token": TOKEN,  # the stand-in API takes one token for everything
        },
        secrets={
            "GRADING_REPOSITORY": "instructor/course",
            "GRADING_DISPATCH_TOKEN": TOKEN,
            "GRADER_LOGIN": "course-grader-bot",
            "GRADE_WAIT_MINUTES": "0.02",
        },
        uses={"actions/checkout": noop, "actions/setup-python": noop},
        replace_run={"Install CPU PyTorch and the course package": "true", **{name: "true" for name in skip}},
        # The student repository's own engine, as `pip install -e .` would make it.
        env={
            "PYTHONPATH": str(work),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
    )


def test_a_push_is_green_counts_open_weeks_and_shows_the_graders_score(student_repo):
    work, sha = student_repo
    with FakeGitHub(TOKEN) as github:
        # What the grader posted (its account), and a status the student forged afterwards.
        github.posted[sha] = [
            {"context": "course/grade", "state": "success", "description": "85/85 points (forged)",
             "creator": {"login": "ada"}},
            {"context": "course/grade", "state": "success", "description": "46/85 points (w01 46/46 · w02 0/39)",
             "target_url": "https://github.test/report", "creator": {"login": "course-grader-bot"}},
        ]  # fmt: skip
        job = _run(work, sha, github)
        dispatched = github.dispatches()
    assert not job.failed, [(s.name, s.outcome, s.output[-500:]) for s in job.steps]
    assert job.step("Public tests").outcome == "failure", "week 2 is a stub: its public tests fail"
    summary = job.summary
    assert "Public tests (not your grade)" in summary and "Weeks open now: w01, w02" in summary
    assert "w03" not in summary, "weeks not open yet are neither run nor counted"
    assert "Your grade (course grader)" in summary and "**46 / 85**" in summary
    assert "85 / 85" not in summary, "a status the student set is not the grade"
    notices = job.step("Wait for the grade").output
    assert "::notice title=Autograding complete::Points 46/85" in notices
    everything = "\n".join(s.output for s in job.steps)
    assert everything.count("title=Autograding complete") == 1, "Classroom sees the grader's points only"
    assert dispatched and dispatched[0]["body"]["client_payload"] == {
        "repository": "classroom/tdd-ada",
        "sha": sha,
    }


def test_before_the_grade_arrives_the_summary_says_where_it_will_be(student_repo):
    work, sha = student_repo
    done_above = (
        "Public tests (feedback; failures here are expected until you finish)",
        "Report (job summary)",
    )
    with FakeGitHub(TOKEN) as github:  # the tests themselves ran in the case above
        job = _run(work, sha, github, skip=done_above)
    assert not job.failed
    assert "Not graded yet" in job.summary and "course/grade" in job.summary
    assert "Autograding complete" not in "\n".join(s.output for s in job.steps)


def test_classroom_bot_pushes_are_skipped(student_repo):
    work, sha = student_repo
    with FakeGitHub(TOKEN) as github:
        job = _run(work, sha, github, actor="github-classroom[bot]")
    assert job.skipped and not job.steps
