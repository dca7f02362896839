"""Training throughput of LeNet-5 on MNIST (batch 128, CPU): striate's engine vs the rest,
like for like: the same work at the same precision over the same data path.

Contenders (all from the same initial weights, SGD 0.05 / momentum 0.9 / Nesterov / wd 5e-4,
all at a constant learning rate: on a CPU the cost of fp32 max pooling depends on the data it
pools -- the activations of a trained LeNet-5, mostly zeros after ReLU, pool about 1.2x faster
than those at initialization -- so every contender must follow the same learning-rate path, or
the one whose weights move least looks slower):

* ``engine_*``: ``fit`` + ``TensorBatches`` over preloaded uint8 images (the path of ``striate
  train image``): ``engine_fp32`` (fp32, NCHW), ``engine_bf16_cl`` (bf16 autocast +
  channels-last), ``engine_default`` (``precision="auto"``: bf16 on CPUs with bf16 matrix units,
  fp32 elsewhere; channels-last for conv models), and ``*_augment`` with ``rotate,shift``.
* ``loop_fp32``: a minimal loop over the same kind of in-memory batches (``X[idx]`` of
  preloaded float tensors); ``loop_bf16_cl``: the same loop under ``torch.autocast(bf16)`` with
  a channels-last model and inputs (the best plain script a competent user writes).
* ``keras``: Keras 3 (torch backend) ``model.fit`` on the in-memory arrays, fp32.
* ``lightning``: a Lightning ``Trainer`` fed the same in-memory batches (an iterable of
  ``X[idx]`` batches), fp32; ``lightning_dataloader``: its idiomatic path, a ``DataLoader`` over a
  ``TensorDataset`` (per-sample indexing and collation), labelled as such.
* ``dataloader_w2``: the plain fp32 loop fed by a per-sample ``Dataset`` in a ``DataLoader``
  with 2 workers; ``dataloader_w2_augment``: the same with the same augmentation (striate's
  ``rotate,shift`` module, same parameters) applied per sample in the workers.

Ratios compare equal precisions: ``engine_fp32`` over ``loop_fp32``, Keras and Lightning;
``engine_bf16_cl`` over ``loop_bf16_cl``; ``engine_fp32_augment`` over ``dataloader_w2_augment``.
Timed as steady seconds per step (span between step starts; per-call setup left out, reported
apart for ``fit``), warmed up, alternating rounds, medians (and best). One JSON line, with
``rows`` for ``results_table.py``. ``--quick``: a smoke run (every contender, 6 steps, one
round after the warm-up).
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
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

from _common import (
    StepClock,
    alternating_rounds,
    efficiency,
    emit,
    environment,
    load_mnist,
    matmul_peaks,
    median,
    row,
    train_flops_per_sample,
)
from striate.data.batching import TensorBatches
from striate.data.transforms.augment import build_augmentation
from striate.data.transforms.functional import channel_mean_std
from striate.engine.device import Precision
from striate.engine.loop import EngineConfig, fit
from striate.engine.steps import ClassificationStep, StepOutput
from striate.models import create_model
from striate.models.classifier import ImageClassifier

BATCH = 128
LR, MOMENTUM, WD = 0.05, 0.9, 5e-4
AUGMENT = "rotate,shift"
FP32, BF16_CL = (
    {"precision": "fp32", "channels_last": False},
    {"precision": "bf16", "channels_last": True},
)
ENGINES: dict[str, tuple[str, dict]] = {  # name -> (augmentation, EngineConfig overrides)
    "engine_fp32": ("", FP32),
    "engine_bf16_cl": ("", BF16_CL),
    "engine_default": ("", {}),  # auto: bf16 + channels-last on CPUs with bf16 units
    "engine_fp32_augment": (AUGMENT, FP32),
    "engine_bf16_cl_augment": (AUGMENT, BF16_CL),
}
# (striate side, contender, precision, contender's description, issue 9's target ratio)
COMPARISONS = [
    ("engine_fp32", "loop_fp32", "fp32", "plain loop, fp32, same in-memory batches", 1.0),
    ("engine_bf16_cl", "loop_bf16_cl", "bf16", "plain loop, autocast bf16 + channels-last", 1.0),
    ("engine_fp32", "keras", "fp32", "Keras 3 (torch backend), fp32, in-memory arrays", 1.5),
    ("engine_fp32", "lightning", "fp32", "Lightning, fp32, same in-memory batches", 1.2),
    ("engine_fp32", "lightning_dataloader", "fp32", "Lightning, fp32, idiomatic DataLoader", None),
    ("engine_fp32", "dataloader_w2", "fp32", "plain loop, per-sample DataLoader, 2 workers", None),
    (
        "engine_fp32_augment",
        "dataloader_w2_augment",
        "fp32",
        "plain loop, same augmentation per sample in 2 DataLoader workers",
        2.5,
    ),
]
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
    """One (float image in [0, 1], label) per item, converted (and augmented) item by item."""

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, augment: nn.Module | None = None
    ) -> None:
        self.images, self.labels, self.augment = images, labels, augment

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = self.images[i].float().div(255)
        if self.augment is not None:
            with torch.no_grad():
                image = self.augment(image[None])[0]
        return image, int(self.labels[i])


class InMemoryBatches(IterableDataset):
    """Shuffled ``(X[idx], y[idx])`` batches of preloaded tensors, one epoch per iteration:
    given to a ``DataLoader(batch_size=None)``, which passes them through untouched."""

    def __init__(self, floats: torch.Tensor, labels: torch.Tensor) -> None:
        self.floats, self.labels = floats, labels

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.floats))
        for i in range(len(order) // BATCH):
            idx = order[i * BATCH : (i + 1) * BATCH]
            yield self.floats[idx], self.labels[idx]


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
        config = EngineConfig(
            progress=False,
            log_every=10**9,
            max_steps=self.steps,
            schedule="constant",  # as every contender (see the module's docstring)
            **overrides,
        )

        def run() -> float:
            clock.reset()
            start = time.perf_counter()
            fit(model, step, batches, None, config)
            total, per_step = time.perf_counter() - start, clock.per_step()
            self.fit_overhead.setdefault(name, []).append(total - per_step * self.steps)
            return per_step

        return run

    def manual(
        self, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], bf16_cl: bool = False
    ) -> Runner:
        """The plain PyTorch loop: batch, forward, loss, zero_grad, backward, step; in fp32,
        or (``bf16_cl``) under ``torch.autocast(bf16)`` with channels-last model and inputs."""
        model = self.model()
        if bf16_cl:
            model = model.to(memory_format=torch.channels_last)
        opt, clock = self.sgd(model), StepClock()

        def run() -> float:
            clock.reset()
            for _ in range(self.steps):
                clock.stamp()
                x, y = next(batches)
                if bf16_cl:
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.autocast("cpu", torch.bfloat16, enabled=bf16_cl):
                    loss = F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
            return clock.per_step()

        return run

    def preloaded(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """x = X[idx] over shuffled epochs of the preloaded float tensors."""
        batches = InMemoryBatches(self.floats, self.labels)
        while True:
            yield from batches

    def loaded(
        self, workers: int, augment: str = ""
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of the per-sample Dataset from a DataLoader (kept alive across calls),
        augmented per sample in the workers when ``augment`` is given."""
        dataset = PerSampleMnist(self.images, self.labels, build_augmentation(augment, 1))
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

    def lightning(self, in_memory: bool = True) -> Runner:
        """Lightning fed the same in-memory batches, or (``in_memory=False``) its idiomatic
        ``DataLoader`` over a ``TensorDataset``."""
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
        if in_memory:
            loader = DataLoader(InMemoryBatches(self.floats, self.labels), batch_size=None)
        else:
            dataset = TensorDataset(self.floats, self.labels)
            loader = DataLoader(dataset, batch_size=BATCH, shuffle=True)

        def run() -> float:
            clock.reset()
            trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=self.steps, **QUIET)
            trainer.fit(lit, train_dataloaders=loader)
            return clock.per_step()

        return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 6 steps, 1 round")
    parser.add_argument("--steps", type=int, default=150, help="steps per timed call")
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per contender")
    args = parser.parse_args()
    steps, rounds = (6, 1) if args.quick else (args.steps, args.rounds)
    os.environ.setdefault("KERAS_BACKEND", "torch")
    warnings.filterwarnings("ignore")  # Lightning's advice about DataLoader workers
    wall = time.perf_counter()

    peaks = matmul_peaks(1024 if args.quick else 4096)
    images, labels = load_mnist("train")
    bench = Bench(images, labels, steps)
    flops = train_flops_per_sample(bench.model(), bench.floats[:BATCH], labels[:BATCH])
    makers: dict[str, Callable[[], Runner]] = {
        name: partial(bench.engine, name, augment, **overrides)
        for name, (augment, overrides) in ENGINES.items()
    }
    makers["loop_fp32"] = lambda: bench.manual(bench.preloaded())
    makers["loop_bf16_cl"] = lambda: bench.manual(bench.preloaded(), bf16_cl=True)
    makers["dataloader_w2"] = lambda: bench.manual(bench.loaded(2))
    makers["dataloader_w2_augment"] = lambda: bench.manual(bench.loaded(2, AUGMENT))
    makers["keras"] = bench.keras
    makers["lightning"] = bench.lightning
    makers["lightning_dataloader"] = lambda: bench.lightning(in_memory=False)
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

    default_precision = Precision("auto", torch.device("cpu")).name
    rows = [
        row(
            f"LeNet-5/MNIST training throughput, batch 128 ({name})",
            ips[name],
            unit="images/s",
            contender=f"{label}: {ips[rival]:,.0f} images/s" if ips[rival] else f"{label}: skipped",
            ratio=ratio(name, rival),
            precision=precision,
        )
        for name, rival, precision, label, _ in COMPARISONS
    ]
    rows.append(
        row(
            "LeNet-5/MNIST training throughput, batch 128, striate's default settings",
            ips["engine_default"],
            unit="images/s",
            contender="plain loop, autocast bf16 + channels-last"
            if default_precision == "bf16"
            else "plain loop, fp32",
            ratio=ratio(
                "engine_default", "loop_bf16_cl" if default_precision == "bf16" else "loop_fp32"
            ),
            precision=default_precision,
        )
    )
    out = {
        "bench": "engine_lenet5_mnist",
        "quick": args.quick,
        **environment(),
        "batch": BATCH,
        "steps_per_call_x_rounds": [steps, rounds],
        "train_images": len(images),
        "default_precision": default_precision,
        "matmul_peak_gflops": peaks,
        "train_flops_per_image": flops,
        "images_per_s": ips,  # median over rounds; best round (least disturbed) below
        "images_per_s_best": {k: BATCH / min(v) for k, v in per_step.items()},
        "efficiency": {k: efficiency(v, flops, peaks) for k, v in ips.items() if v},
        "fit_overhead_s": {k: median(v) for k, v in bench.fit_overhead.items()},
        "ratios": {f"{a} / {b}": ratio(a, b) for a, b, *_ in COMPARISONS},
        "targets_met": {
            f"{a} / {b} >= {t}": (r >= t) if (r := ratio(a, b)) else None
            for a, b, _, _, t in COMPARISONS
            if t
        },
        "skipped": skipped,
        "rows": rows,
    }
    out["wall_s"] = time.perf_counter() - wall
    out["threads_after"] = torch.get_num_threads()  # Keras / Lightning must not change it
    emit(out)


if __name__ == "__main__":
    main()
