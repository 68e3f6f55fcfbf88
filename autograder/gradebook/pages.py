"""The gradebook's HTML: the class table (``index.html``), one page per student
(``students/<student>.html``), and ``summary.html`` (the old name, now a link to the table).

Pages work offline from a file:// URL: one file each, the style and the little JavaScript
(sorting, filtering) inline, nothing fetched. Every value that comes from a report is escaped
here, and messages are cleaned first (`autograder.messages`): a student chooses their messages,
and their repository's name reaches the page too. The HTML is built with f-strings and
`html.escape` rather than a template engine because no engine is among the project's
dependencies; `esc` is the one way a value enters a page.
"""

from __future__ import annotations

import hashlib
import html
import re
import statistics
from datetime import UTC, datetime
from pathlib import Path

from .. import messages
from .book import TITLES, ClassBook, Item, StudentBook
from .exports import number

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
SHA = re.compile(r"[0-9a-fA-F]{7,64}")


def esc(value: object) -> str:
    return html.escape(messages.as_text(value), quote=True)


def message_html(value: object) -> str:
    """An untrusted message: cleaned, then escaped; kept whole (a <pre> shows its lines)."""
    return esc(messages.clean(value))


def page_name(student: str) -> str:
    """The student's page file: their id where it is a plain file name, else a readable part of
    it and a hash of the whole (ids from bare report files can be anything)."""
    if SAFE_NAME.fullmatch(student):
        return f"{student}.html"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", student).strip("._-")[:40] or "student"
    return f"{slug}-{hashlib.sha256(student.encode()).hexdigest()[:10]}.html"


def when(value: datetime | None) -> str:
    """A time as the pages show it: UTC, to the minute."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


def commit_url(server: str, repository: str, sha: str) -> str | None:
    """Where a commit is shown, or None when the repository or commit is not plainly one."""
    if not (REPOSITORY.fullmatch(repository) and SHA.fullmatch(sha)):
        return None
    return f"{server.rstrip('/')}/{repository}/commit/{sha}"


STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.6em; margin: 0 0 .2em; } h2 { font-size: 1.2em; margin: 1.4em 0 .4em; }
table { border-collapse: collapse; margin: .4em 0 1em; }
table.fit { width: 100%; table-layout: fixed; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: left; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f3f3f3; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #666; }
.late { background: #fff3cd; } .too-late, .bad { background: #fde2e1; }
.badge { display: inline-block; padding: 0 4px; margin: 1px; border-radius: 3px; font-size: 11px;
         background: #eee; white-space: nowrap; }
.badge.bad { background: #f8c4c1; } .badge.warn { background: #ffe69c; }
sup.late-mark { font-size: 9px; color: #8a5300; margin-left: 1px; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0; font-size: 12px; }
img { max-width: 100%; }
details.cause { margin: 0 0 .4em; } details.cause p.who { margin: .2em 0 .6em 1.2em; }
#class-table thead th { position: sticky; top: 0; z-index: 1; }
th button { all: unset; cursor: pointer; font-weight: 600; }
th button:focus-visible { outline: 2px solid #4c72b0; }
th[aria-sort=ascending] button::after { content: " \\25B2"; font-size: 9px; }
th[aria-sort=descending] button::after { content: " \\25BC"; font-size: 9px; }
#filter { font: inherit; padding: 3px 6px; width: 18em; }
details { margin: .3em 0; } summary { cursor: pointer; }
"""

# Sorting and filtering the class table. Blank cells sort last whichever the direction.
SCRIPT = """
"use strict";
(() => {
  const table = document.getElementById("class-table");
  const body = table.tBodies[0];
  const heads = Array.from(table.tHead.rows[0].cells);
  const key = (row, col, numeric) => {
    const cell = row.cells[col];
    const text = (cell.dataset.sort ?? cell.textContent).trim();
    if (text === "") return null;
    return numeric ? Number(text) : text.toLowerCase();
  };
  heads.forEach((th, col) => {
    const button = th.querySelector("button");
    if (!button) return;
    button.addEventListener("click", () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      heads.forEach((h) => h.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const numeric = th.dataset.type === "number";
      const rows = Array.from(body.rows);
      rows.sort((a, b) => {
        const x = key(a, col, numeric), y = key(b, col, numeric);
        if (x === null || y === null) return (x === null) - (y === null);
        const order = numeric ? x - y : x.localeCompare(y);
        return ascending ? order : -order;
      });
      body.append(...rows);
    });
  });
  const filter = document.getElementById("filter");
  const shown = document.getElementById("shown");
  const apply = () => {
    const words = filter.value.trim().toLowerCase();
    let count = 0;
    for (const row of body.rows) {
      row.hidden = !row.dataset.search.includes(words);
      count += row.hidden ? 0 : 1;
    }
    shown.textContent = `${count} of ${body.rows.length} students`;
  };
  filter.addEventListener("input", apply);
  apply();
})();
"""


def _page(title: str, body: str, script: str = "") -> str:
    tail = f"<script>{script}</script>" if script else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title><style>{STYLE}</style></head>
<body>
{body}
{tail}
</body></html>
"""


def _table(
    header: list[str],
    rows: list[list[str]],
    cls: str = "",
    numeric: set[int] = frozenset(),
    widths: list[str] | None = None,
) -> str:
    """A table of cells that are already HTML; ``header`` is plain text. ``widths`` (CSS, one
    per column, "" for the rest) fix the columns, so that long text wraps inside its column
    instead of widening the page."""
    colgroup = ""
    if widths:
        cols = "".join(f'<col style="width:{w}">' if w else "<col>" for w in widths)
        colgroup = f"<colgroup>{cols}</colgroup>"
    head = "".join(f"<th{' class=num' if i in numeric else ''}>{esc(h)}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f'<table class="{cls}">{colgroup}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _rule(book: ClassBook) -> str:
    """The late rule in a sentence, and the weights folded away (they make a long line)."""
    late = book.schedule.describe_late_rule() if book.schedule else "no schedule, so no deadlines"
    total = sum(book.weights.weeks.values()) + sum(book.weights.notebooks.values())
    shares = [(k, w) for k, w in book.weights.weeks.items() if w]
    shares += [(f"notebook {k}", w) for k, w in book.weights.notebooks.items() if w]
    rows = [[esc(k), number(w), f"{100 * w / total:.1f} %"] for k, w in shares]
    table = _table(["item", "weight", "share"], rows, numeric={1, 2})
    return (
        f"<p class=muted>Late rule: {esc(late)}.</p>"
        f"<details><summary>Final grade: the weights</summary>{table}"
        "<p>Shares are normalised; an item with no score counts 0.</p></details>"
    )


# --------------------------------------------------------------------------- the class table
def _week_cell(item: Item | None) -> str:
    if item is None or item.status == "missing":
        return '<td class="num" data-sort="" title="nothing handed in"></td>'
    title = f"{item.key} {item.title}: {item.status}; raw {number(item.raw)}/{number(item.max_score)}"
    cls, mark = "num", ""
    if item.late:
        title += f"; {item.hours_late:.0f} h late"
        cls += " too-late" if item.status == "too late" else " late"
        mark = '<sup class="late-mark">late</sup>'
    if item.penalty:
        title += f"; −{item.penalty:.0%}"
    if item.extension_hours:
        title += f"; extension {item.extension_hours:g} h"
    score = number(item.score)
    return f'<td class="{cls}" data-sort="{esc(score)}" title="{esc(title)}">{esc(score)}{mark}</td>'


def _badges(s: StudentBook) -> str:
    badges = []
    if s.grading_errors:
        badges.append(("bad", "error", f"grading failed {s.grading_errors} time(s)"))
    if s.history and not s.sandboxed:
        badges.append(("bad", "no jail", "graded without the jail at least once: not authoritative"))
    if s.redactions:
        badges.append(("warn", "redacted", f"{s.redactions} message part(s) redacted"))
    if any(i.needs_grading for i in s.notebooks.values()):
        badges.append(("warn", "to grade", "notebook answers await manual grading"))
    if not s.history and not s.notebooks:
        badges.append(("bad", "nothing", "nothing handed in"))
    return "".join(f'<span class="badge {c}" title="{esc(t)}">{esc(label)}</span>' for c, label, t in badges)


def _notebook_percent(book: ClassBook, s: StudentBook) -> float | None:
    top = sum(book.maxima.get(f"nb:{a}", 0.0) for a in book.assignments)
    if not top:
        return None
    return 100 * sum(i.score or 0.0 for i in s.notebooks.values()) / top


def class_table(book: ClassBook) -> str:
    columns = [
        ("student", "text", "the student's id (links to their page)"),
        ("final %", "number", "final grade"),
    ]
    columns.append(("points", "number", "points in the coded weeks, after the late rule"))
    for w in book.week_ids:
        title = f"{w} {TITLES.get(w, '')} (max {number(book.maxima.get(w))})"
        columns.append((w, "number", title))
    if book.assignments:
        columns.append(("nb %", "number", "notebook points after the late rule, % of their maximum"))
    columns.append(("late", "number", "weeks and notebooks handed in late"))
    columns.append(("flags", "text", "grading errors, runs without the jail, redactions, notebooks to grade"))
    widths = {"student": "15%", "flags": "13%"}
    colgroup = "".join(f'<col style="width:{widths[n]}">' if n in widths else "<col>" for n, _, _ in columns)
    head = "".join(
        f'<th data-type="{kind}" class="{"num" if kind == "number" else ""}" title="{esc(tip)}">'
        f'<button type="button">{esc(name)}</button></th>'
        for name, kind, tip in columns
    )
    rows = []
    for s in book.students:
        name = s.person.name if s.person else ""
        search = f"{s.student} {name}".lower()
        label = esc(s.student) + (f' <span class="muted">{esc(name)}</span>' if name else "")
        cells = [
            f'<td data-sort="{esc(s.student.lower())}"><a href="students/{esc(page_name(s.student))}">{label}</a></td>',
            f'<td class="num" data-sort="{esc(number(s.final))}">{esc(number(s.final))}</td>',
            f'<td class="num" data-sort="{esc(number(s.total))}">{esc(number(s.total))}</td>',
            *(_week_cell(s.weeks.get(w)) for w in book.week_ids),
        ]
        if book.assignments:
            nb = number(_notebook_percent(book, s))
            late_nb = any(i.late for i in s.notebooks.values())
            cells.append(f'<td class="num{" late" if late_nb else ""}" data-sort="{nb}">{nb}</td>')
        late = len(s.late_items)
        cells.append(f'<td class="num" data-sort="{late}">{late or ""}</td>')
        cells.append(f"<td>{_badges(s)}</td>")
        rows.append(f'<tr data-search="{esc(search)}">{"".join(cells)}</tr>')
    return (
        f'<table id="class-table" class="fit"><colgroup>{colgroup}</colgroup>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


FOLD_AFTER = 12


def _causes(book: ClassBook) -> str:
    if not book.causes:
        return "<p>Nothing.</p>"
    items = []
    for cause in book.causes:
        who = []
        for student, detail in cause.entries:
            if student is None:
                who.append(esc(detail))
            else:
                link = f'<a href="students/{esc(page_name(student))}">{esc(student)}</a>'
                who.append(f"{link} <span class=muted>({esc(detail)})</span>" if detail else link)
        # A long list (late work in a class of 200) stays folded: the table should not move far.
        opened = " open" if len(who) <= FOLD_AFTER else ""
        items.append(
            f'<details class="cause"{opened}><summary><strong>{esc(cause.title)}</strong> '
            f"({len(who)}) — <span class=muted>{esc(cause.hint)}</span></summary>"
            f'<p class="who">{", ".join(who)}</p></details>'
        )
    return f'<div class="causes">{"".join(items)}</div>'


def _week_stats(book: ClassBook) -> str:
    rows = []
    for w in book.week_ids:
        items = [s.weeks[w] for s in book.students if s.weeks[w].score is not None]
        if not items:
            continue
        values = [i.score for i in items]
        top = book.maxima.get(w, 0.0)
        rows.append(
            [
                esc(w),
                esc(items[0].title),
                number(top),
                str(len(values)),
                f"{statistics.mean(values):.1f}",
                number(statistics.median(values)),
                str(sum(i.raw == top for i in items)),
                str(sum(i.late for i in items)),
            ]
        )
    header = ["week", "title", "max", "students", "mean", "median", "full marks", "late"]
    return _table(header, rows, numeric={2, 3, 4, 5, 6, 7})


def _hardest(failures: list[dict]) -> str:
    hardest = sorted(failures, key=lambda r: -r["failure_rate"])[:15]
    rows = [
        [
            esc(r["week"]),
            esc(messages.first_line(r["test"])),
            esc(r["students"]),
            esc(r["failed"]),
            f"{r['failure_rate']:.0%}",
            esc(r["most_common_message"]),
        ]
        for r in hardest
    ]
    header = ["week", "test", "students", "failed", "rate", "most common message"]
    return _table(header, rows, "fit", {2, 3, 4}, ["5%", "25%", "7%", "6%", "6%", ""])


def index_html(book: ClassBook, failures: list[dict], generated: datetime) -> str:
    body = f"""<header><h1>Gradebook: Transformer Deep Dive</h1>
<p class="muted">{len(book.students)} students · generated {esc(when(generated))}.</p>
{_rule(book)}</header>
<h2 id="look">Needs a look</h2>
{_causes(book)}
<h2 id="students">Students</h2>
<p><input id="filter" type="search" placeholder="Filter by student" aria-label="Filter by student">
<span id="shown" class="muted"></span> · click a column to sort · a week's score is after the late rule
(<span class="late">late</span>, <span class="too-late">after the window</span>); hover for the details</p>
{class_table(book)}
<h2 id="weeks">Per week</h2>
{_week_stats(book)}
<img src="score_histogram.png" alt="histogram of final grades and mean score per week">
<h2 id="hardest">Hardest tests</h2>
{_hardest(failures)}
<p class="muted">Files: gradebook.csv, gradebook_details.csv, test_failures.csv, canvas.csv, moodle.csv.</p>
"""
    return _page("Gradebook: Transformer Deep Dive", body, SCRIPT)


def summary_html() -> str:
    """``summary.html``, the page's old name: a link to ``index.html``, kept for old bookmarks."""
    return _page(
        "Gradebook: Transformer Deep Dive",
        '<meta http-equiv="refresh" content="0; url=index.html"><p>The gradebook is now '
        '<a href="index.html">index.html</a>.</p>',
    )


# --------------------------------------------------------------------------- a student's page
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
    return _table(ITEM_HEADER, _item_rows(items), "fit", {3, 4, 5, 8, 10}, widths)


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
    widths = ["13%", "10%", "7%", *[""] * len(week_ids), "14%"]
    header = ["pushed", "commit", "total", *week_ids, "notes"]
    return _table(header, rows, "fit", set(range(2, 3 + len(week_ids))), widths)


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
        table = _table(["test", "status", "points", "message"], rows, "fit", {2}, ["28%", "8%", "7%", ""])
        summary = (
            f"{esc(week_id)} {esc(TITLES.get(week_id, ''))}: "
            f"{esc(number(week.get('score')))}/{esc(number(week.get('max_score')))}"
            f"{f' · {failed} failed' if failed else ''}"
        )
        parts.append(f"<details{' open' if failed else ''}><summary>{summary}</summary>{table}</details>")
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


def student_html(book: ClassBook, s: StudentBook, server: str, generated: datetime) -> str:
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
    flags = _badges(s)
    name = f' <span class="muted">{esc(s.person.name)}</span>' if s.person and s.person.name else ""
    body = f"""<p><a href="../index.html">← class</a></p>
<h1>{esc(s.student)}{name}</h1>
<p>{" · ".join(facts)} {flags}</p>
{_rule(book)}
<h2>Weeks</h2>
{_items_table(list(s.weeks.values()))}
{"<h2>Notebooks</h2>" + _items_table(list(s.notebooks.values())) if s.notebooks else ""}
<h2>History</h2>
{_history(s, book.week_ids, server) if s.history else "<p>No report.</p>"}
<h2>Latest report, test by test</h2>
{_tests(latest, server)}
{_errors(s, server)}
"""
    return _page(f"{s.student}: Transformer Deep Dive", body)


def write_pages(book: ClassBook, failures: list[dict], out: Path, server: str, generated: datetime) -> None:
    (out / "index.html").write_text(index_html(book, failures, generated), encoding="utf-8")
    (out / "summary.html").write_text(summary_html(), encoding="utf-8")
    folder = out / "students"
    folder.mkdir(exist_ok=True)
    for s in book.students:
        (folder / page_name(s.student)).write_text(student_html(book, s, server, generated), encoding="utf-8")
