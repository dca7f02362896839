"""Exported models against PyTorch eager (CPU): batch-1 latency and batch throughput.

Two graphs that ``striate export`` writes: LeNet-5 (MNIST-shaped, normalization inside) and
the char-RNN generation step (2-layer LSTM, 512 units, one-hot over 65 characters, as
``bench_rnn``; ``--quick``: 128 units). Each is exported as ONNX and as an exported program
from a one-step run (weights, not skill, matter for speed) and timed three ways on the same
inputs, every result checked against eager to 1e-4 first:

* ``eager``: the model as striate runs it (``ImageClassifier`` forward; ``CharRNN.step``);
* ``onnxruntime``: the ONNX file, CPU execution provider, as many threads as torch uses;
* ``exported program``: ``torch.export.load(...).module()``.

Latency: per call at batch 1 (median and p90 over all calls). Throughput: batch 256 images
(LeNet-5) or 64 streams (char step), items per second. Contenders alternate in rounds so
outside load hits all alike. The ratio is eager's time over the contender's (above 1: the
export is faster). One JSON line; ``--quick``: a smoke run (fewer calls, 128 units).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from _common import alternating_rounds, data_dir, emit, environment, quiet_engine, row
from striate.export import export
from striate.export.parity import TOLERANCE


def _lenet_run(root: Path) -> Path:
    from striate.apps import image_classification as ic

    engine = quiet_engine(ic.ImageTrainConfig().engine, epochs=1, max_steps=1, batch_size=32)
    config = ic.ImageTrainConfig(
        model="lenet5", data="mnist", data_dir=str(data_dir()), limit=64, val_fraction=0.01,
        name="lenet", runs_dir=str(root), engine=engine,
    )  # fmt: skip
    return ic.train(config).run


def _char_run(root: Path, hidden: int) -> Path:
    from striate.apps import text_generation as tg

    corpus = root / "corpus.txt"
    corpus.write_text((data_dir() / "tinyshakespeare" / "input.txt").read_text()[:20000])
    engine = quiet_engine(tg.text_engine_defaults(), epochs=1, max_steps=1, batch_size=8)
    config = tg.TextTrainConfig(
        data=str(corpus), cell="lstm", hidden=hidden, layers=2, tbptt="50", sample_every=0,
        name="chars", runs_dir=str(root), engine=engine,
    )  # fmt: skip
    return tg.train(config).run


def _contenders(run: Path, root: Path, eager: Callable, names: list[str]) -> dict[str, Callable]:
    """name -> fn(*tensors) for eager, onnxruntime and the exported program."""
    import onnxruntime as ort

    export(run, "onnx", root / "m.onnx")
    export(run, "exported-program", root / "m.pt2")
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(root / "m.onnx"), options, providers=["CPUExecutionProvider"]
    )
    program = torch.export.load(str(root / "m.pt2")).module()

    def onnx_run(*xs: torch.Tensor) -> list:
        return session.run(None, {n: x.numpy() for n, x in zip(names, xs, strict=True)})

    def program_run(*xs: torch.Tensor) -> list:
        with torch.inference_mode():
            return program(*xs)

    return {"eager": eager, "onnxruntime": onnx_run, "exported program": program_run}


def _check(fns: dict[str, Callable], inputs: tuple) -> None:
    want = torch.as_tensor(np.asarray(fns["eager"](*inputs)[0]))
    for name, fn in fns.items():
        got = torch.as_tensor(np.asarray(fn(*inputs)[0]))
        diff = float((got - want).abs().max())
        if diff > TOLERANCE:
            raise SystemExit(f"{name} differs from eager by {diff:.3g}")


def _measure(fns: dict[str, Callable], one: tuple, many: tuple, calls: int, rounds: int):
    """(latencies in s per call at batch 1 by name, seconds per batch call by name)."""
    latency: dict[str, list[float]] = {n: [] for n in fns}

    def timer(
        fn: Callable, inputs: tuple, sink: list[float] | None, calls: int
    ) -> Callable[[], float]:
        def go() -> float:
            start = time.perf_counter()
            for _ in range(calls):
                t0 = time.perf_counter()
                fn(*inputs)
                if sink is not None:
                    sink.append(time.perf_counter() - t0)
            return (time.perf_counter() - start) / calls

        return go

    alternating_rounds({n: timer(f, one, latency[n], calls) for n, f in fns.items()}, rounds)
    for values in latency.values():  # drop the warm-up round's calls
        del values[:calls]
    batch_calls = max(2, calls // 20)  # a batch call costs tens to hundreds of single ones
    batch = alternating_rounds(
        {n: timer(f, many, None, batch_calls) for n, f in fns.items()}, rounds
    )
    return latency, {n: statistics.median(v) for n, v in batch.items()}


def _rows(model: str, latency: dict, batch_s: dict, batch: int, unit: str) -> tuple[list, dict]:
    table, rows = {}, []
    for name in latency:
        values = sorted(latency[name])
        med, p90 = statistics.median(values), values[int(0.9 * (len(values) - 1))]
        table[name] = {
            "latency_ms_median": med * 1e3,
            "latency_ms_p90": p90 * 1e3,
            f"{unit}_per_s": batch / batch_s[name],
        }
    eager = table["eager"]
    for name in ("onnxruntime", "exported program"):
        t = table[name]
        vs = "PyTorch eager fp32"
        med, p90, per_s = t["latency_ms_median"], t["latency_ms_p90"], t[f"{unit}_per_s"]
        rows += [
            row(f"{model} batch-1 latency, median ({name})", med, unit="ms", contender=vs,
                ratio=eager["latency_ms_median"] / med),
            row(f"{model} batch-1 latency, p90 ({name})", p90, unit="ms", contender=vs,
                ratio=eager["latency_ms_p90"] / p90),
            row(f"{model} batch {batch} throughput ({name})", per_s, unit=f"{unit}/s",
                contender=vs, ratio=per_s / eager[f"{unit}_per_s"]),
        ]  # fmt: skip
    return rows, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (fewer calls)")
    args = parser.parse_args()
    wall = time.perf_counter()
    calls, rounds = (20, 3) if args.quick else (200, 7)
    hidden = 128 if args.quick else 512
    torch.manual_seed(0)
    import striate

    rows, tables = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        # LeNet-5: images in, logits and probabilities out
        run = _lenet_run(root / "runs")
        clf = striate.load(run, "cpu")
        size = clf.size

        def lenet_eager(x: torch.Tensor) -> list:
            with torch.inference_mode():
                logits = clf.model(x)
                return [logits, logits.softmax(-1)]

        fns = _contenders(run, root / "lenet", lenet_eager, ["images"])
        one, many = torch.rand(1, 1, size, size), torch.rand(256, 1, size, size)
        _check(fns, (many,))
        latency, batch_s = _measure(fns, (one,), (many,), calls, rounds)
        r, tables["lenet5"] = _rows("LeNet-5", latency, batch_s, 256, "images")
        rows += r

        # char-RNN step: token and state in, logits and state out
        run = _char_run(root / "runs", hidden)
        gen = striate.load(run, "cpu")
        model, vocab = gen.model, len(gen.vocab)

        def char_eager(token: torch.Tensor, state: torch.Tensor) -> list:
            logits, (h, c) = model.step(token, (state[0], state[1]))
            return [logits, torch.stack([h, c])]

        fns = _contenders(run, root / "chars", char_eager, ["token", "state"])

        def inputs(b: int) -> tuple:
            return torch.randint(0, vocab, (b,)), torch.randn(2, 2, b, hidden) * 0.5

        _check(fns, inputs(64))
        latency, batch_s = _measure(fns, inputs(1), inputs(64), calls, rounds)
        r, tables["char_step"] = _rows(
            f"char-LSTM step (2x{hidden})", latency, batch_s, 64, "steps"
        )
        rows += r
    emit(
        {
            "bench": "export",
            "rows": rows,
            "quick": args.quick,
            "config": {"calls_per_round": calls, "rounds": rounds, "char_hidden": hidden},
            "table": tables,
            "wall_s": time.perf_counter() - wall,
            "env": environment(),
        }
    )


if __name__ == "__main__":
    main()
