"""Week 9 hidden suite: the character tokenizer and byte-level BPE.

Expected ids and merges come from `oracle` (written from the stated rules), on texts drawn
from the grading seed; the classic mistakes are recomputed there too, so a match is named.

What the tokenizers promise, and the edge each promise is tested at (test in brackets):

CharTokenizer
  * ids in sorted order, a round trip; the empty string, a one-character corpus, ids given as a
    1-D tensor (char_tokenizer_sorted_ids)
  * an unknown character raises ValueError naming it: not KeyError, not a silent id
    (char_tokenizer_unknown_character)
BPETokenizer.train
  * most frequent pair first, each chunk weighted by how often it occurs, merges inside chunks
    only, non-overlapping replacement, ties to the smallest pair, exactly vocab_size - 256 merges
    (bpe_merges_follow_the_rule)
  * vocab_size 256 learns nothing; an empty text; stops early when no pair is left (bpe_train_edges)
BPETokenizer.encode
  * merges applied in the order learnt, not leftmost first nor latest first (bpe_encode_applies_
    merges_in_order_learnt); the empty string and one-byte chunks (bpe_encode_short_inputs)
  * any Unicode round-trips, equal to an independent encoder (bpe_round_trip_any_unicode)
BPETokenizer.decode
  * bytes joined first, then decoded leniently (errors="replace"): an empty list, a lone byte, a
    character cut short, a character split over tokens (bpe_decode_is_lenient)
  * save/load keeps merges and ids (bpe_save_and_load)
"""

from __future__ import annotations

import re
from collections import Counter

import pytest
import torch

from autograder.checks import Example, GradingFailure, check, check_equal
from autograder.drivers.w09 import save_and_reload
from autograder.isolation import SubmissionError, SubmissionTimeout
from autograder.suites.w09_capstone import oracle
from autograder.suites.w09_capstone.common import DATA, attempt, randint, random_text, unicode_strings

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
            f"them in sorted order (sorted(set(text))), so the same corpus always gives the same ids ({DATA})."
        )
    check_equal(
        _ids(ids),
        expected,
        what="CharTokenizer.encode(text)",
        hint="id i is the i-th smallest character.",
        example=Example(
            'CharTokenizer.from_text("hello").encode("hole")',
            [1, 3, 2, 0],
            lambda: list(student.CharTokenizer.from_text("hello").encode("hole")),
        ),
    )
    check_equal(tok.decode(ids), text, what="decode(encode(text))")
    # Edges: nothing to encode, ids as a tensor, a corpus of one character.
    check_equal(list(tok.encode("")), [], what='encode("") (the empty string)')
    check_equal(tok.decode([]), "", what="decode([]) (no ids)")
    check_equal(tok.decode(_ids(ids[:20])), text[:20], what="decode of a 1-D tensor of ids")
    one = student.CharTokenizer.from_text("zzz")
    check_equal(one.vocab_size, 1, what='vocab_size of a corpus of one character ("zzz")')
    check_equal(list(one.encode("zz")), [0, 0], what='encode("zz") with the vocabulary ["z"]')


@pytest.mark.points(1)
def test_char_tokenizer_unknown_character(student, gen):
    """CharTokenizer.encode raises ValueError naming an unknown character"""
    text = random_text(gen, n_words=40)
    tok = student.CharTokenizer.from_text(text)
    try:
        got = tok.encode(text[:5] + "Z")
    except SubmissionTimeout:
        raise
    except SubmissionError as exc:
        if exc.exc_type == "NotImplementedError":
            raise
        check(
            exc.exc_type == "ValueError",
            f"encoding an unknown character raised {exc.exc_type or 'an error'}, not ValueError: catch the "
            "failed lookup and raise ValueError (a KeyError from a dictionary says nothing to the person "
            f"whose text it is) ({DATA}).",
            "check membership and raise ValueError with a message that names the character.",
        )
        check("Z" in str(exc), "the ValueError's message does not name the unknown character ('Z').")
        return
    raise GradingFailure(
        f"encoding a character that is not in the vocabulary returned {str(got)[:80]} instead of raising "
        f"ValueError: a silent id would corrupt the data without anyone noticing ({DATA})."
    )


# --------------------------------------------------------------------------- BPE training
MERGE_MISTAKES = (
    (
        {"weighted": False},
        "pairs were counted once per distinct chunk: weight each chunk by how often it occurs in the text "
        f"(a word seen 50 times contributes its pairs 50 times) ({DATA}).",
    ),
    (
        {"chunked": False},
        "merges crossed chunk boundaries (the text was treated as one long sequence): split it into chunks "
        f"with CHUNK_PATTERN first, and count pairs inside each chunk only ({DATA}).",
    ),
    (
        {"overlapping": True},
        "a merge replaced overlapping occurrences: after replacing a pair, skip both of its ids, so "
        "occurrences do not overlap (merge_pair([5, 5, 5], (5, 5), 9) == [9, 5]).",
    ),
)


def _first_difference(text: str, got: list, expected: list, vocab_size: int) -> str:
    """Why the merges differ: a classic mistake recomputed here, a tie broken the wrong way, or
    a wrong count at merge number i."""
    for switches, why in MERGE_MISTAKES:
        if got == oracle.train_bpe(text, vocab_size, **switches):
            return why
    i = next((i for i, (a, b) in enumerate(zip(got, expected)) if a != b), None)
    if i is None:  # a prefix of the expected merges, of another length
        return f"your merges agree with the expected ones for {min(len(got), len(expected))} merges."
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
            f"pair (a, b); ties must go to the smallest pair so training is deterministic ({DATA})."
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
    check_equal(
        len(got),
        len(expected),
        what="number of merges learnt for vocab_size 256 + 40",
        hint="vocab_size counts the 256 byte ids: train learns vocab_size - 256 merges (ids 256 … vocab_size - 1).",
        diagnose=[
            (
                n_merges + 1,
                f"one merge too many: vocab_size counts the 256 byte ids, so ids 256 … vocab_size - 1 ({DATA}).",
            ),
            (
                n_merges - 1,
                f"one merge too few: vocab_size counts the 256 byte ids, so ids 256 … vocab_size - 1 ({DATA}).",
            ),
        ],
    )
    if got != expected:
        raise GradingFailure(_first_difference(text, got, expected, 256 + n_merges))
    check_equal(tok.vocab_size, 256 + n_merges, what="BPETokenizer.vocab_size")


@pytest.mark.points(1)
def test_bpe_train_edges(student, gen):
    """BPE training learns nothing at vocab_size 256 and stops early when no pair is left"""
    word = "".join(chr(97 + randint(gen, 26)) for _ in range(4))

    def stopped(exc: SubmissionError) -> str | None:
        if exc.exc_type not in ("ValueError", "IndexError"):  # max()/min() of nothing, [0] of nothing
            return None
        return (
            "BPETokenizer.train failed once every chunk was a single token: when no adjacent pair is left, "
            "stop early (the docstring's 'fewer if no pair is left') instead of picking a pair from an empty "
            f"count ({DATA})"
        )

    for text, vocab_size, what in (
        (word * 3, 256, "vocab_size 256 (the bytes alone)"),
        ("", 300, "an empty text"),
        (f"{word} {word}", 1000, f"{word!r} twice with vocab_size 1000"),
    ):
        tok = attempt(stopped, student.BPETokenizer.train, text, vocab_size)
        expected = oracle.train_bpe(text, vocab_size)
        got = [tuple(int(v) for v in m) for m in tok.state_dict()["merges"]]
        check_equal(got, expected, what=f"merges learnt from {what}")
        check_equal(tok.vocab_size, 256 + len(expected), what=f"vocab_size after training on {what}")


# --------------------------------------------------------------------------- BPE encode / decode
def _vocab(merges) -> dict[int, bytes]:
    vocab = {i: bytes([i]) for i in range(256)}
    for a, b, new_id in merges:
        vocab[new_id] = vocab[a] + vocab[b]
    return vocab


# Two merges, learnt in either order, and the string "abc": which pair goes first decides the ids.
ORDER_CASES = (
    ({(97, 98): 256, (98, 99): 257}, "abc", [256, 99]),  # "ab" learnt first: (ab) + c
    ({(98, 99): 256, (97, 98): 257}, "abc", [97, 256]),  # "bc" learnt first: a + (bc)
    ({(97, 98): 256, (98, 99): 257, (256, 99): 258}, "xabc abc", [120, 258, 32, 258]),
)


@pytest.mark.points(1)
def test_bpe_encode_applies_merges_in_order_learnt(student, gen):
    """BPE encode applies the learnt merges in the order they were learnt"""
    for merges, text, expected in ORDER_CASES:
        tok = student.BPETokenizer(merges)
        ranked = [(a, b, i) for (a, b), i in sorted(merges.items(), key=lambda m: m[1])]
        check_equal(
            list(tok.encode(text)),
            expected,
            what=f"BPETokenizer({merges}).encode({text!r})",
            hint="start from the bytes; repeatedly merge the adjacent pair with the lowest new id.",
            diagnose=[
                (
                    oracle.encode_bpe(text, ranked, order="leftmost"),
                    "the leftmost mergeable pair was merged first; merges apply in the order learnt (the "
                    f"pair with the lowest new id first), which is what training did to the same bytes ({DATA}).",
                ),
                (
                    oracle.encode_bpe(text, ranked, order="latest"),
                    "the merge learnt last was applied first; merges apply in the order learnt (the pair "
                    f"with the lowest new id first), which is what training did to the same bytes ({DATA}).",
                ),
            ],
            example=Example(
                "BPETokenizer({(98, 99): 256, (97, 98): 257}).encode('abc')  (bc learnt before ab)",
                [97, 256],
                lambda: list(student.BPETokenizer({(98, 99): 256, (97, 98): 257}).encode("abc")),
            ),
        )


@pytest.mark.points(1)
def test_bpe_encode_short_inputs(student, gen):
    """BPE encodes the empty string and one-byte chunks"""
    tok = student.BPETokenizer({(97, 98): 256})

    def one_byte(exc: SubmissionError) -> str | None:
        if exc.exc_type not in ("ValueError", "IndexError"):  # min() of no pairs, ids[1] of one id
            return None
        return (
            "encoding a chunk of a single byte failed: it has no adjacent pair to merge, so stop merging "
            "when fewer than two ids are left"
        )

    for text, expected in (("", []), ("a", [97]), ("é", [195, 169]), ("ab", [256]), ("a b", [97, 32, 98])):
        got = attempt(one_byte, tok.encode, text)
        check_equal(list(got), expected, what=f"BPETokenizer({{(97, 98): 256}}).encode({text!r})")


def _per_token(ids, vocab) -> str:
    return "".join(vocab[i].decode("utf-8", errors="replace") for i in ids)


@pytest.mark.points(2)
def test_bpe_round_trip_any_unicode(student, gen):
    """BPE encode equals an independent encoder and decode(encode(s)) == s for any Unicode"""
    text = random_text(gen, n_words=300)
    tok = student.BPETokenizer.train(text, 256 + 30)
    merges = [tuple(int(v) for v in m) for m in tok.state_dict()["merges"]]
    vocab = _vocab(merges)
    for s in [text[:200], *unicode_strings(gen)]:
        ids = tok.encode(s)
        check_equal(
            _ids(ids),
            _ids(oracle.encode_bpe(s, merges)),
            what=f"BPE encode of a {len(s)}-character string",
            hint="start from each chunk's UTF-8 bytes; repeatedly apply the merge learnt earliest.",
        )
        check_equal(
            tok.decode(ids),
            s,
            what=f"decode(encode(s)) for a {len(s)}-character string",
            diagnose=[
                (
                    _per_token(ids, vocab),
                    "each token was decoded on its own: a character whose bytes are split over tokens "
                    f"becomes '\ufffd'. Join the bytes of all ids first, then decode once ({DATA}).",
                )
            ],
        )


@pytest.mark.points(1)
def test_bpe_decode_is_lenient(student, gen):
    """BPE decode joins the bytes, then decodes leniently: invalid UTF-8 becomes U+FFFD"""
    tok = student.BPETokenizer()  # no merges: id i is byte i
    rocket = list("🚀".encode())  # 4 bytes, 4 ids

    def strict(exc: SubmissionError) -> str | None:
        if exc.exc_type != "UnicodeDecodeError":
            return None
        return (
            "decode raised on bytes that are not valid UTF-8 on their own: it decoded strictly, while the "
            "docstring asks for a lenient decode (errors='replace', each bad sequence becomes U+FFFD '\ufffd'): "
            f"a sample can stop in the middle of a character ({DATA})"
        )

    for ids, expected, what in (
        ([], "", "decode([]) (no ids)"),
        ([0xE6], "\ufffd", "decode of a lone byte that starts a multi-byte character"),
        (rocket[:3], "\ufffd", "decode of an emoji cut after 3 of its 4 bytes"),
        (rocket, "🚀", "decode of the 4 byte ids of one emoji"),
        ([104, 105, 0xE6], "hi\ufffd", "decode of 'hi' followed by a lone byte"),
    ):
        got = attempt(strict, tok.decode, ids)
        check_equal(
            got,
            expected,
            what=what,
            hint="join the bytes of every id, then bytes.decode('utf-8', errors='replace').",
            diagnose=[
                (
                    bytes(ids).decode("utf-8", errors="ignore"),
                    "invalid bytes were dropped (errors='ignore'); the docstring's lenient decode replaces "
                    "them with U+FFFD '\ufffd' (errors='replace'), so a broken character stays visible "
                    f"({DATA}).",
                ),
                (
                    _per_token(ids, _vocab([])),
                    "each token was decoded on its own: a character whose bytes are split over tokens "
                    f"becomes '\ufffd'. Join the bytes of all ids first, then decode once ({DATA}).",
                ),
            ],
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
