"""``striate report RUN``: one self-contained HTML page per run (:mod:`striate.apps.report`)."""

from __future__ import annotations

import argparse
from typing import Any


def _report(args: argparse.Namespace) -> int:
    from striate.apps.report import report

    print(f"wrote {report(args.run, args.out, args.runs_dir)}")
    return 0


def register(commands: Any, train_tasks: Any, analyses: Any) -> None:
    """Add ``striate report``."""
    p = commands.add_parser("report", help="write RUN/report.html: metrics, curves, pictures")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--out", help="HTML to write (default RUN/report.html)")
    p.add_argument("--runs-dir", default="runs")
    p.set_defaults(func=_report)
