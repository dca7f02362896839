"""Every task on a CUDA GPU: train, resume, evaluate and predict; mixed precision,
channels-last, ``--compile``, DDP over NCCL, and runs moving between GPU and CPU machines.

All tests here are marked ``gpu``: skipped, with the reason, where torch sees no CUDA GPU.
``STRIATE_GPU_TEST_DEVICE=cpu`` runs the parts that do not need CUDA itself (everything but
fp16, ``--compile`` and NCCL) on the CPU, to check these tests where no GPU is at hand.
Each run is a few steps on embedded or generated data: these test that the GPU path works
end to end, not how well it learns (``make gpu-check`` also times it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from striate.cli.main import main

DEVICE = os.environ.get("STRIATE_GPU_TEST_DEVICE", "cuda")
ON_CUDA = DEVICE.startswith("cuda")
needs_cuda = pytest.mark.skipif(not ON_CUDA, reason="needs CUDA itself, not the CPU stand-in")
pytestmark = [] if os.environ.get("STRIATE_GPU_TEST_DEVICE") else [pytest.mark.gpu]

SHORT = ["--epochs", "1", "--max-steps", "3", "--no-progress", "--log-every", "1"]
DEVICE_NAMES = re.compile(r"^(cpu|cuda(:\d+)?|mps)$")


def striate(*args: str | Path) -> None:
    """Run one ``striate`` command in this process; it must succeed."""
    code = main([str(a) for a in args])
    assert code == 0, f"striate {' '.join(map(str, args))} exited with {code}"


def _image(path: Path, size: int = 28, mode: str = "L") -> Path:
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (size, size, 3 if mode == "RGB" else 1), generator=g)
    Image.fromarray(pixels.squeeze(-1).to(torch.uint8).numpy(), mode).save(path)
    return path


def _sentiment_csv(folder: Path) -> Path:
    words = {"joy": ["glad", "happy", "great"], "anger": ["mad", "furious", "cross"]}
    rows = ["text,label"] + [
        f'"{w} day, {w} {i}",{label}' for label, ws in words.items() for w in ws for i in range(8)
    ]
    path = folder / "moods.csv"
    path.write_text("\n".join(rows), encoding="utf-8")
    return path


def _pairs_tsv(folder: Path) -> Path:
    words = {"red": "rot", "cat": "katze", "dog": "hund", "big": "groß", "runs": "rennt"}
    g = torch.Generator().manual_seed(0)
    keys = list(words)
    lines = []
    for i in range(300):
        picked = [keys[int(k)] for k in torch.randint(0, len(keys), (3,), generator=g)]
        target = " ".join(words[w] for w in reversed(picked))
        lines.append(f"{' '.join(picked)}.\t{target}.\ttoy #{i}")
    path = folder / "toy.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _clip(folder: Path) -> Path:
    clip = folder / "clip"
    clip.mkdir()
    for k in range(4):
        _image(clip / f"{k:03d}.png", size=32)
    return clip


def _tasks(root: Path) -> dict[str, dict[str, list]]:
    """For each task: train flags, then the evaluate and predict commands (RUN = the run)."""
    csv, tsv = _sentiment_csv(root), _pairs_tsv(root)
    digit, picture, clip = _image(root / "d.png"), _image(root / "p.png", 64, "RGB"), _clip(root)
    return {
        "image": {
            "train": ["image", "--model", "lenet5", "--data", "digits", "--batch-size", "32"],
            "eval": [["eval", "RUN", "--device", DEVICE]],
            "predict": [["classify", "RUN", digit]],
        },
        "text": {
            "train": [
                "text",
                "--max-chars",
                "20000",
                "--hidden",
                "32",
                "--layers",
                "1",
                "--tbptt",
                "16",
                "--batch-size",
                "8",
                "--sample-every",
                "0",
            ],
            "eval": [],
            "predict": [["sample", "RUN", "--prime", "def ", "--length", "20", "--seed", "1"]],
        },
        "sentiment": {
            "train": [
                "sentiment",
                "--data",
                f"csv:{csv}",
                "--hidden",
                "16",
                "--embedding",
                "16",
                "--min-freq",
                "1",
                "--batch-size",
                "8",
            ],
            "eval": [["eval-sentiment", "RUN", "--split", "val", "--device", DEVICE]],
            "predict": [["predict-sentiment", "RUN", "glad day"]],
        },
        "translate": {
            "train": [
                "translate",
                "--data",
                f"tsv:{tsv}",
                "--src",
                "en",
                "--tgt",
                "de",
                "--columns",
                "en,de",
                "--min-freq",
                "1",
                "--hidden",
                "16",
                "--embedding",
                "16",
                "--batch-size",
                "16",
                "--val-bleu-samples",
                "8",
            ],
            "eval": [
                [
                    "eval-translate",
                    "RUN",
                    "--split",
                    "val",
                    "--limit",
                    "8",
                    "--beam",
                    "2",
                    "--device",
                    DEVICE,
                ]
            ],
            "predict": [["translate", "RUN", "red cat.", "--device", DEVICE]],
        },
        "caption": {
            "train": [
                "caption",
                "--data",
                "shapes:64",
                "--encoder",
                "lenet5",
                "--embedding",
                "16",
                "--hidden",
                "32",
                "--batch-size",
                "16",
                "--beam",
                "1",
            ],
            "eval": [["eval-caption", "RUN", "--split", "val", "--beam", "1", "--device", DEVICE]],
            "predict": [["caption", "RUN", picture, "--beam", "1"]],
        },
        "video": {
            "train": [
                "video",
                "--clips",
                "32",
                "--val-clips",
                "8",
                "--test-clips",
                "8",
                "--frames",
                "6",
                "--hidden",
                "8",
                "--batch-size",
                "8",
            ],
            "eval": [["eval-video", "RUN", "--split", "val", "--device", DEVICE]],
            "predict": [["label-video", "RUN", clip]],
        },
    }


def device_strings(value: object, path: str = "") -> list[str]:
    """Where a JSON document names a device (``cpu``, ``cuda:0``, ``mps``) as a value."""
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in device_strings(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [f for i, v in enumerate(value) for f in device_strings(v, f"{path}[{i}]")]
    return [f"{path}={value}"] if isinstance(value, str) and DEVICE_NAMES.match(value) else []


def assert_portable(run: Path) -> None:
    """No device in any checkpoint's metadata, and its tensors load on the CPU.

    The runs checked train with ``--device auto`` (the GPU where there is one): a device
    named on the command line is recorded as the engine setting it is.
    """
    from striate.artifacts.checkpoint import load_checkpoint

    checkpoints = sorted((run / "checkpoints").glob("step-*"))
    assert checkpoints, f"no checkpoint in {run}"
    for checkpoint in checkpoints:
        meta = json.loads((checkpoint / "meta.json").read_text(encoding="utf-8"))
        assert device_strings(meta) == [], checkpoint
        loaded = load_checkpoint(checkpoint, with_optimizer=True)
        assert all(t.device.type == "cpu" for t in loaded.model_state.values())


@pytest.mark.parametrize("task", ["image", "text", "sentiment", "translate", "caption", "video"])
def test_every_task_trains_resumes_evaluates_and_predicts_on_the_gpu(task, tmp_path, capsys):
    spec = _tasks(tmp_path)[task]
    runs = tmp_path / "runs"
    common = ["--runs-dir", runs]
    striate("train", *spec["train"], *SHORT, "--device", DEVICE, "--name", task, *common)
    striate(
        "train",
        task,
        "--resume",
        task,
        "--epochs",
        "2",
        "--max-steps",
        "5",
        "--device",
        DEVICE,
        *common,
    )
    assert "step 5" in capsys.readouterr().out
    for command in spec["eval"] + spec["predict"]:
        striate(*[runs / task if part == "RUN" else part for part in command], *common)
    assert capsys.readouterr().out.strip()
    striate("report", runs / task, *common)


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(["--precision", "bf16"], id="bf16"),
        pytest.param(["--precision", "fp16"], id="fp16-grad-scaling", marks=needs_cuda),
        pytest.param(["--channels-last", "--precision", "bf16"], id="channels-last"),
        pytest.param(["--compile"], id="compile", marks=needs_cuda),
    ],
)
def test_image_training_options_on_the_gpu(flags, tmp_path):
    runs = tmp_path / "runs"
    striate(
        "train",
        "image",
        "--model",
        "lenet5",
        "--data",
        "digits",
        "--batch-size",
        "64",
        "--epochs",
        "1",
        "--max-steps",
        "12",
        "--no-progress",
        *flags,
        "--name",
        "r",
        "--runs-dir",
        runs,
    )
    history = [
        json.loads(line)
        for line in (runs / "r" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    losses = [r["loss"] for r in history if r.get("phase") == "train"]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    assert_portable(runs / "r")


@pytest.mark.parametrize("precision", ["bf16", pytest.param("fp16", marks=needs_cuda)])
@pytest.mark.parametrize("cell", ["lstm", "gru", "gru_cudnn"])
def test_recurrent_mixed_precision_on_the_gpu(cell, precision, tmp_path):
    striate(
        "train",
        "text",
        "--max-chars",
        "20000",
        "--hidden",
        "32",
        "--layers",
        "2",
        "--cell",
        cell,
        "--tbptt",
        "16,32",
        "--batch-size",
        "8",
        "--sample-every",
        "0",
        *SHORT,
        "--precision",
        precision,
        "--name",
        "t",
        "--runs-dir",
        tmp_path,
    )
    assert_portable(tmp_path / "t")


def test_fused_gru_on_the_gpu_equals_the_reference_in_values_and_gradients():
    """The cuDNN GRU (gru_cudnn, fast) against the cells' equations, in float64 (no TF32),
    for values and every gradient, and against torch.nn.GRU on the same device."""
    from striate.nn.recurrent import Recurrent

    torch.manual_seed(0)
    ref = Recurrent("gru_cudnn", 5, 7, num_layers=2, impl="reference").double().to(DEVICE)
    fast = Recurrent("gru_cudnn", 5, 7, num_layers=2, impl="fast").double().to(DEVICE)
    fast.load_state_dict(ref.state_dict())
    x = torch.randn(3, 9, 5, dtype=torch.float64, device=DEVICE)
    h0 = torch.randn(2, 3, 7, dtype=torch.float64, device=DEVICE)
    results = []
    for layer in (ref, fast):
        out, h = layer(x, h0)
        loss = (out * torch.linspace(-1, 1, 7, device=DEVICE, dtype=torch.float64)).sum()
        loss = loss + h.square().sum()
        results.append([out, h, *torch.autograd.grad(loss, list(layer.parameters()))])
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    theirs = torch.nn.GRU(5, 7, num_layers=2, batch_first=True).double().to(DEVICE)
    torch.testing.assert_close(Recurrent.from_torch(theirs)(x, h0)[0], theirs(x, h0)[0])


def test_a_gpu_run_loads_evaluates_and_predicts_on_a_cpu_only_machine(
    tmp_path, monkeypatch, capsys
):
    runs = tmp_path / "runs"
    digit = _image(tmp_path / "d.png")
    striate(
        "train",
        "image",
        "--model",
        "lenet5",
        "--data",
        "digits",
        *SHORT,
        "--name",
        "gpu-run",
        "--runs-dir",
        runs,
    )  # device auto: the GPU
    assert_portable(runs / "gpu-run")
    on_gpu = capsys.readouterr()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the laptop
    striate("eval", runs / "gpu-run", "--runs-dir", runs)
    striate("classify", runs / "gpu-run", digit, "--runs-dir", runs)
    striate("train", "image", "--resume", "gpu-run", "--max-steps", "5", "--runs-dir", runs)
    assert "step 5" in capsys.readouterr().out and on_gpu.out
    monkeypatch.undo()  # and back: the CPU-trained continuation on the GPU
    striate("classify", runs / "gpu-run", digit, "--runs-dir", runs)


def test_analyses_work_on_the_gpu(tmp_path):
    png = tmp_path / "gradients.png"
    striate(
        "analyze",
        "gradients",
        "--train-steps",
        "20",
        "--lag",
        "20",
        "--hidden",
        "8",
        "--cells",
        "rnn,lstm,gru,gru_cudnn",
        "--device",
        DEVICE,
        "--out",
        png,
    )
    assert png.is_file() and png.with_suffix(".json").is_file()


@needs_cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP over NCCL needs two GPUs")
def test_ddp_over_nccl_with_two_gpus(tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "striate",
        "train",
        "image",
        "--model",
        "lenet5",
        "--data",
        "digits",
        "--batch-size",
        "64",
        *SHORT,
        "--name",
        "ddp",
        "--runs-dir",
        str(tmp_path),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]
    assert_portable(tmp_path / "ddp")


@needs_cuda
def test_fp16_resume_keeps_the_loss_scale_and_its_growth_counter(tmp_path):
    from striate.apps._runs import resolve_checkpoint
    from striate.artifacts.checkpoint import load_checkpoint

    runs = tmp_path / "runs"
    common = ["--model", "lenet5", "--data", "digits", "--batch-size", "64", "--no-progress"]
    striate("train", "image", *common, "--precision", "fp16", "--epochs", "1",
            "--max-steps", "3", "--name", "r", "--runs-dir", runs)  # fmt: skip
    first = load_checkpoint(resolve_checkpoint(runs / "r")).meta["grad_scaler"]
    striate("train", "image", "--resume", runs / "r", "--max-steps", "6", "--runs-dir", runs,
            "--no-progress")  # fmt: skip
    then = load_checkpoint(resolve_checkpoint(runs / "r")).meta["grad_scaler"]
    # 3 more steps without an overflow add 3 to the restored counter (it would be 3 if the
    # scaler had started afresh), unless an overflow reset it and halved the scale
    assert then["_growth_tracker"] == first["_growth_tracker"] + 3 or (
        then["scale"] < first["scale"]
    )
