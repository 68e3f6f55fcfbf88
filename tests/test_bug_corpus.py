"""Every known bug of a week must cost points in that week's hidden suite, and the failing
test's message must name it (keywords the bug declares; the convention it breaks).

One test per week grades all of that week's mutants in a single process (`tests.bug_runs`),
each with the test it names (``catches``), and lists every bug that got through or went
unnamed. `python benchmarks/bug_naming.py` prints the same figures as a table.
"""

from __future__ import annotations

import re

import pytest

from autograder.checks import CONVENTION_SECTIONS
from autograder.weeks import ROOT, get_week
from tests.bug_runs import NAMED_GOAL, WEEK_FILES, run_week, week_bugs


@pytest.mark.parametrize("name", WEEK_FILES)
def test_every_known_bug_is_caught_and_named_in_its_week(name, tmp_path):
    outcomes = run_week(name, tmp_path)
    missed = [f"{o.bug.name}: {o.problem}" for o in outcomes if not o.caught]
    assert not missed, f"{len(missed)} of {len(outcomes)} known bugs of {name} got through:\n" + "\n".join(
        missed
    )
    unnamed = [f"{o.bug.name}: {o.problem}\n    message: {o.message[:400]}" for o in outcomes if not o.named]
    named = sum(o.named for o in outcomes)
    assert named >= NAMED_GOAL * len(outcomes), (
        f"{named} of {len(outcomes)} caught bugs of {name} are named (goal {NAMED_GOAL:.0%}); unnamed:\n"
        + "\n".join(unnamed)
    )


def test_every_bug_file_names_a_week():
    assert WEEK_FILES, "the corpus is empty"
    for name in WEEK_FILES:
        assert (ROOT / "solutions").exists() and get_week(name)
        assert week_bugs(name), f"tests/bugs/{name}.py holds no bugs"


def test_conventions_cited_are_the_headings_of_conventions_md():
    """checks.CONVENTION_SECTIONS is the list of headings; suites and bugs cite only those."""
    headings = re.findall(r"^## (.+)$", (ROOT / "course" / "CONVENTIONS.md").read_text(), re.M)
    assert tuple(headings) == CONVENTION_SECTIONS
    cited = set()
    for path in [*(ROOT / "autograder" / "suites").rglob("*.py"), *(ROOT / "tests" / "bugs").glob("*.py")]:
        cited |= set(re.findall(r'convention\(\s*"([^"]+)"', path.read_text()))
        cited |= set(re.findall(r'convention="([^"]+)"', path.read_text()))
    unknown = cited - set(CONVENTION_SECTIONS)
    assert not unknown, f"cited sections that course/CONVENTIONS.md does not have: {sorted(unknown)}"
