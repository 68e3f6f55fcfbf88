"""The student-facing copy of a report: what a commit status links to.

A report as `course grade` writes it is for the instructor: it holds the grading seed, the
hidden tests' ids (file paths and function names) and the grader's own paths. The public copy
keeps, per test, only its name (the first line of its docstring), status, points and message,
and cleans each message:

* paths of the grading machine are replaced (the submission's by ``exercises/``);
* a message that quotes any line of a hidden test or of a reference solution (or carries a long
  encoded blob) is cut before the first quotation: submission code that manages to read those
  files cannot mail them out through an exception;
* the grading seed is redacted in every form a message could spell it in (`seed_pattern`);
* every message goes through `autograder.messages` (control bytes, workflow commands and
  invisible format characters removed, capped at `MAX_MESSAGE`), and `to_markdown` renders
  names with `messages.markdown_inline` and messages with `messages.markdown_block`.

What was redacted is counted (``redactions``) so the gradebook can point the instructor at it.
The seed itself is never copied (the public copy has no ``seed`` key).
"""

from __future__ import annotations

import re
from pathlib import Path

from .. import messages
from ..messages import MAX_MESSAGE
from ..report import week_table, what_to_fix_markdown
from ..weeks import ROOT

MIN_LINE = 24  # shorter source lines are too generic to be worth redacting
BLOB = re.compile(r"[A-Za-z0-9+/=_-]{120,}")
REDACTED = "[redacted: grader source]"
WITHHELD = "[the rest of this message quoted the grader's own files and was withheld]"
REDACTED_SEED = "[redacted: seed]"

# The seed's forms that are redacted. Seeds are drawn below 2**31, so nearly all have 9 or 10
# digits; a small seed is not much of a secret and its forms are everyday numbers (a shape, a
# dimension, `d_k = 64`), so:
#  * a seed of fewer than SEED_MIN_DIGITS decimal digits (below 1000) is not redacted at all;
#  * otherwise its decimal, hexadecimal (any case, with or without 0x), octal (with or without
#    0o) and binary (with or without 0b) digits are, each only if at least SEED_MIN_DIGITS long;
#  * a seed of at least SEED_SPREAD_DIGITS decimal digits is also redacted with up to two
#    separators between any two digits (1_234_567, 1,234,567, "1 2 3 4 5 6 7", one digit a line)
#    and with its decimal digits reversed (7654321), forms a shorter number takes by accident.
# Matches are substrings (no word boundaries): 0012345678 and x1234567y hide the seed too.
SEED_MIN_DIGITS = 4
SEED_SPREAD_DIGITS = 6
_SEPARATORS = r"[\s_,.'’:;/|-]{0,2}"


def secret_lines(root: Path = ROOT) -> set[str]:
    """Distinctive lines of the hidden suites and the reference solutions that appear nowhere in
    what students are given (stubs, public tests, the engine)."""
    secret: set[str] = set()
    for pattern in ("autograder/suites/**/*.py", "solutions/**/*.py"):
        for path in root.glob(pattern):
            secret.update(_lines(path))
    public: set[str] = set()
    for pattern in ("exercises/**/*.py", "autograder/*.py", "autograder/classroom/*.py"):
        for path in root.glob(pattern):
            public.update(_lines(path))
    return secret - public


def _lines(path: Path) -> set[str]:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return set()
    return {line.strip() for line in text.splitlines() if len(line.strip()) >= MIN_LINE}


def seed_pattern(seed: object) -> re.Pattern | None:
    """What `clean_message` redacts of the grading seed (see SEED_MIN_DIGITS), or None."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        return None
    decimal = str(seed)
    if len(decimal) < SEED_MIN_DIGITS:
        return None
    spread = len(decimal) >= SEED_SPREAD_DIGITS
    forms = [("", decimal), ("(?:0x)?", f"{seed:x}"), ("(?:0o)?", f"{seed:o}"), ("(?:0b)?", f"{seed:b}")]
    reverse = decimal[::-1].lstrip("0")
    if spread and len(reverse) >= SEED_SPREAD_DIGITS and reverse != decimal:
        forms.append(("", reverse))
    between = _SEPARATORS if spread else ""
    alternatives = [
        prefix + between.join(re.escape(ch) for ch in digits)
        for prefix, digits in forms
        if len(digits) >= SEED_MIN_DIGITS
    ]
    alternatives.sort(key=len, reverse=True)  # the longest form first where two start alike
    return re.compile("|".join(alternatives), re.IGNORECASE)


def clean_message(
    text: str, secret: set[str], paths: list[str], seed: re.Pattern | int | None = None
) -> tuple[str, int]:
    """(cleaned message, number of redactions); ``seed``: the grading seed or its `seed_pattern`."""
    redactions = 0
    # Control and format characters go first: inserted into a quoted line of grader source
    # they would otherwise hide it from the comparison below.
    text = messages.clean(text, limit=None)
    for path in paths:
        text = text.replace(
            path.rstrip("/") + "/", "exercises/" if Path(path).name == "submission" else "<grader>/"
        )
    for line in secret:
        if line in text:
            redactions += text.count(line)
            text = text.replace(line, REDACTED)
    text, blobs = BLOB.subn(REDACTED, text)
    redactions += blobs
    if redactions:
        # What surrounds a quoted grader line is grader source too (its short lines, its
        # layout): keep the message up to the first quotation only.
        text = text.split(REDACTED, 1)[0].rstrip() + "\n" + WITHHELD
    pattern = seed if isinstance(seed, re.Pattern) else seed_pattern(seed)
    if pattern is not None:
        text, seeds = pattern.subn(REDACTED_SEED, text)
        redactions += seeds
    return messages.clean(text, MAX_MESSAGE), redactions


def sanitize(wrapper: dict, secret: set[str] | None = None) -> dict:
    """The public report of a graded commit (see the module docstring)."""
    secret = secret_lines() if secret is None else secret
    paths = sorted(wrapper.get("engine_paths", []), key=len, reverse=True)
    public = {
        "student": wrapper["student"],
        "repository": wrapper["repository"],
        "commit": wrapper["commit"],
        "graded_at": wrapper.get("graded_at"),
        "weeks_graded": wrapper.get("weeks_graded", []),
        "redactions": 0,
    }
    report = wrapper.get("report")
    if not report:
        public.update(
            score=None, max_score=None, weeks={}, error="grading could not run; the instructor has been told"
        )
        return public
    seed = seed_pattern(report.get("seed"))
    weeks = {}
    for week_id, week in report["weeks"].items():
        tests = []
        for t in week["tests"]:
            message, n = clean_message(t.get("message") or "", secret, paths, seed)
            name, m = clean_message(t["name"], secret, paths, seed)
            public["redactions"] += n + m
            tests.append(
                {
                    "name": name,
                    "status": t["status"],
                    "score": t["score"],
                    "max_score": t["max_score"],
                    "message": message,
                }
            )
        weeks[week_id] = {
            "title": week.get("title", ""),
            "score": week["score"],
            "max_score": week["max_score"],
            "tests": tests,
        }
    public.update(score=report["score"], max_score=report["max_score"], weeks=weeks)
    public["authoritative"] = bool((report.get("sandbox") or {}).get("authoritative"))
    return public


def to_markdown(public: dict) -> str:
    """The report as a commit comment: points per week, then what failed and why."""
    head = f"{public['commit'][:10]}, graded {public.get('graded_at') or ''}".strip()
    if public.get("error"):
        return f"## Grade: not available\n\n{head}\n\n{public['error']}.\n"
    lines = [
        f"## Grade: {public['score']:g} / {public['max_score']:g}",
        "",
        f"commit {head}",
        "",
    ]
    if not public.get("authoritative", True):
        lines += [
            "> ⚠️ Not an authoritative grade: graded without the sandbox. Your instructor will regrade.",
            "",
        ]
    lines += week_table(public["weeks"])
    lines += what_to_fix_markdown(public["weeks"], full_messages=True)
    lines += ["", "Hidden tests draw fresh inputs at every grading; their messages name what was checked."]
    return "\n".join(lines) + "\n"


STATUS_LIMIT = 140  # GitHub's limit on a commit status's description


def status_line(public: dict) -> tuple[str, str]:
    """(state, description) of the commit status: ``success`` whenever the commit was graded,
    whatever the score (the description says it; work in progress and weeks not due yet are not
    failures), ``error`` when grading could not run. The student's workflow reads the score back
    from the description (`student.SCORE`)."""
    if public.get("error"):
        return "error", "Grading could not run; your instructor has been told."
    weeks = " · ".join(f"{w} {v['score']:g}/{v['max_score']:g}" for w, v in public["weeks"].items())
    text = f"{public['score']:g}/{public['max_score']:g} points ({weeks})"
    if len(text) > STATUS_LIMIT:
        text = f"{public['score']:g}/{public['max_score']:g} points over {len(public['weeks'])} weeks"
    state = "success"
    if not public.get("authoritative", True):
        text = "not authoritative: " + text
    return state, messages.first_line(text, STATUS_LIMIT)
