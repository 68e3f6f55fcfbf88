"""What `course` shows a person at a terminal: the grade as a table, progress while it grades,
colours only where they help, and a quiet stop when the reader of the output goes away.

Colours go to a terminal only: never into a pipe or a file, never with ``NO_COLOR`` set
(https://no-color.org) or ``TERM=dumb``. Names and messages in a report come from student
code, so they are shown through `messages` (no escape sequence of theirs reaches the terminal).
"""

from __future__ import annotations

import os
import select
import sys
from typing import TextIO

from . import messages
from .report import cleaned, sandbox_note, what_to_fix

_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}


def use_colour(stream: TextIO) -> bool:
    """Colours for ``stream``: a terminal, and neither ``NO_COLOR`` nor ``TERM=dumb``."""
    isatty = getattr(stream, "isatty", None)
    return bool(
        isatty and isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM", "") != "dumb"
    )


class Painter:
    """``paint(text, "red", "bold")``: ANSI colours when enabled, the plain text otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not styles:
            return text
        return f"\033[{';'.join(_CODES[s] for s in styles)}m{text}\033[0m"


def _score_style(score: float, max_score: float) -> str:
    if max_score and score >= max_score:
        return "green"
    return "red" if score == 0 else "yellow"


def _columns(rows: list[list[str]], styles: list[list[tuple[str, ...]]], paint: Painter) -> list[str]:
    """Left-aligned text columns (numbers right-aligned), padded before painting."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row, row_styles in zip(rows, styles):
        cells = []
        for i, (cell, width) in enumerate(zip(row, widths)):
            padded = cell.rjust(width) if i >= 2 else cell.ljust(width)
            cells.append(paint(padded, *row_styles[i]))
        lines.append("  ".join(cells).rstrip())
    return lines


def grade_summary(report: dict, *, colour: bool = False, submission: str | None = None) -> str:
    """The grade for a terminal: a header, one row per week (score, tests passed), a total,
    then what to fix (the first line of each failing test's message)."""
    report = cleaned(report)
    paint = Painter(colour)
    score, top = report["score"], report["max_score"]
    where = submission or report.get("submission", "")
    lines = [
        paint(f"Grade: {score:g} / {top:g}", "bold", _score_style(score, top))
        + paint(
            f"   {where} · seed {report['seed']} · isolation {report['isolation']} · "
            f"grader {report['grader_version']}",
            "dim",
        ),
    ]
    note = sandbox_note(report.get("sandbox"))
    if note:
        lines.append(paint(note, "yellow"))
    if report.get("grader_errors"):
        lines.append(paint("The grader itself failed in places; those tests will be graded again.", "yellow"))
    rows = [["week", "title", "score", "passed"]]
    styles: list[list[tuple[str, ...]]] = [[("bold",)] * 4]
    passed_all = total_all = 0
    for week_id, week in report["weeks"].items():
        passed = sum(t["status"] == "passed" for t in week["tests"])
        passed_all += passed
        total_all += len(week["tests"])
        style = (_score_style(week["score"], week["max_score"]),)
        rows.append(
            [
                week_id,
                messages.first_line(week.get("title", ""), 60),
                f"{week['score']:g} / {week['max_score']:g}",
                f"{passed} / {len(week['tests'])}",
            ]
        )
        styles.append([(), (), style, style])
    if len(report["weeks"]) > 1:
        rows.append(["total", "", f"{score:g} / {top:g}", f"{passed_all} / {total_all}"])
        styles.append([("bold",)] * 4)
    lines += ["", *_columns(rows, styles, paint)]
    for week_id, failing in what_to_fix(report["weeks"]):
        lines += ["", paint(f"{week_id}: what to fix", "bold")]
        for t in failing:
            first = messages.first_line(t["message"], 200) or t["status"]
            mark = paint(f"{t['status']:<7}", "red")
            name = messages.first_line(t["name"], 120)
            lines.append(f"  {mark} {name} ({t['max_score']:g} pts): {first}")
    return "\n".join(lines) + "\n"


class Progress:
    """While a grade runs: one line per week as its tests finish, and on a terminal a bar
    over all the tests (tqdm), both on stderr so that stdout keeps only the summary."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        # Decided now: while pytest runs, its capture stands in for the terminal at times.
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self.paint = Painter(use_colour(self.stream))
        self.total = 0
        self.bar = None

    def start(self, counts: dict[str, int]) -> None:
        """``counts``: the number of tests collected per week id, in the order they run."""
        self.total = sum(counts.values())

    def test_done(self, week_id: str) -> None:
        if not self.tty or not self.total:
            return
        if self.bar is None:  # made here, when pytest shows reports: not swallowed by its capture
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, unit="test", file=self.stream, leave=False)
        self.bar.set_description(week_id, refresh=False)
        self.bar.update(1)

    def week_done(self, week_id: str, title: str, rows: list, seconds: float) -> None:
        score, top = sum(r.score for r in rows), sum(r.max_score for r in rows)
        passed = sum(r.status == "passed" for r in rows)
        line = (
            f"  {week_id} {messages.first_line(title, 60)}: "
            + self.paint(f"{score:g} / {top:g} points", _score_style(score, top))
            + f", {passed} / {len(rows)} tests passed ({seconds:.1f} s)"
        )
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def stdout_reader_gone() -> bool:
    """True when stdout is a pipe whose reading end is closed (`course diff 1 | head -1` once
    head has exited): poll reports POLLERR on it. A broken pipe anywhere else is not ours to
    swallow."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def silence_stdout() -> None:
    """After the reader went away: stdout goes to /dev/null, so that the final flush at exit
    raises nothing (https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
