"""The capstone's experiment features (reference): tied or untied embeddings, the gradient norm in
metrics.csv, and samples.md written at every evaluation into a run directory that stays put."""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from solutions.w09_capstone import (
    GPTConfig,
    MiniGPT,
    TrainConfig,
    load_model,
    parse_config,
    train,
    train_step,
)
from solutions.w09_capstone.train import make_optimizer, model_config

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 40
TINY = dict(
    n_layers=1,
    n_heads=2,
    d_model=16,
    block_size=8,
    batch_size=4,
    warmup_steps=2,
    eval_iters=1,
    progress=False,
)


@pytest.fixture
def corpus(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # runs/ lands here: the default out_dir is relative
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT)
    return path


def metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


# --------------------------------------------------------------------------- tied or untied
def test_tied_head_is_one_parameter_untied_two():
    V, d = 13, 16
    config = GPTConfig(vocab_size=V, block_size=8, n_layers=1, n_heads=2, d_model=d)
    tied, untied = MiniGPT(config), MiniGPT(replace(config, tie_weights=False))
    assert tied.lm_head.weight is tied.tok_emb.weight
    assert untied.lm_head.weight is not untied.tok_emb.weight
    assert len(list(untied.parameters())) == len(list(tied.parameters())) + 1  # the head's own matrix
    assert untied.num_params() - tied.num_params() == V * d
    assert tied.num_params() == sum(p.numel() for p in tied.parameters())  # the shared matrix once
    # The state dict lists the head either way; untied, it is a tensor of its own.
    assert set(tied.state_dict()) == set(untied.state_dict())
    sd = untied.state_dict()
    assert sd["lm_head.weight"].data_ptr() != sd["tok_emb.weight"].data_ptr()


def test_tie_weights_is_a_training_option(corpus):
    assert TrainConfig().tie_weights is True  # the default stays tied
    config = parse_config(["--no-tie-weights", "--data", str(corpus)])
    assert config.tie_weights is False and model_config(config, 20).tie_weights is False
    result = train(replace(config, **TINY, max_steps=2, eval_interval=2, run_id="untied"))
    assert result.model.lm_head.weight is not result.model.tok_emb.weight
    tied = MiniGPT(replace(result.model.config, tie_weights=True))
    V, d = result.tokenizer.vocab_size, result.model.config.d_model
    assert result.model.num_params() == tied.num_params() + V * d
    log = (result.run_dir / "log.txt").read_text()
    assert f"{result.model.num_params():,} parameters" in log  # the count reported is the untied one
    model, _, state = load_model(result.run_dir)  # the checkpoint rebuilds an untied model
    assert state["model_config"]["tie_weights"] is False and model.lm_head.weight is not model.tok_emb.weight
    torch.testing.assert_close(model.lm_head.weight, result.model.lm_head.weight)


def test_resuming_a_checkpoint_without_the_setting_keeps_it_tied(corpus):
    """A run saved before the option existed resumes as the tied model it was."""
    config = replace(TrainConfig(), data=str(corpus), **TINY, max_steps=2, eval_interval=2, run_id="old")
    train(config)
    ckpt = torch.load("runs/old/ckpt.pt", weights_only=True)
    del ckpt["config"]["tie_weights"]
    torch.save(ckpt, "runs/old/ckpt.pt")
    assert train(replace(config, max_steps=3, resume="runs/old")).step == 3
    with pytest.raises(ValueError, match="tie_weights"):
        train(replace(config, max_steps=4, resume="runs/old", tie_weights=False))


# --------------------------------------------------------------------------- the gradient norm
def test_train_step_returns_the_norm_before_clipping():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=11, block_size=8, n_layers=1, n_heads=2, d_model=16)
    model = MiniGPT(config)
    twin = MiniGPT(config)
    twin.load_state_dict(model.state_dict())
    x, y = torch.randint(11, (4, 8)), torch.randint(11, (4, 8))
    _, loss = twin(x, y)
    loss.backward()
    expected = torch.nn.utils.clip_grad_norm_(twin.parameters(), float("inf"))  # the norm, unclipped
    assert expected > 0.01  # so clipping to 0.01 acts below
    for clip in (0.01, 0.0):
        model.load_state_dict(twin.state_dict())
        optimizer = make_optimizer(model, TrainConfig(), torch.device("cpu"))
        loss, norm = train_step(model, optimizer, x, y, lr=1e-3, grad_clip=clip)
        assert norm.dim() == 0 and not norm.requires_grad
        torch.testing.assert_close(norm, expected)  # before clipping, whether clipping acts or not


def test_metrics_log_the_gradient_norm(corpus):
    config = replace(
        TrainConfig(), data=str(corpus), **TINY, max_steps=6, eval_interval=3, log_interval=2, grad_clip=0.01
    )
    rows = metrics(train(replace(config, run_id="norms")).run_dir)
    assert list(rows[0]) == [
        "step",
        "train_loss",
        "val_loss",
        "perplexity",
        "lr",
        "tokens_per_s",
        "grad_norm",
    ]
    assert [int(r["step"]) for r in rows] == [0, 2, 3, 4, 6]
    assert rows[0]["grad_norm"] == ""  # nothing trained yet
    norms = [float(r["grad_norm"]) for r in rows[1:]]
    assert all(n > 0.01 for n in norms), norms  # logged before clipping to 0.01


# --------------------------------------------------------------------------- samples.md
def sections(run: Path) -> list[tuple[int, float, str]]:
    text = (run / "samples.md").read_text()
    found = re.findall(r"^## step (\d+) · val loss ([0-9.]+)\n\n```text\n(.*?)\n```\n", text, re.M | re.S)
    return [(int(step), float(loss), sample) for step, loss, sample in found]


def test_samples_md_grows_at_every_evaluation_and_survives_a_resume(corpus):
    config = replace(
        TrainConfig(),
        data=str(corpus),
        **TINY,
        max_steps=4,
        lr_decay_steps=6,  # one schedule for the stopped, the resumed and the straight run
        eval_interval=2,
        log_interval=1,
        sample_tokens=12,
    )
    result = train(replace(config, run_id="samples"))
    run = result.run_dir
    assert run.resolve() == (corpus.parent / "runs" / "samples").resolve()  # in the working directory
    text = (run / "samples.md").read_text()
    assert text.startswith("# Samples during training") and "'\\n'" in text and "seed 1337" in text
    got = sections(run)
    val = {int(r["step"]): float(r["val_loss"]) for r in metrics(run) if r["val_loss"]}
    assert [s for s, _, _ in got] == sorted(val) == [0, 2, 4]
    for step, loss, sample in got:
        assert abs(loss - val[step]) < 1e-4 and sample.startswith("\n") and len(sample) >= 1 + 12
    # Resuming from step 4 keeps the three sections and adds those of the new evaluations.
    train(replace(config, run_id="samples", max_steps=6, resume=str(run)))
    assert [s for s, _, _ in sections(run)] == [0, 2, 4, 6]
    # The same seed and weights give the same sample: an uninterrupted run agrees section by section.
    train(replace(config, run_id="straight", max_steps=6))
    assert sections(Path("runs/straight")) == sections(run)


def test_samples_fall_back_when_the_prompt_cannot_be_encoded_and_can_be_turned_off(corpus):
    base = replace(TrainConfig(), data=str(corpus), **TINY, max_steps=2, eval_interval=2, sample_tokens=5)
    run = train(replace(base, run_id="omega", sample_prompt="Ω")).run_dir  # not a character of the corpus
    assert "cannot be encoded" in (run / "log.txt").read_text()
    first = TEXT[int(0.9 * len(TEXT))]  # the validation text's first character
    assert all(sample.startswith(first) for _, _, sample in sections(run))
    run = train(replace(base, run_id="quiet", sample_tokens=0)).run_dir
    assert not (run / "samples.md").exists()
