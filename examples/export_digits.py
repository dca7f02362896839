"""Write a few of the embedded handwritten digits as PNG files, to try ``striate classify``.

Usage: python examples/export_digits.py OUT_DIR [COUNT]
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

from striate.data.sources.images import load_image_data


def main(out_dir: str, count: int = 4) -> None:
    data = load_image_data("digits", "test")
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        label = data.classes[int(data.labels[i])]
        pixels = data.images[i, 0].numpy()
        path = target / f"digit-{i}-true-{label}.png"
        Image.fromarray(pixels).resize((64, 64), Image.Resampling.NEAREST).save(path)
        print(path)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 4)
