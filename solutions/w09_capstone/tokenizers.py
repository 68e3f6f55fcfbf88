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
        ### BEGIN SOLUTION
        self.chars = sorted(set(chars))  # sorted: the same text always gives the same ids
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        ### END SOLUTION

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(text)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        """``text`` -> one id per character; ``ValueError`` for a character not in the vocabulary."""
        ### BEGIN SOLUTION
        try:
            return [self.stoi[c] for c in text]
        except KeyError as exc:
            position = text.index(exc.args[0])
            raise ValueError(
                f"character {exc.args[0]!r} (position {position}) is not in the tokenizer's "
                f"vocabulary of {self.vocab_size} characters"
            ) from None
        ### END SOLUTION

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """ids (a list or a 1-D tensor) -> text."""
        ### BEGIN SOLUTION
        return "".join(self.chars[i] for i in _ids(ids))
        ### END SOLUTION

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
    ### BEGIN SOLUTION
    stats: Counter = Counter()
    for word, n in zip(words, counts):
        for pair in zip(word, word[1:]):
            stats[pair] += n
    return stats
    ### END SOLUTION


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every occurrence of ``pair`` in ``ids`` by ``new_id``, left to right.

    Occurrences do not overlap: ``merge_pair([5, 5, 5], (5, 5), 9) == [9, 5]``.
    """
    ### BEGIN SOLUTION
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2  # both ids are consumed
        else:
            out.append(ids[i])
            i += 1
    return out
    ### END SOLUTION


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
        ### BEGIN SOLUTION
        for new_id in range(256, vocab_size):
            stats = pair_counts(words, counts)
            if not stats:
                break  # every chunk is a single token already
            # Most frequent first; among equals the smallest pair, so the result never
            # depends on dictionary order.
            pair = min(stats, key=lambda p: (-stats[p], p))
            words = [merge_pair(w, pair, new_id) if len(w) > 1 else w for w in words]
            merges[pair] = new_id
        ### END SOLUTION
        return cls(merges, pattern)

    def _encode_chunk(self, chunk: str) -> list[int]:
        """One chunk -> ids: start from its bytes and apply the learnt merges, earliest first."""
        ### BEGIN SOLUTION
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            # The pair that was merged earliest in training (lowest new id) goes first.
            pair = min(zip(ids, ids[1:]), key=lambda p: self.merges.get(p, float("inf")))
            if pair not in self.merges:
                break  # nothing left to merge
            ids = merge_pair(ids, pair, self.merges[pair])
        return ids
        ### END SOLUTION

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
        ### BEGIN SOLUTION
        try:
            data = b"".join(self.vocab[i] for i in _ids(ids))
        except KeyError as exc:
            raise ValueError(
                f"token id {exc.args[0]} is not in the vocabulary of {self.vocab_size}"
            ) from None
        return data.decode("utf-8", errors="replace")
        ### END SOLUTION

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
