"""Tokenizers: text ↔ integer ids.

* `CharTokenizer`: one id per character. The vocabulary is the *sorted* set of characters
  of the training text (sorted by code point), so id ``i`` is the ``i``-th smallest
  character: on tiny Shakespeare ``"\\n"`` is 0, ``" "`` is 1 and ``"z"`` is 64. A character
  outside the vocabulary is an error (``ValueError`` naming it), never a silent guess.
* `BPETokenizer`: byte-level byte-pair encoding. Text is split into chunks (a word with its
  leading space, a run of punctuation, a run of whitespace), each chunk becomes its UTF-8
  bytes (ids 0–255), and training repeatedly merges the most frequent adjacent pair of ids
  into a new id (256, 257, …). Any Unicode string round-trips, because every string is
  bytes; merges never cross chunk boundaries.

Both have ``encode(text) -> list[int]``, ``decode(ids) -> str``, ``vocab_size``,
``state_dict()`` (plain data, stored inside checkpoints) and ``save``/``load`` (JSON).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

# A chunk is: an optional space + letters/digits/underscore, an optional space +
# punctuation, or whitespace (a run of spaces keeps its last space for the next word,
# as in GPT-2). Every character matches one alternative, so the chunks concatenate back
# to the text exactly.
CHUNK_PATTERN = r" ?\w+| ?[^\w\s]+|\s+(?!\S)|\s+"


def _ids(ids: Sequence[int] | torch.Tensor) -> list[int]:
    return ids.tolist() if isinstance(ids, torch.Tensor) else [int(i) for i in ids]


class CharTokenizer:
    """Character-level tokenizer; the vocabulary is ``sorted(set(text))``.

    >>> tok = CharTokenizer.from_text("hello")
    >>> tok.encode("hole"), tok.vocab_size
    ([1, 3, 2, 0], 4)
    """

    def __init__(self, chars: Iterable[str]):
        raise NotImplementedError("w09: implement CharTokenizer.__init__; see course/w09_capstone/notes.md")

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(text)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """``text`` -> one id per character; ``ValueError`` for a character not in the vocabulary."""
        raise NotImplementedError("w09: implement CharTokenizer.encode; see course/w09_capstone/notes.md")

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """ids (a list or a 1-D tensor) -> text."""
        raise NotImplementedError("w09: implement CharTokenizer.decode; see course/w09_capstone/notes.md")

    def state_dict(self) -> dict:
        return {"kind": "char", "chars": "".join(self.chars)}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.state_dict()))

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        return load_tokenizer(json.loads(Path(path).read_text()))


# --------------------------------------------------------------------------- byte-level BPE
def pair_counts(words: Sequence[list[int]], counts: Sequence[int]) -> Counter:
    """How often each adjacent pair of ids occurs, each word weighted by its count.

    words: id lists, e.g. ``[[104, 105], [32, 104, 105]]``; counts: how often each word
    occurs in the text. Returns ``Counter({(a, b): n, ...})``.
    """
    raise NotImplementedError("w09: implement pair_counts; see course/w09_capstone/notes.md")


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` by ``new_id``, left to right.

    Occurrences do not overlap: ``merge_pair([5, 5, 5], (5, 5), 9) == [9, 5]``.
    """
    raise NotImplementedError("w09: implement merge_pair; see course/w09_capstone/notes.md")


class BPETokenizer:
    """Byte-level BPE. ``merges[(a, b)] = new_id`` in the order they were learnt (new ids
    256, 257, …); ``vocab[id]`` is the bytes an id stands for.

    Training is deterministic: each step merges the most frequent pair, and a tie goes to
    the smallest pair ``(a, b)`` (compare ``a`` first, then ``b``).
    """

    def __init__(self, merges: dict[tuple[int, int], int] | None = None, pattern: str = CHUNK_PATTERN):
        self.merges: dict[tuple[int, int], int] = dict(merges or {})
        self.pattern = pattern
        self._split = re.compile(pattern)
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        for (a, b), new_id in sorted(self.merges.items(), key=lambda item: item[1]):
            self.vocab[new_id] = self.vocab[a] + self.vocab[b]
        self._cache: dict[str, list[int]] = {}

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges)

    def chunks(self, text: str) -> list[str]:
        return self._split.findall(text)

    @classmethod
    def train(cls, text: str, vocab_size: int, pattern: str = CHUNK_PATTERN) -> BPETokenizer:
        """Learn ``vocab_size - 256`` merges from ``text`` (fewer if no pair is left)."""
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be at least 256 (the byte alphabet), got {vocab_size}")
        tok = cls(pattern=pattern)
        # Equal chunks merge the same way, so count each distinct chunk once.
        chunk_counts = Counter(tok.chunks(text))
        words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        counts = list(chunk_counts.values())
        merges: dict[tuple[int, int], int] = {}
        raise NotImplementedError("w09: implement BPETokenizer.train; see course/w09_capstone/notes.md")
        return cls(merges, pattern)

    def _encode_chunk(self, chunk: str) -> list[int]:
        """One chunk -> ids: start from its bytes and apply the learnt merges, earliest first."""
        raise NotImplementedError("w09: implement BPETokenizer._encode_chunk; see course/w09_capstone/notes.md")

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for chunk in self.chunks(text):
            ids = self._cache.get(chunk)
            if ids is None:
                ids = self._cache[chunk] = self._encode_chunk(chunk)
            out.extend(ids)
        return out

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """ids -> text. Bytes that are not valid UTF-8 on their own (a sampled sequence can
        stop inside a character) become U+FFFD instead of raising."""
        raise NotImplementedError("w09: implement BPETokenizer.decode; see course/w09_capstone/notes.md")

    def state_dict(self) -> dict:
        merges = [[a, b, new_id] for (a, b), new_id in sorted(self.merges.items(), key=lambda m: m[1])]
        return {"kind": "bpe", "pattern": self.pattern, "merges": merges}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.state_dict()))

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        return load_tokenizer(json.loads(Path(path).read_text()))


def load_tokenizer(state: dict) -> CharTokenizer | BPETokenizer:
    """Rebuild a tokenizer from its ``state_dict()`` (as stored in a checkpoint)."""
    if state["kind"] == "char":
        return CharTokenizer(state["chars"])
    if state["kind"] == "bpe":
        merges = {(int(a), int(b)): int(new_id) for a, b, new_id in state["merges"]}
        return BPETokenizer(merges, state.get("pattern", CHUNK_PATTERN))
    raise ValueError(f"unknown tokenizer kind {state['kind']!r}")
