"""Where metrics go while training: JSON lines or CSV, and TensorBoard when it is installed.

Records are appended one line at a time, so a run killed mid-write can leave a torn last
line (no final newline). Readers drop such a line and say so in one line on stderr; a
resumed run's log first drops it, and every record newer than the checkpoint it resumes
from, so the log reads as if the run had never stopped.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

from striate.atomic import write_text
from striate.errors import StriateError

FIRST_FIELDS = ("phase", "epoch", "step")


class MetricsLog:
    """Appends one record per call; ``fmt`` is "jsonl" or "csv"; records carry ``phase``
    ("train" for step records, "val" for validation records) plus ``step`` and ``epoch``.

    The CSV file keeps every metric a task logs: its header is the union of the records'
    keys, and a record with a new key rewrites the file (atomically) with a wider header.
    ``resume_step``: an existing log is cut back to the records up to that step (a resumed
    run); None starts the log afresh only if there is none.
    """

    def __init__(
        self,
        run_path: Path,
        fmt: str = "jsonl",
        tensorboard: bool = True,
        resume_step: int | None = None,
    ) -> None:
        if fmt not in ("jsonl", "csv"):
            raise ValueError(f"metrics format must be jsonl or csv, not {fmt!r}")
        self.fmt = fmt
        self.path = run_path / f"metrics.{fmt}"
        self._records: list[dict[str, Any]] = []
        self._fields: list[str] = []
        if self.path.exists():
            kept = [
                r
                for r in read_metrics(self.path, quiet=True)
                if r.get("step", 0) <= (resume_step or 0)
            ]
            self._records = kept if fmt == "csv" else []
            self._rewrite(kept)
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is an optional extra
                SummaryWriter = None
            if SummaryWriter is not None:
                self._tb = SummaryWriter(log_dir=str(run_path / "tensorboard"))

    def _rewrite(self, records: list[dict[str, Any]]) -> None:
        if self.fmt == "jsonl":
            write_text(self.path, "".join(json.dumps(r) + "\n" for r in records))
            return
        for record in records:
            self._fields += [k for k in record if k not in self._fields]
        self._fields = [*FIRST_FIELDS, *(k for k in self._fields if k not in FIRST_FIELDS)]
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer)
        writer.writerow(self._fields)
        for record in records:
            writer.writerow([record.get(k, "") for k in self._fields])
        write_text(self.path, buffer.getvalue())

    def write(self, record: dict[str, Any]) -> None:
        clean = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in record.items()}
        if self.fmt == "csv":
            self._records.append(clean)
            if not self._fields or any(k not in self._fields for k in clean):
                self._rewrite(self._records)  # a new metric: widen the header
            else:
                with open(self.path, "a", encoding="utf-8", newline="") as fh:
                    csv.writer(fh).writerow([clean.get(k, "") for k in self._fields])
        else:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(clean) + "\n")
        if self._tb is not None:
            for key, value in record.items():
                if isinstance(value, float) and math.isfinite(value):
                    self._tb.add_scalar(f"{record['phase']}/{key}", value, record["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(path: Path, quiet: bool = False) -> list[dict[str, Any]]:
    """Read back a metrics.jsonl or metrics.csv file.

    A torn last line (a run killed while writing it: no final newline, or not a whole
    record) is dropped with a one-line note on stderr (none if ``quiet``); a damaged line
    anywhere else is an error naming the line.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise StriateError(f"{path} is not UTF-8 text") from None
    lines = text.split("\n")
    torn = lines.pop() != ""  # the text after the last newline: a line that never ended
    if path.suffix == ".jsonl":
        records = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict):
                raise StriateError(f"{path} line {number} is not a JSON record")
            records.append(record)
    else:
        rows = list(csv.DictReader(io.StringIO("\n".join(lines) + "\n", newline="")))
        records = [{k: _number(v) for k, v in row.items() if v not in ("", None)} for row in rows]
    if torn and not quiet:
        print(f"note: {path} ends in a torn line (a killed run); it was left out", file=sys.stderr)
    return records


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text
