"""Pictures a person would rather look at than read: training curves, confusion matrices,
and the views inside a CNN (filters, feature maps, saliency, errors, fields, Toeplitz)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from striate.atomic import atomic_path


def _pyplot() -> Any:
    """matplotlib, imported on first use (it costs a third of a second) and without a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, target: Path) -> Path:
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return target


def plot_curves(records: Sequence[dict[str, Any]], target: Path) -> Path:
    """Loss (left) and accuracy (right) against step, training steps and validation epochs."""
    fig, (ax_loss, ax_acc) = _pyplot().subplots(1, 2, figsize=(10, 3.8))
    for phase, style in (("train", "-"), ("val", "o-")):
        rows = [r for r in records if r.get("phase") == phase]
        steps = [r["step"] for r in rows]
        if rows and "loss" in rows[0]:
            ax_loss.plot(steps, [r["loss"] for r in rows], style, label=phase, markersize=4)
        if rows and "accuracy" in rows[0]:
            ax_acc.plot(steps, [r["accuracy"] for r in rows], style, label=phase, markersize=4)
    ax_loss.set(xlabel="step", ylabel="loss", title="loss")
    ax_acc.set(xlabel="step", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    return _save(fig, target)


def plot_confusion(matrix: torch.Tensor, classes: Sequence[str], target: Path) -> Path:
    """Confusion matrix, rows = true class, columns = predicted, cells show counts."""
    n = len(classes)
    side = max(4.0, 0.45 * n + 2)
    fig, ax = _pyplot().subplots(figsize=(side, side))
    ax.imshow(matrix.numpy(), cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix")
    if n <= 20:
        peak = max(int(matrix.max()), 1)
        for i in range(n):
            for j in range(n):
                value = int(matrix[i, j])
                color = "white" if value > peak / 2 else "black"
                ax.text(j, i, str(value), ha="center", va="center", fontsize=7, color=color)
    return _save(fig, target)


# ---------------------------------------------------------------------------------------------
# looking inside a CNN (numbers from ``striate.analysis``)


def _show(ax: Any, image: torch.Tensor, **kwargs: Any) -> None:
    """Draw a (C, H, W) image in [0, 1]: grey for one channel, RGB for three."""
    image = image.detach().float().cpu().clamp(0, 1)
    if image.shape[0] == 1:
        ax.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=1, **kwargs)
    else:
        ax.imshow(image[:3].permute(1, 2, 0).numpy(), **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])


def _grid(n: int, columns: int | None = None) -> tuple[int, int]:
    cols = columns or max(1, round(n**0.5 + 0.49))
    return -(-n // cols), cols


def _tiles(axes: Any, n: int) -> list[Any]:
    flat = list(axes.flat) if hasattr(axes, "flat") else [axes]
    for ax in flat[n:]:
        ax.axis("off")
    return flat[:n]


def plot_filters(tiles: torch.Tensor, target: Path, title: str = "first-layer filters") -> Path:
    """One tile per filter, (N, 1 or 3, k, k) values in [0, 1] (0.5 = zero weight)."""
    rows, cols = _grid(len(tiles))
    fig, axes = _pyplot().subplots(rows, cols, figsize=(0.9 * cols + 0.4, 0.9 * rows + 0.6))
    for i, (ax, tile) in enumerate(zip(_tiles(axes, len(tiles)), tiles, strict=False)):
        _show(ax, tile, interpolation="nearest")
        ax.set_title(str(i), fontsize=7, pad=2)
    fig.suptitle(title, fontsize=10)
    return _save(fig, target)


def plot_feature_maps(
    image: torch.Tensor, maps: torch.Tensor, target: Path, title: str, limit: int = 64
) -> Path:
    """The input image followed by up to ``limit`` maps (C, h, w), each on its own scale."""
    maps = maps.detach().float().cpu()[:limit]
    rows, cols = _grid(len(maps) + 1)
    fig, axes = _pyplot().subplots(rows, cols, figsize=(1.25 * cols + 0.4, 1.3 * rows + 0.6))
    tiles = _tiles(axes, len(maps) + 1)
    _show(tiles[0], image)
    tiles[0].set_title("input", fontsize=7, pad=2)
    for i, (ax, fmap) in enumerate(zip(tiles[1:], maps, strict=True)):
        ax.imshow(fmap.numpy(), cmap="viridis", interpolation="nearest")
        ax.set_title(f"{i}  max {float(fmap.max()):.2g}", fontsize=6, pad=2)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    return _save(fig, target)


def _overlay(ax: Any, image: torch.Tensor, heat: torch.Tensor, title: str) -> None:
    grey = image.detach().float().cpu().mean(0, keepdim=True)
    _show(ax, grey, alpha=1.0)
    heat = heat.detach().float().cpu()
    peak = float(heat.max()) or 1.0
    strength = (heat / peak).clamp(0, 1)  # transparent where the map is zero
    ax.imshow(heat.numpy(), cmap="jet", alpha=(0.15 + 0.6 * strength).numpy(), vmin=0, vmax=peak)
    ax.set_title(title, fontsize=9)


def plot_saliency(
    image: torch.Tensor,
    saliency: torch.Tensor,
    cam: torch.Tensor,
    target: Path,
    title: str,
    cam_title: str = "Grad-CAM",
) -> Path:
    """Image | saliency map | saliency over the image | Grad-CAM over the image."""
    fig, axes = _pyplot().subplots(1, 4, figsize=(12, 3.5))
    _show(axes[0], image)
    axes[0].set_title("image", fontsize=9)
    axes[1].imshow(saliency.detach().float().cpu().numpy(), cmap="hot")
    axes[1].set(xticks=[], yticks=[])
    axes[1].set_title("saliency max|dS/dx|", fontsize=9)
    _overlay(axes[2], image, saliency, "saliency on image")
    _overlay(axes[3], image, cam, cam_title)
    fig.suptitle(title, fontsize=10)
    return _save(fig, target)


def plot_worst_errors(
    images: torch.Tensor,
    true_names: Sequence[str],
    tops: Sequence[Sequence[tuple[str, float]]],
    target: Path,
    title: str,
) -> Path:
    """A grid of misclassified images, each with its true class and top-5 probabilities."""
    n = len(images)
    if n == 0:
        fig, ax = _pyplot().subplots(figsize=(5, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center", fontsize=12)
        ax.set_title(title, fontsize=10)
        return _save(fig, target)
    rows, cols = _grid(n, min(n, 6))
    fig, axes = _pyplot().subplots(rows, cols, figsize=(2.1 * cols, 3.0 * rows + 0.4))
    for ax, image, truth, top in zip(_tiles(axes, n), images, true_names, tops, strict=False):
        _show(ax, image, interpolation="nearest")
        ax.set_title(f"true: {truth}", fontsize=8, color="darkgreen")
        lines = [f"{name[:14]:<14} {prob:6.1%}" for name, prob in top]
        ax.text(
            0.0,
            -0.04,
            "\n".join(lines),
            transform=ax.transAxes,
            va="top",
            ha="left",
            fontsize=7,
            family="monospace",
            color="black",
        )
        for spine in ax.spines.values():
            spine.set_edgecolor("crimson")
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(hspace=0.9)
    return _save(fig, target)


def plot_receptive_field(
    image: torch.Tensor,
    box: tuple[float, float, float, float],
    support: torch.Tensor,
    effective: torch.Tensor,
    target: Path,
    title: str,
) -> Path:
    """The analytic field (box) over the image, over the support map and over the effective
    gradient map; ``box`` = (top, left, bottom, right) edges in pixels."""
    from matplotlib.patches import Rectangle

    top, left, bottom, right = box
    h, w = image.shape[1:]
    fig, axes = _pyplot().subplots(1, 3, figsize=(12, 4.2))
    _show(axes[0], image, interpolation="nearest")
    axes[0].set_title("analytic field of the centre unit", fontsize=9)
    from matplotlib.colors import LogNorm

    support = support.detach().float().cpu()
    peak = float(support.max()) or 1.0
    cmap = _pyplot().get_cmap("magma").with_extremes(bad="black")
    shown = support.masked_fill(support <= 0, float("nan")).numpy()
    positive = support[support > 0]
    floor = min(float(positive.min()), peak * 0.999) if len(positive) else peak * 1e-6
    norm = LogNorm(vmin=floor, vmax=peak, clip=True)
    axes[1].imshow(shown, cmap=cmap, norm=norm, interpolation="nearest")
    axes[1].set_title("support: |grad| with positive weights (log)", fontsize=9)
    axes[2].imshow(effective.detach().float().cpu().numpy(), cmap="magma", interpolation="nearest")
    axes[2].set_title("effective: |grad| of this network", fontsize=9)
    for ax in axes:
        ax.set(xticks=[], yticks=[])
        ax.add_patch(
            Rectangle(
                (left - 0.5, top - 0.5),
                right - left,
                bottom - top,
                fill=False,
                edgecolor="deepskyblue",
                linewidth=2,
            )
        )
        ax.plot([(left + right) / 2 - 0.5], [(top + bottom) / 2 - 0.5], "+", color="deepskyblue")
        ax.set_xlim(min(-0.5, left - 1.5), max(w - 0.5, right + 0.5))
        ax.set_ylim(max(h - 0.5, bottom + 0.5), min(-0.5, top - 1.5))
    fig.suptitle(title, fontsize=10)
    return _save(fig, target)


def plot_toeplitz(
    matrix: torch.Tensor,
    shape: tuple[int, int],
    block: tuple[int, int],
    target: Path,
    title: str,
) -> Path:
    """A (possibly reduced) convolution matrix: weights coloured, zeros white, block grid.

    ``shape`` is the full matrix's, ``block`` one block's (rows, cols), in full-matrix units.
    """
    plt = _pyplot()
    values = matrix.detach().float().cpu()
    rows, cols = shape
    ratio = rows / cols
    width = 9.0
    height = min(14.0, max(3.0, width * ratio))
    fig, ax = plt.subplots(figsize=(width + 1.2, height))
    peak = float(values.abs().max()) or 1.0
    shown = values.masked_fill(values == 0, float("nan")).numpy()
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="white")
    picture = ax.imshow(
        shown,
        cmap=cmap,
        vmin=-peak,
        vmax=peak,
        interpolation="nearest",
        extent=(0, cols, rows, 0),
        aspect="auto" if not 0.25 < ratio < 4 else "equal",
    )
    for y in range(block[0], rows, block[0]):
        ax.axhline(y, color="0.35", linewidth=0.6)
    for x in range(block[1], cols, block[1]):
        ax.axvline(x, color="0.35", linewidth=0.6)
    ax.set(xlabel="input index (channel, row, column)", ylabel="output index (channel, row, col)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(picture, ax=ax, fraction=0.04, pad=0.02, label="weight")
    return _save(fig, target)


def plot_attention_words(
    image: torch.Tensor, maps: torch.Tensor, words: Sequence[str], target: Path, title: str
) -> Path:
    """Where a captioner looked (Show, Attend and Tell's figure): the image (C, H, W) in
    [0, 1], then one panel per word with its attention map α (one (h, w) map per word)
    upsampled bilinearly to the image: dimmed where α is small, under a white glow where
    it is large."""
    image = image.detach().float().cpu().clamp(0, 1)
    maps = maps.detach().float().cpu()
    if len(maps) != len(words):
        raise ValueError(f"{len(words)} words but {len(maps)} attention maps")
    height, width = image.shape[1:]
    peaks = maps.flatten(1).amax(1) if len(maps) else maps.new_zeros(0)
    if len(maps):
        maps = torch.nn.functional.interpolate(
            maps[:, None], size=(height, width), mode="bilinear", align_corners=False
        )[:, 0]
    rows, cols = _grid(len(words) + 1, min(len(words) + 1, 6))
    fig, axes = _pyplot().subplots(rows, cols, figsize=(1.9 * cols, 2.1 * rows + 0.4))
    tiles = _tiles(axes, len(words) + 1)
    _show(tiles[0], image, interpolation="nearest")
    tiles[0].set_title("image", fontsize=9)
    for ax, word, heat, peak in zip(tiles[1:], words, maps, peaks, strict=False):
        light = (heat / (float(heat.max()) or 1.0)).clamp(0, 1)
        _show(ax, image * (0.3 + 0.7 * light), interpolation="nearest")
        glow = (0.6 * light).numpy()  # white where α is large, clear where it is small
        ax.imshow(torch.ones(height, width).numpy(), cmap="gray", vmin=0, vmax=1, alpha=glow)
        ax.set_title(word, fontsize=11)
        ax.set_xlabel(f"max α {float(peak):.2f}", fontsize=7, labelpad=2)
    fig.suptitle(title, fontsize=10)
    return _save(fig, target)
