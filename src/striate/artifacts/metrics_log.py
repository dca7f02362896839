"""Where metrics go while training: JSON lines or CSV, and TensorBoard when it is installed."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any


class MetricsLog:
    """Appends one record per call; ``fmt`` is "jsonl" or "csv"; records carry ``phase``
    ("train" for step records, "val" for epoch records) plus ``step`` and ``epoch``."""

    def __init__(self, run_path: Path, fmt: str = "jsonl", tensorboard: bool = True) -> None:
        if fmt not in ("jsonl", "csv"):
            raise ValueError(f"metrics format must be jsonl or csv, not {fmt!r}")
        self.fmt = fmt
        self.path = run_path / f"metrics.{fmt}"
        self._fields: list[str] | None = None
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is an optional extra
                SummaryWriter = None
            if SummaryWriter is not None:
                self._tb = SummaryWriter(log_dir=str(run_path / "tensorboard"))

    def write(self, record: dict[str, Any]) -> None:
        clean = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in record.items()}
        with open(self.path, "a", encoding="utf-8", newline="") as fh:
            if self.fmt == "jsonl":
                fh.write(json.dumps(clean) + "\n")
            else:
                if self._fields is None:
                    self._fields = ["phase", "epoch", "step", "loss", "accuracy", "top5", "lr"]
                    if self.path.stat().st_size == 0:
                        csv.writer(fh).writerow(self._fields)
                csv.writer(fh).writerow([clean.get(k, "") for k in self._fields])
        if self._tb is not None:
            for key, value in record.items():
                if isinstance(value, float) and math.isfinite(value):
                    self._tb.add_scalar(f"{record['phase']}/{key}", value, record["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Read back a metrics.jsonl or metrics.csv file."""
    if path.suffix == ".jsonl":
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: _number(v) for k, v in row.items() if v != ""} for row in rows]


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text
