"""Batched augmentation vs a per-sample loop, and kornia vs a hand-written single warp (CPU).

Prints one JSON line. For a batch of 256 random CIFAR-size (3x32x32) and MNIST-size (1x28x28)
images, it times:

* ``batched``: striate's :class:`Augment` for ``rotate,shift,flip,color`` (kornia; rotation
  and shift fused into one ``RandomAffine``), the whole batch in one call;
* ``loop``: the same module called once per image (batch of 1) in a Python loop -- the
  per-sample baseline;
* ``kornia_separate``: kornia with a separate op per name (``RandomRotation``, a translate-only
  ``RandomAffine``, ``RandomHorizontalFlip``), i.e. two warps, then the same colour jitter;
* ``single_warp``: a hand-written batched kernel -- rotation, shift and flip folded into one
  affine matrix per sample, one ``affine_grid`` + ``grid_sample`` -- then the same colour
  jitter. ``geometry_*`` entries time the geometric part alone (no colour).

Warm-up first, then the variants alternate within each repetition; medians are reported.
Run: ``python benchmarks/bench_augment.py`` (about 10-20 s on 2 cores).
"""

from __future__ import annotations

import json
import math
import statistics
import time

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import nn

from striate.data.transforms.augment import Augment

BATCH = 256
SPEC = "rotate,shift,flip,color"
DEGREES, SHIFT, FLIP_P = 15.0, 0.1, 0.5
REPS = 15


class SingleWarp(nn.Module):
    """Random rotation + shift + horizontal flip of each sample, as ONE bilinear warp."""

    def __init__(self, degrees: float, shift: float, flip_p: float) -> None:
        super().__init__()
        self.degrees, self.shift, self.flip_p = degrees, shift, flip_p

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b, _, h, w = images.shape
        opts = {"device": images.device, "dtype": images.dtype}
        angle = (torch.rand(b, **opts) * 2 - 1) * math.radians(self.degrees)
        shift = (torch.rand(b, 2, **opts) * 2 - 1) * (2 * self.shift)  # normalised units
        flip = torch.where(torch.rand(b, **opts) < self.flip_p, -1.0, 1.0).to(images.dtype)
        cos, sin = angle.cos(), angle.sin()
        aspect = w / h  # rotate in pixel space: S^-1 R S, with S = diag(w/2, h/2)
        theta = torch.stack(
            [
                torch.stack([cos * flip, -sin / aspect, shift[:, 0]], dim=1),
                torch.stack([sin * aspect * flip, cos, shift[:, 1]], dim=1),
            ],
            dim=1,
        )
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(
            images, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )


def _loop(module: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([module(images[i : i + 1]) for i in range(images.shape[0])])


def _time(fn, images: torch.Tensor) -> float:
    start = time.perf_counter()
    fn(images)
    return time.perf_counter() - start


def _bench(channels: int, size: int) -> dict[str, float]:
    torch.manual_seed(0)
    images = torch.rand(BATCH, channels, size, size)
    color = Augment("color", channels)
    batched = Augment(SPEC, channels)
    separate = nn.Sequential(
        K.RandomRotation(DEGREES, p=1.0),
        K.RandomAffine(0.0, translate=(SHIFT, SHIFT), p=1.0),
        K.RandomHorizontalFlip(p=FLIP_P),
        color,
    )
    warp = SingleWarp(DEGREES, SHIFT, FLIP_P)
    fused_geometry = nn.Sequential(*list(batched.pipeline)[:2])  # flip + fused RandomAffine
    variants = {
        "batched": batched,
        "loop": lambda x: _loop(batched, x),
        "kornia_separate": separate,
        "single_warp": nn.Sequential(warp, color),
        "geometry_kornia_fused": fused_geometry,
        "geometry_kornia_separate": nn.Sequential(*list(separate)[:3]),
        "geometry_single_warp": warp,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    with torch.no_grad():
        for fn in variants.values():  # warm-up
            fn(images)
            fn(images)
        names = list(variants)
        for rep in range(REPS):
            order = names[rep % len(names) :] + names[: rep % len(names)]  # rotate the order
            for name in order:
                times[name].append(_time(variants[name], images))
    med = {name: statistics.median(t) for name, t in times.items()}
    out = {f"{name}_img_s": round(BATCH / t, 1) for name, t in med.items()}
    out["batched_over_loop"] = round(med["loop"] / med["batched"], 2)
    out["single_warp_over_batched"] = round(med["batched"] / med["single_warp"], 2)
    out["single_warp_over_kornia_separate"] = round(med["kornia_separate"] / med["single_warp"], 2)
    out["geometry_single_warp_over_kornia_fused"] = round(
        med["geometry_kornia_fused"] / med["geometry_single_warp"], 2
    )
    out["geometry_single_warp_over_kornia_separate"] = round(
        med["geometry_kornia_separate"] / med["geometry_single_warp"], 2
    )
    return out


def main() -> None:
    start = time.perf_counter()
    result = {
        "bench": "augment",
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "batch": BATCH,
        "pipeline": SPEC,
        "reps": REPS,
        "cifar_3x32x32": _bench(3, 32),
        "mnist_1x28x28": _bench(1, 28),
    }
    result["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
