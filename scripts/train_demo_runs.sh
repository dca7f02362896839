#!/usr/bin/env bash
# The six runs behind the screenshots in docs/serve/ (README, "striate serve"): one model per
# task, each trained by striate's own CLI for a fixed number of steps (not a time budget, so
# that every machine trains the same models), short runs: some 10-15 CPU-minutes in all. It
# ends by printing the command that retakes the screenshots from them.
#
#   scripts/train_demo_runs.sh [RUN ...]     (default: all six; STRIATE=.venv/bin/striate)
#
# MNIST, tiny-shakespeare, SST-2 and Multi30k are read from $STRIATE_DATA (default
# ../shared/data, else striate downloads them into it); shapes and moving digits are
# generated. Runs go to runs/demo-* (not committed); an existing one is replaced.
set -euo pipefail
STRIATE=${STRIATE:-.venv/bin/striate}
export STRIATE_DATA=${STRIATE_DATA:-../shared/data}
RUNS=(mnist shakespeare sst2 de-en shapes moving-digits)
train() {
    local name=demo-$1
    shift
    rm -rf "runs/$name"
    echo "== runs/$name: striate train $*"
    "$STRIATE" train "$@" --name "$name" --no-progress
}

for run in "${@:-${RUNS[@]}}"; do
    case $run in
        # LeNet-5 on MNIST, with small rotations and shifts so that digits drawn with a mouse
        # (not centred like MNIST's) are still read
        mnist) train mnist image --model lenet5 --data mnist --augment rotate=10,shift=0.1 \
            --optimizer sgd --lr 0.1 --schedule onecycle --batch-size 128 --epochs 3 ;;
        # a 2x256 char-LSTM on tiny-shakespeare (the default recipe at half its width), the
        # first 250 steps of a 3-epoch cosine schedule
        shakespeare) train shakespeare text --data shakespeare --hidden 256 --epochs 3 \
            --max-steps 250 ;;
        # a BiLSTM with max pooling over the words, on SST-2, from scratch
        sst2) train sst2 sentiment --data sst2 --bidirectional --pooling max --epochs 1 ;;
        # German to English on Multi30k: a GRU encoder-decoder with Bahdanau attention, cased
        de-en) train de-en translate --data multi30k --src de --tgt en --epochs 2 \
            --max-steps 400 ;;
        # Show, Attend and Tell on the generated shapes
        shapes) train shapes caption --data shapes --attention --hidden 128 --lr 3e-3 \
            --epochs 3 --max-steps 1200 ;;
        # a CNN + LSTM labelling every frame of the generated moving digits; its whole
        # schedule (cut at a high learning rate, the batch-norm statistics lag the weights)
        moving-digits) train moving-digits video --data moving-digits --epochs 3 ;;
        *) echo "unknown demo run $run (one of: ${RUNS[*]})" >&2; exit 2 ;;
    esac
done

echo "Serve them:       $STRIATE serve runs/demo-{mnist,shakespeare,sst2,de-en,shapes,moving-digits}"
echo "Screenshot them:  STRIATE_DATA=$STRIATE_DATA .venv/bin/python scripts/screenshot_pages.py \\"
echo "    runs/demo-{mnist,shakespeare,sst2,de-en,shapes,moving-digits} --out docs/serve"
