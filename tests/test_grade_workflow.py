"""`grade.yml` as GitHub Actions runs it for a class: the roster split into shards, one matrix job
per shard, one job merging; each job's own steps run by `tests.workflow_sim` against local git
remotes and a stand-in GitHub API.

Grading itself is replaced by a stand-in that writes a report per fetched submission (the jailed
grade has tests of its own, `test_jail.py` and `test_classroom.py`): what is tested here is the
distribution. Every student lands in exactly one shard; a shard that fails halfway still hands
over the reports it wrote; the publishing job publishes every shard's reports, the failed
shard's included; the next run grades only the students who have no report yet.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from autograder.classroom.roster import Student
from autograder.classroom.shards import parse, plan, select
from tests.classroom_support import FakeGitHub, git
from tests.helpers import ROOT
from tests.workflow_sim import run_job

# One worker runs this file: its module fixtures are built once (dev.sh: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_grade_workflow")

TOKEN = "test-token"
STUDENTS = [f"s{n:02d}" for n in range(7)]
WORKFLOW = ROOT / ".github" / "workflows" / "grade.yml"
# Stands in for the jailed grade: one report per fetched submission, written as it goes. With
# FAIL_AFTER set, the shard writes that many reports and then dies, as a crashed runner would.
FAKE_GRADE = """
python - <<'PY'
import json, os, pathlib, sys
done = 0
for meta in sorted(pathlib.Path("work/submissions").glob("*/meta.json")):
    if os.environ.get("FAIL_AFTER") and done == int(os.environ["FAIL_AFTER"]):
        sys.exit("the runner died")
    m = json.loads(meta.read_text())
    report = {"schema_version": 1, "score": 1.0, "max_score": 1.0, "seed": 1, "isolation": "process",
              "sandbox": {"authoritative": True, "user": "course-grader", "namespaces": ["pid", "mount", "net"]},
              "grader_version": "t", "weeks": {"w01": {"title": "t", "score": 1.0, "max_score": 1.0, "tests": []}}}
    out = pathlib.Path("work/new") / m["student"] / (m["commit"] + ".json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({**m, "report": report, "time": m.get("pushed_at"), "weeks_graded": ["w01"],
                               "graded_at": "2027-01-15T00:00:00+00:00", "sandbox": report["sandbox"]}))
    done += 1
PY
"""


def test_shards_cover_the_roster_once_and_evenly():
    roster = [Student(f"s{n}", f"o/r{n}") for n in range(53)]
    count = plan(roster, per_shard=25, max_shards=20)
    shards = [select(roster, i, count) for i in range(count)]
    assert count == 3 and sorted(s.id for shard in shards for s in shard) == sorted(s.id for s in roster)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert plan(roster, per_shard=1, max_shards=20) == 20
    assert plan(roster, repository="O/R7") == 1 and plan(roster, repository="x/y") == 0
    assert parse("2/8") == (2, 8)
    with pytest.raises(ValueError):
        select(roster, 3, 3)


@pytest.fixture(scope="module")
def school(tmp_path_factory, student_template):
    base = tmp_path_factory.mktemp("sharded")
    remotes = base / "remotes"
    for student in STUDENTS:
        bare = remotes / "classroom" / f"tdd-{student}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        git(base, "clone", "--quiet", "--bare", str(student_template), str(bare))
    git(base, "init", "--quiet", "--bare", str(remotes / "instructor" / "course.git"))
    course = base / "course"  # the instructor's checkout: this repository, with a roster of 7
    shutil.copytree(
        ROOT, course, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "cache", "work")
    )
    (course / "course" / "roster.csv").write_text(
        "student,repository\n" + "".join(f"{s},classroom/tdd-{s}\n" for s in STUDENTS)
    )
    # Shards of at most 3 students (the workflow asks for 25; this class is small).
    workflow = base / "grade.yml"
    workflow.write_text(WORKFLOW.read_text().replace("--per-shard 25", "--per-shard 3"))
    return {"base": base, "remotes": remotes, "course": course, "workflow": workflow}


def _job(school, job_id: str, github: FakeGitHub, **kwargs):
    noop = lambda with_values, workdir: None  # noqa: E731
    artifacts = school["base"] / "artifacts"

    def upload(with_values, workdir):
        shutil.copytree(workdir / with_values["path"], artifacts / with_values["name"], dirs_exist_ok=True)

    def download(with_values, workdir):
        prefix = with_values["pattern"].rstrip("*")
        for folder in sorted(artifacts.glob(prefix + "*")):
            shutil.copytree(folder, workdir / with_values["path"], dirs_exist_ok=True)

    shutil.rmtree(school["course"] / "work", ignore_errors=True)  # every job starts on a fresh runner
    return run_job(
        school["workflow"],
        job_id,
        workdir=school["course"],
        github={"repository": "instructor/course", "run_id": kwargs.pop("run_id", "77"), "run_attempt": "1",
                "api_url": github.url, "event": {}, "token": TOKEN},
        secrets={"CLASSROOM_TOKEN": TOKEN, "GRADING_SEED": "s"},
        uses={
            "actions/checkout": noop,
            "actions/setup-python": noop,
            "actions/upload-artifact": upload,
            "actions/download-artifact": download,
        },
        env={
            "PYTHONPATH": str(school["course"]),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "GITHUB_SERVER_URL": f"file://{school['remotes']}",
            **kwargs.pop("env", {}),
        },
        **kwargs,
    )  # fmt: skip


def _run(school, github, run_id: str, fail_shard: int | None = None) -> tuple[dict, dict, object]:
    """One run of the workflow: plan, every shard (one may die after its first report), publish.
    Returns (students fetched per shard, grade jobs per shard, the publish job)."""
    plan_job = _job(school, "plan", github, run_id=run_id)
    assert not plan_job.failed, [s.output for s in plan_job.steps]
    planned = {"count": plan_job.outputs["count"], "shards": plan_job.outputs["shards"]}
    fetched, jobs = {}, {}
    for shard in json.loads(planned["shards"]):
        env = {"FAIL_AFTER": "1"} if shard == fail_shard else {}
        jobs[shard] = _job(
            school,
            "grade",
            github,
            run_id=run_id,
            matrix={"shard": shard},
            needs={"plan": {"outputs": planned}},
            replace_run={
                "Install CPU PyTorch and the course package": "true",
                "Grade (jailed, as root; fails closed)": FAKE_GRADE,
            },
            env=env,
        )
        folder = school["course"] / "work" / "submissions"
        fetched[shard] = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    result = "failure" if any(j.failed for j in jobs.values()) else "success"
    publish = _job(
        school,
        "publish",
        github,
        run_id=run_id,
        needs={"plan": {"outputs": planned}, "grade": {"result": result}},
    )
    return fetched, jobs, publish


def _published(github: FakeGitHub) -> set[str]:
    return {c["path"].split("/")[3].removeprefix("tdd-") for c in github.statuses()}


def test_a_class_graded_in_shards_one_failing(school):
    with FakeGitHub(TOKEN) as github:
        fetched, jobs, publish = _run(school, github, "77", fail_shard=1)
        first = _published(github)
    assert sorted(fetched) == [0, 1, 2]
    assert sorted(s for names in fetched.values() for s in names) == STUDENTS, "each student in one shard"
    assert jobs[1].failed and not jobs[0].failed and not jobs[2].failed
    assert jobs[1].step("Keep this shard").outcome == "success", (
        "the failed shard still hands over its reports"
    )
    assert not publish.failed, [s.output[-800:] for s in publish.steps]
    lost = set(fetched[1][1:])
    assert first == set(STUDENTS) - lost, "every report is published, the failed shard's first one included"

    # The next run (the schedule's) grades the students the failed shard lost, and only them.
    with FakeGitHub(TOKEN) as github:
        fetched, jobs, publish = _run(school, github, "78")
        second = _published(github)
    assert sorted(s for names in fetched.values() for s in names) == sorted(lost)
    assert second == lost and not publish.failed
