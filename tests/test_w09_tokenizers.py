"""The capstone's tokenizers (reference): property-based round trips, determinism,
save/load, and byte-level BPE checked against Hugging Face `tokenizers` given the same merges."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solutions.w09_capstone import BPETokenizer, CharTokenizer, load_tokenizer
from solutions.w09_capstone.tokenizers import CHUNK_PATTERN

# One worker runs this file: its module fixtures are built once (dev.sh: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_w09_tokenizers")

CORPUS = (
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
    "First Citizen:\nYou are all resolved rather to die than to famish?\n\nAll:\nResolved. resolved.\n\n"
    "Ünïcödé wörds, naïve café, 日本語のテキスト, emoji 🙂🚀 and   runs of    spaces\t\ttabs.\n"
) * 3


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train(CORPUS, 256 + 60)


@settings(max_examples=300, deadline=None)
@given(text=st.text())
def test_bpe_round_trips_any_unicode(bpe, text):
    ids = bpe.encode(text)
    assert all(0 <= i < bpe.vocab_size for i in ids)
    assert bpe.decode(ids) == text


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_chunks_cover_the_text(bpe, text):
    assert "".join(bpe.chunks(text)) == text


@settings(max_examples=100, deadline=None)
@given(text=st.text(min_size=1))
def test_char_tokenizer_round_trips(text):
    tok = CharTokenizer.from_text(text)
    assert tok.decode(tok.encode(text)) == text
    assert tok.chars == sorted(set(text))


def test_char_tokenizer_unknown_character_is_named():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(ValueError, match=r"'z' \(position 2\)"):
        tok.encode("abz")


def test_bpe_compresses_and_learns_words(bpe):
    assert bpe.vocab_size == 316
    assert len(bpe.encode(CORPUS)) < 0.6 * len(CORPUS.encode())  # 60 merges: 843 bytes -> 477 ids
    learnt = {bpe.vocab[i] for i in range(256, bpe.vocab_size)}
    assert b" speak" in learnt or b"speak" in learnt


def test_bpe_training_is_deterministic():
    """Training twice gives the same merges; ties go to the smallest pair."""
    assert list(BPETokenizer.train(CORPUS, 300).merges.items()) == list(
        BPETokenizer.train(CORPUS, 300).merges.items()
    )
    # "ab" and "ba" both occur twice: (97, 98) < (98, 97), so "ab" is merged first.
    assert list(BPETokenizer.train("abba abba", 257).merges) == [(97, 98)]


def test_bpe_stops_when_nothing_is_left_to_merge():
    tok = BPETokenizer.train("ab ab", 1000)
    assert tok.vocab_size < 1000 and tok.decode(tok.encode("ab ab ba")) == "ab ab ba"


def test_save_and_load(bpe, tmp_path):
    bpe.save(tmp_path / "bpe.json")
    again = BPETokenizer.load(tmp_path / "bpe.json")
    assert again.merges == bpe.merges and again.encode(CORPUS) == bpe.encode(CORPUS)
    char = CharTokenizer.from_text(CORPUS)
    char.save(tmp_path / "char.json")
    assert CharTokenizer.load(tmp_path / "char.json").chars == char.chars
    assert isinstance(load_tokenizer(bpe.state_dict()), BPETokenizer)


def _byte_symbols() -> dict[int, str]:
    """A printable stand-in character for each byte (Hugging Face's byte-level models work on
    strings): printable Latin-1 bytes stand for themselves, the rest map to U+0100 onwards."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    symbols, extra = {}, 0
    for b in range(256):
        if b in keep:
            symbols[b] = chr(b)
        else:
            symbols[b] = chr(256 + extra)
            extra += 1
    return symbols


def test_bpe_encode_matches_hugging_face_tokenizers(bpe):
    """Hugging Face's BPE model and its own regex splitter, given our merges, encode identically."""
    tokenizers = pytest.importorskip("tokenizers")
    symbols = _byte_symbols()

    def spell(token: bytes) -> str:
        return "".join(symbols[b] for b in token)

    vocab = {spell(token): i for i, token in bpe.vocab.items()}
    ranked = sorted(bpe.merges.items(), key=lambda m: m[1])
    model = tokenizers.models.BPE(
        vocab=vocab, merges=[(spell(bpe.vocab[a]), spell(bpe.vocab[b])) for (a, b), _ in ranked]
    )
    split = tokenizers.pre_tokenizers.Split(tokenizers.Regex(CHUNK_PATTERN), behavior="isolated")

    def hf_encode(text: str) -> list[int]:
        chunks = [chunk for chunk, _ in split.pre_tokenize_str(text)]
        return [t.id for chunk in chunks for t in model.tokenize(spell(chunk.encode("utf-8")))]

    for text in (CORPUS, "Resolved, speak! naïve 🙂 日本", "First Citizen:\n\n  All  speak", ""):
        assert bpe.encode(text) == hf_encode(text)
