"""benchmarks/results_table.py turns the scripts' JSON lines into RESULTS.md."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "results_table.py"


@pytest.fixture(scope="module")
def results_table():
    spec = importlib.util.spec_from_file_location("results_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ENGINE = {
    "bench": "engine_lenet5_mnist",
    "machine": "AMD EPYC, 2 threads, torch 2.13.0",
    "date": "2026-12-04 17:00 UTC",
    "rows": [
        {
            "figure": "LeNet-5/MNIST training, batch 128",
            "value": 16634.2,
            "unit": "images/s",
            "contender": "plain loop fp32, same in-memory batches",
            "ratio": 1.0123,
            "precision": "fp32",
            "reference": None,
        },
        {
            "figure": "time to 99 % | test",
            "value": 8.4,
            "unit": "s",
            "contender": None,
            "ratio": None,
            "precision": "bf16",
            "reference": "LeCun et al. 1998: 0.95 %",
        },
    ],
}


def test_rows_of_every_record_become_table_lines(results_table, tmp_path):
    lines = [
        "epoch 1: val loss 0.1",  # progress output around the JSON line is skipped
        json.dumps(ENGINE),
        "{not json",
        json.dumps({"no": "bench key"}),
        json.dumps({"bench": "forgot_rows", "quick": True, "machine": "m", "date": "d"}),
    ]
    log = tmp_path / "bench.jsonl"
    log.write_text("\n".join(lines) + "\n")
    out = tmp_path / "RESULTS.md"
    assert results_table.main([str(out), str(log)]) == 0
    text = out.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    header, *body = rows
    assert header.split(" | ")[1:4] == ["figure", "value", "contender"]
    assert len(body) == 3
    first = [c.strip() for c in body[0].strip("|").split("|")]
    assert first == [
        "engine_lenet5_mnist",
        "LeNet-5/MNIST training, batch 128",
        "16,634 images/s",
        "plain loop fp32, same in-memory batches",
        "1.01x",
        "fp32",
        "",
        "AMD EPYC, 2 threads, torch 2.13.0",
        "2026-12-04 17:00 UTC",
    ]
    assert "time to 99 % \\| test" in body[1] and "LeCun et al. 1998" in body[1]
    assert body[2].startswith("| forgot_rows (quick) | (no figures reported) |")


def test_no_benchmark_line_is_an_error(results_table, tmp_path, capsys):
    log = tmp_path / "empty.jsonl"
    log.write_text("nothing here\n")
    with pytest.raises(SystemExit) as exit_info:
        results_table.main([str(tmp_path / "RESULTS.md"), str(log)])
    assert exit_info.value.code == 2
    assert "no benchmark JSON lines" in capsys.readouterr().err
    assert not (tmp_path / "RESULTS.md").exists()
