"""Caption sources: the generated shapes set, and the COCO / Flickr8k readers on tiny files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from striate.data.sources.captions import (
    load_caption_data,
    read_coco_captions,
    read_flickr_captions,
)
from striate.data.sources.shapes import COLORS, WHERE, generate_shapes, load_shapes
from striate.errors import StriateError

PALETTE = {name: np.array(rgb, dtype=float) for name, rgb in COLORS.items()}


def _pixel(image: torch.Tensor, x: float, y: float) -> np.ndarray:
    return image[:, int(y), int(x)].double().numpy()


def _nearest_color(rgb: np.ndarray) -> str:
    return min(PALETTE, key=lambda name: np.abs(PALETTE[name] - rgb).sum())


def test_shapes_are_deterministic_and_splits_differ():
    a, captions_a, _ = generate_shapes(30, image_size=32, seed=5)
    b, captions_b, _ = generate_shapes(30, image_size=32, seed=5)
    c, _, _ = generate_shapes(30, image_size=32, seed=6)
    assert torch.equal(a, b) and captions_a == captions_b
    assert not torch.equal(a, c)
    assert a.dtype == torch.uint8 and a.shape == (30, 3, 32, 32)
    assert all(len(refs) == 5 and len(set(refs)) >= 4 for refs in captions_a)  # A, B, A: 4
    train, _ = load_shapes("train", 32, count=50)
    test, test_captions = load_shapes("test", 32)
    assert len(test_captions) == 500 and not torch.equal(train[:50], test[:50])
    assert torch.equal(load_shapes("test", 32)[0], test)  # the same test set for every run


def test_shape_captions_match_the_drawn_pixels():
    size = 64
    images, captions, scenes = generate_shapes(150, image_size=size, seed=1)
    cell = size / 3
    counts = {1: 0, 2: 0, 3: 0}
    for image, refs, scene in zip(images, captions, scenes, strict=True):
        counts[len(scene)] += 1
        background = _pixel(image, 1, 1)
        for obj in scene:
            # colour: the centre pixel is nearest to the named colour
            assert _nearest_color(_pixel(image, obj.cx, obj.cy)) == obj.color
            # position: the centre lies in the named cell
            assert (int(obj.cx // cell), int(obj.cy // cell)) == (obj.col, obj.row)
            assert obj.phrase in refs[0] or obj.phrase in refs[2]
            # shape: a square fills its corner region, a circle leaves it empty
            if obj.size == "large" and obj.shape in ("square", "circle"):
                k = 0.72 if obj.shape == "square" else 0.8
                corner = _pixel(image, obj.cx + k * obj.radius, obj.cy + k * obj.radius)
                to_object = np.abs(corner - PALETTE[obj.color]).sum()
                to_background = np.abs(corner - background).sum()
                assert (to_object < to_background) == (obj.shape == "square")
        if len(scene) == 1:
            assert WHERE[(scene[0].row, scene[0].col)] in refs[0]
        if len(scene) == 2:
            a, b = scene
            relation = "above" if a.row < b.row else "to the left of"
            assert refs[0] == f"a {a.phrase} {relation} a {b.phrase}"
            assert (a.row, a.col) < (b.row, b.col)
    assert min(counts.values()) > 20  # every scene size occurs
    small = [o.radius for s in scenes for o in s if o.size == "small"]
    large = [o.radius for s in scenes for o in s if o.size == "large"]
    assert max(small) < min(large)


def test_shapes_source_options():
    data = load_caption_data("shapes:40,objects=1", "train")
    assert len(data) == 40 and data.image_size == 32
    assert all(" and " not in c for refs in data.captions for c in refs)
    assert len(load_caption_data("shapes:40", "val", image_size=24)) == 500
    assert len(load_caption_data("shapes", "train", limit=7)) == 7
    for bad in ("shapes:many", "shapes:10,objects=4", "shapes:10,colors=2", "pictures"):
        with pytest.raises(StriateError):
            load_caption_data(bad, "train")


def _write_images(folder, names, size=(20, 12)):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        array = np.full((size[1], size[0], 3), i * 12 % 256, dtype=np.uint8)
        Image.fromarray(array).save(folder / name)


def test_coco_reader_and_splits(tmp_path):
    names = [f"img{i}.png" for i in range(20)]
    images = [{"id": 100 + i, "file_name": n} for i, n in enumerate(names)]
    images.append({"id": 999, "file_name": "uncaptioned.png"})
    annotations = [
        {"image_id": 100 + i, "caption": f"  A picture\nnumber {i} , version {k}. "}
        for i in range(20)
        for k in range(2)
    ]
    ann = tmp_path / "annotations" / "captions_mini.json"
    ann.parent.mkdir()
    ann.write_text(json.dumps({"images": images, "annotations": annotations}))
    _write_images(tmp_path / "mini", names)

    items = read_coco_captions(ann)
    assert len(items) == 20 and items[0] == (
        "img0.png",
        ["A picture number 0 , version 0.", "A picture number 0 , version 1."],
    )
    splits = {
        s: load_caption_data(f"coco:{ann}", s, image_size=16) for s in ("train", "val", "test")
    }
    seen = [set(d.names) for d in splits.values()]
    assert sum(map(len, seen)) == 20 and set.union(*seen) == set(names)
    assert len(splits["test"]) == 2 and len(splits["val"]) == 2
    data = splits["train"]
    assert data.images.shape == (16, 3, 16, 16) and data.images.dtype == torch.uint8
    number = data.names[0].removeprefix("img").removesuffix(".png")
    assert data.captions[0] == [f"A picture number {number} , version {k}." for k in (0, 1)]
    # the images folder may also be named explicitly, relative to --data-dir
    again = load_caption_data("coco:annotations/captions_mini.json,mini", "train",
                              image_size=16, data_dir=tmp_path)  # fmt: skip
    assert again.names == data.names


def test_coco_errors(tmp_path):
    ann = tmp_path / "annotations" / "captions_x.json"
    ann.parent.mkdir()
    ann.write_text("{not json")
    with pytest.raises(StriateError, match="not valid JSON"):
        read_coco_captions(ann)
    ann.write_text(json.dumps({"images": [{"id": 1}], "annotations": []}))
    with pytest.raises(StriateError, match="not a COCO captions file"):
        read_coco_captions(ann)
    images = [{"id": i, "file_name": f"{i}.png"} for i in range(10)]
    annotations = [{"image_id": i, "caption": "a thing"} for i in range(10)]
    ann.write_text(json.dumps({"images": images, "annotations": annotations}))
    with pytest.raises(StriateError, match=r"images folder .* not found"):
        load_caption_data(f"coco:{ann}", "train")
    _write_images(tmp_path / "x", [f"{i}.png" for i in range(9)])  # one image missing
    (tmp_path / "x" / "9.png").write_bytes(b"not an image")
    with pytest.raises(StriateError, match=r"9\.png"):
        for split in ("train", "val", "test"):
            load_caption_data(f"coco:{ann}", split)
    with pytest.raises(StriateError, match="not found"):
        load_caption_data(f"coco:{tmp_path / 'missing.json'}", "train")


def test_flickr_reader_official_splits_and_csv(tmp_path):
    names = [f"{i}_photo.jpg" for i in range(6)]
    lines = [
        f"{n}#{k}\tA dog number {i} runs , take {k} ."
        for i, n in enumerate(names)
        for k in range(5)
    ]
    token = tmp_path / "Flickr8k.token.txt"
    token.write_text("\n".join(lines) + "\n\n")
    _write_images(tmp_path / "Flicker8k_Dataset", names)
    (tmp_path / "Flickr_8k.trainImages.txt").write_text("\n".join(names[:4]) + "\n")
    (tmp_path / "Flickr_8k.devImages.txt").write_text(names[4] + "\n")
    (tmp_path / "Flickr_8k.testImages.txt").write_text(names[5] + "\n")

    items = read_flickr_captions(token)
    assert len(items) == 6 and len(items[0][1]) == 5
    train = load_caption_data(f"flickr8k:{token}", "train", image_size=8)
    test = load_caption_data(f"flickr8k:{token}", "test", image_size=8)
    assert train.names == names[:4] and test.names == [names[5]]
    assert test.captions[0][0] == "A dog number 5 runs , take 0 ."
    limited = load_caption_data(f"flickr8k:{token}", "train", image_size=8, limit=2)
    assert len(limited) == 2 and set(limited.names) < set(names[:4])

    csv_file = tmp_path / "captions.txt"
    csv_file.write_text('image,caption\na.jpg,"A cat, on a mat ."\na.jpg,A cat sits .\n')
    assert read_flickr_captions(csv_file) == [("a.jpg", ["A cat, on a mat .", "A cat sits ."])]

    bad = tmp_path / "bad.token.txt"
    bad.write_text("x.jpg#0\tfine\nno tab on this line\n")
    with pytest.raises(StriateError, match=r"bad\.token\.txt:2"):
        read_flickr_captions(bad)
    with pytest.raises(StriateError, match="needs a file"):
        load_caption_data("flickr8k:", "train")
