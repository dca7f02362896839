"""Batched augmentation vs the per-sample pipeline people run, and kornia vs a hand-written
single warp (CPU).

Prints one JSON line. For random CIFAR-size (3x32x32) and MNIST-size (1x28x28) float images
in memory, batches of 256, ``rotate,shift,flip,color``, it times:

* ``batched``: striate's :class:`Augment` (kornia; rotation and shift fused into one
  ``RandomAffine``), the whole batch in one call in the main process;
* ``per_sample_workers2``: the same module with the same parameters applied to one image at a
  time inside a ``Dataset.__getitem__``, batched by a ``DataLoader`` with 2 worker processes
  (persistent), timed over whole epochs of 4 batches so that no prefetched batch is counted;
  the pipeline a per-sample augmentation (torchvision-style transforms) runs;
* ``kornia_separate``: kornia with a separate op per name (``RandomRotation``, a translate-only
  ``RandomAffine``, ``RandomHorizontalFlip``), i.e. two warps, then the same colour jitter;
* ``single_warp``: a hand-written batched kernel -- rotation, shift and flip folded into one
  affine matrix per sample, one ``affine_grid`` + ``grid_sample`` -- then the same colour
  jitter. ``geometry_*`` entries time the geometric part alone (no colour).

Warm-up first, then the variants alternate within each repetition; medians are reported.
Run: ``python benchmarks/bench_augment.py`` (``--quick``: one repetition, batches of 32).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from _common import emit, environment, row
from striate.data.transforms.augment import Augment

BATCH = 256
SPEC = "rotate,shift,flip,color"
DEGREES, SHIFT, FLIP_P = 15.0, 0.1, 0.5
REPS = 15
EPOCH_BATCHES = 4  # batches per timed epoch of the worker pipeline
WORKERS = 2


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


class PerSample(Dataset):
    """Images augmented one at a time by ``augment`` (in the DataLoader's worker processes)."""

    def __init__(self, images: torch.Tensor, augment: nn.Module) -> None:
        self.images, self.augment = images, augment

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        with torch.no_grad():
            return self.augment(self.images[i : i + 1])[0]


def _time(fn, images: torch.Tensor) -> float:
    start = time.perf_counter()
    fn(images)
    return time.perf_counter() - start


def _bench(
    channels: int, size: int, reps: int, warmup: int = 2, batch: int = BATCH
) -> dict[str, float]:
    torch.manual_seed(0)
    pool = torch.rand(batch * EPOCH_BATCHES, channels, size, size)
    images = pool[:batch]
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
    loader = DataLoader(
        PerSample(pool, Augment(SPEC, channels)),
        batch,
        shuffle=True,
        num_workers=WORKERS,
        persistent_workers=True,
    )

    def per_sample_workers(_: torch.Tensor) -> None:
        for _ in loader:  # one epoch: EPOCH_BATCHES batches, no prefetch carried over
            pass

    def batched_epoch(_: torch.Tensor) -> None:
        for k in range(EPOCH_BATCHES):
            batched(pool[k * batch : (k + 1) * batch])

    epochs = {"batched": batched_epoch, "per_sample_workers2": per_sample_workers}
    variants = {
        "kornia_separate": separate,
        "single_warp": nn.Sequential(warp, color),
        "geometry_kornia_fused": fused_geometry,
        "geometry_kornia_separate": nn.Sequential(*list(separate)[:3]),
        "geometry_single_warp": warp,
    }
    per_call = {name: batch * EPOCH_BATCHES for name in epochs} | dict.fromkeys(variants, batch)
    fns = {**epochs, **variants}
    times: dict[str, list[float]] = {name: [] for name in fns}
    with torch.no_grad():
        for fn in fns.values():  # warm-up (starts the workers)
            for _ in range(warmup):
                fn(images)
        names = list(fns)
        for rep in range(reps):
            order = names[rep % len(names) :] + names[: rep % len(names)]  # rotate the order
            for name in order:
                times[name].append(_time(fns[name], images))
    ips = {name: per_call[name] / statistics.median(t) for name, t in times.items()}
    out = {f"{name}_img_s": round(v, 1) for name, v in ips.items()}
    out["batched_over_per_sample_workers2"] = round(ips["batched"] / ips["per_sample_workers2"], 2)
    out["single_warp_over_kornia_separate"] = round(ips["single_warp"] / ips["kornia_separate"], 2)
    out["geometry_single_warp_over_kornia_fused"] = round(
        ips["geometry_single_warp"] / ips["geometry_kornia_fused"], 2
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 repetition, batches of 32")
    args = parser.parse_args()
    reps, warmup, batch = (1, 1, 32) if args.quick else (REPS, 2, BATCH)
    start = time.perf_counter()
    sizes = {"cifar_3x32x32": (3, 32), "mnist_1x28x28": (1, 28)}
    results = {name: _bench(c, s, reps, warmup, batch) for name, (c, s) in sizes.items()}
    rows = [
        row(
            f"augmentation `{SPEC}`, {name.split('_')[1]} images, batches of {batch}: batched "
            "kornia in the main process",
            r["batched_img_s"],
            unit="images/s",
            contender=f"the same ops and parameters per sample in {WORKERS} DataLoader workers: "
            f"{r['per_sample_workers2_img_s']:,.0f} images/s",
            ratio=r["batched_over_per_sample_workers2"],
        )
        for name, r in results.items()
    ]
    emit(
        {
            "bench": "augment",
            "quick": args.quick,
            **environment(),
            "batch": batch,
            "pipeline": SPEC,
            "reps": reps,
            "workers": WORKERS,
            **results,
            "rows": rows,
            "wall_s": time.perf_counter() - start,
        }
    )


if __name__ == "__main__":
    main()
