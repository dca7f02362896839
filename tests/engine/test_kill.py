"""A training run killed with SIGKILL at seeded moments (before its first checkpoint, in the
middle of writing one, between steps) always resumes, always loads, and ends with the same
weights as a run that was never killed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap

import torch

from striate.apps import sentiment as sa
from striate.artifacts.metrics_log import read_metrics
from striate.engine.loop import EngineConfig

CHILD = textwrap.dedent(
    """
    import sys, time
    import torch
    torch.set_num_threads(1)
    from striate.apps import sentiment as sa
    from striate.artifacts import checkpoint
    from striate.engine import training
    from striate.engine.loop import EngineConfig

    update, save_tensors = training.Training.update, checkpoint._save_tensors

    def traced_update(self, *args):
        sums = update(self, *args)
        print(f"STEP {self.global_step}", flush=True)
        return sums

    writes, pause_at = 0, int(sys.argv[3])

    def slow_save(tensors, target):  # a window in the middle of a checkpoint write
        global writes
        save_tensors(tensors, target)
        writes += 1
        print("WRITING", flush=True)
        if writes == pause_at:
            time.sleep(30)  # killed here

    training.Training.update, checkpoint._save_tensors = traced_update, slow_save
    runs, data = sys.argv[1], sys.argv[2]
    if sys.argv[4] == "resume":
        sa.resume("run", runs)
    else:
        sa.train(sa.SentimentTrainConfig(**CONFIG, data=data, name="run", runs_dir=runs,
                                         engine=EngineConfig(**ENGINE)))
    print("DONE", flush=True)
    """
)
CONFIG = {"hidden": 8, "embedding": 8, "min_freq": 1}
ENGINE = {
    **sa.sentiment_engine_defaults().__dict__, "epochs": 2, "batch_size": 4, "log_every": 2,
    "checkpoint_every": 3, "progress": False, "dropout": None,
}  # fmt: skip
ENGINE.pop("dropout")


def _data(tmp_path) -> str:
    path = tmp_path / "r.csv"
    words = ("good", "fine", "bad", "poor")
    rows = [f"{w} thing {i},{'pos' if w in words[:2] else 'neg'}" for w in words for i in range(12)]
    path.write_text("\n".join(rows), encoding="utf-8")
    return f"csv:{path}"


def _launch(tmp_path, data: str, resume: bool, kill_when, pause_at: int = 0) -> bool:
    """Run the child; SIGKILL it at the first stdout line ``kill_when`` accepts (the child
    pauses in its ``pause_at``-th tensor-file write). True if it ran to the end."""
    script = f"CONFIG = {CONFIG!r}\nENGINE = {ENGINE!r}\n" + CHILD
    args = [sys.executable, "-c", script, str(tmp_path / "runs"), data, str(pause_at)]
    args.append("resume" if resume else "new")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    writes = 0
    try:
        for line in proc.stdout:
            writes += line.startswith("WRITING")
            if line.startswith("DONE"):
                break
            if kill_when(line.split(), writes):
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                return False
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read()[-2000:]
    return True


def test_sigkill_at_seeded_moments_always_resumes_and_loads(tmp_path):
    data = _data(tmp_path)
    rng = random.Random(7)
    reference = sa.train(
        sa.SentimentTrainConfig(
            **CONFIG, data=data, name="ref", runs_dir=str(tmp_path), engine=EngineConfig(**ENGINE)
        )
    )
    early = rng.randint(1, 2)  # before the first checkpoint (every 3 steps)
    nth_write = rng.randint(4, 6)  # in the middle of a checkpoint write (3 files each)
    late = rng.randint(10, reference.fit.step - 2)  # between two steps, later on
    moments = [
        lambda words, writes: words[:1] == ["STEP"] and int(words[1]) >= early,
        lambda words, writes: writes >= nth_write,
        lambda words, writes: words[:1] == ["STEP"] and int(words[1]) >= late,
    ]
    run = tmp_path / "runs" / "run"
    for attempt, kill_when in enumerate(moments):
        assert not _launch(tmp_path, data, attempt > 0, kill_when, nth_write * (attempt == 1))
        if (run / "metrics.jsonl").exists():
            read_metrics(run / "metrics.jsonl")  # readable after any kill
        if attempt > 0:  # there is a checkpoint now, and the run loads
            sa.load_sentiment_model(run)
    assert _launch(tmp_path, data, True, lambda words, writes: False)
    a, _, _ = sa.load_sentiment_model(reference.run)
    b, _, _ = sa.load_sentiment_model(run)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if r["phase"] == "train"]
    assert steps == sorted(set(steps))  # no step logged twice after the resumes
