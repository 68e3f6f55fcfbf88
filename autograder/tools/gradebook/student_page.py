"""A student's page (``students/<student>.html``): their weeks and notebooks after the late
rule, every graded commit, the latest report test by test with its messages, grading errors."""

from __future__ import annotations

from ... import messages
from .book import TITLES, ClassBook, Item, StudentBook
from .class_page import badges
from .exports import number
from .pages import REPOSITORY, commit_url, esc, message_html, page, rule_html, table, when


def _item_rows(items: list[Item]) -> list[list[str]]:
    rows = []
    for i in items:
        cls = "too-late" if i.status == "too late" else ("late" if i.late else "")
        status = f'<span class="{cls}">{esc(i.status)}</span>' if cls else esc(i.status)
        if i.needs_grading:
            status += ' <span class="badge warn">to grade</span>'
        rows.append(
            [
                esc(i.key),
                esc(i.title),
                status,
                esc(number(i.raw)),
                esc(number(i.max_score)),
                esc(number(i.on_time)),
                esc(when(i.deadline)),
                esc(f"{i.extension_hours:g} h" if i.extension_hours else ""),
                esc(f"{i.hours_late:.1f}" if i.hours_late else ""),
                esc(f"−{i.penalty:.0%}" if i.penalty else ""),
                f"<strong>{esc(number(i.score))}</strong>",
            ]
        )
    return rows


def _items_table(items: list[Item]) -> str:
    widths = ["6%", "20%", "8%", "6%", "6%", "6%", "15%", "8%", "8%", "7%", ""]
    return table(ITEM_HEADER, _item_rows(items), "fit", {3, 4, 5, 8, 10}, widths)


ITEM_HEADER = [
    "item",
    "title",
    "status",
    "raw",
    "max",
    "on time",
    "deadline",
    "extension",
    "hours late",
    "penalty",
    "score",
]


def _commit(server: str, repository: str, sha: str) -> str:
    url = commit_url(server, repository, sha)
    short = esc(sha[:10])
    return f'<a href="{esc(url)}"><code>{short}</code></a>' if url else f"<code>{short}</code>"


def _history(s: StudentBook, week_ids: list[str], server: str) -> str:
    rows = []
    for g in reversed(s.history):
        report = g.report or {}
        weeks = report.get("weeks", {})
        notes = []
        if g.error:
            notes.append('<span class="badge bad">grading failed</span>')
        if g.report and not g.authoritative:
            notes.append('<span class="badge bad">not authoritative</span>')
        if g.redactions:
            notes.append(f'<span class="badge warn">{g.redactions} redacted</span>')
        total = f"{number(report.get('score'))}/{number(report.get('max_score'))}" if g.report else ""
        rows.append(
            [
                esc(when(g.time)),
                _commit(server, g.repository, g.commit),
                esc(total),
                *(esc(number(weeks[w]["score"])) if w in weeks else "" for w in week_ids),
                "".join(notes),
            ]
        )
    widths = ["16%", "10%", "8%", *[""] * len(week_ids), "14%"]
    header = ["pushed", "commit", "total", *week_ids, "notes"]
    return table(header, rows, "fit", set(range(2, 3 + len(week_ids))), widths)


def _tests(latest, server: str) -> str:
    if not latest or not latest.report:
        return "<p>No report.</p>"
    parts = [f"<p class=muted>From commit {_commit(server, latest.repository, latest.commit)}.</p>"]
    for week_id, week in latest.report.get("weeks", {}).items():
        tests = week.get("tests", [])
        failed = sum(t.get("status") != "passed" for t in tests)
        rows = [
            [
                esc(messages.first_line(t.get("name"))),
                f'<span class="{"" if t.get("status") == "passed" else "bad"}">{esc(t.get("status"))}</span>',
                esc(f"{number(t.get('score'))}/{number(t.get('max_score'))}"),
                f"<pre>{message_html(t.get('message'))}</pre>" if t.get("message") else "",
            ]
            for t in tests
        ]
        results = table(["test", "status", "points", "message"], rows, "fit", {2}, ["28%", "8%", "7%", ""])
        summary = (
            f"{esc(week_id)} {esc(TITLES.get(week_id, ''))}: "
            f"{esc(number(week.get('score')))}/{esc(number(week.get('max_score')))}"
            f"{f' · {failed} failed' if failed else ''}"
        )
        parts.append(f"<details{' open' if failed else ''}><summary>{summary}</summary>{results}</details>")
    return "".join(parts)


def _errors(s: StudentBook, server: str) -> str:
    failed = [g for g in s.history if g.error]
    if not failed:
        return ""
    parts = [
        f"<details><summary>{esc(when(g.time))} · commit "
        f"{_commit(server, g.repository, g.commit)}</summary><pre>{message_html(g.error)}</pre></details>"
        for g in reversed(failed)
    ]
    return "<h2>Grading errors</h2>" + "".join(parts)


def student_html(book: ClassBook, s: StudentBook, server: str) -> str:
    latest = s.latest
    facts = [
        f"final grade <strong>{esc(number(s.final))} %</strong>" if s.final is not None else "no final grade"
    ]
    facts.append(f"{esc(number(s.total))}/{esc(number(s.max_total))} points in the weeks")
    facts.append(f"{len(s.history)} report(s)")
    if latest and latest.repository:
        if REPOSITORY.fullmatch(latest.repository):
            repo = (
                f'<a href="{esc(server.rstrip("/") + "/" + latest.repository)}">{esc(latest.repository)}</a>'
            )
        else:
            repo = esc(latest.repository)
        facts.append(f"repository {repo}")
    flags = badges(s)
    name = f' <span class="muted">{esc(s.person.name)}</span>' if s.person and s.person.name else ""
    body = f"""<p><a href="../index.html">← class</a></p>
<h1>{esc(s.student)}{name}</h1>
<p>{" · ".join(facts)} {flags}</p>
{rule_html(book)}
<h2>Weeks</h2>
{_items_table(list(s.weeks.values()))}
{"<h2>Notebooks</h2>" + _items_table(list(s.notebooks.values())) if s.notebooks else ""}
<h2>History</h2>
{_history(s, book.week_ids, server) if s.history else "<p>No report.</p>"}
<h2>Latest report, test by test</h2>
{_tests(latest, server)}
{_errors(s, server)}
"""
    return page(f"{s.student}: Transformer Deep Dive", body)
