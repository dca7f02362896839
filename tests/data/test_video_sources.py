"""Video sources: the moving-digits generator's rule, clip folders, video files, bad input."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from striate.data.sources.moving_digits import MovingDigits, generate_moving_digits
from striate.data.sources.video import (
    PAD_LABEL,
    load_clip,
    load_video_data,
    read_labels,
    save_clip,
)
from striate.errors import StriateError

DIGIT = 6  # glyph side in the rule test
CANVAS = 20


def _coded_glyphs() -> tuple[np.ndarray, np.ndarray]:
    """Ten solid squares whose grey level names their class: 100 + 15 k."""
    classes = np.arange(10)
    glyphs = np.ones((10, DIGIT, DIGIT), dtype=np.uint8) * (100 + 15 * classes)[:, None, None]
    return glyphs.astype(np.uint8), classes


def test_moving_digits_follow_the_labelling_rule():
    spec = MovingDigits(frames=20, image_size=CANVAS, digit_size=DIGIT, noise=0, max_speed=3)
    data = generate_moving_digits(spec, 300, seed=5, glyphs=_coded_glyphs()[0],
                                  glyph_classes=_coded_glyphs()[1])  # fmt: skip
    frames, labels, memory = data.frames[:, :, 0].numpy(), data.labels.numpy(), data.memory.numpy()
    assert frames.shape == (300, 20, CANVAS, CANVAS) and data.frames.dtype == torch.uint8
    assert not memory[:, 0].any(), "the first frame is always visible"
    blank = occluded = 0
    for n in range(300):
        for t in range(20):
            values = frames[n, t][frames[n, t] > 0]
            if not memory[n, t]:  # visible: the whole digit, its class its grey level
                assert len(values) == DIGIT * DIGIT and len(set(values.tolist())) == 1
                assert labels[n, t] == (int(values[0]) - 100) // 15
            else:  # hidden: nothing, or one opaque square; the label is the last one seen
                assert len(set(values.tolist())) <= 1
                assert len(values) == 0 or len(values) >= DIGIT * DIGIT
                blank += len(values) == 0
                occluded += len(values) > 0
                assert labels[n, t] == labels[n, t - 1]
    assert blank > 100 and occluded > 100
    assert 0.2 < memory.mean() < 0.6
    changed = (labels[:, 1:] != labels[:, :-1]) & ~memory[:, 1:]
    assert changed.any(axis=1).mean() > 0.5, "digits change within most clips"


def test_moving_digits_are_deterministic_and_split():
    spec = MovingDigits(frames=8, image_size=24)
    a = load_video_data("moving-digits", "train", spec=spec, clips=40, seed=1)
    b = load_video_data("moving-digits", "train", spec=spec, clips=40, seed=1)
    c = load_video_data("moving-digits", "train", spec=spec, clips=40, seed=2)
    v = load_video_data("moving-digits", "val", spec=spec, clips=40, seed=1)
    assert torch.equal(a.frames, b.frames) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.frames, c.frames) and not torch.equal(a.frames, v.frames)
    t1 = load_video_data("moving-digits", "test", spec=spec, clips=10, seed=1)
    t2 = load_video_data("moving-digits", "test", spec=spec, clips=10, seed=2)
    assert torch.equal(t1.frames, t2.frames), "the test clips never depend on the seed"
    assert a.frames.shape == (40, 8, 1, 24, 24) and a.classes == [str(d) for d in range(10)]
    assert (a.lengths == 8).all() and a.valid.all()
    # a glyph pixel is much brighter than the noise; visible frames show one
    visible = a.frames[~a.memory]
    assert (visible.flatten(1).max(1).values > 150).float().mean() > 0.95


def test_moving_digits_from_mnist(shared_data):
    spec = MovingDigits(frames=6, image_size=32, digits="mnist")
    data = load_video_data("moving-digits", "test", spec=spec, clips=5, data_dir=shared_data)
    assert data.frames.shape == (5, 6, 1, 32, 32)


def _clip(length: int, value: int, size: int = 8) -> torch.Tensor:
    frames = torch.zeros(length, 1, size, size, dtype=torch.uint8)
    frames[:, :, 2:6, 2:6] = value
    return frames


def test_folder_of_clips_pads_and_splits(tmp_path):
    root = tmp_path / "clips"
    for i in range(10):
        labels = ["on" if k % 2 else "off" for k in range(3 + i % 4)]
        save_clip(_clip(len(labels), 200), root / f"c{i:02d}", labels)
    train = load_video_data(f"folder:{root}", "train", val_fraction=0.2, seed=0)
    val = load_video_data(f"folder:{root}", "val", val_fraction=0.2, seed=0)
    test = load_video_data(f"folder:{root}", "test", val_fraction=0.2, seed=0)
    assert (len(train), len(val), len(test)) == (7, 2, 1)
    assert not set(train.names) & set(val.names) and not set(train.names) & set(test.names)
    assert train.classes == ["off", "on"] and train.image_size == 8 and train.channels == 1
    assert train.frames.shape[1] == int(train.lengths.max())
    for i, n in enumerate(train.lengths.tolist()):
        assert (train.labels[i, n:] == PAD_LABEL).all() and (train.labels[i, :n] >= 0).all()
        assert train.labels[i, :n].tolist() == [k % 2 for k in range(n)]
        assert not train.frames[i, n:].any()
    assert not train.memory.any()
    frames, labels = load_clip(root / "c03", image_size=16)
    assert frames.shape == (6, 1, 16, 16) and labels[:2] == ["off", "on"]


def test_folder_errors_are_one_line(tmp_path):
    root = tmp_path / "bad"
    save_clip(_clip(4, 90), root / "a", ["x", "y", "x", "y"])
    short = save_clip(_clip(3, 90), root / "b", ["x", "y", "x"])
    (short / "labels.txt").write_text("x\ny\n")  # one label short
    with pytest.raises(StriateError, match="3 frames but 2 labels"):
        load_video_data(f"folder:{root}", "train", val_fraction=0.0)
    with pytest.raises(StriateError, match="does not exist"):
        load_video_data(f"folder:{tmp_path / 'missing'}", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StriateError, match="no clips found"):
        load_video_data(f"folder:{tmp_path / 'empty'}", "train")
    broken = save_clip(_clip(2, 90), tmp_path / "broken", ["x", "y"])
    (broken / "frame-00001.png").write_bytes(b"not a png")
    with pytest.raises(StriateError, match=r"cannot decode|not a readable image"):
        load_clip(broken)
    (broken / "labels.txt").write_text("x\n\ny\n")
    with pytest.raises(StriateError, match="line 2 is empty"):
        read_labels(broken / "labels.txt")
    with pytest.raises(StriateError, match="already exists"):
        save_clip(_clip(2, 90), broken, ["x", "y"])
    with pytest.raises(StriateError, match="unknown video source"):
        load_video_data("moving-letters", "train")


def test_video_files_decode_with_pyav(tmp_path):
    pytest.importorskip("av")
    frames = torch.stack([_clip(1, 40 + 20 * k, size=16)[0] for k in range(7)])
    labels = [str(k % 3) for k in range(7)]
    lossless = save_clip(frames, tmp_path / "clip.mkv", labels)
    decoded, read = load_clip(lossless, channels=1)
    assert torch.equal(decoded, frames) and read == labels
    h264 = save_clip(frames, tmp_path / "clip.mp4", labels)
    decoded, read = load_clip(h264, channels=1)
    assert decoded.shape == frames.shape and read == labels
    assert (decoded.float() - frames.float()).abs().mean() < 4
    (tmp_path / "clip.labels.txt").write_text("0\n1\n")
    with pytest.raises(StriateError, match="7 frames but 2 labels"):
        load_clip(tmp_path / "clip.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(StriateError, match="cannot decode video"):
        load_clip(tmp_path / "junk.mp4", with_labels=False)


def test_missing_pyav_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # import av raises ImportError
    (tmp_path / "c.mp4").write_bytes(b"")
    with pytest.raises(StriateError, match="needs PyAV"):
        load_clip(tmp_path / "c.mp4", with_labels=False)
