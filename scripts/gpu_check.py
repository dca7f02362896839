"""``make gpu-check``: everything a GPU machine should confirm, in one run, one summary.

1. the ``gpu``-marked tests (tests/gpu: every task's train, resume, evaluate and predict on
   cuda, bf16 and fp16 autocast, channels-last, --compile, DDP over NCCL with two GPUs,
   runs moving between GPU and CPU machines);
2. the cell-learning test on the CPU and on the GPU of this machine (a diagnosis);
3. every task's short ``striate train`` + predict command on cuda, each timed;
4. the GPU benchmarks with their plain PyTorch scripts (benchmarks/bench_gpu.py --quick).

Meant to finish within 5 minutes on one GPU. It needs only the embedded data sources and
uses ``../shared/data`` (or ``$STRIATE_DATA``) when there. ``--device cpu`` runs the same
steps on the CPU (the gpu tests through ``STRIATE_GPU_TEST_DEVICE=cpu``) to check the
script itself where no GPU is at hand. Exit status 1 if any part failed.

It needs no installed striate: on a GPU machine where nothing can be installed from the
network but PyTorch is there, ``scripts/device_wheels.sh`` fetches beforehand (elsewhere)
the wheels that machine lacks into ``.whl/``; there, from the repository root::

    python3 -m pip install -q --no-index --no-deps --target .whl/site .whl/*.whl
    PYTHONPATH=.whl/site:src python3 scripts/gpu_check.py
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = {"tests": 150, "tasks": 45, "bench": 150}


TOTAL_S = 295.0  # the whole check stays within 5 minutes
DEADLINE = [time.perf_counter() + TOTAL_S]


def _run(command: list[str], env: dict[str, str], timeout: float) -> tuple[int, str, float]:
    """(exit code, combined output, seconds) of ``command``, run from the repository root,
    cut at ``timeout`` or at the check's overall deadline, whichever comes first."""
    start = time.perf_counter()
    timeout = max(1.0, min(timeout, DEADLINE[0] - start))
    try:
        done = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
        )
        code, out = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        code, out = 124, f"timed out after {timeout:.0f} s\n{exc.stdout or ''}"
    return code, out if isinstance(out, str) else out.decode(), time.perf_counter() - start


def _tail(text: str, lines: int = 1) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(kept[-lines:])[:300]


def gpu_tests(env: dict[str, str], device: str) -> dict:
    env = dict(env)
    if not device.startswith("cuda"):
        env["STRIATE_GPU_TEST_DEVICE"] = device
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/gpu"]
    code, out, seconds = _run(command, env, BUDGET_S["tests"])
    return {"ok": code == 0, "seconds": round(seconds, 1), "pytest": _tail(out)}


def gru_diagnosis(env: dict[str, str], device: str) -> dict:
    """The cell-learning test on this machine's CPU and on its GPU, with what it trains on.

    ``test_every_cell_trains_on_the_embedded_corpus[gru_cudnn]`` was reported failing on
    cuda only. Its corpus is this Python's own standard library, so it differs between
    Python versions; running it on both devices of one machine tells a device effect from
    a data effect (see the report of issue 13).
    """
    from striate.data.sources.text import load_text

    text = load_text("python-stdlib", max_chars=20_000)
    test = "tests/apps/test_text_app.py::test_every_cell_trains_on_the_embedded_corpus"
    out: dict = {"python": sys.version.split()[0], "corpus_chars": len(set(text))}
    for where, extra in (("cpu", {"CUDA_VISIBLE_DEVICES": ""}), (device, {})):
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test]
        code, text_out, seconds = _run(command, {**env, **extra}, 120)
        out[where] = {"ok": code == 0, "seconds": round(seconds, 1), "pytest": _tail(text_out)}
    out["ok"] = True  # informative: its failures are counted under "tests" where they belong
    return out


def task_commands(runs: Path, device: str) -> dict[str, list[list[str]]]:
    """A short training and a prediction per task, on data that needs no download."""
    from PIL import Image

    picture = runs / "picture.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(picture)
    digit = runs / "digit.png"
    Image.new("L", (28, 28), 0).save(digit)
    clip = runs / "clip"
    clip.mkdir(exist_ok=True)
    for k in range(4):
        Image.new("L", (32, 32), 40 * k).save(clip / f"{k:03d}.png")
    csv = runs / "moods.csv"
    csv.write_text(
        "text,label\n" + "\n".join(f"glad day {i},joy\nmad day {i},anger" for i in range(16)),
        encoding="utf-8",
    )
    tsv = runs / "toy.tsv"
    tsv.write_text(
        "".join(f"red cat {i % 7}.\tkatze rot {i % 7}.\n" for i in range(200)), encoding="utf-8"
    )
    short = ["--epochs", "1", "--max-steps", "20", "--no-progress", "--device", device]
    where = ["--runs-dir", str(runs)]
    return {
        "image": [
            ["train", "image", "--data", "digits", *short, "--name", "image", *where],
            ["classify", "image", str(digit), *where],
        ],
        "text": [
            [
                "train",
                "text",
                "--max-chars",
                "50000",
                "--hidden",
                "128",
                "--sample-every",
                "0",
                *short,
                "--name",
                "text",
                *where,
            ],
            ["sample", "text", "--prime", "def ", "--length", "100", *where],
        ],
        "sentiment": [
            [
                "train",
                "sentiment",
                "--data",
                f"csv:{csv}",
                "--min-freq",
                "1",
                "--batch-size",
                "8",
                *short,
                "--name",
                "sentiment",
                *where,
            ],
            ["predict-sentiment", "sentiment", "glad day", *where],
        ],
        "translate": [
            [
                "train",
                "translate",
                "--data",
                f"tsv:{tsv}",
                "--columns",
                "en,de",
                "--src",
                "en",
                "--tgt",
                "de",
                "--min-freq",
                "1",
                "--hidden",
                "64",
                "--embedding",
                "64",
                "--val-bleu-samples",
                "8",
                *short,
                "--name",
                "translate",
                *where,
            ],
            ["translate", "translate", "red cat 3.", "--device", device, *where],
        ],
        "caption": [
            [
                "train",
                "caption",
                "--data",
                "shapes:256",
                "--beam",
                "1",
                *short,
                "--name",
                "caption",
                *where,
            ],
            ["caption", "caption", str(picture), *where],
        ],
        "video": [
            [
                "train",
                "video",
                "--clips",
                "128",
                "--val-clips",
                "16",
                "--test-clips",
                "16",
                *short,
                "--name",
                "video",
                *where,
            ],
            ["label-video", "video", str(clip), *where],
        ],
        "analyze": [
            [
                "analyze",
                "gradients",
                "--train-steps",
                "20",
                "--lag",
                "50",
                "--device",
                device,
                "--out",
                str(runs / "gradients.png"),
            ],
            ["report", "image", *where],
        ],
    }


def tasks(env: dict[str, str], device: str) -> dict:
    results = {}
    deadline = min(DEADLINE[0], time.perf_counter() + BUDGET_S["tasks"] * 2)
    if device == "cpu":  # a dry run: each command gets what is left
        deadline = DEADLINE[0]
    with tempfile.TemporaryDirectory() as folder:
        for task, commands in task_commands(Path(folder), device).items():
            seconds, ok, note = 0.0, True, ""
            for args in commands:
                left = max(5.0, deadline - time.perf_counter())
                code, out, took = _run([sys.executable, "-m", "striate", *args], env, left)
                seconds += took
                if code != 0:
                    ok, note = False, f"{' '.join(args[:2])}: exit {code}: {_tail(out)}"
                    break
            results[task] = {
                "ok": ok,
                "seconds": round(seconds, 1),
                **({"error": note} if note else {}),
            }
    return results


def benchmarks(env: dict[str, str], device: str) -> dict:
    command = [sys.executable, "benchmarks/bench_gpu.py", "--quick", "--device", device]
    code, out, seconds = _run(command, env, BUDGET_S["bench"])
    rows = []
    for line in out.splitlines():
        if line.startswith("{"):
            row = json.loads(line)
            keep = ("bench", "status", "ratio", "throughput_ratio", "time_to_99_s", "target")
            rows.append({k: row[k] for k in keep if k in row})
    return {
        "ok": code == 0,
        "seconds": round(seconds, 1),
        "rows": rows,
        **({} if code == 0 else {"error": _tail(out, 3)}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), or cpu to dry-run")
    parser.add_argument("--skip", default="", help="comma-separated: tests,gru,tasks,bench")
    parser.add_argument(
        "--seconds", type=float, default=TOTAL_S, help="overall limit (a slow CPU dry run)"
    )
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "src"))
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            f"gpu-check: this PyTorch ({torch.__version__}) sees no CUDA GPU; "
            "use --device cpu to dry-run the script",
            file=sys.stderr,
        )
        return 2
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    shared = REPO.parent / "shared" / "data"
    if "STRIATE_DATA" not in env and shared.is_dir():
        env["STRIATE_DATA"] = str(shared)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    start = time.perf_counter()
    DEADLINE[0] = start + args.seconds
    summary: dict = {
        "gpu_check": args.device,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "gpus": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "data": env.get("STRIATE_DATA", "embedded sources only"),
    }
    parts = {"tests": gpu_tests, "gru": gru_diagnosis, "tasks": tasks, "bench": benchmarks}
    for name, part in parts.items():
        if name not in skip:
            summary[name] = part(env, args.device)
    summary["seconds"] = round(time.perf_counter() - start, 1)
    results = [summary[n] for n in parts if n in summary]
    ok = all(r["ok"] for r in results if "ok" in r) and all(
        t["ok"] for t in summary.get("tasks", {}).values()
    )
    summary["ok"] = ok
    print(json.dumps(summary, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
