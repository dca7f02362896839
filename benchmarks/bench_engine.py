"""Training throughput of LeNet-5 on MNIST (batch 128, CPU): striate's engine vs the rest.

``engine_*``: ``fit`` + ``TensorBatches`` over preloaded uint8 images (the path of ``striate
train image``): defaults, fp32/bf16 x channels_last off/on, ``rotate,shift`` augmentation.
``loop``: a minimal fp32 loop over preloaded float tensors (the baseline). ``dataloader_w0/_w2``:
a per-sample ``Dataset`` (uint8 -> float / 255 per item), ``DataLoader(num_workers=0 / 2)``.
``keras``: Keras 3 (torch backend) ``model.fit``, the same LeNet-5 in Keras layers.
``lightning``: a Lightning ``Trainer``. Same initial weights and SGD for all. Timed as steady
seconds per step (span between step starts; per-call setup left out, reported apart for
``fit``), warmed up, alternating rounds, medians (and best). One JSON line. ``--quick``: < 60 s.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from _common import (
    StepClock,
    alternating_rounds,
    efficiency,
    emit,
    environment,
    load_mnist,
    matmul_peaks,
    median,
    train_flops_per_sample,
)
from striate.data.batching import TensorBatches
from striate.data.transforms.augment import build_augmentation
from striate.data.transforms.functional import channel_mean_std
from striate.engine.loop import EngineConfig, fit
from striate.engine.steps import ClassificationStep, StepOutput
from striate.models import create_model
from striate.models.classifier import ImageClassifier

BATCH = 128
LR, MOMENTUM, WD = 0.05, 0.9, 5e-4
AUGMENT = "rotate,shift"
TARGETS = {"loop": 1.3, "dataloader": 2.5, "keras": 1.6, "lightning": 1.5}
ENGINES: dict[str, tuple[str, dict]] = {  # name -> (augmentation, EngineConfig overrides)
    "engine_default": ("", {}),  # auto: fp32 on CPU, channels_last on for a conv model
    "engine_fp32_cl_off": ("", {"precision": "fp32", "channels_last": False}),
    "engine_bf16_cl_on": ("", {"precision": "bf16", "channels_last": True}),
    "engine_bf16_cl_off": ("", {"precision": "bf16", "channels_last": False}),
    "engine_default_augment": (AUGMENT, {}),
    "engine_bf16_cl_on_augment": (AUGMENT, {"precision": "bf16", "channels_last": True}),
}
QUIET = {"logger": False, "enable_checkpointing": False, "enable_progress_bar": False}
QUIET |= {"enable_model_summary": False, "num_sanity_val_steps": 0}  # for the Lightning Trainer
Runner = Callable[[], float]  # one timed call -> seconds per step


class ClockedStep:
    """A step that stamps the clock at the start of every training step, then delegates."""

    def __init__(self, inner: ClassificationStep, clock: StepClock) -> None:
        self.inner, self.clock = inner, clock

    def train(self, model: nn.Module, batch: tuple[torch.Tensor, ...]) -> StepOutput:
        self.clock.stamp()
        return self.inner.train(model, batch)

    def __getattr__(self, name: str) -> object:  # evaluate, summarize
        return getattr(self.inner, name)


class PerSampleMnist(Dataset):
    """One (float image in [0, 1], label) per item, converted item by item."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i].float().div(255), int(self.labels[i])


class Bench:
    """The data, the model recipe and one runner factory per contender."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, steps: int) -> None:
        self.images, self.labels, self.steps = images, labels, steps
        self.floats = images.float().div(255)  # preloaded floats for the baselines
        self.mean, self.std = channel_mean_std(images)
        self.fit_overhead: dict[str, list[float]] = {}

    def model(self) -> ImageClassifier:
        torch.manual_seed(0)
        return ImageClassifier(create_model("lenet5", 10, 1, 28), self.mean, self.std)

    def sgd(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), LR, MOMENTUM, weight_decay=WD, nesterov=True)

    def engine(self, name: str, augment: str = "", **overrides: object) -> Runner:
        model, clock = self.model(), StepClock()
        step = ClockedStep(ClassificationStep(build_augmentation(augment, 1)), clock)
        batches = TensorBatches(self.images, self.labels, BATCH, seed=0)
        config = EngineConfig(progress=False, log_every=10**9, max_steps=self.steps, **overrides)

        def run() -> float:
            clock.reset()
            start = time.perf_counter()
            fit(model, step, batches, None, config)
            total, per_step = time.perf_counter() - start, clock.per_step()
            self.fit_overhead.setdefault(name, []).append(total - per_step * self.steps)
            return per_step

        return run

    def manual(self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> Runner:
        """The plain fp32 PyTorch loop: batch, forward, loss, zero_grad, backward, step."""
        model = self.model()
        opt, clock = self.sgd(model), StepClock()

        def run() -> float:
            clock.reset()
            for _ in range(self.steps):
                clock.stamp()
                x, y = next(batches)
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
            return clock.per_step()

        return run

    def preloaded(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """x = X[idx] over shuffled epochs of the preloaded float tensors."""
        while True:
            order = torch.randperm(len(self.floats))
            for i in range(len(order) // BATCH):
                idx = order[i * BATCH : (i + 1) * BATCH]
                yield self.floats[idx], self.labels[idx]

    def loaded(self, workers: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of the per-sample Dataset from a DataLoader (kept alive across calls)."""
        dataset = PerSampleMnist(self.images, self.labels)
        options = {"num_workers": workers, "persistent_workers": workers > 0, "drop_last": True}
        loader = DataLoader(dataset, BATCH, shuffle=True, **options)
        while True:
            yield from loader

    def keras(self) -> Runner:
        """Keras' own default layout: NHWC (channels_last) inputs."""
        import keras  # KERAS_BACKEND=torch is set in main() before any import of keras

        L, clock = keras.layers, StepClock()
        keras.utils.set_random_seed(0)
        mean, var = float(self.mean[0]), float(self.std[0]) ** 2
        model = keras.Sequential(
            [
                keras.Input((28, 28, 1)),
                L.Normalization(mean=mean, variance=var),
                L.Conv2D(6, 5, padding="same", activation="relu"),
                L.MaxPooling2D(2),
                L.Conv2D(16, 5, activation="relu"),
                L.MaxPooling2D(2),
                L.Conv2D(120, 5, activation="relu"),
                L.Flatten(),
                L.Dense(84, activation="relu"),
                L.Dense(10),
            ]
        )
        model.compile(
            optimizer=keras.optimizers.SGD(LR, momentum=MOMENTUM, nesterov=True),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        x, y = self.floats.permute(0, 2, 3, 1).contiguous().numpy(), self.labels.numpy()

        class Stamp(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
                clock.stamp()

        def run() -> float:
            clock.reset()
            model.fit(x, y, BATCH, steps_per_epoch=self.steps, verbose=0, callbacks=[Stamp()])
            return clock.per_step()

        return run

    def lightning(self) -> Runner:
        import pytorch_lightning as pl

        for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
            logging.getLogger(name).setLevel(logging.ERROR)  # no banners on stderr
        bench, clock = self, StepClock()

        class Lit(pl.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                self.model = bench.model()

            def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
                clock.stamp()
                x, y = batch
                return F.cross_entropy(self.model(x), y)

            def configure_optimizers(self) -> torch.optim.Optimizer:
                return bench.sgd(self.model)

        lit = Lit()
        loader = DataLoader(TensorDataset(self.floats, self.labels), batch_size=BATCH, shuffle=True)

        def run() -> float:
            clock.reset()
            trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=self.steps, **QUIET)
            trainer.fit(lit, train_dataloaders=loader)
            return clock.per_step()

        return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a < 60 s smoke run")
    parser.add_argument("--steps", type=int, default=150, help="steps per timed call")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per contender")
    args = parser.parse_args()
    steps, rounds = (20, 2) if args.quick else (args.steps, args.rounds)
    os.environ.setdefault("KERAS_BACKEND", "torch")
    warnings.filterwarnings("ignore")  # Lightning's advice about DataLoader workers
    wall = time.perf_counter()

    peaks = matmul_peaks(2048 if args.quick else 4096)
    images, labels = load_mnist("train")
    bench = Bench(images, labels, steps)
    flops = train_flops_per_sample(bench.model(), bench.floats[:BATCH], labels[:BATCH])
    makers: dict[str, Callable[[], Runner]] = {
        name: partial(bench.engine, name, augment, **overrides)
        for name, (augment, overrides) in ENGINES.items()
    }
    makers["loop"] = lambda: bench.manual(bench.preloaded())
    makers["dataloader_w0"] = lambda: bench.manual(bench.loaded(0))
    makers["dataloader_w2"] = lambda: bench.manual(bench.loaded(2))
    makers |= {"keras": bench.keras, "lightning": bench.lightning}
    contenders: dict[str, Runner] = {}
    skipped: dict[str, str] = {}
    for name, make in makers.items():
        try:
            contenders[name] = make()
        except ImportError as exc:  # keras / pytorch-lightning: the optional "bench" extra
            skipped[name] = f"not importable: {exc}"

    per_step = alternating_rounds(contenders, rounds)
    ips: dict[str, float | None] = {k: BATCH / median(v) for k, v in per_step.items()}
    ips |= dict.fromkeys(skipped)

    def ratio(a: str, b: str) -> float | None:
        return ips[a] / ips[b] if ips.get(a) and ips.get(b) else None

    loader = max(("dataloader_w0", "dataloader_w2"), key=lambda n: ips[n] or 0.0)
    rivals = {"loop": "loop", "dataloader": loader, "keras": "keras", "lightning": "lightning"}
    plain = [n for n in contenders if n.startswith("engine_") and "augment" not in n]
    fastest = max(plain, key=lambda n: ips[n] or 0.0)
    out = {
        "bench": "engine_lenet5_mnist",
        **environment(),
        "batch": BATCH,
        "steps_per_call_x_rounds": [steps, rounds],
        "train_images": len(images),
        "matmul_peak_gflops": peaks,
        "train_flops_per_image": flops,
        "images_per_s": ips,  # median over rounds; best round (least disturbed) below
        "images_per_s_best": {k: BATCH / min(v) for k, v in per_step.items()},
        "vs_loop": {k: ratio(k, "loop") for k in ips},
        "efficiency": {k: efficiency(v, flops, peaks) for k, v in ips.items() if v},
        "fit_overhead_s": {k: median(v) for k, v in bench.fit_overhead.items()},
        "fastest_engine_setting": fastest,
        "skipped": skipped,
        "targets": TARGETS,
    }
    for label, engine in (("engine_default", "engine_default"), ("fastest_engine", fastest)):
        out[f"{label}_over"] = {f"{r} ({n})": ratio(engine, n) for r, n in rivals.items()}
    out["default_meets_target"] = {
        r: (x >= TARGETS[r]) if (x := ratio("engine_default", n)) else None
        for r, n in rivals.items()
    }
    out["wall_s"] = time.perf_counter() - wall
    out["threads_after"] = torch.get_num_threads()  # Keras / Lightning must not change it
    emit(out)


if __name__ == "__main__":
    main()
