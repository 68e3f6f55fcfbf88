"""Untrusted text made safe to show: the one place that cleans it.

Failure messages, tracebacks and test names come (in part) from student code, and student code
chooses them. Every rendering of a grade report (JSON, Markdown, JUnit XML, GitHub Classroom's
output, the terminal, the student-facing copy, the gradebook) passes that text through this
module, so what any of them may carry is decided here once:

`clean` (everything else builds on it)
    * any input becomes a ``str`` (``None`` is empty, bytes are decoded as UTF-8);
    * line breaks become ``\\n`` (``\\r\\n``, a bare ``\\r``, U+2028, U+2029);
    * gone: C0 controls but ``\\n`` and ``\\t`` (ESC, NUL, ``\\x0b``...), DEL, C1 controls
      (U+0080-U+009F, CSI included), surrogates, U+FFFE and U+FFFF (none of which XML 1.0 can
      carry), and every invisible *format* character (Unicode category Cf: the bidirectional
      overrides and isolates U+202A-U+202E and U+2066-U+2069, the marks U+200E/U+200F/U+061C,
      zero-width spaces and joiners, U+FEFF, tag characters): they reorder or hide text on
      screen, and they could split a quoted line of grader source so that the sanitiser does
      not recognise it;
    * GitHub Actions workflow commands are neutralised. The runner reads every output line of a
      step: a line whose left-trimmed text starts with ``::`` is a command (``::notice``,
      ``::stop-commands::``, ``::add-mask::``), and the legacy form ``##[command]`` is a command
      *anywhere* in a line (the runner looks for it with ``IndexOf``, unanchored). So a line whose
      left-stripped text starts with ``::`` gets `NEUTRAL` (``›``, U+203A) in front of that
      text, and every ``##[`` becomes ``##›[``. The mark is visible (the student sees that the
      line was changed) and is not whitespace (the runner's ``TrimStart`` cannot remove it); it
      means nothing to Markdown, HTML, XML or a terminal;
    * the length is capped in one place (`cut`), with a visible mark (`MARK`); the result is at
      most ``limit`` characters long, so cleaning twice changes nothing.

`markdown_inline`, `markdown_block`, `terminal`, `first_line`, `workflow_value` and `csv_cell`
are what the renderers call. The two lengths, `MAX_MESSAGE` and `MAX_LINE`, are the only cut
lengths: nothing else slices a message.
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata

MAX_MESSAGE = 2000
"""Characters of one message (a failure message with its traceback), wherever it is kept or shown."""
MAX_LINE = 300
"""Characters of a message shown on one line: a Markdown list item or table cell, a JUnit
``message`` attribute, a gradebook cell."""

MARK = "[…]"
"""Where text was cut: `` […]`` at the end, ``[…] `` at the start, `` […] `` in the middle."""
NEUTRAL = "›"
"""Put before ``::`` at the start of a line and inside ``##[`` (see the module docstring)."""

# C0 controls but \t and \n, and DEL; \r is turned into \n before.
_ASCII_DROP = {c: None for c in (*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F)}
_BREAKS = re.compile("\r\n|[\r\u2028\u2029]")
_BACKTICKS = re.compile("`+")
_MARKDOWN_SPECIAL = re.compile(r"[\\`*\[\]|]")


@functools.lru_cache(maxsize=4096)
def _dropped(ch: str) -> bool:
    """True for a non-ASCII character that `clean` removes."""
    return ch in "\ufffe\uffff" or unicodedata.category(ch) in ("Cc", "Cf", "Cs")


def as_text(value: object) -> str:
    """Any value as a ``str``: ``None`` is empty, bytes are decoded as UTF-8 (with replacement)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a value whose __str__ fails is still reported
        return f"<unprintable {type(value).__name__}>"


def _neutralise(text: str) -> str:
    """Workflow commands made inert: ``##[`` anywhere, ``::`` at the start of a line."""
    if "##[" in text:
        text = text.replace("##[", "##" + NEUTRAL + "[")
    if "::" not in text:
        return text
    lines = text.split("\n")
    for i, line in enumerate(lines):
        body = line.lstrip()
        if body.startswith("::"):
            lines[i] = line[: len(line) - len(body)] + NEUTRAL + body
    return "\n".join(lines)


def cut(text: str, limit: int | None = MAX_MESSAGE, keep: str = "head") -> str:
    """``text`` in at most ``limit`` characters, with `MARK` where it was cut.

    ``keep``: ``"head"`` (the start, for a message), ``"tail"`` (the end, for a traceback: its
    last frames and the exception are the useful part) or ``"ends"`` (both halves, for a
    message followed by its traceback). A cut starts no new line: every line of the result
    starts where a line of ``text`` started, but for the first line of a tail cut, which starts
    with the mark; so a cut cannot move a ``::`` to the start of a line. A limit too small for
    the mark keeps the first ``limit`` characters. ``limit=None`` does not cut.
    """
    if limit is None or len(text) <= limit:
        return text
    limit = max(limit, 0)
    if keep == "head":
        mark = " " + MARK
    elif keep == "tail":
        mark = MARK + " "
    elif keep == "ends":
        mark = " " + MARK + " "
    else:
        raise ValueError(f"keep must be 'head', 'tail' or 'ends', not {keep!r}")
    room = limit - len(mark)
    if room < 2:
        return text[:limit]
    if keep == "head":
        return text[:room] + mark
    if keep == "tail":
        return mark + text[len(text) - room :]
    head = (room + 1) // 2
    return text[:head] + mark + text[len(text) - (room - head) :]


def clean(text: object, limit: int | None = MAX_MESSAGE, keep: str = "head") -> str:
    """``text`` safe for any rendering (see the module docstring); at most ``limit`` characters.

    Idempotent: ``clean(clean(t)) == clean(t)`` for the same ``limit``.
    """
    text = _BREAKS.sub("\n", as_text(text)).translate(_ASCII_DROP)
    if not text.isascii():
        text = "".join(ch for ch in text if ch < "\x80" or not _dropped(ch))
    text = cut(_neutralise(text), limit, keep)
    # A cut neither removes a mark nor creates a command (see `cut`); checked again all the same.
    return _neutralise(text)


def first_line(text: object, limit: int = MAX_LINE) -> str:
    """The first non-blank line of a cleaned message, stripped and cut to ``limit``."""
    body = clean(text, limit=None).strip()
    return cut(body.split("\n", 1)[0].strip(), limit)


def markdown_inline(text: object, limit: int = MAX_LINE) -> str:
    """The first line of a message for a Markdown list item or table cell.

    HTML is escaped (``&``, ``<``, ``>``: no tags, no entities, no autolinks), and a backslash
    goes before ``\\``, backticks, ``*``, ``[``, ``]`` and ``|``: no code spans, emphasis,
    links or images, and no table cell ends early.
    """
    line = html.escape(first_line(text, limit), quote=False)
    return _MARKDOWN_SPECIAL.sub(lambda m: "\\" + m.group(0), line)


def markdown_block(text: object, limit: int = MAX_MESSAGE, indent: str = "", keep: str = "head") -> str:
    """A cleaned message as a fenced code block that nothing inside can close.

    The fence is made of backticks, one longer than the longest run of backticks in the text
    (at least three): only a line of at least that many backticks could close it, and there is
    none. ``~~~`` runs of any length cannot close a backtick fence. Every line (the fences
    included) starts with ``indent``, e.g. two spaces to stay inside a list item.
    """
    body = clean(text, limit, keep)
    longest = max((len(run) for run in _BACKTICKS.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    lines = [fence + "text", *body.split("\n"), fence]
    return "\n".join(indent + line for line in lines)


def terminal(text: object, limit: int = MAX_MESSAGE, keep: str = "head") -> str:
    """A cleaned message for a terminal (or a CI log): no escape sequence, no control byte and
    no workflow command survives."""
    return clean(text, limit, keep)


def workflow_value(text: object, limit: int = MAX_LINE) -> str:
    """Text for the data part of a workflow command (``::notice title=T::DATA``): cleaned, then
    ``%``, ``\\r`` and ``\\n`` escaped as the runner expects, so it stays on its line."""
    value = clean(text, limit)
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def csv_cell(text: object, limit: int = MAX_LINE) -> str:
    """The first line of a message for a spreadsheet cell: a leading ``=``, ``+``, ``-`` or
    ``@`` (a formula to a spreadsheet program) gets a ``'`` in front."""
    line = first_line(text, limit)
    return "'" + line if line[:1] in ("=", "+", "-", "@") else line
