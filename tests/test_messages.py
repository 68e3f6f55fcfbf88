"""Untrusted text in grade reports: `autograder.messages`, and every rendering that uses it."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from autograder import messages
from autograder import report as render
from autograder.classroom import sanitize, student
from autograder.messages import MAX_LINE, MAX_MESSAGE, NEUTRAL
from autograder.tools import gradebook
from autograder.tools.gradebook.book import build_book
from autograder.tools.gradebook.class_page import _hardest

# Everything XML 1.0 cannot carry (its Char production, complemented).
XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
HOSTILE = [
    "\x1b[2J cleared your screen",
    "a NUL \x00 byte",
    "vertical\x0btab",
    "::stop-commands::zzz",
    "  ::notice title=Points::Points 46/46",
    "##[set-output name=x;]y",
    "mid-line ##[add-mask]Failed",
    "<img src=x onerror=alert(1)>",
    "a | pipe and a fence\n```\nafter the fence\n~~~~\n`````",
    "right-to-left \u202eevil\u202c",
    "CR\r::warning::carriage return",
    "line separator\u2028::error::u2028",
    "\x9b31mC1 CSI\x85::debug::NEL",
]


def command_lines(text: str) -> list[str]:
    """Lines that GitHub's runner would take as workflow commands."""
    lines = re.split("\r\n|[\r\n]", text)
    return [line for line in lines if line.lstrip().startswith("::") or "##[" in line]


def assert_inert(text: str) -> None:
    assert command_lines(text) == [], command_lines(text)
    assert "\x1b" not in text and "\x00" not in text and "\x9b" not in text
    assert not XML_INVALID.search(text)
    assert "\u202e" not in text


# --------------------------------------------------------------------------- clean
def test_clean_takes_any_value():
    assert messages.clean(None) == ""
    assert messages.clean(b"caf\xc3\xa9 \xff") == "café \ufffd"
    assert messages.clean(42) == "42"

    class Bad:
        def __str__(self):
            raise RuntimeError("no")

    assert messages.clean(Bad()) == "<unprintable Bad>"


def test_clean_normalises_line_breaks_and_drops_controls():
    assert messages.clean("a\r\nb\rc\u2028d\u2029e") == "a\nb\nc\nd\ne"
    assert messages.clean("t\tab\nnew\x00\x07\x0b\x0c\x1b[2J\x7f") == "t\tab\nnew[2J"
    assert messages.clean("c1\x80\x85\x9b\x9f") == "c1"
    assert (
        messages.clean("bidi \u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069 marks") == "bidi  marks"
    )
    assert messages.clean("zero\u200bwidth\ufeff\u200d") == "zerowidth"
    assert messages.clean("lone \ud800 surrogate \udfff \ufffe\uffff") == "lone  surrogate  "
    # Ordinary text survives: accents, emoji, CJK, a variation selector.
    assert messages.clean("café ✅ ⏱️ 注意 d_k = 64") == "café ✅ ⏱️ 注意 d_k = 64"


def test_clean_leaves_nothing_xml_cannot_carry():
    everything = "".join(chr(c) for c in range(0x10000)) + "\U0001f600\U0010ffff"
    cleaned = messages.clean(everything, limit=None)
    assert not XML_INVALID.search(cleaned)
    assert not re.search("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]", cleaned)
    ET.fromstring(f"<m>{cleaned.replace('&', '&amp;').replace('<', '&lt;')}</m>")


def test_clean_neutralises_workflow_commands():
    text = messages.clean(
        "::notice::x\n   ::stop-commands::t\n\t::error::e\nok ::not-a-command::\nz ##[group]g"
    )
    lines = text.split("\n")
    assert lines[0] == NEUTRAL + "::notice::x"
    assert lines[1] == "   " + NEUTRAL + "::stop-commands::t"
    assert lines[2] == "\t" + NEUTRAL + "::error::e"
    assert lines[3] == "ok ::not-a-command::", "`::` in the middle of a line is no command"
    assert lines[4] == f"z ##{NEUTRAL}[group]g", "`##[` is a command anywhere in a line"
    assert command_lines(text) == []
    # A command put together by a dropped character is caught too.
    assert command_lines(messages.clean(":\x00:notice::x\n#\x1b#[add-mask]y")) == []


def test_cut_marks_the_cut_and_respects_the_limit():
    text = "0123456789" * 50
    head = messages.clean(text, limit=100)
    assert len(head) == 100 and head.endswith(" […]") and head.startswith("0123")
    tail = messages.cut(text, 100, keep="tail")
    assert len(tail) == 100 and tail.startswith("[…] ") and tail.endswith("789")
    ends = messages.cut(text, 100, keep="ends")
    assert len(ends) == 100 and ends.startswith("0123") and ends.endswith("789") and " […] " in ends
    assert messages.cut("short", 100) == "short"
    assert messages.cut(text, None) == text
    assert len(messages.clean("x" * 10 * MAX_MESSAGE)) == MAX_MESSAGE


def test_a_cut_never_starts_a_command():
    text = "x" * 95 + "::notice::a\n" + "y" * 50 + "##[group]" + "z" * 100
    for keep in ("head", "tail", "ends"):
        for limit in range(5, 260, 3):
            assert command_lines(messages.clean(text, limit=limit, keep=keep)) == [], (keep, limit)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=30),
            st.sampled_from(["::", "##[", "#", ":", "\n", "\r", " ", "\x00", "\u202e", "```", "\u2028"]),
        ),
        max_size=40,
    ).map("".join),
    st.integers(min_value=0, max_value=200),
    st.sampled_from(["head", "tail", "ends"]),
)
def test_clean_is_safe_bounded_and_idempotent(text, limit, keep):
    cleaned = messages.clean(text, limit=limit, keep=keep)
    assert_inert(cleaned)
    assert len(cleaned) <= limit
    assert messages.clean(cleaned, limit=limit, keep=keep) == cleaned


# --------------------------------------------------------------------------- renderers
def test_first_line_and_terminal():
    assert messages.first_line("\n\n  first \x1b[1m line \nsecond") == "first [1m line"
    assert len(messages.first_line("y" * 5000)) == MAX_LINE
    shown = messages.terminal("\x1b]0;title\x07\x1b[31mred\x9b0m\n::error::x")
    assert shown == f"]0;title[31mred0m\n{NEUTRAL}::error::x"


def test_markdown_inline_is_inert():
    text = messages.markdown_inline(
        "<img src=x onerror=alert(1)> & `code` | [link](http://x) ![i](y) **b** \\"
    )
    assert "<" not in text and ">" not in text and "&lt;img" in text and "&amp;" in text
    assert "\\`code\\`" in text and "\\|" in text and "\\[link\\]" in text and "!\\[i\\]" in text
    assert "\\*\\*b\\*\\*" in text and text.endswith("\\\\")
    assert messages.markdown_inline("one\ntwo") == "one"


def fenced_blocks(markdown: str) -> tuple[list[list[str]], int]:
    """(contents of the fenced code blocks, number of fence lines), as CommonMark reads them."""
    blocks, fences, current, opener = [], 0, None, None
    for line in markdown.split("\n"):
        stripped = line.strip()
        if current is None:
            m = re.match(r"(`{3,}|~{3,})", stripped)
            if m:
                opener, current = m.group(1), []
                fences += 1
        elif re.fullmatch(re.escape(opener[0]) + f"{{{len(opener)},}}", stripped):
            blocks.append(current)
            current = None
            fences += 1
        else:
            current.append(line)
    assert current is None, "a code block is never closed"
    return blocks, fences


def test_markdown_block_cannot_be_closed_from_inside():
    text = "a\n```\n`````` x\n~~~\n~~~~~~~~\n    ````````\nlast"
    block = messages.markdown_block(text, indent="  ")
    lines = block.split("\n")
    assert lines[0] == "  " + "`" * 9 + "text" and lines[-1] == "  " + "`" * 9
    blocks, fences = fenced_blocks(block)
    assert fences == 2 and len(blocks) == 1
    assert [line[2:] for line in blocks[0]] == text.split("\n")
    assert messages.markdown_block("plain").split("\n")[0] == "```text"


def test_workflow_value_and_csv_cell():
    assert messages.workflow_value("50% done\nnext\r::x") == f"50%25 done%0Anext%0A{NEUTRAL}::x"
    assert messages.csv_cell("=HYPERLINK(x)\nmore") == "'=HYPERLINK(x)"
    assert messages.csv_cell("-1 is wrong") == "'-1 is wrong" and messages.csv_cell("fine") == "fine"


# --------------------------------------------------------------------------- end to end
def hostile_report(seed: int = 1234567) -> dict:
    tests = [
        {
            "id": f"w01::t{i}",
            "name": f"hostile {i} | <b>name</b> ::x",
            "status": ["failed", "error", "timeout", "skipped"][i % 4],
            "score": 0,
            "max_score": 1,
            "message": f"{text}\n{HOSTILE[(i + 1) % len(HOSTILE)]}",
            "duration": 0.1,
            "hidden": True,
        }
        for i, text in enumerate(HOSTILE)
    ]
    tests.append(
        {"id": "w01::ok", "name": "ok", "status": "passed", "score": 1, "max_score": 1, "message": ""}
    )
    week = {"title": "Scaled dot-product attention", "score": 1, "max_score": len(tests), "tests": tests}
    return {
        "score": 1,
        "max_score": len(tests),
        "seed": seed,
        "isolation": "process",
        "grader_version": "x",
        "weeks": {"w01": week},
    }


def wrapper_of(report: dict) -> dict:
    return {
        "student": "eve",
        "repository": "classroom/tdd-eve",
        "commit": "a" * 40,
        "graded_at": "2027-01-20T08:00:00+00:00",
        "engine_paths": ["/tmp/grading-x/engine", "/tmp/grading-x/submission"],
        "report": report,
    }


def test_every_rendering_of_a_hostile_report_is_inert(tmp_path):
    report = hostile_report()

    junit = tmp_path / "junit.xml"
    render.write_junit(report, junit)
    root = ET.parse(junit).getroot()
    assert len(root.findall(".//testcase")) == len(HOSTILE) + 1
    xml_text = junit.read_text()

    render.write_json(report, tmp_path / "report.json")
    json_text = (tmp_path / "report.json").read_text()
    stored = json.loads(json_text)
    assert all(t["message"] == messages.clean(t["message"]) for t in stored["weeks"]["w01"]["tests"])

    markdown = render.to_markdown(report)
    assert "<img" not in markdown and "<b>" not in markdown and "&lt;img" in markdown

    terminal = "\n".join(messages.terminal(t["message"]) for t in report["weeks"]["w01"]["tests"])

    payload = json.loads(base64.b64decode(render.to_classroom(report)))
    classroom = "\n".join(f"{t['name']}\n{t['message']}" for t in payload["tests"])

    public = sanitize.sanitize(wrapper_of(report), secret=set())
    public_markdown = sanitize.to_markdown(public)
    public_json = json.dumps(public, ensure_ascii=False)
    summary, notices = student.feedback(report)

    renderings = {
        "junit": xml_text,
        "json": json_text,
        "markdown": markdown,
        "terminal": terminal,
        "classroom": classroom,
        "public markdown": public_markdown,
        "public json": public_json,
        "summary": summary,
    }
    for name, text in renderings.items():
        assert command_lines(text) == [], name
        assert "\x1b" not in text and "\x00" not in text and "\u202e" not in text, name
        assert not XML_INVALID.search(text), name
    assert all(line.startswith("::notice title=Public tests::") for line in notices)

    # The student-facing Markdown: every message stays inside its own code block.
    blocks, fences = fenced_blocks(public_markdown)
    assert fences % 2 == 0 and len(blocks) == len(HOSTILE)
    outside = "\n".join(
        line for line in public_markdown.split("\n") if not any(line in block for block in blocks)
    )
    for hostile in ("after the fence", "onerror", "set-output", "stop-commands"):
        assert hostile not in outside
        assert any(hostile in "\n".join(block) for block in blocks)


def test_gradebook_cells_are_cleaned():
    report = hostile_report()
    report["weeks"]["w01"]["tests"][0]["message"] = '=HYPERLINK("http://x")\x1b[2J'
    graded = gradebook.Graded(
        student="eve", repository="r", commit="c", time=datetime(2027, 1, 1, tzinfo=UTC), report=report
    )
    rows = {r["test"]: r for r in gradebook.failure_rates(build_book([graded], None))}
    assert rows["hostile 0 | <b>name</b> ::x"]["most_common_message"] == '\'=HYPERLINK("http://x")[2J'
    for row in rows.values():
        assert_inert(row["most_common_message"])
        assert len(row["most_common_message"]) <= MAX_LINE + 1
    html = _hardest(list(rows.values()))
    assert "<img" not in html and "&lt;img" in html


# --------------------------------------------------------------------------- the seed
def test_sanitiser_redacts_the_seed_in_every_form():
    seed = 1234567
    forms = [
        "1234567",
        "0x12d687",
        "0X12D687",
        "12d687",
        "1_234_567",
        "1,234,567",
        "1 2 3 4 5 6 7",
        "7654321",
    ]
    forms += ["0o4553207", "0b100101101011010000111"]
    report = hostile_report(seed)
    tests = report["weeks"]["w01"]["tests"]
    tests[0]["message"] = "seeds: " + " / ".join(forms) + "\nthe head dimension d_k = 64 and n = 1000"
    tests[1]["name"] = f"named after {seed:#x}"
    public = sanitize.sanitize(wrapper_of(report), secret=set())
    assert "seed" not in public
    text = json.dumps(public)
    for form in forms:
        assert form.lower() not in text.lower(), form
    message = public["weeks"]["w01"]["tests"][0]["message"]
    assert message.count(sanitize.REDACTED_SEED) == len(forms)
    assert "d_k = 64" in message and "n = 1000" in message
    assert public["weeks"]["w01"]["tests"][1]["name"] == "named after " + sanitize.REDACTED_SEED
    assert public["redactions"] == len(forms) + 1
    assert sanitize.REDACTED_SEED in sanitize.to_markdown(public)


def test_small_seeds_and_everyday_numbers_stay():
    assert sanitize.seed_pattern(64) is None and sanitize.seed_pattern(999) is None
    assert sanitize.seed_pattern(None) is None and sanitize.seed_pattern(True) is None
    four = sanitize.seed_pattern(1234)
    assert four.sub("#", "seed 1234") == "seed #"
    assert four.sub("#", "shape (1, 2, 3, 4), 4321, 0x4d2") == "shape (1, 2, 3, 4), 4321, 0x4d2"
    message, n = sanitize.clean_message("d_k = 64, seed 64", set(), [], seed=64)
    assert (message, n) == ("d_k = 64, seed 64", 0)


def test_sanitised_messages_are_cleaned_before_matching_grader_source():
    line = "assert torch.allclose(out, expected_output_of_the_hidden_test)"
    hidden = line[:20] + "\u200b" + line[20:]  # a zero-width space would hide the quotation
    message, n = sanitize.clean_message(f"RuntimeError: {hidden}\nrest", {line}, [])
    assert n == 1 and line not in message and sanitize.WITHHELD in message
    long, _ = sanitize.clean_message("z" * 10 * MAX_MESSAGE + "\n::error::x", set(), [])
    assert len(long) <= MAX_MESSAGE and command_lines(long) == []


def test_host_keeps_the_end_of_a_long_traceback():
    from autograder.child_side import describe_exception

    def deep(n):
        if n == 0:
            raise ValueError("the bottom " + "m" * 3 * MAX_MESSAGE)
        return deep(n - 1)

    try:
        deep(200)
    except ValueError as exc:
        described = describe_exception(exc)
    assert len(described["message"]) <= MAX_MESSAGE and described["message"].startswith("the bottom")
    assert len(described["traceback"]) <= MAX_MESSAGE
    assert described["traceback"].startswith("[…] ") and described["traceback"].rstrip().endswith("mmm")
