"""What one side of a ``bench_gpu.py`` benchmark measures, in its own child process.

``bench_gpu.py`` launches itself once per side (``--side lenet5:striate``, ``lstm:plain``,
...); the child calls one function here and prints its JSON line. Each side first times its
own start-up (:func:`startup`: launch to script, torch + striate imports, CUDA start), so this
module imports nothing beyond the standard library at its top, and takes the script's clock
(:data:`T0`) as its first line: ``bench_gpu.py`` imports it first.

* LeNet-5 on MNIST, the same recipe on both sides: :func:`lenet_striate` (the app's
  ``train``) and :func:`lenet_plain` (the training set on the GPU, one plain loop), each
  testing after every epoch and stopping at :data:`TARGET`.
* a 2x512 character LSTM: :func:`lstm_side`, striate's ``CharRNN`` + ``TBPTTStep`` or
  ``nn.Embedding`` + ``nn.LSTM`` + ``nn.Linear`` in a plain loop, characters/s.
* :func:`airbench_row`: the airbench CIFAR-10 baseline from PyPI, where installed.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import importlib.util  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from _clock import process_age  # noqa: E402

MNIST_RECIPE = {
    "epochs": 3,
    "batch_size": 128,
    "lr": 0.15,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "precision": "bf16",
    "channels_last": True,
}
LSTM = {"hidden": 512, "layers": 2, "embedding": 64, "batch": 64, "seq": 100, "lr": 2e-3}
TARGET = 0.99


def _since_launch() -> float:
    """Seconds since this process was launched (falls back to since the script's first line)."""
    age = process_age()
    return age if age is not None else time.perf_counter() - T0


def startup(device: str) -> dict[str, float]:
    """Import torch and striate, then start CUDA; the seconds each took."""
    launch_to_script = _since_launch() - (time.perf_counter() - T0)
    t = time.perf_counter()
    import torch

    import striate.engine.loop  # noqa: F401

    imported = time.perf_counter()
    if device.startswith("cuda"):
        torch.zeros(1, device=device)
        torch.cuda.synchronize()
    return {
        "launch_to_script_s": launch_to_script,
        "import_s": imported - t,
        "cuda_start_s": time.perf_counter() - imported,
    }


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------
# LeNet-5 / MNIST


def mnist_dir() -> Path | None:
    from _common import data_dir

    folder = data_dir()
    return folder if (folder / "mnist").is_dir() else None


def lenet_striate(device: str, epochs: int, limit: int | None) -> dict[str, Any]:
    """``striate train image`` with the recipe, testing every epoch."""
    start = startup(device)
    import tempfile
    from dataclasses import replace

    from striate.apps.image_classification import ImageTrainConfig, train
    from striate.engine.loop import EngineConfig

    epochs_seen: list[dict] = []
    t_train = time.perf_counter()

    def on_epoch_end(epoch: int, metrics: dict[str, float]) -> bool:
        epochs_seen.append(
            {"epoch": epoch, "test_acc": metrics["accuracy"], "t_from_launch_s": _since_launch()}
        )
        return metrics["accuracy"] >= TARGET

    recipe = {**MNIST_RECIPE, "epochs": epochs, "precision": _precision(device)}
    engine = EngineConfig(
        **recipe, schedule="onecycle", device=device, progress=False, log_every=10**9
    )
    config = ImageTrainConfig(
        model="lenet5",
        data="mnist",
        data_dir=str(mnist_dir()),
        val_fraction=0.0,
        validate_on="test",
        augment="",
        limit=limit,
        engine=engine,
    )
    with tempfile.TemporaryDirectory() as runs:
        result = train(replace(config, runs_dir=runs), on_epoch_end=on_epoch_end)
    _sync(device)
    images = result.fit.step * MNIST_RECIPE["batch_size"]
    speeds = [r["samples_per_s"] for r in result.fit.history if "samples_per_s" in r]
    return {
        **start,
        "setup_and_train_s": time.perf_counter() - t_train,
        "epochs": epochs_seen,
        "images_per_s": max(speeds) if speeds else None,
        "images_seen": images,
    }


def lenet_plain(device: str, epochs: int, limit: int | None) -> dict[str, Any]:
    """The same recipe as a plain script: the training set lives on the GPU, one loop."""
    start = startup(device)
    import torch
    import torch.nn.functional as F

    from striate.data.sources.images import load_image_data
    from striate.engine.optim import lr_multiplier
    from striate.models import create_model

    t_setup = time.perf_counter()
    folder = mnist_dir()
    train = load_image_data(
        "mnist", "train", data_dir=folder, val_fraction=0.0, download=False, limit=limit
    )
    test = load_image_data("mnist", "test", data_dir=folder, download=False, limit=limit)

    def on_device(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x = (data.images.to(device).float() / 255 - 0.1307) / 0.3081
        return x.contiguous(memory_format=torch.channels_last), data.labels.to(device)

    (x, y), (xt, yt) = on_device(train), on_device(test)
    torch.manual_seed(0)
    model = create_model("lenet5", num_classes=10, in_channels=1, image_size=28)
    model = model.to(device, memory_format=torch.channels_last)
    batch = MNIST_RECIPE["batch_size"]
    steps = epochs * (len(x) // batch)
    opt = torch.optim.SGD(
        model.parameters(), lr=MNIST_RECIPE["lr"], momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lr_multiplier("onecycle", steps))
    dtype = torch.bfloat16 if _precision(device) == "bf16" else None
    epochs_seen, train_time = [], 0.0
    for epoch in range(epochs):
        _sync(device)
        t = time.perf_counter()
        model.train()
        order = torch.randperm(len(x), device=device)
        for k in range(len(x) // batch):
            idx = order[k * batch : (k + 1) * batch]
            with torch.autocast(torch.device(device).type, dtype, enabled=dtype is not None):
                loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
        _sync(device)
        train_time += time.perf_counter() - t
        model.eval()
        with (
            torch.no_grad(),
            torch.autocast(torch.device(device).type, dtype, enabled=dtype is not None),
        ):
            correct = sum(
                int((model(xt[i : i + 2000]).argmax(1) == yt[i : i + 2000]).sum())
                for i in range(0, len(xt), 2000)
            )
        acc = correct / len(xt)
        epochs_seen.append(
            {"epoch": epoch + 1, "test_acc": acc, "t_from_launch_s": _since_launch()}
        )
        if acc >= TARGET:
            break
    seen = len(epochs_seen) * (len(x) // batch) * batch
    return {
        **start,
        "setup_and_train_s": time.perf_counter() - t_setup,
        "epochs": epochs_seen,
        "images_per_s": seen / train_time,
        "images_seen": seen,
    }


def _precision(device: str) -> str:
    return "bf16" if device.startswith("cuda") else "fp32"


# ---------------------------------------------------------------------------------------------
# char LSTM


def _corpus() -> tuple[Any, Any]:
    from _common import data_dir
    from striate.data.sources.text import load_text
    from striate.data.vocab import CharVocab

    try:
        text = load_text("shakespeare", data_dir(), download=False)
    except Exception:  # absent: the embedded corpus
        text = load_text("python-stdlib")
    vocab = CharVocab.from_text(text)
    return vocab, vocab.encode(text)


def lstm_side(side: str, device: str, precision: str, steps: int) -> dict[str, Any]:
    """Characters/s of ``steps`` timed TBPTT updates (after 3 warm-up ones) on one side."""
    start = startup(device)
    import torch
    import torch.nn.functional as F
    from torch import nn

    from striate.data.text_batches import TokenStream
    from striate.engine.device import Precision
    from striate.engine.tbptt import TBPTTStep
    from striate.models.char_rnn import CharRNN

    vocab, ids = _corpus()
    c = LSTM if device.startswith("cuda") else {**LSTM, "hidden": 32, "seq": 20}  # dry run
    stream = TokenStream(ids, c["batch"], c["seq"], device=device, seed=0)
    torch.manual_seed(0)
    amp = Precision(precision, torch.device(device))
    if side == "striate":
        model = CharRNN(len(vocab), "lstm", c["hidden"], c["layers"], embedding=c["embedding"])
        model.to(device)
        step = TBPTTStep(c["seq"])

        def update(batch: tuple) -> None:
            with amp.autocast():
                out = step.train(model, batch)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            opt.step()

    else:

        class Plain(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.embed = nn.Embedding(len(vocab), c["embedding"])
                self.lstm = nn.LSTM(c["embedding"], c["hidden"], c["layers"], batch_first=True)
                self.head = nn.Linear(c["hidden"], len(vocab))

        model = Plain().to(device)
        state = None

        def update(batch: tuple) -> None:
            nonlocal state
            inputs, targets = batch
            with amp.autocast():
                out, state = model.lstm(model.embed(inputs), state)
                logits = model.head(out).float()
            state = tuple(s.detach() for s in state)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    opt = torch.optim.Adam(model.parameters(), lr=c["lr"])
    batches = iter(stream.epoch(0))
    for _ in range(3):
        update(next(batches))
    _sync(device)
    t = time.perf_counter()
    done = 0
    for _ in range(steps):
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(stream.epoch(1))
            batch = next(batches)
        update(batch)
        done += 1
    _sync(device)
    seconds = time.perf_counter() - t
    return {**start, "chars_per_s": done * c["batch"] * c["seq"] / seconds, "steps": done}


# ---------------------------------------------------------------------------------------------
# airbench


def airbench_row(device: str) -> dict[str, Any]:
    if importlib.util.find_spec("airbench") is None:
        return {"status": "skipped: not installed (pip install airbench)"}
    if not device.startswith("cuda"):
        return {"status": "skipped: airbench needs a CUDA GPU"}
    start = startup(device)
    try:
        import airbench

        airbench.warmup94()
        t = time.perf_counter()
        accuracy = airbench.train94()
        return {
            **start,
            "status": "ran",
            "train_s": time.perf_counter() - t,
            "test_acc": float(accuracy) if accuracy is not None else None,
        }
    except Exception as exc:  # e.g. no network for its CIFAR-10 download
        return {"status": f"skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"}
