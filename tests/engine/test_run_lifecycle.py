"""How runs start, end and resume: time budgets, extensions, runs stopped before their first
checkpoint, best checkpoints and patience, run references, metrics files, the batch-to-device
helper, and ``striate eval`` on a text run."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import shutil
import signal
from collections import namedtuple

import pytest
import torch

from striate.apps import sentiment as sa
from striate.apps import text_generation as tg
from striate.apps._runs import resolve_checkpoint
from striate.artifacts.checkpoint import best_checkpoint, list_checkpoints, load_checkpoint
from striate.artifacts.metrics_log import MetricsLog, read_metrics
from striate.cli.common import engine_config
from striate.cli.main import build_parser, main
from striate.engine import training
from striate.engine.device import move_to_device
from striate.engine.loop import EngineConfig
from striate.errors import StriateError


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    words = ("good", "fine", "bad", "poor")
    rows = [f"{w} thing {i},{'pos' if w in words[:2] else 'neg'}" for w in words for i in range(12)]
    path.write_text("\n".join(rows), encoding="utf-8")
    return f"csv:{path}"


def _config(data, tmp, name, **engine):
    settings = {
        **sa.sentiment_engine_defaults().__dict__, "epochs": 2, "batch_size": 4, "log_every": 1,
        "progress": False, **engine,
    }  # fmt: skip
    return sa.SentimentTrainConfig(
        data=data, hidden=8, embedding=8, min_freq=1, name=name, runs_dir=str(tmp),
        engine=EngineConfig(**settings),
    )  # fmt: skip


def _weights(run):
    return load_checkpoint(resolve_checkpoint(f"{run}@latest")).model_state


def _lrs(result):
    return {r["step"]: r["lr"] for r in result.fit.history if r["phase"] == "train"}


class FakeClock:
    """Stands in for ``time`` in the loop: every reading is one second after the last."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += 1.0
        return self.now


# ---------------------------------------------------------------------------------------------


def test_move_to_device_moves_every_tensor_in_nested_structures():
    Pair = namedtuple("Pair", "src tgt")

    @dataclasses.dataclass(frozen=True)
    class Batch:
        images: torch.Tensor
        meta: dict
        name: str = "b"

    batch = (
        torch.zeros(2),
        [Pair(torch.ones(1), torch.ones(2)), {"a": torch.zeros(3), "n": 4}],
        Batch(torch.zeros(1, 2), {"lengths": [torch.tensor([1, 2])]}),
        "text",
    )
    moved = move_to_device(batch, "meta")
    assert isinstance(moved, tuple) and isinstance(moved[1], list)
    assert isinstance(moved[1][0], Pair) and isinstance(moved[2], Batch)
    tensors = [moved[0], *moved[1][0], moved[1][1]["a"], moved[2].images]
    tensors.append(moved[2].meta["lengths"][0])
    assert all(t.device.type == "meta" for t in tensors)
    assert moved[1][1]["n"] == 4 and moved[2].name == "b" and moved[3] == "text"
    assert batch[0].device.type == "cpu"  # the input is left as it was


def test_a_run_killed_before_its_first_checkpoint_resumes_from_step_0(reviews, tmp_path):
    whole = sa.train(_config(reviews, tmp_path, "whole", max_steps=5))
    part = sa.train(_config(reviews, tmp_path, "part", max_steps=3))
    shutil.rmtree(part.run / "checkpoints")  # as if killed before its first checkpoint
    with open(part.run / "metrics.jsonl", "a") as fh:
        fh.write('{"phase": "train", "ste')  # and in the middle of a line
    resumed = sa.resume(part.run, tmp_path, max_steps=5)
    assert resumed.fit.step == 5
    for key, value in _weights(whole.run).items():
        assert torch.equal(value, _weights(resumed.run)[key]), key
    steps = [r["step"] for r in read_metrics(part.run / "metrics.jsonl") if r["phase"] == "train"]
    assert steps == [1, 2, 3, 4, 5]  # the killed run's records and torn line are gone


@pytest.mark.cpu
def test_a_run_trained_on_a_gpu_resumes_on_a_machine_without_one(reviews, tmp_path, capsys):
    part = sa.train(_config(reviews, tmp_path, "gpu-run", max_steps=2, device="cpu"))
    config = json.loads((part.run / "config.json").read_text())
    config["engine"]["device"] = "cuda:3"  # as saved by a run trained with --device cuda:3
    (part.run / "config.json").write_text(json.dumps(config))
    resumed = sa.resume(part.run, tmp_path, max_steps=3)
    assert resumed.fit.step == 3
    assert "trained on cuda:3, which this machine lacks" in capsys.readouterr().err


def test_another_length_on_resume_is_an_extension_without_a_jump(reviews, tmp_path):
    whole = sa.train(_config(reviews, tmp_path, "whole"))
    k = whole.fit.step // 2 + 1
    sa.train(_config(reviews, tmp_path, "part", max_steps=k))
    longer = sa.resume("part", tmp_path, epochs=4)
    before, after = _lrs(whole), _lrs(longer)
    assert after[k + 1] == pytest.approx(before[k + 1])  # the same rate at the resume point
    assert longer.fit.step == 2 * whole.fit.step
    assert after[longer.fit.step] < 0.02 * after[k + 1]  # decays to ~0 over the added part
    assert all(a >= b for a, b in itertools.pairwise(list(after.values())[k:]))
    assert sa.resume("whole", tmp_path).fit.step == whole.fit.step  # at its end already
    with pytest.raises(StriateError, match="past the end of epoch 1"):
        sa.resume("whole", tmp_path, epochs=1)


def test_time_budget_spans_the_schedule_and_resumes_with_a_larger_total(
    reviews, tmp_path, monkeypatch
):
    monkeypatch.setattr(training, "time", FakeClock())
    budget = sa.train(_config(reviews, tmp_path, "b", time_budget=5.0, schedule="cosine"))
    lrs = list(_lrs(budget).values())
    planned = _config(reviews, tmp_path, "x").engine.epochs * 10  # 40 train rows / batch 4
    assert budget.fit.step > planned  # the budget, not --epochs, sets the length
    assert all(a >= b for a, b in itertools.pairwise(lrs)) and lrs[-1] < 0.01 * lrs[0]
    assert budget.fit.history[-1]["phase"] == "val" and budget.fit.final  # ends measured
    ckpt = load_checkpoint(budget.fit.checkpoint)
    assert ckpt.meta["step"] == budget.fit.step and ckpt.meta["elapsed_s"] >= 300
    again = sa.resume("b", tmp_path)  # the budget is spent: nothing more to train
    assert again.fit.step == budget.fit.step
    more = sa.resume("b", tmp_path, time_budget=8.0)  # eight minutes in all
    assert more.fit.step > budget.fit.step
    added = list(_lrs(more).values())[len(lrs) :]
    assert added[0] <= lrs[-1] * 1.001 and added == sorted(added, reverse=True)


def test_a_refused_run_leaves_no_folder_and_a_refused_resume_leaves_the_run_as_it_was(
    reviews, tmp_path
):
    with pytest.raises(StriateError, match="fp16 needs a CUDA device"):
        sa.train(_config(reviews, tmp_path, "half", precision="fp16", device="cpu"))
    assert not (tmp_path / "half").exists()  # refused before its first step: no folder
    sa.train(_config(reviews, tmp_path, "done"))  # 2 epochs
    saved = (tmp_path / "done" / "config.json").read_bytes()
    with pytest.raises(StriateError, match="past the end of epoch 1"):
        sa.resume("done", tmp_path, epochs=1)
    with pytest.raises(StriateError, match="give a larger --time-budget"):
        sa.resume("done", tmp_path, time_budget=1e-6)
    assert (tmp_path / "done" / "config.json").read_bytes() == saved  # still resumable
    assert sa.resume("done", tmp_path, epochs=3).fit.step == 3 * 10  # 40 rows / batch 4


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_a_bad_time_budget_is_one_line_and_exit_2(reviews, tmp_path, capsys, value):
    args = ["train", "sentiment", "--data", reviews, "--runs-dir", str(tmp_path)]
    assert main([*args, "--time-budget", value, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "time-budget" in err.replace(" ", "-") and err.count("\n") == 1
    assert not any(tmp_path.iterdir())  # no run was started


def test_checkpoints_on_a_timer_beside_the_step_count(reviews, tmp_path, monkeypatch):
    args = build_parser().parse_args(["train", "sentiment", "--checkpoint-every", "90s"])
    assert engine_config(args, EngineConfig()).checkpoint_minutes == 1.5
    args = build_parser().parse_args(["train", "sentiment", "--checkpoint-every", "7"])
    assert engine_config(args, EngineConfig()).checkpoint_every == 7
    assert main(["train", "sentiment", "--checkpoint-every", "10 minutes"]) == 2
    monkeypatch.setattr(training, "time", FakeClock())
    result = sa.train(
        _config(reviews, tmp_path, "t", epochs=1, checkpoint_minutes=0.1, keep_checkpoints=99)
    )
    steps = [load_checkpoint(p).meta["step"] for p in list_checkpoints(result.run / "checkpoints")]
    assert len(steps) > 2 and steps[-1] == result.fit.step  # several inside the one epoch


def test_keep_best_and_patience_survive_resume(reviews, tmp_path):
    # a learning rate this small changes no prediction: val accuracy never improves
    settings = {"epochs": 8, "lr": 1e-9, "keep_best": "val.accuracy", "patience": 2}
    whole = sa.train(_config(reviews, tmp_path, "whole", **settings))
    per_epoch = whole.fit.step // 3
    assert [r["epoch"] for r in whole.fit.history if r["phase"] == "val"] == [1, 2, 3]
    best = best_checkpoint(whole.run / "checkpoints")
    assert load_checkpoint(best).meta["step"] == per_epoch
    assert resolve_checkpoint(whole.run) == best  # RUN is its best checkpoint
    latest = resolve_checkpoint(f"{whole.run}@latest")
    assert load_checkpoint(latest).meta["step"] == whole.fit.step
    assert resolve_checkpoint(f"{whole.run}@step-{per_epoch}") == best
    with pytest.raises(StriateError, match="no checkpoint at step 999"):
        resolve_checkpoint(f"{whole.run}@step-999")
    with pytest.raises(StriateError, match="latest, best or step-N"):
        resolve_checkpoint(f"{whole.run}@newest")
    sa.train(_config(reviews, tmp_path, "part", max_steps=2 * per_epoch, **settings))
    resumed = sa.resume("part", tmp_path)  # one bad validation was counted before the stop
    assert resumed.fit.step == whole.fit.step
    with pytest.raises(StriateError, match=r"val\.bleu is not measured"):
        sa.train(_config(reviews, tmp_path, "bleu", keep_best="val.bleu"))


def test_metrics_readers_skip_a_torn_last_line_and_csv_keeps_every_metric(tmp_path, capsys):
    log = MetricsLog(tmp_path, "jsonl", tensorboard=False)
    log.write({"phase": "train", "epoch": 1, "step": 1, "loss": 2.0})
    with open(log.path, "a") as fh:
        fh.write('{"phase": "train", "epoch": 1, "st')
    assert [r["step"] for r in read_metrics(log.path)] == [1]
    assert "torn line" in capsys.readouterr().err
    log.path.write_text('{"step": 1}\n[1, 2]\n{"step": 2}\n')
    with pytest.raises(StriateError, match="line 2 is not a JSON record"):
        read_metrics(log.path)
    csv_log = MetricsLog(tmp_path, "csv", tensorboard=False)
    train = {"phase": "train", "epoch": 1, "step": 5, "loss": 1.5, "bpc": 2.1, "samples_per_s": 9.0}
    csv_log.write(train)
    csv_log.write({"phase": "val", "epoch": 1, "step": 5, "loss": 1.4, "perplexity": 4.1})
    csv_log.write({**train, "step": 6})
    rows = read_metrics(csv_log.path)
    assert rows[0] == train and rows[1]["perplexity"] == 4.1 and rows[2]["step"] == 6
    resumed = MetricsLog(tmp_path, "csv", tensorboard=False, resume_step=5)
    resumed.write({**train, "step": 6, "memory_accuracy": 0.5})
    assert [r["step"] for r in read_metrics(resumed.path)] == [5, 5, 6]
    assert read_metrics(resumed.path)[-1]["memory_accuracy"] == 0.5


def test_eval_measures_a_text_run_with_carried_state(tmp_path, capsys):
    engine = {**tg.text_engine_defaults().__dict__, "progress": False, "max_steps": 4}
    result = tg.train(
        tg.TextTrainConfig(
            max_chars=4000,
            cell="gru",
            layers=1,
            hidden=16,
            tbptt="8",
            sample_every=0,
            name="t",
            runs_dir=str(tmp_path),
            engine=EngineConfig(**engine),
        )
    )
    assert result.fit.final  # a --max-steps stop ends with a validation pass
    assert main(["eval", str(result.run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "val" and report["perplexity"] == pytest.approx(
        math.exp(report["loss"])
    )
    assert report["bpc"] == pytest.approx(report["loss"] / math.log(2))
    assert report["loss"] == pytest.approx(result.fit.final["loss"], rel=0.05)
    sample = tmp_path / "sample.txt"
    sample.write_text("def f(x):\n    return x\n" * 20, encoding="utf-8")
    assert main(["eval", f"{result.run}@latest", "--data", str(sample)]) == 0
    out = capsys.readouterr().out
    assert "bpc" in out and "perplexity" in out and (result.run / "eval-file.json").is_file()
    sample.write_text("∑∑∑∑ never seen ∑∑∑", encoding="utf-8")
    assert main(["eval", str(result.run), "--data", str(sample)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_ctrl_c_waits_for_the_step_boundary_then_validates_and_saves(
    reviews, tmp_path, monkeypatch
):
    calls = []

    def set_lr(*args):  # called inside every update, before its forward pass
        calls.append(1)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C in the middle of the third update
        real_set_lr(*args)

    real_set_lr = training.set_lr
    monkeypatch.setattr(training, "set_lr", set_lr)
    before = signal.getsignal(signal.SIGINT)  # the default, or SIG_IGN under nohup
    with pytest.raises(StriateError, match="interrupted at step 3"):
        sa.train(_config(reviews, tmp_path, "c"))
    ckpt = load_checkpoint(resolve_checkpoint(tmp_path / "c"))
    assert ckpt.meta["step"] == 3 and ckpt.meta["history"][-1]["phase"] == "val"
    assert signal.getsignal(signal.SIGINT) is before  # the caller's handler restored


def test_flags_a_resume_would_ignore_are_one_line(tmp_path, capsys):
    args = ["train", "sentiment", "--resume", "r", "--runs-dir", str(tmp_path)]
    assert main([*args, "--hidden", "16", "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--hidden, --lr cannot change with --resume" in err, err
    assert main([*args, "--epochs", "3", "--no-progress"]) == 2  # allowed: on to the run
    assert "no run found at r" in capsys.readouterr().err


def test_a_budget_too_short_for_one_step_still_ends_measured_and_saved(reviews, tmp_path):
    result = sa.train(_config(reviews, tmp_path, "blink", time_budget=1e-9))
    assert result.fit.step == 0 and "loss" in result.fit.final
    assert (
        result.fit.checkpoint is not None
        and load_checkpoint(result.fit.checkpoint).meta["step"] == 0
    )


def test_a_resume_without_a_complete_checkpoint_says_it_starts_again(reviews, tmp_path, capsys):
    sa.train(_config(reviews, tmp_path, "torn", max_steps=3))
    for meta in (tmp_path / "torn" / "checkpoints").glob("step-*/meta.json"):
        meta.unlink()  # every checkpoint incomplete
    capsys.readouterr()
    assert sa.resume("torn", tmp_path, max_steps=1).fit.step == 1  # from step 0 again
    assert "holds no complete checkpoint" in capsys.readouterr().err
