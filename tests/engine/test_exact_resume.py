"""Exact resume for every task: N steps in one go equal k steps, a stop mid-epoch, and a
resume for the remaining N - k steps, bit for bit (weights, optimizer state, and TBPTT's
carried hidden state with k1 < k2). Tiny models on the CPU."""

from __future__ import annotations

import random

import pytest
import torch
from safetensors.torch import load_file

from striate.apps import captioning as cap
from striate.apps import image_classification as ic
from striate.apps import sentiment as sa
from striate.apps import text_generation as tg
from striate.apps import translation as mt
from striate.apps import video
from striate.apps._runs import resolve_checkpoint
from striate.artifacts.checkpoint import load_checkpoint
from striate.engine.loop import EngineConfig

N, K = 7, 3  # every task below has more than K steps per epoch: K is mid-epoch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _engine(defaults: EngineConfig, **kw) -> EngineConfig:
    settings = {**defaults.__dict__, "progress": False, "log_every": 2, "seed": 4}
    return EngineConfig(**{**settings, **kw})


def _image(tmp, name, **engine):
    return ic.ImageTrainConfig(
        model="lenet5", data="digits", augment="rotate=10,shift=0.1", name=name,
        runs_dir=str(tmp), engine=_engine(EngineConfig(), batch_size=32, **engine),
    )  # fmt: skip


def _text(tmp, name, **engine):
    return tg.TextTrainConfig(
        max_chars=6_000, cell="gru", layers=1, hidden=16, embedding=8, dropout=0.2,
        tbptt="8,20", sample_every=0, name=name, runs_dir=str(tmp),
        engine=_engine(tg.text_engine_defaults(), batch_size=8, warmup_steps=2, **engine),
    )  # fmt: skip


def _sentiment_data(tmp):
    path = tmp / "reviews.csv"
    words = ("good", "fine", "bad", "poor")
    rows = [f"{w} thing {i},{'pos' if w in words[:2] else 'neg'}" for w in words for i in range(12)]
    path.write_text("\n".join(rows), encoding="utf-8")
    return f"csv:{path}"


def _sentiment(tmp, name, **engine):
    return sa.SentimentTrainConfig(
        data=_sentiment_data(tmp), hidden=8, embedding=8, min_freq=1, bidirectional=True,
        name=name, runs_dir=str(tmp),
        engine=_engine(sa.sentiment_engine_defaults(), batch_size=4, **engine),
    )  # fmt: skip


def _translation_data(tmp):
    rng = random.Random(0)
    words = ["red", "cat", "runs", "the", "big", "dog", "sees", "a"]
    lines = []
    for i in range(200):
        src = [rng.choice(words) for _ in range(rng.randint(2, 5))]
        tgt = [w.upper() for w in reversed(src)]
        lines.append(f"{' '.join(src)}\t{' '.join(tgt)}\ttoy #{i}")
    path = tmp / "pairs.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return f"tsv:{path}"


def _translation(tmp, name, **engine):
    return mt.TranslateTrainConfig(
        data=_translation_data(tmp), src="en", tgt="xx", min_freq=1, hidden=8, embedding=8,
        dropout=0.1, teacher_forcing=1.0, teacher_forcing_schedule="linear",
        teacher_forcing_end=0.5, val_bleu_samples=4, name=name, runs_dir=str(tmp),
        engine=_engine(mt.translate_engine_defaults(), batch_size=16, **engine),
    )  # fmt: skip


def _captioning(tmp, name, **engine):
    return cap.CaptionTrainConfig(
        data="shapes:96", encoder="lenet5", embedding=8, hidden=16, beam=1, name=name,
        runs_dir=str(tmp), engine=_engine(cap.caption_engine_defaults(), batch_size=8, **engine),
    )  # fmt: skip


def _video(tmp, name, **engine):
    return video.VideoTrainConfig(
        frames=6, image_size=16, clips=48, val_clips=8, test_clips=8, cell="gru", hidden=8,
        encoder_options={"width": 4}, dropout=0.1, name=name, runs_dir=str(tmp),
        engine=_engine(video.video_engine_defaults(), batch_size=4, **engine),
    )  # fmt: skip


TASKS = {
    "image": (ic, _image),
    "text": (tg, _text),
    "sentiment": (sa, _sentiment),
    "translation": (mt, _translation),
    "captioning": (cap, _captioning),
    "video": (video, _video),
}


def _saved(run) -> tuple[dict, dict, dict]:
    path = resolve_checkpoint(f"{run}@latest")
    ckpt = load_checkpoint(path, with_optimizer=True)
    return ckpt.model_state, load_file(str(path / "optimizer.safetensors")), ckpt.step_state or {}


@pytest.mark.parametrize("task", list(TASKS))
def test_stop_mid_epoch_and_resume_equals_one_go(task, tmp_path):
    app, config = TASKS[task]
    whole = app.train(config(tmp_path, "whole", max_steps=N))
    part = app.train(config(tmp_path, "part", max_steps=K))
    assert part.fit.step == K and part.fit.final  # a stop by --max-steps ends measured
    stopped = load_checkpoint(resolve_checkpoint(f"{part.run}@step-{K}"))
    assert stopped.meta["batch_in_epoch"] == K  # stopped mid-epoch (in the first one)
    resumed = app.resume(part.run, tmp_path, max_steps=N)
    assert whole.fit.step == resumed.fit.step == N
    for a, b in zip(_saved(whole.run), _saved(resumed.run), strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (task, key)
    if task == "text":  # the carried state and the k2 - k1 steps to rebuild were saved
        state = _saved(resumed.run)[2]
        assert "state.0" in state and "replay.pieces" in state
