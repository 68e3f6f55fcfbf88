"""The class page (``index.html``): what needs a look, by cause; the class table, sortable and
filterable; statistics per week; the hardest tests. And ``summary.html``, the page's old name.

The table fits 1280 pixels for nine weeks and more: its columns share a fixed width (long ids
wrap), and details live on the student pages.
"""

from __future__ import annotations

import statistics
from datetime import datetime

from ... import messages
from .book import TITLES, ClassBook, Item, StudentBook
from .exports import number
from .pages import esc, page, page_name, rule_html, table, when

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


def badges(s: StudentBook) -> str:
    badges = []
    if s.grading_errors:
        badges.append(("bad", "error", f"grading failed {s.grading_errors} time(s)"))
    if any(g.report and not g.authoritative for g in s.history):
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
        search = f"{s.student} {name}".strip().lower()
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
        cells.append(f"<td>{badges(s)}</td>")
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
    return table(header, rows, numeric={2, 3, 4, 5, 6, 7})


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
    return table(header, rows, "fit", {2, 3, 4}, ["5%", "25%", "7%", "6%", "6%", ""])


def index_html(book: ClassBook, failures: list[dict], generated: datetime) -> str:
    body = f"""<header><h1>Gradebook: Transformer Deep Dive</h1>
<p class="muted">{len(book.students)} students · generated {esc(when(generated))}.</p>
{rule_html(book)}</header>
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
    return page("Gradebook: Transformer Deep Dive", body, SCRIPT)


def summary_html() -> str:
    """``summary.html``, the page's old name: a link to ``index.html``, kept for old bookmarks."""
    return page(
        "Gradebook: Transformer Deep Dive",
        '<meta http-equiv="refresh" content="0; url=index.html"><p>The gradebook is now '
        '<a href="index.html">index.html</a>.</p>',
    )
