"""`make bench` and `make bench-quick` run every benchmark the README cites, each in a mode
its script has."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GPU_ONLY = {"gpu"}  # bench_gpu.py runs under `make gpu-check`, on a CUDA machine


def make_benches() -> list[str]:
    """The names in the Makefile's ``BENCHES :=`` and ``BENCHES +=`` lines."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    names: list[str] = []
    for match in re.finditer(r"^BENCHES\s*[:+]?=\s*(.*)$", text, flags=re.MULTILINE):
        names += match.group(1).split()
    return names


def test_every_benchmark_the_readme_cites_is_run_by_make_bench():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    cited = set(re.findall(r"bench_([a-z0-9_]+)\.py", readme)) - GPU_ONLY
    assert cited, "the README cites no benchmark script"
    assert cited - set(make_benches()) == set()


def test_every_listed_benchmark_exists_and_has_a_quick_mode():
    names = make_benches()
    assert len(names) == len(set(names)), "a benchmark is listed twice"
    for name in names:
        script = ROOT / "benchmarks" / f"bench_{name}.py"
        assert script.is_file(), f"BENCHES names {name}, but {script.name} does not exist"
        assert '"--quick"' in script.read_text(encoding="utf-8"), f"{script.name} has no --quick"


def test_every_benchmark_script_is_listed():
    scripts = {p.stem.removeprefix("bench_") for p in (ROOT / "benchmarks").glob("bench_*.py")}
    assert scripts - GPU_ONLY - set(make_benches()) == set()
