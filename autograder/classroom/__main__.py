"""``python -m autograder.classroom COMMAND``: the steps of the classroom workflows.

Instructor repository (`.github/workflows/grade.yml`):
    pull-reports   fetch the reports kept so far (the `grades` branch) into a folder
    plan           how many shards to split the roster into (one grading job each)
    fetch          clone roster repositories at the commits to grade; keep only the submission
    grade          grade fetched submissions in the sandbox (or fail); one report per commit
    post           sanitised report as a commit comment + commit status, per new report
    store          add new reports to the `grades` branch
    collect-notebooks   put fetched notebooks where `nbgrader autograde` looks for them
    notebook-feedback   after `nbgrader autograde` (and hand grading): one feedback page per student
Instructor repository (`.github/workflows/publish-solutions.yml`):
    publish-solutions   update the template repository's `solutions` branch
Student repository (`.github/workflows/classroom.yml`):
    open-weeks     the weeks open now (the push feedback runs and counts only these)
    feedback       job summary from a public-tests report (labelled: not the grade)
    request-grade  ask the grader for the authoritative grade of this commit
    await-grade    wait for the grader's status; put the real score in the summary and Classroom
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..messages import workflow_value
from ..tools.schedule import SCHEDULE, load_schedule, parse_time
from ..weeks import ROOT, WEEKS, get_week


def _token(name: str) -> str | None:
    return os.environ.get(name) or None


def _own_repository_url() -> str:
    from .gitops import server_url

    repo = os.environ.get("GITHUB_REPOSITORY")
    if not repo:
        raise SystemExit("--remote is needed outside GitHub Actions (GITHUB_REPOSITORY is not set)")
    return f"{server_url()}/{repo}.git"


def cmd_fetch(args) -> int:
    from .github import GitHub
    from .roster import fetch, load_roster
    from .shards import parse, select

    token = _token(args.token_env)
    github = GitHub(args.api_url, token) if token or args.api_url else None
    roster = load_roster(Path(args.roster))
    if args.shard and not args.repository:
        roster = select(roster, *parse(args.shard))
    fetched, problems = fetch(
        roster,
        Path(args.out),
        repository=args.repository or None,
        sha=args.sha or None,
        clone_base=args.clone_base,
        token=token,
        github=github,
        graded=Path(args.graded) if args.graded and not args.sha else None,
    )
    for meta in fetched:
        print(f"fetched {meta['student']} @ {meta['commit'][:10]}")
    for line in problems:
        print(f"::warning::{workflow_value(line)}")
    print(f"{len(fetched)} submission(s) to grade")
    return 0


def _step_output(name: str, value) -> None:
    """A step output for the workflow (``steps.<id>.outputs.<name>``)."""
    if os.environ.get("GITHUB_OUTPUT"):
        with open(os.environ["GITHUB_OUTPUT"], "a") as fh:
            fh.write(f"{name}={value}\n")


def cmd_grade(args) -> int:
    from .grading import find_sandbox, grade_all, grading_seed, present_weeks

    _step_output("graded", 0)  # overwritten below once reports exist

    schedule = load_schedule(Path(args.schedule))
    now = parse_time(args.now)
    if args.weeks:
        weeks = [get_week(w) for w in args.weeks]
    else:
        opened = set(schedule.released(now))
        weeks = [w for w in WEEKS if w.id in opened]
    weeks = present_weeks(weeks)
    # Earlier weeks' references stand in for a student's own earlier modules only once they
    # are public: a reference that is still secret never reaches submission code.
    public = set(schedule.solutions_due(now))
    if not weeks:
        print("no week to grade yet (none has opened, or none has a reference here)")
        return 0
    seed = grading_seed(os.environ.get(args.seed_env))
    if seed is None:
        print(f"::warning::${args.seed_env} is not set: a random seed is used (it is kept in each report)")
    # One submission per CPU: a jailed grade is mostly one busy process at a time (the grader or
    # the submission's), so two on two cores grade 1.55 times as many (benchmarks/classroom_shards.py).
    slots = max(1, os.cpu_count() or 1) if args.jobs == "auto" else int(args.jobs)
    sandbox = find_sandbox(args.sandbox, args.user, slots=slots)
    if not sandbox.jailed:
        print("::warning::--sandbox none: these reports are NOT authoritative (no jail, no sandbox user)")
    submissions = Path(args.submissions)
    if not submissions.is_dir():
        print("nothing fetched: nothing to grade")
        return 0
    written = grade_all(submissions, Path(args.reports), weeks, seed=seed, sandbox=sandbox, public=public)
    _step_output("graded", len(written))
    print(f"{len(written)} report(s) written to {args.reports}")
    return 0


def cmd_plan(args) -> int:
    from .roster import load_roster
    from .shards import plan

    count = plan(
        load_roster(Path(args.roster)),
        repository=args.repository or None,
        per_shard=args.per_shard,
        max_shards=args.max_shards,
    )
    _step_output("count", count)
    _step_output("shards", json.dumps(list(range(count))))
    print(f"{count} shard(s)")
    return 0


def cmd_post(args) -> int:
    from .github import GitHub
    from .publish import new_reports, post

    reports = new_reports(Path(args.reports)) if Path(args.reports).is_dir() else []
    problems = post(
        reports, GitHub(args.api_url, _token(args.token_env)), link=args.link, context=args.context
    )
    for line in problems:
        print(f"::error::{workflow_value(line)}")
    return 1 if problems else 0


def cmd_pull_reports(args) -> int:
    from .gitops import checkout_branch, git_env

    into = Path(args.into)
    if into.exists():
        shutil.rmtree(into)
    existed = checkout_branch(
        args.remote or _own_repository_url(), args.branch, into, git_env(_token(args.token_env))
    )
    print(f"{args.branch}: {'fetched' if existed else 'does not exist yet'}")
    return 0


def cmd_store(args) -> int:
    from .gitops import checkout_branch, commit_and_push, git_env

    source = Path(args.reports)
    files = (
        sorted(p for p in source.rglob("*.json")) + sorted(source.rglob("*.md")) if source.is_dir() else []
    )
    if not files:
        print("no new reports")
        return 0
    env = git_env(_token(args.token_env))
    with tempfile.TemporaryDirectory(prefix="grades-") as tmp:
        work = Path(tmp) / "work"
        checkout_branch(args.remote or _own_repository_url(), args.branch, work, env)
        for path in files:
            target = work / "reports" / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        students = sorted({p.relative_to(source).parts[0] for p in files})
        message = (
            f"Reports: {', '.join(students)}"
            if len(students) <= 5
            else f"Reports of {len(students)} students"
        )
        pushed = commit_and_push(work, args.branch, message, env)
    print(f"{args.branch}: {'stored' if pushed else 'unchanged'} ({len(files)} files)")
    return 0


def cmd_collect_notebooks(args) -> int:
    from .notebooks import collect

    written = collect(Path(args.submissions), Path(args.course))
    for student, assignment in written:
        print(f"{student}: {assignment}")
    print(f"{len(written)} notebook submission(s) under {args.course}/submitted")
    return 0


def cmd_notebook_feedback(args) -> int:
    from .notebooks import feedback

    pages = feedback(Path(args.course), args.assignments or None)
    for page in pages:
        pending = " (written answers not graded yet)" if page.awaiting_manual_grade else ""
        print(
            f"{page.student}: {page.assignment} {page.score:g} / {page.max_score:g}{pending} -> {page.html}"
        )
    print(f"{len(pages)} feedback page(s) under {args.course}/feedback")
    return 0


def cmd_publish_solutions(args) -> int:
    from .gitops import repo_url
    from .solutions import publish

    remote = args.remote or (repo_url(args.repository) if args.repository else None)
    if not remote:
        print("publish-solutions: give --repository OWNER/NAME (or --remote URL)", file=sys.stderr)
        return 2
    through = parse_time(args.through or "now")
    print(
        publish(
            remote,
            through=through,
            branch=args.branch,
            token=_token(args.token_env),
            schedule=Path(args.schedule),
        )
    )
    return 0


def cmd_feedback(args) -> int:
    from .student import run_feedback

    return run_feedback(Path(args.report), Path(args.summary) if args.summary else None)


def cmd_request_grade(args) -> int:
    from .student import request_grade

    return request_grade()


def cmd_open_weeks(args) -> int:
    from .student import open_weeks

    print(" ".join(open_weeks(Path(args.schedule), parse_time(args.now))))
    return 0


def cmd_await_grade(args) -> int:
    from .student import await_grade

    summary = Path(args.summary) if args.summary else None
    return await_grade(wait_s=args.wait * 60, poll_s=args.poll, summary=summary)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m autograder.classroom", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    api = {"help": "GitHub REST API base URL (default: $GITHUB_API_URL or https://api.github.com)"}

    p = sub.add_parser("fetch", help="clone roster repositories at the commits to grade")
    p.add_argument("--roster", default=str(ROOT / "course" / "roster.csv"))
    p.add_argument("--out", required=True, help="folder for the fetched submissions")
    p.add_argument("--repository", help="only this repository (owner/name; must be on the roster)")
    p.add_argument("--sha", help="the commit to grade (with --repository); default: the branch head")
    p.add_argument("--graded", help="folder of earlier reports: commits graded there are skipped")
    p.add_argument("--clone-base", help="where owner/name repositories live (default: the GitHub server)")
    p.add_argument("--shard", metavar="INDEX/COUNT", help="only this shard of the roster (see `plan`)")
    p.add_argument("--token-env", default="CLASSROOM_TOKEN", help="environment variable with the token")
    p.add_argument("--api-url", **api)
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("grade", help="grade fetched submissions; one JSON report per student and commit")
    p.add_argument("--submissions", required=True)
    p.add_argument("--reports", required=True, help="folder for the reports (<student>/<commit>.json)")
    p.add_argument("--weeks", nargs="+", help="weeks to grade (default: those opened by --now)")
    p.add_argument("--schedule", default=str(SCHEDULE))
    p.add_argument("--now", default="now", help="the time that decides which weeks have opened")
    p.add_argument("--seed-env", default="GRADING_SEED", help="environment variable holding the seed")
    p.add_argument(
        "--sandbox",
        choices=("required", "none"),
        default="required",
        help="required: jail + sandbox user, or stop with an error (default); none: not authoritative",
    )
    p.add_argument("--user", default="course-grader", help="the unprivileged user for submission code")
    p.add_argument(
        "--jobs",
        default="1",
        help="submissions graded at once, each as its own user (a number, or auto: one per CPU)",
    )
    p.set_defaults(func=cmd_grade)

    p = sub.add_parser("plan", help="how many shards to grade the roster in (step outputs count, shards)")
    p.add_argument("--roster", default=str(ROOT / "course" / "roster.csv"))
    p.add_argument("--repository", help="one repository asked for: one shard")
    p.add_argument("--per-shard", type=int, default=25, help="students per shard (default 25)")
    p.add_argument("--max-shards", type=int, default=20, help="at most this many shards (default 20)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("post", help="post commit statuses (and report comments) for new reports")
    p.add_argument("--reports", required=True)
    p.add_argument("--link", choices=("comment", "none"), default="comment")
    p.add_argument("--context", default="course/grade")
    p.add_argument("--token-env", default="CLASSROOM_TOKEN")
    p.add_argument("--api-url", **api)
    p.set_defaults(func=cmd_post)

    for name, func, text in (
        ("pull-reports", cmd_pull_reports, "fetch the reports branch into a folder"),
        ("store", cmd_store, "add new reports to the reports branch"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--remote", help="repository URL (default: this GitHub repository)")
        p.add_argument("--branch", default="grades")
        p.add_argument("--token-env", default="GITHUB_TOKEN")
        if name == "pull-reports":
            p.add_argument("--into", required=True)
        else:
            p.add_argument("--reports", required=True)
        p.set_defaults(func=func)

    p = sub.add_parser("collect-notebooks", help="fetched notebooks -> course/submitted/ for nbgrader")
    p.add_argument("--submissions", required=True)
    p.add_argument("--course", default=str(ROOT / "course"))
    p.set_defaults(func=cmd_collect_notebooks)

    p = sub.add_parser(
        "notebook-feedback", help="nbgrader generate_feedback: course/feedback/<student>/<assignment>/*.html"
    )
    p.add_argument("assignments", nargs="*", help="assignments (default: every one autograded so far)")
    p.add_argument("--course", default=str(ROOT / "course"))
    p.set_defaults(func=cmd_notebook_feedback)

    p = sub.add_parser("publish-solutions", help="update the solutions branch of the template repository")
    p.add_argument("--repository", help="the template repository (owner/name)")
    p.add_argument("--remote", help="or its URL")
    p.add_argument("--branch", default="solutions")
    p.add_argument("--through", help="publish what is due by this time (ISO 8601; default: now)")
    p.add_argument("--schedule", default=str(SCHEDULE))
    p.add_argument("--token-env", default="SOLUTIONS_PUSH_TOKEN")
    p.set_defaults(func=cmd_publish_solutions)

    p = sub.add_parser("feedback", help="job summary and Classroom output from a public-tests report")
    p.add_argument("report")
    p.add_argument("--summary", default=os.environ.get("GITHUB_STEP_SUMMARY"))
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser("request-grade", help="ask the grader for the authoritative grade of this commit")
    p.set_defaults(func=cmd_request_grade)

    p = sub.add_parser("open-weeks", help="the weeks open now by the schedule (ids, space-separated)")
    p.add_argument("--schedule", default=str(SCHEDULE))
    p.add_argument("--now", default="now")
    p.set_defaults(func=cmd_open_weeks)

    p = sub.add_parser("await-grade", help="wait for the grader's course/grade status; report it")
    p.add_argument("--wait", type=float, default=10.0, help="minutes to wait at most (default 10)")
    p.add_argument("--poll", type=float, default=15.0, help="seconds between looks")
    p.add_argument("--summary", default=os.environ.get("GITHUB_STEP_SUMMARY"))
    p.set_defaults(func=cmd_await_grade)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, KeyError, RuntimeError) as exc:
        print(f"classroom {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
