"""Run reports: one self-contained HTML page per run, pictures embedded and beside it."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from striate.apps import image_classification as ic
from striate.apps import text_generation as tg
from striate.apps.report import report
from striate.cli.main import main
from striate.engine.loop import EngineConfig

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "screenshot_report.py"


def _one_thread(train, config):
    """Tiny models train faster on one thread (a second one only adds waiting)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(config).run
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report-runs")
    image = ic.ImageTrainConfig(
        model="lenet5", data="digits", runs_dir=str(root), name="image",
        engine=EngineConfig(epochs=1, batch_size=128, lr=0.05, progress=False, log_every=4),
    )  # fmt: skip
    engine = {**tg.text_engine_defaults().__dict__, "batch_size": 8, "max_steps": 6}
    engine.update(progress=False, log_every=3)
    text = tg.TextTrainConfig(
        max_chars=12_000, cell="lstm", layers=1, hidden=24, tbptt="24", sample_every=0,
        name="text", runs_dir=str(root), engine=EngineConfig(**engine),
    )  # fmt: skip
    return root, _one_thread(ic.train, image), _one_thread(tg.train, text)


def _embedded_pngs(document: str) -> list[bytes]:
    return [
        base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', document)
    ]


def _check_png(data: bytes | Path) -> tuple[int, int]:
    """The PNG decodes and is not a blank picture; returns its size."""
    raw = data.read_bytes() if isinstance(data, Path) else data
    with Image.open(io.BytesIO(raw)) as image:
        image.load()
        assert image.format == "PNG"
        assert image.size[0] >= 100 and image.size[1] >= 60
        assert len(image.convert("RGB").getcolors(1 << 20) or []) > 8
        return image.size


def _self_contained(document: str) -> None:
    assert document.startswith("<!DOCTYPE html>") and document.rstrip().endswith("</html>")
    assert not re.search(r'(src|href)="(?!data:)', document)  # nothing to fetch
    assert "<script" not in document


def test_image_run_report(runs):
    _, image_run, _ = runs
    path = report(image_run)
    assert path == image_run / "report.html"
    document = path.read_text(encoding="utf-8")
    _self_contained(document)
    for heading in ("Final metrics", "Training curves", "First-layer filters",
                    "Confusion matrix (test)", "Most confident errors (test)",
                    "Evaluation: eval-test.json", "Configuration"):  # fmt: skip
        assert f">{heading}</h2>" in document
    assert "lenet5" in document and "val: accuracy" in document
    pngs = _embedded_pngs(document)
    assert len(pngs) >= 4
    for png in pngs:
        _check_png(png)
    for name in ("curves.png", "filters.png", "confusion-test.png", "worst-errors-test.png"):
        _check_png(image_run / name)  # every figure is also a file beside the report


def test_text_run_report_elsewhere(runs, tmp_path):
    _, _, text_run = runs
    out = tmp_path / "mail" / "text-report.html"
    assert main(["report", str(text_run), "--out", str(out)]) == 0
    document = out.read_text(encoding="utf-8")
    _self_contained(document)
    for heading in ("Samples", "Gate and cell activity", "Gradient through time"):
        assert f">{heading}</h2>" in document
    assert document.count('<pre class="sample">') == 3
    assert document.count('class="unit"') == 4 and "held-out text" in document
    assert document.count('class="heat heat-text"') == 4 * 5
    pngs = _embedded_pngs(document)
    assert len(pngs) == 3  # curves, gate heat map, gradient curve
    for png in pngs:
        _check_png(png)
    # elsewhere than the run the HTML is the only file: its pictures are embedded only
    assert sorted(p.name for p in out.parent.iterdir()) == ["text-report.html"]


def test_other_kinds_show_config_curves_and_eval(tmp_path):
    run = tmp_path / "sentiment-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"kind": "sentiment", "model": "gru<classifier>"}))
    records = [
        {"phase": "train", "step": s, "epoch": 1, "loss": 1 / s, "f1": s / 10} for s in range(1, 9)
    ]
    records.append({"phase": "val", "step": 8, "epoch": 1, "loss": 0.2, "f1": 0.7})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "eval-test.json").write_text(json.dumps({"split": "test", "accuracy": 0.875, "f1": 0.8}))
    ramp = torch.linspace(0, 255, 200).to(torch.uint8).expand(120, 200)
    Image.fromarray(torch.stack([ramp, ramp.flip(1), ramp // 2], -1).numpy()).save(
        run / "attention.png"
    )  # a figure another task left in its run
    path = report(run)
    document = path.read_text(encoding="utf-8")
    _self_contained(document)
    assert "gru&lt;classifier&gt;" in document and "<classifier>" not in document
    assert "Evaluation: eval-test.json" in document and "0.875" in document
    assert "Other figures in the run" in document and "attention.png" in document
    _check_png(run / "curves.png")  # redrawn from the log: there was none
    assert len(_embedded_pngs(document)) == 2


def test_bad_input_is_one_line_and_exit_code_2(runs, tmp_path, capsys):
    root, image_run, text_run = runs
    text_file = tmp_path / "t.txt"
    text_file.write_text("def f():\n    pass\n")
    cases = [
        (["report", "no-such-run", "--runs-dir", str(root)], "no run found"),
        (["report", str(image_run), "--out", str(tmp_path / "r.pdf")], "is an HTML file"),
        (["analyze", "gates", str(image_run), "--text", str(text_file)], "not a text model"),
        (["analyze", "gradients", str(image_run)], "not a text model"),
        (
            ["analyze", "gates", str(text_run), "--text", str(tmp_path / "none.txt")],
            "does not exist",
        ),
        (["analyze", "gradients", "--cells", "lstm,transformer"], "unknown recurrent cell"),
        (["analyze", "filters", str(text_run)], "not an image classifier"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (argv, err)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_the_report_renders_in_a_headless_browser(runs, tmp_path):
    _, image_run, _ = runs
    report(image_run)
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(image_run), "--out", str(shot), "--height", "1800"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _check_png(shot) == (1280, 1800)
    with Image.open(shot) as image:  # the curves and the filters were drawn: many colours
        assert len(image.convert("RGB").getcolors(1 << 20) or []) > 200
    missing = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), "--out", str(shot)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
