"""One grade, four renderings: JSON (the record), Markdown (job summaries), JUnit XML (CI
test views, via junitparser) and GitHub Classroom's grader output (base64 JSON).

Test names and messages are untrusted (student code writes them): every rendering takes them
through `autograder.messages` (`cleaned` for the whole report, then the Markdown helpers), so
none carries control bytes, workflow commands, HTML or more than the shared cut lengths.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import junitparser

from . import messages


def cleaned(report: dict) -> dict:
    """A copy of ``report`` whose test names and messages went through `messages.clean`."""
    copy = dict(report)
    copy["weeks"] = {}
    for week_id, week in report.get("weeks", {}).items():
        tests = [
            {
                **t,
                "name": messages.clean(t.get("name"), messages.MAX_LINE),
                "message": messages.clean(t.get("message"), keep="ends"),
            }
            for t in week.get("tests", [])
        ]
        copy["weeks"][week_id] = {**week, "tests": tests}
    return copy


def write_json(report: dict, path: Path) -> None:
    path.write_text(json.dumps(cleaned(report), indent=2) + "\n")


_ICON = {"passed": "✅", "failed": "❌", "error": "💥", "timeout": "⏱️", "skipped": "⏭️"}


def week_table(weeks: dict) -> list[str]:
    """Markdown rows: points and passed tests per week (shared with the classroom reports)."""
    lines = ["| week | score | passed |", "|---|---:|---:|"]
    for week_id, week in weeks.items():
        passed = sum(t["status"] == "passed" for t in week["tests"])
        lines.append(
            f"| {week_id} {messages.markdown_inline(week.get('title', ''))} "
            f"| {week['score']:g} / {week['max_score']:g} "
            f"| {passed} / {len(week['tests'])} |"
        )
    return lines


def what_to_fix(weeks: dict) -> list[tuple[str, list[dict]]]:
    """Per week, its tests that did not pass: the list every rendering shows as "what to fix"."""
    listed = [
        (week_id, [t for t in week["tests"] if t["status"] != "passed"]) for week_id, week in weeks.items()
    ]
    return [(week_id, failing) for week_id, failing in listed if failing]


def what_to_fix_markdown(weeks: dict, *, full_messages: bool = False) -> list[str]:
    """ "What to fix" in Markdown: each failing test with its points and its message's first line,
    or (``full_messages``, the student's copy on a commit) the whole message in a code block."""
    lines = []
    for week_id, failing in what_to_fix(weeks):
        lines += ["", f"### {week_id}: what to fix", ""]
        for t in failing:
            head = f"- {_ICON.get(t['status'], '')} **{messages.markdown_inline(t['name'])}** ({t['max_score']:g} pts"
            if not full_messages:
                lines.append(f"{head}): {messages.markdown_inline(t['message'].strip() or t['status'])}")
                continue
            lines.append(f"{head}, {t['status']})")
            if t["message"]:
                lines += ["", messages.markdown_block(t["message"], indent="  ")]
    return lines


def sandbox_note(sandbox: dict | None) -> str | None:
    """One line saying why a grade is not authoritative, or None when it is."""
    sandbox = sandbox or {}
    if sandbox.get("authoritative"):
        return None
    missing = []
    if not sandbox.get("user"):
        missing.append("no sandbox user")
    if not {"pid", "mount", "net"} <= set(sandbox.get("namespaces") or []):
        missing.append("no jail")
    if sandbox.get("isolation") == "none":
        missing.append("submission code ran inside the grader")
    return "Not an authoritative grade: " + (", ".join(missing) or "no sandbox recorded") + "."


def to_markdown(report: dict) -> str:
    report = cleaned(report)
    lines = [
        f"## Grade: {report['score']:g} / {report['max_score']:g}",
        "",
        f"seed `{report['seed']}` · isolation `{report['isolation']}` · grader {report['grader_version']}",
        "",
    ]
    note = sandbox_note(report.get("sandbox"))
    if note:
        lines += [f"> ⚠️ {note}", ""]
    if report.get("grader_errors"):
        lines += ["> ⚠️ The grader itself failed in places; those tests will be graded again.", ""]
    lines += week_table(report["weeks"])
    lines += what_to_fix_markdown(report["weeks"])
    return "\n".join(lines) + "\n"


def write_junit(report: dict, path: Path) -> None:
    report = cleaned(report)
    xml = junitparser.JUnitXml(name="course grade")
    note = sandbox_note(report.get("sandbox"))
    for week_id, week in report["weeks"].items():
        suite = junitparser.TestSuite(f"{week_id} {week.get('title', '')}".strip())
        suite.add_property("authoritative", "no" if note else "yes")
        if note:
            suite.add_property("not_authoritative_because", note)
        for t in week["tests"]:
            case = junitparser.TestCase(t["name"], classname=week_id, time=t.get("duration", 0.0))
            message = messages.first_line(t["message"]) or t["status"]
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
    report = cleaned(report)
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
                    "message": t["message"],
                    "line_no": 0,
                    "duration": int(t.get("duration", 0) * 1000),
                }
            )
    status = "pass" if report["score"] == report["max_score"] else "fail"
    payload = {"version": 1, "status": status, "max_score": report["max_score"], "tests": tests}
    return base64.b64encode(json.dumps(payload).encode()).decode()
