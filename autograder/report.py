"""One grade, four renderings: JSON (the record), Markdown (job summaries), JUnit XML (CI
test views, via junitparser) and GitHub Classroom's grader output (base64 JSON)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import junitparser


def write_json(report: dict, path: Path) -> None:
    path.write_text(json.dumps(report, indent=2) + "\n")


_ICON = {"passed": "✅", "failed": "❌", "error": "💥", "timeout": "⏱️", "skipped": "⏭️"}


def week_table(weeks: dict) -> list[str]:
    """Markdown rows: points and passed tests per week (shared with the classroom reports)."""
    lines = ["| week | score | passed |", "|---|---:|---:|"]
    for week_id, week in weeks.items():
        passed = sum(t["status"] == "passed" for t in week["tests"])
        lines.append(
            f"| {week_id} {week.get('title', '')} | {week['score']:g} / {week['max_score']:g} "
            f"| {passed} / {len(week['tests'])} |"
        )
    return lines


def to_markdown(report: dict) -> str:
    lines = [
        f"## Grade: {report['score']:g} / {report['max_score']:g}",
        "",
        f"seed `{report['seed']}` · isolation `{report['isolation']}` · grader {report['grader_version']}",
        "",
        *week_table(report["weeks"]),
    ]
    for week_id, week in report["weeks"].items():
        failing = [t for t in week["tests"] if t["status"] != "passed"]
        if not failing:
            continue
        lines += ["", f"### {week_id}: what to fix", ""]
        for t in failing:
            first = (t["message"] or t["status"]).strip().splitlines()[0]
            first = first.replace("|", "\\|")
            lines.append(f"- {_ICON.get(t['status'], '')} **{t['name']}** ({t['max_score']:g} pts): {first}")
    return "\n".join(lines) + "\n"


def write_junit(report: dict, path: Path) -> None:
    xml = junitparser.JUnitXml(name="course grade")
    for week_id, week in report["weeks"].items():
        suite = junitparser.TestSuite(f"{week_id} {week.get('title', '')}".strip())
        for t in week["tests"]:
            case = junitparser.TestCase(t["name"], classname=week_id, time=t.get("duration", 0.0))
            message = (t["message"] or "").splitlines()[0][:500] if t["message"] else t["status"]
            if t["status"] == "failed":
                case.result = [junitparser.Failure(message)]
            elif t["status"] in ("error", "timeout"):
                case.result = [junitparser.Error(message, type_=t["status"])]
            elif t["status"] == "skipped":
                case.result = [junitparser.Skipped(message)]
            if t["message"]:
                case.system_out = t["message"]
            suite.add_testcase(case)
        xml.add_testsuite(suite)
    xml.write(str(path))


def to_classroom(report: dict) -> str:
    """GitHub Classroom's autograding reporter reads a base64-encoded JSON result."""
    tests = []
    for week_id, week in report["weeks"].items():
        for t in week["tests"]:
            tests.append(
                {
                    "name": f"{week_id} {t['name']}",
                    "status": "pass"
                    if t["status"] == "passed"
                    else ("error" if t["status"] in ("error", "timeout") else "fail"),
                    "score": t["score"],
                    "max_score": t["max_score"],
                    "message": t["message"][:1000],
                    "line_no": 0,
                    "duration": int(t.get("duration", 0) * 1000),
                }
            )
    status = "pass" if report["score"] == report["max_score"] else "fail"
    payload = {"version": 1, "status": status, "max_score": report["max_score"], "tests": tests}
    return base64.b64encode(json.dumps(payload).encode()).decode()
