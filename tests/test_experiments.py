"""The experiment scripts of benchmarks/experiments/ in their ``--quick`` form: each trains its
models for a few steps, prints its table, writes the table and its plot, and measures finite
numbers. (The figures of a quick run mean nothing; the notes quote full runs.)"""

from __future__ import annotations

import importlib.util
import math
import re
import statistics

import pytest
import torch

from autograder.weeks import ROOT

SCRIPTS = {
    # script: the rows its quick run must report
    "positions": 5,  # sinusoidal, learned, rope, alibi, none
    "capacity": 4,  # heads {1, 2} x layers {1, 2}
    "dropout": 4,  # dropout 0, 0.1, 0.3 and the model too small
    "mixed_precision": 6,  # fp32, bf16, fp16 right and wrong (AdamW, SGD)
}


def _load(name: str):
    path = ROOT / "benchmarks" / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_experiment_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def keep_threads():
    """The scripts set torch's thread count (default 1); give the worker its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _numbers(value):
    """Every number in a result (nested lists and tensors included), for the finiteness check."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return []
    if hasattr(value, "sd"):  # a figure over several seeds
        return [float(v) for v in value.values]
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, torch.Tensor):
        return [v for v in value.flatten().tolist() if not math.isnan(v)]  # NaN marks "no target here"
    if isinstance(value, list | tuple):
        return [n for v in value for n in _numbers(v)]
    return []


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_quick_run_prints_its_table_and_saves_its_plot(name, tmp_path, capsys, keep_threads):
    results = _load(name).main(["--quick", "--out", str(tmp_path)])
    out = capsys.readouterr().out

    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    assert len(rows) == 1 + SCRIPTS[name], out  # the header and one row per run
    assert re.search(r"^\|---\|", out, re.M), out
    png = tmp_path / f"{name}.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    table = (tmp_path / f"{name}.md").read_text()
    assert table.startswith(f"`python benchmarks/experiments/{name}.py --quick --out ") and rows[0] in table

    assert len(results) == SCRIPTS[name]
    for result in results:
        numbers = [n for key, value in result.items() if key != "per_position" for n in _numbers(value)]
        numbers += _numbers(result.get("per_position"))
        assert numbers and all(math.isfinite(n) for n in numbers), (name, result)


def test_several_seeds_give_mean_and_spread(tmp_path, capsys, keep_threads):
    """``--seeds 2`` trains every cell twice and the table shows mean ± sd of the two."""
    results = _load("capacity").main(["--quick", "--seeds", "2", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    assert len(rows) == 1 + SCRIPTS["capacity"] and all(" ± " in row for row in rows[1:]), out
    assert "seeds 0-1 (mean ± sd)" in out
    for result in results:
        spread = result["val_loss"]
        assert len(spread.values) == 2
        assert spread.mean == pytest.approx(statistics.mean(spread.values))
        assert spread.sd == pytest.approx(statistics.stdev(spread.values))
        assert f"{spread.mean:.4f} ± {spread.sd:.4f}" in out
