# Two commands for a fresh machine:
#   make demo   set up, then train LeNet-5 on the embedded digits (no download), evaluate, classify
#   make test   set up, then lint and run the whole test suite
#   make demo-runs  the six trained runs behind docs/serve's screenshots (~20 min on 2 cores)
#   make gpu-check  on a CUDA machine (with a CUDA build of torch, e.g. make gpu-check
#                   TORCH="torch"): GPU tests, every task on cuda, GPU benchmarks; < 5 min
VENV   ?= .venv
PYTHON ?= python3
# This machine's PyTorch (CPU build). With a GPU, or on another platform, install the
# PyTorch build for it first (see README) or override: make test TORCH="torch"
TORCH  ?= torch==2.13.0
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.striate-installed

.PHONY: setup demo demo-runs test lint format bench bench-quick gpu-check clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[dev,tensorboard,video,serve,export]"
	touch $(STAMP)

demo: setup
	rm -rf runs/demo
	$(VENV)/bin/striate train image --model lenet5 --data digits --epochs 12 --batch-size 64 \
		--lr 0.05 --augment rotate=10,shift=0.08 --name demo
	$(VENV)/bin/striate eval runs/demo
	$(PY) examples/export_digits.py runs/demo/samples 4
	$(VENV)/bin/striate classify runs/demo runs/demo/samples/*.png
	@echo "Try it in a browser: $(VENV)/bin/striate serve runs/demo   (then open http://127.0.0.1:8000)"

demo-runs: setup
	STRIATE=$(VENV)/bin/striate scripts/train_demo_runs.sh

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks examples scripts
	$(VENV)/bin/ruff format --check src tests benchmarks examples scripts

format: setup
	$(VENV)/bin/ruff format src tests benchmarks examples scripts
	$(VENV)/bin/ruff check --fix src tests benchmarks examples scripts

test: lint
	$(PY) -m pytest -q
	@# the gpu tests in their CPU mode: what make gpu-check runs keeps working without a GPU
	STRIATE_GPU_TEST_DEVICE=cpu $(PY) -m pytest -q tests/gpu

# Every benchmark prints one JSON line; results_table.py turns them into benchmarks/RESULTS.md.
# bench: the figures (about 1.5 hours on 2 cores, char_budget alone 35 min); bench-quick: every
# script in its smoke mode, to check that the table is produced (about 130 CPU-seconds at one
# thread in all, for under 3 minutes on 2 quiet cores).
BENCHES    := engine augment rnn char_budget mnist_time_to_99 adding sentiment translate caption video export
# the sequence tasks at equal time beside a plain PyTorch script (about 7 and 25 minutes)
BENCHES    += sst2_budget multi30k_budget
# striate serve under concurrent loopback clients (about 1 minute)
BENCHES    += serve
BENCH_LOG  := runs/bench/results.jsonl
BENCH_ENV  := STRIATE_DATA=$${STRIATE_DATA:-../shared/data}

BENCH_STAMP := $(VENV)/.striate-bench-installed
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[dev,tensorboard,video,bench,export]"
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	mkdir -p runs/bench && rm -f $(BENCH_LOG)
	for b in $(BENCHES); do $(BENCH_ENV) $(PY) benchmarks/bench_$$b.py >> $(BENCH_LOG) || exit 1; done
	$(BENCH_ENV) $(PY) benchmarks/bench_mnist_time_to_99.py --long >> $(BENCH_LOG)
	$(PY) benchmarks/results_table.py benchmarks/RESULTS.md $(BENCH_LOG)

# smoke figures never replace the measured table: they go to runs/bench/RESULTS-quick.md
bench-quick: $(BENCH_STAMP)
	mkdir -p runs/bench && rm -f runs/bench/quick.jsonl
	for b in $(BENCHES); do $(BENCH_ENV) $(PY) benchmarks/bench_$$b.py --quick >> runs/bench/quick.jsonl || exit 1; done
	$(PY) benchmarks/results_table.py runs/bench/RESULTS-quick.md runs/bench/quick.jsonl

gpu-check: setup
	$(PY) scripts/gpu_check.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
