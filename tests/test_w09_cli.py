"""`course train` / `course sample` end to end on a tiny configuration, as a user runs them;
and data-parallel training (torchrun, gloo, 2 processes) against one process."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autograder.tools.data import DatasetError, dataset_path
from solutions.w09_capstone import TrainConfig, parse_config

# One worker runs this file: its module fixtures are built once (dev.sh: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("test_w09_cli")

ROOT = Path(__file__).resolve().parent.parent
TINY = [
    "--n-layers", "1", "--n-heads", "2", "--d-model", "32", "--block-size", "16", "--batch-size", "8",
    "--warmup-steps", "2", "--eval-interval", "5", "--eval-iters", "2", "--log-interval", "1",
]  # fmt: skip


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The first 50,000 characters of tiny Shakespeare, or a stand-in when it is not fetched."""
    path = tmp_path_factory.mktemp("data") / "corpus.txt"
    try:
        text = dataset_path("shakespeare").read_text()[:50_000]
    except DatasetError:
        text = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 600
    path.write_text(text)
    return path


def course(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "autograder", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def metrics(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_train_sample_resume_end_to_end(corpus, tmp_path):
    out = tmp_path / "runs"
    proc = course(
        "train",
        "--",
        "--data",
        str(corpus),
        *TINY,
        "--max-steps",
        "10",
        "--out-dir",
        str(out),
        "--run-id",
        "r1",
    )
    run = out / "r1"
    assert f"run {run}" in proc.stdout
    for name in ("config.json", "metrics.csv", "log.txt", "ckpt.pt", "best.pt", "tokenizer.json"):
        assert (run / name).is_file(), name
    rows = metrics(run)
    assert [int(r["step"]) for r in rows] == list(range(11))
    assert rows[0]["val_loss"] and rows[5]["val_loss"] and rows[10]["val_loss"] and not rows[3]["val_loss"]
    assert json.loads((run / "config.json").read_text())["max_steps"] == 10

    # Resume to 16 steps: the same run directory grows; the log says so.
    course("train", "--", "--resume", str(run), "--max-steps", "16")
    assert [int(r["step"]) for r in metrics(run)] == list(range(17))
    assert "resumed at step 10" in (run / "log.txt").read_text()
    assert torch.load(run / "ckpt.pt", weights_only=True)["step"] == 16

    proc = course(
        "sample", "--", "--checkpoint", str(run), "--prompt", "To be", "--max-new-tokens", "30",
        "--temperature", "0.8", "--top-k", "10", "--top-p", "0.9", "--seed", "3", "--gallery", "--attention", "--perplexity",
    )  # fmt: skip
    assert "To be" in proc.stdout and "held-out" in proc.stdout
    again = course("sample", "--", "--checkpoint", str(run), "--prompt", "To be", "--max-new-tokens", "30",
                   "--temperature", "0.8", "--top-k", "10", "--top-p", "0.9", "--seed", "3")  # fmt: skip
    assert proc.stdout.startswith(again.stdout), "the same seed must give the same sample"
    assert (run / "gallery.md").read_text().startswith("# Sample gallery")
    assert (run / "attention" / "attention_layer0.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((run / "perplexity.json").read_text())
    assert report["tokens"] > 1000 and report["perplexity"] > 1


def test_a_toml_config_and_flags(corpus, tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text(f'data = "{corpus}"\nmax_steps = 3\nlr = 1\nrope = true\nrun_id = "from-toml"\n')
    config = parse_config(["--config", str(toml), "--lr", "0.002", "--no-rope"])
    assert (
        config.max_steps == 3 and config.lr == 0.002 and config.rope is False and config.run_id == "from-toml"
    )
    assert parse_config(["--config", str(toml)]).lr == 1.0  # an integer in TOML where a float is meant
    toml.write_text("max_stepz = 3\n")
    with pytest.raises(ValueError, match="unknown setting"):
        parse_config(["--config", str(toml)])
    assert parse_config([]) == TrainConfig()


def test_python_module_spelling_and_rope_bpe(corpus, tmp_path):
    subprocess.run(
        [sys.executable, "-m", "autograder.tools.capstone", "train", "--data", str(corpus), *TINY, "--max-steps", "3",
         "--rope", "--tokenizer", "bpe", "--bpe-vocab-size", "300", "--out-dir", str(tmp_path), "--run-id", "b"],
        cwd=ROOT, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    ckpt = torch.load(tmp_path / "b" / "ckpt.pt", weights_only=True)
    assert (
        ckpt["model_config"]["rope"]
        and ckpt["tokenizer"]["kind"] == "bpe"
        and ckpt["model_config"]["vocab_size"] == 300
    )


def test_existing_run_is_not_overwritten(corpus, tmp_path):
    args = (
        "train",
        "--",
        "--data",
        str(corpus),
        *TINY,
        "--max-steps",
        "1",
        "--out-dir",
        str(tmp_path),
        "--run-id",
        "x",
    )
    course(*args)
    proc = course(*args, check=False)
    assert proc.returncode != 0 and "--resume" in proc.stderr


def test_training_without_data_takes_the_shipped_dataset(tmp_path):
    """No --data, no cache, no variable, no network needed: the course's own tiny Shakespeare."""
    env = {"COURSE_DATA_CACHE": str(tmp_path / "empty"), "COURSE_DATA_FROM": ""}
    proc = course("train", "--", *TINY, "--max-steps", "1", "--out-dir", str(tmp_path), env=env)
    (run,) = [p for p in tmp_path.iterdir() if p.name != "empty"]
    shipped = ROOT / "datasets" / "tinyshakespeare.txt"
    assert json.loads((run / "config.json").read_text())["data"] == str(shipped), proc.stderr[-500:]
    assert len(json.loads((run / "tokenizer.json").read_text())["chars"]) == 65  # the whole corpus


def test_the_exercise_stubs_say_what_to_implement(corpus, tmp_path):
    proc = course("train", "--", "--impl", "exercises", "--data", str(corpus), "--max-steps", "1",
                  "--out-dir", str(tmp_path), check=False)  # fmt: skip
    assert proc.returncode != 0 and "NotImplementedError" in proc.stderr and "w09: implement" in proc.stderr


def test_ddp_two_processes_match_one(corpus, tmp_path):
    """torchrun --nproc_per_node 2 (gloo, CPU), global batch 8 = 2 × 4, follows the same loss
    trajectory as one process with batch 8, and ends with the same weights."""
    args = ["--data", str(corpus), *TINY, "--max-steps", "12", "--out-dir", str(tmp_path), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "autograder.tools.capstone", "train", *args, "--run-id", "one"],
                   cwd=ROOT, check=True, capture_output=True, env=env, timeout=300)  # fmt: skip
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "autograder.tools.capstone", "train", *args, "--run-id", "two"],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert [r["step"] for r in one] == [r["step"] for r in two]
    for a, b in zip(one, two):
        for column in ("train_loss", "val_loss"):
            if a[column]:
                # Only the order of floating-point sums differs (gradients all-reduced over 2 × 4 rows).
                assert abs(float(a[column]) - float(b[column])) < 1e-4, (a, b)
    final = [torch.load(tmp_path / r / "ckpt.pt", weights_only=True)["model"] for r in ("one", "two")]
    for name, tensor in final[0].items():
        torch.testing.assert_close(final[1][name], tensor, atol=1e-5, rtol=1e-4)
    assert "2 process(es)" in (tmp_path / "two" / "log.txt").read_text()
