"""Inputs for the week 9 suite, all drawn from the test's generator (the grading seed)."""

from __future__ import annotations

import torch

from autograder.checks import GradingFailure, convention
from autograder.isolation import SubmissionError, SubmissionTimeout
from autograder.suites.w09_capstone import oracle

DATA = convention("Objectives and data")  # next-token data and the tokenizers are stated there

# Characters for tokenizer texts: ASCII, accents, CJK, emoji (4 UTF-8 bytes), a combining mark.
ALPHABET = list("abcdefghijklmnoprstu") + ["é", "ß", "ñ", "日", "本", "語", "🙂", "🚀", "e\u0301"]
SEPARATORS = [" ", " ", " ", " ", "  ", "\n", ", ", ". ", "!\n", "\n\n", "\t", "; "]


def randint(gen: torch.Generator, high: int, low: int = 0) -> int:
    return int(torch.randint(low, high, (1,), generator=gen))


def random_text(gen: torch.Generator, n_words: int = 300, vocabulary: int = 40) -> str:
    """Zipf-distributed words over a mixed alphabet, with varied separators."""
    words = [
        "".join(ALPHABET[randint(gen, len(ALPHABET))] for _ in range(randint(gen, 7, 1)))
        for _ in range(vocabulary)
    ]
    weights = 1.0 / torch.arange(1, vocabulary + 1, dtype=torch.float64)
    picks = torch.multinomial(weights, n_words, replacement=True, generator=gen).tolist()
    seps = torch.randint(len(SEPARATORS), (n_words,), generator=gen).tolist()
    return "".join(words[w] + SEPARATORS[s] for w, s in zip(picks, seps))


def unicode_strings(gen: torch.Generator) -> list[str]:
    """Strings no tokenizer training text contained: other scripts, control characters,
    unusual whitespace, characters outside the BMP."""
    ranges = [
        (0x20, 0x7F),
        (0xA0, 0x250),
        (0x370, 0x400),
        (0x4E00, 0x4F00),
        (0x1F300, 0x1F600),
        (0x300, 0x370),
    ]
    out = ["", " ", "\n\n\n", "a  b   c", "\t\r\n \u3000\xa0x", "Ünïcödé ✓ 🙂🙂 日本語テキスト", "x" * 50]
    for _ in range(4):
        chars = []
        for _ in range(randint(gen, 40, 5)):
            lo, hi = ranges[randint(gen, len(ranges))]
            chars.append(chr(randint(gen, hi, lo)))
        out.append("".join(chars))
    return out


def expected_shapes(V: int, block_size: int, n_layers: int, d: int, *, bias: bool, rope: bool) -> dict:
    """The state-dict layout the model's docstring documents."""
    shapes = {"tok_emb.weight": [V, d]}
    if not rope:
        shapes["pos_emb.weight"] = [block_size, d]
    layers = {"ln1": [d], "attn.qkv": [3 * d, d], "attn.proj": [d, d], "ln2": [d], "mlp.fc": [4 * d, d]}
    layers["mlp.proj"] = [d, 4 * d]
    for i in range(n_layers):
        for name, shape in layers.items():
            shapes[f"blocks.{i}.{name}.weight"] = shape
            if bias:
                shapes[f"blocks.{i}.{name}.bias"] = [shape[0]]
    shapes["ln_f.weight"] = [d]
    if bias:
        shapes["ln_f.bias"] = [d]
    shapes["lm_head.weight"] = [V, d]
    return shapes


def model_config(
    gen: torch.Generator, *, bias: bool = True, rope: bool = False, dropout: float = 0.0
) -> dict:
    return dict(
        vocab_size=randint(gen, 20, 9),
        block_size=12,
        n_layers=2,
        n_heads=2,
        d_model=16,
        dropout=dropout,
        bias=bias,
        rope=rope,
    )


def random_state(gen: torch.Generator, cfg: dict, std: float = 0.3) -> dict[str, torch.Tensor]:
    """Random weights in the documented layout, head tied to the embedding; LayerNorm gains
    near 1 so the stream keeps a sensible scale."""
    shapes = expected_shapes(
        cfg["vocab_size"],
        cfg["block_size"],
        cfg["n_layers"],
        cfg["d_model"],
        bias=cfg["bias"],
        rope=cfg["rope"],
    )
    sd = {}
    for name, shape in shapes.items():
        t = torch.randn(*shape, generator=gen) * std
        if ".ln" in name or name.startswith("ln_f"):
            t = (1.0 + t) if name.endswith("weight") else t
        sd[name] = t
    sd["lm_head.weight"] = sd["tok_emb.weight"]
    return sd


def new_model(student, cfg: dict):
    return student.MiniGPT(student.GPTConfig(**cfg))


CORPUS_FILE = "corpus.txt"  # where a driver writes the corpus it is given, in its own directory


def small_corpus(n_chars: int = 60_000) -> str:
    """The first ``n_chars`` of tiny Shakespeare, as text for a driver to write as `CORPUS_FILE`
    (all 65 characters do not occur in it; runs that use it are about the machinery, not the
    loss)."""
    return oracle.shakespeare().read_text()[:n_chars]


def attempt(explain, call, *args, **kwargs):
    """``call(*args, **kwargs)``; when the submission raises, ``explain(exc)`` may say why in the student's
    terms (a string, shown with their traceback) or return None to let the error through as it
    is. An unfinished stub (NotImplementedError) and a timeout always go through unchanged."""
    try:
        return call(*args, **kwargs)
    except SubmissionTimeout:
        raise
    except SubmissionError as exc:
        message = None if exc.exc_type == "NotImplementedError" else explain(exc)
        if message is None:
            raise
        text = f"{message} ({str(exc)[:300]})"
        if exc.traceback:
            text += "\n\nYour code's traceback:\n" + exc.traceback.rstrip()
        raise GradingFailure(text) from None
