#!/usr/bin/env bash
# The wheels a lent GPU machine lacks, fetched here for its Python, so that `make gpu-check`'s
# script runs there without installing anything from the network (nothing can be fetched
# there; its image already holds torch, numpy, pillow, safetensors, scikit-learn, matplotlib,
# tqdm, sacrebleu, pytest, pytest-xdist and hypothesis). striate itself runs from src/.
#
#   scripts/device_wheels.sh            # here: writes .whl/ (git-ignored), a few MB
#   # there, from the repository root, with .whl carried along:
#   python3 -m pip install -q --no-index --no-deps --target .whl/site .whl/*.whl
#   PYTHONPATH=.whl/site:src python3 scripts/gpu_check.py
#
# PYTHON_VERSION (default 3.12) is that machine's Python.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON_VERSION=${PYTHON_VERSION:-3.12}
PLATFORMS=()
for tag in manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64; do
    PLATFORMS+=(--platform "$tag")
done
rm -rf .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYTHON_VERSION" \
    --implementation cp "${PLATFORMS[@]}" -d .whl kornia kornia_rs
ls .whl
