"""The comparisons' messages: diagnoses, worked examples, and probes that raise."""

from __future__ import annotations

import pytest
import torch

from autograder.checks import (
    CONVENTION_SECTIONS,
    Example,
    GradingFailure,
    check_close,
    check_equal,
    convention,
)
from autograder.isolation import SubmissionError, SubmissionTimeout


def test_a_matching_diagnosis_names_the_bug_and_the_convention():
    expected = torch.tensor([1.0, 2.0])
    wrong = torch.tensor([2.0, 1.0])
    with pytest.raises(GradingFailure) as err:
        check_close(
            wrong,
            expected,
            what="f(x)",
            diagnose=[(wrong.clone(), f"reversed: see {convention('Masks and attention')}")],
        )
    assert str(err.value) == "f(x): reversed: see course/CONVENTIONS.md § Masks and attention"


def test_lazy_diagnoses_run_only_after_a_mismatch():
    calls = []

    def probes():
        calls.append(1)
        return []

    check_close(torch.ones(2), torch.ones(2), what="same", diagnose=probes)
    assert calls == []
    with pytest.raises(GradingFailure):
        check_close(torch.zeros(2), torch.ones(2), what="other", diagnose=probes)
    assert calls == [1]


def test_an_undiagnosed_mismatch_shows_a_worked_example():
    example = Example("x = [0., 1.]", torch.tensor([0.5, 0.5]), lambda: torch.tensor([0.25, 0.75]))
    with pytest.raises(GradingFailure) as err:
        check_close(torch.zeros(3), torch.ones(3), what="softmax(x)", example=example)
    message = str(err.value)
    assert "max |diff|" in message
    assert "x = [0., 1.] should give [0.5, 0.5]; yours gives [0.25, 0.75]" in message
    with pytest.raises(GradingFailure) as err:
        check_equal(3, 4, what="count", example=Example("n = 1", 1, lambda: 2))
    assert "n = 1 should give 1; yours gives 2" in str(err.value)


@pytest.mark.parametrize("where", ["diagnose", "example"])
def test_a_probe_that_raises_is_the_tests_failure_with_the_students_traceback(where):
    """A crash inside the student's code while the grader probes for a diagnosis is that test's
    failure (GradingFailure, shown with the student's traceback), never a grader error."""

    def crash():
        raise SubmissionError(
            "w01_attention.softmax(…) raised ValueError: no",
            '  File "w01_attention.py", line 3\nValueError: no',
        )

    kwargs = {"diagnose": crash} if where == "diagnose" else {"example": Example("x = [1.]", 1.0, crash)}
    with pytest.raises(GradingFailure) as err:
        check_close(torch.zeros(2), torch.ones(2), what="softmax(x)", **kwargs)
    message = str(err.value)
    assert message.startswith("softmax(x): wrong")
    assert "raised ValueError: no" in message
    assert "Your code's traceback:" in message and 'File "w01_attention.py", line 3' in message


def test_a_probe_that_times_out_stays_a_timeout():
    def hang():
        raise SubmissionTimeout("w01_attention.softmax(…) ran past 20 s")

    with pytest.raises(SubmissionTimeout):
        check_close(torch.zeros(2), torch.ones(2), what="softmax(x)", diagnose=hang)


def test_probe_failure_is_classified_as_a_failed_test_not_a_grader_error():
    """Through the plugin's classifier: the probe's crash is status "failed" with the student's
    traceback, and nothing is recorded as a grader error."""
    from autograder.plugin import classify

    def crash():
        raise SubmissionError("f(…) raised KeyError: 'x'", '  File "w02_multihead.py", line 9\nKeyError')

    with pytest.raises(GradingFailure) as err:
        check_equal(torch.ones(2), torch.zeros(2), what="f(x)", diagnose=crash)
    status, message = classify(err)
    assert status == "failed"
    assert 'File "w02_multihead.py", line 9' in message
    assert all(section.strip() for section in CONVENTION_SECTIONS)
