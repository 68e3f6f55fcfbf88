"""Week 9 hidden suite: the character tokenizer and byte-level BPE.

Expected ids and merges come from `oracle` (written from the stated rules), on texts drawn
from the grading seed.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
import torch

from autograder.checks import GradingFailure, check, check_equal
from autograder.drivers.w09 import save_and_reload
from autograder.isolation import SubmissionError
from autograder.suites.w09_capstone import oracle
from autograder.suites.w09_capstone.common import random_text, unicode_strings

pytestmark = pytest.mark.w09


def _ids(values) -> torch.Tensor:
    return torch.tensor(list(values), dtype=torch.long)


@pytest.mark.points(2)
def test_char_tokenizer_sorted_ids(student, gen):
    """CharTokenizer numbers characters in sorted order and round-trips"""
    text = random_text(gen, n_words=120)
    tok = student.CharTokenizer.from_text(text)
    chars, expected = oracle.sorted_char_ids(text)
    check_equal(tok.vocab_size, len(chars), what="CharTokenizer.vocab_size (distinct characters)")
    ids = tok.encode(text)
    first_seen = {c: i for i, c in enumerate(dict.fromkeys(text))}
    if list(ids) == [first_seen[c] for c in text] and list(ids) != expected.tolist():
        raise GradingFailure(
            "CharTokenizer ids follow the order in which characters first appear; the course numbers "
            "them in sorted order (sorted(set(text))), so the same corpus always gives the same ids."
        )
    check_equal(
        _ids(ids), expected, what="CharTokenizer.encode(text)", hint="id i is the i-th smallest character."
    )
    check_equal(tok.decode(ids), text, what="decode(encode(text))")


@pytest.mark.points(1)
def test_char_tokenizer_unknown_character(student, gen):
    """CharTokenizer.encode raises ValueError naming an unknown character"""
    text = random_text(gen, n_words=40)
    tok = student.CharTokenizer.from_text(text)
    try:
        got = tok.encode(text[:5] + "Z")
    except SubmissionError as exc:
        check(
            exc.exc_type == "ValueError",
            f"encoding an unknown character raised {exc.exc_type or 'an error'}, not ValueError.",
            "check membership and raise ValueError with a message that names the character.",
        )
        check("Z" in str(exc), "the ValueError's message does not name the unknown character ('Z').")
        return
    raise GradingFailure(
        f"encoding a character that is not in the vocabulary returned {str(got)[:80]} instead of raising "
        "ValueError: a silent id would corrupt the data without anyone noticing."
    )


def _first_difference(text: str, got: list, expected: list) -> str:
    """Why merge number i differs: a wrong count, or a tie broken the wrong way."""
    i = next(i for i, (a, b) in enumerate(zip(got, expected)) if a != b)
    words = Counter(tuple(c.encode("utf-8")) for c in re.findall(oracle.CHUNK_PATTERN, text))
    for a, b, new_id in expected[:i]:
        merged: Counter = Counter()
        for word, n in words.items():
            merged[tuple(oracle._merge(list(word), (a, b), new_id))] += n
        words = merged
    stats: Counter = Counter()
    for word, n in words.items():
        for pair in zip(word, word[1:]):
            stats[pair] += n
    mine = stats.get(tuple(got[i][:2]), 0)
    top = max(stats.values())
    if mine == top:
        return (
            f"merge #{i} (new id {256 + i}): several pairs occur {top} times and yours is not the smallest "
            "pair (a, b); ties must go to the smallest pair so training is deterministic."
        )
    return (
        f"merge #{i} (new id {256 + i}): your pair occurs {mine} times at that point, but another pair occurs "
        f"{top} times; merge the most frequent pair (counting each chunk as often as it occurs)."
    )


@pytest.mark.points(3)
def test_bpe_merges_follow_the_rule(student, gen):
    """BPETokenizer.train learns the most frequent pair first, ties to the smallest pair"""
    text = random_text(gen, n_words=300)
    n_merges = 40
    tok = student.BPETokenizer.train(text, 256 + n_merges)
    got = [tuple(int(v) for v in m) for m in tok.state_dict()["merges"]]
    expected = oracle.train_bpe(text, 256 + n_merges)
    check_equal(len(got), len(expected), what="number of merges learnt for vocab_size 256 + 40")
    if got != expected:
        raise GradingFailure(_first_difference(text, got, expected))
    check_equal(tok.vocab_size, 256 + n_merges, what="BPETokenizer.vocab_size")


@pytest.mark.points(2)
def test_bpe_round_trip_any_unicode(student, gen):
    """BPE encode applies the merges in order and decode(encode(s)) == s for any Unicode"""
    text = random_text(gen, n_words=300)
    tok = student.BPETokenizer.train(text, 256 + 30)
    merges = [tuple(int(v) for v in m) for m in tok.state_dict()["merges"]]
    for s in [text[:200], *unicode_strings(gen)]:
        ids = tok.encode(s)
        check_equal(
            _ids(ids),
            _ids(oracle.encode_bpe(s, merges)),
            what=f"BPE encode of a {len(s)}-character string",
            hint="start from each chunk's UTF-8 bytes; repeatedly apply the merge learnt earliest.",
        )
        check_equal(tok.decode(ids), s, what=f"decode(encode(s)) for a {len(s)}-character string")
    check_equal(
        tok.decode([0xE6]),
        "\ufffd",
        what="decode of a lone byte that starts a multi-byte character",
        hint="decode the joined bytes with errors='replace'.",
    )


@pytest.mark.points(1)
def test_bpe_save_and_load(student, submission, gen):
    """A saved BPETokenizer loads back with the same merges and ids"""
    text = random_text(gen, n_words=200)
    tok = student.BPETokenizer.train(text, 256 + 20)
    sample = text[:300] + " 🙂 日本"
    again = submission.run(save_and_reload, tok, student.BPETokenizer, "bpe.json", sample)
    check_equal(again["merges"], tok.state_dict()["merges"], what="merges after save/load")
    check_equal(_ids(again["ids"]), _ids(tok.encode(sample)), what="ids after save/load")
