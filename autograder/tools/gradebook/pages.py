"""What the gradebook's HTML pages share: escaping, file names, links, the style, a table.

The pages (`class_page`: ``index.html`` and ``summary.html``; `student_page`:
``students/<student>.html``) work offline from a file:// URL: one file each, the style and the little JavaScript
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
from datetime import UTC, datetime

from ... import messages
from .book import ClassBook
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


def page(title: str, body: str, script: str = "") -> str:
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


def table(
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


def rule_html(book: ClassBook) -> str:
    """The late rule in a sentence, and the weights folded away (they make a long line)."""
    late = book.schedule.describe_late_rule() if book.schedule else "no schedule, so no deadlines"
    total = sum(book.weights.weeks.values()) + sum(book.weights.notebooks.values())
    shares = [(k, w) for k, w in book.weights.weeks.items() if w]
    shares += [(f"notebook {k}", w) for k, w in book.weights.notebooks.items() if w]
    rows = [[esc(k), number(w), f"{100 * w / total:.1f} %"] for k, w in shares]
    shares_table = table(["item", "weight", "share"], rows, numeric={1, 2})
    return (
        f"<p class=muted>Late rule: {esc(late)}.</p>"
        f"<details><summary>Final grade: the weights</summary>{shares_table}"
        "<p>Shares are normalised; an item with no score counts 0.</p></details>"
    )
